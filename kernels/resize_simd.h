// kernels/resize_simd.h: the SIMD bodies of the bilinear resizes (KernelTable::
// resize_bilinear_plane_rows / resize_bilinear_nhwc_rows in kernels/kernels.h; PyTorch
// align_corners=False semantics), shared by the AVX2 (V8) and AVX-512 (V16) paths. Taps and
// operation order are those of kernels/bilinear_taps.h, so every path is bit-identical to the
// scalar reference kernels/ref/resize.cpp.
//
// Planes: the column taps are computed once per (W, ow) and cached per thread (the last four
// pairs); each output row
// is fma(h0, l0, h1 * l1) of two horizontally interpolated source rows h = fma(a, w0, b * w1),
// W outputs at a time. When W outputs' taps lie in a window of 2W inputs (upscales, x2
// downscales) a and b are picked from two loads with V::permute2 (AVX2: two permutes and a blend;
// AVX-512: one two-source permute); otherwise, and for the tail, gathered. Those rows are cached,
// so an upscale that reuses a source row for several output rows interpolates it once. Planes of
// kResizeStreamMinPlane floats and more are written with non-temporal stores from the first
// W*4-byte boundary of each row (scalar head and tail around them).
// NHWC: per output pixel, W channels at a time, the tail masked.
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/bilinear_taps.h"

