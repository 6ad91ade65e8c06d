// kernels/internal.h: what the ISA folders export to the dispatch module.
//
// Each ISA folder implements the same single-threaded chunk functions in its own namespace
// (ref = scalar reference, avx2, avx512); <isa>/table.cpp gathers them into a KernelTable.
// Signatures and semantics are documented on KernelTable in kernels.h.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace m2fp::kern {

const KernelTable& scalar_table();
const KernelTable& avx2_table();
const KernelTable& avx512_table();

// PIL's bilinear coefficient tables for one axis (shared by every ISA's resample passes):
// for each of out_size outputs, bounds[2*i] = first input index, bounds[2*i+1] = tap count, and
// coeffs[i*ksize .. i*ksize+count) fixed-point weights (PIL's PRECISION_BITS = 22).
// Returns ksize (the stride of coeffs).
int pil_bilinear_coeffs(int64_t in_size, int64_t out_size, std::vector<int32_t>* bounds,
                        std::vector<int32_t>* coeffs);
constexpr int kPilPrecisionBits = 32 - 8 - 2;

#define M2FP_KERNEL_DECLS                                                                          \
  void softmax_rows(float* x, int64_t rows, int64_t n);                                           \
  void layernorm_rows(const float* x, const float* residual, const float* gamma,                  \
                      const float* beta, float* y, int64_t rows, int64_t C, float eps);           \
  void groupnorm_stats_nhwc(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq); \
  void affine_nhwc(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,        \
                   const float* shift, bool relu);                                                \
  void resize_bilinear_plane_rows(const float* src, int64_t H, int64_t W, float* dst, int64_t oh,  \
                                  int64_t ow, int64_t y0, int64_t y1);                             \
  void resize_bilinear_nhwc_rows(const float* src, int64_t H, int64_t W, int64_t C, float* dst,   \
                                 int64_t oh, int64_t ow, int64_t y0, int64_t y1);                  \
  void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start,      \
                      int L, int P, int heads, int dh, const float* ref, const float* offsets,    \
                      const float* logits, int64_t ld_qp, float* out, int64_t q0, int64_t q1);    \
  void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,   \
                      int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk,      \
                      int dh, float scale, int64_t q0, int64_t q1);                               \
  void pil_resample_h_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, int64_t ow,         \
                         const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,     \
                         int64_t y1);                                                             \
  void mask_row_stats(const float* x, int64_t n, int64_t* count, double* sig_sum, int64_t* first,  \
                      int64_t* last);                                                             \
  void paste_row(const float* x, int64_t n, float score, float* cat, float* times);               \
  void pil_resample_v_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst,                     \
                         const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,     \
                         int64_t y1);

namespace ref { M2FP_KERNEL_DECLS }
namespace avx2 { M2FP_KERNEL_DECLS }
namespace avx512 { M2FP_KERNEL_DECLS }

#define M2FP_KERNEL_TABLE(ns, isa_value)                                                           \
  KernelTable {                                                                                    \
    isa_value, ns::softmax_rows, ns::layernorm_rows, ns::groupnorm_stats_nhwc, ns::affine_nhwc,   \
        ns::resize_bilinear_plane_rows, ns::resize_bilinear_nhwc_rows, ns::ms_deform_attn,         \
        ns::attention_head, ns::mask_row_stats, ns::paste_row, ns::pil_resample_h_u8,             \
        ns::pil_resample_v_u8                                                                      \
  }

}  // namespace m2fp::kern
