// kernels/avx512/attention_bf16_pairs.h: bf16 pairs in 16 32-bit lanes for the body of
// kernels/attention_bf16_simd.h, without AVX512-BF16 (Pairs16Fma: the pair product as two FMAs of
// exact products) and with it (Pairs16Dp: VDPBF16PS, in kernels/avx512/attention_bf16_native.cpp).
// Include after kernels/avx512/simd_ops.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace m2fp::kern {
namespace {

struct Pairs16Base {
  using I = __m512i;
  static I loadp(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static void storep(uint32_t* p, I x) { _mm512_storeu_si512(p, x); }
  static I bcast_u32(const uint32_t* p) { return _mm512_set1_epi32((int32_t)*p); }
  static I bcast_pair(const uint16_t* p) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    return _mm512_set1_epi32((int32_t)x);
  }
  // lanes (bf16(e), bf16(o)), nearest even (finite values)
  static I pack(__m512 e, __m512 o) {
    const I one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    const I ue = _mm512_castps_si512(e), uo = _mm512_castps_si512(o);
    const I re = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(ue, half), _mm512_and_si512(_mm512_srli_epi32(ue, 16), one)), 16);
    const I ro = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(uo, half), _mm512_and_si512(_mm512_srli_epi32(uo, 16), one)),
                                  _mm512_set1_epi32((int32_t)0xFFFF0000u));
    return _mm512_or_si512(re, ro);
  }
};

struct Pairs16Fma : Pairs16Base {
  // acc + a.hi * b.hi, then + a.lo * b.lo (each product exact, one rounding per add)
  static __m512 dp(__m512 acc, I a, I b) {
    const I hi = _mm512_set1_epi32((int32_t)0xFFFF0000u);
    acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, hi)), _mm512_castsi512_ps(_mm512_and_si512(b, hi)), acc);
    return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), acc);
  }
};

}  // namespace
}  // namespace m2fp::kern
