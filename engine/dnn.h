// engine/dnn.h: the engine's oneDNN layer: convolutions and linear layers.
//
// Each layer copies its weights once at load (BatchNorm already folded in by the caller), and for
// every input shape it meets creates the oneDNN primitive once, reorders the weights once into
// the layout that primitive prefers, and caches both. ReLU and the residual add are fused as
// post-ops. Layers are safe to call from several threads at once (the cache is locked;
// scratchpads are per call, from the buffer pool).
//
// Layouts: convolutions let oneDNN choose the activation layout (Layout::Opaque tensors, e.g.
// nChw8c blocks on AVX2, where its blocked 3x3 kernels run ~1.6x faster than on NHWC), so a chain
// of convolutions (the backbone) never converts; a convolution asked for `hwc_out` writes plain
// channels-last [H, W, C] for the engine's own kernels (GroupNorm, resize, attention), and
// to_hwc() converts any feature map.
//
// Precision::BF16 runs the convolution/matmul in bfloat16 (weights and activations rounded to
// bf16, fp32 accumulation) where the CPU has AVX512-BF16; F32 is exact fp32. A BF16 convolution
// writes bf16 (Layout::Opaque, oneDNN's layout) unless asked for `hwc_out`, so a chain of them (the
// backbone, its residual sums and ReLUs fused as post-ops) passes bf16 from layer to layer with no
// conversion; `hwc_out` (the engine's own kernels read the result) gives fp32 channels-last, and
// to_hwc() converts a bf16 map to fp32. A BF16 Linear takes and gives fp32 (its input rounded to
// bf16), except inside feed_forward(), whose hidden layer stays bf16.
//
// Winograd: an fp32 stride-1 undilated 3x3 convolution first asks oneDNN
// for its Winograd F(4x4, 3x3) kernel (jit_wino_4x3, AVX-512 only; ~2.5x fewer multiplies, relative
// L2 error ~1e-6 against fp64 where direct gives ~6e-7) and falls back to the direct algorithm when
// oneDNN refuses the layer (no AVX-512, DNNL_MAX_CPU_ISA below it, unsupported shape) or when the
// layer would exceed Winograd's memory caps (transformed weights <= 16 MB, scratchpad <= 64 MB: dnn.cpp
// says why); a layer whose whole-map scratchpad is over the cap, or whose input converted for the
// whole-map kernel would pass 16 MB, runs in strips of 16 rows (the pixel decoder's layer_1, the
// stem's conv2 and conv3). Its weights are 4x a direct layer's, so by default (WinogradMode::Planned) only
// the layers plan_winograd() chose at load run it: the most gain per MB within a budget that keeps
// the benchmark's peak RSS under issue 14's 800 MB (README, "Winograd"). Its weights are reserved
// off the buffer pool's cache (pool::reserve) and a layer with a WeightSource drops its plain copy;
// they are computed at load by engine/dnn_wino.h (oneDNN's bytes, in a tenth of its reorder's time).
// M2FP_WINOGRAD=1 (set_winograd(true)) runs every layer within the caps, M2FP_WINOGRAD=all also
// lifts the caps and bf16's 128-channel rule, M2FP_WINOGRAD=0 none; M2FP_WINOGRAD_MB sets the budget.
// A BF16 layer may run it too, in fp32 (oneDNN's kernel has no bf16): its input converted to fp32 in
// the kernel's layout, its output fp32 (Layout::Opaque, or channels-last with hwc_out), which a next
// BF16 layer rounds to bf16 as it reads it; its Winograd weights come from the fp32 weights (a layer
// without a WeightSource whose bf16 copy replaced its plain one stays direct). More accurate than bf16
// direct (fp32 weights and arithmetic); plan_winograd weighs a BF16 layer only where its output map
// at the reference size has 16384 pixels and more (dnn.cpp: below that, reading 8x the bf16 weights
// costs what the arithmetic saves) and it has 128 channels in and out (below that bf16 direct is
// faster): in the network, the pixel decoder's layer_1.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace m2fp::dnn {

