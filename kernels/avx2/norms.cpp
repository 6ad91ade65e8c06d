// kernels/avx2/norms.cpp: AVX2 + FMA LayerNorm over rows and the two GroupNorm phases on NHWC.
//
// Same algorithms as kernels/avx512/norms.cpp with 8 lanes: LayerNorm stores x + residual into y
// in pass 1 and reads it back (two-pass variance in float); GroupNorm stats use tiles of kTile
// pixels with 16-channel blocks of double accumulators; tails are scalar with the same math.
#include <immintrin.h>

#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::avx2 {
namespace {

constexpr int64_t kTile = 8;  // pixels per statistics tile: 8 rows walked as 8 sequential streams

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps) {
  const float invC = 1.f / (float)C;
  const int64_t Cv = C - C % 8;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;  // [C]
    float* yr = y + r * C;        // [C], may alias xr
    const float* v = xr;          // [C] x, or x + residual stored in y
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    float st = 0.f;
    if (residual) {
      const float* rr = residual + r * C;
      for (int64_t c = 0; c < Cv; c += 8) {
        const __m256 a = _mm256_add_ps(_mm256_loadu_ps(xr + c), _mm256_loadu_ps(rr + c));
        _mm256_storeu_ps(yr + c, a);
        s0 = _mm256_add_ps(s0, a);
      }
      for (int64_t c = Cv; c < C; ++c) {
        yr[c] = xr[c] + rr[c];
        st += yr[c];
      }
      v = yr;
    } else {
      int64_t c = 0;
      for (; c + 16 <= Cv; c += 16) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr + c));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(xr + c + 8));
      }
      for (; c < Cv; c += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr + c));
      for (c = Cv; c < C; ++c) st += xr[c];
    }
    const float mean = (hsum(_mm256_add_ps(s0, s1)) + st) * invC;
    const __m256 mv = _mm256_set1_ps(mean);
    __m256 q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= Cv; c += 16) {
      const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(v + c), mv);
      const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(v + c + 8), mv);
      q0 = _mm256_fmadd_ps(d0, d0, q0);
      q1 = _mm256_fmadd_ps(d1, d1, q1);
    }
    for (; c < Cv; c += 8) {
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(v + c), mv);
      q0 = _mm256_fmadd_ps(d, d, q0);
    }
    float qt = 0.f;
    for (c = Cv; c < C; ++c) qt = std::fma(v[c] - mean, v[c] - mean, qt);
    const float var = (hsum(_mm256_add_ps(q0, q1)) + qt) * invC;
    const float rstd = 1.f / std::sqrt(var + eps);
    const __m256 rs = _mm256_set1_ps(rstd);
    for (c = 0; c < Cv; c += 8) {
      const __m256 nv = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + c), mv), rs);
      _mm256_storeu_ps(yr + c, _mm256_fmadd_ps(nv, _mm256_loadu_ps(gamma + c), _mm256_loadu_ps(beta + c)));
    }
    for (c = Cv; c < C; ++c) yr[c] = std::fma((v[c] - mean) * rstd, gamma[c], beta[c]);
  }
}

void groupnorm_stats_nhwc(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq) {
  for (int64_t p0 = 0; p0 < n_pix; p0 += kTile) {
    const int64_t p1 = p0 + kTile < n_pix ? p0 + kTile : n_pix;
    int64_t c = 0;
    for (; c + 16 <= C; c += 16) {  // 16 channels: 4 ymm of double sums + 4 of sums of squares
      __m256d s[4], q[4];
      for (int j = 0; j < 4; ++j) s[j] = q[j] = _mm256_setzero_pd();
      for (int64_t p = p0; p < p1; ++p) {
        const float* xp = x + p * C + c;
        const __m256 a = _mm256_loadu_ps(xp), b = _mm256_loadu_ps(xp + 8);
        const __m256d d[4] = {_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)),
                              _mm256_cvtps_pd(_mm256_castps256_ps128(b)), _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1))};
        for (int j = 0; j < 4; ++j) {
          s[j] = _mm256_add_pd(s[j], d[j]);
          q[j] = _mm256_fmadd_pd(d[j], d[j], q[j]);
        }
      }
      for (int j = 0; j < 4; ++j) {
        _mm256_storeu_pd(sum + c + 4 * j, _mm256_add_pd(_mm256_loadu_pd(sum + c + 4 * j), s[j]));
        _mm256_storeu_pd(sumsq + c + 4 * j, _mm256_add_pd(_mm256_loadu_pd(sumsq + c + 4 * j), q[j]));
      }
    }
    for (; c + 4 <= C; c += 4) {
      __m256d s = _mm256_setzero_pd(), q = _mm256_setzero_pd();
      for (int64_t p = p0; p < p1; ++p) {
        const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x + p * C + c));
        s = _mm256_add_pd(s, d);
        q = _mm256_fmadd_pd(d, d, q);
      }
      _mm256_storeu_pd(sum + c, _mm256_add_pd(_mm256_loadu_pd(sum + c), s));
      _mm256_storeu_pd(sumsq + c, _mm256_add_pd(_mm256_loadu_pd(sumsq + c), q));
    }
    for (; c < C; ++c) {
      double s = 0.0, q = 0.0;
      for (int64_t p = p0; p < p1; ++p) {
        const double v = x[p * C + c];
        s += v;
        q = std::fma(v, v, q);
      }
      sum[c] += s;
      sumsq[c] += q;
    }
  }
}

void affine_nhwc(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,
                 const float* shift, bool relu) {
  const __m256 zero = _mm256_setzero_ps();
  const int64_t Cv = C - C % 8;
  for (int64_t p = 0; p < n_pix; ++p) {
    const float* xp = x + p * C;  // [C]
    float* yp = y + p * C;        // [C], may alias xp
    for (int64_t c = 0; c < Cv; c += 8) {
      __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(xp + c), _mm256_loadu_ps(scale + c), _mm256_loadu_ps(shift + c));
      if (relu) v = _mm256_max_ps(v, zero);
      _mm256_storeu_ps(yp + c, v);
    }
    for (int64_t c = Cv; c < C; ++c) {
      float v = std::fma(xp[c], scale[c], shift[c]);
      if (relu) v = v > 0.f ? v : 0.f;
      yp[c] = v;
    }
  }
}

}  // namespace m2fp::kern::avx2
