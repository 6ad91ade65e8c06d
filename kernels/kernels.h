// kernels/kernels.h: m2fp.cpp's own compute kernels (floor 1).
//
// Pure functions on raw float buffers with explicit shapes: no model knowledge, no I/O.
// Every op has a scalar reference (kernels/ref/), an AVX2 variant (kernels/avx2/) and an AVX-512
// variant (kernels/avx512/). kernels/dispatch.cpp picks one path once at start-up from cpuid and
// the OS state (xgetbv); the environment variable M2FP_ISA=scalar|avx2|avx512 forces a path.
//
// The free functions below are the public entry points: they split the work across the OpenMP
// thread pool (shared with oneDNN) and call the active ISA's single-threaded chunk functions from
// the KernelTable. Tests call table_for(isa) directly to compare every path with the reference.
//
// Dimension key used in the comments:
//   rows, C   : rows of a row-major matrix and its width (channels)
//   H, W      : height and width of a feature map; HW = H*W pixels
//   Lq, Lk    : number of queries and keys; heads x dh = model width (8 x 32 = 256)
//   L, P      : deformable attention levels (3) and points per level (4)
#pragma once

#include <cstddef>
#include <cstdint>

namespace m2fp::kern {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// Single-threaded chunk functions of one ISA. All pointers are non-aliasing unless stated.
struct KernelTable {
  Isa isa;

  // x[rows, n] <- softmax(x) along each row (max-subtracted, in place).
  void (*softmax_rows)(float* x, int64_t rows, int64_t n);

  // y[rows, C] = LayerNorm(x + residual) * gamma + beta, biased variance, eps inside the sqrt.
  // residual may be null; y may alias x.
  void (*layernorm_rows)(const float* x, const float* residual, const float* gamma,
                         const float* beta, float* y, int64_t rows, int64_t C, float eps);

  // GroupNorm on NHWC data, split in two phases so the caller can parallelise over pixels:
  //   stats: sum[c] += sum_p x[p, c], sumsq[c] += sum_p x[p, c]^2 over n_pix pixels (double)
  //   apply: y[p, c] = x[p, c] * scale[c] + shift[c], then max(y, 0) when relu. y may alias x.
  void (*groupnorm_stats_nhwc)(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq);
  void (*affine_nhwc)(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,
                      const float* shift, bool relu);

  // Bilinear resize, PyTorch F.interpolate(mode='bilinear', align_corners=False) semantics (no
  // antialiasing): src[H, W] one plane -> output rows [y0, y1) of dst[oh, ow]; dst points at
  // output row y0.
  void (*resize_bilinear_plane_rows)(const float* src, int64_t H, int64_t W, float* dst,
                                     int64_t oh, int64_t ow, int64_t y0, int64_t y1);
  // Same semantics on channels-last data: src[H, W, C] -> output rows [y0, y1) of dst[oh, ow, C].
  void (*resize_bilinear_nhwc_rows)(const float* src, int64_t H, int64_t W, int64_t C, float* dst,
                                    int64_t oh, int64_t ow, int64_t y0, int64_t y1);

  // Multi-scale deformable attention core (Deformable DETR), fused, for queries [q0, q1):
  //   value   [Len_in, heads*dh]   value_proj output, levels concatenated row-major
  //   shapes  [L][2] = (H_l, W_l); level_start [L]
  //   ref     [Lq, 2]              reference point (x, y) in [0, 1], the same on all levels
  //   offsets row i at offsets + i*ld_qp: [heads, L, P, 2] raw sampling_offsets output (x, y)
  //   logits  row i at logits + i*ld_qp:  [heads, L*P]     raw attention_weights output
  //   out     [Lq, heads*dh]
  // For each head: w = softmax(logits over the L*P pairs); location = ref + offset / (W_l, H_l);
  // sample level l bilinearly at pixel (x*W_l - 0.5, y*H_l - 0.5), zeros outside (grid_sample,
  // align_corners=False, padding zeros); out = sum w * sample.
  void (*ms_deform_attn)(const float* value, const int64_t* shapes, const int64_t* level_start,
                         int L, int P, int heads, int dh, const float* ref, const float* offsets,
                         const float* logits, int64_t ld_qp, float* out, int64_t q0, int64_t q1);

