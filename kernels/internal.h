// kernels/internal.h: what the ISA folders export to the dispatch module.
//
// Each ISA folder implements the single-threaded chunk functions listed in kernels/ops.def (where
// their signatures and semantics are documented) in its own namespace: ref = scalar reference,
// avx2, avx512. kernels/dispatch.cpp gathers each ISA's functions into its KernelTable.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace m2fp::kern {

// PIL's bilinear coefficient tables for one axis (shared by every ISA's resample passes):
// for each of out_size outputs, bounds[2*i] = first input index, bounds[2*i+1] = tap count, and
// coeffs[i*ksize .. i*ksize+count) fixed-point weights (PIL's PRECISION_BITS = 22).
// Returns ksize (the stride of coeffs).
int pil_bilinear_coeffs(int64_t in_size, int64_t out_size, std::vector<int32_t>* bounds,
                        std::vector<int32_t>* coeffs);
constexpr int kPilPrecisionBits = 32 - 8 - 2;

// Each ISA's chunk functions, declared from kernels/ops.def.
#define M2FP_KERNEL_OP(name, params) void name params;
namespace ref {
#include "kernels/ops.def"
}  // namespace ref
namespace avx2 {
#include "kernels/ops.def"
}  // namespace avx2
namespace avx512 {
#include "kernels/ops.def"
// and_popcount's two bodies, which it chooses between: VPOPCNTQ (kernels/avx512/postproc_vpopcnt.cpp,
// call only where cpu_features().avx512vpopcntdq) and the nibble table (AVX-512BW). Declared here
// so that the tests run both wherever AVX-512 runs.
void and_popcount_vpopcnt(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n,
                          int64_t* count);
void and_popcount_nibbles(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n,
                          int64_t* count);
}  // namespace avx512
#undef M2FP_KERNEL_OP

}  // namespace m2fp::kern
