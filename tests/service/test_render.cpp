// tests/engine/test_render.cpp: palette, label colouring, overlay picture, legend, edge smoothing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/io.h"
#include "service/render.h"
#include "engine/image_test_util.h"

namespace m2fp::service {
namespace {

TEST(Palette, CihpTableThenVocColourMap) {
  const std::vector<Rgb> p = parsing_palette(256);
  EXPECT_EQ(p[0], (Rgb{0, 0, 0}));
  EXPECT_EQ(p[1], (Rgb{128, 0, 0}));
  EXPECT_EQ(p[2], (Rgb{255, 0, 0}));
  EXPECT_EQ(p[5], (Rgb{255, 85, 0}));
  EXPECT_EQ(p[13], (Rgb{0, 0, 255}));
  EXPECT_EQ(p[19], (Rgb{255, 170, 0}));
  std::set<Rgb> distinct(p.begin(), p.begin() + 20);
  EXPECT_EQ(distinct.size(), 20u) << "the 20 CIHP colours are distinct";
  // voc_palette == get_palette(256) of the LIP/SCHP tools, computed in Python from its definition.
  const auto j = nlohmann::json::parse(testutil::run_image_ref("voc-palette 256"));
  const std::vector<Rgb> voc = voc_palette(256);
  ASSERT_EQ(j.size(), 256u);
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(voc[i], (Rgb{j[i][0].get<uint8_t>(), j[i][1].get<uint8_t>(), j[i][2].get<uint8_t>()})) << i;
    if (i >= 20) {
      EXPECT_EQ(p[i], voc[i]) << i;
    }
  }
  EXPECT_EQ(voc[1], (Rgb{128, 0, 0}));
  EXPECT_EQ(voc[2], (Rgb{0, 128, 0}));
  EXPECT_EQ(parsing_palette(3).size(), 3u);
  EXPECT_THROW(parsing_palette(257), std::invalid_argument);
}

// A 64x48 parsing: background, a Hair (2) block, an UpperClothes (5) block, a Face (13) block,
// and one stray Pants (9) pixel inside the clothes.
Parsing make_parsing(int w, int h) {
  Parsing p;
  p.width = w;
  p.height = h;
  p.class_names = {"Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat",
                   "Socks", "Pants", "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm",
                   "Left-leg", "Right-leg", "Left-shoe", "Right-shoe", "Human"};
  p.labels.assign((size_t)w * h, 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t l = 0;
      if (x >= 20 && x < 44 && y >= 4 && y < 12) l = 2;
      if (x >= 24 && x < 40 && y >= 12 && y < 20) l = 13;
      if (x >= 16 && x < 48 && y >= 20 && y < 44) l = 5;
      p.labels[(size_t)y * w + x] = l;
    }
  p.labels[(size_t)30 * w + 30] = 9;
  Person person;
  person.bbox = BBox{16, 4, 48, 44};
  p.persons.push_back(person);
  return p;
}

Image random_photo(int w, int h) {
  std::mt19937 rng(11);
  Image img = Image::blank(w, h);
  for (auto& v : img.rgb) v = (uint8_t)rng();
  return img;
}

bool panel_has_colour(const Image& out, int x0, Rgb c) {
  for (int y = 0; y < out.height; ++y)
    for (int x = x0; x < out.width; ++x)
      if (out.row(y)[3 * x] == c[0] && out.row(y)[3 * x + 1] == c[1] && out.row(y)[3 * x + 2] == c[2]) return true;
  return false;
}

TEST(Render, ColorizeLabels) {
  const Parsing p = make_parsing(64, 48);
  const Image c = colorize_labels(p.labels, p.width, p.height);
  const std::vector<Rgb> pal = parsing_palette(256);
  for (int i = 0; i < p.width * p.height; ++i)
    for (int k = 0; k < 3; ++k) ASSERT_EQ(c.rgb[3 * i + k], pal[p.labels[i]][k]) << i;
  EXPECT_THROW(colorize_labels(p.labels, 63, 48), std::invalid_argument);
}

TEST(Render, OverlayLeavesBackgroundAndBlendsLabels) {
  const int w = 64, h = 48;
  const Parsing p = make_parsing(w, h);
  const Image photo = random_photo(w, h);
  RenderOptions opt;  // alpha 0.6, legend on, no boxes, no smoothing
  const Image out = render_parsing(photo, p, opt);
  ASSERT_GT(out.width, w) << "legend panel on the right";
  ASSERT_GE(out.height, h);
  const std::vector<Rgb> pal = parsing_palette(256);
  const int A = 154;  // round(0.6 * 256)
  int64_t bg = 0, blended = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t l = p.labels[(size_t)y * w + x];
      for (int k = 0; k < 3; ++k) {
        const int s = photo.row(y)[3 * x + k], d = out.row(y)[3 * x + k];
        if (l == 0) {
          ASSERT_EQ(d, s) << "background pixel changed at " << x << "," << y;
        } else {
          ASSERT_EQ(d, (s * (256 - A) + pal[l][k] * A + 128) >> 8) << x << "," << y;
        }
      }
      (l == 0 ? bg : blended)++;
    }
  std::printf("  %lld background pixels unchanged, %lld blended; canvas %dx%d for a %dx%d photo\n",
              (long long)bg, (long long)blended, out.width, out.height, w, h);
  // Legend: a swatch for every label present, none for absent ones, some dark text.
  for (int l : {2, 5, 9, 13}) EXPECT_TRUE(panel_has_colour(out, w, pal[l])) << "no swatch for label " << l;
  for (int l : {1, 3, 7, 19}) EXPECT_FALSE(panel_has_colour(out, w, pal[l])) << "swatch for absent label " << l;
  EXPECT_TRUE(panel_has_colour(out, w, Rgb{20, 20, 20})) << "no legend text";
  // Without the legend the picture is the photo's size.
  RenderOptions bare;
  bare.legend = false;
  const Image o2 = render_parsing(photo, p, bare);
  EXPECT_EQ(o2.width, w);
  EXPECT_EQ(o2.height, h);
  // alpha 0: the photo itself.
  bare.alpha = 0.f;
  EXPECT_EQ(render_parsing(photo, p, bare).rgb, photo.rgb);
  // A size mismatch is refused.
  EXPECT_THROW(render_parsing(random_photo(w + 1, h), p, opt), std::invalid_argument);
  bare.alpha = 1.5f;
  EXPECT_THROW(render_parsing(photo, p, bare), std::invalid_argument);
  // The picture encodes and can be inspected by hand.
  const std::vector<uint8_t> png = encode_png(out);
  EXPECT_GT(png.size(), 100u);
}

