// tests/kernels/test_msda.cpp: fused multi-scale deformable attention. Every SIMD path against
// the scalar reference (kern::table_for) at awkward sizes: odd head widths, 13x17 and 1x1 levels,
// 1..3 levels, 1..4 points, sampling locations far outside, non-finite, on the border and exactly
// on pixel centres/edges, large logits; atol 1e-6, rtol 2e-6. The reference on hand-checked
// inputs; the threaded entry point against the active table. ms_deform_attn_bf16 (bfloat16 values):
// the scalar reference bit for bit ms_deform_attn on the values widened with its outputs rounded,
// every SIMD path against it at the same sizes (an fp32 difference within the fp32 op's tolerance
// may round to the neighbouring bfloat16: within one bfloat16 step, and at most 1% of the outputs
// not equal), the threaded entry point against the active table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/attention_cases.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

TEST(MsDeformAttn, SimdMatchesScalar) {
  // Same float operations in the same order except exp (SIMD exp < 1 ulp vs std::exp): the
  // attention weights differ by an ulp or two, the outputs by ~1e-7.
  const Tol tol{1e-6, 2e-6};
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  int n = 0;
  double worst = 0;
  for (const MsdaCase& c : msda_cases()) {
    const MsdaData d = make_msda(c);
    const std::vector<float> want = run_msda(kern::table_for(Isa::Scalar), d, 0, c.Lq);
    for (Isa isa : isas) {
      // one call over all queries, and the same queries split in two uneven calls
      const std::vector<float> got = run_msda(kern::table_for(isa), d, 0, c.Lq);
      std::vector<float> split((size_t)c.Lq * c.heads * c.dh, -7.f);
      run_msda(kern::table_for(isa), d, 0, 5, &split);
      run_msda(kern::table_for(isa), d, 5, c.Lq, &split);
      const Diff dd = diff(got.data(), want.data(), got.size(), tol);
      worst = std::max(worst, dd.max_abs);
      EXPECT_EQ(dd.bad, 0u) << kern::isa_name(isa) << " " << report(c.str(), dd, tol, got.size());
      EXPECT_EQ(std::memcmp(got.data(), split.data(), got.size() * sizeof(float)), 0)
          << kern::isa_name(isa) << " split calls differ: " << c.str();
      for (float x : got) ASSERT_TRUE(std::isfinite(x)) << kern::isa_name(isa) << " " << c.str();
      ++n;
    }
  }
  std::string names;
  for (Isa isa : isas) names += std::string(" ") + kern::isa_name(isa);
  std::printf("  ms_deform_attn: %d (case, isa) pairs (isas:%s), max|diff| vs scalar %g (atol %g rtol %g)\n",
              n, names.c_str(), worst, tol.atol, tol.rtol);
}

TEST(MsDeformAttnBf16, ScalarIsTheFp32ReferenceOnWidenedValues) {
  int n = 0;
  for (const MsdaCase& c : msda_cases()) {
    const MsdaData d = make_msda(c);
    const std::vector<uint16_t> vb = msda_value_bf16(d);
    MsdaData w = d;
    w.value = msda_widened(vb);
    const std::vector<uint16_t> want = to_bf16(run_msda(kern::table_for(Isa::Scalar), w, 0, c.Lq));
    const std::vector<uint16_t> got = run_msda_bf16(kern::table_for(Isa::Scalar), d, vb, 0, c.Lq);
    ASSERT_EQ(got, want) << c.str();
    ++n;
  }
  std::printf("  ms_deform_attn_bf16 scalar == ms_deform_attn on widened values: %d cases\n", n);
}

TEST(MsDeformAttnBf16, SimdMatchesScalar) {
  // As the fp32 op: the same float operations in the same order except exp, then the rounding: an
  // output ~1e-7 off in fp32 may round to the neighbouring bfloat16 (a step of 2^-8 relative).
  const Tol tol{1e-6, 1.0 / 128};
  int64_t total = 0, unequal = 0;
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  int n = 0;
  double worst = 0;
  // the suite's cases, and head widths around the 2W-channel pairs (16, 32 values) and their tails
  std::vector<MsdaCase> cases = msda_cases();
  uint32_t seed = 500;
  for (int dh : {2, 8, 15, 16, 17, 24, 31, 48, 64, 65})
    cases.push_back({{{5, 9}, {13, 17}, {26, 34}}, 1 + dh % 4, 1 + dh % 3, dh, 23, Loc::Random, dh % 2 == 0, seed++});
  for (const MsdaCase& c : cases) {
    const MsdaData d = make_msda(c);
    const std::vector<uint16_t> vb = msda_value_bf16(d);
    const std::vector<uint16_t> want16 = run_msda_bf16(kern::table_for(Isa::Scalar), d, vb, 0, c.Lq);
    const std::vector<float> want = msda_widened(want16);
    for (Isa isa : isas) {
      const std::vector<uint16_t> got16 = run_msda_bf16(kern::table_for(isa), d, vb, 0, c.Lq);
      std::vector<uint16_t> split(got16.size(), 0xdead);
      run_msda_bf16(kern::table_for(isa), d, vb, 0, 5, &split);
      run_msda_bf16(kern::table_for(isa), d, vb, 5, c.Lq, &split);
      EXPECT_EQ(got16, split) << kern::isa_name(isa) << " split calls differ: " << c.str();
      for (size_t i = 0; i < got16.size(); ++i) unequal += got16[i] != want16[i];
      total += (int64_t)got16.size();
      const std::vector<float> got = msda_widened(got16);
      const Diff dd = diff(got.data(), want.data(), got.size(), tol);
      worst = std::max(worst, dd.max_abs);
      EXPECT_EQ(dd.bad, 0u) << kern::isa_name(isa) << " " << report(c.str(), dd, tol, got.size());
      for (float x : got) ASSERT_TRUE(std::isfinite(x)) << kern::isa_name(isa) << " " << c.str();
      ++n;
    }
  }
  std::string names;
  for (Isa isa : isas) names += std::string(" ") + kern::isa_name(isa);
  std::printf("  ms_deform_attn_bf16: %d (case, isa) pairs (isas:%s), max|diff| vs scalar %g (atol %g rtol %g), "
              "%lld of %lld outputs not equal\n",
              n, names.c_str(), worst, tol.atol, tol.rtol, (long long)unequal, (long long)total);
  EXPECT_LE(unequal * 100, total) << "more than 1% of the bf16 outputs differ from the scalar reference";
}

