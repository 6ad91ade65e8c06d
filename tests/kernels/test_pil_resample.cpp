// tests/kernels/test_pil_resample.cpp: PIL's bilinear resampling of 8-bit images. The
// coefficient tables; both passes of every SIMD path against the scalar reference, exactly
// (integer arithmetic); the threaded resize_pil_bilinear_u8 for every ISA against the composition
// of the reference passes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

TEST(PilResample, CoefficientTables) {
  for (int64_t in : {1, 2, 7, 13, 342, 548, 1000}) {
    for (double f : {1.0 / 7.0, 0.37, 1.0, 1.6, 2.9}) {
      const int64_t out = scaled(in, f);
      std::vector<int32_t> b, k;
      const int K = kern::pil_bilinear_coeffs(in, out, &b, &k);
      const double support = std::max(1.0, (double)in / (double)out);
      ASSERT_EQ(K, (int)std::ceil(support) * 2 + 1) << in << "->" << out;
      ASSERT_EQ(b.size(), (size_t)(2 * out));
      ASSERT_EQ(k.size(), (size_t)(out * K));
      for (int64_t i = 0; i < out; ++i) {
        const int32_t xmin = b[2 * i], cnt = b[2 * i + 1];
        ASSERT_GE(xmin, 0);
        ASSERT_GE(cnt, 1);
        ASSERT_LE(xmin + cnt, in) << in << "->" << out << " i=" << i;
        int64_t s = 0;
        for (int t = 0; t < K; ++t) {
          if (t >= cnt) {
            ASSERT_EQ(k[i * K + t], 0);
          }
          ASSERT_GE(k[i * K + t], 0);
          s += k[i * K + t];
        }
        // Normalised weights, each rounded: the sum is 2^22 up to the rounding of cnt terms.
        ASSERT_LE(std::llabs(s - (1 << kern::kPilPrecisionBits)), cnt) << in << "->" << out << " i=" << i;
      }
    }
  }
  // Same size: every output is exactly its input pixel.
  std::vector<int32_t> b, k;
  const int K = kern::pil_bilinear_coeffs(9, 9, &b, &k);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(b[2 * i], i);
    EXPECT_EQ(k[i * K], 1 << kern::kPilPrecisionBits);
  }
  EXPECT_THROW(kern::pil_bilinear_coeffs(0, 5, &b, &k), std::invalid_argument);
  EXPECT_THROW(kern::pil_bilinear_coeffs(5, 0, &b, &k), std::invalid_argument);
  EXPECT_THROW(kern::pil_bilinear_coeffs(5, 5, nullptr, &k), std::invalid_argument);
}

TEST(PilResample, PassesMatchReference) {
  Rng rng(12);
  for (Isa isa : simd_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    int cases = 0;
    for (int ch = 1; ch <= 4; ++ch) {
      // 40 x 700: whole blocks of rows (16 lanes) in one call and many tiles of output pixels.
      for (auto [H, W] : {std::pair<int64_t, int64_t>{1, 1}, {13, 17}, {37, 53}, {5, 301}, {40, 700}}) {
        for (double f : kFactors) {
          const int64_t ow = scaled(W, f), oh = scaled(H, f);
          std::vector<uint8_t> src = rng.bytes((size_t)(H * W * ch));
          // Saturated content exercises the clip (weights sum slightly above 2^22).
          for (size_t i = 0; i < src.size() / 3; ++i) src[i] = 255;
          std::vector<int32_t> xb, xk, yb, yk;
          const int kx = kern::pil_bilinear_coeffs(W, ow, &xb, &xk);
          const int ky = kern::pil_bilinear_coeffs(H, oh, &yb, &yk);
          std::vector<uint8_t> hw((size_t)(H * ow * ch)), hg(hw.size(), 0xAB);
          kern::ref::pil_resample_h_u8(src.data(), W, ch, hw.data(), ow, xb.data(), xk.data(), kx, 0, H);
          for (int64_t y0 = 0; y0 < H;) {  // uneven row chunks
            const int64_t y1 = std::min(H, y0 + 1 + y0 % 3);
            T.pil_resample_h_u8(src.data(), W, ch, hg.data(), ow, xb.data(), xk.data(), kx, y0, y1);
            y0 = y1;
          }
          const std::string what = isa_str(isa) + " ch=" + std::to_string(ch) + " " + std::to_string(H) + "x" +
                                   std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow);
          ASSERT_TRUE(same_bytes("pil_resample_h " + what, hg.data(), hw.data(), (int64_t)hw.size()));
          // and in one call from row 1 (blocks of rows that start off the first row and end in a partial one)
          std::fill(hg.begin(), hg.end(), 0xAB);
          if (H > 1) T.pil_resample_h_u8(src.data(), W, ch, hg.data(), ow, xb.data(), xk.data(), kx, 1, H);
          ASSERT_TRUE(same_bytes("pil_resample_h (rows 1..H) " + what, hg.data() + ow * ch, hw.data() + ow * ch,
                                 (int64_t)hw.size() - ow * ch));
          for (int64_t i = 0; i < (H > 1 ? ow * ch : 0); ++i) ASSERT_EQ(hg[(size_t)i], 0xAB) << "row 0 written " << what;
          // vertical pass on the horizontal result (the W of that image is ow)
          std::vector<uint8_t> vw((size_t)(oh * ow * ch)), vg(vw.size(), 0xCD);
          kern::ref::pil_resample_v_u8(hw.data(), ow, ch, vw.data(), yb.data(), yk.data(), ky, 0, oh);
          for (int64_t y0 = 0; y0 < oh;) {
            const int64_t y1 = std::min(oh, y0 + 2);
            T.pil_resample_v_u8(hw.data(), ow, ch, vg.data(), yb.data(), yk.data(), ky, y0, y1);
            y0 = y1;
          }
          ASSERT_TRUE(same_bytes("pil_resample_v " + what, vg.data(), vw.data(), (int64_t)vw.size()));
          ++cases;
        }
      }
    }
    std::printf("  [pil_resample %s vs ref] %d cases, max difference 0 levels\n", isa_str(isa).c_str(), cases);
  }
}

