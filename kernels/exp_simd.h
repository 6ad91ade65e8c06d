// kernels/exp_simd.h: the vector exp shared by V8::exp (kernels/avx2/simd_ops.h) and V16::exp
// (kernels/avx512/simd_ops.h), so both paths round identically; only the final multiplication by
// 2^n is ISA-specific (V::mul_pow2: exponent field on AVX2, vscalefps on AVX-512).
//
// exp(x), Cephes-style: x = n ln2 + r with |r| <= ln2/2 (two-constant Cody-Waite split with FMA),
// exp(r) by the degree-7 Cephes minimax polynomial, times 2^n. Domain: x < -87.3365 (below
// FLT_MIN) returns exactly 0, so -inf gives 0; x > 88.0 is clamped to 88.0 (callers only pass
// x <= 0), so n stays in [-126, 127] and 2^n is a normal float; NaN gives NaN (the clamps take the
// constant as the first operand, and max/min return the second one on NaN), as std::exp. Max
// error against exp computed in double, over 3.6 million inputs spread over [-87.3, 88]: 0.99 ulp
// (tests/kernels/test_simd_bodies.cpp, SimdExp, which allows 2.5 ulp).
// Anonymous namespace: see kernels/avx2/simd_ops.h.
#pragma once

namespace m2fp::kern {
namespace {

template <class V>
inline typename V::F exp_cephes(typename V::F x) {
  using F = typename V::F;
  const typename V::M under = V::lt(x, V::set1(-87.3365478515625f));  // false on NaN
  x = V::min(V::set1(88.0f), x);
  x = V::max(V::set1(-87.3365478515625f), x);
  const F n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  // r = x - n ln2, ln2 = 0.693359375 - 2.12194440e-4 (n * constant is exact in the FMA)
  F r = V::fma(n, V::set1(-0.693359375f), x);
  r = V::fma(n, V::set1(2.12194440e-4f), r);
  F y = V::set1(1.9875691500e-4f);
  y = V::fma(y, r, V::set1(1.3981999507e-3f));
  y = V::fma(y, r, V::set1(8.3334519073e-3f));
  y = V::fma(y, r, V::set1(4.1665795894e-2f));
  y = V::fma(y, r, V::set1(1.6666665459e-1f));
  y = V::fma(y, r, V::set1(5.0000001201e-1f));
  y = V::fma(y, V::mul(r, r), r);
  y = V::add(y, V::set1(1.0f));
  return V::select(under, V::zero(), V::mul_pow2(y, n));
}

}  // namespace
}  // namespace m2fp::kern
