// engine/inspect.cpp: the layer table of a loaded M2FP for a given input size: output shapes and
// multiply-adds per layer, grouped by stage (`m2fp inspect`, GFLOP/s figures of the benchmarks).
// It walks the layers M2FP::load built (engine/m2fp_weights.h), in the order engine/m2fp.cpp runs
// them; counts are multiply-adds of the convolutions and matrix products (plus the deformable
// sampling's 4-corner weighted gathers), not of the norms.
#include <string>

#include "engine/m2fp.h"
#include "engine/m2fp_weights.h"

namespace m2fp {
namespace {

std::string shp(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t v : d) s += (s.size() > 1 ? ", " : "") + std::to_string(v);
  return s + "]";
}

// Multiply-adds of `conv` on an H x W input; H and W become its output size.
double conv_macs(const dnn::Conv2d& conv, int64_t& H, int64_t& W) {
  const double macs = (double)conv.macs(H, W);
  H = conv.params().out_h(H);
  W = conv.params().out_w(W);
  return macs;
}

// "3x3/2": kernel size, and the stride when it is not 1.
std::string kernel_name(const dnn::Conv2d& conv) {
  const dnn::ConvParams& p = conv.params();
  return std::to_string(p.kh) + "x" + std::to_string(p.kw) + (p.stride > 1 ? "/" + std::to_string(p.stride) : "");
}

// Multiply-adds of a linear layer per input row.
double row_macs(const dnn::Linear& l) { return (double)l.in() * l.out(); }

}  // namespace

std::vector<LayerCost> M2FP::layer_costs(int64_t Hp, int64_t Wp) const {
  const Weights& w = *w_;
  const ModelConfig& c = w.cfg;
  std::vector<LayerCost> v;
  auto add = [&](const char* stage, std::string name, std::string shape, double macs) {
    v.push_back({stage, std::move(name), std::move(shape), macs});
  };
  // ---- backbone
  int64_t H = Hp, W = Wp;
  const dnn::Conv2d* stem[] = {&w.stem1, &w.stem2, &w.stem3};
  for (int i = 0; i < 3; ++i) {
    const double macs = conv_macs(*stem[i], H, W);
    add("backbone", "stem.conv" + std::to_string(i + 1) + " " + kernel_name(*stem[i]),
        shp({H, W, stem[i]->params().out_c}), macs);
  }
  H = (H - 1) / 2 + 1;  // dnn::max_pool_3x3_s2 (padding 1)
  W = (W - 1) / 2 + 1;
  add("backbone", "stem.maxpool 3x3/2", shp({H, W, w.stem3.params().out_c}), 0);
  int64_t lvl_h[4], lvl_w[4];
  for (int s = 0; s < 4; ++s) {
    double macs = 0;
    for (const Bottleneck& blk : w.stages[s]) {
      int64_t Hs = H, Ws = W;
      if (blk.has_shortcut) macs += conv_macs(blk.shortcut, Hs, Ws);
      macs += conv_macs(blk.conv1, H, W);
      macs += conv_macs(blk.conv2, H, W);
      macs += conv_macs(blk.conv3, H, W);
    }
    lvl_h[s] = H;
    lvl_w[s] = W;
    add("backbone", "res" + std::to_string(s + 2) + " (" + std::to_string(w.stages[s].size()) + " bottlenecks)",
        shp({H, W, w.stages[s].back().conv3.params().out_c}), macs);
  }
  // ---- pixel decoder: level l reads res5, res4, res3 (as the forward)
  const int64_t D = c.conv_dim;
  int64_t N = 0;
  for (int l = 0; l < w.enc_levels; ++l) {
    const int s = 3 - l;
    int64_t Hl = lvl_h[s], Wl = lvl_w[s];
    N += Hl * Wl;
    const double macs = conv_macs(w.input_proj[l], Hl, Wl);
    add("pixel_decoder", "input_proj." + std::to_string(l) + " 1x1 + GN (res" + std::to_string(s + 2) + ")",
        shp({Hl, Wl, D}), macs);
  }
  for (size_t i = 0; i < w.enc_layers.size(); ++i) {
    const EncoderLayer& e = w.enc_layers[i];
    const double per_tok = row_macs(e.value_proj) + row_macs(e.query_proj)  // sampling_offsets + attention_weights
                           + (double)w.enc_levels * w.enc_points * 4 * D    // bilinear gathers, 4 corners
                           + row_macs(e.output_proj) + row_macs(e.linear1) + row_macs(e.linear2);
    add("pixel_decoder", "encoder.layer" + std::to_string(i) + " (MSDeformAttn + FFN)", shp({N, D}), N * per_tok);
  }
  const int64_t H4 = lvl_h[0], W4 = lvl_w[0];  // stride 4 (res2): the FPN level and the masks
  auto at_stride4 = [&](const dnn::Conv2d& conv) {
    int64_t h = H4, wd = W4;
    return conv_macs(conv, h, wd);
  };
  const int64_t mask_dim = w.mask_features.params().out_c;
  add("pixel_decoder", "adapter_1 1x1 + GN (res2)", shp({H4, W4, D}), at_stride4(w.adapter_1));
  add("pixel_decoder", "layer_1 3x3 + GN + ReLU", shp({H4, W4, D}), at_stride4(w.layer_1));
  add("pixel_decoder", "mask_features 1x1", shp({H4, W4, mask_dim}), at_stride4(w.mask_features));
  // ---- transformer decoder
  const int64_t Q = c.num_queries, Dd = c.hidden_dim;
  const double heads_macs = Q * (row_macs(w.class_embed) + row_macs(w.mask_embed[0]) + row_macs(w.mask_embed[1]) +
                                 row_macs(w.mask_embed[2])) +
                            (double)Q * mask_dim * H4 * W4;
  add("transformer_decoder", "heads0 (class, mask_embed, masks)", shp({Q, H4, W4}), heads_macs);
  for (size_t i = 0; i < w.dec_layers.size(); ++i) {
    const DecoderLayer& d = w.dec_layers[i];
    const int s = 3 - (int)(i % kDecoderFeatureLevels);  // the pixel decoder's maps: res5, res4, res3 sizes
    const int64_t Lk = lvl_h[s] * lvl_w[s];
    const double cross = Q * (row_macs(d.cross_q) + row_macs(d.cross_out)) +
                         Lk * (row_macs(d.cross_k) + row_macs(d.cross_v)) + 2.0 * Q * Lk * Dd;
    const double self = Q * (row_macs(d.self_qk) + row_macs(d.self_v) + row_macs(d.self_out)) + 2.0 * Q * Q * Dd;
    const double ffn = Q * (row_macs(d.ffn1) + row_macs(d.ffn2));
    add("transformer_decoder",
        "layer" + std::to_string(i) + " (cross-attn to " + std::to_string(Lk) + " keys, self-attn, FFN) + heads",
        shp({Q, Dd}), cross + self + ffn + heads_macs);
  }
  return v;
}

}  // namespace m2fp
