// tests/kernels/test_mask_row_fused.cpp: kern::mask_row_fused (the streaming post-processing's fused
// kernel) on every path, the scalar reference included, against the same path's separate steps on
// the stored row: v = fma(h0, l0, h1 * l1) (the resize's vertical step), then mask_row_stats,
// paste_row, the person-map update and the bits. On one path the fused kernel must give the same
// results bit for bit (the post-processing's outputs do not change with the path it takes); across
// paths, counts, first/last, bits and the person map are exact and sums within the tolerances of
// test_postproc.cpp. Awkward lengths leave every tail; logits as in test_postproc.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

const int64_t kLengths[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 548, 1000, 4000};

struct Sinks {
  int64_t count = 3, first = -7, last = -7;
  double sig_sum = 0.5;
  std::vector<float> cat, times, best;
  std::vector<uint8_t> who;
  std::vector<uint64_t> bits;
  explicit Sinks(int64_t n)
      : cat((size_t)n, 0.25f), times((size_t)n, 1.f), best((size_t)n), who((size_t)n, 9),
        bits((size_t)(n + 63) / 64 + 1, 0xdeadbeefdeadbeefull) {
    for (int64_t i = 0; i < n; ++i) best[(size_t)i] = (i % 3) ? 0.f : 0.5f * (float)(i % 7);
  }
};

// The separate steps on the stored row, with path k's own kernels.
Sinks separate(const kern::KernelTable& k, const float* h0, const float* h1, float l0, float l1, int64_t n,
               float score) {
  std::vector<float> v((size_t)n);
  for (int64_t i = 0; i < n; ++i) v[(size_t)i] = std::fma(h0[i], l0, h1[i] * l1);
  Sinks s(n);
  k.mask_row_stats(v.data(), n, &s.count, &s.sig_sum, &s.first, &s.last);
  k.paste_row(v.data(), n, score, s.cat.data(), s.times.data());
  for (int64_t i = 0; i < n; ++i)
    if (v[(size_t)i] > s.best[(size_t)i]) s.best[(size_t)i] = v[(size_t)i], s.who[(size_t)i] = 42;
  for (int64_t w = 0; w < (n + 63) / 64; ++w) s.bits[(size_t)w] = 0;
  for (int64_t i = 0; i < n; ++i)
    if (v[(size_t)i] > 0.f) s.bits[(size_t)(i / 64)] |= uint64_t{1} << (i % 64);
  return s;
}

