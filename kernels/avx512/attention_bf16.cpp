// kernels/avx512/attention_bf16.cpp: attention with bfloat16 keys and values (ops.def:
// attention_heads_bf16), AVX-512 path: tiles of 16 queries; where the CPU has AVX512-BF16 the pair
// products run VDPBF16PS (kernels/avx512/attention_bf16_native.cpp), elsewhere the same sums as two
// FMAs of exact products (equal but for VDPBF16PS's flush of denormals). The body is
// kernels/attention_bf16_simd.h.
#include <algorithm>
#include <cstring>

#include "kernels/cpu.h"
#include "kernels/internal.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/avx512/simd_ops.h"
#include "kernels/attention_simd.h"
#include "kernels/attention_bf16_simd.h"
#include "kernels/avx512/attention_bf16_pairs.h"

namespace m2fp::kern::avx512 {

// kernels/avx512/attention_bf16_native.cpp (compiled for AVX512-BF16; call only where the CPU has it)
void attention_heads_bf16_dp(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                             int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                             float scale, int64_t q0, int64_t q1, int nh);

void attention_heads_bf16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                          int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                          float scale, int64_t q0, int64_t q1, int nh) {
  static const bool dp = cpu_features().avx512bf16;
  if (dp)
    attention_heads_bf16_dp(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
  else
    attention_bf16_entry<V16, Pairs16Fma, 8, 16>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
}

}  // namespace m2fp::kern::avx512
