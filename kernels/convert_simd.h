// kernels/convert_simd.h: the SIMD body of round_bf16 (kernels/ops.def), shared by the AVX2 (V8)
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

}  // namespace
}  // namespace m2fp::kern
