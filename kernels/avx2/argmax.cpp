// kernels/avx2/argmax.cpp: the avx2 path of class_argmax (body in kernels/argmax_simd.h).
#include "kernels/avx2/simd_ops.h"
#include "kernels/argmax_simd.h"
#include "kernels/internal.h"

namespace m2fp::kern::avx2 {

void class_argmax(const float* cat, const float* times, int64_t n, uint8_t c, float* best, uint8_t* lab) {
  class_argmax_simd<V8>(cat, times, n, c, best, lab);
}

}  // namespace m2fp::kern::avx2
