// kernels/avx512/simd_ops.h: 16-lane vector operations (AVX-512 F/BW/VL/DQ) for the shared SIMD
// kernel bodies (kernels/*_simd.h). Same interface as V8 in kernels/avx2/simd_ops.h; masks (M) are
// __mmask16, D is 8 doubles. Anonymous namespace: see the note there.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/exp_simd.h"

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
  using D = __m512d;

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F bcast(const float* p) { return _mm512_set1_ps(*p); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static M tail(int n) { return n >= 16 ? (M)0xFFFF : (M)((1u << n) - 1u); }
  static F load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store_n(float* p, F x, int n) { _mm512_mask_storeu_ps(p, tail(n), x); }
  static M tail_m(int n) { return tail(n); }
  // Non-temporal store; p must be 64-byte aligned (W * 4 bytes). Callers end with _mm_sfence().
  static void stream(float* p, F x) { _mm512_stream_ps(p, x); }

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

  // Horizontal sum and max of the 16 lanes (GCC's reduction order: halves, quarters, pairs).
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
  static float hmax(F v) { return _mm512_reduce_max_ps(v); }

  // doubles: lanes [0, 8) / [8, 16) of a float vector widened (exact), or 8 floats from memory
  static D zero_d() { return _mm512_setzero_pd(); }
  static D cvt_lo(F x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
  static D cvt_hi(F x) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)); }
  static D load_half_cvt(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static D load_d(const double* p) { return _mm512_loadu_pd(p); }
  static void store_d(double* p, D x) { _mm512_storeu_pd(p, x); }
  static D add_d(D a, D b) { return _mm512_add_pd(a, b); }
  static D fma_d(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
  static double hsum_d(D v) { return _mm512_reduce_add_pd(v); }

  static I cvtt(F x) { return _mm512_cvttps_epi32(x); }
  static I set1i(int32_t x) { return _mm512_set1_epi32(x); }
  static I loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void storei(int32_t* p, I x) { _mm512_storeu_si512(p, x); }
  static I loadi_n(const int32_t* p, int n) { return _mm512_maskz_loadu_epi32(tail(n), p); }
  static I addi(I a, I b) { return _mm512_add_epi32(a, b); }
  static I subi(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I muli(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static I maxi(I a, I b) { return _mm512_max_epi32(a, b); }
  static I mini(I a, I b) { return _mm512_min_epi32(a, b); }
  template <int S>
  static I srai(I x) { return _mm512_srai_epi32(x, S); }
  template <int S>
  static I srli(I x) { return _mm512_srli_epi32(x, S); }
  static I sll(I x, int n) { return _mm512_sll_epi32(x, _mm_cvtsi32_si128(n)); }  // n: a run-time count
  static I andi(I a, I b) { return _mm512_and_si512(a, b); }

  // Gathers p[idx[i]] (float); the _n forms read lanes [0, n) only, the others are 0.
  static F gather(const float* p, I idx) { return gather_n(p, idx, W); }
  static F gather_n(const float* p, I idx, int n) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tail(n), idx, p, 4);
  }
  // The 4 bytes at p + idx[i] (byte offsets) as one int32 per lane.
  static I gather_bytes4(const uint8_t* p, I idx) {  // (the masked form: the emulation tests have it)
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), (__mmask16)0xFFFF, idx, p, 1);
  }
  // Lane i = (lo, hi)[idx[i]], idx in [0, 32): one two-source permute.
  static F permute2(F lo, F hi, I idx) { return _mm512_permutex2var_ps(lo, idx, hi); }

  // Bytes: 16 (or the first n) bytes zero-extended to int32 lanes; the low byte of each lane
  // stored as 16 (or n) bytes.
  static I load_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static I load_u8_n(const uint8_t* p, int n) { return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(tail(n), p)); }
  static void store_u8(uint8_t* p, I x) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(x)); }
  static void store_u8_n(uint8_t* p, I x, int n) { _mm_mask_storeu_epi8(p, tail(n), _mm512_cvtepi32_epi8(x)); }
  // p[k] = c where lane k of m is set, the other W bytes untouched (one byte-masked store).
  static void store_u8_where(uint8_t* p, M m, uint8_t c) { _mm_mask_storeu_epi8(p, m, _mm_set1_epi8((char)c)); }

  // y * 2^n for integral n: vscalefps (exact, one rounding).
  static F mul_pow2(F y, F n) { return _mm512_scalef_ps(y, n); }
  // exp(x): kernels/exp_simd.h (domain, NaN, error); the same roundings as V8::exp.
  static F exp(F x) { return exp_cephes<V16>(x); }

  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

  // bfloat16: 2W values p[0 .. 2W) widened exactly to fp32, split by parity: even = p[0, 2, ..],
  // odd = p[1, 3, ..] (one load, a shift and a mask, no shuffle); interleave() puts such a pair back
  // in order: lo = (e0, o0, e1, o1, ..) of the first W, hi = the next W.
  static void load_bf16x2(const uint16_t* p, F* even, F* odd) {
    const I raw = _mm512_loadu_si512(p);
    *even = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
    *odd = _mm512_castsi512_ps(_mm512_and_si512(raw, _mm512_set1_epi32((int32_t)0xFFFF0000u)));
  }
  // lo, hi rounded to bfloat16 (nearest even, a NaN stays a NaN) into p[0 .. 2W).
  static __m256i round_bf16(F x) {
    const I u = _mm512_castps_si512(x);
    const I one = _mm512_set1_epi32(1);
    const I r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
    const I nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    const __mmask16 isnan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(isnan, r, nan));
  }
  static void store_bf16(uint16_t* p, F lo, F hi) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), round_bf16(lo));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + W), round_bf16(hi));
  }
  static void interleave(F e, F o, F* lo, F* hi) {
    const I ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const I ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    *lo = _mm512_permutex2var_ps(e, ilo, o);
    *hi = _mm512_permutex2var_ps(e, ihi, o);
  }

  // Bit counts in 64-bit lanes (I as 8 uint64), as V8's (AVX-512BW byte shuffles, no VPOPCNTQ).
  static I zero64() { return _mm512_setzero_si512(); }
  static I popcnt_and64(const uint64_t* a, const uint64_t* b) {
    const __m512i x = _mm512_and_si512(_mm512_loadu_si512(a), _mm512_loadu_si512(b));
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
    const __m512i low = _mm512_set1_epi8(0x0f);
    const __m512i c = _mm512_add_epi8(_mm512_shuffle_epi8(lut, _mm512_and_si512(x, low)),
                                      _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(x, 4), low)));
    return _mm512_sad_epu8(c, _mm512_setzero_si512());
  }
  static I add64(I a, I b) { return _mm512_add_epi64(a, b); }
  static int64_t hsum64(I v) {  // (not _mm512_reduce_add_epi64: GCC 12 warns inside it)
    int64_t t[8];
    _mm512_storeu_si512(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
  }
};

}  // namespace
}  // namespace m2fp::kern
