// kernels/postproc_simd.h: the SIMD bodies of the mask post-processing kernels (see
// KernelTable::mask_row_stats / paste_row in kernels.h), shared by the AVX2 (V8) and AVX-512 (V16)
// paths; kernels/ref/postproc.cpp is the scalar reference.
#pragma once

#include <cstdint>

namespace m2fp::kern {
namespace {

template <class V>
inline typename V::F sigmoid_v(typename V::F x) {
  // 1 / (1 + exp(-x)); exp saturates to 0 / +inf, so the result stays in [0, 1].
  return V::div(V::set1(1.f), V::add(V::set1(1.f), V::exp(V::sub(V::zero(), x))));
}

template <class V>
void mask_row_stats_simd(const float* x, int64_t n, int64_t* count, double* sig_sum, int64_t* first,
                         int64_t* last) {
  constexpr int W = V::W;
  typename V::F acc = V::zero();
  int64_t c = 0, f = -1, l = -1;
  for (int64_t i = 0; i < n; i += W) {
    const int w = (int)(n - i < W ? n - i : W);
    const typename V::F v = w == W ? V::load(x + i) : V::load_n(x + i, w);
    const typename V::M pos = V::gt(v, V::zero());  // lanes past the tail load 0: not positive
    const uint32_t b = V::bits(pos);
    if (!b) continue;
    c += __builtin_popcount(b);
    if (f < 0) f = i + __builtin_ctz(b);
    l = i + 31 - __builtin_clz(b);
    acc = V::add(acc, V::where(pos, sigmoid_v<V>(v)));
  }
  float lanes[W];
  V::store(lanes, acc);
  double s = 0;
  for (int k = 0; k < W; ++k) s += lanes[k];
  *count += c;
  *sig_sum += s;
  *first = f;
  *last = l;
}

template <class V>
void paste_row_simd(const float* x, int64_t n, float score, float* cat, float* times) {
  constexpr int W = V::W;
  const typename V::F sc = V::set1(score), half = V::set1(0.5f), one = V::set1(1.f);
  for (int64_t i = 0; i < n; i += W) {
    const int w = (int)(n - i < W ? n - i : W);
    const typename V::F v = w == W ? V::load(x + i) : V::load_n(x + i, w);
    const typename V::F p = V::mul(sigmoid_v<V>(v), sc);
    const typename V::M m = V::gt(p, half);
    if (!V::bits(m)) continue;
    if (w == W) {
      V::store(cat + i, V::add(V::load(cat + i), V::where(m, p)));
      V::store(times + i, V::add(V::load(times + i), V::where(m, one)));
    } else {
      V::store_n(cat + i, V::add(V::load_n(cat + i, w), V::where(m, p)), w);
      V::store_n(times + i, V::add(V::load_n(times + i, w), V::where(m, one)), w);
    }
  }
}

// One row of kernels.h's mask_row_fused: v computed as the resize's vertical step, then each sink
// with the same operations (and, for the statistics, the same per-lane float accumulation) as
// mask_row_stats_simd / paste_row_simd above.
template <class V>
void mask_row_fused_simd(const float* h0, const float* h1, float l0, float l1, int64_t n, const MaskRowSinks* o) {
  using F = typename V::F;
  using M = typename V::M;
  constexpr int W = V::W;
  const F L0 = V::set1(l0), L1 = V::set1(l1), sc = V::set1(o->score), half = V::set1(0.5f), one = V::set1(1.f);
  F acc = V::zero();
  int64_t c = 0, f = -1, l = -1;
  uint64_t word = 0;
  for (int64_t i = 0; i < n; i += W) {
    const int w = (int)(n - i < W ? n - i : W);
    const bool full = w == W;
    const F v = full ? V::fma(V::load(h0 + i), L0, V::mul(V::load(h1 + i), L1))
                     : V::fma(V::load_n(h0 + i, w), L0, V::mul(V::load_n(h1 + i, w), L1));
    const M pos = V::gt(v, V::zero());  // lanes past the tail are 0: not positive
    const uint32_t b = V::bits(pos);
    if (o->bits) {
      word |= (uint64_t)b << (i & 63);
      if (((i + W) & 63) == 0 || i + W >= n) {
        o->bits[i >> 6] = word;
        word = 0;
      }
    }
    if (o->count && b) {
      c += __builtin_popcount(b);
      if (f < 0) f = i + __builtin_ctz(b);
      l = i + 31 - __builtin_clz(b);
      acc = V::add(acc, V::where(pos, sigmoid_v<V>(v)));
    }
    if (o->cat && b) {  // no lane > 0: sigmoid(v) * score <= 0.5 * score <= 0.5 pastes nothing
      const F p = V::mul(sigmoid_v<V>(v), sc);
      const M m = V::gt(p, half);
      if (V::bits(m)) {
        if (full) {
          V::store(o->cat + i, V::add(V::load(o->cat + i), V::where(m, p)));
          V::store(o->times + i, V::add(V::load(o->times + i), V::where(m, one)));
        } else {
          V::store_n(o->cat + i, V::add(V::load_n(o->cat + i, w), V::where(m, p)), w);
          V::store_n(o->times + i, V::add(V::load_n(o->times + i, w), V::where(m, one)), w);
        }
      }
    }
    if (o->best) {
      const F best = full ? V::load(o->best + i) : V::load_n(o->best + i, w);
      const M gt = V::gt(v, best);
      uint32_t g = V::bits(gt);
      if (g) {
        if (full) V::store(o->best + i, V::select(gt, v, best));
        else V::store_n(o->best + i, V::select(gt, v, best), w);
        for (; g; g &= g - 1) o->who[i + __builtin_ctz(g)] = o->id;
      }
    }
  }
  if (o->count) {
    float lanes[W];
    V::store(lanes, acc);
    double s = 0;
    for (int k = 0; k < W; ++k) s += lanes[k];
    *o->count += c;
    *o->sig_sum += s;
    *o->first = f;
    *o->last = l;
  }
}

// kernels.h's and_popcount: V::W / 2 words at a time (V::popcnt_and64: per-byte counts from a
// nibble table, summed per 64-bit lane), the row's last words one by one.
template <class V>
void and_popcount_simd(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n, int64_t* count) {
  constexpr int64_t K = V::W / 2;  // 64-bit words per vector
  typename V::I acc = V::zero64();
  int64_t c = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t *x = a + r * ld, *y = b + r * ld;
    int64_t w = 0;
    for (; w + K <= n; w += K) acc = V::add64(acc, V::popcnt_and64(x + w, y + w));
    for (; w < n; ++w) c += __builtin_popcountll(x[w] & y[w]);
  }
  *count += c + V::hsum64(acc);
}

}  // namespace
}  // namespace m2fp::kern
