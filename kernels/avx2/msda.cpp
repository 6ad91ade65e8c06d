// kernels/avx2/msda.cpp: fused multi-scale deformable attention, AVX2 path (8 lanes; a model
// head's 32 channels are 4 ymm accumulators; bfloat16 values: 2 loads of 16, 8 accumulators). The
// body is kernels/msda_simd.h.
#include "kernels/internal.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/msda_simd.h"

namespace m2fp::kern::avx2 {

void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t q0, int64_t q1) {
  msda_chunk<V8>(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, q0, q1);
}

void ms_deform_attn_bf16(const uint16_t* value, const int64_t* shapes, const int64_t* level_start, int L,
                         int P, int heads, int dh, const float* ref, const float* offsets,
                         const float* logits, int64_t ld_qp, uint16_t* out, int64_t q0, int64_t q1) {
  msda_chunk<V8>(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, q0, q1);
}

}  // namespace m2fp::kern::avx2
