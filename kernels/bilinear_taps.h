// kernels/bilinear_taps.h: the source taps of PyTorch's bilinear interpolation along one axis
// (F.interpolate mode='bilinear', align_corners=False, no antialias), shared by every ISA's
// resize kernels so all paths use bit-identical indices and weights.
//
// What PyTorch 1.13's CPU kernel computes (checked against torch on this machine, see
// tests/kernels/parity/test_parity_torch_pillow.cpp and torch_pillow_reference.py):
//   scale = (float)in / (float)out                                   (float)
//   src   = max(0, (double)scale * (o + 0.5) - 0.5)                   (double)
//   i0    = (int64)src,  i1 = i0 + (i0 < in - 1),  l1 = (float)(src - i0),  l0 = 1.f - l1
//   in == out is an exact copy (i0 = i1 = o, l0 = 1, l1 = 0).
// The 2-D value is then  t0 = fma(a00, w0, a01 * w1), t1 = fma(a10, w0, a11 * w1),
//   out = fma(t0, l0, t1 * l1)   (row taps l0/l1, column taps w0/w1)
// which is what torch's AVX2 build of the separable kernel produces (FMA-contracted), bit for bit.
//
// Functions are `static inline` on purpose: this header is compiled with different ISA flags in
// different folders, and an inline function with external linkage could be merged across them.
#pragma once

#include <cstdint>

namespace m2fp::kern {

struct LinearTap {
  int64_t i0, i1;  // source indices
  float l0, l1;    // their weights
};

static inline float torch_linear_scale(int64_t in, int64_t out) { return (float)in / (float)out; }

static inline LinearTap torch_linear_tap(int64_t in, int64_t out, float scale, int64_t o) {
  if (in == out) return LinearTap{o, o, 1.f, 0.f};
  double src = (double)scale * ((double)o + 0.5) - 0.5;
  if (src < 0) src = 0;
  int64_t i0 = (int64_t)src;
  if (i0 > in - 1) i0 = in - 1;  // never taken for valid sizes; keeps reads in bounds
  const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
  const float l1 = (float)(src - (double)i0);
  return LinearTap{i0, i1, 1.f - l1, l1};
}

}  // namespace m2fp::kern
