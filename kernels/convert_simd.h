// kernels/convert_simd.h: the SIMD bodies of round_bf16 and add_bf16 (kernels/ops.def), shared by the AVX2 (V8)
// and AVX-512 (V16) paths: 2W values per step (the float add, then V::store_bf16's rounding to
// nearest even, a NaN kept a NaN), the last n % 2W through the scalar reference's operations.
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

#include <cstdint>

#include "kernels/internal.h"

namespace m2fp::kern {
namespace {

template <class V>
void round_bf16_simd(const float* x, const float* a, uint16_t* y, int64_t n) {
  constexpr int W = V::W;
  int64_t i = 0;
  if (a) {
    for (; i + 2 * W <= n; i += 2 * W)
      V::store_bf16(y + i, V::add(V::load(x + i), V::load(a + i)), V::add(V::load(x + i + W), V::load(a + i + W)));
  } else {
    for (; i + 2 * W <= n; i += 2 * W) V::store_bf16(y + i, V::load(x + i), V::load(x + i + W));
  }
  if (i < n) ::m2fp::kern::ref::round_bf16(x + i, a ? a + i : nullptr, y + i, n - i);
}

// add_bf16 (kernels/ops.def): 2W values a step, the sums of the even and the odd elements (as
// V::load_bf16x2 splits them), max(0, v) for the ReLU (a NaN stays a NaN: vmaxps returns its second
// operand where either is one), put back in order and rounded; the last n % 2W through the reference.
template <class V>
void add_bf16_simd(uint16_t* y, const uint16_t* r, int64_t n, bool relu) {
  constexpr int W = V::W;
  const typename V::F zero = V::zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    typename V::F ye, yo, re, ro, lo, hi;
    V::load_bf16x2(y + i, &ye, &yo);
    V::load_bf16x2(r + i, &re, &ro);
    ye = V::add(ye, re);
    yo = V::add(yo, ro);
    if (relu) {
      ye = V::max(zero, ye);
      yo = V::max(zero, yo);
    }
    V::interleave(ye, yo, &lo, &hi);
    V::store_bf16(y + i, lo, hi);
  }
  if (i < n) ::m2fp::kern::ref::add_bf16(y + i, r + i, n - i, relu);
}

}  // namespace
}  // namespace m2fp::kern
