// tests/engine/test_preprocess.cpp: pre-processing against the upstream pipeline run in Python
// (PIL resize, torch ToTensor()*255 and normalisation, center_to_target_size_test transcribed) by
// tests/engine/image_ref.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/preprocess.h"
#include "image_test_util.h"

namespace m2fp {
namespace {

using testutil::read_bytes;
using testutil::read_npy;
using testutil::shell_quote;

Image load(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  return decode_image(b.data(), b.size());
}

float max_abs_diff(const float* a, const float* b, int64_t n, int64_t* at = nullptr) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (!(d <= m)) {
      m = d;
      if (at) *at = i;
    }
  }
  return m;
}

TEST(PreprocessShape, MatchesUpstreamFormulaOnManySizes) {
  std::vector<std::array<int, 4>> cases;  // h, w, short, max
  for (int h : {1, 2, 31, 32, 33, 480, 640, 641, 1333, 1334, 4000})
    for (int w : {1, 3, 32, 480, 639, 640, 1000, 1333, 2000, 10000})
      for (auto sm : {std::array<int, 2>{640, 1333}, {800, 1333}, {512, 512}, {20, 100000}})
        cases.push_back({h, w, sm[0], sm[1]});
  std::mt19937 rng(3);
  for (int i = 0; i < 1500; ++i)
    cases.push_back({1 + (int)(rng() % 5000), 1 + (int)(rng() % 5000), 16 + (int)(rng() % 1200),
                     64 + (int)(rng() % 3000)});
  // Scale factors whose products land near .5 boundaries.
  for (int h = 100; h < 140; ++h) cases.push_back({h, 3 * h + 1, 640, 1333});
  testutil::TempDir dir;
  {
    std::ofstream f(dir / "shapes.txt");
    for (auto& c : cases) f << c[0] << " " << c[1] << " " << c[2] << " " << c[3] << "\n";
  }
  std::istringstream py(testutil::run_image_ref("shapes " + shell_quote(dir / "shapes.txt")));
  int mismatches = 0, zero = 0;
  for (auto& c : cases) {
    int nh = -1, nw = -1;
    py >> nh >> nw;
    ASSERT_TRUE(py) << "python printed fewer lines than cases";
    const auto [h, w] = multi_person_resize_shape(c[0], c[1], c[2], c[3]);
    if (h != nh || w != nw) {
      ++mismatches;
      ADD_FAILURE() << "h=" << c[0] << " w=" << c[1] << " short=" << c[2] << " max=" << c[3] << ": ours "
                    << h << "x" << w << ", python " << nh << "x" << nw;
    }
    zero += (h == 0 || w == 0);
  }
  std::printf("  %zu shapes compared with the Python formula: %d mismatches (%d with a zero side)\n",
              cases.size(), mismatches, zero);
  EXPECT_EQ(multi_person_resize_shape(480, 640, 640, 1333), std::make_pair(640, 853));
  EXPECT_EQ(multi_person_resize_shape(640, 640, 640, 1333), std::make_pair(640, 640));
  EXPECT_EQ(multi_person_resize_shape(300, 2000, 640, 1333), std::make_pair(200, 1333));  // clamped
  EXPECT_THROW(multi_person_resize_shape(0, 10, 640, 1333), std::invalid_argument);
}

class PreprocessParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new testutil::TempDir(); }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static testutil::TempDir* dir_;
};
testutil::TempDir* PreprocessParity::dir_ = nullptr;

