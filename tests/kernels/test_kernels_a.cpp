// tests/kernels/test_kernels_a.cpp: softmax, LayerNorm, GroupNorm, bilinear resizes, PIL resample.
//
// 1. Every SIMD path (kern::table_for) against the scalar reference at awkward sizes (odd channel
//    counts, 1x1 and 13x17 maps, rows of 1..10560, up/down scales to and from size 1), each op with
//    its own tolerance, printed with the op's parameters on failure and as a one-line summary.
// 2. The threaded entry points (kern::softmax_rows, groupnorm_nhwc, ...) for every ISA.
// 3. Semantic parity with PyTorch 1.13 and Pillow: tests/kernels/kernels_a_reference.py, run with
//    M2FP_PYTHON (/usr/bin/python3), computes F.interpolate / layer_norm / group_norm / softmax /
//    Image.resize(BILINEAR) on inputs this test writes to a temporary directory.
//
// Tolerances (|got - want| <= atol + rtol * |want|):
//   softmax  SIMD vs ref   atol 1e-7,  rtol 2e-6 (two ~1-ulp exps, different sum order)
//   LayerNorm SIMD vs ref  atol 1e-5,  rtol 1e-5 (float statistics vs the reference's double)
//   GN stats SIMD vs ref   rtol 1e-12 (double sums of floats, only the order differs)
//   GN affine              exact (both paths are one fma and a max)
//   resize   SIMD vs ref   atol 1e-6 on O(1) data (the paths share taps and fma order: expect 0)
//   PIL                    exact (integer arithmetic)
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/internal.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

// ---- helpers ------------------------------------------------------------------------------------

std::vector<Isa> simd_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::Avx2, Isa::Avx512})
    if (kern::isa_supported(i)) v.push_back(i);
  return v;
}

std::vector<Isa> all_isas() {
  std::vector<Isa> v{Isa::Scalar};
  for (Isa i : simd_isas()) v.push_back(i);
  return v;
}

// Makes `isa` the active path for the threaded entry points, restores the previous one on exit.
struct ScopedIsa {
  Isa prev;
  explicit ScopedIsa(Isa isa) : prev(kern::active_isa()) { kern::set_active_isa(isa); }
  ~ScopedIsa() { kern::set_active_isa(prev); }
};

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  float normal(float mean = 0.f, float sd = 1.f) { return std::normal_distribution<float>(mean, sd)(g); }
  float uniform(float a, float b) { return std::uniform_real_distribution<float>(a, b)(g); }
  int integer(int a, int b) { return std::uniform_int_distribution<int>(a, b)(g); }
  std::vector<float> normals(size_t n, float mean = 0.f, float sd = 1.f) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(mean, sd);
    return v;
  }
  std::vector<uint8_t> bytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (uint8_t& x : v) x = (uint8_t)integer(0, 255);
    return v;
  }
};

// Running maximum of the differences seen by one test, printed as one labelled line at the end.
struct DiffLog {
  std::string label;
  int cases = 0;
  double max_abs = 0, max_rel = 0;
  explicit DiffLog(std::string l) : label(std::move(l)) {}
  ~DiffLog() {
    std::printf("  [%s] %d cases, max abs diff %.3g, max rel diff %.3g\n", label.c_str(), cases,
                max_abs, max_rel);
  }
};

// Element-wise |got - want| <= atol + rtol * |want| (NaN matches NaN only). On failure the message
// names the case, the worst element and the number of elements over the tolerance.
::testing::AssertionResult close(const std::string& what, const float* got, const float* want,
                                 int64_t n, double atol, double rtol, DiffLog* log = nullptr) {
  double max_abs = 0, max_rel = 0;
  int64_t bad = 0, worst = -1;
  double worst_excess = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(g) || std::isnan(w)) {
      if (std::isnan(g) != std::isnan(w)) {
        ++bad;
        if (worst_excess < INFINITY) worst = i, worst_excess = INFINITY;
      }
      continue;
    }
    if (g == w) continue;  // also equal infinities
    const double d = std::fabs(g - w);
    max_abs = std::max(max_abs, d);
    if (w != 0) max_rel = std::max(max_rel, d / std::fabs(w));
    const double excess = d - (atol + rtol * std::fabs(w));
    if (excess > 0) {
      ++bad;
      if (excess > worst_excess) worst = i, worst_excess = excess;
    }
  }
  if (log) {
    ++log->cases;
    log->max_abs = std::max(log->max_abs, max_abs);
    log->max_rel = std::max(log->max_rel, max_rel);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << n << " values over tolerance (atol " << atol
         << ", rtol " << rtol << "); worst at [" << worst << "]: got " << got[worst] << " want "
         << want[worst] << "; max abs diff " << max_abs << ", max rel diff " << max_rel;
}

