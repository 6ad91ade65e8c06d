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
#include <limits>
#include <string>
#include <utility>
#include <random>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/internal.h"
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

// Which sinks a call asks for: every non-empty set (each has its own SIMD body; the post-processing
// uses statistics with and without the bit words in pass A, paste and person map in pass B).
enum Use : unsigned { kStats = 1, kBits = 2, kPaste = 4, kPerson = 8, kAll = 15 };
const unsigned kUses[] = {kAll, kStats | kBits, kStats, kPaste, kPerson, kBits, kPaste | kBits, kPerson | kBits,
                          kStats | kPaste, kStats | kPerson, kPaste | kPerson, kStats | kBits | kPaste,
                          kStats | kBits | kPerson, kStats | kPaste | kPerson, kBits | kPaste | kPerson};

Sinks fused(const kern::KernelTable& k, const float* h0, const float* h1, float l0, float l1, int64_t n, float score,
            unsigned use = kAll) {
  Sinks s(n);
  kern::MaskRowSinks o;
  if (use & kStats) {
    o.count = &s.count;
    o.sig_sum = &s.sig_sum;
    o.first = &s.first;
    o.last = &s.last;
  }
  if (use & kPaste) {
    o.cat = s.cat.data();
    o.times = s.times.data();
    o.score = score;
  }
  if (use & kPerson) {
    o.best = s.best.data();
    o.who = s.who.data();
    o.id = 42;
  }
  if (use & kBits) o.bits = s.bits.data();
  k.mask_row_fused(h0, h1, l0, l1, n, &o);
  return s;
}

