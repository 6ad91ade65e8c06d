// tests/kernels/test_attention.cpp: masked multi-head attention (one head per call, streaming
// softmax). Every SIMD path against the scalar reference with Lk = 1 .. 10560, null masks,
// random and region masks, fully masked rows, single-key rows, large logits; atol 3e-6, rtol
// 1e-5. The reference's semantics on hand-checkable cases; attention_heads (several heads per
// call) on every path against that path's one-head calls, bit for bit, and the reference; the
// threaded entry point against per-head calls of the active table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/attention_cases.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

TEST(Attention, SimdMatchesScalar) {
  // Differences: online softmax rescaling, summation order over keys, SIMD exp (< 1 ulp); the
  // scores themselves are bit-identical. Observed ~5e-7 on N(0,1) values.
  const Tol tol{3e-6, 1e-5};
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  int n = 0;
  double worst = 0;
  for (const AttnCase& c : attn_cases()) {
    const AttnData d = make_attn(c);
    std::vector<float> ref_out((size_t)(c.Lq * d.ldo), -7.f);
    run_attn(kern::table_for(Isa::Scalar), d, 0, c.Lq, ref_out);
    const std::vector<float> want = head_block(d, ref_out);
    for (Isa isa : isas) {
      // calls of 8 queries (as the threaded entry point) and one odd split (17 + rest)
      std::vector<float> out8((size_t)(c.Lq * d.ldo), -7.f), outs((size_t)(c.Lq * d.ldo), -7.f);
      for (int64_t q0 = 0; q0 < c.Lq; q0 += 8)
        run_attn(kern::table_for(isa), d, q0, std::min<int64_t>(c.Lq, q0 + 8), out8);
      run_attn(kern::table_for(isa), d, 0, std::min<int64_t>(17, c.Lq), outs);
      run_attn(kern::table_for(isa), d, std::min<int64_t>(17, c.Lq), c.Lq, outs);
      for (const auto* o : {&out8, &outs}) {
        const std::vector<float> got = head_block(d, *o);
        const Diff dd = diff(got.data(), want.data(), got.size(), tol);
        worst = std::max(worst, dd.max_abs);
        EXPECT_EQ(dd.bad, 0u) << kern::isa_name(isa) << (o == &out8 ? " (8-query calls) " : " (17+rest) ")
                              << report(c.str(), dd, tol, got.size());
      }
      // columns outside the head are untouched
      for (int64_t i = 0; i < c.Lq; ++i)
        for (int64_t j = 0; j < d.ldo; ++j) {
          if (j >= d.col && j < d.col + c.dh) continue;
          ASSERT_EQ(out8[i * d.ldo + j], -7.f)
              << kern::isa_name(isa) << " wrote outside the head: " << c.str();
        }
      ++n;
    }
  }
  std::string names;
  for (Isa isa : isas) names += std::string(" ") + kern::isa_name(isa);
  std::printf("  attention_head: %d (case, isa) pairs (isas:%s), max|diff| vs scalar %g (atol %g rtol %g)\n",
              n, names.c_str(), worst, tol.atol, tol.rtol);
}

// Semantics of the reference itself on small hand-checkable cases.
TEST(Attention, ScalarSemantics) {
  const auto& t = kern::table_for(Isa::Scalar);
  // 1 query, 3 keys, dh 1: scores (q*scale)*k = 0, 1, 2 with q = 1, scale = 1.
  const float q[1] = {1.f}, k[3] = {0.f, 1.f, 2.f}, v[3] = {10.f, 20.f, 40.f};
  float out = 0;
  t.attention_head(q, 1, k, 1, v, 1, nullptr, &out, 1, 3, 1, 1.f, 0, 1);
  const double e0 = 1, e1 = std::exp(1.0), e2 = std::exp(2.0);
  EXPECT_NEAR(out, (10 * e0 + 20 * e1 + 40 * e2) / (e0 + e1 + e2), 1e-4);
  const uint8_t m_one[3] = {1, 0, 1};  // only key 1
  t.attention_head(q, 1, k, 1, v, 1, m_one, &out, 1, 3, 1, 1.f, 0, 1);
  EXPECT_FLOAT_EQ(out, 20.f);
  const uint8_t m_all[3] = {1, 1, 1};  // fully masked: attends to all keys
  float out_all = 0, out_none = 0;
  t.attention_head(q, 1, k, 1, v, 1, m_all, &out_all, 1, 3, 1, 1.f, 0, 1);
  t.attention_head(q, 1, k, 1, v, 1, nullptr, &out_none, 1, 3, 1, 1.f, 0, 1);
  EXPECT_EQ(out_all, out_none);
  // huge logits do not overflow
  const float qb[1] = {1e4f};
  t.attention_head(qb, 1, k, 1, v, 1, nullptr, &out, 1, 3, 1, 1.f, 0, 1);
  EXPECT_FLOAT_EQ(out, 40.f);
}