namespace m2fp::kern {
namespace {

// Column taps for one (in, out) pair as structure-of-arrays, cached per thread; VW: the lanes of
// the ISA's vectors.
//
// Blocks of VW outputs from x = k * VW (k < out / VW) are planned once here, so that the row loop
// (resize_interp_cols) does no index arithmetic and takes no branch that depends on the data: where
// a block's taps lie in the 2 * VW inputs from base[k] = i0[k * VW] (upscales, x2 downscales), its
// values are picked from two vectors of them with the taps less base (rel0, rel1); kind[k] 0: both
// vectors lie inside the row; 1: the row ends in them, loaded masked (n_lo, n_hi inputs: the taps
// never reach past the row, so the lanes not loaded are never picked; before, such blocks at the
// right edge were gathered); 2: the taps span more (a downscale by more than 2): gathered.
template <int VW>
struct ColumnTaps {
  int64_t in = -1, out = -1;
  std::vector<int32_t> i0, i1;  // [out]
  std::vector<float> l0, l1;    // [out]
  std::vector<LinearTap> taps;  // [out]
  std::vector<int32_t> base, rel0, rel1;  // [out / VW], [out], [out]
  std::vector<uint8_t> kind, n_lo, n_hi;  // [out / VW]
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
    const int64_t nb = out_ / VW;
    base.assign((size_t)nb, 0);
    kind.assign((size_t)nb, 2);
    n_lo.assign((size_t)nb, 0);
    n_hi.assign((size_t)nb, 0);
    rel0.assign((size_t)out_, 0);
    rel1.assign((size_t)out_, 0);
    for (int64_t k = 0; k < nb; ++k) {
      const int64_t x = k * VW, b = i0[(size_t)x];  // taps ascend: i0[x] is the block's least
      base[(size_t)k] = (int32_t)b;
      if (i1[(size_t)(x + VW - 1)] - b >= 2 * VW) continue;  // kind 2
      kind[(size_t)k] = b + 2 * VW <= in_ ? 0 : 1;
      n_lo[(size_t)k] = (uint8_t)std::min<int64_t>(VW, in_ - b);
      n_hi[(size_t)k] = (uint8_t)std::clamp<int64_t>(in_ - b - VW, 0, VW);
      for (int64_t j = x; j < x + VW; ++j) {
        rel0[(size_t)j] = (int32_t)(i0[(size_t)j] - b);
        rel1[(size_t)j] = (int32_t)(i1[(size_t)j] - b);
      }
    }
    in = in_; out = out_;
    return *this;
  }
};

// The last few (in, out) pairs' taps: post-processing alternates two resizes per mask band
// (quarter -> padded width, crop width -> photo width), which one entry would recompute each time
// (~25 us for a 4000-column photo, thousands of times per parse).
template <int VW>
struct ColumnTapsCache {
  ColumnTaps<VW> slot[4];
  int next = 0;
  const ColumnTaps<VW>& get(int64_t in, int64_t out) {
    for (ColumnTaps<VW>& s : slot)
      if (s.in == in && s.out == out) return s;
    ColumnTaps<VW>& s = slot[next];
    next = (next + 1) % 4;
    return s.get(in, out);
  }
};

template <int VW>
thread_local ColumnTapsCache<VW> tl_resize_cols;

constexpr int64_t kResizeStreamMinPlane = 1 << 18;  // floats per output plane (1 MB)

// h[x - x0] = fma(row[i0[x]], l0[x], row[i1[x]] * l1[x]) for x0 <= x < x1, row of W_in floats.
// kIdentity: each value v stored as fma(v, 1, v * 0), what blend_rows makes of a row whose vertical
// taps are the identity (i0 = i1, l0 = 1, l1 = 0), computed in registers (no second pass).
template <class V, bool kIdentity = false>
void resize_interp_cols(const float* row, int64_t W_in, const ColumnTaps<V::W>& t, int64_t x0, int64_t x1,
                        float* h) {
  using F = typename V::F;
  using I = typename V::I;
  constexpr int W = V::W;
  const F one = V::set1(1.f), zero = V::zero();
  auto out = [&](F v) { return kIdentity ? V::fma(v, one, V::mul(v, zero)) : v; };
  int64_t x = x0;
  if (x0 % W == 0) {  // the planned blocks (ColumnTaps): locals, as stores to h could alias t's members
    const int32_t *base = t.base.data(), *rel0 = t.rel0.data(), *rel1 = t.rel1.data(), *i0 = t.i0.data(),
                  *i1 = t.i1.data();
    const uint8_t *kind = t.kind.data(), *n_lo = t.n_lo.data(), *n_hi = t.n_hi.data();
    const float *l0 = t.l0.data(), *l1 = t.l1.data();
    for (; x + W <= x1; x += W) {
      const int64_t k = x / W;
      const float* p = row + base[k];
      F a, b;
      if (kind[k] == 0) {
        const F lo = V::load(p), hi = V::load(p + W);
        a = V::permute2(lo, hi, V::loadi(rel0 + x));
        b = V::permute2(lo, hi, V::loadi(rel1 + x));
      } else if (kind[k] == 1) {
        const F lo = V::load_n(p, n_lo[k]), hi = V::load_n(p + W, n_hi[k]);
        a = V::permute2(lo, hi, V::loadi(rel0 + x));
        b = V::permute2(lo, hi, V::loadi(rel1 + x));
      } else {
        a = V::gather(row, V::loadi(i0 + x));
        b = V::gather(row, V::loadi(i1 + x));
      }
      V::store(h + (x - x0), out(V::fma(a, V::load(l0 + x), V::mul(b, V::load(l1 + x)))));
    }
  }
  for (; x + W <= x1; x += W) {
    const I j0 = V::loadi(t.i0.data() + x), j1 = V::loadi(t.i1.data() + x);  // [W] tap indices
    const int32_t base = t.i0[(size_t)x];
    F a, b;
    if (t.i1[(size_t)x + W - 1] - base < 2 * W && base + 2 * W <= W_in) {
      const F lo = V::load(row + base), hi = V::load(row + base + W);
      const I sb = V::set1i(base);
      a = V::permute2(lo, hi, V::subi(j0, sb));
      b = V::permute2(lo, hi, V::subi(j1, sb));
    } else {
      a = V::gather(row, j0);
      b = V::gather(row, j1);
    }
    V::store(h + (x - x0), out(V::fma(a, V::load(t.l0.data() + x), V::mul(b, V::load(t.l1.data() + x)))));
  }
  if (x < x1) {
    const int n = (int)(x1 - x);
    const F a = V::gather_n(row, V::loadi_n(t.i0.data() + x, n), n);
    const F b = V::gather_n(row, V::loadi_n(t.i1.data() + x, n), n);
    V::store_n(h + (x - x0), out(V::fma(a, V::load_n(t.l0.data() + x, n), V::mul(b, V::load_n(t.l1.data() + x, n)))), n);
  }
}

// h[x] = fma(row[i0[x]], l0[x], row[i1[x]] * l1[x]) for x < ow, row of W_in floats.
template <class V>
void resize_interp_row(const float* row, int64_t W_in, const ColumnTaps<V::W>& t, int64_t ow, float* h) {
  resize_interp_cols<V>(row, W_in, t, 0, ow, h);
}

// The two interpolated source rows the vertical step of an output row reads (taps i0, i1), from two
// buffers that keep the last rows computed: consecutive output rows mostly share them.
struct SourceRowPair {
  float* hb[2];
  int64_t key[2] = {-1, -1};  // source row held by hb[j]
  // h0, h1 = source rows ty.i0, ty.i1, computed by fill(sy, out) where not held (h1 never evicts h0)
  template <class Fill>
  void get(const LinearTap& ty, Fill&& fill, const float** h0, const float** h1) {
    *h0 = row(ty.i0, -1, fill);
    *h1 = row(ty.i1, *h0 == hb[0] ? 0 : 1, fill);
  }

