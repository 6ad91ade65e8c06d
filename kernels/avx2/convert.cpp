// kernels/avx2/convert.cpp: fp32 -> bfloat16 rounding, avx2 path (body in kernels/convert_simd.h).
#include "kernels/avx2/simd_ops.h"
#include "kernels/convert_simd.h"
#include "kernels/internal.h"

namespace m2fp::kern::avx2 {

void round_bf16(const float* x, const float* a, uint16_t* y, int64_t n) { round_bf16_simd<V8>(x, a, y, n); }
void add_bf16(uint16_t* y, const uint16_t* r, int64_t n, bool relu) { add_bf16_simd<V8>(y, r, n, relu); }

}  // namespace m2fp::kern::avx2
