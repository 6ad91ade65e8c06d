// engine/m2fp_weights.h: the layers of the M2FP network as M2FP::load builds them from the
// checkpoint (engine/m2fp.cpp), shared by the forward pass (engine/m2fp.cpp) and the cost table
// (engine/inspect.cpp). Each field names the PyTorch key it comes from.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "engine/dnn.h"
#include "engine/m2fp.h"
#include "engine/tensor.h"
#include "model_loader/config.h"

namespace m2fp {

struct Norm {                      // LayerNorm / GroupNorm affine parameters
  std::vector<float> gamma, beta;  // [C]  <key>.weight, <key>.bias
};

struct Bottleneck {                // backbone.res{s}.{b}
  dnn::Conv2d conv1;               // .conv1 1x1 in->w, BN folded (.conv1.norm.*)
  dnn::Conv2d conv2;               // .conv2 3x3 w->w, stride s on the first block of res3..res5
  dnn::Conv2d conv3;               // .conv3 1x1 w->out
  dnn::Conv2d shortcut;            // .shortcut 1x1 in->out (first block of a stage only)
  bool has_shortcut = false;
};

struct EncoderLayer {              // sem_seg_head.pixel_decoder.transformer.encoder.layers.{i}
  dnn::Linear value_proj;          // .self_attn.value_proj            [D, D]
  dnn::Linear query_proj;          // .self_attn.sampling_offsets [heads*L*P*2, D] ++ .attention_weights [heads*L*P, D]
  dnn::Linear output_proj;         // .self_attn.output_proj           [D, D]
  Norm norm1;                      // .norm1
  dnn::Linear linear1, linear2;    // .linear1 [F, D], .linear2 [D, F]  (F = 1024)
  Norm norm2;                      // .norm2
};

struct DecoderLayer {              // sem_seg_head.predictor.transformer_*_layers.{i}
  dnn::Linear cross_q, cross_k, cross_v;  // cross_attention_layers.{i}.multihead_attn.in_proj_{weight,bias} rows [0,D), [D,2D), [2D,3D)
  dnn::Linear cross_out;                  // .multihead_attn.out_proj
  Norm cross_norm;                        // .norm
  dnn::Linear self_qk, self_v;            // self_attention_layers.{i}.self_attn.in_proj_* rows [0,2D) (q and k share their input), [2D,3D)
  dnn::Linear self_out;                   // .self_attn.out_proj
  Norm self_norm;                         // .norm
  dnn::Linear ffn1, ffn2;                 // ffn_layers.{i}.linear1 [F, D], .linear2 [D, F]  (F = 2048)
  Norm ffn_norm;                          // .norm
};

struct M2FP::Weights {
  ModelConfig cfg;
  dnn::Precision precision = dnn::Precision::F32;
  dnn::WinogradPlan winograd;  // the layers that run Winograd (dnn::plan_winograd at load)

  // backbone.*
  dnn::Conv2d stem1, stem2, stem3;             // backbone.stem.conv{1,2,3} (BN folded)
  std::vector<Bottleneck> stages[4];           // backbone.res2 .. res5

  // sem_seg_head.pixel_decoder.*
  int enc_levels = 0, enc_points = 0;          // L levels (res5, res4, res3), P sampling points per level
  std::vector<dnn::Conv2d> input_proj;         // .input_proj.{l}.0 1x1 (bias), l = 0: res5, 1: res4, 2: res3
  std::vector<Norm> input_proj_gn;             // .input_proj.{l}.1 GroupNorm(32)
  std::vector<float> enc_level_embed;          // .transformer.level_embed [L, D]
  std::vector<EncoderLayer> enc_layers;        // .transformer.encoder.layers.{i}
  dnn::Conv2d adapter_1;                       // .adapter_1 1x1 (no bias) on res2
  Norm adapter_1_gn;                           // .adapter_1.norm
  dnn::Conv2d layer_1;                         // .layer_1 3x3 (no bias)
  Norm layer_1_gn;                             // .layer_1.norm (then ReLU)
  dnn::Conv2d mask_features;                   // .mask_features 1x1 (bias)

  // sem_seg_head.predictor.*
  std::vector<DecoderLayer> dec_layers;
  Norm decoder_norm;                           // .decoder_norm
  std::vector<float> query_feat, query_embed;  // .query_feat.weight, .query_embed.weight [Q, D]
  std::vector<float> dec_level_embed;          // .level_embed.weight [kDecoderFeatureLevels = 3, D]
  dnn::Linear class_embed;                     // .class_embed [K+1, D]
  dnn::Linear mask_embed[3];                   // .mask_embed.layers.{0,1,2} [D, D]

  // Sine position encodings per (H, W), computed once per size.
  mutable std::mutex pos_mu;
  mutable std::map<std::pair<int64_t, int64_t>, Tensor> pos_cache;
  const Tensor& pos_embed(int64_t H, int64_t W) const;
};

}  // namespace m2fp
