// kernels/avx512/msda.cpp: fused multi-scale deformable attention, AVX-512 path (16 lanes; a
// model head's 32 channels are 2 zmm accumulators, tails use masked loads/stores; bfloat16 values:
// one 64-byte load per corner, 4 accumulators). The body is kernels/msda_simd.h.
#include "kernels/internal.h"
#include "kernels/avx512/simd_ops.h"
#include "kernels/msda_simd.h"

namespace m2fp::kern::avx512 {

void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t q0, int64_t q1) {
  msda_chunk<V16>(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, q0, q1);
}

void ms_deform_attn_bf16(const uint16_t* value, const int64_t* shapes, const int64_t* level_start, int L,
                         int P, int heads, int dh, const float* ref, const float* offsets,
                         const float* logits, int64_t ld_qp, uint16_t* out, int64_t q0, int64_t q1) {
  msda_chunk<V16>(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, q0, q1);
}

}  // namespace m2fp::kern::avx512
