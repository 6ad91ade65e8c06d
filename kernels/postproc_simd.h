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

}  // namespace
}  // namespace m2fp::kern
