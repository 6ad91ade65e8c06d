// kernels/avx512/softmax.cpp: the avx512 path of softmax over rows (16 lanes; body in
// kernels/softmax_simd.h, exp is V16::exp).
#include "kernels/avx512/simd_ops.h"
#include "kernels/internal.h"
#include "kernels/softmax_simd.h"

namespace m2fp::kern::avx512 {

void softmax_rows(float* x, int64_t rows, int64_t n) { softmax_rows_simd<V16>(x, rows, n); }

}  // namespace m2fp::kern::avx512
