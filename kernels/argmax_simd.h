// kernels/argmax_simd.h: the SIMD body of kernels.h's class_argmax (ops.def), shared by the AVX2
// (V8) and AVX-512 (V16) paths; kernels/ref/argmax.cpp is the scalar reference.
#pragma once

#include <cstdint>

namespace m2fp::kern {
namespace {

template <class V>
void class_argmax_simd(const float* cat, const float* times, int64_t n, uint8_t c, float* best, uint8_t* lab) {
  using F = typename V::F;
  using M = typename V::M;
  constexpr int W = V::W;
  const F zero = V::zero(), one = V::set1(1.f);
  for (int64_t i = 0; i < n; i += W) {
    const int w = (int)(n - i < W ? n - i : W);
    const bool full = w == W;
    const F t = full ? V::load(times + i) : V::load_n(times + i, w);
    const F x = full ? V::load(cat + i) : V::load_n(cat + i, w);
    // Where at most one instance was pasted (times 0 or 1: most pixels) the divisor is 1 and x / 1 = x
    // exactly: such groups skip the division (the 12 MP photo's argmax waited on it).
    const F s = V::bits(V::gt(t, one)) ? V::div(x, V::select(V::gt(t, zero), t, one)) : x;
    const F b = full ? V::load(best + i) : V::load_n(best + i, w);
    const M gt = V::gt(s, b);  // lanes past the tail: 0 > 0 is false
    uint32_t g = V::bits(gt);
    if (!g) continue;
    if (full) {
      V::store(best + i, V::select(gt, s, b));
      V::store_u8_where(lab + i, gt, c);  // one store, not one per lane taken
    } else {
      V::store_n(best + i, V::select(gt, s, b), w);
      for (; g; g &= g - 1) lab[i + __builtin_ctz(g)] = c;
    }
  }
}

}  // namespace
}  // namespace m2fp::kern
