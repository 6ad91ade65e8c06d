// kernels/avx2/softmax.cpp: the avx2 path of softmax over rows (8 lanes; body in
// kernels/softmax_simd.h, exp is V8::exp).
#include "kernels/avx2/simd_ops.h"
#include "kernels/internal.h"
#include "kernels/softmax_simd.h"

namespace m2fp::kern::avx2 {

void softmax_rows(float* x, int64_t rows, int64_t n) { softmax_rows_simd<V8>(x, rows, n); }

}  // namespace m2fp::kern::avx2