// Multi-person on a 211x137 photo at scale factors 1/7, 0.37, 1, 1.6, 2.9 (short edge 137 -> 20,
// 51, 137, 219, 397), plus the default 640/1333 on it (x4.67) and on a 900x700 photo (x0.914).
TEST_F(PreprocessParity, MultiPersonMatchesPilAndTorch) {
  struct Photo { std::string file; int w, h; std::vector<std::string> cases; };
  const std::vector<Photo> photos = {
      {"photo_211x137.png", 211, 137, {"20:100000", "51:100000", "137:100000", "219:100000", "397:100000", "640:1333"}},
      {"photo_900x700.png", 900, 700, {"640:1333"}}};
  for (const Photo& ph : photos) {
    const std::string png = (*dir_) / ph.file;
    testutil::run_image_ref("textured " + shell_quote(png) + " " + std::to_string(ph.w) + " " +
                            std::to_string(ph.h) + " 5");
    const std::string sub = (*dir_) / ("multi_" + ph.file);
    std::filesystem::create_directories(sub);
    std::string args = "multi " + shell_quote(sub) + " " + shell_quote(png);
    for (const auto& c : ph.cases) args += " " + c;
    testutil::run_image_ref(args);
    const Image img = load(png);
    for (const auto& c : ph.cases) {
      const int short_edge = std::stoi(c.substr(0, c.find(':'))), max_size = std::stoi(c.substr(c.find(':') + 1));
      const std::string tag = sub + "/multi_" + std::to_string(short_edge) + "_" + std::to_string(max_size);
      const auto resized = read_npy(tag + "_resized.npy");  // uint8 [nh, nw, 3] from PIL
      const auto input = read_npy(tag + "_input.npy");      // float32 [3, nh, nw]
      const auto image = read_npy(tag + "_image.npy");      // float32 [Hp, Wp, 3]
      const auto t0 = std::chrono::steady_clock::now();
      const Preprocessed p = preprocess_multi_person(img, short_edge, max_size);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ASSERT_EQ(p.nh, resized.shape[0]) << c;
      ASSERT_EQ(p.nw, resized.shape[1]) << c;
      ASSERT_EQ(p.input.shape, input.shape) << c;
      ASSERT_EQ(p.image.shape, image.shape) << c;
      EXPECT_EQ(p.image.layout, Layout::HWC);
      EXPECT_EQ(p.Hp % 32, 0);
      EXPECT_EQ(p.Wp % 32, 0);
      EXPECT_EQ(p.crop_box.x1, p.nw);
      EXPECT_EQ(p.crop_box.y1, p.nh);
      // The resized bytes themselves.
      const Image ours = resize_image_pil(img, p.nw, p.nh);
      int max_u8 = 0;
      int64_t off = 0;
      for (size_t i = 0; i < ours.rgb.size(); ++i) {
        const int d = std::abs((int)ours.rgb[i] - (int)resized.u8()[i]);
        off += d != 0;
        max_u8 = std::max(max_u8, d);
      }
      const float d_in = max_abs_diff(p.input.data(), input.f32(), input.numel());
      const float d_im = max_abs_diff(p.image.data(), image.f32(), image.numel());
      std::printf("  %s %-11s (x%.3f) -> %dx%d pad %dx%d: resized u8 max diff %d (%lld px off), input max diff %g, "
                  "normalised max diff %g, %.1f ms\n",
                  ph.file.c_str(), c.c_str(), (double)p.nh / ph.h, p.nw, p.nh, p.Wp, p.Hp, max_u8, (long long)off,
                  d_in, d_im, ms);
      EXPECT_LE(max_u8, 1) << c;
      EXPECT_EQ(max_u8, 0) << c << ": PIL's resize is expected bit-exact";
      EXPECT_EQ(d_in, 0.f) << c;
      EXPECT_EQ(d_im, 0.f) << c;
      // Padding is exactly zero.
      for (int y = 0; y < p.Hp; ++y)
        for (int x = (y < p.nh ? p.nw : 0); x < p.Wp; ++x)
          for (int ch = 0; ch < 3; ++ch) ASSERT_EQ(p.image.data()[((size_t)y * p.Wp + x) * 3 + ch], 0.f);
    }
  }
}