TEST(MsDeformAttnBf16, ThreadedEntryPointMatchesTable) {
  const MsdaCase c{{{20, 33}, {40, 66}}, 4, 8, 32, 1000, Loc::Random, false, 98};
  const MsdaData d = make_msda(c);
  const std::vector<uint16_t> vb = msda_value_bf16(d);
  const std::vector<uint16_t> want = run_msda_bf16(kern::active(), d, vb, 0, c.Lq);
  std::vector<uint16_t> got(want.size(), 0xdead);
  kern::ms_deform_attn_bf16(vb.data(), d.shapes.data(), d.starts.data(), d.L, c.P, c.heads, c.dh, d.ref.data(),
                            d.offsets(), d.logits(), d.ld_qp, got.data(), c.Lq);
  EXPECT_EQ(got, want)
      << "threaded ms_deform_attn_bf16 differs from one " << kern::isa_name(kern::active_isa())
      << " call: " << c.str();
}

// The scalar reference on hand-checkable inputs: a 2x2 map, one head/level/point.
TEST(MsDeformAttn, ScalarHandChecked) {
  const int64_t shapes[2] = {2, 2}, starts[1] = {0};
  const float value[4] = {1.f, 2.f, 3.f, 4.f};  // rows (y, x): (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4
  auto sample = [&](float rx, float ry, float ox, float oy) {
    const float qp[3] = {ox, oy, 0.f};  // offsets (x, y), logit
    const float ref[2] = {rx, ry};
    float out = -1;
    kern::table_for(Isa::Scalar).ms_deform_attn(value, shapes, starts, 1, 1, 1, 1, ref, qp, qp + 2, 3,
                                                &out, 0, 1);
    return out;
  };
  EXPECT_FLOAT_EQ(sample(0.25f, 0.25f, 0, 0), 1.f);  // centre of pixel (0, 0)
  EXPECT_FLOAT_EQ(sample(0.75f, 0.75f, 0, 0), 4.f);
  EXPECT_FLOAT_EQ(sample(0.5f, 0.5f, 0, 0), 2.5f);   // the middle: mean of the 4 pixels
  EXPECT_FLOAT_EQ(sample(0.5f, 0.25f, 0, 0), 1.5f);  // between (0,0) and (0,1)
  EXPECT_FLOAT_EQ(sample(0.f, 0.25f, 0, 0), 0.5f);   // half outside on the left: zero padding
  EXPECT_FLOAT_EQ(sample(0.f, 0.f, 0, 0), 0.25f);    // corner: one quarter of pixel (0,0)
  EXPECT_FLOAT_EQ(sample(0.25f, 0.25f, 1.f, 0), 2.f);  // offset of one pixel (offset / W)
  EXPECT_FLOAT_EQ(sample(0.25f, 0.25f, -5.f, 0), 0.f);  // far outside
}

TEST(MsDeformAttn, ThreadedEntryPointMatchesTable) {
  const MsdaCase c{{{20, 33}, {40, 66}}, 4, 8, 32, 1000, Loc::Random, false, 99};
  const MsdaData d = make_msda(c);
  const std::vector<float> want = run_msda(kern::active(), d, 0, c.Lq);
  std::vector<float> got(want.size(), -7.f);
  kern::ms_deform_attn(d.value.data(), d.shapes.data(), d.starts.data(), d.L, c.P, c.heads, c.dh,
                       d.ref.data(), d.offsets(), d.logits(), d.ld_qp, got.data(), c.Lq);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "threaded ms_deform_attn differs from one " << kern::isa_name(kern::active_isa())
      << " call: " << c.str();
}

}  // namespace