 private:
  template <class Fill>
  const float* row(int64_t sy, int avoid, Fill& fill) {
    for (int j = 0; j < 2; ++j)
      if (key[j] == sy) return hb[j];
    const int j = avoid == 0 ? 1 : avoid == 1 ? 0 : (key[0] < key[1] ? 0 : 1);
    fill(sy, hb[j]);
    key[j] = sy;
    return hb[j];
  }
};

// d[0, n) = h0 * l0 + h1 * l1 (fma(h0, l0, h1 * l1), as the scalar reference), ordinary stores.
template <class V>
inline void blend_rows(const float* h0, const float* h1, float l0, float l1, float* d, int64_t n) {
  constexpr int W = V::W;
  const typename V::F L0 = V::set1(l0), L1 = V::set1(l1);
  auto out = [&](int64_t x) { return V::fma(V::load(h0 + x), L0, V::mul(V::load(h1 + x), L1)); };
  int64_t x = 0;
  for (; x + 2 * W <= n; x += 2 * W) {
    V::store(d + x, out(x));
    V::store(d + x + W, out(x + W));
  }
  for (; x + W <= n; x += W) V::store(d + x, out(x));
  if (x < n) {
    const int r = (int)(n - x);
    V::store_n(d + x, V::fma(V::load_n(h0 + x, r), L0, V::mul(V::load_n(h1 + x, r), L1)), r);
  }
}

template <class V>
void resize_bilinear_plane_rows_simd(const float* src, int64_t H, int64_t W_in, float* dst, int64_t oh,
                                     int64_t ow, int64_t y0, int64_t y1) {
  using F = typename V::F;
  constexpr int W = V::W;
  constexpr uintptr_t kAlign = 4 * W;  // bytes of one vector: the stream store alignment
  if (y0 >= y1) return;
  const ColumnTaps<V::W>& cols = tl_resize_cols<V::W>.get(W_in, ow);
  thread_local std::vector<float> buf;  // two interpolated source rows [2, ow]
  if (buf.size() < (size_t)(2 * ow)) buf.resize((size_t)(2 * ow));
  SourceRowPair rows{{buf.data(), buf.data() + ow}};
  auto fill = [&](int64_t sy, float* h) { resize_interp_row<V>(src + sy * W_in, W_in, cols, ow, h); };
  const float sy = torch_linear_scale(H, oh);
  // Planes of 1 MB and more (the x4 mask upsample writes 270 MB) bypass the cache: the output
  // is not read again soon, and streaming stores skip the read-for-ownership of every line.
  const bool stream = oh * ow >= kResizeStreamMinPlane;
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float *h0, *h1;
    rows.get(ty, fill, &h0, &h1);
    float* d = dst + (y - y0) * ow;  // [ow]
    if (stream && ((uintptr_t)d & 3) == 0) {
      const F L0 = V::set1(ty.l0), L1 = V::set1(ty.l1);
      int64_t x = 0;
      // Scalar up to a vector boundary, non-temporal stores, a scalar tail (the same fma as the
      // vectors). Not masked stores: on AVX2 a vmaskmovps into a line the streaming stores fill
      // made the x4 upsample ~40% slower (AMD EPYC, measured).
      const int64_t head = std::min<int64_t>(ow, (int64_t)((kAlign - ((uintptr_t)d & (kAlign - 1))) & (kAlign - 1)) / 4);
      for (; x < head; ++x) d[x] = std::fma(h0[x], ty.l0, h1[x] * ty.l1);
      for (; x + W <= ow; x += W) V::stream(d + x, V::fma(V::load(h0 + x), L0, V::mul(V::load(h1 + x), L1)));
      for (; x < ow; ++x) d[x] = std::fma(h0[x], ty.l0, h1[x] * ty.l1);
      continue;
    }
    blend_rows<V>(h0, h1, ty.l0, ty.l1, d, ow);
  }
  if (stream) _mm_sfence();
}

