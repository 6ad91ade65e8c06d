// engine/inspect.cpp: the layer table of M2FP for a given input size: output shapes and
// multiply-adds per layer, grouped by stage (`m2fp inspect`, GFLOP/s figures of the benchmarks).
// It follows engine/m2fp.cpp layer by layer; counts are multiply-adds of the convolutions and
// matrix products (plus the deformable sampling's 4-corner weighted gathers), not of the norms.
#include <string>

#include "engine/m2fp.h"

namespace m2fp {
namespace {
std::string shp(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t v : d) s += (s.size() > 1 ? ", " : "") + std::to_string(v);
  return s + "]";
}
int64_t conv_out(int64_t n, int k, int s, int p) { return (n + 2 * p - k) / s + 1; }
}  // namespace

std::vector<LayerCost> layer_costs(const ModelConfig& c, int64_t Hp, int64_t Wp) {
  std::vector<LayerCost> v;
  auto add = [&](const char* stage, std::string name, std::string shape, double macs) {
    v.push_back({stage, std::move(name), std::move(shape), macs});
  };
  // ---- backbone
  const int stem = c.stem_out_channels;
  int64_t H = conv_out(Hp, 3, 2, 1), W = conv_out(Wp, 3, 2, 1);
  add("backbone", "stem.conv1 3x3/2", shp({H, W, stem / 2}), (double)H * W * (stem / 2) * 3 * 9);
  add("backbone", "stem.conv2 3x3", shp({H, W, stem / 2}), (double)H * W * (stem / 2) * (stem / 2) * 9);
  add("backbone", "stem.conv3 3x3", shp({H, W, stem}), (double)H * W * stem * (stem / 2) * 9);
  H = conv_out(H, 3, 2, 1);
  W = conv_out(W, 3, 2, 1);
  add("backbone", "stem.maxpool 3x3/2", shp({H, W, stem}), 0);
  const int nb[3][4] = {{3, 4, 6, 3}, {3, 4, 23, 3}, {3, 8, 36, 3}};
  const int* blocks = nb[c.depth == 50 ? 0 : c.depth == 152 ? 2 : 1];
  int64_t in_c = stem, out_c = c.res2_out_channels, width = c.num_groups * c.width_per_group;
  int64_t lvl_h[4], lvl_w[4];
  for (int s = 0; s < 4; ++s) {
    double macs = 0;
    for (int i = 0; i < blocks[s]; ++i) {
      const int stride = (i == 0 && s > 0) ? 2 : 1;
      const int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
      macs += (double)H * W * width * in_c;             // conv1 1x1
      macs += (double)Ho * Wo * width * width * 9;      // conv2 3x3
      macs += (double)Ho * Wo * out_c * width;          // conv3 1x1
      if (in_c != out_c) macs += (double)Ho * Wo * out_c * in_c;  // shortcut
      H = Ho;
      W = Wo;
      in_c = out_c;
    }
    lvl_h[s] = H;
    lvl_w[s] = W;
    add("backbone", "res" + std::to_string(s + 2) + " (" + std::to_string(blocks[s]) + " bottlenecks)",
        shp({H, W, out_c}), macs);
    out_c *= 2;
    width *= 2;
  }
  // ---- pixel decoder
  const int64_t D = c.conv_dim, F = c.enc_dim_feedforward, heads = c.enc_nheads, L = 3, P = 4;
  int64_t N = 0;
  for (int l = 0; l < 3; ++l) {
    const int s = 3 - l;
    const int64_t n = lvl_h[s] * lvl_w[s];
    N += n;
    add("pixel_decoder", "input_proj." + std::to_string(l) + " 1x1 + GN (res" + std::to_string(s + 2) + ")",
        shp({lvl_h[s], lvl_w[s], D}), (double)n * D * (c.res2_out_channels << s));
  }
  const double per_tok = (double)D * D              // value_proj
                         + (double)D * heads * L * P * 3  // sampling_offsets + attention_weights
                         + (double)heads * L * P * 4 * (D / heads)  // bilinear gathers
                         + (double)D * D            // output_proj
                         + 2.0 * D * F;             // FFN
  for (int i = 0; i < c.enc_layers; ++i)
    add("pixel_decoder", "encoder.layer" + std::to_string(i) + " (MSDeformAttn + FFN)", shp({N, D}), N * per_tok);
  const int64_t H4 = lvl_h[0], W4 = lvl_w[0];
  add("pixel_decoder", "adapter_1 1x1 + GN (res2)", shp({H4, W4, D}), (double)H4 * W4 * D * c.res2_out_channels);
  add("pixel_decoder", "layer_1 3x3 + GN + ReLU", shp({H4, W4, D}), (double)H4 * W4 * D * D * 9);
  add("pixel_decoder", "mask_features 1x1", shp({H4, W4, (int64_t)c.mask_dim}), (double)H4 * W4 * D * c.mask_dim);
  // ---- transformer decoder
  const int64_t Q = c.num_queries, Dd = c.hidden_dim, Fd = c.dec_dim_feedforward, K1 = c.num_classes + 1;
  const double heads_macs = (double)Q * Dd * K1 + 3.0 * Q * Dd * Dd + (double)Q * c.mask_dim * H4 * W4;
  add("transformer_decoder", "heads0 (class, mask_embed, masks)", shp({Q, H4, W4}), heads_macs);
  for (int i = 0; i < c.dec_layers; ++i) {
    const int s = 3 - (i % 3);
    const int64_t Lk = lvl_h[s] * lvl_w[s];
    const double cross = (double)Q * Dd * Dd * 2 + 2.0 * Lk * Dd * Dd + 2.0 * Q * Lk * Dd;
    const double self = 4.0 * Q * Dd * Dd + 2.0 * Q * Q * Dd;
    const double ffn = 2.0 * Q * Dd * Fd;
    add("transformer_decoder",
        "layer" + std::to_string(i) + " (cross-attn to " + std::to_string(Lk) + " keys, self-attn, FFN) + heads",
        shp({Q, Dd}), cross + self + ffn + heads_macs);
  }
  return v;
}

}  // namespace m2fp
