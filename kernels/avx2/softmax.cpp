// kernels/avx2/softmax.cpp: AVX2 + FMA softmax over rows (8 lanes, scalar tail).
//
// exp: Cephes-style range reduction x = n ln2 + r (ln2 split in two constants so n*ln2 is exact),
// degree-5 minimax polynomial for (e^r - 1 - r) / r^2, 2^n built in the exponent field. Inputs are
// clamped to [-87.34, 88.38] so 2^n stays a normal number; inputs below -87.34 (where e^x is
// below ~1.2e-38, or a -inf masked logit) give exactly 0. Measured against double exp over
// [-87, -18]: max error 1.18 ulp (ExpAccuracy in tests/kernels/test_kernels_a.cpp prints it).
// Row sums are accumulated in double; the tail uses the same vector code on a padded copy so
// every element goes through the same exp.
#include <immintrin.h>

#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::avx2 {
namespace {

inline __m256 exp_ps(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);  // NaN compares false: stays NaN
  // Constants first so a NaN input stays NaN (vminps/vmaxps return their second operand).
  x = _mm256_max_ps(lo, _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

inline __m256d add_ps_to_pd(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline double hsum(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

}  // namespace

void softmax_rows(float* x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n;  // [n]
    const int64_t nv = n - n % 8;
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 16 <= nv; i += 16) {
      m0 = _mm256_max_ps(m0, _mm256_loadu_ps(row + i));
      m1 = _mm256_max_ps(m1, _mm256_loadu_ps(row + i + 8));
    }
    for (; i < nv; i += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(row + i));
    float m = hmax(_mm256_max_ps(m0, m1));
    for (i = nv; i < n; ++i) m = row[i] > m ? row[i] : m;
    const __m256 mv = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (i = 0; i + 16 <= nv; i += 16) {
      const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i), mv));
      const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i + 8), mv));
      _mm256_storeu_ps(row + i, e0);
      _mm256_storeu_ps(row + i + 8, e1);
      s0 = add_ps_to_pd(s0, e0);
      s1 = add_ps_to_pd(s1, e1);
    }
    for (; i < nv; i += 8) {
      const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i), mv));
      _mm256_storeu_ps(row + i, e);
      s0 = add_ps_to_pd(s0, e);
    }
    if (nv < n) {  // tail through the same vector exp, on a copy padded with -inf (exp -> 0)
      alignas(32) float t[8];
      for (int j = 0; j < 8; ++j) t[j] = nv + j < n ? row[nv + j] : -INFINITY;
      const __m256 e = exp_ps(_mm256_sub_ps(_mm256_load_ps(t), mv));
      _mm256_store_ps(t, e);
      s0 = add_ps_to_pd(s0, e);
      for (int64_t j = nv; j < n; ++j) row[j] = t[j - nv];
    }
    const float inv = (float)(1.0 / hsum(_mm256_add_pd(s0, s1)));
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i < nv; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), iv));
    for (; i < n; ++i) row[i] *= inv;
  }
}

}  // namespace m2fp::kern::avx2
