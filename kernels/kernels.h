// kernels/kernels.h: m2fp.cpp's own compute kernels (floor 1).
//
// Pure functions on raw float buffers with explicit shapes: no model knowledge, no I/O.
// Every op has a scalar reference (kernels/ref/), an AVX2 variant (kernels/avx2/) and an AVX-512
// variant (kernels/avx512/). kernels/dispatch.cpp picks one path once at start-up from
// cpu_features() (kernels/cpu.h); the environment variable M2FP_ISA=scalar|avx2|avx512 forces a
// path.
//
// The free functions below are the public entry points (kernels/threaded.cpp): they split the
// work across the OpenMP thread pool (shared with oneDNN) and call the active ISA's
// single-threaded chunk functions from the KernelTable. Tests call table_for(isa) directly to
// compare every path with the reference.
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

// Where mask_row_fused (kernels/ops.def) sends one row of an upsampled mask: each group is used only
// when its first pointer is set.
struct MaskRowSinks {
  // statistics, as mask_row_stats: *count += #(v > 0), *sig_sum += sum of sigmoid(v) over those,
  // *first / *last = first / last index with v > 0 (-1 if none; written, not accumulated)
  int64_t* count = nullptr;
  double* sig_sum = nullptr;
  int64_t *first = nullptr, *last = nullptr;
  // paste, as paste_row: p = sigmoid(v) * score; where p > 0.5: cat[i] += p, times[i] += 1
  float* cat = nullptr;
  float* times = nullptr;
  float score = 0.f;
  // person map: where v > best[i]: best[i] = v, who[i] = id
  float* best = nullptr;
  uint8_t* who = nullptr;
  uint8_t id = 0;
  // bit i of bits[i / 64] (least significant first) = v[i] > 0; the (n + 63) / 64 words are written
  uint64_t* bits = nullptr;
};

// The paste sink's gate (kernels/postproc_gate.cpp): a logit g such that no v <= g pastes with
// `score` on any path (sigmoid(v) * score <= 0.5 as every path computes it): g is logit(0.5 / score)
// lowered by a relative margin of 1e-5 on the sigmoid, rounded down; +inf when score <= 0.5 or NaN
// (nothing pastes), 0 when score is within that margin of 0.5. The SIMD mask_row_fused computes the
// sigmoid only of the lane groups with some v > g; the outputs are those of the exact test on every lane.
float paste_gate(float score);

