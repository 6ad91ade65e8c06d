// tests/kernels/test_convert.cpp: fp32 -> bfloat16 rounding (round_bf16), the bf16 residual add
// (add_bf16) and the LayerNorm that
// writes bfloat16 copies (layernorm_rows_bf16). The reference against hand-worked bit patterns
// (nearest even at the ties, overflow to infinity, NaNs kept NaN with the quiet bit); every SIMD
// path bit for bit against the reference at every tail length, specials included; the threaded
// entry points on every ISA bit for bit against layernorm_rows and the reference rounding.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

float bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t ref_round(float x) {
  uint16_t y;
  kern::ref::round_bf16(&x, nullptr, &y, 1);
  return y;
}

TEST(RoundBf16, ReferenceBitPatterns) {
  EXPECT_EQ(0x3f80, ref_round(1.f));
  EXPECT_EQ(0x3f80, ref_round(bits(0x3f808000u)));  // tie, lower is even: down
  EXPECT_EQ(0x3f82, ref_round(bits(0x3f818000u)));  // tie, lower is odd: up
  EXPECT_EQ(0x3f81, ref_round(bits(0x3f808001u)));  // above the tie: up
  EXPECT_EQ(0x3f80, ref_round(bits(0x3f807fffu)));  // below the tie: down
  EXPECT_EQ(0xbf81, ref_round(bits(0xbf80ffffu)));  // negative: by magnitude
  EXPECT_EQ(0x7f80, ref_round(bits(0x7f7fffffu)));  // the largest float rounds to infinity
  EXPECT_EQ(0x7f80, ref_round(bits(0x7f800000u)));  // infinities stay
  EXPECT_EQ(0xff80, ref_round(bits(0xff800000u)));
  EXPECT_EQ(0x7fc0, ref_round(bits(0x7fc00000u)));  // quiet NaN
  EXPECT_EQ(0x7fc0, ref_round(bits(0x7f800001u)));  // signalling NaN (low payload): quieted, not inf
  EXPECT_EQ(0xffff, ref_round(bits(0xffffffffu)));  // NaN with all bits: no carry into the sign
  EXPECT_EQ(0x0000, ref_round(0.f));
  EXPECT_EQ(0x8000, ref_round(-0.f));
  EXPECT_EQ(0x0000, ref_round(bits(0x00008000u)));  // subnormal tie, lower even: down
  EXPECT_EQ(0x0002, ref_round(bits(0x00018000u)));  // subnormal tie, lower odd: up
}

// Lengths around each path's steps of 2W (16 and 32 values) and their tails.
constexpr int64_t kTailLengths[] = {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 1000, 4099};

// Random values with the specials sprinkled in, some exactly at ties.
std::vector<float> awkward_values(Rng& rng, size_t n) {
  std::vector<float> v = rng.normals(n, 0.f, 3.f);
  const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7f7fffffu,
                               0x00000001u, 0x80008000u, 0x3f808000u, 0x3f818000u, 0x00000000u, 0x80000000u};
  for (size_t i = 0; i < n; i += 3) {
    uint32_t u;
    std::memcpy(&u, &v[i], sizeof u);
    if (i % 7 == 0) u = specials[(i / 7) % (sizeof specials / sizeof specials[0])];
    else u = (u & 0xffff0000u) | 0x8000u;  // a tie
    std::memcpy(&v[i], &u, sizeof u);
  }
  return v;
}

TEST(RoundBf16, SimdMatchesReferenceBitForBit) {
  Rng rng(11);
  for (Isa isa : simd_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    for (int64_t n : kTailLengths) {
      const std::vector<float> x = awkward_values(rng, (size_t)n + 1), a = awkward_values(rng, (size_t)n + 1);
      for (bool with_a : {false, true}) {
        std::vector<uint16_t> want((size_t)n + 1, 0xabcd), got((size_t)n + 1, 0xabcd);
        kern::ref::round_bf16(x.data(), with_a ? a.data() : nullptr, want.data(), n);
        T.round_bf16(x.data(), with_a ? a.data() : nullptr, got.data(), n);
        EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(uint16_t)))
            << isa_str(isa) << " n=" << n << (with_a ? " with a" : "");
        EXPECT_EQ(0xabcd, got[(size_t)n]) << isa_str(isa) << " n=" << n << ": wrote past the end";
      }
    }
  }
}

TEST(RoundBf16, ThreadedEntryPoint) {
  Rng rng(12);
  const int64_t n = 200003;  // several chunks, uneven
  const std::vector<float> x = awkward_values(rng, (size_t)n), a = rng.normals((size_t)n);
  std::vector<uint16_t> want((size_t)n);
  kern::ref::round_bf16(x.data(), a.data(), want.data(), n);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<uint16_t> got((size_t)n, 0);
    kern::round_bf16(x.data(), a.data(), got.data(), n);
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(uint16_t))) << isa_str(isa);
  }
}

