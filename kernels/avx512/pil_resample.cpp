// kernels/avx512/pil_resample.cpp: the avx512 path of Pillow's 8-bit resampling passes (16 lanes;
// bodies in kernels/pil_resample_simd.h, bit-identical to kernels/ref/pil_resample.cpp).
#include "kernels/avx512/simd_ops.h"
#include "kernels/internal.h"
#include "kernels/pil_resample_simd.h"

namespace m2fp::kern::avx512 {

void pil_resample_h_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, int64_t ow,
                       const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                       int64_t y1) {
  pil_resample_h_u8_simd<V16>(src, W, ch, dst, ow, bounds, coeffs, ksize, y0, y1);
}

void pil_resample_v_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, const int32_t* bounds,
                       const int32_t* coeffs, int ksize, int64_t y0, int64_t y1) {
  pil_resample_v_u8_simd<V16>(src, W, ch, dst, bounds, coeffs, ksize, y0, y1);
}

}  // namespace m2fp::kern::avx512
