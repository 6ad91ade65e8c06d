// kernels/avx512/norms.cpp: the avx512 path of LayerNorm over rows and the two GroupNorm phases on NHWC
// (16 lanes; bodies in kernels/norms_simd.h).
#include "kernels/avx512/simd_ops.h"
#include "kernels/internal.h"
#include "kernels/norms_simd.h"

namespace m2fp::kern::avx512 {

void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps) {
  layernorm_rows_simd<V16>(x, residual, gamma, beta, y, rows, C, eps);
}

void groupnorm_stats_nhwc(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq) {
  groupnorm_stats_nhwc_simd<V16>(x, n_pix, C, sum, sumsq);
}

void affine_nhwc(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,
                 const float* shift, bool relu) {
  affine_nhwc_simd<V16>(x, y, n_pix, C, scale, shift, relu);
}

}  // namespace m2fp::kern::avx512