// A window of the plane resize (KernelTable::resize_bilinear_window): the same source rows cached,
// the same operations per output value as resize_bilinear_plane_rows_simd, ordinary stores.
template <class V>
void resize_bilinear_window_simd(const float* src, int64_t lds, int64_t sr0, int64_t H, int64_t W_in, float* dst,
                                 int64_t ldd, int64_t oh, int64_t ow, int64_t y0, int64_t y1, int64_t x0,
                                 int64_t x1) {
  if (y0 >= y1 || x0 >= x1) return;
  const int64_t n = x1 - x0;
  const ColumnTaps<V::W>& cols = tl_resize_cols<V::W>.get(W_in, ow);
  if (H == oh) {  // the rows' vertical taps are the identity: each row interpolated straight into dst
    for (int64_t y = y0; y < y1; ++y) resize_interp_cols<V, true>(src + (y - sr0) * lds, W_in, cols, x0, x1, dst + (y - y0) * ldd);
    return;
  }
  thread_local std::vector<float> buf;  // two interpolated source rows [2, n]
  if (buf.size() < (size_t)(2 * n)) buf.resize((size_t)(2 * n));
  SourceRowPair rows{{buf.data(), buf.data() + n}};
  auto fill = [&](int64_t sy, float* h) { resize_interp_cols<V>(src + (sy - sr0) * lds, W_in, cols, x0, x1, h); };
  const float sy = torch_linear_scale(H, oh);
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float *h0, *h1;
    rows.get(ty, fill, &h0, &h1);
    blend_rows<V>(h0, h1, ty.l0, ty.l1, dst + (y - y0) * ldd, n);
  }
}

template <class V>
void resize_bilinear_nhwc_rows_simd(const float* src, int64_t H, int64_t W_in, int64_t C, float* dst,
                                    int64_t oh, int64_t ow, int64_t y0, int64_t y1) {
  using F = typename V::F;
  constexpr int W = V::W;
  if (y0 >= y1) return;
  const ColumnTaps<V::W>& cols = tl_resize_cols<V::W>.get(W_in, ow);
  const float sy = torch_linear_scale(H, oh);
  const int64_t Cv = C - C % W;
  const int t = (int)(C - Cv);
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* r0 = src + ty.i0 * W_in * C;  // [W_in, C]
    const float* r1 = src + ty.i1 * W_in * C;  // [W_in, C]
    const F L0 = V::set1(ty.l0), L1 = V::set1(ty.l1);
    for (int64_t x = 0; x < ow; ++x) {
      const LinearTap& tx = cols.taps[(size_t)x];
      const float* a00 = r0 + tx.i0 * C;  // [C]
      const float* a01 = r0 + tx.i1 * C;
      const float* a10 = r1 + tx.i0 * C;
      const float* a11 = r1 + tx.i1 * C;
      const F w0 = V::set1(tx.l0), w1 = V::set1(tx.l1);
      float* d = dst + ((y - y0) * ow + x) * C;  // [C]
      for (int64_t c = 0; c < Cv; c += W) {
        const F t0 = V::fma(V::load(a00 + c), w0, V::mul(V::load(a01 + c), w1));
        const F t1 = V::fma(V::load(a10 + c), w0, V::mul(V::load(a11 + c), w1));
        V::store(d + c, V::fma(t0, L0, V::mul(t1, L1)));
      }
      if (t > 0) {
        const F t0 = V::fma(V::load_n(a00 + Cv, t), w0, V::mul(V::load_n(a01 + Cv, t), w1));
        const F t1 = V::fma(V::load_n(a10 + Cv, t), w0, V::mul(V::load_n(a11 + Cv, t), w1));
        V::store_n(d + Cv, V::fma(t0, L0, V::mul(t1, L1)), t);
      }
    }
  }
}

}  // namespace
}  // namespace m2fp::kern
