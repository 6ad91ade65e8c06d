// tests/kernels/test_groupnorm.cpp: GroupNorm on NHWC data. The statistics phase of every SIMD
// path against the scalar reference, rtol 1e-12 (double sums of floats, only the order differs);
// the affine phase exactly (both paths are one fma and a max); the threaded groupnorm_nhwc for
// every ISA against the definition computed in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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

TEST(GroupNorm, StatsAccumulateAndMatchReference) {
  Rng rng(4);
  for (Isa isa : simd_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    double worst = 0;
    for (int64_t C : {1, 3, 4, 13, 16, 31, 32, 33, 127, 255, 256, 257}) {
      for (int64_t n_pix : {1, 13 * 17, 1000}) {
        std::vector<float> x = rng.normals((size_t)(n_pix * C), 0.7f, 2.f);
        // Pre-filled accumulators: the kernel must add to them.
        std::vector<double> s0((size_t)C), q0((size_t)C);
        for (int64_t c = 0; c < C; ++c) s0[c] = 0.25 * (double)c - 3, q0[c] = 10.0 + c;
        std::vector<double> sw = s0, qw = q0, sg = s0, qg = q0;
        kern::ref::groupnorm_stats_nhwc(x.data(), n_pix, C, sw.data(), qw.data());
        T.groupnorm_stats_nhwc(x.data(), n_pix, C, sg.data(), qg.data());
        for (int64_t c = 0; c < C; ++c) {
          const double es = std::fabs(sg[c] - sw[c]) / std::max(1.0, std::fabs(sw[c]));
          const double eq = std::fabs(qg[c] - qw[c]) / std::max(1.0, std::fabs(qw[c]));
          worst = std::max({worst, es, eq});
          ASSERT_LE(es, 1e-12) << "groupnorm_stats " << isa_str(isa) << " C=" << C << " n_pix=" << n_pix
                               << " c=" << c << " sum got " << sg[c] << " want " << sw[c];
          ASSERT_LE(eq, 1e-12) << "groupnorm_stats " << isa_str(isa) << " C=" << C << " n_pix=" << n_pix
                               << " c=" << c << " sumsq got " << qg[c] << " want " << qw[c];
        }
      }
    }
    std::printf("  [groupnorm_stats %s vs ref] max rel diff %.3g\n", isa_str(isa).c_str(), worst);
  }
}

TEST(GroupNorm, AffineMatchesReferenceExactly) {
  Rng rng(5);
  for (Isa isa : simd_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    for (int64_t C : {1, 3, 13, 16, 127, 255, 256, 257}) {
      for (int64_t n_pix : {1, 13 * 17}) {
        for (int relu = 0; relu < 2; ++relu) {
          std::vector<float> x = rng.normals((size_t)(n_pix * C));
          std::vector<float> sc = rng.normals((size_t)C), sh = rng.normals((size_t)C);
          std::vector<float> want((size_t)(n_pix * C)), got = x;
          kern::ref::affine_nhwc(x.data(), want.data(), n_pix, C, sc.data(), sh.data(), relu);
          T.affine_nhwc(got.data(), got.data(), n_pix, C, sc.data(), sh.data(), relu);  // in place
          EXPECT_TRUE(close("affine_nhwc " + isa_str(isa) + " C=" + std::to_string(C) + " n_pix=" +
                                std::to_string(n_pix) + " relu=" + std::to_string(relu),
                            got.data(), want.data(), n_pix * C, 0, 0));
          if (relu) {
            for (float v : got) ASSERT_GE(v, 0.f);
          }
        }
      }
    }
  }
}

// The threaded groupnorm_nhwc (dispatch.cpp) against the definition computed in double.
TEST(GroupNorm, ThreadedMatchesDefinition) {
  Rng rng(6);
  struct Case { int64_t H, W, C, G; bool relu; };
  for (const Case& k : {Case{13, 17, 64, 32, true}, Case{1, 1, 39, 13, false}, Case{7, 5, 39, 3, true},
                        Case{20, 33, 256, 32, false}}) {
    const int64_t HW = k.H * k.W, C = k.C, cg = C / k.G;
    std::vector<float> x = rng.normals((size_t)(HW * C), 1.5f, 2.f);
    std::vector<float> g = rng.normals((size_t)C, 1.f, 0.2f), b = rng.normals((size_t)C, 0.f, 0.2f);
    std::vector<float> want((size_t)(HW * C));
    for (int64_t gi = 0; gi < k.G; ++gi) {
      double s = 0, ss = 0;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c) s += x[p * C + c];
      const double mean = s / (double)(HW * cg);
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c) ss += std::pow(x[p * C + c] - mean, 2);
      const double rstd = 1.0 / std::sqrt(ss / (double)(HW * cg) + 1e-5);
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c) {
          double v = (x[p * C + c] - mean) * rstd * g[c] + b[c];
          want[p * C + c] = (float)(k.relu ? std::max(v, 0.0) : v);
        }
    }
    for (Isa isa : all_isas()) {
      ScopedIsa s(isa);
      std::vector<float> got = x;
      kern::groupnorm_nhwc(got.data(), got.data(), HW, C, k.G, g.data(), b.data(), 1e-5f, k.relu);
      EXPECT_TRUE(close("groupnorm_nhwc " + isa_str(isa) + " HxWxC=" + std::to_string(k.H) + "x" +
                            std::to_string(k.W) + "x" + std::to_string(C) + " G=" + std::to_string(k.G),
                        got.data(), want.data(), HW * C, 1e-5, 1e-5));
    }
  }
  std::vector<float> x(12), g(12, 1.f), b(12, 0.f);
  EXPECT_THROW(kern::groupnorm_nhwc(x.data(), x.data(), 1, 12, 5, g.data(), b.data(), 1e-5f, false),
               std::invalid_argument);
}

}  // namespace