TEST(Render, PersonBoxesAndTallLegend) {
  const int w = 64, h = 48;
  Parsing p = make_parsing(w, h);
  // Many labels present: the legend is taller than the photo, the canvas grows downwards.
  for (int l = 1; l < 20; ++l) p.labels[(size_t)(46) * w + l] = (uint8_t)l;
  const Image photo = random_photo(w, h);
  RenderOptions opt;
  opt.person_boxes = true;
  const Image out = render_parsing(photo, p, opt);
  EXPECT_GT(out.height, h);
  // The box's left edge (x = 16..17 at mid-height) is drawn in the first box colour (white).
  EXPECT_EQ(out.row(30)[3 * 16], 255);
  EXPECT_EQ(out.row(30)[3 * 16 + 1], 255);
  EXPECT_EQ(out.row(30)[3 * 16 + 2], 255);
  // Far from the box and the labels, the photo is untouched.
  EXPECT_EQ(out.row(2)[3 * 2], photo.row(2)[3 * 2]);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::vector<uint8_t> v;
  uint8_t buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) v.insert(v.end(), buf, buf + n);
  std::fclose(f);
  return v;
}

// write_parsing_png and write_labels_color_png draw into the PNG encoder's rows and filter them in
// place (in strips over the threads for large pictures): their files are the bytes of the rendered
// pictures encoded as before, with a legend taller than the photo (the panel also below it) and
// person boxes, small and above the sizes where the threaded paths start (1 MP, 4 MiB of rows).
TEST(Render, WrittenPicturesAreTheRenderedOnesByteForByte) {
  const std::string dir = ::testing::TempDir();
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{64, 48}, {1500, 1001}}) {
    Parsing p = make_parsing(w, h);
    for (int l = 1; l < 20; ++l) p.labels[(size_t)(h - 2) * w + l] = (uint8_t)l;  // every label: a tall legend
    const Image photo = random_photo(w, h);
    RenderOptions opt;
    opt.person_boxes = true;
    write_parsing_png(dir + "/parsing.png", photo, p, opt);
    EXPECT_EQ(file_bytes(dir + "/parsing.png"), encode_png(render_parsing(photo, p, opt))) << w << "x" << h;
    opt.legend = false;
    write_parsing_png(dir + "/parsing.png", photo, p, opt);
    EXPECT_EQ(file_bytes(dir + "/parsing.png"), encode_png(render_parsing(photo, p, opt))) << w << "x" << h;
    write_labels_color_png(dir + "/labels_color.png", p.labels.data(), w, h);
    EXPECT_EQ(file_bytes(dir + "/labels_color.png"), encode_png(colorize_labels(p.labels, w, h))) << w << "x" << h;
  }
  EXPECT_THROW(write_labels_color_png(dir + "/x.png", nullptr, 4, 4), std::invalid_argument);
  EXPECT_THROW(write_parsing_png(dir + "/x.png", random_photo(65, 48), make_parsing(64, 48)), std::invalid_argument);
}

