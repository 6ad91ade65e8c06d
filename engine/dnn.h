// engine/dnn.h: the engine's oneDNN layer: convolutions and linear layers.
//
// Each layer copies its weights once at load (BatchNorm already folded in by the caller), and for
// every input shape it meets creates the oneDNN primitive once, reorders the weights once into
// the layout that primitive prefers, and caches both. ReLU and the residual add are fused as
// post-ops. Layers are safe to call from several threads at once (the cache is locked;
// scratchpads are per call).
//
// Layouts: convolutions let oneDNN choose the activation layout (Layout::Opaque tensors, e.g.
// nChw8c blocks on AVX2, where its blocked 3x3 kernels run ~1.6x faster than on NHWC), so a chain
// of convolutions (the backbone) never converts; a convolution asked for `hwc_out` writes plain
// channels-last [H, W, C] for the engine's own kernels (GroupNorm, resize, attention), and
// to_hwc() converts any feature map.
//
// Precision::BF16 runs the convolution/matmul in bfloat16 (weights and activations rounded to
// bf16, fp32 accumulation, fp32 output) where the CPU has AVX512-BF16; F32 is exact fp32.
#pragma once

#include <cstdint>
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

struct ConvParams {
  int in_c = 0, out_c = 0, kh = 1, kw = 1, stride = 1, pad = 0, dilation = 1;
  int64_t out_h(int64_t H) const { return (H + 2 * pad - dilation * (kh - 1) - 1) / stride + 1; }
  int64_t out_w(int64_t W) const { return (W + 2 * pad - dilation * (kw - 1) - 1) / stride + 1; }
};

class Conv2d {
 public:
  // w [out_c, in_c, kh, kw] (PyTorch OIHW), bias [out_c] or null. Both are copied.
  void init(const ConvParams& p, const float* w, const float* bias, Precision prec);
  // x [H, W, in_c] (HWC or Opaque) -> [Ho, Wo, out_c], Opaque unless hwc_out. With `residual`
  // (same logical shape as the output, any layout) the result is conv(x) + residual; ReLU
  // (optional) is applied last.
  Tensor operator()(const Tensor& x, const Tensor* residual = nullptr, bool relu = false,
                    bool hwc_out = false) const;
  const ConvParams& params() const { return p_; }
  int64_t macs(int64_t H, int64_t W) const {
    return p_.out_h(H) * p_.out_w(W) * (int64_t)p_.out_c * p_.in_c * p_.kh * p_.kw;
  }

 private:
  struct Impl;
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
  int in() const { return in_; }
  int out() const { return out_; }

 private:
  struct Impl;
  int in_ = 0, out_ = 0;
  std::shared_ptr<Impl> impl_;
};

// C[M, N] = A[M, K] . B[N, K]^T, all row-major and dense (fp32; the primitive is cached per shape).
// Used where both operands are activations, e.g. mask logits = mask_embed . mask_features^T.
void matmul_abt(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K);
// C[M, N] = A[M, K] . B[K, N], all row-major and dense.
void matmul_ab(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K);

// 3x3 stride-2 pad-1 max-pool (the DeepLab stem's pool), -inf padding like PyTorch; the output
// keeps the input's layout.
Tensor max_pool_3x3_s2(const Tensor& x);

// A feature map [H, W, C] in plain channels-last layout (a no-op for HWC tensors).
Tensor to_hwc(const Tensor& x);

}  // namespace m2fp::dnn
