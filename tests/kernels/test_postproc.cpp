// tests/kernels/test_postproc.cpp: the mask post-processing kernels (mask_row_stats,
// paste_row) of every SIMD path against the scalar reference, at awkward lengths, with logits
// spread over [-30, 30], exact zeros, tiny values of both signs and lengths that leave every
// possible tail.
//   count, first, last        exact (a sign test)
//   sig_sum                   rel 1e-5 (float lane sums + ~1-ulp exp vs double sum of expf)
//   paste cat / times         equal, except where p = sigmoid(x) * score is within 1e-5 of 0.5
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

const int64_t kLengths[] = {1, 2, 7, 8, 9, 13, 15, 16, 17, 31, 33, 127, 255, 548, 1000, 4000};

TEST(Postproc, MaskRowStatsMatchesReference) {
  const kern::KernelTable& ref = kern::table_for(Isa::Scalar);
  int checked = 0;
  for (Isa isa : simd_isas())
    for (int64_t n : kLengths)
      for (uint32_t seed = 0; seed < 4; ++seed) {
        const std::vector<float> x = logits(n, seed * 131 + (uint32_t)n);
        int64_t c0 = 5, c1 = 5, f0, f1, l0, l1;  // accumulate onto a non-zero start
        double s0 = 1.0, s1 = 1.0;
        ref.mask_row_stats(x.data(), n, &c0, &s0, &f0, &l0);
        kern::table_for(isa).mask_row_stats(x.data(), n, &c1, &s1, &f1, &l1);
        EXPECT_EQ(c1, c0) << kern::isa_name(isa) << " n=" << n << " seed=" << seed;
        EXPECT_EQ(f1, f0) << kern::isa_name(isa) << " n=" << n;
        EXPECT_EQ(l1, l0) << kern::isa_name(isa) << " n=" << n;
        EXPECT_NEAR(s1, s0, 1e-5 * std::fabs(s0)) << kern::isa_name(isa) << " n=" << n;
        ++checked;
      }
  // The reference itself on a hand-made row: positives at 2 and 5.
  const float row[7] = {-1.f, 0.f, 2.f, -0.f, -3.f, 1e-6f, -2.f};
  int64_t c = 0, f, l;
  double s = 0;
  ref.mask_row_stats(row, 7, &c, &s, &f, &l);
  EXPECT_EQ(c, 2);
  EXPECT_EQ(f, 2);
  EXPECT_EQ(l, 5);
  EXPECT_NEAR(s, 1.0 / (1.0 + std::exp(-2.0)) + 0.5 + 2.5e-7, 1e-6);
  int64_t c2 = 0, f2, l2;
  double s2 = 0;
  const float none[3] = {-1.f, 0.f, -5.f};
  ref.mask_row_stats(none, 3, &c2, &s2, &f2, &l2);
  EXPECT_EQ(c2, 0);
  EXPECT_EQ(f2, -1);
  EXPECT_EQ(l2, -1);
  std::printf("[Postproc] mask_row_stats: %d SIMD rows checked against the reference\n", checked);
}

TEST(Postproc, PasteRowMatchesReference) {
  const kern::KernelTable& ref = kern::table_for(Isa::Scalar);
  int borderline = 0, checked = 0;
  for (Isa isa : simd_isas())
    for (int64_t n : kLengths)
      for (float score : {0.5f, 0.51f, 0.77f, 1.0f}) {
        const std::vector<float> x = logits(n, (uint32_t)n * 7 + (uint32_t)(score * 100));
        std::vector<float> cat0((size_t)n, 0.25f), t0((size_t)n, 1.f), cat1 = cat0, t1 = t0;
        ref.paste_row(x.data(), n, score, cat0.data(), t0.data());
        kern::table_for(isa).paste_row(x.data(), n, score, cat1.data(), t1.data());
        for (int64_t i = 0; i < n; ++i) {
          const float p = 1.f / (1.f + std::exp(-x[i])) * score;
          if (std::fabs(p - 0.5f) < 1e-5f) {
            ++borderline;
            continue;
          }
          ASSERT_EQ(t1[i], t0[i]) << kern::isa_name(isa) << " n=" << n << " i=" << i << " x=" << x[i];
          // cat = 0.25 + sigmoid(x) * score, up to 1.25: the SIMD exp (<= 1 ulp) and the sum's rounding
          // give a few ulps of the sum (4 ulps allowed; 2 seen under -O1, where no FMA is contracted).
          ASSERT_NEAR(cat1[i], cat0[i], 4 * FLT_EPSILON * std::max(1.f, std::fabs(cat0[i])))
              << kern::isa_name(isa) << " n=" << n << " i=" << i;
          ++checked;
        }
      }
  // Reference semantics on a hand-made row: score 0.8 pastes where sigmoid(x) > 0.625.
  const float row[4] = {0.f, 0.4f, 1.f, -3.f};
  float cat[4] = {0, 0, 0, 0}, times[4] = {0, 0, 0, 0};
  ref.paste_row(row, 4, 0.8f, cat, times);
  EXPECT_EQ(times[0], 0.f);                     // 0.4
  EXPECT_EQ(times[1], 0.f);                     // sigmoid(0.4) * 0.8 = 0.4790
  EXPECT_EQ(times[2], 1.f);                     // sigmoid(1) * 0.8 = 0.5849
  EXPECT_NEAR(cat[2], 0.8f / (1.f + std::exp(-1.f)), 1e-7f);
  EXPECT_EQ(times[3], 0.f);
  std::printf("[Postproc] paste_row: %d SIMD values checked, %d borderline skipped\n", checked, borderline);
}

}  // namespace