enum class Precision { F32, BF16 };
const char* precision_name(Precision p);
bool parse_precision(const std::string& s, Precision* out);
// Whether oneDNN can run bfloat16 convolutions on this CPU (it cannot below AVX-512).
bool bf16_available();
// oneDNN's version ("2.6.0") and the instruction set it runs on this CPU ("avx512_core", ...), for
// reports.
std::string onednn_version();
const char* onednn_isa();

// The convolution peak of this CPU as oneDNN reaches it, for benchmarks' floors: the best GFLOP/s
// (2 x multiply-adds / second) of `reps` runs of each of two direct convolutions typical of the
// backbone (3x3 256->256 and 1x1 1024->256, both at 80x108, blocked layouts, prepared before the
// clock starts), in `prec` (bf16: bf16 inputs and weights, fp32 output). `shape` gets the winner.
// Throws where the CPU cannot run `prec`.
double probe_conv_gflops(Precision prec, int reps, std::string* shape = nullptr);

// Winograd for the 3x3 convolutions that oneDNN accepts (run in fp32, bf16 layers too). Modes (M2FP_WINOGRAD read at the first
// use): Planned, the default (M2FP_WINOGRAD unset or "auto"): only the layers plan_winograd() chose;
// On ("1"): every layer within the caps and bf16's 128-channel rule; All ("all"): every layer oneDNN
// accepts; Off ("0"). set_winograd(true/false) sets On/Off; set_winograd_mode any. Takes effect for
// primitives created afterwards (a layer caches its per shape).
enum class WinogradMode { Off, Planned, On, All };
void set_winograd(bool on);
void set_winograd_mode(WinogradMode m);
WinogradMode winograd_mode();
const char* winograd_mode_name(WinogradMode m);
// Whether any layer may run Winograd (the mode is not Off).
bool winograd_enabled();
// Logs every convolution primitive as it is created (layer name, shape, algorithm and oneDNN's
// implementation) to stderr: `m2fp parse --verbose`.
void set_verbose(bool on);
// How many convolution and linear-layer primitives the layers have created in this process (each
// layer caches one per input shape): tests check that M2FP::prepare leaves none to the parse.
int64_t layer_primitives_created();
// How many times a layer with only Winograd weights wrote its plain weights again from its
// Conv2d::WeightSource, in this process (tests).
int64_t weights_rederived();

// While a ZeroRun lives on a thread, the convolutions, linear layers and matmuls called on that
// thread write zeros into their destinations (and touch their scratchpads) instead of running
// oneDNN's primitives; everything else (layout conversions, pooling) runs as usual.
// M2FP::map_buffers runs one forward() so, to map and fault in the buffer pool's blocks a forward at
// that size asks for without its multiply-adds. Other threads are not affected. Nests.
class ZeroRun {
 public:
  ZeroRun();
  ~ZeroRun();
  ZeroRun(const ZeroRun&) = delete;
  ZeroRun& operator=(const ZeroRun&) = delete;
};
bool zero_run_active();  // on this thread

class Conv2d;

