// kernels/ref/pil_resample.cpp: scalar reference of Pillow's 8-bit separable resampling passes
// (ImagingResampleHorizontal_8bpc / ImagingResampleVertical_8bpc): per output value
//   ss = 2^21 + sum_t src[t] * k[t]   (32-bit integer, PRECISION_BITS = 22)
//   out = clamp(ss >> 22, 0, 255)
// Channels are resampled independently (PIL does the same for L, RGB, RGBX; note that PIL
// premultiplies alpha for RGBA/LA before resampling, which is the caller's business).
// The sum is formed in uint32 (wrapping) so it is defined for any table; for PIL's tables it never
// wraps and equals PIL's int arithmetic.
#include "kernels/internal.h"

namespace m2fp::kern::ref {
namespace {

inline uint8_t pil_clip8(uint32_t ss) {
  const int32_t v = (int32_t)ss >> kPilPrecisionBits;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

void pil_resample_h_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, int64_t ow,
                       const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                       int64_t y1) {
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* s = src + y * W * ch;  // [W, ch]
    uint8_t* d = dst + y * ow * ch;       // [ow, ch]
    for (int64_t xx = 0; xx < ow; ++xx) {
      const int32_t xmin = bounds[2 * xx], cnt = bounds[2 * xx + 1];
      const int32_t* k = coeffs + xx * ksize;  // [ksize]
      for (int c = 0; c < ch; ++c) {
        uint32_t ss = 1u << (kPilPrecisionBits - 1);
        for (int32_t x = 0; x < cnt; ++x) ss += (uint32_t)s[(int64_t)(x + xmin) * ch + c] * (uint32_t)k[x];
        d[xx * ch + c] = pil_clip8(ss);
      }
    }
  }
}

void pil_resample_v_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, const int32_t* bounds,
                       const int32_t* coeffs, int ksize, int64_t y0, int64_t y1) {
  const int64_t row = W * ch;
  for (int64_t yy = y0; yy < y1; ++yy) {
    const int32_t ymin = bounds[2 * yy], cnt = bounds[2 * yy + 1];
    const int32_t* k = coeffs + yy * ksize;  // [ksize]
    uint8_t* d = dst + yy * row;             // [W, ch]
    for (int64_t i = 0; i < row; ++i) {
      uint32_t ss = 1u << (kPilPrecisionBits - 1);
      for (int32_t y = 0; y < cnt; ++y) ss += (uint32_t)src[(int64_t)(y + ymin) * row + i] * (uint32_t)k[y];
      d[i] = pil_clip8(ss);
    }
  }
}

}  // namespace m2fp::kern::ref
