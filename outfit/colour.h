// outfit/colour.h: colour science for garment analysis.
//
//   sRGB (8-bit, gamma) -> linear RGB -> CIE XYZ (D65) -> CIELAB (L* a* b*) -> LCh (L*, chroma, hue angle)
//
// and back (Lab -> sRGB, for the hex value of a cluster centre). Dominant colours of a set of pixels are
// found by k-means in CIELAB (deterministic k-means++ seeding, bounded sub-sample, clusters closer than a
// ΔE threshold merged, tiny clusters folded into their nearest neighbour). Colour names come from one
// explicit table (colour.cpp, `name_colour`): neutrals (black, charcoal, grey, silver, white, cream,
// beige, brown) are judged by lightness and chroma, never by hue; chromatic colours by hue bands in LCh
// with lightness modifiers (navy = dark blue, pink = light red, burgundy = dark red, olive = dark yellow).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/buffer_pool.h"

namespace m2fp {

struct RGB8 {
  uint8_t r = 0, g = 0, b = 0;
};

struct Lab {
  double L = 0, a = 0, b = 0;  // L* in [0, 100]; a*, b* roughly [-128, 127]
};

struct LCh {
  double L = 0, C = 0, h = 0;  // chroma C = |(a*, b*)|, hue angle h in degrees [0, 360)
};

// One dominant colour of a garment.
struct ColourShare {
  std::string name;     // from name_colour(), e.g. "navy"
  std::string hex;      // "#RRGGBB" of the cluster centre
  Lab lab;              // cluster centre
  double chroma = 0;    // C*ab of the centre
  double hue = 0;       // hue angle in degrees (meaningless for neutrals, still reported)
  bool neutral = false; // is_neutral_name(name)
  double share = 0;     // fraction of the garment's pixels in this cluster, in (0, 1]
  int64_t pixels = 0;   // pixels assigned to this cluster
};

// ---- conversions ------------------------------------------------------------------------------
double srgb_to_linear(double c01);   // IEC 61966-2-1 transfer function, c in [0, 1]
double linear_to_srgb(double c01);
Lab rgb_to_lab(RGB8 c);
Lab rgb_to_lab(double r01, double g01, double b01);
RGB8 lab_to_rgb(const Lab& lab);     // rounded and clamped to [0, 255]
LCh lab_to_lch(const Lab& lab);
std::string rgb_to_hex(RGB8 c);      // "#RRGGBB" (upper case)
// Parses "#RRGGBB" or "RRGGBB" (either case). Throws std::invalid_argument naming the bad text.
RGB8 hex_to_rgb(const std::string& hex);
double delta_e76(const Lab& x, const Lab& y);  // Euclidean distance in CIELAB
// CIE94 colour difference with the textile parameters (kL = 2, K1 = 0.048, K2 = 0.014), made
// symmetric by using the geometric mean chroma for the weights. Lightness counts half and chroma
// differences shrink for saturated colours, so the same fabric in light and in shade stays close.
double delta_e94_textiles(const Lab& x, const Lab& y);
// Smallest absolute difference of two hue angles, in [0, 180].
double hue_distance(double h1, double h2);

// ---- naming -----------------------------------------------------------------------------------
// The colour vocabulary, in a fixed order: black, charcoal, grey, silver, white, cream, beige, brown,
// olive, burgundy, red, pink, orange, yellow, green, teal, light blue, blue, navy, purple.
const std::vector<std::string>& colour_vocabulary();
std::string name_colour(const Lab& lab);
// Black, charcoal, grey, silver, white, cream, beige, brown: the names naming judges by lightness and
// chroma alone. (Which names count as neutral for outfit harmony is decided by outfit/data/rules.json.)
bool is_achromatic_name(const std::string& name);

// ---- dominant colours -------------------------------------------------------------------------
struct DominantColourOptions {
  int max_colours = 3;            // k of k-means, 1..8
  int max_samples = 8192;         // k-means runs on at most this many pixels (an even stride)
  int max_iterations = 30;        // Lloyd iterations
  double merge_delta_e = 10.0;    // centres closer than this (ΔE94, textiles) or with the same name are
                                  // merged: shading splits one fabric into light and dark clusters
  double min_share = 0.05;        // clusters below this share are folded into the nearest other one
  uint64_t seed = 0x6d32667063707021ull;  // k-means++ seeding (fixed: results are reproducible)
};

// Dominant colours of `pixels`, sorted by share (descending, ties by lightness). The shares are
// computed over all the pixels (every pixel assigned to its nearest final centre) and sum to 1.
// Empty input gives an empty result. Throws std::invalid_argument on bad options.
std::vector<ColourShare> dominant_colours(const std::vector<RGB8>& pixels,
                                          const DominantColourOptions& opt = {});

// The same for n pixels given as numbers into a table of their CIELAB values (float), e.g. the
// distinct colours of a photo converted once (PhotoColours below, extract_outfits): the result is
// dominant_colours' on the pixels when table[index[i]] holds rgb_to_lab's value (as float) of pixel i.
// Runs on the calling thread (no OpenMP): callers run many garments side by side.
struct LabF {
  float L = 0, a = 0, b = 0;
};
std::vector<ColourShare> dominant_colours(const uint32_t* index, size_t n, const LabF* table,
                                          const DominantColourOptions& opt = {});
// Throws std::invalid_argument on bad options (what dominant_colours checks first).
void check_dominant_colour_options(const DominantColourOptions& opt);

// The distinct colours of a photo's pixels, each converted to CIELAB once: mark() the colours
// (24-bit 0xRRGGBB; from several threads at once), then convert() numbers them in colour order and
// converts them over the threads; number() gives a marked colour's number into table().
class PhotoColours {
 public:
  PhotoColours();
  void mark(uint32_t rgb) {
    const uint64_t bit = 1ull << (rgb & 63);
    uint64_t& w = bits_[rgb >> 6];
    if (!(__atomic_load_n(&w, __ATOMIC_RELAXED) & bit)) __atomic_fetch_or(&w, bit, __ATOMIC_RELAXED);
  }
  void convert();
  uint32_t number(uint32_t rgb) const {
    const uint64_t below = bits_[rgb >> 6] & ((1ull << (rgb & 63)) - 1);
    return rank_[rgb >> 6] + (uint32_t)__builtin_popcountll(below);
  }
  const LabF* table() const { return table_.data(); }
  size_t size() const { return table_.size(); }

 private:
  pool::Array<uint64_t> bits_;   // [2^24 / 64]: colour marked (from the buffer pool: 2 MB)
  pool::Array<uint32_t> rank_;   // [2^24 / 64]: marked colours below the word
  pool::Array<LabF> table_;      // [marked colours], in colour order (a 12 MP photo's 240k: 2.9 MB, pooled)
};

// ColourShare for a single colour (share 1), e.g. a catalogue item's primary colour.
ColourShare describe_colour(RGB8 c);

}  // namespace m2fp