// One layer plan_winograd() weighed: its sizes at its Winograd reference size (set_winograd_reference)
// and whether it runs Winograd in the Planned mode.
struct WinogradLayer {
  std::string name;
  int64_t H = 0, W = 0;           // the reference input size
  int64_t out_pixels = 0;         // Ho x Wo there: the ranking (gain per MB, see plan_winograd)
  size_t winograd_bytes = 0;      // its Winograd weights
  size_t direct_bytes = 0;        // the weights they replace
  size_t scratchpad_bytes = 0;    // its Winograd scratchpad (the largest of the chosen is kept)
  size_t buffer_bytes = 0;        // its input converted for the Winograd kernel (per-thread buffer)
  int64_t strip_rows = 0;         // runs in strips of this many rows (0: the whole map)
  bool chosen = false;
  std::string why;                // why not chosen ("" when chosen)
};
struct WinogradPlan {
  std::vector<WinogradLayer> layers;  // every layer given, in the order given
  size_t budget_bytes = 0;            // what the chosen may add to the resident set
  size_t used_bytes = 0;              // what they add (estimate: weights over the direct ones + the
                                      // largest scratchpad + the largest converted input/strip buffers)
  int chosen = 0;
  // One line: "12 of 26 layers (layer_1 in strips, 11 x res4 ...), +183 MB of 190 MB" or why none.
  std::string summary() const;
};
// The Winograd budget: M2FP_WINOGRAD_MB when set (MB), else kDefaultWinogradBudgetMB (dnn.cpp: what a
// 640x1056 parse may add within issue 14's 800 MB peak RSS).
size_t winograd_budget_bytes();
// Chooses the layers that run Winograd in the Planned mode: among `convs` (each with its Winograd
// reference size set), the 3x3 stride-1 layers that oneDNN runs as Winograd at that size within the
// caps (bf16 layers: with 128 channels in and out and 16384 output pixels and more there, and weighed
// against their bf16 weights), in order of gain per MB, while what they add stays within
// `budget_bytes`. A 3x3 layer's multiply-adds per weight are its output pixels, and Winograd's
// saving is a share of its multiply-adds while its cost is a multiple of its weights, so the gain
// per MB is ranked by the output area (ties: the order given). Marks the chosen layers (and unmarks
// the others); call before their primitives are created. On a CPU without oneDNN Winograd (below
// AVX-512) none is chosen.
WinogradPlan plan_winograd(const std::vector<const Conv2d*>& convs, size_t budget_bytes);

struct ConvParams {
  int in_c = 0, out_c = 0, kh = 1, kw = 1, stride = 1, pad = 0, dilation = 1;
  int64_t out_h(int64_t H) const { return (H + 2 * pad - dilation * (kh - 1) - 1) / stride + 1; }
  int64_t out_w(int64_t W) const { return (W + 2 * pad - dilation * (kw - 1) - 1) / stride + 1; }
};

class Conv2d {
 public:
  // Writes the layer's plain weights ([out_c, in_c, kh, kw] fp32, as given to init) into `dst`
  // again; throws (a LoadError, say) when it cannot. M2FP::load gives one that reads the model file.
  using WeightSource = std::function<void(float* dst)>;
  // w [out_c, in_c, kh, kw] (PyTorch OIHW), bias [out_c] or null. Both are copied; w null: `source`
  // writes the plain weights (no copy of them made first).
  // `name` (the checkpoint key) only labels the layer in --verbose logs. With a `source`, a layer
  // that runs Winograd drops its plain copy once it has its Winograd weights (4x the size, which
  // cannot be converted back) and asks the source again if another input size runs direct;
  // without one it keeps the plain copy.
  void init(const ConvParams& p, const float* w, const float* bias, Precision prec, const std::string& name = "",
            WeightSource source = {});
  // x [H, W, in_c] (HWC or Opaque) -> [Ho, Wo, out_c], Opaque unless hwc_out. With `residual`
  // (same logical shape as the output, any layout) the result is conv(x) + residual; ReLU
  // (optional) is applied last.
  Tensor operator()(const Tensor& x, const Tensor* residual = nullptr, bool relu = false,
                    bool hwc_out = false) const;
  const ConvParams& params() const { return p_; }
  // relu?(conv(x) + residual) like operator(), written over `residual`'s memory where the layer adds it
  // by oneDNN's sum post-op (fp32 layers), nothing else holds it and it is in the output's layout (the
  // backbone's shortcuts: no copy of the map); otherwise into a new tensor (a bf16 direct layer writes
  // its product without post-ops and adds the residual and ReLU after it, kern::add_bf16: engine/dnn.cpp).
  Tensor accumulate(const Tensor& x, Tensor&& residual, bool relu) const;
  // Creates and caches the primitive for an H x W input with these fusions (and reorders the
  // weights into its layout) without running it: M2FP::prepare, at model load.
  void prepare(int64_t H, int64_t W, bool residual = false, bool relu = false, bool hwc_out = false) const;
  // Holds the layer to one Winograd weight layout, the one oneDNN picks for an H x W input: a size
  // whose Winograd kernel wants another layout (oneDNN's blocking depends on the input size: res4's
  // 3x3 layers have 3 layouts over the padded sizes of 640-pixel photos) runs direct instead of
  // adding another copy of 4x the weights. M2FP::load sets it to each layer's size at the
  // 640x1056 benchmark input. Unset: every size may add its layout. Call before the first use.
  void set_winograd_reference(int64_t H, int64_t W) const;
  // Whether this layer runs Winograd in the Planned mode (plan_winograd sets it).
  void set_winograd_planned(bool on) const;
  // The layer weighed for plan_winograd at its reference size (chosen left false).
  WinogradLayer winograd_candidate() const;
  // The algorithm of the primitive for an H x W input ("winograd" or "direct"; "" before the
  // layer has met that size).
  std::string algorithm_for(int64_t H, int64_t W) const;
  // The bytes of weights the layer holds (every layout it keeps), and how many times it asked its
  // WeightSource for the plain weights again (tests).
  size_t weight_bytes() const;
  int weights_rederived() const;
  int64_t macs(int64_t H, int64_t W) const {
    return p_.out_h(H) * p_.out_w(W) * (int64_t)p_.out_c * p_.in_c * p_.kh * p_.kw;
  }

