// kernels/ref/norms.cpp: scalar reference LayerNorm (rows) and GroupNorm phases (NHWC).
//
// LayerNorm: statistics in double, two passes (mean, then mean of squared deviations: the
// biased variance PyTorch uses), eps inside the square root, output rounded once to float.
// GroupNorm stats: per-channel double sums; affine: y = fma(x, scale, shift) then optional ReLU.
#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::ref {

void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;                              // [C]
    const float* rr = residual ? residual + r * C : nullptr;  // [C] or null
    float* yr = y + r * C;                                    // [C], may alias xr
    auto v = [&](int64_t c) { return rr ? xr[c] + rr[c] : xr[c]; };  // float add, as torch
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) s += v(c);
    const double mean = s / (double)C;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double d = v(c) - mean;
      ss += d * d;
    }
    const double rstd = 1.0 / std::sqrt(ss / (double)C + (double)eps);
    for (int64_t c = 0; c < C; ++c)  // v(c) is read before yr[c] is written: aliasing is safe
      yr[c] = (float)((v(c) - mean) * rstd * gamma[c] + beta[c]);
  }
}

void groupnorm_stats_nhwc(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq) {
  for (int64_t p = 0; p < n_pix; ++p) {
    const float* xp = x + p * C;  // [C]
    for (int64_t c = 0; c < C; ++c) {
      const double v = xp[c];
      sum[c] += v;
      sumsq[c] += v * v;
    }
  }
}

void affine_nhwc(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,
                 const float* shift, bool relu) {
  for (int64_t p = 0; p < n_pix; ++p) {
    const float* xp = x + p * C;  // [C]
    float* yp = y + p * C;        // [C], may alias xp
    for (int64_t c = 0; c < C; ++c) {
      float v = std::fma(xp[c], scale[c], shift[c]);
      if (relu) v = v > 0.f ? v : 0.f;
      yp[c] = v;
    }
  }
}

}  // namespace m2fp::kern::ref
