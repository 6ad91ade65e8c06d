// kernels/avx512/norms.cpp: AVX-512 LayerNorm over rows and the two GroupNorm phases on NHWC data.
//
// LayerNorm: pass 1 forms v = x + residual (stored into y when there is a residual, so passes 2
// and 3 read it back from L1) and its sum; pass 2 the sum of squared deviations from the mean
// (two-pass variance, float, 16 lanes x 2 accumulators); pass 3 y = ((v - mean) * rstd) * g + b.
// GroupNorm stats: tiles of kTile pixels, 32-channel register blocks of double accumulators
// (x converted to double, x*x exact in double), flushed into sum/sumsq once per tile.
// GCC 12 reports its own AVX-512 intrinsic headers as -Wmaybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::avx512 {
namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

constexpr int64_t kTile = 8;  // pixels per GroupNorm statistics tile: 8 rows walked as 8 sequential streams

}  // namespace

void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps) {
  const float invC = 1.f / (float)C;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;  // [C]
    float* yr = y + r * C;        // [C], may alias xr
    const float* v = xr;          // [C] the normalised input: x, or x + residual stored in y
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t c = 0;
    if (residual) {
      const float* rr = residual + r * C;
      for (; c + 16 <= C; c += 16) {
        const __m512 a = _mm512_add_ps(_mm512_loadu_ps(xr + c), _mm512_loadu_ps(rr + c));
        _mm512_storeu_ps(yr + c, a);
        s0 = _mm512_add_ps(s0, a);
      }
      if (c < C) {
        const __mmask16 k = tail_mask(C - c);
        const __m512 a = _mm512_add_ps(_mm512_maskz_loadu_ps(k, xr + c), _mm512_maskz_loadu_ps(k, rr + c));
        _mm512_mask_storeu_ps(yr + c, k, a);
        s1 = a;
      }
      v = yr;
    } else {
      for (; c + 32 <= C; c += 32) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + c));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + c + 16));
      }
      for (; c < C; c += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(tail_mask(C - c), xr + c));
    }
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) * invC;
    const __m512 mv = _mm512_set1_ps(mean);
    __m512 q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
    for (c = 0; c + 32 <= C; c += 32) {
      const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(v + c), mv);
      const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(v + c + 16), mv);
      q0 = _mm512_fmadd_ps(d0, d0, q0);
      q1 = _mm512_fmadd_ps(d1, d1, q1);
    }
    for (; c < C; c += 16) {
      const __mmask16 k = tail_mask(C - c);
      const __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, v + c), mv);
      q0 = _mm512_fmadd_ps(d, d, q0);
    }
    const float var = _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) * invC;
    const __m512 rs = _mm512_set1_ps(1.f / std::sqrt(var + eps));
    for (c = 0; c + 16 <= C; c += 16) {
      const __m512 nv = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(v + c), mv), rs);
      _mm512_storeu_ps(yr + c, _mm512_fmadd_ps(nv, _mm512_loadu_ps(gamma + c), _mm512_loadu_ps(beta + c)));
    }
    if (c < C) {
      const __mmask16 k = tail_mask(C - c);
      const __m512 nv = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, v + c), mv), rs);
      _mm512_mask_storeu_ps(yr + c, k, _mm512_fmadd_ps(nv, _mm512_maskz_loadu_ps(k, gamma + c),
                                                       _mm512_maskz_loadu_ps(k, beta + c)));
    }
  }
}

void groupnorm_stats_nhwc(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq) {
  for (int64_t p0 = 0; p0 < n_pix; p0 += kTile) {
    const int64_t p1 = p0 + kTile < n_pix ? p0 + kTile : n_pix;
    int64_t c = 0;
    for (; c + 32 <= C; c += 32) {  // 32 channels: 4 zmm of double sums + 4 of sums of squares
      __m512d s[4], q[4];
      for (int j = 0; j < 4; ++j) s[j] = q[j] = _mm512_setzero_pd();
      for (int64_t p = p0; p < p1; ++p) {
        const float* xp = x + p * C + c;
        const __m512 a = _mm512_loadu_ps(xp), b = _mm512_loadu_ps(xp + 16);
        const __m512d d[4] = {_mm512_cvtps_pd(_mm512_castps512_ps256(a)),
                              _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)),
                              _mm512_cvtps_pd(_mm512_castps512_ps256(b)),
                              _mm512_cvtps_pd(_mm512_extractf32x8_ps(b, 1))};
        for (int j = 0; j < 4; ++j) {
          s[j] = _mm512_add_pd(s[j], d[j]);
          q[j] = _mm512_fmadd_pd(d[j], d[j], q[j]);
        }
      }
      for (int j = 0; j < 4; ++j) {
        _mm512_storeu_pd(sum + c + 8 * j, _mm512_add_pd(_mm512_loadu_pd(sum + c + 8 * j), s[j]));
        _mm512_storeu_pd(sumsq + c + 8 * j, _mm512_add_pd(_mm512_loadu_pd(sumsq + c + 8 * j), q[j]));
      }
    }
    for (; c < C; c += 8) {  // 8 channels at a time, the last block masked
      const int64_t left = C - c;
      const __mmask8 k = left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1u);
      __m512d s = _mm512_setzero_pd(), q = _mm512_setzero_pd();
      for (int64_t p = p0; p < p1; ++p) {
        const __m512d d = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, x + p * C + c));
        s = _mm512_add_pd(s, d);
        q = _mm512_fmadd_pd(d, d, q);
      }
      _mm512_mask_storeu_pd(sum + c, k, _mm512_add_pd(_mm512_maskz_loadu_pd(k, sum + c), s));
      _mm512_mask_storeu_pd(sumsq + c, k, _mm512_add_pd(_mm512_maskz_loadu_pd(k, sumsq + c), q));
    }
  }
}

void affine_nhwc(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,
                 const float* shift, bool relu) {
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 kt = tail_mask(C % 16);
  const int64_t Cv = C - C % 16;
  for (int64_t p = 0; p < n_pix; ++p) {
    const float* xp = x + p * C;  // [C]
    float* yp = y + p * C;        // [C], may alias xp
    for (int64_t c = 0; c < Cv; c += 16) {
      __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(xp + c), _mm512_loadu_ps(scale + c), _mm512_loadu_ps(shift + c));
      if (relu) v = _mm512_max_ps(v, zero);
      _mm512_storeu_ps(yp + c, v);
    }
    if (Cv < C) {
      __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(kt, xp + Cv), _mm512_maskz_loadu_ps(kt, scale + Cv),
                                 _mm512_maskz_loadu_ps(kt, shift + Cv));
      if (relu) v = _mm512_max_ps(v, zero);
      _mm512_mask_storeu_ps(yp + Cv, kt, v);
    }
  }
}

}  // namespace m2fp::kern::avx512