 private:
  struct Impl;
  // The convolution into oneDNN's chosen layout: fp32 when `f32_out` or the layer is F32, else bf16.
  // into_residual: the output may take *residual's memory when nothing else holds it.
  Tensor run(const Tensor& x, const Tensor* residual, bool relu, bool f32_out, bool into_residual = false) const;
  ConvParams p_;
  std::shared_ptr<Impl> impl_;
};

class Linear {
 public:
  // w [out, in] (PyTorch), bias [out] or null. Both are copied.
  void init(int in, int out, const float* w, const float* bias, Precision prec);
  // x [M, in] with row stride ldx -> y [M, out] with row stride ldy; optional fused ReLU.
  void forward(const float* x, int64_t ldx, int64_t M, float* y, int64_t ldy, bool relu = false) const;
  Tensor operator()(const Tensor& x, bool relu = false) const;  // x [M, in] -> [M, out]
  // As forward, into bfloat16 y [M, out] (row stride ldy, in values): BF16 layers only (a
  // std::logic_error otherwise), for readers of bf16 (kern::ms_deform_attn_bf16).
  void forward_bf16(const float* x, int64_t ldx, int64_t M, uint16_t* y, int64_t ldy) const;
  // As forward, from bfloat16 x [M, in] (row stride ldx, in values; read as it is, no rounding):
  // BF16 layers only. With ldx = in it uses forward's primitive (prepare(M, ldx, ldy)).
  void forward_from_bf16(const uint16_t* x, int64_t ldx, int64_t M, float* y, int64_t ldy) const;
  // From bfloat16 x into bfloat16 y (forward_bf16's primitive with ldx = in): BF16 layers only.
  void forward_bf16_from_bf16(const uint16_t* x, int64_t ldx, int64_t M, uint16_t* y, int64_t ldy) const;
  // Creates and caches the primitive forward(x, ldx, M, y, ldy, relu) will use (forward_bf16's
  // with y_bf16), without running it.
  void prepare(int64_t M, int64_t ldx, int64_t ldy, bool relu = false, bool y_bf16 = false) const;
  int in() const { return in_; }
  int out() const { return out_; }
  Precision precision() const;