// What a call with `use` must leave: the separate steps' results in the sinks asked for, the
// initial values in the others.
Sinks expected(const Sinks& separate_steps, int64_t n, unsigned use) {
  Sinks e(n);
  if (use & kStats) {
    e.count = separate_steps.count, e.sig_sum = separate_steps.sig_sum;
    e.first = separate_steps.first, e.last = separate_steps.last;
  }
  if (use & kPaste) e.cat = separate_steps.cat, e.times = separate_steps.times;
  if (use & kPerson) e.best = separate_steps.best, e.who = separate_steps.who;
  if (use & kBits) e.bits = separate_steps.bits;
  return e;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_same(const Sinks& got, const Sinks& want, const std::string& at) {
  EXPECT_EQ(got.count, want.count) << at;
  EXPECT_EQ(got.first, want.first) << at;
  EXPECT_EQ(got.last, want.last) << at;
  EXPECT_EQ(std::memcmp(&got.sig_sum, &want.sig_sum, sizeof(double)), 0) << at << ": " << got.sig_sum << " vs " << want.sig_sum;
  EXPECT_TRUE(same_floats(got.cat, want.cat)) << at;
  EXPECT_TRUE(same_floats(got.times, want.times)) << at;
  EXPECT_TRUE(same_floats(got.best, want.best)) << at;
  EXPECT_EQ(got.who, want.who) << at;
  EXPECT_EQ(got.bits, want.bits) << at << " (the word after the row's must stay untouched)";
}

std::string use_name(unsigned use) {
  std::string s;
  for (auto [bit, name] : {std::pair{kStats, "stats"}, {kBits, "bits"}, {kPaste, "paste"}, {kPerson, "person"}})
    if (use & bit) s += (s.empty() ? "" : "+") + std::string(name);
  return s;
}

// Smooth rows, as an upsampled mask's: runs of whole lane groups positive (or above the paste
// gate, or above best, or with sigmoid 1: >= 17) and runs of whole groups below, with the turns at
// every offset.
std::vector<float> smooth(int64_t n, uint32_t seed) {
  std::vector<float> x((size_t)n);
  const double f = 0.011 + 0.003 * (seed % 8), ph = 0.7 * seed, a = seed % 3 == 0 ? 6.0 : 12.0 * (seed % 3 + 1);
  for (int64_t i = 0; i < n; ++i) x[(size_t)i] = (float)(a * std::sin(f * (double)i + ph) + 0.5 * (seed % 8));
  return x;
}

TEST(MaskRowFused, EqualsTheSeparateStepsOnEveryPathBitForBit) {
  int rows = 0;
  for (Isa isa : all_isas()) {
    const kern::KernelTable& k = kern::table_for(isa);
    for (int64_t n : kLengths)
      for (uint32_t seed = 0; seed < 6; ++seed) {
        // seeds 0-2: logits as in test_postproc.cpp; 3-5: smooth rows
        const std::vector<float> h0 = seed < 3 ? logits(n, seed * 17 + (uint32_t)n) : smooth(n, seed),
                                 h1 = seed < 3 ? logits(n, seed * 29 + 5 + (uint32_t)n) : smooth(n, seed + 7);
        const float l1 = seed % 3 == 0 ? 0.f : seed % 3 == 1 ? 0.3125f : 0.8716f, l0 = 1.f - l1;
        const float score = 0.5f + 0.15f * (float)(seed % 4);
        const Sinks want = separate(k, h0.data(), h1.data(), l0, l1, n, score);
        for (unsigned use : kUses) {
          const Sinks got = fused(k, h0.data(), h1.data(), l0, l1, n, score, use);
          expect_same(got, expected(want, n, use),
                      std::string(kern::isa_name(isa)) + " n=" + std::to_string(n) + " seed=" + std::to_string(seed) +
                          " sinks=" + use_name(use));
          ++rows;
        }
      }
  }
  std::printf("[MaskRowFused] %d rows: fused = separate steps, bit for bit, on every path and set of sinks\n", rows);
}

// The paste sink's gate (kern::paste_gate): no value at or below it pastes on any path, with
// scores from just above 0.5 (where the logit threshold is steep) to 1; below 0.5 nothing pastes.
// Checked directly with each path's paste_row on the floats just below and at the gate, and through
// mask_row_fused (which skips lane groups at or below the gate) on rows packed around the gate
// and the exact threshold: the same paste as paste_row on every lane, bit for bit.
TEST(MaskRowFused, PasteGateNeverSkipsALaneThatPastes) {
  std::vector<float> scores = {0.f, 0.25f, 0.5f, std::nextafter(0.5f, 1.f), 0.5f + 1e-6f, 0.500004f, 0.500006f, 0.50001f,
                               0.5001f, 0.501f, 0.51f, 0.55f, 0.6f, 0.625f, 0.7f, 0.8f, 0.9f, 0.99f, 0.9999f,
                               std::nextafter(1.f, 0.f), 1.f};
  Rng rng(11);
  for (int i = 0; i < 40; ++i) scores.push_back(rng.uniform(0.5f, 1.f));
  int checked = 0, pasted = 0;
  for (float score : scores) {
    const float g = kern::paste_gate(score);
    ASSERT_FALSE(std::isnan(g)) << score;
    if (score <= 0.5f) ASSERT_EQ(g, std::numeric_limits<float>::infinity()) << score;
    // the floats at and below the gate (at most 30, the largest finite value for +inf)
    std::vector<float> below;
    float v = std::isinf(g) ? 30.f : g;
    for (int j = 0; j < 4096; ++j, v = std::nextafter(v, -100.f)) below.push_back(v);
    for (float d = 1e-6f; d < 40.f; d *= 1.5f) below.push_back((std::isinf(g) ? 30.f : g) - d);
    // around the gate and the exact threshold logit(0.5 / score), both sides
    std::vector<float> around;
    if (!std::isinf(g)) {
      const double t = score > 0.5f ? std::log(0.5 / score) - std::log1p(-0.5 / score) : 0.0;
      for (double c : {(double)g, t})
        for (int j = -300; j <= 300; ++j) around.push_back((float)c + (float)j * std::max(1e-7f, std::fabs((float)c) * 2e-7f));
      for (int j = 0; j < 200; ++j) around.push_back(g + rng.uniform(-0.05f, 0.5f));
    }
    for (Isa isa : all_isas()) {
      const kern::KernelTable& k = kern::table_for(isa);
      const int64_t nb = (int64_t)below.size();
      std::vector<float> cat((size_t)nb, 0.f), times((size_t)nb, 0.f);
      k.paste_row(below.data(), nb, score, cat.data(), times.data());
      for (int64_t j = 0; j < nb; ++j)
        ASSERT_EQ(times[(size_t)j], 0.f) << kern::isa_name(isa) << " score=" << score << " gate=" << g
                                         << ": v=" << below[(size_t)j] << " <= the gate pastes";
      checked += (int)nb;
      // rows of the around values in a random order, lengths leaving tails, through the fused kernel
      for (int rep = 0; rep < 3 && !around.empty(); ++rep) {
        std::vector<float> x = around;
        for (size_t j = x.size() - 1; j > 0; --j) std::swap(x[j], x[(size_t)rng.integer(0, (int)j)]);
        const int64_t n = (int64_t)x.size() - rep * 7;
        const Sinks want = separate(k, x.data(), x.data(), 1.f, 0.f, n, score);
        const Sinks got = fused(k, x.data(), x.data(), 1.f, 0.f, n, score, kPaste);
        const std::string at = std::string(kern::isa_name(isa)) + " score=" + std::to_string(score);
        EXPECT_TRUE(same_floats(got.cat, want.cat)) << at;
        EXPECT_TRUE(same_floats(got.times, want.times)) << at;
        for (float t : want.times) pasted += t > 1.f;  // times start at 1
      }
    }
  }
  EXPECT_GT(pasted, 1000);  // the rows around the threshold do paste
  std::printf("[MaskRowFused] paste gate: %zu scores, %d values at or below the gate paste nothing on any path, "
              "%d pastes near it all kept\n", scores.size(), checked, pasted);
}

// The fused kernel's SIMD bodies take sigmoid(v) = 1 without computing it for v >= 17: every path's
// own sigmoid (in mask_row_stats and paste_row, which compute it for every lane) gives exactly 1
// there, up to +inf.
TEST(MaskRowFused, SigmoidIsExactlyOneFrom17) {
  std::vector<float> x;
  for (float v = 17.f; x.size() < 5000; v = std::nextafter(v, 100.f)) x.push_back(v);
  for (float v = 17.f; v < 1e30f; v *= 1.01f) x.push_back(v);
  for (float v : {87.f, 87.5f, 88.f, 88.8f, 1e38f, std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity()})
    x.push_back(v);
  const int64_t n = (int64_t)x.size();
  for (Isa isa : all_isas()) {
    const kern::KernelTable& k = kern::table_for(isa);
    int64_t count = 0, first, last;
    double sig_sum = 0;
    k.mask_row_stats(x.data(), n, &count, &sig_sum, &first, &last);
    EXPECT_EQ(count, n) << kern::isa_name(isa);
    EXPECT_EQ(sig_sum, (double)n) << kern::isa_name(isa) << ": some sigmoid(v >= 17) is not 1";
    for (float score : {0.5000001f, 0.6f, 0.77f, 1.f}) {
      std::vector<float> cat((size_t)n, 0.f), times((size_t)n, 0.f);
      k.paste_row(x.data(), n, score, cat.data(), times.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_TRUE(cat[(size_t)i] == score && times[(size_t)i] == 1.f) << kern::isa_name(isa) << " v=" << x[(size_t)i];
    }
  }
}

// For scores above 0.5 the gate is close to the exact threshold: values 0.01 above it paste
// (so the kernel skips the groups below it, the fast case) and it is never above the threshold.
TEST(MaskRowFused, PasteGateIsJustBelowTheThreshold) {
  for (float score : {0.51f, 0.6f, 0.8f, 0.95f, 1.f}) {
    const float g = kern::paste_gate(score);
    const double t = std::log(0.5 / score) - std::log1p(-0.5 / score);
    EXPECT_LE(g, t) << score;
    EXPECT_GT(g, t - 0.01) << score;
    for (Isa isa : all_isas()) {
      const float x = g + 0.01f;
      float cat = 0.f, times = 0.f;
      kern::table_for(isa).paste_row(&x, 1, score, &cat, &times);
      EXPECT_EQ(times, 1.f) << kern::isa_name(isa) << " score=" << score;
    }
  }
  EXPECT_EQ(kern::paste_gate(std::numeric_limits<float>::quiet_NaN()), std::numeric_limits<float>::infinity());
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
// words and the rows after differ on purpose), at word counts that leave every tail. The AVX-512
// path's two bodies (VPOPCNTQ where the CPU has it, else the nibble table) both, wherever AVX-512 runs.
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
      std::vector<std::pair<std::string, decltype(&kern::ref::and_popcount)>> bodies;
      for (Isa isa : all_isas()) bodies.emplace_back(kern::isa_name(isa), kern::table_for(isa).and_popcount);
      if (kern::isa_supported(Isa::Avx512)) {
        bodies.emplace_back("avx512 nibbles", &kern::avx512::and_popcount_nibbles);
        if (kern::cpu_features().avx512vpopcntdq) bodies.emplace_back("avx512 vpopcnt", &kern::avx512::and_popcount_vpopcnt);
      }
      for (const auto& [name, f] : bodies) {
        int64_t got = 11;  // added to, not overwritten
        f(a.data(), b.data(), ld, rows, n, &got);
        EXPECT_EQ(got, 11 + want) << name << " rows=" << rows << " n=" << n;
        ++cases;
      }
    }
  std::printf("[AndPopcount] %d cases exact\n", cases);
}

}  // namespace