::testing::AssertionResult same_bytes(const std::string& what, const uint8_t* got,
                                      const uint8_t* want, int64_t n, int* max_diff_out = nullptr) {
  int64_t bad = 0, first = -1;
  int max_diff = 0;
  for (int64_t i = 0; i < n; ++i)
    if (got[i] != want[i]) {
      if (first < 0) first = i;
      ++bad;
      max_diff = std::max(max_diff, std::abs((int)got[i] - (int)want[i]));
    }
  if (max_diff_out) *max_diff_out = std::max(*max_diff_out, max_diff);
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << n
                                       << " bytes differ, max difference " << max_diff
                                       << " levels; first at [" << first << "]: got "
                                       << (int)got[first] << " want " << (int)want[first];
}

// Output size for a scale factor, at least 1.
int64_t scaled(int64_t n, double f) { return std::max<int64_t>(1, std::llround((double)n * f)); }
const double kFactors[] = {1.0 / 7.0, 0.37, 1.0, 1.6, 2.9};

std::string isa_str(Isa i) { return kern::isa_name(i); }

// ---- softmax ------------------------------------------------------------------------------------

TEST(KernelsA_Softmax, SimdMatchesReference) {
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

TEST(KernelsA_Softmax, StabilityMaskingAndSums) {
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
TEST(KernelsA_Softmax, ExpAccuracy) {
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

TEST(KernelsA_Softmax, ThreadedEntryPoint) {
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

// ---- LayerNorm ----------------------------------------------------------------------------------

TEST(KernelsA_LayerNorm, SimdMatchesReference) {
  Rng rng(2);
  for (Isa isa : simd_isas()) {
    DiffLog log("layernorm " + isa_str(isa) + " vs ref");
    const kern::KernelTable& T = kern::table_for(isa);
    for (int64_t C : {1, 3, 7, 8, 13, 16, 17, 127, 255, 256, 257, 1000}) {
      for (int64_t rows : {1, 7}) {
        for (int variant = 0; variant < 4; ++variant) {  // bit 0: residual, bit 1: in place
          const bool res = variant & 1, inplace = variant & 2;
          // An offset mean (5) with a small spread is the hard case for the variance.
          std::vector<float> x = rng.normals((size_t)(rows * C), 5.f, 0.5f);
          std::vector<float> r = rng.normals((size_t)(rows * C), 0.f, 0.3f);
          std::vector<float> g = rng.normals((size_t)C, 1.f, 0.2f), b = rng.normals((size_t)C, 0.f, 0.2f);
          std::vector<float> want((size_t)(rows * C)), got((size_t)(rows * C));
          kern::ref::layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), want.data(), rows, C, 1e-5f);
          if (inplace) {
            got = x;
            T.layernorm_rows(got.data(), res ? r.data() : nullptr, g.data(), b.data(), got.data(), rows, C, 1e-5f);
          } else {
            T.layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), got.data(), rows, C, 1e-5f);
          }
          EXPECT_TRUE(close("layernorm " + isa_str(isa) + " rows=" + std::to_string(rows) + " C=" +
                                std::to_string(C) + " residual=" + std::to_string(res) +
                                " inplace=" + std::to_string(inplace),
                            got.data(), want.data(), rows * C, 1e-5, 1e-5, &log));
        }
      }
    }
  }
}

TEST(KernelsA_LayerNorm, ThreadedEntryPointAndDoubleFormula) {
  Rng rng(3);
  const int64_t rows = 53, C = 256;
  std::vector<float> x = rng.normals((size_t)(rows * C)), r = rng.normals((size_t)(rows * C));
  std::vector<float> g = rng.normals((size_t)C, 1.f, 0.1f), b = rng.normals((size_t)C, 0.f, 0.1f);
  // The definition, in double: y = (v - mean) / sqrt(var_biased + eps) * g + b, v = x + r.
  std::vector<float> want((size_t)(rows * C));
  for (int64_t i = 0; i < rows; ++i) {
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; ++c) s += (double)(x[i * C + c] + r[i * C + c]);
    const double mean = s / C;
    for (int64_t c = 0; c < C; ++c) ss += std::pow((double)(x[i * C + c] + r[i * C + c]) - mean, 2);
    const double rstd = 1.0 / std::sqrt(ss / C + 1e-5);
    for (int64_t c = 0; c < C; ++c)
      want[i * C + c] = (float)(((double)(x[i * C + c] + r[i * C + c]) - mean) * rstd * g[c] + b[c]);
  }
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<float> got = x;  // in place
    kern::layernorm_rows(got.data(), r.data(), g.data(), b.data(), got.data(), rows, C, 1e-5f);
    EXPECT_TRUE(close("layernorm_rows threaded in-place " + isa_str(isa), got.data(), want.data(), rows * C, 1e-5, 1e-5));
  }
}

