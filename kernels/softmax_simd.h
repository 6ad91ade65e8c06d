// kernels/softmax_simd.h: the SIMD body of softmax over rows (KernelTable::softmax_rows in
// kernels/kernels.h), shared by the AVX2 (V8) and AVX-512 (V16) paths; the scalar reference is
// kernels/ref/softmax.cpp.
//
// Per row x[n]: m = max(x) (two accumulators, the tail loaded with -inf in the lanes past n),
// e = V::exp(x - m) stored in place, s = sum(e) accumulated in double (each vector widened
// exactly, two accumulators), then x = e * (float)(1 / s). The only float roundings are exp, the
// sum's conversion and the final multiply. Tails use masked loads/stores, so every element goes
// through the same vector exp. V::exp (simd_ops.h): Cephes range reduction and polynomial, < 1 ulp
// measured, exactly 0 below -87.34 (so -inf logits give 0), NaN stays NaN (so a row of -inf gives
// NaN, as torch.softmax and the reference do). Softmax.ExpAccuracy in
// tests/kernels/test_softmax.cpp prints the error over [-87, -18].
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

#include <cmath>
#include <cstdint>

namespace m2fp::kern {
namespace {

// acc + the W floats of v, widened to double (lower half first).
template <class V>
inline typename V::D add_widened(typename V::D acc, typename V::F v) {
  return V::add_d(V::add_d(acc, V::cvt_lo(v)), V::cvt_hi(v));
}

template <class V>
void softmax_rows_simd(float* x, int64_t rows, int64_t n) {
  using F = typename V::F;
  using D = typename V::D;
  constexpr int W = V::W;
  const F ninf = V::set1(-INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n;  // [n]
    // max
    F m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      m0 = V::max(m0, V::load(row + i));
      m1 = V::max(m1, V::load(row + i + W));
    }
    for (; i + W <= n; i += W) m0 = V::max(m0, V::load(row + i));
    if (i < n) {
      const int t = (int)(n - i);
      m0 = V::max(m0, V::select(V::tail_m(t), V::load_n(row + i, t), ninf));
    }
    const F mv = V::set1(V::hmax(V::max(m0, m1)));
    // exp and sum (double)
    D s0 = V::zero_d(), s1 = V::zero_d();
    for (i = 0; i + 2 * W <= n; i += 2 * W) {
      const F e0 = V::exp(V::sub(V::load(row + i), mv));
      const F e1 = V::exp(V::sub(V::load(row + i + W), mv));
      V::store(row + i, e0);
      V::store(row + i + W, e1);
      s0 = add_widened<V>(s0, e0);
      s1 = add_widened<V>(s1, e1);
    }
    for (; i + W <= n; i += W) {
      const F e = V::exp(V::sub(V::load(row + i), mv));
      V::store(row + i, e);
      s0 = add_widened<V>(s0, e);
    }
    if (i < n) {  // lanes past the row are 0 in the sum
      const int t = (int)(n - i);
      const F e = V::where(V::tail_m(t), V::exp(V::sub(V::load_n(row + i, t), mv)));
      V::store_n(row + i, e, t);
      s0 = add_widened<V>(s0, e);
    }
    // scale by 1 / sum
    const float inv = (float)(1.0 / V::hsum_d(V::add_d(s0, s1)));
    const F iv = V::set1(inv);
    for (i = 0; i + W <= n; i += W) V::store(row + i, V::mul(V::load(row + i), iv));
    if (i < n) {
      const int t = (int)(n - i);
      V::store_n(row + i, V::mul(V::load_n(row + i, t), iv), t);
    }
  }
}

}  // namespace
}  // namespace m2fp::kern