TEST(Render, SmoothEdgesRemovesStrayPixelsOnly) {
  const int w = 64, h = 48;
  const Parsing p = make_parsing(w, h);
  const std::vector<uint8_t> s = smooth_label_edges(p.labels.data(), w, h);
  EXPECT_EQ(s[(size_t)30 * w + 30], 5) << "stray Pants pixel inside the clothes";
  int changed = 0;
  for (size_t i = 0; i < s.size(); ++i) changed += s[i] != p.labels[i];
  std::printf("  smoothing changed %d of %d pixels\n", changed, w * h);
  // Straight edges and interiors stay; only the stray pixel and rectangle corners may change.
  EXPECT_LE(changed, 1 + 4 * 4);
  EXPECT_EQ(s[(size_t)30 * w + 16], 5);  // on the clothes' straight left edge
  EXPECT_EQ(s[(size_t)30 * w + 15], 0);
  // A one-pixel spur sticking out of a region is removed.
  std::vector<uint8_t> spur((size_t)9 * 9, 0);
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 4; ++x) spur[(size_t)y * 9 + x] = 3;
  spur[(size_t)4 * 9 + 4] = 3;
  EXPECT_EQ(smooth_label_edges(spur.data(), 9, 9)[(size_t)4 * 9 + 4], 0);
  // Rendering with smoothing on colours the stray pixel as clothes.
  RenderOptions opt;
  opt.legend = false;
  opt.smooth_edges = true;
  const Image photo = random_photo(w, h);
  const Image out = render_parsing(photo, p, opt);
  const Rgb c5 = parsing_palette(6)[5];
  const int A = 154;
  EXPECT_EQ(out.row(30)[3 * 30], (photo.row(30)[3 * 30] * (256 - A) + c5[0] * A + 128) >> 8);
}

TEST(Text, DrawsInsideItsBox) {
  Image img = Image::blank(200, 40, 255, 255, 255);
  const std::string t = "Hair 12.5%";
  const int tw = text_width(t, 2), th = text_height(2);
  EXPECT_GT(tw, 40);
  draw_text(img, 10, 5, t, Rgb{0, 0, 0}, 2);
  int ink = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (img.row(y)[3 * x] == 0) {
        ++ink;
        EXPECT_GE(x, 10);
        EXPECT_LT(x, 10 + tw);
        EXPECT_GE(y, 5);
        EXPECT_LT(y, 5 + th);
      }
  EXPECT_GT(ink, 50);
  // Non-ASCII and control bytes are drawn as '?', never read out of the glyph table.
  draw_text(img, 0, 0, std::string("\xc3\xa9\x01\x7f"), Rgb{0, 0, 0}, 1);
  // Clipping: drawing partly outside the image is safe.
  draw_text(img, 190, 35, "clipped text", Rgb{0, 0, 0}, 3);
  draw_text(img, -50, -10, "clipped text", Rgb{0, 0, 0}, 3);
}

}  // namespace
}  // namespace m2fp::service
