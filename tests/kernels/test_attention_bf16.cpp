// tests/kernels/test_attention_bf16.cpp: attention with bfloat16 keys and values and bf16 products
// (ops.def: attention_heads_bf16). Every path (scalar reference, AVX2, AVX-512: VDPBF16PS where the
// CPU has AVX512-BF16, the FMA form elsewhere and in the emulated suite) against fp64 attention over
// the same bf16 keys and values (relative L2 <= 5e-3: the bf16 rounding of q and of the
// probabilities), and the SIMD paths against the reference (atol 1e-2, rtol 1e-2: they round the
// probabilities relative to a running maximum); Lk = 1 .. 10560 (odd, partial key blocks and pairs),
// dh 2 .. 34, several heads per call, every mask kind (fully masked rows attend to all keys). The
// threaded entry point against per-head calls of the active table, bit for bit; odd dh refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "tests/kernels/attention_cases.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

float widen(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

struct Bf16Case {
  int64_t Lq, Lk;
  int dh, nh;
  Mask mask;
  uint32_t seed;
  std::string str() const {
    return "attention_bf16{Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk) + " dh=" + std::to_string(dh) +
           " nh=" + std::to_string(nh) + " mask=" + mask_name(mask) + " seed=" + std::to_string(seed) + "}";
  }
};

// q [Lq, ldq] fp32, k/v [Lk, ld*] bf16, the heads' columns from `col` on (odd: unaligned pairs).
struct Bf16Data {
  Bf16Case c;
  int64_t ldq, ldk, ldv, ldo, col = 3;
  float scale;
  std::vector<float> q;
  std::vector<uint16_t> k, v;
  std::vector<uint8_t> mask;
};

Bf16Data make(const Bf16Case& c) {
  Bf16Data d;
  d.c = c;
  const int64_t E = (int64_t)c.nh * c.dh;
  d.ldq = E + 5, d.ldk = E + 4, d.ldv = E + 9, d.ldo = E + 6;
  std::mt19937 rng(c.seed);
  d.q = randn((size_t)(c.Lq * d.ldq), rng, 2.f);
  d.k = to_bf16(randn((size_t)(c.Lk * d.ldk), rng));
  d.v = to_bf16(randn((size_t)(c.Lk * d.ldv), rng));
  d.scale = 1.f / std::sqrt((float)c.dh);
  d.mask = make_mask(c.mask, c.Lq, c.Lk, rng);
  return d;
}

void run(const kern::KernelTable& t, const Bf16Data& d, int64_t q0, int64_t q1, std::vector<float>& out) {
  t.attention_heads_bf16(d.q.data() + d.col, d.ldq, d.k.data() + d.col, d.ldk, d.v.data() + d.col, d.ldv,
                         d.mask.empty() ? nullptr : d.mask.data(), out.data() + d.col, d.ldo, d.c.Lk, d.c.dh, d.scale,
                         q0, q1, d.c.nh);
}

// The heads' [Lq, nh*dh] block of an output.
std::vector<float> block(const Bf16Data& d, const std::vector<float>& out) {
  const int64_t E = (int64_t)d.c.nh * d.c.dh;
  std::vector<float> r((size_t)(d.c.Lq * E));
  for (int64_t i = 0; i < d.c.Lq; ++i) std::memcpy(r.data() + i * E, out.data() + i * d.ldo + d.col, sizeof(float) * E);
  return r;
}

// fp64 attention over the fp32 q and the bf16 k, v (Mask2Former's rule for fully masked rows).
std::vector<double> exact(const Bf16Data& d) {
  const Bf16Case& c = d.c;
  const int64_t E = (int64_t)c.nh * c.dh;
  std::vector<double> out((size_t)(c.Lq * E), 0.0), s((size_t)c.Lk);
  for (int64_t i = 0; i < c.Lq; ++i) {
    const uint8_t* row = d.mask.empty() ? nullptr : d.mask.data() + i * c.Lk;
    if (row && !std::memchr(row, 0, (size_t)c.Lk)) row = nullptr;
    for (int h = 0; h < c.nh; ++h) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < c.Lk; ++j) {
        double a = 0;
        for (int ch = 0; ch < c.dh; ++ch)
          a += (double)d.q[i * d.ldq + d.col + h * c.dh + ch] * d.scale * widen(d.k[j * d.ldk + d.col + h * c.dh + ch]);
        s[j] = row && row[j] ? -INFINITY : a;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < c.Lk; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int64_t j = 0; j < c.Lk; ++j)
        for (int ch = 0; ch < c.dh; ++ch)
          out[i * E + h * c.dh + ch] += s[j] / sum * widen(d.v[j * d.ldv + d.col + h * c.dh + ch]);
    }
  }
  return out;
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  return std::sqrt(num / std::max(den, 1e-300));
}

