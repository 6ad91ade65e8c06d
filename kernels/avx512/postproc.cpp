// kernels/avx512/postproc.cpp: the avx512 path of the mask post-processing kernels
// (bodies in kernels/postproc_simd.h).
#include "kernels/avx512/simd_ops.h"
#include "kernels/cpu.h"
#include "kernels/internal.h"
#include "kernels/postproc_simd.h"

namespace m2fp::kern::avx512 {

void mask_row_stats(const float* x, int64_t n, int64_t* count, double* sig_sum, int64_t* first,
                    int64_t* last) {
  mask_row_stats_simd<V16>(x, n, count, sig_sum, first, last);
}

void paste_row(const float* x, int64_t n, float score, float* cat, float* times) {
  paste_row_simd<V16>(x, n, score, cat, times);
}

void mask_row_fused(const float* h0, const float* h1, float l0, float l1, int64_t n, const MaskRowSinks* out) {
  mask_row_fused_simd<V16>(h0, h1, l0, l1, n, out);
}

void and_popcount_nibbles(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n,
                          int64_t* count) {
  and_popcount_simd<V16>(a, b, ld, rows, n, count);
}

// VPOPCNTQ where the CPU has it (kernels/avx512/postproc_vpopcnt.cpp): the 12 MP photo's part/human
// overlaps took ~58 ms of one core with the nibble table (perf, bench_prepost big12, 1 thread).
void and_popcount(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n, int64_t* count) {
  static const bool vp = cpu_features().avx512vpopcntdq;
  if (vp)
    and_popcount_vpopcnt(a, b, ld, rows, n, count);
  else
    and_popcount_nibbles(a, b, ld, rows, n, count);
}

}  // namespace m2fp::kern::avx512
