// kernels/ref/msda.cpp: scalar reference of the fused multi-scale deformable attention
// (KernelTable::ms_deform_attn in kernels/kernels.h).
//
// Upstream: mmcv's multi_scale_deformable_attn_pytorch, which MSDeformAttn falls back to on CPU:
// per level, F.grid_sample(value_l, 2*loc - 1, bilinear, padding zeros, align_corners=False),
// weighted by softmax(attention_weights) and summed over levels and points. grid_sample's CPU
// kernel unnormalises a grid value g to the pixel coordinate (g + 1) * (size/2) - 0.5, which
// torch's build contracts to one FMA; this reference (and the SIMD paths) does the same, so the
// tap weights match torch's to the last bit and the only differences are in summation order.
//
// Out-of-map taps contribute zero. Coordinates are clamped to [-2, size+1] before the floor
// (which changes nothing: every tap of a coordinate outside [-1, size] is outside the map) so
// that huge or non-finite offsets cannot overflow the integer conversion; a NaN coordinate
// samples nothing. An excluded tap reads a clamped in-range row with weight 0, so value must be
// finite (it is: a linear layer's output). The corner products are summed per channel in two
// partial sums, corners (y0,x0),(y0,x1) and (y1,x0),(y1,x1) over the samples in order, added at
// the end: the SIMD paths use the same order (two accumulator chains), so only exp differs.
// ms_deform_attn_bf16 is the same code on bfloat16 values, each widened exactly to its fp32, its
// outputs rounded to bfloat16 (nearest even).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern::ref {

namespace {
// One axis of a sampling location: the two bilinear taps i0 = floor(pix), i0 + 1 with their
// weights (0 when the tap is outside [0, size)) and their indices clamped into [0, size).
struct Taps {
  float w0, w1;
  int64_t i0, i1;
};

Taps axis_taps(float ref, float off, int64_t size) {
  const float fsize = (float)size;
  const float loc = ref + off / fsize;
  const float g = 2.f * loc - 1.f;                           // grid_sample's [-1, 1] grid value
  float pix = std::fma(g + 1.f, fsize / 2, -0.5f);           // grid_sample: (g + 1) * size/2 - 0.5
  pix = pix >= -2.f ? pix : -2.f;                            // also maps NaN to -2
  pix = pix <= fsize + 1.f ? pix : fsize + 1.f;
  const float fl = std::floor(pix);
  const float fr = pix - fl;
  const float last = fsize - 1.f;
  Taps t;
  t.w0 = (fl >= 0.f && fl <= last) ? 1.f - fr : 0.f;
  t.w1 = (fl + 1.f >= 0.f && fl + 1.f <= last) ? fr : 0.f;
  t.i0 = (int64_t)std::max(std::min(fl, last), 0.f);
  t.i1 = (int64_t)std::max(std::min(fl + 1.f, last), 0.f);
  return t;
}

// A value element as fp32: itself, or a bfloat16's bits as the upper half of an fp32 (exact).
inline float widen(float x) { return x; }
inline float widen(uint16_t x) {
  const uint32_t u = (uint32_t)x << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// An output as stored: itself, or rounded to bfloat16 (nearest even; a NaN stays a NaN).
inline void narrow(float x, float* o) { *o = x; }
inline void narrow(float x, uint16_t* o) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, nan = (u >> 16) | 0x40u;
  *o = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

template <class T>
void msda(const T* value, const int64_t* shapes, const int64_t* level_start, int L, int P, int heads,
          int dh, const float* ref, const float* offsets, const float* logits, int64_t ld_qp, T* out,
          int64_t q0, int64_t q1) {
  if (q1 <= q0 || heads <= 0 || dh <= 0) return;
  const int64_t ld = (int64_t)heads * dh;  // value / out row: [heads*dh]
  int64_t len_in = 0;
  for (int l = 0; l < L; ++l) len_in += shapes[2 * l] * shapes[2 * l + 1];
  if (L <= 0 || P <= 0 || len_in <= 0) {  // nothing to sample: zeros
    for (int64_t q = q0; q < q1; ++q) std::memset(out + q * ld, 0, sizeof(T) * ld);
    return;
  }
  const int LP = L * P;
  std::vector<float> w(LP);    // [L*P] attention weights of one head
  std::vector<float> acc0(dh), acc1(dh);  // [dh] partial sums of the y0 and y1 corner pairs
  for (int64_t q = q0; q < q1; ++q) {
    const float* off = offsets + q * ld_qp;  // [heads, L, P, 2]
    const float* lg = logits + q * ld_qp;    // [heads, L*P]
    const float rx = ref[2 * q], ry = ref[2 * q + 1];
    for (int h = 0; h < heads; ++h) {
      // softmax over the L*P (level, point) pairs of this head, as torch: exp(x - max) * (1/sum)
      const float* x = lg + h * LP;
      float mx = x[0];
      for (int t = 1; t < LP; ++t) mx = std::max(mx, x[t]);
      float sum = 0.f;
      for (int t = 0; t < LP; ++t) sum += (w[t] = std::exp(x[t] - mx));
      const float inv = 1.f / sum;
      for (int t = 0; t < LP; ++t) w[t] *= inv;

      std::fill(acc0.begin(), acc0.end(), 0.f);
      std::fill(acc1.begin(), acc1.end(), 0.f);
      for (int l = 0; l < L; ++l) {
        const int64_t Hl = shapes[2 * l], Wl = shapes[2 * l + 1];
        const bool empty = Hl * Wl == 0;
        const int64_t start = empty ? 0 : level_start[l];
        for (int p = 0; p < P; ++p) {
          const int s = l * P + p;
          const float* o = off + (int64_t)(h * LP + s) * 2;
          const Taps tx = axis_taps(rx, o[0], Wl);
          const Taps ty = axis_taps(ry, o[1], Hl);
          const int64_t y0 = empty ? 0 : start + ty.i0 * Wl, y1 = empty ? 0 : start + ty.i1 * Wl;
          const int64_t x0 = empty ? 0 : tx.i0, x1 = empty ? 0 : tx.i1;
          const float ay0 = w[s] * ty.w0, ay1 = w[s] * ty.w1;
          const float c00 = ay0 * tx.w0, c01 = ay0 * tx.w1, c10 = ay1 * tx.w0, c11 = ay1 * tx.w1;
          const T* v00 = value + (y0 + x0) * ld + h * dh;
          const T* v01 = value + (y0 + x1) * ld + h * dh;
          const T* v10 = value + (y1 + x0) * ld + h * dh;
          const T* v11 = value + (y1 + x1) * ld + h * dh;
          for (int c = 0; c < dh; ++c) {
            acc0[c] = std::fma(c01, widen(v01[c]), std::fma(c00, widen(v00[c]), acc0[c]));
            acc1[c] = std::fma(c11, widen(v11[c]), std::fma(c10, widen(v10[c]), acc1[c]));
          }
        }
      }
      for (int c = 0; c < dh; ++c) narrow(acc0[c] + acc1[c], out + q * ld + h * dh + c);
    }
  }
}

}  // namespace

void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t q0, int64_t q1) {
  msda(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, q0, q1);
}

void ms_deform_attn_bf16(const uint16_t* value, const int64_t* shapes, const int64_t* level_start, int L,
                         int P, int heads, int dh, const float* ref, const float* offsets,
                         const float* logits, int64_t ld_qp, uint16_t* out, int64_t q0, int64_t q1) {
  msda(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, q0, q1);
}

}  // namespace m2fp::kern::ref