Sinks fused(const kern::KernelTable& k, const float* h0, const float* h1, float l0, float l1, int64_t n, float score) {
  Sinks s(n);
  kern::MaskRowSinks o;
  o.count = &s.count;
  o.sig_sum = &s.sig_sum;
  o.first = &s.first;
  o.last = &s.last;
  o.cat = s.cat.data();
  o.times = s.times.data();
  o.score = score;
  o.best = s.best.data();
  o.who = s.who.data();
  o.id = 42;
  o.bits = s.bits.data();
  k.mask_row_fused(h0, h1, l0, l1, n, &o);
  return s;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(MaskRowFused, EqualsTheSeparateStepsOnEveryPathBitForBit) {
  int rows = 0;
  for (Isa isa : all_isas()) {
    const kern::KernelTable& k = kern::table_for(isa);
    for (int64_t n : kLengths)
      for (uint32_t seed = 0; seed < 3; ++seed) {
        const std::vector<float> h0 = logits(n, seed * 17 + (uint32_t)n), h1 = logits(n, seed * 29 + 5 + (uint32_t)n);
        const float l1 = seed == 0 ? 0.f : seed == 1 ? 0.3125f : 0.8716f, l0 = 1.f - l1;
        const float score = 0.5f + 0.15f * (float)seed;
        const Sinks want = separate(k, h0.data(), h1.data(), l0, l1, n, score);
        const Sinks got = fused(k, h0.data(), h1.data(), l0, l1, n, score);
        const std::string at = std::string(kern::isa_name(isa)) + " n=" + std::to_string(n) + " seed=" + std::to_string(seed);
        EXPECT_EQ(got.count, want.count) << at;
        EXPECT_EQ(got.first, want.first) << at;
        EXPECT_EQ(got.last, want.last) << at;
        EXPECT_EQ(std::memcmp(&got.sig_sum, &want.sig_sum, sizeof(double)), 0) << at << ": " << got.sig_sum << " vs " << want.sig_sum;
        EXPECT_TRUE(same_floats(got.cat, want.cat)) << at;
        EXPECT_TRUE(same_floats(got.times, want.times)) << at;
        EXPECT_TRUE(same_floats(got.best, want.best)) << at;
        EXPECT_EQ(got.who, want.who) << at;
        EXPECT_EQ(got.bits, want.bits) << at << " (the word after the row's must stay untouched)";
        ++rows;
      }
  }
  std::printf("[MaskRowFused] %d rows: fused = separate steps, bit for bit, on every path\n", rows);
}

TEST(MaskRowFused, OnlyTheAskedSinksAreTouched) {
  const int64_t n = 37;
  const std::vector<float> h0 = logits(n, 1), h1 = logits(n, 2);
  for (Isa isa : all_isas()) {
    const kern::KernelTable& k = kern::table_for(isa);
    Sinks s(n);
    kern::MaskRowSinks o;  // bits only
    o.bits = s.bits.data();
    k.mask_row_fused(h0.data(), h1.data(), 0.75f, 0.25f, n, &o);
    const Sinks untouched(n);
    EXPECT_TRUE(same_floats(s.cat, untouched.cat)) << kern::isa_name(isa);
    EXPECT_TRUE(same_floats(s.best, untouched.best)) << kern::isa_name(isa);
    EXPECT_EQ(s.who, untouched.who) << kern::isa_name(isa);
    EXPECT_EQ(s.count, 3) << kern::isa_name(isa);
    EXPECT_EQ(s.bits[1], 0xdeadbeefdeadbeefull) << kern::isa_name(isa);
    const Sinks want = separate(k, h0.data(), h1.data(), 0.75f, 0.25f, n, 0.6f);
    EXPECT_EQ(s.bits[0], want.bits[0]) << kern::isa_name(isa);
  }
}

TEST(MaskRowFused, SimdPathsAgreeWithTheReference) {
  const kern::KernelTable& ref = kern::table_for(Isa::Scalar);
  for (Isa isa : simd_isas())
    for (int64_t n : kLengths) {
      const std::vector<float> h0 = logits(n, 3 + (uint32_t)n), h1 = logits(n, 4 + (uint32_t)n);
      const Sinks a = fused(ref, h0.data(), h1.data(), 0.6f, 0.4f, n, 0.77f);
      const Sinks b = fused(kern::table_for(isa), h0.data(), h1.data(), 0.6f, 0.4f, n, 0.77f);
      const std::string at = std::string(kern::isa_name(isa)) + " n=" + std::to_string(n);
      EXPECT_EQ(b.count, a.count) << at;
      EXPECT_EQ(b.first, a.first) << at;
      EXPECT_EQ(b.last, a.last) << at;
      EXPECT_NEAR(b.sig_sum, a.sig_sum, 1e-5 * std::fabs(a.sig_sum)) << at;
      EXPECT_EQ(b.bits, a.bits) << at;
      EXPECT_EQ(b.who, a.who) << at;
      EXPECT_TRUE(same_floats(b.best, a.best)) << at;
      for (int64_t i = 0; i < n; ++i) {
        const float v = std::fma(h0[(size_t)i], 0.6f, h1[(size_t)i] * 0.4f);
        if (std::fabs(1.f / (1.f + std::exp(-v)) * 0.77f - 0.5f) < 1e-5f) continue;  // borderline paste
        ASSERT_EQ(b.times[(size_t)i], a.times[(size_t)i]) << at << " i=" << i;
        ASSERT_NEAR(b.cat[(size_t)i], a.cat[(size_t)i], 4 * 1.2e-7f * std::max(1.f, std::fabs(a.cat[(size_t)i]))) << at;
      }
    }
}

// and_popcount (the part/human overlaps from mask_row_fused's bit words): every path counts exactly
// the bits of a & b over the rows and words asked for, none outside them (the row stride's other
// words and the rows after differ on purpose), at word counts that leave every tail.
TEST(AndPopcount, CountsExactlyOnEveryPath) {
  Rng rng(7);
  const int64_t ld = 70;
  std::vector<uint64_t> a((size_t)(ld * 9)), b((size_t)(ld * 9));
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = rng.g();
    b[i] = i % 5 == 0 ? ~uint64_t{0} : i % 7 == 0 ? 0 : rng.g();
  }
  int cases = 0;
  for (int64_t rows : {0, 1, 2, 8})
    for (int64_t n : {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 70}) {
      int64_t want = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t w = 0; w < n; ++w)
          for (int bit = 0; bit < 64; ++bit) want += (a[(size_t)(r * ld + w)] & b[(size_t)(r * ld + w)]) >> bit & 1;
      for (Isa isa : all_isas()) {
        int64_t got = 11;  // added to, not overwritten
        kern::table_for(isa).and_popcount(a.data(), b.data(), ld, rows, n, &got);
        EXPECT_EQ(got, 11 + want) << kern::isa_name(isa) << " rows=" << rows << " n=" << n;
        ++cases;
      }
    }
  std::printf("[AndPopcount] %d cases exact\n", cases);
}

}  // namespace
