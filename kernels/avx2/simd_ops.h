// kernels/avx2/simd_ops.h: 8-lane float vector operations (AVX2 + FMA) for the shared SIMD kernel
// bodies (kernels/msda_simd.h, kernels/attention_simd.h).
//
// Everything is in an anonymous namespace on purpose: this header is included from translation
// units compiled with different ISA flags (kernels/avx2/ and kernels/avx512/), and internal
// linkage keeps the linker from merging an AVX-512-encoded copy into the AVX2 path.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace m2fp::kern {
namespace {

// V8: one __m256 of 8 floats. Masks (M) are float vectors with all-ones / all-zero lanes.
struct V8 {
  static constexpr int W = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256;

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F x) { _mm256_storeu_ps(p, x); }
  // Lanes [0, n) all ones, n in [0, 8].
  static I tail(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // First n lanes from p (the others are 0; lanes >= n are not read).
  static F load_n(const float* p, int n) { return _mm256_maskload_ps(p, tail(n)); }
  static void store_n(float* p, F x, int n) { _mm256_maskstore_ps(p, tail(n), x); }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }  // a*b + c, one rounding
  // max/min return the second operand when either is NaN (x86 semantics); callers rely on it.
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F floor(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static F round(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  static M ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M mand(M a, M b) { return _mm256_and_ps(a, b); }
  static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static uint32_t bits(M m) { return (uint32_t)_mm256_movemask_ps(m); }  // lane i -> bit i
  static F where(M m, F x) { return _mm256_and_ps(m, x); }                // m ? x : 0
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }    // m ? a : b

  // (x, y, x, y, ...): lane 2i = x, lane 2i+1 = y.
  static F pair(float x, float y) {
    return _mm256_blend_ps(_mm256_set1_ps(y), _mm256_set1_ps(x), 0x55);
  }
  // (x1, x1, x3, x3, ...): each odd lane copied into the even lane below it.
  static F dup_odd(F x) { return _mm256_movehdup_ps(x); }
  static I dup_odd_i(I x) { return _mm256_shuffle_epi32(x, _MM_SHUFFLE(3, 3, 1, 1)); }
  // 8 mask bytes -> lanes whose byte is non-zero.
  static M bytes_nonzero(const uint8_t* p) {
    const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(w, _mm256_setzero_si256()));
  }

  // True when some lane is non-zero (or NaN).
  static bool any_nonzero(F x) {
    return _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ)) != 0;
  }

  static I cvtt(F x) { return _mm256_cvttps_epi32(x); }
  static I loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void storei(int32_t* p, I x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x); }
  static I addi(I a, I b) { return _mm256_add_epi32(a, b); }
  static I muli(I a, I b) { return _mm256_mullo_epi32(a, b); }

  // exp(x), Cephes-style: x = n ln2 + r with |r| <= ln2/2 (two-constant Cody-Waite split with
  // FMA), exp(r) by the degree-7 Cephes minimax polynomial, times 2^n built in the exponent field.
  // Domain: x < -87.3365 (below FLT_MIN) returns exactly 0, so -inf gives 0; x > 88.0 is clamped
  // to 88.0 (callers only pass x <= 0); NaN is not propagated. Max error against exp computed in
  // double, over 3.6 million inputs spread over [-87.3, 88]: 0.99 ulp
  // (tests/kernels/test_kernels_b.cpp, KernelsB_SimdExp, which allows 2.5 ulp).
  static F exp(F x) {
    const F under = lt(x, set1(-87.3365478515625f));
    x = min(x, set1(88.0f));
    x = max(x, set1(-87.3365478515625f));
    const F n = round(_mm256_mul_ps(x, set1(1.44269504088896341f)));
    F r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    F y = set1(1.9875691500e-4f);
    y = fma(y, r, set1(1.3981999507e-3f));
    y = fma(y, r, set1(8.3334519073e-3f));
    y = fma(y, r, set1(4.1665795894e-2f));
    y = fma(y, r, set1(1.6666665459e-1f));
    y = fma(y, r, set1(5.0000001201e-1f));
    y = fma(y, _mm256_mul_ps(r, r), r);
    y = add(y, set1(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = mul(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
  }

  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
};

}  // namespace
}  // namespace m2fp::kern
