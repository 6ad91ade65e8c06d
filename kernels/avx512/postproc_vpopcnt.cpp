// kernels/avx512/postproc_vpopcnt.cpp: and_popcount's AVX-512 body with VPOPCNTQ (AVX512_VPOPCNTDQ),
// called by kernels/avx512/postproc.cpp only where cpu_features() reports that extension. This file
// alone is compiled for it (-mavx512vpopcntdq, CMakeLists.txt); nothing here runs elsewhere.
#include "kernels/avx512/simd_ops.h"
#include "kernels/internal.h"

namespace m2fp::kern::avx512 {

// One VPOPCNTQ counts 8 words where the nibble table (V16::popcnt_and64) takes two byte shuffles,
// their masks and adds and a VPSADBW; a row's last n % 8 words go through a masked load (as pairs of
// 32-bit lanes: the loads the emulated build provides) instead of one by one: the 12 MP photo's
// rows are 63 words, 7 of them a tail.
void and_popcount_vpopcnt(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n,
                          int64_t* count) {
  const int64_t full = n & ~int64_t{7};
  const __mmask16 tail = (__mmask16)((1u << (2 * (n - full))) - 1u);  // 2 lanes per word left
  __m512i acc = _mm512_setzero_si512();
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t *x = a + r * ld, *y = b + r * ld;
    for (int64_t w = 0; w < full; w += 8)
      acc = _mm512_add_epi64(
          acc, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_loadu_si512(x + w), _mm512_loadu_si512(y + w))));
    if (tail)
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_maskz_loadu_epi32(tail, x + full),
                                                                       _mm512_maskz_loadu_epi32(tail, y + full))));
  }
  *count += V16::hsum64(acc);
}

}  // namespace m2fp::kern::avx512
