// tests/outfit/test_colour.cpp: sRGB <-> CIELAB, colour names, dominant colours (k-means in CIELAB).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "outfit/colour.h"

namespace m2fp {
namespace {

void expect_lab(RGB8 c, double L, double a, double b, double tol, const char* label) {
  const Lab lab = rgb_to_lab(c);
  const double d = std::max({std::fabs(lab.L - L), std::fabs(lab.a - a), std::fabs(lab.b - b)});
  std::printf("  %-8s %s -> Lab (%.3f, %.3f, %.3f), expected (%.2f, %.2f, %.2f), max |diff| %.4f\n", label,
              rgb_to_hex(c).c_str(), lab.L, lab.a, lab.b, L, a, b, d);
  EXPECT_LE(d, tol) << label;
}

TEST(Colour, LabOfKnownColours) {
  // Reference values: CIE 1976 L*a*b*, D65, from the sRGB primaries (e.g. Lindbloom's calculator).
  expect_lab({255, 255, 255}, 100.0, 0.0, 0.0, 0.01, "white");
  expect_lab({0, 0, 0}, 0.0, 0.0, 0.0, 1e-9, "black");
  expect_lab({255, 0, 0}, 53.24, 80.09, 67.20, 0.01, "red");
  expect_lab({0, 255, 0}, 87.73, -86.18, 83.18, 0.01, "green");
  expect_lab({0, 0, 255}, 32.30, 79.19, -107.86, 0.01, "blue");
  expect_lab({128, 128, 128}, 53.59, 0.0, 0.0, 0.01, "grey");
  expect_lab({1, 1, 1}, 0.2742, 0.0, 0.0, 0.001, "near-black (linear segment)");
}

TEST(Colour, LabRoundTripIsExact) {
  // Every 13th level per channel plus the ends: Lab -> sRGB must give back the same bytes.
  int checked = 0, worst = 0;
  for (int r = 0; r <= 255; r = r == 255 ? 256 : std::min(255, r + 13))
    for (int g = 0; g <= 255; g = g == 255 ? 256 : std::min(255, g + 13))
      for (int b = 0; b <= 255; b = b == 255 ? 256 : std::min(255, b + 13)) {
        const RGB8 c{(uint8_t)r, (uint8_t)g, (uint8_t)b};
        const RGB8 back = lab_to_rgb(rgb_to_lab(c));
        worst = std::max({worst, std::abs(back.r - r), std::abs(back.g - g), std::abs(back.b - b)});
        ++checked;
      }
  std::printf("  round trip over %d colours: max |byte diff| %d\n", checked, worst);
  EXPECT_EQ(worst, 0);
}

TEST(Colour, LchAndHueDistance) {
  const LCh red = lab_to_lch(rgb_to_lab({255, 0, 0}));
  EXPECT_NEAR(red.C, std::hypot(80.09, 67.20), 0.02);
  EXPECT_NEAR(red.h, 39.99, 0.05);
  const LCh blue = lab_to_lch(rgb_to_lab({0, 0, 255}));
  EXPECT_NEAR(blue.h, 306.29, 0.05);
  EXPECT_DOUBLE_EQ(hue_distance(350, 10), 20);
  EXPECT_DOUBLE_EQ(hue_distance(10, 350), 20);
  EXPECT_DOUBLE_EQ(hue_distance(0, 180), 180);
  EXPECT_DOUBLE_EQ(hue_distance(90, 90), 0);
  EXPECT_DOUBLE_EQ(hue_distance(720 + 30, 10), 20);
}

TEST(Colour, HexParsingAndFormatting) {
  EXPECT_EQ(rgb_to_hex({31, 42, 68}), "#1F2A44");
  const RGB8 c = hex_to_rgb("#1f2a44");
  EXPECT_EQ(c.r, 31);
  EXPECT_EQ(c.g, 42);
  EXPECT_EQ(c.b, 68);
  EXPECT_EQ(rgb_to_hex(hex_to_rgb("A0B1C2")), "#A0B1C2");
  for (const char* bad : {"", "#", "#12345", "#1234567", "#GG0000", "navy"}) {
    try {
      hex_to_rgb(bad);
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("#RRGGBB"), std::string::npos) << e.what();
    }
  }
}

TEST(Colour, NamesOfCanonicalColours) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"#FF0000", "red"},        {"#C8102E", "red"},    {"#800020", "burgundy"}, {"#8B0000", "burgundy"},
      {"#FFC0CB", "pink"},       {"#FF69B4", "pink"},   {"#FFA500", "orange"},   {"#FF8C00", "orange"},
      {"#FFFF00", "yellow"},     {"#FFD700", "yellow"}, {"#808000", "olive"},    {"#556B2F", "olive"},
      {"#00FF00", "green"},      {"#008000", "green"},  {"#228B22", "green"},    {"#008080", "teal"},
      {"#40E0D0", "teal"},       {"#0000FF", "blue"},   {"#4169E1", "blue"},     {"#3B5A85", "blue"},
      {"#000080", "navy"},       {"#1F2A44", "navy"},   {"#87CEEB", "light blue"}, {"#ADD8E6", "light blue"},
      {"#800080", "purple"},     {"#8A2BE2", "purple"}, {"#8B4513", "brown"},    {"#6F4E37", "brown"},
      {"#D2B48C", "beige"},      {"#C3B091", "beige"},  {"#FFFDD0", "cream"},    {"#F5F5DC", "cream"},
      {"#000000", "black"},      {"#111111", "black"},  {"#36454F", "charcoal"}, {"#333333", "charcoal"},
      {"#808080", "grey"},       {"#C0C0C0", "silver"}, {"#FFFFFF", "white"},    {"#F8F8F8", "white"},
  };
  int wrong = 0;
  for (const auto& [hex, want] : cases) {
    const std::string got = name_colour(rgb_to_lab(hex_to_rgb(hex)));
    const LCh c = lab_to_lch(rgb_to_lab(hex_to_rgb(hex)));
    if (got != want) {
      ++wrong;
      std::printf("  %s (L %.1f C %.1f h %.1f): got %s, want %s\n", hex, c.L, c.C, c.h, got.c_str(), want);
    }
    EXPECT_EQ(got, want) << hex;
    EXPECT_NE(std::find(colour_vocabulary().begin(), colour_vocabulary().end(), got), colour_vocabulary().end());
  }
  std::printf("  %zu canonical colours, %d misnamed\n", cases.size(), wrong);
}

