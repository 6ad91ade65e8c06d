// kernels/pil_resample_simd.h: the SIMD bodies of Pillow's 8-bit resampling passes
// (KernelTable::pil_resample_h_u8 / pil_resample_v_u8 in kernels/kernels.h), shared by the AVX2
// (V8) and AVX-512 (V16) paths. Exact 32-bit integer arithmetic, bit-identical to
// kernels/ref/pil_resample.cpp (and to Pillow): ss = 2^21 + sum of pixel * coefficient (wrapping
// 32-bit adds and multiplies, as the reference's uint32), out = clamp(ss >> 22, 0, 255).
//
// Horizontal: rows are the vector lanes (V::W rows at a time); a tile of output pixels gathers its
// input columns transposed ([column][lanes] int32), then every tap is one load + one 32-bit
// multiply-add with a broadcast coefficient (see pil_resample_h_u8_simd).
// Vertical: 4W consecutive bytes of a row per step (4 accumulators), then W, then a masked tail;
// one broadcast coefficient per tap.
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern {
namespace {

// (ss >> 22) clamped to [0, 255], one int32 per lane.
template <class V>
inline typename V::I pil_clip8(typename V::I ss) {
  return V::mini(V::maxi(V::template srai<kPilPrecisionBits>(ss), V::set1i(0)), V::set1i(255));
}

// Output pixels per tile of the horizontal pass: the tile's input columns, transposed for V::W rows,
// are [columns][W] int32 (x4.7 down, RGB: ~160 pixels, 480 columns, 30 KB for V16), in L1/L2.
constexpr int64_t kPilTilePixels = 32;

// Horizontal pass, V::W rows at a time, one row per lane: a tile of output pixels reads a range of
// input columns, gathered 4 bytes per row and lane (one 32-bit gather per 4 columns of W rows) and
// spread into one int32 vector per column ([column][W], the rows across the lanes); each output
// value is then its taps' column vectors times a broadcast coefficient. The gather-per-tap form
// (lanes = output values of one row) cost one gather per tap and output vector, ~11 taps at x4.7
// down: 4000 -> 853 columns took 53 ms for 3000 rows on one core, no faster than the scalar loop.
// The results of 4 consecutive output values are packed into one int32 per row and copied out row by
// row. Rows past y1 in the last block (lanes >= rows) read row y0 and are not stored.
template <class V>
void pil_resample_h_u8_simd(const uint8_t* src, int64_t W_in, int ch, uint8_t* dst, int64_t ow,
                            const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                            int64_t y1) {
  using I = typename V::I;
  constexpr int R = V::W;
  if (y0 >= y1 || ow <= 0) return;
  const int64_t nin = W_in * ch, n = ow * ch;
  const I half = V::set1i(1 << (kPilPrecisionBits - 1));
  thread_local std::vector<int32_t> cols;  // [tile columns + 4][R]
  alignas(64) int32_t packed[R];
  for (int64_t yb = y0; yb < y1; yb += R) {
    const int rows = (int)std::min<int64_t>(R, y1 - yb);
    const uint8_t* base = src + yb * nin;  // the block's first row
    int32_t off[R];  // each lane's row, bytes from base (lanes past `rows`: the first row)
    for (int r = 0; r < R; ++r) off[r] = (int32_t)((r < rows ? r : 0) * nin);
    const I row_off = V::loadi(off);
    for (int64_t x0 = 0; x0 < ow; x0 += kPilTilePixels) {
      const int64_t x1 = std::min(ow, x0 + kPilTilePixels);
      int64_t lo = bounds[2 * x0], hi = lo;
      for (int64_t xx = x0; xx < x1; ++xx) {
        lo = std::min<int64_t>(lo, bounds[2 * xx]);
        hi = std::max<int64_t>(hi, (int64_t)bounds[2 * xx] + bounds[2 * xx + 1]);
      }
      const int64_t c0 = lo * ch, c1 = std::max(c0, hi * ch);  // input columns [c0, c1)
      if (cols.size() < (size_t)((c1 - c0 + 4) * R)) cols.resize((size_t)((c1 - c0 + 4) * R));
      int32_t* ct = cols.data();
      int64_t j = c0;
      for (; j + 4 <= c1 && j + 4 <= nin; j += 4) {  // whole 4-byte words inside the row
        const I g = V::gather_bytes4(base, V::addi(row_off, V::set1i((int32_t)j)));
        int32_t* o = ct + (j - c0) * R;
        V::storei(o, V::andi(g, V::set1i(255)));
        V::storei(o + R, V::andi(V::template srli<8>(g), V::set1i(255)));
        V::storei(o + 2 * R, V::andi(V::template srli<16>(g), V::set1i(255)));
        V::storei(o + 3 * R, V::template srli<24>(g));
      }
      for (; j < c1; ++j)  // the last columns (a word would read past the row's end)
        for (int r = 0; r < R; ++r) ct[(j - c0) * R + r] = base[off[r] + j];
      // Output values [v0, v1) of the tile (pixel xx, channel c), 4 at a time into `packed`, then copied
      // out per row.
      const int64_t v0 = x0 * ch, v1 = x1 * ch;
      int64_t xx = x0;
      int c = 0;
      for (int64_t v = v0; v < v1; v += 4) {
        I pack = V::set1i(0);
        const int nv = (int)std::min<int64_t>(4, v1 - v);
        for (int i = 0; i < nv; ++i) {
          const int32_t xmin = bounds[2 * xx], cnt = bounds[2 * xx + 1];
          const int32_t* k = coeffs + xx * ksize;
          const int32_t* col = ct + ((int64_t)xmin * ch + c - c0) * R;
          I acc = half;
          for (int32_t t = 0; t < cnt; ++t) acc = V::addi(acc, V::muli(V::loadi(col + (int64_t)t * ch * R), V::set1i(k[t])));
          pack = V::addi(pack, V::sll(pil_clip8<V>(acc), 8 * i));
          if (++c == ch) c = 0, ++xx;
        }
        V::storei(packed, pack);
        uint8_t* d = dst + yb * n + v;
        if (nv == 4)
          for (int r = 0; r < rows; ++r) std::memcpy(d + r * n, &packed[r], 4);
        else
          for (int r = 0; r < rows; ++r) std::memcpy(d + r * n, &packed[r], (size_t)nv);
      }
    }
  }
}

template <class V>
void pil_resample_v_u8_simd(const uint8_t* src, int64_t W_in, int ch, uint8_t* dst, const int32_t* bounds,
                            const int32_t* coeffs, int ksize, int64_t y0, int64_t y1) {
  using I = typename V::I;
  constexpr int W = V::W;
  const int64_t row = W_in * ch;
  const I half = V::set1i(1 << (kPilPrecisionBits - 1));
  for (int64_t yy = y0; yy < y1; ++yy) {
    const int32_t ymin = bounds[2 * yy], cnt = bounds[2 * yy + 1];
    const int32_t* kk = coeffs + yy * ksize;        // [ksize]
    const uint8_t* s0 = src + (int64_t)ymin * row;  // first input row used
    uint8_t* d = dst + yy * row;                    // [W_in, ch]
    int64_t i = 0;
    for (; i + 4 * W <= row; i += 4 * W) {
      I a0 = half, a1 = half, a2 = half, a3 = half;
      for (int32_t t = 0; t < cnt; ++t) {
        const I w = V::set1i(kk[t]);
        const uint8_t* s = s0 + (int64_t)t * row + i;  // [4W]
        a0 = V::addi(a0, V::muli(V::load_u8(s), w));
        a1 = V::addi(a1, V::muli(V::load_u8(s + W), w));
        a2 = V::addi(a2, V::muli(V::load_u8(s + 2 * W), w));
        a3 = V::addi(a3, V::muli(V::load_u8(s + 3 * W), w));
      }
      V::store_u8(d + i, pil_clip8<V>(a0));
      V::store_u8(d + i + W, pil_clip8<V>(a1));
      V::store_u8(d + i + 2 * W, pil_clip8<V>(a2));
      V::store_u8(d + i + 3 * W, pil_clip8<V>(a3));
    }
    for (; i + W <= row; i += W) {
      I a = half;
      for (int32_t t = 0; t < cnt; ++t) a = V::addi(a, V::muli(V::load_u8(s0 + (int64_t)t * row + i), V::set1i(kk[t])));
      V::store_u8(d + i, pil_clip8<V>(a));
    }
    if (i < row) {
      const int w = (int)(row - i);
      I a = half;
      for (int32_t t = 0; t < cnt; ++t)
        a = V::addi(a, V::muli(V::load_u8_n(s0 + (int64_t)t * row + i, w), V::set1i(kk[t])));
      V::store_u8_n(d + i, pil_clip8<V>(a), w);
    }
  }
}

}  // namespace
}  // namespace m2fp::kern