// resize_pil_bilinear_u8 (dispatch.cpp) = PIL's ImagingResampleInner: horizontal pass over the
// input rows the vertical pass reads, then the vertical pass; checked against that composition.
TEST(PilResample, ThreadedResizeMatchesComposition) {
  Rng rng(13);
  for (auto [H, W, oh, ow, ch] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int>{342, 548, 640, 1025, 3},
                                  {37, 53, 5, 8, 1}, {1, 1, 3, 2, 3}, {40, 30, 40, 30, 4}, {64, 64, 9, 200, 2}}) {
    std::vector<uint8_t> src = rng.bytes((size_t)(H * W * ch));
    std::vector<int32_t> xb, xk, yb, yk;
    const int kx = kern::pil_bilinear_coeffs(W, ow, &xb, &xk);
    const int ky = kern::pil_bilinear_coeffs(H, oh, &yb, &yk);
    std::vector<uint8_t> tmp((size_t)(H * ow * ch)), want((size_t)(oh * ow * ch));
    kern::ref::pil_resample_h_u8(src.data(), W, ch, tmp.data(), ow, xb.data(), xk.data(), kx, 0, H);
    kern::ref::pil_resample_v_u8(tmp.data(), ow, ch, want.data(), yb.data(), yk.data(), ky, 0, oh);
    for (Isa isa : all_isas()) {
      ScopedIsa s(isa);
      std::vector<uint8_t> got(want.size(), 0x5A);
      kern::resize_pil_bilinear_u8(src.data(), H, W, ch, got.data(), oh, ow);
      EXPECT_TRUE(same_bytes("resize_pil_bilinear_u8 " + isa_str(isa) + " " + std::to_string(H) + "x" +
                                 std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow) +
                                 " ch=" + std::to_string(ch),
                             got.data(), want.data(), (int64_t)want.size()));
      // the caller's scratch (garbage in it, sized by resize_pil_bilinear_u8_scratch_bytes)
      std::vector<uint8_t> scratch(kern::resize_pil_bilinear_u8_scratch_bytes(H, ch, ow) + 1, 0xA7), got2(want.size(), 0x5A);
      kern::resize_pil_bilinear_u8(src.data(), H, W, ch, got2.data(), oh, ow, scratch.data());
      EXPECT_TRUE(same_bytes("resize_pil_bilinear_u8 with scratch " + isa_str(isa) + " " + std::to_string(H) + "x" +
                                 std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow),
                             got2.data(), want.data(), (int64_t)want.size()));
      EXPECT_EQ(scratch.back(), 0xA7) << "wrote past the scratch";
    }
  }
  uint8_t px[3] = {1, 2, 3}, out[3];
  EXPECT_THROW(kern::resize_pil_bilinear_u8(px, 1, 1, 3, out, 0, 1), std::invalid_argument);
}

}  // namespace