// add_bf16: the sum of two bfloat16 values in float, rounded once to nearest even; the ReLU zeroes a
// negative sum after the add (never an operand), keeps a NaN, and -0 stays -0.
bool is_nan_bf16(uint16_t u) { return (u & 0x7fffu) > 0x7f80u; }

// want[i] == got[i] for i < n, but for a NaN in both (which of two NaN operands a sum is, is left open).
void expect_equal_but_nan(const std::vector<uint16_t>& want, const std::vector<uint16_t>& got, int64_t n,
                          const std::string& what) {
  for (int64_t i = 0; i < n; ++i)
    if (!(is_nan_bf16(got[(size_t)i]) && is_nan_bf16(want[(size_t)i])))
      ASSERT_EQ(want[(size_t)i], got[(size_t)i]) << what << " i=" << i;
}

uint16_t ref_add(uint16_t y, uint16_t r, bool relu) {
  kern::ref::add_bf16(&y, &r, 1, relu);
  return y;
}

TEST(AddBf16, ReferenceBitPatterns) {
  EXPECT_EQ(0x4000, ref_add(0x3f80, 0x3f80, false));  // 1 + 1 = 2
  EXPECT_EQ(0x3f80, ref_add(0x3f80, 0x3b80, false));  // 1 + 2^-8: the tie, 1 is even: down
  EXPECT_EQ(0x3f82, ref_add(0x3f81, 0x3b80, false));  // (1 + 2^-7) + 2^-8: the tie, odd: up
  EXPECT_EQ(0x3f81, ref_add(0x3f80, 0x3bc0, false));  // 1 + 1.5 * 2^-8: above the tie: up
  EXPECT_EQ(0xbf80, ref_add(0x3f80, 0xc000, false));  // 1 - 2 = -1
  EXPECT_EQ(0x0000, ref_add(0x3f80, 0xc000, true));   // the ReLU after the add
  EXPECT_EQ(0x3f80, ref_add(0xbf80, 0x4000, true));   // a negative operand, a positive sum
  EXPECT_EQ(0x8000, ref_add(0x8000, 0x8000, true));   // -0 + -0 = -0, not negative: kept
  EXPECT_EQ(0x7fc0, ref_add(0x7fc0, 0x3f80, true));   // NaN stays NaN through the ReLU
  EXPECT_EQ(0x7f80, ref_add(0x7f7f, 0x7f7f, false));  // overflow to infinity
}

TEST(AddBf16, SimdMatchesReferenceBitForBit) {
  Rng rng(14);
  for (Isa isa : simd_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    for (int64_t n : kTailLengths) {
      const std::vector<float> xf = awkward_values(rng, (size_t)n + 1), rf = awkward_values(rng, (size_t)n + 1);
      std::vector<uint16_t> y((size_t)n + 1), r((size_t)n + 1);
      kern::ref::round_bf16(xf.data(), nullptr, y.data(), n + 1);
      kern::ref::round_bf16(rf.data(), nullptr, r.data(), n + 1);
      for (int64_t i = 0; i + 1 < n; i += 5) r[(size_t)i] = (uint16_t)(y[(size_t)i] ^ 0x8000u);  // exact zeros
      y[(size_t)n] = 0xabcd;
      for (bool relu : {false, true}) {
        std::vector<uint16_t> want = y, got = y;
        kern::ref::add_bf16(want.data(), r.data(), n, relu);
        T.add_bf16(got.data(), r.data(), n, relu);
        expect_equal_but_nan(want, got, n, isa_str(isa) + " n=" + std::to_string(n) + (relu ? " relu" : ""));
        EXPECT_EQ(0xabcd, got[(size_t)n]) << isa_str(isa) << " n=" << n << ": wrote past the end";
      }
    }
  }
}

TEST(AddBf16, ThreadedEntryPoint) {
  Rng rng(15);
  const int64_t n = 200003;  // several chunks, uneven
  const std::vector<float> xf = awkward_values(rng, (size_t)n), rf = rng.normals((size_t)n);
  std::vector<uint16_t> y((size_t)n), r((size_t)n);
  kern::ref::round_bf16(xf.data(), nullptr, y.data(), n);
  kern::ref::round_bf16(rf.data(), nullptr, r.data(), n);
  std::vector<uint16_t> want = y;
  kern::ref::add_bf16(want.data(), r.data(), n, true);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<uint16_t> got = y;
    kern::add_bf16(got.data(), r.data(), n, true);
    expect_equal_but_nan(want, got, n, isa_str(isa));
  }
}

