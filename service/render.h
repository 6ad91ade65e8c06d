// service/render.h: the coloured parsing pictures (label map colours, overlay with legend).
//
// Palette: the CIHP/LIP visualisation colours of the dataset authors' tools (CIHP_PGN and the
// Graphonomy/CIHP parsing demos: `label_colours`, 20 entries, RGB):
//   0 (0,0,0) Background, 1 (128,0,0), 2 (255,0,0), 3 (0,85,0), 4 (170,0,51), 5 (255,85,0),
//   6 (0,0,85), 7 (0,119,221), 8 (85,85,0), 9 (0,85,85), 10 (85,51,0), 11 (52,86,128), 12 (0,128,0),
//   13 (0,0,255), 14 (51,170,221), 15 (0,255,255), 16 (85,255,170), 17 (170,255,85), 18 (255,255,0),
//   19 (255,170,0).
// Labels 20 and above (e.g. CIHP's "Human" class, other label sets) continue with the PASCAL-VOC
// bit-interleaved colour map that SCHP/LIP tools call get_palette(n) (label bits 0,1,2 -> the top
// bits of R,G,B, then the next three label bits one bit lower, ...): voc_palette() below.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/parsing.h"

namespace m2fp::service {

using Rgb = std::array<uint8_t, 3>;

// n colours (n <= 256): CIHP/LIP table for 0..19, then voc_palette's entries.
std::vector<Rgb> parsing_palette(int n);
// The PASCAL-VOC / SCHP get_palette(n) colour map (label 1 (128,0,0), 2 (0,128,0), 3 (128,128,0) ...).
std::vector<Rgb> voc_palette(int n);

// labels [h * w] -> RGB picture with parsing_palette colours (label 0 black).
Image colorize_labels(const uint8_t* labels, int w, int h);
Image colorize_labels(const std::vector<uint8_t>& labels, int w, int h);  // checks the size

// 3x3 majority filter applied only where a pixel's 3x3 neighbourhood holds more than one label:
// the pixel takes the label most frequent in its (image-clipped) neighbourhood; ties keep the
// pixel's own label when it is among the most frequent, else the lowest label. Removes isolated
// pixels and one-pixel spurs; interiors are untouched.
std::vector<uint8_t> smooth_label_edges(const uint8_t* labels, int w, int h);

struct RenderOptions {
  float alpha = 0.6f;              // weight of the label colour over the photo; background (0) untouched
  bool legend = true;              // panel on the right: swatch + class name (+ share) per label present
  bool person_boxes = false;       // Parsing::persons boxes, numbered
  bool smooth_edges = false;       // smooth_label_edges() before colouring (off: exact label map)
  int text_scale = 0;              // pixel size of the legend font; 0 = from the image size
};

// The photo with the label colours blended over it (out = (1 - alpha) * photo + alpha * colour,
// rounded, where label != 0), optional person boxes, and a legend panel to the right of the photo
// (the canvas grows to the right, and downwards when the legend is taller than the photo). Throws
// std::invalid_argument when the parsing's size does not match the photo's.
Image render_parsing(const Image& photo, const Parsing& p, const RenderOptions& opt = {});

// The same pictures written as PNG files (engine/io.h's PngWriter: drawn straight into the encoder's
// rows, no picture of their own): the pixels render_parsing / colorize_labels give, the bytes
// write_png_rgb writes for them. Throw what those throw, IoError when the file cannot be written.
void write_parsing_png(const std::string& path, const Image& photo, const Parsing& p, const RenderOptions& opt = {});
void write_labels_color_png(const std::string& path, const uint8_t* labels, int w, int h);

// ---- text (stb_easy_font glyphs, drawn as filled pixel rectangles) ------------------------------
// Width and height in pixels of one line of text at an integer scale (characters outside printable
// ASCII are drawn as '?').
int text_width(const std::string& text, int scale);
int text_height(int scale);
// Draws one line with its top-left corner at (x, y), clipped to the image.
void draw_text(Image& img, int x, int y, const std::string& text, Rgb color, int scale);
void fill_rect(Image& img, int x0, int y0, int x1, int y1, Rgb color);  // [x0, x1) x [y0, y1), clipped

}  // namespace m2fp::service