// ---- GroupNorm ----------------------------------------------------------------------------------

TEST(KernelsA_GroupNorm, StatsAccumulateAndMatchReference) {
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

TEST(KernelsA_GroupNorm, AffineMatchesReferenceExactly) {
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
TEST(KernelsA_GroupNorm, ThreadedMatchesDefinition) {
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

// ---- bilinear resize ----------------------------------------------------------------------------

struct ResizeCase { int64_t H, W, oh, ow; };

std::vector<ResizeCase> resize_cases() {
  std::vector<ResizeCase> v;
  for (auto [H, W] : {std::pair<int64_t, int64_t>{13, 17}, {37, 29}})
    for (double fy : kFactors)
      for (double fx : kFactors) v.push_back({H, W, scaled(H, fy), scaled(W, fx)});
  v.push_back({1, 1, 5, 7});      // from size 1
  v.push_back({13, 17, 1, 1});    // to size 1
  v.push_back({1, 17, 3, 17});
  v.push_back({13, 1, 13, 4});
  v.push_back({2, 2, 1, 3});
  v.push_back({160, 264, 640, 1056});  // the model's x4 mask upsample
  v.push_back({160, 264, 80, 132});    // attention-mask downsample
  v.push_back({20, 33, 160, 264});
  return v;
}

std::string rc_str(const ResizeCase& c) {
  return std::to_string(c.H) + "x" + std::to_string(c.W) + "->" + std::to_string(c.oh) + "x" + std::to_string(c.ow);
}

TEST(KernelsA_Resize, PlaneSimdMatchesReference) {
  Rng rng(8);
  for (Isa isa : simd_isas()) {
    DiffLog log("resize plane " + isa_str(isa) + " vs ref");
    const kern::KernelTable& T = kern::table_for(isa);
    for (const ResizeCase& c : resize_cases()) {
      std::vector<float> src = rng.normals((size_t)(c.H * c.W));
      std::vector<float> want((size_t)(c.oh * c.ow)), got((size_t)(c.oh * c.ow), NAN);
      kern::ref::resize_bilinear_plane_rows(src.data(), c.H, c.W, want.data(), c.oh, c.ow, 0, c.oh);
      // Uneven row chunks, dst pointing at each chunk's first row.
      for (int64_t y0 = 0; y0 < c.oh;) {
        const int64_t y1 = std::min(c.oh, y0 + 1 + (y0 % 5));
        T.resize_bilinear_plane_rows(src.data(), c.H, c.W, got.data() + y0 * c.ow, c.oh, c.ow, y0, y1);
        y0 = y1;
      }
      EXPECT_TRUE(close("resize plane " + isa_str(isa) + " " + rc_str(c), got.data(), want.data(),
                        c.oh * c.ow, 1e-6, 0, &log));
    }
  }
}

TEST(KernelsA_Resize, ReferenceBasicProperties) {
  Rng rng(9);
  // Same size is an exact copy; a 1x1 source gives a constant (up to the weights' rounding).
  std::vector<float> src = rng.normals(13 * 17), out(13 * 17);
  kern::ref::resize_bilinear_plane_rows(src.data(), 13, 17, out.data(), 13, 17, 0, 13);
  EXPECT_TRUE(close("resize identity", out.data(), src.data(), 13 * 17, 0, 0));
  float one = 0.75f;
  std::vector<float> o2(5 * 7);
  kern::ref::resize_bilinear_plane_rows(&one, 1, 1, o2.data(), 5, 7, 0, 5);
  for (float v : o2) EXPECT_NEAR(v, 0.75f, 2e-7f);
  // x2 upsample of a ramp: interior outputs at (i + 0.5) / 2 - 0.5 of the input ramp.
  std::vector<float> ramp(8);
  for (int i = 0; i < 8; ++i) ramp[i] = (float)i;
  std::vector<float> up(16);
  kern::ref::resize_bilinear_plane_rows(ramp.data(), 1, 8, up.data(), 1, 16, 0, 1);
  EXPECT_EQ(up[0], 0.f);
  for (int i = 1; i < 15; ++i) EXPECT_NEAR(up[i], (i + 0.5) / 2 - 0.5, 1e-6) << i;
  EXPECT_EQ(up[15], 7.f);
}

TEST(KernelsA_Resize, NhwcMatchesReferenceAndPlanes) {
  Rng rng(10);
  std::vector<ResizeCase> cases;
  for (double fy : kFactors)
    for (double fx : {1.0 / 7.0, 1.0, 2.9}) cases.push_back({13, 17, scaled(13, fy), scaled(17, fx)});
  cases.push_back({1, 1, 3, 5});
  cases.push_back({13, 17, 1, 1});
  for (int64_t C : {1, 3, 13, 16, 127, 255, 256, 257}) {
    for (const ResizeCase& c : cases) {
      if (C > 16 && c.oh * c.ow > 200 && c.H * c.W != 1) continue;  // keep the big-C cases small
      std::vector<float> src = rng.normals((size_t)(c.H * c.W * C));
      std::vector<float> want((size_t)(c.oh * c.ow * C));
      kern::ref::resize_bilinear_nhwc_rows(src.data(), c.H, c.W, C, want.data(), c.oh, c.ow, 0, c.oh);
      // The NHWC reference equals the plane reference channel by channel, bit for bit.
      std::vector<float> plane((size_t)(c.H * c.W)), po((size_t)(c.oh * c.ow)), viaplanes(want.size());
      for (int64_t ch = 0; ch < C; ++ch) {
        for (int64_t p = 0; p < c.H * c.W; ++p) plane[p] = src[p * C + ch];
        kern::ref::resize_bilinear_plane_rows(plane.data(), c.H, c.W, po.data(), c.oh, c.ow, 0, c.oh);
        for (int64_t p = 0; p < c.oh * c.ow; ++p) viaplanes[p * C + ch] = po[p];
      }
      ASSERT_TRUE(close("resize nhwc ref vs planes C=" + std::to_string(C) + " " + rc_str(c),
                        want.data(), viaplanes.data(), (int64_t)want.size(), 0, 0));
      for (Isa isa : simd_isas()) {
        std::vector<float> got(want.size(), NAN);
        for (int64_t y0 = 0; y0 < c.oh;) {
          const int64_t y1 = std::min(c.oh, y0 + 2);
          kern::table_for(isa).resize_bilinear_nhwc_rows(src.data(), c.H, c.W, C, got.data() + y0 * c.ow * C,
                                                         c.oh, c.ow, y0, y1);
          y0 = y1;
        }
        EXPECT_TRUE(close("resize nhwc " + isa_str(isa) + " C=" + std::to_string(C) + " " + rc_str(c),
                          got.data(), want.data(), (int64_t)want.size(), 1e-6, 0));
      }
    }
  }
}

TEST(KernelsA_Resize, ThreadedEntryPoints) {
  Rng rng(11);
  const int64_t P = 5, H = 20, W = 33, oh = 77, ow = 131, C = 19;
  std::vector<float> src = rng.normals((size_t)(P * H * W)), want((size_t)(P * oh * ow));
  for (int64_t p = 0; p < P; ++p)
    kern::ref::resize_bilinear_plane_rows(src.data() + p * H * W, H, W, want.data() + p * oh * ow, oh, ow, 0, oh);
  std::vector<float> srcn = rng.normals((size_t)(H * W * C)), wantn((size_t)(oh * ow * C));
  kern::ref::resize_bilinear_nhwc_rows(srcn.data(), H, W, C, wantn.data(), oh, ow, 0, oh);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<float> got(want.size(), NAN), gotn(wantn.size(), NAN);
    kern::resize_bilinear_planes(src.data(), P, H, W, got.data(), oh, ow);
    kern::resize_bilinear_nhwc(srcn.data(), H, W, C, gotn.data(), oh, ow);
    EXPECT_TRUE(close("resize_bilinear_planes " + isa_str(isa), got.data(), want.data(), (int64_t)want.size(), 1e-6, 0));
    EXPECT_TRUE(close("resize_bilinear_nhwc " + isa_str(isa), gotn.data(), wantn.data(), (int64_t)wantn.size(), 1e-6, 0));
  }
}

// ---- PIL resample -------------------------------------------------------------------------------

TEST(KernelsA_Pil, CoefficientTables) {
  for (int64_t in : {1, 2, 7, 13, 342, 548, 1000}) {
    for (double f : {1.0 / 7.0, 0.37, 1.0, 1.6, 2.9}) {
      const int64_t out = scaled(in, f);
      std::vector<int32_t> b, k;
      const int K = kern::pil_bilinear_coeffs(in, out, &b, &k);
      const double support = std::max(1.0, (double)in / (double)out);
      ASSERT_EQ(K, (int)std::ceil(support) * 2 + 1) << in << "->" << out;
      ASSERT_EQ(b.size(), (size_t)(2 * out));
      ASSERT_EQ(k.size(), (size_t)(out * K));
      for (int64_t i = 0; i < out; ++i) {
        const int32_t xmin = b[2 * i], cnt = b[2 * i + 1];
        ASSERT_GE(xmin, 0);
        ASSERT_GE(cnt, 1);
        ASSERT_LE(xmin + cnt, in) << in << "->" << out << " i=" << i;
        int64_t s = 0;
        for (int t = 0; t < K; ++t) {
          if (t >= cnt) {
            ASSERT_EQ(k[i * K + t], 0);
          }
          ASSERT_GE(k[i * K + t], 0);
          s += k[i * K + t];
        }
        // Normalised weights, each rounded: the sum is 2^22 up to the rounding of cnt terms.
        ASSERT_LE(std::llabs(s - (1 << kern::kPilPrecisionBits)), cnt) << in << "->" << out << " i=" << i;
      }
    }
  }
  // Same size: every output is exactly its input pixel.
  std::vector<int32_t> b, k;
  const int K = kern::pil_bilinear_coeffs(9, 9, &b, &k);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(b[2 * i], i);
    EXPECT_EQ(k[i * K], 1 << kern::kPilPrecisionBits);
  }
  EXPECT_THROW(kern::pil_bilinear_coeffs(0, 5, &b, &k), std::invalid_argument);
  EXPECT_THROW(kern::pil_bilinear_coeffs(5, 0, &b, &k), std::invalid_argument);
  EXPECT_THROW(kern::pil_bilinear_coeffs(5, 5, nullptr, &k), std::invalid_argument);
}

TEST(KernelsA_Pil, PassesMatchReference) {
  Rng rng(12);
  for (Isa isa : simd_isas()) {
    const kern::KernelTable& T = kern::table_for(isa);
    int cases = 0;
    for (int ch = 1; ch <= 4; ++ch) {
      for (auto [H, W] : {std::pair<int64_t, int64_t>{1, 1}, {13, 17}, {37, 53}, {5, 301}}) {
        for (double f : kFactors) {
          const int64_t ow = scaled(W, f), oh = scaled(H, f);
          std::vector<uint8_t> src = rng.bytes((size_t)(H * W * ch));
          // Saturated content exercises the clip (weights sum slightly above 2^22).
          for (size_t i = 0; i < src.size() / 3; ++i) src[i] = 255;
          std::vector<int32_t> xb, xk, yb, yk;
          const int kx = kern::pil_bilinear_coeffs(W, ow, &xb, &xk);
          const int ky = kern::pil_bilinear_coeffs(H, oh, &yb, &yk);
          std::vector<uint8_t> hw((size_t)(H * ow * ch)), hg(hw.size(), 0xAB);
          kern::ref::pil_resample_h_u8(src.data(), W, ch, hw.data(), ow, xb.data(), xk.data(), kx, 0, H);
          for (int64_t y0 = 0; y0 < H;) {  // uneven row chunks
            const int64_t y1 = std::min(H, y0 + 1 + y0 % 3);
            T.pil_resample_h_u8(src.data(), W, ch, hg.data(), ow, xb.data(), xk.data(), kx, y0, y1);
            y0 = y1;
          }
          const std::string what = isa_str(isa) + " ch=" + std::to_string(ch) + " " + std::to_string(H) + "x" +
                                   std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow);
          ASSERT_TRUE(same_bytes("pil_resample_h " + what, hg.data(), hw.data(), (int64_t)hw.size()));
          // vertical pass on the horizontal result (the W of that image is ow)
          std::vector<uint8_t> vw((size_t)(oh * ow * ch)), vg(vw.size(), 0xCD);
          kern::ref::pil_resample_v_u8(hw.data(), ow, ch, vw.data(), yb.data(), yk.data(), ky, 0, oh);
          for (int64_t y0 = 0; y0 < oh;) {
            const int64_t y1 = std::min(oh, y0 + 2);
            T.pil_resample_v_u8(hw.data(), ow, ch, vg.data(), yb.data(), yk.data(), ky, y0, y1);
            y0 = y1;
          }
          ASSERT_TRUE(same_bytes("pil_resample_v " + what, vg.data(), vw.data(), (int64_t)vw.size()));
          ++cases;
        }
      }
    }
    std::printf("  [pil_resample %s vs ref] %d cases, max difference 0 levels\n", isa_str(isa).c_str(), cases);
  }
}