TEST_F(PreprocessParity, SinglePersonMatchesUpstreamTranscription) {
  // Target 384x512 (w x h, LIP's input_single_human.sizes[0]); photos h,w: smaller, taller, wider,
  // larger both ways (wide and tall), square larger (upstream fails), the pad_left == pad_top == 0
  // quirk (512x383 and 511x384 stay unpadded), exactly the target, odd margins.
  const std::vector<std::string> sizes = {"100,80", "101,81", "600,300", "300,600", "2000,1000", "1000,2000",
                                          "700,700", "512,383", "511,384", "512,384", "513,385", "50,384",
                                          "512,20", "7,3"};
  const std::string sub = (*dir_) / "single";
  std::filesystem::create_directories(sub);
  std::string args = "single " + shell_quote(sub) + " 384 512";
  for (const auto& s : sizes) args += " " + s;
  const std::string js = testutil::run_image_ref(args);
  for (const auto& s : sizes) {
    const int h = std::stoi(s.substr(0, s.find(','))), w = std::stoi(s.substr(s.find(',') + 1));
    const std::string tag = sub + "/single_" + std::to_string(w) + "x" + std::to_string(h);
    const auto centred = read_npy(tag + "_centred.npy");  // uint8 [out_h, out_w, 3]
    const auto image = read_npy(tag + "_image.npy");      // float32 [Hp, Wp, 3]
    const Image img = load(tag + ".png");
    const CenterPlan plan = single_person_plan(h, w, 384, 512);
    const Preprocessed p = preprocess_single_person(img, 384, 512);
    ASSERT_EQ(p.nh, centred.shape[0]) << s;
    ASSERT_EQ(p.nw, centred.shape[1]) << s;
    ASSERT_EQ(p.image.shape, image.shape) << s;
    EXPECT_EQ(plan.out_h, p.nh);
    EXPECT_EQ(plan.out_w, p.nw);
    int max_u8 = 0;
    for (int64_t i = 0; i < (int64_t)p.nh * p.nw * 3; ++i) {
      const int64_t c = i % 3, px = i / 3;
      const float v = p.input.data()[c * p.nh * p.nw + px];
      max_u8 = std::max(max_u8, std::abs((int)v - (int)centred.u8()[i]));
    }
    const float d_im = max_abs_diff(p.image.data(), image.f32(), image.numel());
    // The box as JSON text appears in the python output for this size.
    const std::string box = "\"box\": [" + std::to_string(p.crop_box.x0) + ", " + std::to_string(p.crop_box.y0) +
                            ", " + std::to_string(p.crop_box.x1) + ", " + std::to_string(p.crop_box.y1) + "]";
    const std::string key = "{\"h\": " + std::to_string(h) + ", \"w\": " + std::to_string(w) + ",";
    const size_t at = js.find(key);
    ASSERT_NE(at, std::string::npos) << s;
    const std::string entry = js.substr(at, js.find('}', at) - at);
    const bool upstream_fails = entry.find("\"upstream_fails\": true") != std::string::npos;
    std::printf("  photo %4dx%-4d -> new %dx%d %s, input %dx%d pad %dx%d, box [%d %d %d %d]%s: u8 max diff %d, "
                "normalised max diff %g\n",
                w, h, plan.new_w, plan.new_h, plan.padded ? "padded  " : "UNPADDED", p.nw, p.nh, p.Wp, p.Hp,
                p.crop_box.x0, p.crop_box.y0, p.crop_box.x1, p.crop_box.y1,
                upstream_fails ? " (upstream raises here)" : "", max_u8, d_im);
    EXPECT_NE(entry.find(box), std::string::npos) << s << ": ours " << box << ", python " << entry;
    EXPECT_EQ(max_u8, 0) << s;
    EXPECT_EQ(d_im, 0.f) << s;
    EXPECT_EQ(upstream_fails, h == w && h > 512) << s;
  }
  // The quirk cases really are unpadded.
  EXPECT_FALSE(single_person_plan(512, 383, 384, 512).padded);
  EXPECT_FALSE(single_person_plan(511, 384, 384, 512).padded);
  EXPECT_TRUE(single_person_plan(510, 384, 384, 512).padded);
}

TEST(PreprocessErrors, ElongatedAndEmptyPhotos) {
  const Image line = Image::blank(5000, 1, 10, 20, 30);
  try {
    preprocess_multi_person(line, 640, 1333);
    ADD_FAILURE() << "5000x1 accepted";
  } catch (const ImageError& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("5000x1"), std::string::npos);
  }
  EXPECT_THROW(preprocess_single_person(Image::blank(1, 10000), 384, 512), ImageError);
  EXPECT_THROW(preprocess_multi_person(Image{}, 640, 1333), std::invalid_argument);
  EXPECT_THROW(preprocess_single_person(Image{}, 384, 512), std::invalid_argument);
  // A 1-pixel-high but not degenerate photo works: 1x3 -> 640x1920 clamped to 444x1333.
  const Preprocessed p = preprocess_multi_person(Image::blank(3, 1, 255, 0, 128), 640, 1333);
  EXPECT_EQ(p.nh, 444);
  EXPECT_EQ(p.nw, 1333);
  EXPECT_EQ(p.Hp, 448);
  EXPECT_EQ(p.Wp, 1344);
  // Every pixel of a uniform photo maps to the same normalised value.
  const float r = (255.f - kPixelMean[0]) / kPixelStd[0];
  EXPECT_EQ(p.image.data()[0], r);
  EXPECT_EQ(p.image.data()[((size_t)443 * 1344 + 1332) * 3], r);
}

}  // namespace
}  // namespace m2fp
