// tests/kernels/test_resize.cpp: bilinear resizes (F.interpolate, align_corners=False) of planes
// and of NHWC maps. Every SIMD path against the scalar reference at awkward sizes (1x1 and 13x17
// maps, up/down scales to and from size 1, the model's sizes), atol 1e-6 on O(1) data (the paths
// share taps and fma order: expect 0); properties of the reference; the threaded entry points
// for every ISA; resize_bilinear_nhwc_add bit for bit against a resize and an elementwise add.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/bilinear_taps.h"
#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

struct ResizeCase { int64_t H, W, oh, ow; };

std::vector<ResizeCase> resize_cases() {
  std::vector<ResizeCase> v;
  for (auto [H, W] : {std::pair<int64_t, int64_t>{13, 17}, {37, 29}})
    for (double fy : kFactors)
      for (double fx : kFactors) v.push_back({H, W, scaled(H, fy), scaled(W, fx)});
  v.push_back({1, 1, 5, 7});      // from size 1
  v.push_back({13, 17, 1, 1});    // to size 1
  v.push_back({1, 17, 3, 17});
  v.push_back({13, 1, 13, 4});
  v.push_back({2, 2, 1, 3});
  v.push_back({160, 264, 640, 1056});  // the model's x4 mask upsample
  v.push_back({160, 264, 80, 132});    // attention-mask downsample
  v.push_back({20, 33, 160, 264});
  return v;
}

std::string rc_str(const ResizeCase& c) {
  return std::to_string(c.H) + "x" + std::to_string(c.W) + "->" + std::to_string(c.oh) + "x" + std::to_string(c.ow);
}

TEST(Resize, PlaneSimdMatchesReference) {
  Rng rng(8);
  for (Isa isa : simd_isas()) {
    DiffLog log("resize plane " + isa_str(isa) + " vs ref");
    const kern::KernelTable& T = kern::table_for(isa);
    for (const ResizeCase& c : resize_cases()) {
      std::vector<float> src = rng.normals((size_t)(c.H * c.W));
      std::vector<float> want((size_t)(c.oh * c.ow)), got((size_t)(c.oh * c.ow), NAN);
      kern::ref::resize_bilinear_plane_rows(src.data(), c.H, c.W, want.data(), c.oh, c.ow, 0, c.oh);
      // Uneven row chunks, dst pointing at each chunk's first row.
      for (int64_t y0 = 0; y0 < c.oh;) {
        const int64_t y1 = std::min(c.oh, y0 + 1 + (y0 % 5));
        T.resize_bilinear_plane_rows(src.data(), c.H, c.W, got.data() + y0 * c.ow, c.oh, c.ow, y0, y1);
        y0 = y1;
      }
      EXPECT_TRUE(close("resize plane " + isa_str(isa) + " " + rc_str(c), got.data(), want.data(),
                        c.oh * c.ow, 1e-6, 0, &log));
    }
  }
}

TEST(Resize, ReferenceBasicProperties) {
  Rng rng(9);
  // Same size is an exact copy; a 1x1 source gives a constant (up to the weights' rounding).
  std::vector<float> src = rng.normals(13 * 17), out(13 * 17);
  kern::ref::resize_bilinear_plane_rows(src.data(), 13, 17, out.data(), 13, 17, 0, 13);
  EXPECT_TRUE(close("resize identity", out.data(), src.data(), 13 * 17, 0, 0));
  float one = 0.75f;
  std::vector<float> o2(5 * 7);
  kern::ref::resize_bilinear_plane_rows(&one, 1, 1, o2.data(), 5, 7, 0, 5);
  for (float v : o2) EXPECT_NEAR(v, 0.75f, 2e-7f);
  // x2 upsample of a ramp: interior outputs at (i + 0.5) / 2 - 0.5 of the input ramp.
  std::vector<float> ramp(8);
  for (int i = 0; i < 8; ++i) ramp[i] = (float)i;
  std::vector<float> up(16);
  kern::ref::resize_bilinear_plane_rows(ramp.data(), 1, 8, up.data(), 1, 16, 0, 1);
  EXPECT_EQ(up[0], 0.f);
  for (int i = 1; i < 15; ++i) EXPECT_NEAR(up[i], (i + 0.5) / 2 - 0.5, 1e-6) << i;
  EXPECT_EQ(up[15], 7.f);
}