// resize_pil_bilinear_u8 (dispatch.cpp) = PIL's ImagingResampleInner: horizontal pass over the
// input rows the vertical pass reads, then the vertical pass; checked against that composition.
TEST(KernelsA_Pil, ThreadedResizeMatchesComposition) {
  Rng rng(13);
  for (auto [H, W, oh, ow, ch] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int>{342, 548, 640, 1025, 3},
                                  {37, 53, 5, 8, 1}, {1, 1, 3, 2, 3}, {40, 30, 40, 30, 4}, {64, 64, 9, 200, 2}}) {
    std::vector<uint8_t> src = rng.bytes((size_t)(H * W * ch));
    std::vector<int32_t> xb, xk, yb, yk;
    const int kx = kern::pil_bilinear_coeffs(W, ow, &xb, &xk);
    const int ky = kern::pil_bilinear_coeffs(H, oh, &yb, &yk);
    std::vector<uint8_t> tmp((size_t)(H * ow * ch)), want((size_t)(oh * ow * ch));
    kern::ref::pil_resample_h_u8(src.data(), W, ch, tmp.data(), ow, xb.data(), xk.data(), kx, 0, H);
    kern::ref::pil_resample_v_u8(tmp.data(), ow, ch, want.data(), yb.data(), yk.data(), ky, 0, oh);
    for (Isa isa : all_isas()) {
      ScopedIsa s(isa);
      std::vector<uint8_t> got(want.size(), 0x5A);
      kern::resize_pil_bilinear_u8(src.data(), H, W, ch, got.data(), oh, ow);
      EXPECT_TRUE(same_bytes("resize_pil_bilinear_u8 " + isa_str(isa) + " " + std::to_string(H) + "x" +
                                 std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow) +
                                 " ch=" + std::to_string(ch),
                             got.data(), want.data(), (int64_t)want.size()));
    }
  }
  uint8_t px[3] = {1, 2, 3}, out[3];
  EXPECT_THROW(kern::resize_pil_bilinear_u8(px, 1, 1, 3, out, 0, 1), std::invalid_argument);
}

