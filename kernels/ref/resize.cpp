// kernels/ref/resize.cpp: scalar reference bilinear resizes, PyTorch F.interpolate(mode='bilinear',
// align_corners=False) semantics; taps and the fma order are documented in kernels/bilinear_taps.h.
#include <cmath>
#include <vector>

#include "kernels/bilinear_taps.h"
#include "kernels/internal.h"

namespace m2fp::kern::ref {
namespace {

std::vector<LinearTap> axis_taps(int64_t in, int64_t out) {
  std::vector<LinearTap> t((size_t)out);
  const float scale = torch_linear_scale(in, out);
  for (int64_t o = 0; o < out; ++o) t[(size_t)o] = torch_linear_tap(in, out, scale, o);
  return t;
}

inline float lerp2(float a00, float a01, float a10, float a11, const LinearTap& ty,
                   const LinearTap& tx) {
  const float t0 = std::fma(a00, tx.l0, a01 * tx.l1);
  const float t1 = std::fma(a10, tx.l0, a11 * tx.l1);
  return std::fma(t0, ty.l0, t1 * ty.l1);
}

}  // namespace

void resize_bilinear_plane_rows(const float* src, int64_t H, int64_t W, float* dst, int64_t oh,
                                int64_t ow, int64_t y0, int64_t y1) {
  const std::vector<LinearTap> tx = axis_taps(W, ow);  // [ow]
  const float sy = torch_linear_scale(H, oh);
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* r0 = src + ty.i0 * W;  // [W]
    const float* r1 = src + ty.i1 * W;  // [W]
    float* d = dst + (y - y0) * ow;     // [ow]
    for (int64_t x = 0; x < ow; ++x) {
      const LinearTap& t = tx[(size_t)x];
      d[x] = lerp2(r0[t.i0], r0[t.i1], r1[t.i0], r1[t.i1], ty, t);
    }
  }
}

void resize_bilinear_window(const float* src, int64_t lds, int64_t sr0, int64_t H, int64_t W, float* dst,
                            int64_t ldd, int64_t oh, int64_t ow, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  const std::vector<LinearTap> tx = axis_taps(W, ow);  // [ow]
  const float sy = torch_linear_scale(H, oh);
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* r0 = src + (ty.i0 - sr0) * lds;  // [W]
    const float* r1 = src + (ty.i1 - sr0) * lds;  // [W]
    float* d = dst + (y - y0) * ldd;              // [x1 - x0]
    for (int64_t x = x0; x < x1; ++x) {
      const LinearTap& t = tx[(size_t)x];
      d[x - x0] = lerp2(r0[t.i0], r0[t.i1], r1[t.i0], r1[t.i1], ty, t);
    }
  }
}

void resize_bilinear_nhwc_rows(const float* src, int64_t H, int64_t W, int64_t C, float* dst,
                               int64_t oh, int64_t ow, int64_t y0, int64_t y1) {
  const std::vector<LinearTap> tx = axis_taps(W, ow);  // [ow]
  const float sy = torch_linear_scale(H, oh);
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    for (int64_t x = 0; x < ow; ++x) {
      const LinearTap& t = tx[(size_t)x];
      const float* a00 = src + (ty.i0 * W + t.i0) * C;  // [C]
      const float* a01 = src + (ty.i0 * W + t.i1) * C;
      const float* a10 = src + (ty.i1 * W + t.i0) * C;
      const float* a11 = src + (ty.i1 * W + t.i1) * C;
      float* d = dst + ((y - y0) * ow + x) * C;  // [C]
      for (int64_t c = 0; c < C; ++c) d[c] = lerp2(a00[c], a01[c], a10[c], a11[c], ty, t);
    }
  }
}

}  // namespace m2fp::kern::ref
