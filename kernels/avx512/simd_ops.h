// kernels/avx512/simd_ops.h: 16-lane float vector operations (AVX-512 F/BW/VL/DQ) for the shared
// SIMD kernel bodies (kernels/msda_simd.h, kernels/attention_simd.h). Same interface as V8 in
// kernels/avx2/simd_ops.h; masks (M) are __mmask16. Anonymous namespace: see the note there.
#pragma once

#include <immintrin.h>

#include <cstdint>

// GCC 12 reports -Wmaybe-uninitialized inside its own avx512fintrin.h for intrinsics that start
// from an undefined register (_mm512_max_ps, _mm512_cvttps_epi32, ...): a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace m2fp::kern {
namespace {

struct V16 {
  static constexpr int W = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F bcast(const float* p) { return _mm512_set1_ps(*p); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static M tail(int n) { return n >= 16 ? (M)0xFFFF : (M)((1u << n) - 1u); }
  static F load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store_n(float* p, F x, int n) { _mm512_mask_storeu_ps(p, tail(n), x); }

  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  // max/min return the second operand when either is NaN (x86 semantics); callers rely on it.
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F floor(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static F round(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  static M ge(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static uint32_t bits(M m) { return (uint32_t)m; }  // lane i -> bit i
  static M mand(M a, M b) { return (M)(a & b); }
  static F where(M m, F x) { return _mm512_maskz_mov_ps(m, x); }
  static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }

  static F pair(float x, float y) { return _mm512_mask_blend_ps(0x5555, _mm512_set1_ps(y), _mm512_set1_ps(x)); }
  static F dup_odd(F x) { return _mm512_movehdup_ps(x); }
  static I dup_odd_i(I x) { return _mm512_shuffle_epi32(x, _MM_PERM_DDBB); }
  // 16 mask bytes -> lanes whose byte is non-zero.
  static M bytes_nonzero(const uint8_t* p) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm_test_epi8_mask(b, b);
  }

  static bool any_nonzero(F x) { return _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ) != 0; }

  static I cvtt(F x) { return _mm512_cvttps_epi32(x); }
  static I loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void storei(int32_t* p, I x) { _mm512_storeu_si512(p, x); }
  static I addi(I a, I b) { return _mm512_add_epi32(a, b); }
  static I muli(I a, I b) { return _mm512_mullo_epi32(a, b); }

  // exp(x): the same algorithm and constants as V8::exp (so both paths round identically);
  // 2^n is applied with vscalefps. Domain and error: see V8::exp.
  static F exp(F x) {
    const M under = lt(x, set1(-87.3365478515625f));
    x = min(x, set1(88.0f));
    x = max(x, set1(-87.3365478515625f));
    const F n = round(_mm512_mul_ps(x, set1(1.44269504088896341f)));
    F r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    F y = set1(1.9875691500e-4f);
    y = fma(y, r, set1(1.3981999507e-3f));
    y = fma(y, r, set1(8.3334519073e-3f));
    y = fma(y, r, set1(4.1665795894e-2f));
    y = fma(y, r, set1(1.6666665459e-1f));
    y = fma(y, r, set1(5.0000001201e-1f));
    y = fma(y, _mm512_mul_ps(r, r), r);
    y = add(y, set1(1.0f));
    y = _mm512_scalef_ps(y, n);
    return _mm512_maskz_mov_ps((M)~under, y);
  }

  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
};

}  // namespace
}  // namespace m2fp::kern