TEST(Resize, NhwcMatchesReferenceAndPlanes) {
  Rng rng(10);
  std::vector<ResizeCase> cases;
  for (double fy : kFactors)
    for (double fx : {1.0 / 7.0, 1.0, 2.9}) cases.push_back({13, 17, scaled(13, fy), scaled(17, fx)});
  cases.push_back({1, 1, 3, 5});
  cases.push_back({13, 17, 1, 1});
  for (int64_t C : {1, 3, 13, 16, 127, 255, 256, 257}) {
    for (const ResizeCase& c : cases) {
      if (C > 16 && c.oh * c.ow > 200 && c.H * c.W != 1) continue;  // keep the big-C cases small
      std::vector<float> src = rng.normals((size_t)(c.H * c.W * C));
      std::vector<float> want((size_t)(c.oh * c.ow * C));
      kern::ref::resize_bilinear_nhwc_rows(src.data(), c.H, c.W, C, want.data(), c.oh, c.ow, 0, c.oh);
      // The NHWC reference equals the plane reference channel by channel, bit for bit.
      std::vector<float> plane((size_t)(c.H * c.W)), po((size_t)(c.oh * c.ow)), viaplanes(want.size());
      for (int64_t ch = 0; ch < C; ++ch) {
        for (int64_t p = 0; p < c.H * c.W; ++p) plane[p] = src[p * C + ch];
        kern::ref::resize_bilinear_plane_rows(plane.data(), c.H, c.W, po.data(), c.oh, c.ow, 0, c.oh);
        for (int64_t p = 0; p < c.oh * c.ow; ++p) viaplanes[p * C + ch] = po[p];
      }
      ASSERT_TRUE(close("resize nhwc ref vs planes C=" + std::to_string(C) + " " + rc_str(c),
                        want.data(), viaplanes.data(), (int64_t)want.size(), 0, 0));
      for (Isa isa : simd_isas()) {
        std::vector<float> got(want.size(), NAN);
        for (int64_t y0 = 0; y0 < c.oh;) {
          const int64_t y1 = std::min(c.oh, y0 + 2);
          kern::table_for(isa).resize_bilinear_nhwc_rows(src.data(), c.H, c.W, C, got.data() + y0 * c.ow * C,
                                                         c.oh, c.ow, y0, y1);
          y0 = y1;
        }
        EXPECT_TRUE(close("resize nhwc " + isa_str(isa) + " C=" + std::to_string(C) + " " + rc_str(c),
                          got.data(), want.data(), (int64_t)want.size(), 1e-6, 0));
      }
    }
  }
}

TEST(Resize, ThreadedEntryPoints) {
  Rng rng(11);
  const int64_t P = 5, H = 20, W = 33, oh = 77, ow = 131, C = 19;
  std::vector<float> src = rng.normals((size_t)(P * H * W)), want((size_t)(P * oh * ow));
  for (int64_t p = 0; p < P; ++p)
    kern::ref::resize_bilinear_plane_rows(src.data() + p * H * W, H, W, want.data() + p * oh * ow, oh, ow, 0, oh);
  std::vector<float> srcn = rng.normals((size_t)(H * W * C)), wantn((size_t)(oh * ow * C));
  kern::ref::resize_bilinear_nhwc_rows(srcn.data(), H, W, C, wantn.data(), oh, ow, 0, oh);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<float> got(want.size(), NAN), gotn(wantn.size(), NAN);
    kern::resize_bilinear_planes(src.data(), P, H, W, got.data(), oh, ow);
    kern::resize_bilinear_nhwc(srcn.data(), H, W, C, gotn.data(), oh, ow);
    EXPECT_TRUE(close("resize_bilinear_planes " + isa_str(isa), got.data(), want.data(), (int64_t)want.size(), 1e-6, 0));
    EXPECT_TRUE(close("resize_bilinear_nhwc " + isa_str(isa), gotn.data(), wantn.data(), (int64_t)wantn.size(), 1e-6, 0));
  }
}

