// kernels/avx512/resize.cpp: the avx512 path of the bilinear resizes (16 lanes; bodies in
// kernels/resize_simd.h, bit-identical to kernels/ref/resize.cpp).
#include "kernels/avx512/simd_ops.h"
#include "kernels/internal.h"
#include "kernels/resize_simd.h"

namespace m2fp::kern::avx512 {

void resize_bilinear_plane_rows(const float* src, int64_t H, int64_t W, float* dst, int64_t oh,
                                int64_t ow, int64_t y0, int64_t y1) {
  resize_bilinear_plane_rows_simd<V16>(src, H, W, dst, oh, ow, y0, y1);
}

void resize_bilinear_window(const float* src, int64_t lds, int64_t sr0, int64_t H, int64_t W, float* dst,
                            int64_t ldd, int64_t oh, int64_t ow, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  resize_bilinear_window_simd<V16>(src, lds, sr0, H, W, dst, ldd, oh, ow, y0, y1, x0, x1);
}

void resize_bilinear_nhwc_rows(const float* src, int64_t H, int64_t W, int64_t C, float* dst,
                               int64_t oh, int64_t ow, int64_t y0, int64_t y1) {
  resize_bilinear_nhwc_rows_simd<V16>(src, H, W, C, dst, oh, ow, y0, y1);
}

}  // namespace m2fp::kern::avx512
