// tests/kernels/test_simd_bodies.cpp: the shared SIMD bodies apart from any KernelTable:
// kernels/msda_simd.h and kernels/attention_simd.h instantiated with an emulated 16-lane vector
// (the AVX-512 path's logic on any AVX2 machine), and the AVX2 exp's accuracy over its domain.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/attention_simd.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/kernels.h"
#include "kernels/msda_simd.h"
#include "tests/kernels/attention_cases.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

// ---- the shared SIMD bodies at 16 lanes, on any AVX2 machine -----------------------------------
// V16e: a 16-lane vector made of two V8 halves. Instantiating kernels/msda_simd.h and
// kernels/attention_simd.h with it runs their 16-lane logic (tile tails, the two 8-lane groups
// of the mask transpose, 16-lane coordinate chunks) where no AVX-512 CPU is available; the
// V16 intrinsics themselves are covered by SimdMatchesScalar on AVX-512 machines.
struct V16e {
  using V8 = m2fp::kern::V8;
  static constexpr int W = 16;
  struct F { V8::F a, b; };
  struct I { V8::I a, b; };
  using M = F;
  static F zero() { return {V8::zero(), V8::zero()}; }
  static F set1(float x) { return {V8::set1(x), V8::set1(x)}; }
  static F bcast(const float* p) { return set1(*p); }
  static F load(const float* p) { return {V8::load(p), V8::load(p + 8)}; }
  static void store(float* p, F x) { V8::store(p, x.a), V8::store(p + 8, x.b); }
  static F load_n(const float* p, int n) {
    return {V8::load_n(p, std::min(n, 8)), V8::load_n(p + 8, std::max(n - 8, 0))};
  }
  static void store_n(float* p, F x, int n) {
    V8::store_n(p, x.a, std::min(n, 8)), V8::store_n(p + 8, x.b, std::max(n - 8, 0));
  }
#define M2FP_V16E_BIN(name) \
  static F name(F x, F y) { return {V8::name(x.a, y.a), V8::name(x.b, y.b)}; }
  M2FP_V16E_BIN(add) M2FP_V16E_BIN(sub) M2FP_V16E_BIN(mul) M2FP_V16E_BIN(div) M2FP_V16E_BIN(max)
  M2FP_V16E_BIN(min) M2FP_V16E_BIN(ge) M2FP_V16E_BIN(le) M2FP_V16E_BIN(lt) M2FP_V16E_BIN(mand)
  M2FP_V16E_BIN(where)
#undef M2FP_V16E_BIN
  static F fma(F x, F y, F z) { return {V8::fma(x.a, y.a, z.a), V8::fma(x.b, y.b, z.b)}; }
  static F floor(F x) { return {V8::floor(x.a), V8::floor(x.b)}; }
  static F exp(F x) { return {V8::exp(x.a), V8::exp(x.b)}; }
  static F select(M m, F x, F y) { return {V8::select(m.a, x.a, y.a), V8::select(m.b, x.b, y.b)}; }
  static F pair(float x, float y) { return {V8::pair(x, y), V8::pair(x, y)}; }
  static F dup_odd(F x) { return {V8::dup_odd(x.a), V8::dup_odd(x.b)}; }
  static I dup_odd_i(I x) { return {V8::dup_odd_i(x.a), V8::dup_odd_i(x.b)}; }
  static M bytes_nonzero(const uint8_t* p) { return {V8::bytes_nonzero(p), V8::bytes_nonzero(p + 8)}; }
  static bool any_nonzero(F x) { return V8::any_nonzero(x.a) || V8::any_nonzero(x.b); }
  static I cvtt(F x) { return {V8::cvtt(x.a), V8::cvtt(x.b)}; }
  static I loadi(const int32_t* p) { return {V8::loadi(p), V8::loadi(p + 8)}; }
  static void storei(int32_t* p, I x) { V8::storei(p, x.a), V8::storei(p + 8, x.b); }
  static I addi(I x, I y) { return {V8::addi(x.a, y.a), V8::addi(x.b, y.b)}; }
  static I muli(I x, I y) { return {V8::muli(x.a, y.a), V8::muli(x.b, y.b)}; }
  static void prefetch(const void* p) { V8::prefetch(p); }
};

