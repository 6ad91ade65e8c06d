// kernels/avx512/resize.cpp: AVX-512 bilinear resizes (PyTorch align_corners=False semantics,
// taps and operation order in kernels/bilinear_taps.h, bit-identical to kernels/ref/resize.cpp).
//
// Planes: the column taps are computed once per (W, ow) and cached per thread; each output row
// is fma(h0, l0, h1 * l1) of two horizontally interpolated source rows h = fma(a, w0, b * w1)
// (16 outputs at a time, from a two-source permute of a 32-input window, or gathers). Those rows
// are cached, so an upscale that reuses a source row for several output rows interpolates it
// once. NHWC: per output pixel, 16 channels at a time.
// GCC 12 reports its own AVX-512 intrinsic headers as -Wmaybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/bilinear_taps.h"
#include "kernels/internal.h"

namespace m2fp::kern::avx512 {
namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

// Column taps for one (in, out) pair as structure-of-arrays, cached per thread.
struct ColumnTaps {
  int64_t in = -1, out = -1;
  std::vector<int32_t> i0, i1;  // [out]
  std::vector<float> l0, l1;    // [out]
  std::vector<LinearTap> taps;  // [out]
  const ColumnTaps& get(int64_t in_, int64_t out_) {
    if (in_ == in && out_ == out) return *this;
    i0.resize((size_t)out_); i1.resize((size_t)out_); l0.resize((size_t)out_); l1.resize((size_t)out_);
    taps.resize((size_t)out_);
    const float scale = torch_linear_scale(in_, out_);
    for (int64_t o = 0; o < out_; ++o) {
      const LinearTap t = torch_linear_tap(in_, out_, scale, o);
      taps[(size_t)o] = t;
      i0[(size_t)o] = (int32_t)t.i0; i1[(size_t)o] = (int32_t)t.i1;
      l0[(size_t)o] = t.l0; l1[(size_t)o] = t.l1;
    }
    in = in_; out = out_;
    return *this;
  }
};

thread_local ColumnTaps tl_cols;

constexpr int64_t kStreamMinPlane = 1 << 18;  // floats per output plane

// h[x] = fma(row[i0[x]], l0[x], row[i1[x]] * l1[x]) for x < ow, row of W floats. When 16
// outputs' taps lie in a window of 32 inputs (upscales, x2 downscales) they are picked from two
// loads with one two-source permute each; otherwise (and for the tail) gathered.
void interp_row(const float* row, int64_t W, const ColumnTaps& t, int64_t ow, float* h) {
  int64_t x = 0;
  for (; x < ow; x += 16) {
    const __mmask16 k = tail_mask(ow - x);
    const __m512i j0 = _mm512_maskz_loadu_epi32(k, t.i0.data() + x);
    const __m512i j1 = _mm512_maskz_loadu_epi32(k, t.i1.data() + x);
    const int32_t base = t.i0[(size_t)x];
    __m512 a, b;
    if (x + 16 <= ow && t.i1[(size_t)x + 15] - base < 32 && base + 32 <= W) {
      const __m512 lo = _mm512_loadu_ps(row + base), hi = _mm512_loadu_ps(row + base + 16);
      a = _mm512_permutex2var_ps(lo, _mm512_sub_epi32(j0, _mm512_set1_epi32(base)), hi);
      b = _mm512_permutex2var_ps(lo, _mm512_sub_epi32(j1, _mm512_set1_epi32(base)), hi);
    } else {
      a = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, j0, row, 4);
      b = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, j1, row, 4);
    }
    const __m512 w0 = _mm512_maskz_loadu_ps(k, t.l0.data() + x);
    const __m512 w1 = _mm512_maskz_loadu_ps(k, t.l1.data() + x);
    _mm512_mask_storeu_ps(h + x, k, _mm512_fmadd_ps(a, w0, _mm512_mul_ps(b, w1)));
  }
}

}  // namespace