// Single-threaded chunk functions of one ISA, one member per op of kernels/ops.def (where each
// op's signature and semantics are documented).
struct KernelTable {
  Isa isa;
#define M2FP_KERNEL_OP(name, params) void (*name) params;
#include "kernels/ops.def"
#undef M2FP_KERNEL_OP
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
// layernorm_rows (y = LN(x + residual), y may alias x), then z = y + a row by row while the rows
// are in cache: one pass and one parallel region instead of two. z and a [rows, C] alias nothing
// else. The same float operations as layernorm_rows followed by an elementwise add.
void layernorm_rows_add(const float* x, const float* residual, const float* gamma, const float* beta,
                        float* y, const float* a, float* z, int64_t rows, int64_t C, float eps);
// layernorm_rows (y = LN(x + residual), y may alias x) and, while the rows are in cache, their
// bfloat16 copies for the bf16 layers that read them: y16 = round_bf16(y) when y16 is not null,
// z16 = round_bf16(y + a) when a and z16 are not null (the float add of layernorm_rows_add, then
// the rounding). One pass and one parallel region; y16, z16 [rows, C] dense, aliasing nothing.
void layernorm_rows_bf16(const float* x, const float* residual, const float* gamma, const float* beta,
                         float* y, uint16_t* y16, const float* a, uint16_t* z16, int64_t rows, int64_t C,
                         float eps);
// y[i] = bfloat16(x[i] + a[i]) (a may be null), i < n (ops.def: round_bf16).
void round_bf16(const float* x, const float* a, uint16_t* y, int64_t n);
// y[i] = bfloat16(y[i] + r[i]), then a negative sum 0 when relu, i < n (ops.def: add_bf16).
void add_bf16(uint16_t* y, const uint16_t* r, int64_t n, bool relu);
// x, y [HW, C]; G groups of C/G channels; y may alias x.
void groupnorm_nhwc(const float* x, float* y, int64_t HW, int64_t C, int64_t G, const float* gamma,
                    const float* beta, float eps, bool relu);
// groupnorm_nhwc into bfloat16 y16 [HW, C] (dense, aliasing nothing): the same fp32 values, then
// round_bf16, in the affine's pass (for a bf16 layer reading them).
void groupnorm_nhwc_bf16(const float* x, uint16_t* y16, int64_t HW, int64_t C, int64_t G, const float* gamma,
                         const float* beta, float eps, bool relu);
// src [planes, H, W] -> dst [planes, oh, ow]
void resize_bilinear_planes(const float* src, int64_t planes, int64_t H, int64_t W, float* dst,
                            int64_t oh, int64_t ow);
// src [H, W, C] -> dst [oh, ow, C]
void resize_bilinear_nhwc(const float* src, int64_t H, int64_t W, int64_t C, float* dst, int64_t oh,
                          int64_t ow);
// dst [oh, ow, C] += the same resize of src, one output row at a time through a per-thread row of
// scratch (no [oh, ow, C] intermediate): bit for bit resize_bilinear_nhwc into a buffer, then
// dst[i] = dst[i] + buffer[i]. src and dst do not overlap.
void resize_bilinear_nhwc_add(const float* src, int64_t H, int64_t W, int64_t C, float* dst, int64_t oh,
                              int64_t ow);
// The queries [0, Lq) in blocks of 64 handed to the threads as they ask (OpenMP's guided schedule):
// a query's cost varies with where its samples fall (cache misses), and a static half would leave
// one thread waiting for the other. Each query's output does not depend on the split.
void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t Lq);
// The same with value [Len_in, heads*dh] and out [Lq, heads*dh] in bfloat16 (ops.def:
// ms_deform_attn_bf16).
void ms_deform_attn_bf16(const uint16_t* value, const int64_t* shapes, const int64_t* level_start, int L,
                         int P, int heads, int dh, const float* ref, const float* offsets,
                         const float* logits, int64_t ld_qp, uint16_t* out, int64_t Lq);
// All heads: q/k/v/out hold heads*dh columns (head h at column h*dh).
void masked_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                      int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lq,
                      int64_t Lk, int heads, int dh, float scale);
// The same with bfloat16 k and v (row strides in elements) and the products in bf16 (ops.def:
// attention_heads_bf16); dh must be even (std::invalid_argument otherwise).
void masked_attention_bf16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                           int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lq, int64_t Lk,
                           int heads, int dh, float scale);

// Sine position encoding (DETR PositionEmbeddingSine, normalize=True, scale 2*pi, no mask):
// out [H*W, 2*F] row-major, F = num_feats (128): first F channels encode y, last F encode x;
// channel i uses v / T^(2*floor(i/2)/F), sin for even i, cos for odd i, with
// v_y = (row+1)/(H+1e-6)*2pi and v_x = (col+1)/(W+1e-6)*2pi. Computed once per size.
void sine_pos_embed(int64_t H, int64_t W, int num_feats, float temperature, float* out);

// PIL-compatible bilinear resize of an 8-bit interleaved image (ch = 1..4):
// src [H, W, ch] -> dst [oh, ow, ch], horizontal pass first, then vertical, as PIL does.
// scratch: resize_pil_bilinear_u8_scratch_bytes(H, ch, ow) bytes for the horizontal pass's rows
// (content undefined; a caller that resizes often passes memory it reuses), or null: allocated here.
void resize_pil_bilinear_u8(const uint8_t* src, int64_t H, int64_t W, int ch, uint8_t* dst,
                            int64_t oh, int64_t ow, uint8_t* scratch = nullptr);
size_t resize_pil_bilinear_u8_scratch_bytes(int64_t H, int ch, int64_t ow);

}  // namespace m2fp::kern