// dst += resize(src) gives exactly resize_bilinear_nhwc into a buffer and dst[i] + buffer[i] (the
// pixel decoder's FPN step relies on it for byte-identical outputs), on every ISA, up and down,
// with channel counts that leave SIMD tails and output heights that split unevenly over threads.
TEST(Resize, NhwcAddIsResizeThenAdd) {
  Rng rng(7);
  const ResizeCase cases[] = {{1, 1, 3, 5}, {13, 17, 26, 34}, {9, 7, 4, 3}, {5, 6, 21, 19}};
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    for (const ResizeCase& c : cases)
      for (int64_t C : {256, 19}) {
        const std::vector<float> src = rng.normals((size_t)(c.H * c.W * C));
        const std::vector<float> dst0 = rng.normals((size_t)(c.oh * c.ow * C));
        std::vector<float> up(dst0.size()), want(dst0.size());
        kern::resize_bilinear_nhwc(src.data(), c.H, c.W, C, up.data(), c.oh, c.ow);
        for (size_t i = 0; i < want.size(); ++i) want[i] = dst0[i] + up[i];
        std::vector<float> got = dst0;
        kern::resize_bilinear_nhwc_add(src.data(), c.H, c.W, C, got.data(), c.oh, c.ow);
        EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
            << isa_str(isa) << " " << c.H << "x" << c.W << " -> " << c.oh << "x" << c.ow << " C=" << C;
      }
  }
}

}  // namespace

// resize_bilinear_window: uneven windows of rows and columns, the source given from the first row
// the window reads with a row stride wider than W, equal bit for bit to the reference plane resize
// (every path, the reference included); nothing outside the window is written. Besides the plane
// cases, post-processing's: rows of equal height (the vertical step the identity, written straight
// from the horizontal one) to its output width (853 -> 4000 columns: the right edge's blocks load
// masked) and a downscale by more than 2 (gathered blocks); the fifth window of each starts at column
// 0 and ends at the last (every block planned, ColumnTaps), the others at odd columns.
TEST(Resize, WindowMatchesPlaneRowsExactly) {
  Rng rng(12);
  std::vector<ResizeCase> cases = resize_cases();
  cases.push_back({9, 853, 9, 4000});
  cases.push_back({9, 100, 9, 13});
  cases.push_back({9, 61, 9, 61});
  cases.push_back({9, 61, 9, 48});  // x0.8: a block's taps reach into its second vector of inputs
  cases.push_back({160, 216, 640, 864});
  for (Isa isa : all_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    for (const ResizeCase& c : cases) {
      std::vector<float> src = rng.normals((size_t)(c.H * c.W));
      std::vector<float> want((size_t)(c.oh * c.ow));
      kern::ref::resize_bilinear_plane_rows(src.data(), c.H, c.W, want.data(), c.oh, c.ow, 0, c.oh);
      const float sy = kern::torch_linear_scale(c.H, c.oh);
      for (int w = 0; w < 5; ++w) {
        const int64_t y0 = (c.oh * (w % 4)) / 5, y1 = std::min(c.oh, y0 + 1 + (c.oh * (w % 4 + 1)) / 4);
        const int64_t x0 = w == 4 ? 0 : (c.ow * (3 - w)) / 7;
        const int64_t x1 = w == 4 ? c.ow : std::min(c.ow, x0 + 1 + (c.ow * (w + 2)) / 5);
        // only the source rows [r0, r1) the window reads, row stride W + 3
        const int64_t r0 = kern::torch_linear_tap(c.H, c.oh, sy, y0).i0;
        const int64_t r1 = kern::torch_linear_tap(c.H, c.oh, sy, y1 - 1).i1 + 1;
        const int64_t lds = c.W + 3, ldd = (x1 - x0) + 5;
        std::vector<float> part((size_t)((r1 - r0) * lds), NAN);
        for (int64_t r = r0; r < r1; ++r)
          std::copy(src.begin() + r * c.W, src.begin() + (r + 1) * c.W, part.begin() + (r - r0) * lds);
        std::vector<float> got((size_t)((y1 - y0) * ldd), -7.f);
        T.resize_bilinear_window(part.data(), lds, r0, c.H, c.W, got.data(), ldd, c.oh, c.ow, y0, y1, x0, x1);
        int64_t bad = 0;
        for (int64_t y = y0; y < y1; ++y) {
          for (int64_t x = x0; x < x1; ++x) {
            const float g = got[(size_t)((y - y0) * ldd + (x - x0))], e = want[(size_t)(y * c.ow + x)];
            bad += std::memcmp(&g, &e, sizeof g) != 0;
          }
          for (int64_t x = x1 - x0; x < ldd; ++x) bad += got[(size_t)((y - y0) * ldd + x)] != -7.f;
        }
        EXPECT_EQ(bad, 0) << "resize window " << isa_str(isa) << " " << rc_str(c) << " rows [" << y0 << ", " << y1
                          << ") columns [" << x0 << ", " << x1 << ")";
      }
    }
  }
}