 private:
  friend void feed_forward(const Linear&, const Linear&, const float*, int64_t, int64_t, float*, int64_t, int64_t);
  friend void feed_forward_from_bf16(const Linear&, const Linear&, const uint16_t*, int64_t, int64_t, float*, int64_t,
                                     int64_t);
  // The two feed_forward()s: x fp32, or bf16 when x_bf16 (row stride ldx in its elements).
  static void feed_forward_rows(const Linear& first, const Linear& second, const void* x, bool x_bf16, int64_t ldx,
                                int64_t M, float* y, int64_t ldy, int64_t block_rows);
  friend void prepare_feed_forward(const Linear&, const Linear&, int64_t, int64_t, int64_t, int64_t);
  struct Impl;
  // x (fp32 with row stride ldx, or bf16 when x_bf16) -> y (fp32 with row stride ldy, or dense
  // bf16 when y_bf16); bf16 sides only for BF16 layers.
  void run(const void* x, bool x_bf16, int64_t ldx, int64_t M, void* y, bool y_bf16, int64_t ldy, bool relu) const;
  int in_ = 0, out_ = 0;
  std::shared_ptr<Impl> impl_;
};

// The feed-forward block y = second(relu(first(x))) over x [M, first.in()] (row stride ldx) into
// y [M, second.out()] (row stride ldy), in blocks of `block_rows` rows so that the hidden layer
// [block_rows, first.out()] stays small. When both layers are BF16 the hidden layer is written and
// read in bf16 (first's output rounded once, no conversion between the two products); otherwise
// exactly first.forward then second.forward per block.
void feed_forward(const Linear& first, const Linear& second, const float* x, int64_t ldx, int64_t M, float* y,
                  int64_t ldy, int64_t block_rows);
// The same from bfloat16 x (read as it is; first must be BF16, a std::logic_error otherwise):
// with ldx = first.in() the primitives of feed_forward's BF16 path.
void feed_forward_from_bf16(const Linear& first, const Linear& second, const uint16_t* x, int64_t ldx, int64_t M,
                            float* y, int64_t ldy, int64_t block_rows);
// Creates and caches the primitives feed_forward(first, second, x, ldx, M, y, ldy, block_rows) uses.
void prepare_feed_forward(const Linear& first, const Linear& second, int64_t M, int64_t ldx, int64_t ldy,
                          int64_t block_rows);

// C[M, N] = A[M, K] . B[N, K]^T, all row-major and dense (fp32; the primitive is cached per shape).
// Used where both operands are activations, e.g. mask logits = mask_embed . mask_features^T.
void matmul_abt(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K);
// C[M, N] = A[M, K] . B[K, N], all row-major and dense.
void matmul_ab(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K);
// Creates and caches the primitive matmul_abt(M, N, K) will use, without running it (M2FP::prepare).
void prepare_matmul_abt(int64_t M, int64_t N, int64_t K);
// The same product of bfloat16 operands (read as they are), fp32 accumulation and result: where
// bf16_available() (a std::logic_error otherwise). The bf16 decoder's mask logits.
void matmul_abt_bf16(const uint16_t* a, const uint16_t* b, float* c, int64_t M, int64_t N, int64_t K);
void prepare_matmul_abt_bf16(int64_t M, int64_t N, int64_t K);

// 3x3 stride-2 pad-1 max-pool (the DeepLab stem's pool), -inf padding like PyTorch; the output
// keeps the input's layout and data type (fp32 or bf16).
Tensor max_pool_3x3_s2(const Tensor& x);

// A feature map [H, W, C] in plain channels-last fp32 layout (a no-op for HWC tensors).
Tensor to_hwc(const Tensor& x);
// An empty feature map [H, W, C] of bfloat16 values, channels-last (Layout::Opaque, oneDNN's nhwc
// bf16): what a BF16 convolution given an fp32 channels-last map reads after rounding it, so one
// given this map (filled through data() as uint16_t) reads it as it is. to_hwc() gives its fp32.
Tensor bf16_hwc_map(int64_t H, int64_t W, int64_t C);

}  // namespace m2fp::dnn