TEST(SimdBodies, SixteenLanesAndAvx512BlockingOnAvx2) {
  if (!kern::isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  const Tol mtol{1e-6, 2e-6}, atol{3e-6, 1e-5};  // as SimdMatchesScalar
  int n = 0;
  for (const MsdaCase& c : msda_cases()) {
    const MsdaData d = make_msda(c);
    const std::vector<float> want = run_msda(kern::table_for(Isa::Scalar), d, 0, c.Lq);
    std::vector<float> got(want.size(), -7.f);
    m2fp::kern::msda_chunk<V16e>(d.value.data(), d.shapes.data(), d.starts.data(), d.L, c.P,
                                 c.heads, c.dh, d.ref.data(), d.offsets(), d.logits(), d.ld_qp,
                                 got.data(), 0, c.Lq);
    const Diff dd = diff(got.data(), want.data(), got.size(), mtol);
    EXPECT_EQ(dd.bad, 0u) << "msda_chunk<V16e> " << report(c.str(), dd, mtol, got.size());
    ++n;
  }
  for (const AttnCase& c : attn_cases()) {
    if (c.Lk > 1000) continue;
    const AttnData d = make_attn(c);
    std::vector<float> ref_out((size_t)(c.Lq * d.ldo), -7.f);
    run_attn(kern::table_for(Isa::Scalar), d, 0, c.Lq, ref_out);
    const std::vector<float> want = head_block(d, ref_out);
    // 16-lane tiles (one whole-range call: tiles 16 + 16 + 5) and the AVX-512 path's 8-lane
    // blocking (8 keys x 16 channels register blocks)
    std::vector<float> o16((size_t)(c.Lq * d.ldo), -7.f), o8((size_t)(c.Lq * d.ldo), -7.f);
    const float* q = d.q.data() + d.col;
    const float* k = d.k.data() + d.col;
    const float* v = d.v.data() + d.col;
    const uint8_t* mask = d.mask.empty() ? nullptr : d.mask.data();
    m2fp::kern::attention_range<V16e, 8, 16>(q, d.ldq, k, d.ldk, v, d.ldv, mask, o16.data() + d.col,
                                             d.ldo, c.Lk, c.dh, d.scale, 0, c.Lq);
    m2fp::kern::attention_range<m2fp::kern::V8, 8, 16>(q, d.ldq, k, d.ldk, v, d.ldv, mask,
                                                       o8.data() + d.col, d.ldo, c.Lk, c.dh,
                                                       d.scale, 0, c.Lq);
    for (const auto* o : {&o16, &o8}) {
      const std::vector<float> got = head_block(d, *o);
      const Diff dd = diff(got.data(), want.data(), got.size(), atol);
      EXPECT_EQ(dd.bad, 0u) << (o == &o16 ? "attention_range<V16e,8,16> " : "attention_range<V8,8,16> ")
                            << report(c.str(), dd, atol, got.size());
    }
    ++n;
  }
  std::printf("  %d cases through the 16-lane emulation and the 8x16 register blocking\n", n);
}

// ---- SIMD exp accuracy (the AVX2 implementation; AVX-512 uses the same algorithm) ------------
TEST(SimdExp, AccuracyAndDomain) {
  using m2fp::kern::V8;
  if (!kern::isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  double max_ulp = 0;
  float worst_x = 0;
  alignas(32) float xs[8], ys[8];
  int64_t count = 0;
  // every 613th float bit pattern in [-87.3, 88]
  for (uint32_t bits = 0; bits < 0xFFFFFFFFu - 613; bits += 613) {
    float x;
    std::memcpy(&x, &bits, 4);
    if (!(x >= -87.3f && x <= 88.f)) continue;
    xs[count % 8] = x;
    if (++count % 8) continue;
    V8::store(ys, V8::exp(V8::load(xs)));
    for (int i = 0; i < 8; ++i) {
      const double want = std::exp((double)xs[i]);
      const float wf = (float)want;
      const double ulp = std::nextafter(wf, INFINITY) - wf;
      const double e = std::fabs((double)ys[i] - want) / ulp;
      if (e > max_ulp) max_ulp = e, worst_x = xs[i];
    }
  }
  std::printf("  V8::exp: max error %.3f ulp (at x = %.9g) over %lld inputs in [-87.3, 88]\n",
              max_ulp, worst_x, (long long)count);
  EXPECT_LE(max_ulp, 2.5);
  // domain edges: exact 0 below FLT_MIN's log, -inf -> 0, exp(0) = 1 exactly
  const float edge[8] = {-INFINITY, -1000.f, -87.5f, 0.f, -0.f, -FLT_MAX, 1.f, -1.f};
  V8::store(ys, V8::exp(V8::load(edge)));
  EXPECT_EQ(ys[0], 0.f);
  EXPECT_EQ(ys[1], 0.f);
  EXPECT_EQ(ys[2], 0.f);
  EXPECT_EQ(ys[3], 1.f);
  EXPECT_EQ(ys[4], 1.f);
  EXPECT_EQ(ys[5], 0.f);
  EXPECT_NEAR(ys[6], std::exp(1.0), 3e-7);
  EXPECT_NEAR(ys[7], std::exp(-1.0), 1e-7);
  // NaN gives NaN (as std::exp), whichever lane; the other lanes are unaffected
  const float nans[8] = {NAN, 0.f, -NAN, -INFINITY, 2.f, NAN, -100.f, NAN};
  V8::store(ys, V8::exp(V8::load(nans)));
  for (int i : {0, 2, 5, 7}) EXPECT_TRUE(std::isnan(ys[i])) << "lane " << i;
  EXPECT_EQ(ys[1], 1.f);
  EXPECT_EQ(ys[3], 0.f);
  EXPECT_NEAR(ys[4], std::exp(2.0), 1e-6);
  EXPECT_EQ(ys[6], 0.f);
}

}  // namespace
