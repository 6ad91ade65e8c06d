// kernels/avx2/simd_ops.h: 8-lane vector operations (AVX2 + FMA) for the shared SIMD kernel bodies
// (kernels/*_simd.h: msda, attention, postproc, softmax, norms, resize, pil_resample).
//
// Everything is in an anonymous namespace on purpose: this header is included from translation
// units compiled with different ISA flags (kernels/avx2/ and kernels/avx512/), and internal
// linkage keeps the linker from merging an AVX-512-encoded copy into the AVX2 path.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/exp_simd.h"

namespace m2fp::kern {
namespace {

// V8: one __m256 of 8 floats. Masks (M) are float vectors with all-ones / all-zero lanes.
// I holds 8 int32, D the 4 doubles of half a vector.
struct V8 {
  static constexpr int W = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256;
  using D = __m256d;

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
  static M tail_m(int n) { return _mm256_castsi256_ps(tail(n)); }
  // Non-temporal store; p must be 32-byte aligned (W * 4 bytes). Callers end with _mm_sfence().
  static void stream(float* p, F x) { _mm256_stream_ps(p, x); }

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

  // Horizontal sum and max of the 8 lanes: (lo + hi) of the halves, then pairs of the 4 left.
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }

  // doubles: lanes [0, 4) / [4, 8) of a float vector widened (exact), or 4 floats from memory
  static D zero_d() { return _mm256_setzero_pd(); }
  static D cvt_lo(F x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }
  static D cvt_hi(F x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }
  static D load_half_cvt(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static D load_d(const double* p) { return _mm256_loadu_pd(p); }
  static void store_d(double* p, D x) { _mm256_storeu_pd(p, x); }
  static D add_d(D a, D b) { return _mm256_add_pd(a, b); }
  static D fma_d(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
  static double hsum_d(D v) {  // (lo + hi) of the halves, then the pair
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }

  static I cvtt(F x) { return _mm256_cvttps_epi32(x); }
  static I set1i(int32_t x) { return _mm256_set1_epi32(x); }
  static I loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void storei(int32_t* p, I x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x); }
  static I loadi_n(const int32_t* p, int n) { return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), tail(n)); }
  static I addi(I a, I b) { return _mm256_add_epi32(a, b); }
  static I subi(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I muli(I a, I b) { return _mm256_mullo_epi32(a, b); }  // low 32 bits (wraps)
  static I maxi(I a, I b) { return _mm256_max_epi32(a, b); }
  static I mini(I a, I b) { return _mm256_min_epi32(a, b); }
  template <int S>
  static I srai(I x) { return _mm256_srai_epi32(x, S); }
  template <int S>
  static I srli(I x) { return _mm256_srli_epi32(x, S); }
  static I sll(I x, int n) { return _mm256_sll_epi32(x, _mm_cvtsi32_si128(n)); }  // n: a run-time count
  static I andi(I a, I b) { return _mm256_and_si256(a, b); }

  // Gathers p[idx[i]] (float); the _n forms read lanes [0, n) only, the others are 0.
  static F gather(const float* p, I idx) { return _mm256_i32gather_ps(p, idx, 4); }
  static F gather_n(const float* p, I idx, int n) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, idx, tail_m(n), 4);
  }
  // The 4 bytes at p + idx[i] (byte offsets) as one int32 per lane.
  static I gather_bytes4(const uint8_t* p, I idx) { return _mm256_i32gather_epi32(reinterpret_cast<const int*>(p), idx, 1); }
  // Lane i = (lo, hi)[idx[i]], idx in [0, 16): one permute per source, blended on idx > 7.
  static F permute2(F lo, F hi, I idx) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))));
  }

  // Bytes: 8 (or the first n) bytes zero-extended to int32 lanes; the low byte of each lane
  // stored as 8 (or n) bytes. AVX2 has no byte-masked load/store: the _n forms go through a
  // zeroed 8-byte copy and never touch bytes past p + n.
  static I load_u8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static I load_u8_n(const uint8_t* p, int n) {
    uint64_t t = 0;
    std::memcpy(&t, p, (size_t)n);
    return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)t));
  }
  static __m128i pack_u8(I x) {  // byte 0 of each dword -> the low 8 bytes
    const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(x, shuf), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return _mm256_castsi256_si128(v);
  }
  static void store_u8(uint8_t* p, I x) { _mm_storel_epi64(reinterpret_cast<__m128i*>(p), pack_u8(x)); }
  static void store_u8_n(uint8_t* p, I x, int n) {
    const uint64_t t = (uint64_t)_mm_cvtsi128_si64(pack_u8(x));
    std::memcpy(p, &t, (size_t)n);
  }
  // p[k] = c where lane k of m is set, the other W bytes as they are (a load, a byte blend, a store).
  static void store_u8_where(uint8_t* p, M m, uint8_t c) {
    const __m128i old = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i v = _mm_blendv_epi8(old, _mm_set1_epi8((char)c), pack_u8(_mm256_castps_si256(m)));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), v);
  }

  // y * 2^n for integral n in [-126, 127]: 2^n built in the exponent field (exact).
  static F mul_pow2(F y, F n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  }
  // exp(x): kernels/exp_simd.h (domain, NaN, error).
  static F exp(F x) { return exp_cephes<V8>(x); }

  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

  // bfloat16: 2W values p[0 .. 2W) widened exactly to fp32, split by parity: even = p[0, 2, ..],
  // odd = p[1, 3, ..] (one load, a shift and a mask, no shuffle); interleave() puts such a pair back
  // in order: lo = (e0, o0, e1, o1, ..) of the first W, hi = the next W.
  static void load_bf16x2(const uint16_t* p, F* even, F* odd) {
    const I raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    *even = _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));
    *odd = _mm256_castsi256_ps(_mm256_and_si256(raw, _mm256_set1_epi32((int32_t)0xFFFF0000u)));
  }
  // lo, hi rounded to bfloat16 (nearest even, a NaN stays a NaN) into p[0 .. 2W).
  static I round_bf16(F x) {  // in the low 16 bits of each lane
    const I u = _mm256_castps_si256(x);
    const I r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                                                   _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))),
                                  16);
    const I nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    // (u & 0x7fffffff) > 0x7f800000 as signed compares: both sides are non-negative
    const I isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, nan, isnan);
  }
  static void store_bf16(uint16_t* p, F lo, F hi) {
    // packus: (lo0-3 hi0-3 | lo4-7 hi4-7) per 128-bit lane, values <= 0xffff; then lanes in order
    const I packed = _mm256_packus_epi32(round_bf16(lo), round_bf16(hi));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permute4x64_epi64(packed, 0xD8));
  }
  static void interleave(F e, F o, F* lo, F* hi) {
    const F a = _mm256_unpacklo_ps(e, o), b = _mm256_unpackhi_ps(e, o);  // (e0 o0 e1 o1 | e4 o4 e5 o5), (e2 .. | e6 ..)
    *lo = _mm256_permute2f128_ps(a, b, 0x20);
    *hi = _mm256_permute2f128_ps(a, b, 0x31);
  }

  // Bit counts in 64-bit lanes (I as 4 uint64): the set bits of a[i] & b[i] for the 4 words from a
  // and b (per byte from a nibble table, summed per word), lane-wise add, and the lanes' sum.
  static I zero64() { return _mm256_setzero_si256(); }
  static I popcnt_and64(const uint64_t* a, const uint64_t* b) {
    const __m256i x = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                                      _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
    return _mm256_sad_epu8(c, _mm256_setzero_si256());
  }
  static I add64(I a, I b) { return _mm256_add_epi64(a, b); }
  static int64_t hsum64(I v) {
    int64_t t[4];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), v);
    return t[0] + t[1] + t[2] + t[3];
  }
};

}  // namespace
}  // namespace m2fp::kern
