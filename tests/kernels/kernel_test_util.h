// tests/kernels/kernel_test_util.h: what the kernel tests share: the ISA paths to run, a seeded
// random source, and two ways to compare float outputs with a tolerance
// (|got - want| <= atol + rtol * |want|) and report the worst element: close() (an
// AssertionResult, with a running DiffLog) and Tol/diff()/report()/expect_close() (a Diff summary,
// printed). Byte outputs are compared exactly with same_bytes().
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace m2fp::kern::ktest {

inline std::vector<Isa> simd_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::Avx2, Isa::Avx512})
    if (kern::isa_supported(i)) v.push_back(i);
  return v;
}

inline std::vector<Isa> all_isas() {
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
inline ::testing::AssertionResult close(const std::string& what, const float* got,
                                        const float* want, int64_t n, double atol, double rtol,
                                        DiffLog* log = nullptr) {
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

inline ::testing::AssertionResult same_bytes(const std::string& what, const uint8_t* got,
                                             const uint8_t* want, int64_t n,
                                             int* max_diff_out = nullptr) {
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
// Mask logits for the post-processing kernels: zeros of both signs, values within 1e-5 of zero
// (where sigmoid and > 0 tests turn), the rest uniform in [-30, 30] (a third of them shrunk 5x).
inline std::vector<float> logits(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  std::vector<float> x((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    switch (g() % 8) {
      case 0: x[i] = 0.f; break;
      case 1: x[i] = (g() % 2 ? 1 : -1) * 1e-7f * (1 + g() % 100); break;
      case 2: x[i] = -0.f; break;
      default: x[i] = u(g) * ((g() % 3) ? 0.2f : 1.f);
    }
  }
  return x;
}

inline int64_t scaled(int64_t n, double f) {
  return std::max<int64_t>(1, std::llround((double)n * f));
}
inline constexpr double kFactors[] = {1.0 / 7.0, 0.37, 1.0, 1.6, 2.9};

inline std::string isa_str(Isa i) { return kern::isa_name(i); }

// ---- comparison with a labelled report ---------------------------------------------------------

struct Tol {
  double atol, rtol;  // pass when |got - want| <= atol + rtol * |want|
};

struct Diff {
  double max_abs = 0, max_rel = 0;
  size_t worst = 0, bad = 0;
  float got = 0, want = 0;
};

inline Diff diff(const float* got, const float* want, size_t n, Tol tol) {
  Diff d;
  double worst_excess = -1;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    const double a = std::fabs(g - w);
    const bool same_nonfinite = (std::isnan(g) && std::isnan(w)) || (std::isinf(g) && g == w);
    const double ad = same_nonfinite ? 0.0 : (std::isfinite(a) ? a : INFINITY);
    const double rd = ad / std::max(std::fabs(w), 1e-30);
    const double excess = ad - (tol.atol + tol.rtol * std::fabs(w));
    if (excess > 0 || std::isnan(excess)) ++d.bad;
    if (ad > d.max_abs) d.max_abs = ad;
    if (std::fabs(w) > 1e-3 && rd > d.max_rel) d.max_rel = rd;
    if (excess > worst_excess || std::isnan(excess)) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      d.worst = i, d.got = got[i], d.want = want[i];
    }
  }
  return d;
}

inline std::string report(const std::string& what, const Diff& d, Tol tol, size_t n) {
  std::ostringstream s;
  s << what << ": max|diff| " << d.max_abs << ", max rel (|want|>1e-3) " << d.max_rel << " over "
    << n << " values; tol atol " << tol.atol << " rtol " << tol.rtol << "; " << d.bad
    << " out of tolerance, worst at " << d.worst << " got " << d.got << " want " << d.want;
  return s.str();
}

// Checks and prints (always: the max differences are part of the test log).
inline void expect_close(const std::string& what, const std::vector<float>& got,
                  const std::vector<float>& want, Tol tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Diff d = diff(got.data(), want.data(), got.size(), tol);
  const std::string r = report(what, d, tol, got.size());
  std::printf("  %s\n", r.c_str());
  EXPECT_EQ(d.bad, 0u) << r;
}

inline std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace m2fp::kern::ktest
