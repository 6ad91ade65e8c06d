// tests/kernels/test_softmax.cpp: softmax over rows. Every SIMD path (kern::table_for) against
// the scalar reference at awkward row lengths (1..10560, masked logits), atol 1e-7, rtol 2e-6
// (two ~1-ulp exps, different sum order); stability with large, -inf and NaN logits; the exp's
// accuracy through softmax; the threaded entry point for every ISA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

TEST(Softmax, SimdMatchesReference) {
  Rng rng(1);
  for (Isa isa : simd_isas()) {
    DiffLog log("softmax " + isa_str(isa) + " vs ref");
    const kern::KernelTable& T = kern::table_for(isa);
    for (int64_t n : {1, 2, 7, 8, 13, 15, 16, 17, 31, 33, 100, 1000, 10560}) {
      for (float sd : {0.1f, 3.f, 30.f}) {
        const int64_t rows = n > 1000 ? 2 : 5;
        std::vector<float> x = rng.normals((size_t)(rows * n), 0.f, sd);
        if (n > 3) x[2] = -INFINITY;  // a masked logit
        std::vector<float> want = x, got = x;
        kern::ref::softmax_rows(want.data(), rows, n);
        T.softmax_rows(got.data(), rows, n);
        EXPECT_TRUE(close("softmax " + isa_str(isa) + " rows=" + std::to_string(rows) + " n=" +
                              std::to_string(n) + " sd=" + std::to_string(sd),
                          got.data(), want.data(), rows * n, 1e-7, 2e-6, &log));
      }
    }
  }
}

TEST(Softmax, StabilityMaskingAndSums) {
  for (Isa isa : all_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    // Large logits: max-subtraction keeps them finite; the row sums to 1.
    std::vector<float> x = {1e4f, 1e4f - 1.f, -1e4f, 3e4f, 3e4f, 0.f, 88.f, 89.f, -90.f};
    T.softmax_rows(x.data(), 1, (int64_t)x.size());
    double s = 0;
    for (float v : x) {
      ASSERT_TRUE(std::isfinite(v)) << isa_str(isa);
      s += v;
    }
    EXPECT_NEAR(s, 1.0, 1e-6) << isa_str(isa);
    EXPECT_NEAR(x[3], 0.5f, 1e-6) << isa_str(isa);
    EXPECT_EQ(x[2], 0.f) << isa_str(isa);
    // -inf entries give exactly 0; a row of length 1 gives 1.
    std::vector<float> m(37, -INFINITY);
    m[5] = 2.f;
    m[36] = 2.f;
    T.softmax_rows(m.data(), 1, 37);
    for (int i = 0; i < 37; ++i) EXPECT_EQ(m[i], (i == 5 || i == 36) ? 0.5f : 0.f) << isa_str(isa) << " i=" << i;
    float one = -123.f;
    T.softmax_rows(&one, 1, 1);
    EXPECT_EQ(one, 1.f) << isa_str(isa);
    // A fully masked row is NaN, as torch.softmax gives.
    std::vector<float> all(19, -INFINITY);
    T.softmax_rows(all.data(), 1, 19);
    for (float v : all) EXPECT_TRUE(std::isnan(v)) << isa_str(isa);
    // A NaN logit, in a full vector or in the tail, makes the whole row NaN (as the reference).
    for (int at : {0, 9, 17}) {
      std::vector<float> r(19, 1.f);
      r[(size_t)at] = NAN;
      T.softmax_rows(r.data(), 1, 19);
      for (float v : r) EXPECT_TRUE(std::isnan(v)) << isa_str(isa) << " NaN at " << at;
    }
  }
}

// softmax([0, x]) for x <= -18 is exactly the kernel's exp(x) (1 + e^x rounds to 1), which gives
// the exp approximation's error in ulps against double-precision exp. Over (-18, 0] the whole
// softmax is compared with its double-precision value.
TEST(Softmax, ExpAccuracy) {
  for (Isa isa : all_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    const int n = 20000;
    std::vector<float> rows((size_t)n * 2);
    std::vector<float> xs(n);
    for (int i = 0; i < n; ++i) {
      xs[i] = -87.f + 69.f * (float)i / (float)(n - 1);  // [-87, -18]
      rows[2 * i] = 0.f;
      rows[2 * i + 1] = xs[i];
    }
    T.softmax_rows(rows.data(), n, 2);
    double max_ulp = 0;
    for (int i = 0; i < n; ++i) {
      const double want = std::exp((double)xs[i]);
      const float w = (float)want;
      const double ulp = std::nextafter(w, INFINITY) - w;
      max_ulp = std::max(max_ulp, std::fabs(rows[2 * i + 1] - want) / ulp);
    }
    double max_rel = 0;
    const int m = 20000;
    std::vector<float> r2((size_t)m * 2);
    for (int i = 0; i < m; ++i) {
      r2[2 * i] = 0.f;
      r2[2 * i + 1] = -18.f * (float)i / (float)(m - 1);
    }
    std::vector<float> in = r2;
    T.softmax_rows(r2.data(), m, 2);
    for (int i = 0; i < m; ++i) {
      const double e = std::exp((double)in[2 * i + 1]);
      const double p0 = 1.0 / (1.0 + e), p1 = e / (1.0 + e);
      max_rel = std::max({max_rel, std::fabs(r2[2 * i] - p0) / p0, std::fabs(r2[2 * i + 1] - p1) / p1});
    }
    std::printf("  [exp %s] max error over [-87, -18]: %.2f ulp; softmax([0, x]) over [-18, 0]: max rel %.3g\n",
                isa_str(isa).c_str(), max_ulp, max_rel);
    EXPECT_LE(max_ulp, 2.0) << isa_str(isa);
    EXPECT_LE(max_rel, 4e-7) << isa_str(isa);
  }
}

TEST(Softmax, ThreadedEntryPoint) {
  Rng rng(7);
  const int64_t rows = 37, n = 257;
  std::vector<float> x = rng.normals((size_t)(rows * n), 0.f, 4.f);
  std::vector<float> want = x;
  kern::ref::softmax_rows(want.data(), rows, n);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<float> got = x;
    kern::softmax_rows(got.data(), rows, n);
    EXPECT_TRUE(close("softmax_rows threaded " + isa_str(isa), got.data(), want.data(), rows * n, 1e-7, 2e-6));
  }
}

}  // namespace