TEST(Colour, NeutralsAreJudgedByLightnessNotHue) {
  // Weakly tinted neutrals (chroma 4) at every hue: the name depends on L* only.
  const std::vector<std::pair<double, const char*>> by_L = {
      {8, "black"}, {18, "black"}, {30, "charcoal"}, {50, "grey"}, {72, "silver"}, {96, "white"}};
  for (const auto& [L, want] : by_L)
    for (int h = 0; h < 360; h += 15) {
      const double rad = h * 3.14159265358979 / 180.0;
      const Lab lab{L, 4.0 * std::cos(rad), 4.0 * std::sin(rad)};
      EXPECT_EQ(name_colour(lab), want) << "L " << L << " hue " << h;
      EXPECT_TRUE(is_achromatic_name(name_colour(lab)));
    }
  // Very dark colours read black whatever their hue unless strongly saturated.
  EXPECT_EQ(name_colour(Lab{10, 8, -12}), "black");
  EXPECT_EQ(name_colour(Lab{13, 47.5, -64.7}), "navy");  // #000080
}

// n pixels: a share of colour a, the rest colour b, with a deterministic +-3 jitter per channel.
std::vector<RGB8> two_colour_pixels(int n, double share_a, RGB8 a, RGB8 b) {
  std::vector<RGB8> px(n);
  const int na = static_cast<int>(std::lround(n * share_a));
  uint32_t s = 12345;
  auto jitter = [&](uint8_t v) {
    s = s * 1664525u + 1013904223u;
    const int d = static_cast<int>((s >> 24) % 7) - 3;
    return static_cast<uint8_t>(std::clamp(v + d, 0, 255));
  };
  for (int i = 0; i < n; ++i) {
    const RGB8 c = i < na ? a : b;
    px[i] = {jitter(c.r), jitter(c.g), jitter(c.b)};
  }
  // interleave like a striped garment: a deterministic shuffle
  for (int i = n - 1; i > 0; --i) {
    s = s * 1664525u + 1013904223u;
    std::swap(px[i], px[(s >> 8) % (i + 1)]);
  }
  return px;
}

