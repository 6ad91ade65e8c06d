// kernels/avx512/softmax.cpp: AVX-512 softmax over rows (16 lanes, masked tails).
//
// exp: Cephes-style range reduction x = n ln2 + r (|r| <= ln2/2, ln2 split in two constants so
// n*ln2 is exact), degree-5 minimax polynomial for (e^r - 1 - r) / r^2, then 2^n applied with
// vscalefps (exact scaling, gradual underflow, 0 below ~-104). Measured against double exp over
// [-87, -18]: max error 1.18 ulp (ExpAccuracy in tests/kernels/test_kernels_a.cpp prints it).
// Row sums are accumulated in double, so the only float roundings are exp, the sum's conversion
// and the final multiply by 1/sum.
// GCC 12 reports its own AVX-512 intrinsic headers as -Wmaybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::avx512 {
namespace {

inline __m512 exp_ps(__m512 x) {
  // Clamp to [-110, 88.376]: e^-110 scales to exactly 0, so -inf (masked) logits give 0. The
  // constant is the first operand so a NaN input stays NaN (vminps returns its second operand).
  x = _mm512_max_ps(_mm512_set1_ps(-110.f), _mm512_min_ps(_mm512_set1_ps(88.3762626647949f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(y, n);
}

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

inline __m512d add_ps_to_pd(__m512d acc, __m512 v) {
  acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}

}  // namespace

void softmax_rows(float* x, int64_t rows, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n;  // [n]
    // max
    __m512 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      m0 = _mm512_max_ps(m0, _mm512_loadu_ps(row + i));
      m1 = _mm512_max_ps(m1, _mm512_loadu_ps(row + i + 16));
    }
    for (; i < n; i += 16) m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), row + i));
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));
    // exp and sum (double)
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (i = 0; i + 32 <= n; i += 32) {
      const __m512 e0 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(row + i), mv));
      const __m512 e1 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(row + i + 16), mv));
      _mm512_storeu_ps(row + i, e0);
      _mm512_storeu_ps(row + i + 16, e1);
      s0 = add_ps_to_pd(s0, e0);
      s1 = add_ps_to_pd(s1, e1);
    }
    for (; i < n; i += 16) {
      const __mmask16 k = tail_mask(n - i);
      const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), mv)));
      _mm512_mask_storeu_ps(row + i, k, e);
      s0 = add_ps_to_pd(s0, e);
    }
    const float inv = (float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)));
    const __m512 iv = _mm512_set1_ps(inv);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(row + i, _mm512_mul_ps(_mm512_loadu_ps(row + i), iv));
    if (i < n) {
      const __mmask16 k = tail_mask(n - i);
      _mm512_mask_storeu_ps(row + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + i), iv));
    }
  }
}

}  // namespace m2fp::kern::avx512