std::vector<Bf16Case> cases() {
  std::vector<Bf16Case> v;
  uint32_t seed = 500;
  for (int64_t Lk : {1, 2, 7, 63, 64, 65, 129, 1000})
    for (int dh : {2, 6, 32, 34})
      for (Mask m : {Mask::None, Mask::Random, Mask::Regions, Mask::FullRows, Mask::SingleKey, Mask::AllZero})
        v.push_back({37, Lk, dh, dh == 32 ? 3 : 1, m, seed++});
  // the model's cross-attention at its three levels (8 heads of 32 over two calls)
  for (int64_t Lk : {660, 2640, 10560}) v.push_back({100, Lk, 32, 4, Mask::Regions, seed++});
  return v;
}

TEST(AttentionBf16, EveryPathMatchesFp64AndTheReference) {
  const Tol tol{1e-2, 1e-2};
  int n = 0;
  double worst_ref = 0, worst_l2 = 0;
  for (const Bf16Case& c : cases()) {
    const Bf16Data d = make(c);
    const std::vector<double> want = exact(d);
    std::vector<float> ref_out((size_t)(c.Lq * d.ldo), -7.f);
    run(kern::table_for(Isa::Scalar), d, 0, c.Lq, ref_out);
    const std::vector<float> ref_b = block(d, ref_out);
    for (Isa isa : all_isas()) {
      std::vector<float> out((size_t)(c.Lq * d.ldo), -7.f);
      // two calls: 17 queries, then the rest (partial tiles on both sides)
      run(kern::table_for(isa), d, 0, std::min<int64_t>(17, c.Lq), out);
      run(kern::table_for(isa), d, std::min<int64_t>(17, c.Lq), c.Lq, out);
      const std::vector<float> got = block(d, out);
      const double l2 = rel_l2(got, want);
      worst_l2 = std::max(worst_l2, l2);
      EXPECT_LE(l2, 5e-3) << isa_str(isa) << " against fp64: " << c.str();
      if (isa != Isa::Scalar) {
        const Diff dd = diff(got.data(), ref_b.data(), got.size(), tol);
        worst_ref = std::max(worst_ref, dd.max_abs);
        EXPECT_EQ(dd.bad, 0u) << isa_str(isa) << " against the reference: " << report(c.str(), dd, tol, got.size());
      }
      for (int64_t i = 0; i < c.Lq; ++i)
        for (int64_t j = 0; j < d.ldo; ++j)
          if (j < d.col || j >= d.col + (int64_t)c.nh * c.dh)
            ASSERT_EQ(out[i * d.ldo + j], -7.f) << isa_str(isa) << " wrote outside the heads: " << c.str();
      ++n;
    }
  }
  std::printf("  attention_heads_bf16: %d (case, isa) pairs, worst rel L2 vs fp64 %.3e, max|diff| SIMD vs "
              "scalar %.3e (avx512 %s)\n",
              n, worst_l2, worst_ref, kern::cpu_features().avx512bf16 ? "with AVX512-BF16" : "without AVX512-BF16");
}

TEST(AttentionBf16, NoKeysGivesZeros) {
  for (Isa isa : all_isas()) {
    const Bf16Data d = make({5, 1, 4, 2, Mask::None, 1});
    std::vector<float> out((size_t)(5 * d.ldo), -7.f);
    kern::table_for(isa).attention_heads_bf16(d.q.data(), d.ldq, d.k.data(), d.ldk, d.v.data(), d.ldv, nullptr,
                                              out.data(), d.ldo, 0, 4, d.scale, 0, 5, 2);
    for (int64_t i = 0; i < 5; ++i)
      for (int j = 0; j < 8; ++j) EXPECT_EQ(out[i * d.ldo + j], 0.f) << isa_str(isa);
  }
}

TEST(AttentionBf16, ThreadedEntryPointMatchesTable) {
  const int heads = 8, dh = 32;
  const int64_t Lq = 100, Lk = 2641, E = heads * dh;
  std::mt19937 rng(9);
  const std::vector<float> q = randn((size_t)(Lq * E), rng);
  const std::vector<uint16_t> k = to_bf16(randn((size_t)(Lk * E), rng)), v = to_bf16(randn((size_t)(Lk * E), rng));
  const std::vector<uint8_t> mask = make_mask(Mask::Regions, Lq, Lk, rng);
  const float scale = 1.f / std::sqrt(32.f);
  std::vector<float> got((size_t)(Lq * E), -7.f), want((size_t)(Lq * E), -7.f);
  kern::masked_attention_bf16(q.data(), E, k.data(), E, v.data(), E, mask.data(), got.data(), E, Lq, Lk, heads, dh,
                              scale);
  const auto& t = kern::active();
  for (int h = 0; h < heads; ++h)
    for (int64_t q0 = 0; q0 < Lq; q0 += 8)
      t.attention_heads_bf16(q.data() + h * dh, E, k.data() + h * dh, E, v.data() + h * dh, E, mask.data(),
                             want.data() + h * dh, E, Lk, dh, scale, q0, std::min<int64_t>(Lq, q0 + 8), 1);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "threaded masked_attention_bf16 differs from per-head " << kern::isa_name(kern::active_isa()) << " calls";
  EXPECT_THROW(kern::masked_attention_bf16(q.data(), E, k.data(), E, v.data(), E, nullptr, got.data(), E, Lq, Lk,
                                           heads, 31, scale),
               std::invalid_argument);
}

}  // namespace
