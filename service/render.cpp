// service/render.cpp: palettes, label colouring, the overlay picture with its legend.
#include "service/render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "engine/io.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

namespace m2fp::service {
namespace {

// CIHP/LIP label_colours (see render.h), RGB.
constexpr uint8_t kCihpColours[20][3] = {
    {0, 0, 0},      {128, 0, 0},    {255, 0, 0},    {0, 85, 0},     {170, 0, 51},
    {255, 85, 0},   {0, 0, 85},     {0, 119, 221},  {85, 85, 0},    {0, 85, 85},
    {85, 51, 0},    {52, 86, 128},  {0, 128, 0},    {0, 0, 255},    {51, 170, 221},
    {0, 255, 255},  {85, 255, 170}, {170, 255, 85}, {255, 255, 0},  {255, 170, 0}};

void check_size(int w, int h, const char* who) {
  if (w <= 0 || h <= 0)
    throw std::invalid_argument(std::string(who) + ": invalid size " + std::to_string(w) + "x" +
                                std::to_string(h));
}

std::string printable(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if ((unsigned char)c < 32 || (unsigned char)c > 126) c = '?';
  return out;
}

// Rows of RGB pixels `stride` bytes apart: an Image, or a PngWriter's rows.
struct Canvas {
  uint8_t* data;
  int width, height;
  size_t stride;
  uint8_t* row(int y) const { return data + (size_t)y * stride; }
};
Canvas canvas_of(Image& img) { return {img.rgb.data(), img.width, img.height, (size_t)img.width * 3}; }

void fill_rect(const Canvas& img, int x0, int y0, int x1, int y1, Rgb color) {
  x0 = std::max(x0, 0);
  y0 = std::max(y0, 0);
  x1 = std::min(x1, img.width);
  y1 = std::min(y1, img.height);
  for (int y = y0; y < y1; ++y) {
    uint8_t* r = img.row(y);
    for (int x = x0; x < x1; ++x) {
      r[3 * x] = color[0];
      r[3 * x + 1] = color[1];
      r[3 * x + 2] = color[2];
    }
  }
}

void draw_text(const Canvas& img, int x, int y, const std::string& text, Rgb color, int scale) {
  scale = std::max(1, scale);
  std::string t = printable(text);
  if (t.empty()) return;
  // stb_easy_font emits axis-aligned quads (4 vertices of 16 bytes: x, y, z floats + RGBA).
  std::vector<char> vbuf(t.size() * 320 + 64);
  const int quads = stb_easy_font_print(0.f, 0.f, t.data(), nullptr, vbuf.data(), (int)vbuf.size());
  for (int q = 0; q < quads; ++q) {
    float minx = 1e9f, miny = 1e9f, maxx = -1e9f, maxy = -1e9f;
    for (int v = 0; v < 4; ++v) {
      float vx, vy;
      std::memcpy(&vx, vbuf.data() + (q * 4 + v) * 16, 4);
      std::memcpy(&vy, vbuf.data() + (q * 4 + v) * 16 + 4, 4);
      minx = std::min(minx, vx);
      maxx = std::max(maxx, vx);
      miny = std::min(miny, vy);
      maxy = std::max(maxy, vy);
    }
    fill_rect(img, x + (int)std::lround(minx) * scale, y + (int)std::lround(miny) * scale,
              x + (int)std::lround(maxx) * scale, y + (int)std::lround(maxy) * scale, color);
  }
}

// Distinct colours for person boxes.
constexpr Rgb kBoxColours[] = {{255, 255, 255}, {255, 220, 0}, {0, 230, 255}, {255, 0, 200},
                               {120, 255, 0},   {255, 120, 0}, {160, 120, 255}};

}  // namespace

std::vector<Rgb> voc_palette(int n) {
  if (n < 0 || n > 256) throw std::invalid_argument("voc_palette: n = " + std::to_string(n) + " outside 0..256");
  std::vector<Rgb> pal((size_t)n);
  for (int j = 0; j < n; ++j) {
    Rgb c{0, 0, 0};
    int lab = j;
    for (int i = 0; lab; ++i, lab >>= 3) {
      c[0] |= (uint8_t)(((lab >> 0) & 1) << (7 - i));
      c[1] |= (uint8_t)(((lab >> 1) & 1) << (7 - i));
      c[2] |= (uint8_t)(((lab >> 2) & 1) << (7 - i));
    }
    pal[(size_t)j] = c;
  }
  return pal;
}

std::vector<Rgb> parsing_palette(int n) {
  std::vector<Rgb> pal = voc_palette(n);
  for (int j = 0; j < n && j < 20; ++j)
    pal[(size_t)j] = Rgb{kCihpColours[j][0], kCihpColours[j][1], kCihpColours[j][2]};
  return pal;
}

Image colorize_labels(const uint8_t* labels, int w, int h) {
  check_size(w, h, "colorize_labels");
  if (!labels) throw std::invalid_argument("colorize_labels: null label map");
  const std::vector<Rgb> pal = parsing_palette(256);
  Image out = Image::blank(w, h);
  const int64_t n = (int64_t)w * h;
#pragma omp parallel for schedule(static) if (n >= (1 << 20))
  for (int64_t i = 0; i < n; ++i) {
    const Rgb& c = pal[labels[i]];
    out.rgb[3 * i] = c[0];
    out.rgb[3 * i + 1] = c[1];
    out.rgb[3 * i + 2] = c[2];
  }
  return out;
}

Image colorize_labels(const std::vector<uint8_t>& labels, int w, int h) {
  check_size(w, h, "colorize_labels");
  if (labels.size() != (size_t)w * h)
    throw std::invalid_argument("colorize_labels: " + std::to_string(labels.size()) +
                                " labels for a " + std::to_string(w) + "x" + std::to_string(h) +
                                " picture");
  return colorize_labels(labels.data(), w, h);
}

std::vector<uint8_t> smooth_label_edges(const uint8_t* labels, int w, int h) {
  check_size(w, h, "smooth_label_edges");
  if (!labels) throw std::invalid_argument("smooth_label_edges: null label map");
  std::vector<uint8_t> out(labels, labels + (size_t)w * h);
  for (int y = 0; y < h; ++y) {
    const int ya = std::max(0, y - 1), yb = std::min(h - 1, y + 1);
    for (int x = 0; x < w; ++x) {
      const int xa = std::max(0, x - 1), xb = std::min(w - 1, x + 1);
      const uint8_t own = labels[(size_t)y * w + x];
      // Up to 9 distinct labels in the window: (label, count) pairs.
      uint8_t lab[9];
      int cnt[9], k = 0;
      for (int yy = ya; yy <= yb; ++yy)
        for (int xx = xa; xx <= xb; ++xx) {
          const uint8_t l = labels[(size_t)yy * w + xx];
          int i = 0;
          while (i < k && lab[i] != l) ++i;
          if (i == k) {
            lab[k] = l;
            cnt[k++] = 0;
          }
          ++cnt[i];
        }
      if (k == 1) continue;  // interior pixel
      int best = -1;
      for (int i = 0; i < k; ++i) {
        if (best < 0 || cnt[i] > cnt[best] ||
            (cnt[i] == cnt[best] && lab[best] != own && (lab[i] == own || lab[i] < lab[best])))
          best = i;
      }
      out[(size_t)y * w + x] = lab[best];
    }
  }
  return out;
}

int text_height(int scale) { return 12 * std::max(1, scale); }

int text_width(const std::string& text, int scale) {
  std::string t = printable(text);
  return stb_easy_font_width(t.data()) * std::max(1, scale);
}

void fill_rect(Image& img, int x0, int y0, int x1, int y1, Rgb color) {
  fill_rect(canvas_of(img), x0, y0, x1, y1, color);
}

void draw_text(Image& img, int x, int y, const std::string& text, Rgb color, int scale) {
  draw_text(canvas_of(img), x, y, text, color, scale);
}

namespace {

// render_parsing into the rows `target(width, height)` gives, every byte of them written.
template <class Target>
void render_parsing_to(const Image& photo, const Parsing& p, const RenderOptions& opt, const Target& target) {
  const int w = photo.width, h = photo.height;
  check_size(w, h, "render_parsing");
  if (photo.rgb.size() != (size_t)w * h * 3)
    throw std::invalid_argument("render_parsing: photo buffer does not match its size");
  if (p.width != w || p.height != h || p.labels.size() != (size_t)w * h)
    throw std::invalid_argument("render_parsing: parsing of " + std::to_string(p.width) + "x" +
                                std::to_string(p.height) + " (" + std::to_string(p.labels.size()) +
                                " labels) for a " + std::to_string(w) + "x" + std::to_string(h) +
                                " photo");
  if (!(opt.alpha >= 0.f && opt.alpha <= 1.f))
    throw std::invalid_argument("render_parsing: alpha must be in [0, 1]");

  std::vector<uint8_t> smoothed;
  const uint8_t* labels = p.labels.data();
  if (opt.smooth_edges) {
    smoothed = smooth_label_edges(labels, w, h);
    labels = smoothed.data();
  }
  const std::vector<Rgb> pal = parsing_palette(256);
  const int scale = opt.text_scale > 0 ? opt.text_scale
                                       : std::clamp((std::max(w, h) + 300) / 500, 1, 4);

  // Legend rows: labels present (not background), in label order, with their share of the image.
  int64_t count[256] = {0};
  const int64_t npx = (int64_t)w * h;
#pragma omp parallel for schedule(static) reduction(+ : count[:256]) if (npx >= (1 << 20))
  for (int64_t i = 0; i < npx; ++i) ++count[labels[i]];
  struct Row { int label; std::string text; };
  std::vector<Row> rows;
  for (int l = 1; l < 256; ++l) {
    if (!count[l]) continue;
    const std::string name =
        l < (int)p.class_names.size() ? p.class_names[(size_t)l] : "class " + std::to_string(l);
    char pct[32];
    std::snprintf(pct, sizeof pct, " %.1f%%", 100.0 * (double)count[l] / ((double)w * h));
    rows.push_back({l, name + pct});
  }
  const int pad = 6 * scale, line = text_height(scale) + 2 * scale, swatch = 9 * scale;
  int panel_w = 0, panel_h = 0;
  const std::string title = rows.empty() ? "no parts found" : "labels";
  if (opt.legend) {
    int tw = text_width(title, scale);
    for (const Row& r : rows) tw = std::max(tw, swatch + pad + text_width(r.text, scale));
    panel_w = pad + tw + pad;
    panel_h = pad + line * (int)(rows.size() + 1) + pad;
  }

  const Rgb panel_bg{245, 245, 245}, ink{20, 20, 20};
  const Canvas out = target(w + panel_w, std::max(h, panel_h));
  // The panel's background: right of the photo, and below it when the legend is taller (the photo
  // area is all written by the overlay below).
  fill_rect(out, w, 0, out.width, out.height, panel_bg);
  fill_rect(out, 0, h, w, out.height, panel_bg);

  // Overlay: out = (photo * (256 - A) + colour * A + 128) >> 8 where the label is not background.
  const int A = (int)std::lround(opt.alpha * 256.f);
#pragma omp parallel for schedule(static) if (npx >= (1 << 20))
  for (int y = 0; y < h; ++y) {
    const uint8_t* s = photo.row(y);
    const uint8_t* l = labels + (size_t)y * w;
    uint8_t* d = out.row(y);
    for (int x = 0; x < w; ++x) {
      if (l[x] == 0) {
        d[3 * x] = s[3 * x];
        d[3 * x + 1] = s[3 * x + 1];
        d[3 * x + 2] = s[3 * x + 2];
        continue;
      }
      const Rgb& c = pal[l[x]];
      for (int k = 0; k < 3; ++k) d[3 * x + k] = (uint8_t)((s[3 * x + k] * (256 - A) + c[k] * A + 128) >> 8);
    }
  }

  if (opt.person_boxes) {
    const int t = std::max(2, scale * 2);
    for (size_t k = 0; k < p.persons.size(); ++k) {
      const BBox& b = p.persons[k].bbox;
      if (b.x1 <= b.x0 || b.y1 <= b.y0) continue;
      const Rgb c = kBoxColours[k % (sizeof kBoxColours / sizeof kBoxColours[0])];
      const int x0 = std::clamp(b.x0, 0, w), x1 = std::clamp(b.x1, 0, w);
      const int y0 = std::clamp(b.y0, 0, h), y1 = std::clamp(b.y1, 0, h);
      fill_rect(out, x0, y0, x1, std::min(y0 + t, y1), c);
      fill_rect(out, x0, std::max(y1 - t, y0), x1, y1, c);
      fill_rect(out, x0, y0, std::min(x0 + t, x1), y1, c);
      fill_rect(out, std::max(x1 - t, x0), y0, x1, y1, c);
      const std::string tag = "person " + std::to_string(k + 1);
      const int tw = text_width(tag, scale) + 2 * scale, th = text_height(scale);
      fill_rect(out, x0, y0, std::min(x0 + tw, w), std::min(y0 + th, h), c);
      // Draw the tag clipped to the photo area (never into the legend panel).
      Image tagimg = Image::blank(tw, th, c[0], c[1], c[2]);
      draw_text(canvas_of(tagimg), scale, scale, tag, Rgb{0, 0, 0}, scale);
      for (int yy = 0; yy < th && y0 + yy < h; ++yy)
        for (int xx = 0; xx < tw && x0 + xx < w; ++xx)
          for (int ch = 0; ch < 3; ++ch) out.row(y0 + yy)[3 * (x0 + xx) + ch] = tagimg.row(yy)[3 * xx + ch];
    }
  }

  if (opt.legend) {
    const int x = w + pad;
    int y = pad;
    draw_text(out, x, y + scale, title, ink, scale);
    y += line;
    for (const Row& r : rows) {
      const Rgb& c = pal[(size_t)r.label];
      fill_rect(out, x, y + scale, x + swatch, y + scale + swatch, ink);  // 1-scale border
      fill_rect(out, x + scale, y + 2 * scale, x + swatch - scale, y + swatch, c);
      draw_text(out, x + swatch + pad, y + scale, r.text, ink, scale);
      y += line;
    }
  }
}

}  // namespace

Image render_parsing(const Image& photo, const Parsing& p, const RenderOptions& opt) {
  Image out;
  render_parsing_to(photo, p, opt, [&](int width, int height) {
    out.width = width, out.height = height;
    out.rgb.resize((size_t)width * height * 3);
    return canvas_of(out);
  });
  return out;
}

void write_parsing_png(const std::string& path, const Image& photo, const Parsing& p, const RenderOptions& opt) {
  std::optional<PngWriter> png;
  render_parsing_to(photo, p, opt, [&](int width, int height) {
    png.emplace(width, height, 3);
    return Canvas{png->row(0), width, height, png->stride()};
  });
  png->write(path);
}

void write_labels_color_png(const std::string& path, const uint8_t* labels, int w, int h) {
  check_size(w, h, "write_labels_color_png");
  if (!labels) throw std::invalid_argument("write_labels_color_png: null label map");
  const std::vector<Rgb> pal = parsing_palette(256);
  PngWriter png(w, h, 3);
#pragma omp parallel for schedule(static) if ((int64_t)w * h >= (1 << 20))
  for (int y = 0; y < h; ++y) {
    const uint8_t* l = labels + (size_t)y * w;
    uint8_t* d = png.row(y);
    for (int x = 0; x < w; ++x) {
      const Rgb& c = pal[l[x]];
      d[3 * x] = c[0];
      d[3 * x + 1] = c[1];
      d[3 * x + 2] = c[2];
    }
  }
  png.write(path);
}

}  // namespace m2fp::service