// kernels/pil_resample_simd.h: the SIMD bodies of Pillow's 8-bit resampling passes
// (KernelTable::pil_resample_h_u8 / pil_resample_v_u8 in kernels/kernels.h), shared by the AVX2
// (V8) and AVX-512 (V16) paths. Exact 32-bit integer arithmetic, bit-identical to
// kernels/ref/pil_resample.cpp (and to Pillow): ss = 2^21 + sum of pixel * coefficient (wrapping
// 32-bit adds and multiplies, as the reference's uint32), out = clamp(ss >> 22, 0, 255).
//
// Horizontal: output values (pixel, channel) are the vector lanes. Per (W, ow, ch, table) the
// kernel expands the coefficient table into per-lane source indices and coefficients [ksize][ow*ch]
// (taps past a pixel's count get coefficient 0 and a valid index), cached per thread; each input
// row is widened to int32 once, then every tap is one gather + one 32-bit multiply-add.
// Vertical: 4W consecutive bytes of a row per step (4 accumulators), then W, then a masked tail;
// one broadcast coefficient per tap.
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

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

struct PilHTables {
  int64_t W = -1, ow = -1;
  int ch = 0, ksize = 0;
  std::vector<int32_t> bounds, coeffs;  // copies of the tables the expansion was built from
  std::vector<int32_t> idx, coef;       // [ksize][ow*ch]
  const PilHTables& get(int64_t W_, int ch_, int64_t ow_, const int32_t* b, const int32_t* k, int K) {
    const size_t nb = (size_t)(2 * ow_), nk = (size_t)(ow_ * K);
    if (W_ == W && ch_ == ch && ow_ == ow && K == ksize && !std::memcmp(bounds.data(), b, nb * 4) &&
        !std::memcmp(coeffs.data(), k, nk * 4))
      return *this;
    bounds.assign(b, b + nb);
    coeffs.assign(k, k + nk);
    const int64_t n = ow_ * ch_;
    idx.assign((size_t)(K * n), 0);
    coef.assign((size_t)(K * n), 0);
    for (int64_t xx = 0; xx < ow_; ++xx) {
      const int32_t xmin = b[2 * xx], cnt = b[2 * xx + 1];
      for (int t = 0; t < K; ++t) {
        const int32_t xs = t < cnt ? xmin + t : (cnt > 0 ? xmin + cnt - 1 : xmin);
        const int32_t w = t < cnt ? k[xx * K + t] : 0;
        for (int c = 0; c < ch_; ++c) {
          idx[(size_t)(t * n + xx * ch_ + c)] = xs * ch_ + c;
          coef[(size_t)(t * n + xx * ch_ + c)] = w;
        }
      }
    }
    W = W_; ch = ch_; ow = ow_; ksize = K;
    return *this;
  }
};

thread_local PilHTables tl_pil_h;

template <class V>
void pil_resample_h_u8_simd(const uint8_t* src, int64_t W_in, int ch, uint8_t* dst, int64_t ow,
                            const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                            int64_t y1) {
  using I = typename V::I;
  constexpr int W = V::W;
  if (y0 >= y1) return;
  const PilHTables& T = tl_pil_h.get(W_in, ch, ow, bounds, coeffs, ksize);
  const int64_t nin = W_in * ch, n = ow * ch;
  thread_local std::vector<int32_t> wide;  // one input row widened to int32 [W_in * ch]
  if (wide.size() < (size_t)nin) wide.resize((size_t)nin);
  const I half = V::set1i(1 << (kPilPrecisionBits - 1));
  // one output vector: lanes [o, o + w) of the row, w <= W (the gathers read lanes < w only)
  auto output = [&](int64_t o, int w) {
    I acc = half;
    for (int t = 0; t < ksize; ++t) {
      const int32_t* ti = T.idx.data() + t * n + o;   // [w]
      const int32_t* tc = T.coef.data() + t * n + o;  // [w]
      const I v = w == W ? V::gatheri(wide.data(), V::loadi(ti)) : V::gatheri_n(wide.data(), V::loadi_n(ti, w), w);
      acc = V::addi(acc, V::muli(v, w == W ? V::loadi(tc) : V::loadi_n(tc, w)));
    }
    return pil_clip8<V>(acc);
  };
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* s = src + y * nin;  // [W_in, ch]
    uint8_t* d = dst + y * n;          // [ow, ch]
    int64_t i = 0;
    for (; i + W <= nin; i += W) V::storei(wide.data() + i, V::load_u8(s + i));
    if (i < nin) V::storei_n(wide.data() + i, V::load_u8_n(s + i, (int)(nin - i)), (int)(nin - i));
    int64_t o = 0;
    for (; o + W <= n; o += W) V::store_u8(d + o, output(o, W));
    if (o < n) V::store_u8_n(d + o, output(o, (int)(n - o)), (int)(n - o));
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