void resize_bilinear_plane_rows(const float* src, int64_t H, int64_t W, float* dst, int64_t oh,
                                int64_t ow, int64_t y0, int64_t y1) {
  if (y0 >= y1) return;
  const ColumnTaps& cols = tl_cols.get(W, ow);
  thread_local std::vector<float> buf;  // two interpolated source rows [2, ow]
  if (buf.size() < (size_t)(2 * ow)) buf.resize((size_t)(2 * ow));
  float* hb[2] = {buf.data(), buf.data() + ow};
  int64_t key[2] = {-1, -1};  // source row held by hb[j]
  auto row_of = [&](int64_t sy, int avoid) -> const float* {
    for (int j = 0; j < 2; ++j)
      if (key[j] == sy) return hb[j];
    const int j = avoid == 0 ? 1 : avoid == 1 ? 0 : (key[0] < key[1] ? 0 : 1);
    interp_row(src + sy * W, W, cols, ow, hb[j]);
    key[j] = sy;
    return hb[j];
  };
  const float sy = torch_linear_scale(H, oh);
  // Planes of 1 MB and more (the x4 mask upsample writes 270 MB) bypass the cache: the output
  // is not read again soon, and streaming stores skip the read-for-ownership of every line.
  const bool stream = oh * ow >= kStreamMinPlane;
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* h0 = row_of(ty.i0, -1);
    const int j0 = h0 == hb[0] ? 0 : 1;
    const float* h1 = row_of(ty.i1, j0);  // never evicts h0
    float* d = dst + (y - y0) * ow;       // [ow]
    const __m512 L0 = _mm512_set1_ps(ty.l0), L1 = _mm512_set1_ps(ty.l1);
    int64_t x = 0;
    if (stream) {  // a masked head up to a 64-byte boundary, then non-temporal stores
      const int64_t head = std::min<int64_t>(ow, (int64_t)((64 - ((uintptr_t)d & 63)) & 63) / 4);
      if (head > 0) {
        const __mmask16 k = tail_mask(head);
        _mm512_mask_storeu_ps(d, k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, h0), L0,
                                                    _mm512_mul_ps(_mm512_maskz_loadu_ps(k, h1), L1)));
        x = head;
      }
      if (((uintptr_t)(d + x) & 63) == 0)
        for (; x + 16 <= ow; x += 16)
          _mm512_stream_ps(d + x, _mm512_fmadd_ps(_mm512_loadu_ps(h0 + x), L0, _mm512_mul_ps(_mm512_loadu_ps(h1 + x), L1)));
    }
    for (; x + 32 <= ow; x += 32) {
      _mm512_storeu_ps(d + x, _mm512_fmadd_ps(_mm512_loadu_ps(h0 + x), L0, _mm512_mul_ps(_mm512_loadu_ps(h1 + x), L1)));
      _mm512_storeu_ps(d + x + 16, _mm512_fmadd_ps(_mm512_loadu_ps(h0 + x + 16), L0,
                                                   _mm512_mul_ps(_mm512_loadu_ps(h1 + x + 16), L1)));
    }
    for (; x < ow; x += 16) {
      const __mmask16 k = tail_mask(ow - x);
      _mm512_mask_storeu_ps(d + x, k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, h0 + x), L0,
                                                      _mm512_mul_ps(_mm512_maskz_loadu_ps(k, h1 + x), L1)));
    }
  }
  if (stream) _mm_sfence();
}

void resize_bilinear_nhwc_rows(const float* src, int64_t H, int64_t W, int64_t C, float* dst,
                               int64_t oh, int64_t ow, int64_t y0, int64_t y1) {
  if (y0 >= y1) return;
  const ColumnTaps& cols = tl_cols.get(W, ow);
  const float sy = torch_linear_scale(H, oh);
  const int64_t Cv = C - C % 16;
  const __mmask16 kt = tail_mask(C % 16);
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* r0 = src + ty.i0 * W * C;  // [W, C]
    const float* r1 = src + ty.i1 * W * C;  // [W, C]
    const __m512 L0 = _mm512_set1_ps(ty.l0), L1 = _mm512_set1_ps(ty.l1);
    for (int64_t x = 0; x < ow; ++x) {
      const LinearTap& tx = cols.taps[(size_t)x];
      const float* a00 = r0 + tx.i0 * C;  // [C]
      const float* a01 = r0 + tx.i1 * C;
      const float* a10 = r1 + tx.i0 * C;
      const float* a11 = r1 + tx.i1 * C;
      const __m512 w0 = _mm512_set1_ps(tx.l0), w1 = _mm512_set1_ps(tx.l1);
      float* d = dst + ((y - y0) * ow + x) * C;  // [C]
      int64_t c = 0;
      for (; c < Cv; c += 16) {
        const __m512 t0 = _mm512_fmadd_ps(_mm512_loadu_ps(a00 + c), w0, _mm512_mul_ps(_mm512_loadu_ps(a01 + c), w1));
        const __m512 t1 = _mm512_fmadd_ps(_mm512_loadu_ps(a10 + c), w0, _mm512_mul_ps(_mm512_loadu_ps(a11 + c), w1));
        _mm512_storeu_ps(d + c, _mm512_fmadd_ps(t0, L0, _mm512_mul_ps(t1, L1)));
      }
      if (c < C) {
        const __m512 t0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(kt, a00 + c), w0,
                                          _mm512_mul_ps(_mm512_maskz_loadu_ps(kt, a01 + c), w1));
        const __m512 t1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(kt, a10 + c), w0,
                                          _mm512_mul_ps(_mm512_maskz_loadu_ps(kt, a11 + c), w1));
        _mm512_mask_storeu_ps(d + c, kt, _mm512_fmadd_ps(t0, L0, _mm512_mul_ps(t1, L1)));
      }
    }
  }
}

}  // namespace m2fp::kern::avx512