  // Multi-head attention for one head, queries [q0, q1):
  //   q [Lq, *] row stride ldq, k/v [Lk, *] row strides ldk/ldv, out row stride ldo; the head's
  //   dh columns start at each pointer. out = softmax(scale * q k^T, masked) v.
  //   mask [Lq, Lk] (row stride Lk), 1 = key excluded, may be null. A query whose row is fully
  //   masked attends to all keys (Mask2Former's rule). Streaming (online) softmax over keys.
  void (*attention_head)(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                         int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk,
                         int dh, float scale, int64_t q0, int64_t q1);

  // Post-processing of mask logits (upstream m2fp_net.py), one row x[n] at a time:
  // mask_row_stats: *count += #(x > 0); *sig_sum += sum of sigmoid(x) over those; *first / *last
  //   = the first / last index with x > 0 in this row, -1 if none (written, not accumulated).
  // paste_row: p = sigmoid(x[i]) * score; where p > 0.5: cat[i] += p, times[i] += 1.
  // sigmoid(x) = 1 / (1 + exp(-x)) in float (SIMD exp within ~1 ulp of expf).
  void (*mask_row_stats)(const float* x, int64_t n, int64_t* count, double* sig_sum, int64_t* first,
                         int64_t* last);
  void (*paste_row)(const float* x, int64_t n, float score, float* cat, float* times);

  // PIL Image.resize(BILINEAR) on uint8 interleaved images, one pass of PIL's separable
  // resampler (triangle filter widened by the scale factor when shrinking, fixed-point
  // coefficients as PIL computes them): horizontal pass src[H, W, ch] -> dst[H, ow, ch] for rows
  // [y0, y1); coefficient tables come from pil_bilinear_coeffs().
  void (*pil_resample_h_u8)(const uint8_t* src, int64_t W, int ch, uint8_t* dst, int64_t ow,
                            const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                            int64_t y1);
  // vertical pass src[H, W, ch] -> dst[oh, W, ch] for output rows [y0, y1).
  void (*pil_resample_v_u8)(const uint8_t* src, int64_t W, int ch, uint8_t* dst,
                            const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                            int64_t y1);
};

// ---- dispatch ---------------------------------------------------------------------------------
bool isa_supported(Isa isa);          // compiled in, CPU has it, and the OS saves its state
Isa best_isa();                        // the best supported path
Isa active_isa();                      // chosen once: M2FP_ISA if set (must be supported), else best
void set_active_isa(Isa isa);          // tests and benchmarks; throws if unsupported
const char* isa_name(Isa isa);         // "scalar" | "avx2" | "avx512"
bool parse_isa(const char* s, Isa* out);
const KernelTable& table_for(Isa isa); // a specific path (tests compare them)
const KernelTable& active();           // the active path

// ---- threaded entry points (OpenMP; pass-through to active()) ---------------------------------
void softmax_rows(float* x, int64_t rows, int64_t n);
void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps);
// x, y [HW, C]; G groups of C/G channels; y may alias x.
void groupnorm_nhwc(const float* x, float* y, int64_t HW, int64_t C, int64_t G, const float* gamma,
                    const float* beta, float eps, bool relu);
// src [planes, H, W] -> dst [planes, oh, ow]
void resize_bilinear_planes(const float* src, int64_t planes, int64_t H, int64_t W, float* dst,
                            int64_t oh, int64_t ow);
// src [H, W, C] -> dst [oh, ow, C]
void resize_bilinear_nhwc(const float* src, int64_t H, int64_t W, int64_t C, float* dst, int64_t oh,
                          int64_t ow);
void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t Lq);
// All heads: q/k/v/out hold heads*dh columns (head h at column h*dh).
void masked_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                      int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lq,
                      int64_t Lk, int heads, int dh, float scale);

// Sine position encoding (DETR PositionEmbeddingSine, normalize=True, scale 2*pi, no mask):
// out [H*W, 2*F] row-major, F = num_feats (128): first F channels encode y, last F encode x;
// channel i uses v / T^(2*floor(i/2)/F), sin for even i, cos for odd i, with
// v_y = (row+1)/(H+1e-6)*2pi and v_x = (col+1)/(W+1e-6)*2pi. Computed once per size.
void sine_pos_embed(int64_t H, int64_t W, int num_feats, float temperature, float* out);

// PIL-compatible bilinear resize of an 8-bit interleaved image (ch = 1..4):
// src [H, W, ch] -> dst [oh, ow, ch], horizontal pass first, then vertical, as PIL does.
void resize_pil_bilinear_u8(const uint8_t* src, int64_t H, int64_t W, int ch, uint8_t* dst,
                            int64_t oh, int64_t ow);

}  // namespace m2fp::kern