TEST(DominantColours, FindsBothColoursOfATwoColourGarmentWithTheirShares) {
  for (int n : {97, 1237, 40001}) {  // below, around and far above max_samples (sub-sampled)
    const auto px = two_colour_pixels(n, 0.7, {31, 42, 68}, {248, 248, 248});
    const auto cs = dominant_colours(px);
    ASSERT_EQ(cs.size(), 2u) << "n " << n;
    std::printf("  n %5d: %s %s %.4f | %s %s %.4f\n", n, cs[0].name.c_str(), cs[0].hex.c_str(), cs[0].share,
                cs[1].name.c_str(), cs[1].hex.c_str(), cs[1].share);
    EXPECT_EQ(cs[0].name, "navy");
    EXPECT_EQ(cs[1].name, "white");
    EXPECT_NEAR(cs[0].share, std::lround(n * 0.7) / double(n), 1e-12);  // every pixel assigned exactly
    EXPECT_NEAR(cs[0].share + cs[1].share, 1.0, 1e-12);
    EXPECT_EQ(cs[0].pixels + cs[1].pixels, n);
    EXPECT_LT(delta_e76(cs[0].lab, rgb_to_lab({31, 42, 68})), 1.5);
    EXPECT_LT(delta_e76(cs[1].lab, rgb_to_lab({248, 248, 248})), 1.5);
    EXPECT_FALSE(cs[0].neutral);  // navy is not achromatic by lightness/chroma (rules.json may call it neutral)
    EXPECT_TRUE(cs[1].neutral);
  }
}

TEST(DominantColours, ThreeColoursAndSubSampling) {
  std::vector<RGB8> px;
  for (int i = 0; i < 5003; ++i) {
    const int m = i % 10;
    px.push_back(m < 5 ? RGB8{200, 16, 46} : m < 8 ? RGB8{46, 125, 50} : RGB8{242, 208, 75});
  }
  DominantColourOptions opt;
  opt.max_samples = 257;  // awkward, far below the pixel count
  opt.max_colours = 4;
  const auto cs = dominant_colours(px, opt);
  ASSERT_EQ(cs.size(), 3u);
  EXPECT_EQ(cs[0].name, "red");
  EXPECT_EQ(cs[1].name, "green");
  EXPECT_EQ(cs[2].name, "yellow");
  EXPECT_EQ(cs[0].pixels, 2503);  // i % 10 in 0..4 for i < 5003
  EXPECT_EQ(cs[1].pixels, 1500);
  EXPECT_EQ(cs[2].pixels, 1000);
}

TEST(DominantColours, MergesNearDuplicatesAndFoldsTinyClusters) {
  // Two shades of one grey 3 ΔE apart: one colour.
  std::vector<RGB8> px;
  for (int i = 0; i < 600; ++i) px.push_back(i % 2 ? RGB8{120, 120, 120} : RGB8{128, 128, 128});
  auto cs = dominant_colours(px);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].name, "grey");
  EXPECT_DOUBLE_EQ(cs[0].share, 1.0);
  // A 2 % speck of red on white: folded away (min_share 5 %), shares still sum to 1.
  px.clear();
  for (int i = 0; i < 1000; ++i) px.push_back(i < 20 ? RGB8{255, 0, 0} : RGB8{250, 250, 250});
  cs = dominant_colours(px);
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].name, "white");
  EXPECT_EQ(cs[0].pixels, 1000);
  // ... but kept when min_share allows it.
  DominantColourOptions keep;
  keep.min_share = 0.01;
  cs = dominant_colours(px, keep);
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[1].name, "red");
  EXPECT_EQ(cs[1].pixels, 20);
  // A single pixel, and a single colour: one cluster.
  EXPECT_EQ(dominant_colours({RGB8{1, 2, 3}}).size(), 1u);
  EXPECT_TRUE(dominant_colours({}).empty());
}

TEST(DominantColours, ShadingOfOneFabricIsOneColour) {
  // One fabric lit from 75 % to 100 %: k-means splits it, the ΔE94 (textiles) merge joins it again.
  for (const RGB8 base : {RGB8{200, 16, 46}, RGB8{245, 245, 245}, RGB8{47, 93, 168}, RGB8{20, 20, 20}}) {
    std::vector<RGB8> px;
    for (int i = 0; i < 3001; ++i) {
      const double light = 0.75 + 0.25 * (i % 101) / 100.0;
      px.push_back({static_cast<uint8_t>(std::lround(base.r * light)), static_cast<uint8_t>(std::lround(base.g * light)),
                    static_cast<uint8_t>(std::lround(base.b * light))});
    }
    DominantColourOptions opt;
    opt.max_colours = 4;
    const auto cs = dominant_colours(px, opt);
    std::printf("  %s shaded 75..100 %%: %zu colour(s), first %s %s\n", rgb_to_hex(base).c_str(), cs.size(),
                cs[0].name.c_str(), cs[0].hex.c_str());
    EXPECT_EQ(cs.size(), 1u) << rgb_to_hex(base);
  }
  EXPECT_LT(delta_e94_textiles(rgb_to_lab({200, 16, 46}), rgb_to_lab({150, 12, 35})), 10.0);
  EXPECT_GT(delta_e94_textiles(rgb_to_lab({31, 42, 68}), rgb_to_lab({47, 93, 168})), 10.0);  // navy vs blue
  EXPECT_GT(delta_e94_textiles(rgb_to_lab({128, 128, 128}), rgb_to_lab({248, 248, 248})), 10.0);
  EXPECT_DOUBLE_EQ(delta_e94_textiles(rgb_to_lab({1, 2, 3}), rgb_to_lab({1, 2, 3})), 0.0);
}