TEST(Attention, HeadsPerCallMatchOneHeadCalls) {
  // nh heads in one call, head h at columns h*dh (strided rows, a column before the heads and
  // padding after them), against nh one-head calls: bit for bit on the same path (the per-lane
  // operations do not depend on the heads per call) and within tolerance of the reference.
  // Query counts with full and partial 16- and 8-lane tiles; no keys; masks with fully masked
  // rows and blocks excluded for whole tiles; a call over a middle range of queries.
  const Tol tol{3e-6, 1e-5};
  int n = 0;
  uint32_t seed = 4100;
  for (int64_t Lq : {1, 7, 20, 100})
    for (int64_t Lk : {0, 1, 70, 700})
      for (int nh : {1, 3, 8})
        for (int dh : {5, 32})
          for (Mask mk : {Mask::None, Mask::Regions, Mask::FullRows}) {
            if (mk != Mask::None && Lk == 0) continue;
            std::mt19937 rng(seed++);
            const int64_t col = 1, E = col + (int64_t)nh * dh, ldq = E + 2, ldk = E + 1, ldv = E + 3, ldo = E + 4;
            const int64_t kr = std::max<int64_t>(Lk, 1);
            const std::vector<float> q = randn((size_t)(Lq * ldq), rng), k = randn((size_t)(kr * ldk), rng),
                                     v = randn((size_t)(kr * ldv), rng);
            const std::vector<uint8_t> mask = make_mask(mk, Lq, Lk, rng);
            const uint8_t* mp = mask.empty() ? nullptr : mask.data();
            const float scale = 1.f / std::sqrt((float)dh);
            const int64_t q0 = Lq > 20 ? 3 : 0, q1 = Lq > 20 ? Lq - 2 : Lq;
            auto one_head_calls = [&](const kern::KernelTable& t, std::vector<float>& out) {
              for (int h = 0; h < nh; ++h)
                t.attention_head(q.data() + col + h * dh, ldq, k.data() + col + h * dh, ldk,
                                 v.data() + col + h * dh, ldv, mp, out.data() + col + h * dh, ldo, Lk, dh, scale,
                                 q0, q1);
            };
            std::vector<float> want((size_t)(Lq * ldo), -7.f);
            one_head_calls(kern::table_for(Isa::Scalar), want);
            for (Isa isa : all_isas()) {
              const kern::KernelTable& t = kern::table_for(isa);
              std::vector<float> got((size_t)(Lq * ldo), -7.f), per_head((size_t)(Lq * ldo), -7.f);
              t.attention_heads(q.data() + col, ldq, k.data() + col, ldk, v.data() + col, ldv, mp,
                                got.data() + col, ldo, Lk, dh, scale, q0, q1, nh);
              one_head_calls(t, per_head);
              const std::string what = std::string(kern::isa_name(isa)) + " Lq=" + std::to_string(Lq) +
                                       " Lk=" + std::to_string(Lk) + " nh=" + std::to_string(nh) +
                                       " dh=" + std::to_string(dh) + " mask=" + mask_name(mk);
              ASSERT_EQ(std::memcmp(got.data(), per_head.data(), got.size() * sizeof(float)), 0)
                  << what << ": attention_heads differs from one-head calls of the same path";
              // rows outside [q0, q1) and columns outside the heads keep the -7 (in `want` too)
              const Diff dd = diff(got.data(), want.data(), got.size(), tol);
              EXPECT_EQ(dd.bad, 0u) << report(what, dd, tol, got.size());
              ++n;
            }
          }
  std::printf("  attention_heads: %d (case, isa) pairs, bit-identical to one-head calls\n", n);
}

TEST(Attention, ThreadedEntryPointMatchesTable) {
  // 8 heads x 32, Lq 100, Lk 2640 with a region mask: all heads through kern::masked_attention
  // against per-head calls of the active table in blocks of 8 queries.
  const int heads = 8, dh = 32;
  const int64_t Lq = 100, Lk = 2640, E = heads * dh;
  std::mt19937 rng(7);
  const std::vector<float> q = randn((size_t)(Lq * E), rng), k = randn((size_t)(Lk * E), rng),
                           v = randn((size_t)(Lk * E), rng);
  const std::vector<uint8_t> mask = make_mask(Mask::Regions, Lq, Lk, rng);
  const float scale = 1.f / std::sqrt(32.f);
  std::vector<float> got((size_t)(Lq * E), -7.f), want((size_t)(Lq * E), -7.f);
  kern::masked_attention(q.data(), E, k.data(), E, v.data(), E, mask.data(), got.data(), E, Lq, Lk,
                         heads, dh, scale);
  const auto& t = kern::active();
  for (int h = 0; h < heads; ++h)
    for (int64_t q0 = 0; q0 < Lq; q0 += 8)
      t.attention_head(q.data() + h * dh, E, k.data() + h * dh, E, v.data() + h * dh, E, mask.data(),
                       want.data() + h * dh, E, Lk, dh, scale, q0, std::min<int64_t>(Lq, q0 + 8));
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "threaded masked_attention differs from per-head " << kern::isa_name(kern::active_isa())
      << " calls";
}

}  // namespace