// layernorm_rows_bf16 gives exactly layernorm_rows, its rounding and the rounding of y + a, on every
// ISA, in place or not, with and without either copy, at row counts that split unevenly over
// threads and over its blocks of 16 rows.
TEST(RoundBf16, LayerNormWritesBf16Copies) {
  Rng rng(13);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    for (int64_t C : {256, 37}) {
      for (int64_t rows : {1, 15, 17, 300}) {
        const size_t n = (size_t)(rows * C);
        std::vector<float> x = rng.normals(n), r = rng.normals(n), a = rng.normals(n);
        std::vector<float> g = rng.normals((size_t)C, 1.f, 0.1f), b = rng.normals((size_t)C, 0.f, 0.1f);
        std::vector<float> want_y(n);
        kern::layernorm_rows(x.data(), r.data(), g.data(), b.data(), want_y.data(), rows, C, 1e-5f);
        std::vector<uint16_t> want_y16(n), want_z16(n);
        kern::ref::round_bf16(want_y.data(), nullptr, want_y16.data(), (int64_t)n);
        kern::ref::round_bf16(want_y.data(), a.data(), want_z16.data(), (int64_t)n);
        for (int variant = 0; variant < 8; ++variant) {  // bit 0: y16, bit 1: z16, bit 2: in place
          const bool w_y16 = variant & 1, w_z16 = variant & 2, inplace = variant & 4;
          std::vector<float> y = inplace ? x : std::vector<float>(n, -1.f);
          std::vector<uint16_t> y16(n, 0xabcd), z16(n, 0xabcd);
          kern::layernorm_rows_bf16(inplace ? y.data() : x.data(), r.data(), g.data(), b.data(), y.data(),
                                    w_y16 ? y16.data() : nullptr, w_z16 ? a.data() : nullptr,
                                    w_z16 ? z16.data() : nullptr, rows, C, 1e-5f);
          const std::string what = isa_str(isa) + " C=" + std::to_string(C) + " rows=" + std::to_string(rows) +
                                   " variant=" + std::to_string(variant);
          EXPECT_EQ(0, std::memcmp(y.data(), want_y.data(), n * sizeof(float))) << "y " << what;
          if (w_y16) EXPECT_EQ(0, std::memcmp(y16.data(), want_y16.data(), n * sizeof(uint16_t))) << "y16 " << what;
          else EXPECT_EQ(std::vector<uint16_t>(n, 0xabcd), y16) << "y16 written " << what;
          if (w_z16) EXPECT_EQ(0, std::memcmp(z16.data(), want_z16.data(), n * sizeof(uint16_t))) << "z16 " << what;
          else EXPECT_EQ(std::vector<uint16_t>(n, 0xabcd), z16) << "z16 written " << what;
        }
      }
    }
  }
}

// groupnorm_nhwc_bf16 gives exactly groupnorm_nhwc's values rounded, on every ISA, with and without
// the ReLU, at pixel counts that split unevenly over threads and its blocks of 16 pixels.
TEST(RoundBf16, GroupNormWritesBf16) {
  Rng rng(14);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    for (int64_t C : {256, 64}) {
      for (int64_t HW : {1, 17, 300, 1031}) {
        const size_t n = (size_t)(HW * C);
        const std::vector<float> x = rng.normals(n, 0.5f, 2.f);
        const std::vector<float> g = rng.normals((size_t)C, 1.f, 0.1f), b = rng.normals((size_t)C, 0.f, 0.1f);
        for (bool relu : {false, true}) {
          std::vector<float> y(n);
          kern::groupnorm_nhwc(x.data(), y.data(), HW, C, 32, g.data(), b.data(), 1e-5f, relu);
          std::vector<uint16_t> want(n), got(n + 1, 0xabcd);
          kern::ref::round_bf16(y.data(), nullptr, want.data(), (int64_t)n);
          kern::groupnorm_nhwc_bf16(x.data(), got.data(), HW, C, 32, g.data(), b.data(), 1e-5f, relu);
          const std::string what = isa_str(isa) + " C=" + std::to_string(C) + " HW=" + std::to_string(HW) +
                                   (relu ? " relu" : "");
          EXPECT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(uint16_t))) << what;
          EXPECT_EQ(0xabcd, got[n]) << what << ": wrote past the end";
        }
      }
    }
  }
  std::vector<uint16_t> y16(64);
  const std::vector<float> x(64, 1.f), g(8, 1.f), b(8, 0.f);
  EXPECT_THROW(kern::groupnorm_nhwc_bf16(x.data(), y16.data(), 8, 8, 3, g.data(), b.data(), 1e-5f, false),
               std::invalid_argument);
}

}  // namespace