TEST(DominantColours, IsDeterministic) {
  const auto px = two_colour_pixels(20011, 0.45, {200, 16, 46}, {47, 93, 168});
  DominantColourOptions opt;
  opt.max_colours = 4;
  const auto a = dominant_colours(px, opt);
  const auto b = dominant_colours(px, opt);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].hex, b[i].hex);
    EXPECT_EQ(a[i].pixels, b[i].pixels);
    EXPECT_EQ(a[i].lab.L, b[i].lab.L);
  }
}

// Pixels given as numbers into a table of their colours' CIELAB values (PhotoColours, as
// extract_outfits gives them) cluster exactly as the pixels themselves: the same centres bit for bit,
// on many colours (more than the per-pixel path's cache holds) and on a few. (The pixels' refine
// loop, over 65536 of them, sums a cluster at a time; the numbered pixels' sums every cluster in
// registers, a block at a time: the same additions in the same order.)
TEST(DominantColours, NumberedPixelsGiveTheSameColoursAsThePixels) {
  for (int distinct : {5, 300000}) {
    std::vector<RGB8> px(200003);
    uint64_t state = 12345 + (uint64_t)distinct;
    for (RGB8& c : px) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const uint32_t v = (uint32_t)((state >> 33) % (uint64_t)distinct) * 2654435761u;
      c = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)((v & 0x3f) + 100)};
    }
    PhotoColours colours;
    for (const RGB8& c : px) colours.mark((uint32_t)c.r << 16 | (uint32_t)c.g << 8 | c.b);
    colours.convert();
    std::vector<uint32_t> numbers;
    for (const RGB8& c : px) {
      const uint32_t k = colours.number((uint32_t)c.r << 16 | (uint32_t)c.g << 8 | c.b);
      ASSERT_LT(k, colours.size());
      const Lab l = rgb_to_lab(c);
      ASSERT_EQ(colours.table()[k].L, (float)l.L);
      ASSERT_EQ(colours.table()[k].b, (float)l.b);
      numbers.push_back(k);
    }
    for (int k : {1, 2, 3, 6, 8}) {  // k-means with up to 1, 2, 3, 6 and 8 centres
      DominantColourOptions opt;
      opt.max_colours = k;
      const auto a = dominant_colours(px, opt);
      const auto b = dominant_colours(numbers.data(), numbers.size(), colours.table(), opt);
      ASSERT_EQ(a.size(), b.size()) << distinct << " colours, k " << k;
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].pixels, b[i].pixels);
        EXPECT_EQ(a[i].lab.L, b[i].lab.L);
        EXPECT_EQ(a[i].lab.a, b[i].lab.a);
        EXPECT_EQ(a[i].lab.b, b[i].lab.b);
        EXPECT_EQ(a[i].hex, b[i].hex);
      }
    }
  }
  EXPECT_TRUE(dominant_colours(nullptr, 0, nullptr).empty());
}

TEST(DominantColours, RejectsBadOptions) {
  DominantColourOptions o;
  o.max_colours = 0;
  EXPECT_THROW(dominant_colours({RGB8{}}, o), std::invalid_argument);
  o = {};
  o.max_colours = 9;
  EXPECT_THROW(dominant_colours({RGB8{}}, o), std::invalid_argument);
  o = {};
  o.min_share = 1.0;
  EXPECT_THROW(dominant_colours({RGB8{}}, o), std::invalid_argument);
  o = {};
  o.max_samples = 3;
  EXPECT_THROW(dominant_colours({RGB8{}}, o), std::invalid_argument);
}

}  // namespace
}  // namespace m2fp
