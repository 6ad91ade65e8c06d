// kernels/avx2/attention_bf16.cpp: attention with bfloat16 keys and values (ops.def:
// attention_heads_bf16), AVX2 path: tiles of 8 queries, the bf16 pair products as two FMAs of
// exact products (no AVX512-BF16 here). The body is kernels/attention_bf16_simd.h.
#include <algorithm>
#include <cstring>

#include "kernels/internal.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/attention_simd.h"
#include "kernels/attention_bf16_simd.h"

namespace m2fp::kern::avx2 {
namespace {

// bf16 pairs in 8 32-bit lanes (kernels/attention_bf16_simd.h).
struct Pairs8 {
  using I = __m256i;
  static I loadp(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void storep(uint32_t* p, I x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x); }
  static I bcast_u32(const uint32_t* p) { return _mm256_set1_epi32((int32_t)*p); }
  static I bcast_pair(const uint16_t* p) {
    uint32_t x;
    std::memcpy(&x, p, 4);
    return _mm256_set1_epi32((int32_t)x);
  }
  // lanes (bf16(e), bf16(o)), nearest even (finite values)
  static I pack(__m256 e, __m256 o) {
    const I one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7fff);
    const I ue = _mm256_castps_si256(e), uo = _mm256_castps_si256(o);
    const I re = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(ue, half), _mm256_and_si256(_mm256_srli_epi32(ue, 16), one)), 16);
    const I ro = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(uo, half), _mm256_and_si256(_mm256_srli_epi32(uo, 16), one)),
                                  _mm256_set1_epi32((int32_t)0xFFFF0000u));
    return _mm256_or_si256(re, ro);
  }
  // acc + a.hi * b.hi, then + a.lo * b.lo (each product exact, one rounding per add)
  static __m256 dp(__m256 acc, I a, I b) {
    const I hi = _mm256_set1_epi32((int32_t)0xFFFF0000u);
    acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, hi)), _mm256_castsi256_ps(_mm256_and_si256(b, hi)), acc);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), acc);
  }
};

}  // namespace

void attention_heads_bf16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                          int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                          float scale, int64_t q0, int64_t q1, int nh) {
  attention_bf16_entry<V8, Pairs8, 4, 8>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
}

}  // namespace m2fp::kern::avx2