// ---- parity with PyTorch and Pillow -------------------------------------------------------------

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "m2fp_kernels_a_XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed for " + t);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

template <class T>
void write_bin(const std::filesystem::path& p, const std::vector<T>& v) {
  std::ofstream f(p, std::ios::binary);
  f.write((const char*)v.data(), (std::streamsize)(v.size() * sizeof(T)));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

template <class T>
std::vector<T> read_bin(const std::filesystem::path& p, size_t n) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("missing reference output " + p.string());
  std::vector<T> v(n);
  f.read((char*)v.data(), (std::streamsize)(n * sizeof(T)));
  if ((size_t)f.gcount() != n * sizeof(T) || f.peek() != EOF)
    throw std::runtime_error(p.string() + ": expected " + std::to_string(n * sizeof(T)) + " bytes");
  return v;
}

std::string run_capture(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *rc = -1;
    return "popen failed";
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *rc = pclose(p);
  return out;
}

TEST(KernelsA_Parity, TorchAndPillow) {
  TempDir dir;
  std::ofstream cases(dir.path / "cases.txt");
  Rng rng(14);
  // Each case: a name, how to write it, and a check run after the script.
  std::vector<std::function<void()>> checks;
  auto file = [&](const std::string& name, const std::string& part) { return dir.path / (name + "." + part + ".bin"); };
  int id = 0;
  DiffLog log_i("parity interpolate vs torch"), log_n("parity layernorm/groupnorm vs torch"),
      log_s("parity softmax vs torch");
  int pil_max = 0, pil_cases = 0;

  // F.interpolate on planes and on NHWC maps.
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> planes;  // P H W oh ow
  for (double f : kFactors) planes.emplace_back(3, 13, 17, scaled(13, f), scaled(17, f));
  for (double f : kFactors) planes.emplace_back(2, 37, 29, scaled(37, f), scaled(29, 1.0 / f));
  planes.emplace_back(2, 1, 1, 5, 7);
  planes.emplace_back(2, 13, 17, 1, 1);
  planes.emplace_back(2, 160, 264, 640, 1056);
  planes.emplace_back(3, 160, 264, 80, 132);
  planes.emplace_back(3, 20, 33, 160, 264);
  for (auto [P, H, W, oh, ow] : planes) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(P * H * W));
    write_bin(file(name, "in"), x);
    cases << "interp_planes " << name << " P=" << P << " H=" << H << " W=" << W << " OH=" << oh << " OW=" << ow << "\n";
    checks.push_back([&, name, x, P = P, H = H, W = W, oh = oh, ow = ow] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(P * oh * ow));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::resize_bilinear_planes(x.data(), P, H, W, got.data(), oh, ow);
        EXPECT_TRUE(close("F.interpolate planes " + isa_str(isa) + " " + std::to_string(H) + "x" + std::to_string(W) +
                              "->" + std::to_string(oh) + "x" + std::to_string(ow),
                          got.data(), want.data(), (int64_t)want.size(), 1e-6, 0, &log_i));
      }
    });
  }
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> nhwc;  // H W C oh ow
  for (double f : kFactors) nhwc.emplace_back(13, 17, 13, scaled(13, f), scaled(17, f));
  nhwc.emplace_back(1, 1, 3, 4, 5);
  nhwc.emplace_back(20, 33, 256, 40, 66);
  nhwc.emplace_back(40, 66, 256, 80, 132);
  for (auto [H, W, C, oh, ow] : nhwc) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(H * W * C));
    write_bin(file(name, "in"), x);
    cases << "interp_nhwc " << name << " H=" << H << " W=" << W << " C=" << C << " OH=" << oh << " OW=" << ow << "\n";
    checks.push_back([&, name, x, H = H, W = W, C = C, oh = oh, ow = ow] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(oh * ow * C));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::resize_bilinear_nhwc(x.data(), H, W, C, got.data(), oh, ow);
        EXPECT_TRUE(close("F.interpolate NHWC " + isa_str(isa) + " C=" + std::to_string(C) + " " + std::to_string(H) +
                              "x" + std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow),
                          got.data(), want.data(), (int64_t)want.size(), 1e-6, 0, &log_i));
      }
    });
  }
  // torch.layer_norm
  // (No C = 1 or 2-value groups here: there the variance is ~0 and torch's float formula
  // x * (rstd * g) + (b - mean * rstd * g) loses digits to cancellation amplified by rstd ~ 316;
  // those sizes are covered against the double-precision definition above.)
  for (auto [R, C, res] : {std::tuple<int64_t, int64_t, int>{7, 3, 0}, {7, 13, 1}, {33, 256, 1}, {5, 257, 0}}) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(R * C), 2.f, 1.5f), r = rng.normals((size_t)(R * C));
    std::vector<float> g = rng.normals((size_t)C, 1.f, 0.3f), b = rng.normals((size_t)C, 0.f, 0.3f);
    write_bin(file(name, "in"), x);
    write_bin(file(name, "res"), r);
    write_bin(file(name, "gamma"), g);
    write_bin(file(name, "beta"), b);
    cases << "layernorm " << name << " R=" << R << " C=" << C << " eps=1e-05 res=" << res << "\n";
    checks.push_back([&, name, x, r, g, b, R = R, C = C, res = res] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(R * C));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), got.data(), R, C, 1e-5f);
        EXPECT_TRUE(close("torch.layer_norm " + isa_str(isa) + " R=" + std::to_string(R) + " C=" + std::to_string(C) +
                              " residual=" + std::to_string(res),
                          got.data(), want.data(), (int64_t)want.size(), 1e-5, 1e-5, &log_n));
      }
    });
  }
  // torch.group_norm (+ ReLU)
  for (auto [H, W, C, G, relu] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int>{13, 17, 64, 32, 1},
                                  {7, 5, 39, 3, 0}, {1, 1, 39, 3, 0}, {20, 33, 256, 32, 1}}) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(H * W * C), -1.f, 3.f);
    std::vector<float> g = rng.normals((size_t)C, 1.f, 0.3f), b = rng.normals((size_t)C, 0.f, 0.3f);
    write_bin(file(name, "in"), x);
    write_bin(file(name, "gamma"), g);
    write_bin(file(name, "beta"), b);
    cases << "groupnorm " << name << " H=" << H << " W=" << W << " C=" << C << " G=" << G << " eps=1e-05 relu=" << relu << "\n";
    checks.push_back([&, name, x, g, b, H = H, W = W, C = C, G = G, relu = relu] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(H * W * C));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::groupnorm_nhwc(x.data(), got.data(), H * W, C, G, g.data(), b.data(), 1e-5f, relu);
        EXPECT_TRUE(close("torch.group_norm " + isa_str(isa) + " HxWxC=" + std::to_string(H) + "x" + std::to_string(W) +
                              "x" + std::to_string(C) + " G=" + std::to_string(G),
                          got.data(), want.data(), (int64_t)want.size(), 1e-5, 1e-5, &log_n));
      }
    });
  }
  // torch.softmax (with -inf entries and large logits)
  for (auto [R, N, sd] : {std::tuple<int64_t, int64_t, float>{5, 13, 1.f}, {3, 1000, 10.f}, {2, 10560, 3.f}, {4, 1, 1.f}}) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(R * N), 0.f, sd);
    for (int64_t i = 3; i < R * N; i += 7) x[i] = -INFINITY;
    if (N > 1) x[0] = 1e4f;
    write_bin(file(name, "in"), x);
    cases << "softmax " << name << " R=" << R << " N=" << N << "\n";
    checks.push_back([&, name, x, R = R, N = N] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(R * N));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got = x;
        kern::softmax_rows(got.data(), R, N);
        EXPECT_TRUE(close("torch.softmax " + isa_str(isa) + " R=" + std::to_string(R) + " N=" + std::to_string(N),
                          got.data(), want.data(), (int64_t)want.size(), 1e-7, 2e-6, &log_s));
      }
    });
  }
  // PIL Image.resize(BILINEAR) on L and RGB images
  std::vector<std::tuple<int64_t, int64_t, int, int64_t, int64_t>> pil;  // H W ch oh ow
  for (int ch : {1, 3})
    for (double f : kFactors) pil.emplace_back(37, 53, ch, scaled(37, f), scaled(53, f));
  pil.emplace_back(342, 548, 3, 640, 1025);  // the model's input resize
  pil.emplace_back(480, 640, 3, scaled(480, 1.0 / 7.0), scaled(640, 0.37));
  pil.emplace_back(1, 1, 3, 4, 6);
  pil.emplace_back(9, 11, 1, 1, 1);
  for (auto [H, W, ch, oh, ow] : pil) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<uint8_t> x = rng.bytes((size_t)(H * W * ch));
    // Smooth regions plus saturated and noisy bands: like photos, with clip cases.
    for (int64_t y = 0; y < H; ++y)
      for (int64_t xx = 0; xx < W / 2; ++xx)
        for (int c = 0; c < ch; ++c) x[(size_t)((y * W + xx) * ch + c)] = (uint8_t)((y * 7 + xx * 3 + c * 50) & 255);
    for (int64_t i = 0; i < (int64_t)x.size() / 8; ++i) x[(size_t)i] = 255;
    write_bin(file(name, "in"), x);
    cases << "pil " << name << " H=" << H << " W=" << W << " ch=" << ch << " OH=" << oh << " OW=" << ow << "\n";
    checks.push_back([&, name, x, H = H, W = W, ch = ch, oh = oh, ow = ow] {
      auto want = read_bin<uint8_t>(file(name, "out"), (size_t)(oh * ow * ch));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<uint8_t> got(want.size());
        kern::resize_pil_bilinear_u8(x.data(), H, W, ch, got.data(), oh, ow);
        EXPECT_TRUE(same_bytes("PIL resize " + isa_str(isa) + " ch=" + std::to_string(ch) + " " + std::to_string(H) +
                                   "x" + std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow),
                               got.data(), want.data(), (int64_t)want.size(), &pil_max));
        ++pil_cases;
      }
    });
  }
  cases.close();

  const std::string script = std::string(M2FP_SOURCE_DIR) + "/tests/kernels/kernels_a_reference.py";
  const std::string cmd = "OMP_NUM_THREADS=1 '" + std::string(M2FP_PYTHON) + "' '" + script + "' '" +
                          dir.path.string() + "' 2>&1";
  int rc = 0;
  const std::string out = run_capture(cmd, &rc);
  ASSERT_EQ(rc, 0) << "reference script failed (" << cmd << "):\n" << out
                   << "\nIt needs torch, numpy and PIL: M2FP_PYTHON should be Debian's /usr/bin/python3.";
  std::printf("  %s", out.c_str());
  for (auto& check : checks) check();
  std::printf("  [parity PIL resize vs Pillow] %d cases, max difference %d levels\n", pil_cases, pil_max);
}

}  // namespace
