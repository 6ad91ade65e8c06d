// engine/m2fp.cpp: the M2FP forward pass, top to bottom.
//
//   image [Hp, Wp, 3]
//     -> backbone (DeepLab ResNet-101)           res2 [Hp/4, Wp/4, 256] ... res5 [Hp/32, Wp/32, 2048]
//     -> pixel decoder (6 deformable layers)     multi-scale maps at strides 32, 16, 8 + mask_features (stride 4)
//     -> transformer decoder (9 masked layers)   100 queries -> class logits [100, K+1], mask logits [100, Hp/4, Wp/4]
//
// Dimension key: Hp, Wp padded input size; H_l, W_l size of feature level l (L = 3 levels, P = 4
// sampling points each); N = sum H_l*W_l encoder tokens; Q = 100 queries; D = 256 model width;
// heads x dh = 8 x 32; K classes.
// Feature maps are channels-last [H, W, C], so a map is also its token matrix [H*W, C].
// Every intermediate is handed to the TensorSink under its name from docs/INTERMEDIATES.md.
// Upstream: modelscope/models/cv/image_human_parsing/{backbone/deeplab_resnet.py, m2fp/m2fp_encoder.py,
// m2fp/m2fp_decoder.py}, maskdino/{ms_deform_attn.py, maskdino_encoder.py, position_encoding.py}.
#include "engine/m2fp.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>

#include "engine/buffer_pool.h"
#include "engine/m2fp_weights.h"
#include "kernels/kernels.h"
#include "model_loader/safetensors.h"

namespace m2fp {

using dnn::Conv2d;
using dnn::Linear;

// =================================================================================================
// Loading: every weight taken by name from the checkpoint's tensor table (model_loader/config.h,
// expected_tensors), whose shapes give the layer sizes; BatchNorm folded into the convolutions.
// =================================================================================================
namespace {

constexpr float kNormEps = 1e-5f;

std::vector<float> copy_of(const Weight& w) { return std::vector<float>(w.data, w.data + w.numel()); }

Norm bind_norm(NetworkBinder& b, const std::string& key) {
  return {copy_of(b.f32(key + ".weight")), copy_of(b.f32(key + ".bias"))};
}

using FilePtr = std::shared_ptr<const SafetensorsFile>;

// A tensor of the mapped model file made resident in one call before it is read (pool::populate),
// rather than in a fault per 64 KB (the kernel's fault-around): ~26k faults of the load's ~60k for
// the 548x342 one-photo parse (perf record -e page-faults, 2026-12-06).
void populate(const void* p, size_t bytes) { pool::populate(p, bytes, /*for_write=*/false); }
const Weight& populated(const Weight& w) {
  populate(w.data, (size_t)w.numel() * sizeof(float));
  return w;
}

// A layer's plain weights written again from the model file (dnn::Conv2d::WeightSource): a layer
// that runs Winograd keeps only its Winograd weights and asks for these when another input size runs
// direct. The file stays mapped for it (its pages were released after the load and are read back);
// a file changed since the load gives a LoadError (SafetensorsFile::check_unchanged), never other
// weights.
dnn::Conv2d::WeightSource weight_source(FilePtr file, std::vector<std::string> keys,
                                        std::function<void(float*)> write) {
  return [file = std::move(file), keys = std::move(keys), write = std::move(write)](float* dst) {
    write(dst);
    file->check_unchanged();
    for (const std::string& k : keys)
      if (const TensorView* t = file->find(k)) file->release(*t);
  };
}

// Conv2d (no bias) + BatchNorm2d at `key` (".norm" child), folded: w' = w * g / sqrt(v + eps),
// b' = beta - mean * g / sqrt(v + eps).
Conv2d bind_conv_bn(NetworkBinder& b, const FilePtr& file, const std::string& key, int stride, int pad,
                    int dilation, dnn::Precision prec) {
  const Weight w = b.f32(key + ".weight");  // [out, in, k, k]
  const float* g = b.f32(key + ".norm.weight").data;
  const float* beta = b.f32(key + ".norm.bias").data;
  const float* mean = b.f32(key + ".norm.running_mean").data;
  const float* var = b.f32(key + ".norm.running_var").data;
  b.unused(key + ".norm.num_batches_tracked");  // a training counter
  const int out_c = w.dim(0), in_c = w.dim(1), k = w.dim(2);
  const int64_t per_out = (int64_t)in_c * k * k;
  const float* wd = w.data;
  // The folded weights (pointers into the mapped file), written by the layer's source straight into
  // its plain copy at the load and again if it asks; over the threads (a layer's 2-9 MB of fresh
  // pages and the file's pages are faulted in on both).
  auto fold_weights = [=](float* wf) {
    populate(wd, (size_t)out_c * per_out * sizeof(float));
#pragma omp parallel for schedule(static) if (out_c * per_out >= (1 << 18))
    for (int o = 0; o < out_c; ++o) {
      const double s = (double)g[o] / std::sqrt((double)var[o] + kNormEps);
      for (int64_t i = 0; i < per_out; ++i) wf[o * per_out + i] = (float)(wd[o * per_out + i] * s);
    }
  };
  std::vector<float> bf(out_c);
  for (int o = 0; o < out_c; ++o) {
    const double s = (double)g[o] / std::sqrt((double)var[o] + kNormEps);
    bf[o] = (float)(beta[o] - mean[o] * s);
  }
  Conv2d c;
  c.init({in_c, out_c, k, k, stride, pad, dilation}, nullptr, bf.data(), prec, key,
         weight_source(file, {key + ".weight", key + ".norm.weight", key + ".norm.running_var"}, fold_weights));
  return c;
}

Conv2d bind_conv(NetworkBinder& b, const FilePtr& file, const std::string& key, int pad, bool bias,
                 dnn::Precision prec) {
  const Weight w = populated(b.f32(key + ".weight"));  // [out, in, k, k]
  const float* bp = bias ? b.f32(key + ".bias").data : nullptr;
  const float* wd = w.data;
  const size_t n = (size_t)w.numel();
  Conv2d c;
  c.init({w.dim(1), w.dim(0), w.dim(2), w.dim(3), 1, pad, 1}, w.data, bp, prec, key,
         weight_source(file, {key + ".weight"}, [wd, n](float* dst) { std::memcpy(dst, wd, n * sizeof(float)); }));
  return c;
}

Linear bind_linear(NetworkBinder& b, const std::string& key, dnn::Precision prec) {
  const Weight w = populated(b.f32(key + ".weight"));  // [out, in]
  Linear l;
  l.init(w.dim(1), w.dim(0), w.data, b.f32(key + ".bias").data, prec);
  return l;
}

// Rows [r0, r1) of a packed [rows, in] weight and its bias, as one Linear.
Linear slice_linear(const Weight& w, const Weight& bias, int r0, int r1, dnn::Precision prec) {
  const int in = w.dim(1);
  populate(w.data + (size_t)r0 * in, (size_t)(r1 - r0) * in * sizeof(float));
  Linear l;
  l.init(in, r1 - r0, w.data + (size_t)r0 * in, bias.data + r0, prec);
  return l;
}

}  // namespace

M2FP::M2FP() = default;
M2FP::~M2FP() = default;
const ModelConfig& M2FP::config() const { return w_->cfg; }
dnn::Precision M2FP::precision() const { return w_->precision; }
const dnn::WinogradPlan& M2FP::winograd_plan() const { return w_->winograd; }
int M2FP::num_classes() const { return w_->cfg.num_classes; }

std::unique_ptr<M2FP> M2FP::load(const std::string& path, const LoadOptions& opt) {
  // Tensors of 256 KiB and more come from engine/buffer_pool.h (mapped, reused across parses). Other
  // heap blocks of 1 MB and more (weight copies, oneDNN's scratchpads, temporary vectors) are mapped
  // by glibc and go back to the system when freed: its adaptive threshold would otherwise keep blocks
  // of up to 32 MB on the heap and the resident set would only grow. Process-wide, set once by
  // whoever loads a model.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  if (opt.precision == dnn::Precision::BF16 && !dnn::bf16_available())
    throw LoadError("bf16 precision is not available on this CPU: oneDNN 2.6 has bfloat16 convolutions and "
                    "matrix products only for AVX-512 CPUs (AVX512-BF16 for full speed); use fp32");
  // Shared with the layers' weight sources, which keep it mapped (weight_source).
  const FilePtr file = SafetensorsFile::open(path);
  std::unique_ptr<M2FP> model(new M2FP());
  model->w_ = std::make_unique<Weights>();
  Weights& W = *model->w_;
  W.cfg = read_model_config(*file);
  W.precision = opt.precision;
  const ModelConfig& c = W.cfg;
  const auto prec = opt.precision;
  const auto fp32 = dnn::Precision::F32;  // small layers whose precision matters stay fp32
  if (c.num_groups != 1) throw LoadError(path + ": grouped bottlenecks (num_groups > 1) are not supported");
  // The pixel decoder below: deformable attention over res5, res4, res3, one FPN level from res2.
  std::vector<std::string> levels = c.transformer_in_features;
  std::sort(levels.begin(), levels.end());
  const bool fpn_res2 = c.common_stride == 4 && std::count(c.enc_in_features.begin(), c.enc_in_features.end(), "res2");
  if (levels != std::vector<std::string>{"res3", "res4", "res5"} || !fpn_res2)
    throw LoadError(path + ": the pixel decoder is built for transformer_in_features res3, res4, res5 and one "
                           "FPN level from res2 (in_features with res2, common_stride 4)");
  if (c.pre_norm) throw LoadError(path + ": pre_norm decoders are not supported");
  if (c.enforce_input_project || c.conv_dim != c.hidden_dim)
    throw LoadError(path + ": decoder input projections (enforce_input_project) are not supported");
  NetworkBinder b(*file, c);
  // Weights are copied as they are bound; the mapped pages of what was copied are released stage
  // by stage, so the file and the copies are never both resident in full.
  size_t released = 0;
  auto release_bound = [&] {
    const std::vector<std::string> names = b.bound();
    for (; released < names.size(); ++released)
      if (const TensorView* t = file->find(names[released])) file->release(*t);
  };

  // ---- backbone -----------------------------------------------------------------------------
  W.stem1 = bind_conv_bn(b, file, "backbone.stem.conv1", 2, 1, 1, prec);
  W.stem2 = bind_conv_bn(b, file, "backbone.stem.conv2", 1, 1, 1, prec);
  W.stem3 = bind_conv_bn(b, file, "backbone.stem.conv3", 1, 1, 1, prec);
  const std::vector<int> nblocks = c.stage_blocks();  // res2..res5: the transformer levels reach res5
  for (int s = 0; s < 4; ++s) {
    const int dilation = s == 2 ? c.res4_dilation : s == 3 ? c.res5_dilation : 1;
    for (int i = 0; i < nblocks[s]; ++i) {
      const std::string key = "backbone.res" + std::to_string(s + 2) + "." + std::to_string(i);
      const int stride = (i == 0 && s > 0 && dilation == 1) ? 2 : 1;
      const int d = s == 3 ? dilation * c.res5_multi_grid.at(i % c.res5_multi_grid.size()) : dilation;
      const int s1 = c.stride_in_1x1 ? stride : 1, s3 = c.stride_in_1x1 ? 1 : stride;
      Bottleneck blk;
      blk.has_shortcut = b.has(key + ".shortcut.weight");  // first block of a stage
      if (blk.has_shortcut) blk.shortcut = bind_conv_bn(b, file, key + ".shortcut", stride, 0, 1, prec);
      blk.conv1 = bind_conv_bn(b, file, key + ".conv1", s1, 0, 1, prec);
      blk.conv2 = bind_conv_bn(b, file, key + ".conv2", s3, d, d, prec);
      blk.conv3 = bind_conv_bn(b, file, key + ".conv3", 1, 0, 1, prec);
      W.stages[s].push_back(std::move(blk));
    }
    release_bound();
  }

  // ---- pixel decoder ------------------------------------------------------------------------
  const std::string pd = "sem_seg_head.pixel_decoder";
  W.enc_levels = (int)c.transformer_in_features.size();
  W.enc_points = c.enc_n_points;
  for (int l = 0; l < W.enc_levels; ++l) {  // level 0 = res5, 1 = res4, 2 = res3
    const std::string key = pd + ".input_proj." + std::to_string(l);
    W.input_proj.push_back(bind_conv(b, file, key + ".0", 0, true, prec));
    W.input_proj_gn.push_back(bind_norm(b, key + ".1"));
  }
  W.enc_level_embed = copy_of(b.f32(pd + ".transformer.level_embed"));
  for (int i = 0; i < c.enc_layers; ++i) {
    const std::string key = pd + ".transformer.encoder.layers." + std::to_string(i);
    EncoderLayer e;
    // sampling_offsets and attention_weights read the same query: one GEMM, rows concatenated.
    const Weight ow = b.f32(key + ".self_attn.sampling_offsets.weight");  // [heads*L*P*2, D]
    const Weight ob = b.f32(key + ".self_attn.sampling_offsets.bias");
    const Weight aw = b.f32(key + ".self_attn.attention_weights.weight");  // [heads*L*P, D]
    const Weight ab = b.f32(key + ".self_attn.attention_weights.bias");
    std::vector<float> qw = copy_of(ow), qb = copy_of(ob);
    qw.insert(qw.end(), aw.data, aw.data + aw.numel());
    qb.insert(qb.end(), ab.data, ab.data + ab.numel());
    // bf16 where asked, the sampling offsets included (~1.6x faster than fp32 there; Bf16VsFp32's
    // pred_masks moved by ~3e-4 of relative L2 when offsets, logits and the decoder's 100-query
    // products went bf16 together).
    e.query_proj.init(ow.dim(1), ow.dim(0) + aw.dim(0), qw.data(), qb.data(), prec);
    e.value_proj = bind_linear(b, key + ".self_attn.value_proj", prec);
    e.output_proj = bind_linear(b, key + ".self_attn.output_proj", prec);
    e.norm1 = bind_norm(b, key + ".norm1");
    e.linear1 = bind_linear(b, key + ".linear1", prec);
    e.linear2 = bind_linear(b, key + ".linear2", prec);
    e.norm2 = bind_norm(b, key + ".norm2");
    W.enc_layers.push_back(std::move(e));
  }
  W.mask_features = bind_conv(b, file, pd + ".mask_features", 0, true, prec);
  W.adapter_1 = bind_conv(b, file, pd + ".adapter_1", 0, false, prec);
  W.adapter_1_gn = bind_norm(b, pd + ".adapter_1.norm");
  W.layer_1 = bind_conv(b, file, pd + ".layer_1", 1, false, prec);
  W.layer_1_gn = bind_norm(b, pd + ".layer_1.norm");
  release_bound();

  // ---- transformer decoder ------------------------------------------------------------------
  const std::string pr = "sem_seg_head.predictor";
  const int Dd = c.hidden_dim;
  W.dec_layers.resize(c.dec_layers);
  for (int i = 0; i < c.dec_layers; ++i) {
    const std::string key = pr + ".transformer_self_attention_layers." + std::to_string(i);
    DecoderLayer& d = W.dec_layers[i];
    const Weight w = b.f32(key + ".self_attn.in_proj_weight");  // [3D, D] = q ++ k ++ v
    const Weight bi = b.f32(key + ".self_attn.in_proj_bias");
    d.self_qk = slice_linear(w, bi, 0, 2 * Dd, prec);
    d.self_v = slice_linear(w, bi, 2 * Dd, 3 * Dd, prec);
    d.self_out = bind_linear(b, key + ".self_attn.out_proj", prec);
    d.self_norm = bind_norm(b, key + ".norm");
  }
  for (int i = 0; i < c.dec_layers; ++i) {
    const std::string key = pr + ".transformer_cross_attention_layers." + std::to_string(i);
    DecoderLayer& d = W.dec_layers[i];
    const Weight w = b.f32(key + ".multihead_attn.in_proj_weight");  // [3D, D] = q ++ k ++ v
    const Weight bi = b.f32(key + ".multihead_attn.in_proj_bias");
    // Keys and values project every token of a level (up to Hp/8 x Wp/8 rows): bf16 where asked,
    // ~1.7x faster there; the 100-query products (queries, outputs, self-attention, FFN) too, ~1.4x
    // faster on one thread. The heads (class_embed, mask_embed) stay fp32.
    d.cross_q = slice_linear(w, bi, 0, Dd, prec);
    d.cross_k = slice_linear(w, bi, Dd, 2 * Dd, prec);
    d.cross_v = slice_linear(w, bi, 2 * Dd, 3 * Dd, prec);
    d.cross_out = bind_linear(b, key + ".multihead_attn.out_proj", prec);
    d.cross_norm = bind_norm(b, key + ".norm");
  }
  for (int i = 0; i < c.dec_layers; ++i) {
    const std::string key = pr + ".transformer_ffn_layers." + std::to_string(i);
    DecoderLayer& d = W.dec_layers[i];
    d.ffn1 = bind_linear(b, key + ".linear1", prec);
    d.ffn2 = bind_linear(b, key + ".linear2", prec);
    d.ffn_norm = bind_norm(b, key + ".norm");
  }
  W.decoder_norm = bind_norm(b, pr + ".decoder_norm");
  W.query_feat = copy_of(b.f32(pr + ".query_feat.weight"));
  W.query_embed = copy_of(b.f32(pr + ".query_embed.weight"));
  W.dec_level_embed = copy_of(b.f32(pr + ".level_embed.weight"));
  W.class_embed = bind_linear(b, pr + ".class_embed", fp32);
  for (int i = 0; i < 3; ++i) W.mask_embed[i] = bind_linear(b, pr + ".mask_embed.layers." + std::to_string(i), fp32);
  b.finish();

  // One Winograd weight layout per convolution: the one for its input at the 640x1056 benchmark
  // size (dnn::Conv2d::set_winograd_reference), so that a process meeting many photo sizes does not
  // add a copy of 4x the weights per layout; sizes wanting another layout run direct. The layers that
  // run Winograd at all: dnn::plan_winograd, the most gain per MB within the budget (README,
  // "Winograd"), weighed at those sizes.
  {
    std::vector<const Conv2d*> threes;  // the 3x3 layers, in network order
    int64_t h = 640, w = 1056;
    for (const Conv2d* conv : {&W.stem1, &W.stem2, &W.stem3}) {
      conv->set_winograd_reference(h, w);
      threes.push_back(conv);
      h = conv->params().out_h(h);
      w = conv->params().out_w(w);
    }
    h = (h - 1) / 2 + 1;  // max-pool 3x3/2, padding 1
    w = (w - 1) / 2 + 1;
    int64_t h0 = 0, w0 = 0;  // res2's size: the pixel decoder's FPN level
    for (int s = 0; s < 4; ++s) {
      for (const Bottleneck& blk : W.stages[s]) {
        const int64_t h1 = blk.conv1.params().out_h(h), w1 = blk.conv1.params().out_w(w);
        blk.conv2.set_winograd_reference(h1, w1);
        threes.push_back(&blk.conv2);
        h = blk.conv2.params().out_h(h1);
        w = blk.conv2.params().out_w(w1);
      }
      if (s == 0) {
        h0 = h;
        w0 = w;
      }
    }
    W.layer_1.set_winograd_reference(h0, w0);
    threes.push_back(&W.layer_1);
    // bf16 too: a chosen layer runs fp32 Winograd, its input and output converted (engine/dnn.h).
    W.winograd = dnn::plan_winograd(threes, dnn::winograd_budget_bytes());
  }

  // Everything the engine keeps was copied: the mapped pages are no longer needed.
  release_bound();
  for (const TensorView& t : file->tensors()) file->release(t);
  for (const auto& [Hp, Wp] : opt.prepare_sizes) model->prepare(Hp, Wp);
  if (opt.warm_up)  // prepared already: warm_up()'s prepare() finds every primitive cached
    for (const auto& [Hp, Wp] : opt.prepare_sizes) model->warm_up(Hp, Wp);
  else if (!opt.prepare_sizes.empty())  // (a blank forward maps them itself)
    model->map_buffers(opt.prepare_sizes[0].first, opt.prepare_sizes[0].second);
  return model;
}

// =================================================================================================
// Small helpers of the forward pass
// =================================================================================================
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void emit(const TensorSink* sink, const std::string& name, const Tensor& t) {
  if (sink && *sink) (*sink)(name, t.layout == Layout::Opaque ? dnn::to_hwc(t) : t);
}

// y = x + a (elementwise, same number of elements; y may be x)
void add_into(const Tensor& x, const float* a, Tensor& y) {
  const int64_t n = x.numel();
  const float* xp = x.data();
  float* yp = y.data();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) yp[i] = xp[i] + a[i];
}

Tensor add(const Tensor& x, const float* a) {
  Tensor y = Tensor::empty(x.shape, x.layout);
  add_into(x, a, y);
  return y;
}

void layer_norm(Tensor& x, const Tensor* residual, const Norm& n) {
  const int64_t C = x.shape.back();
  kern::layernorm_rows(x.data(), residual ? residual->data() : nullptr, n.gamma.data(), n.beta.data(),
                       x.data(), x.numel() / C, C, kNormEps);
}

// x = norm(x + residual), then q = x + a (the next encoder layer's queries) in the same pass.
void layer_norm_add(Tensor& x, const Tensor& residual, const Norm& n, const float* a, Tensor& q) {
  const int64_t C = x.shape.back();
  kern::layernorm_rows_add(x.data(), residual.data(), n.gamma.data(), n.beta.data(), x.data(), a, q.data(),
                           x.numel() / C, C, kNormEps);
}

void group_norm(Tensor& x, const Norm& n, bool relu) {
  const int64_t C = x.shape.back();
  kern::groupnorm_nhwc(x.data(), x.data(), x.numel() / C, C, 32, n.gamma.data(), n.beta.data(),
                       kNormEps, relu);
}

// The rows [r0, r0 + H*W) of a token matrix as a feature map [H, W, C]: a view sharing the
// tokens' buffer (which lives as long as the view) when its first row is 64-byte aligned as every
// Tensor's is (C a multiple of 16, the model's 256), else a copy. Nothing writes into it.
Tensor rows_as_map(const Tensor& tokens, int64_t r0, int64_t H, int64_t W) {
  const int64_t C = tokens.shape[1];
  if ((r0 * C * (int64_t)sizeof(float)) % 64 == 0) {
    Tensor m;
    m.shape = {H, W, C};
    m.layout = Layout::HWC;
    m.buf = std::shared_ptr<float>(tokens.buf, tokens.buf.get() + r0 * C);
    m.bytes = (size_t)H * W * C * sizeof(float);
    return m;
  }
  Tensor m = Tensor::empty({H, W, C}, Layout::HWC);
  std::memcpy(m.data(), tokens.data() + r0 * C, (size_t)H * W * C * sizeof(float));
  return m;
}

}  // namespace

const Tensor& M2FP::Weights::pos_embed(int64_t H, int64_t W) const {
  std::lock_guard<std::mutex> lock(pos_mu);
  Tensor& t = pos_cache[{H, W}];
  if (!t.defined()) {
    const int F = cfg.conv_dim / 2;
    t = Tensor::empty({H * W, 2 * F});
    kern::sine_pos_embed(H, W, F, 10000.f, t.data());
  }
  return t;
}

// =================================================================================================
// The forward pass
// =================================================================================================
namespace {

struct Features {
  Tensor res2, res3, res4, res5;  // [Hp/4, Wp/4, 256] ... [Hp/32, Wp/32, 2048]
};

// ---- backbone: DeepLab stem (three 3x3 convs + max-pool), then res2..res5 bottlenecks ---------
Features backbone(const M2FP::Weights& W, const Tensor& image, const TensorSink* sink) {
  // Activations stay in the layout oneDNN prefers (Layout::Opaque) through the whole backbone.
  Tensor x = W.stem1(image, nullptr, true);   // [Hp/2, Wp/2, 64]
  x = W.stem2(x, nullptr, true);              // [Hp/2, Wp/2, 64]
  x = W.stem3(x, nullptr, true);              // [Hp/2, Wp/2, 128]
  x = dnn::max_pool_3x3_s2(x);                // [Hp/4, Wp/4, 128]
  emit(sink, "stem", x);
  Features f;
  Tensor* outs[4] = {&f.res2, &f.res3, &f.res4, &f.res5};
  for (int s = 0; s < 4; ++s) {
    for (const Bottleneck& blk : W.stages[s]) {
      Tensor h = blk.conv1(x, nullptr, true);                    // [H, W, w]
      h = blk.conv2(h, nullptr, true);                           // [H/s, W/s, w]
      Tensor sc = blk.has_shortcut ? blk.shortcut(x) : std::move(x);  // [H/s, W/s, out]
      x = blk.conv3.accumulate(h, std::move(sc), true);          // relu(conv3(h) + shortcut) (fp32: in sc's memory)
    }
    *outs[s] = x;
    emit(sink, "res" + std::to_string(s + 2), x);
  }
  return f;
}

struct PixelDecoderOut {
  Tensor maps[kDecoderFeatureLevels];  // strides 32, 16, 8: [H_l, W_l, D]
  Tensor mask_features;  // [Hp/4, Wp/4, D]
};

// ---- pixel decoder: 6 multi-scale deformable attention layers over res5, res4, res3, then the
// ---- FPN step to stride 4 and the mask features -----------------------------------------------
// Takes the backbone maps by value and drops each as soon as it has been read.
PixelDecoderOut pixel_decoder(const M2FP::Weights& W, Features f, const TensorSink* sink) {
  const ModelConfig& c = W.cfg;
  const int D = c.conv_dim, L = W.enc_levels, P = W.enc_points, heads = c.enc_nheads, dh = D / heads;
  Tensor* level_in[kDecoderFeatureLevels] = {&f.res5, &f.res4, &f.res3};  // L = 3 (checked at load)
  int64_t shapes[kDecoderFeatureLevels][2], start[kDecoderFeatureLevels], N = 0;
  for (int l = 0; l < L; ++l) {
    shapes[l][0] = level_in[l]->shape[0];
    shapes[l][1] = level_in[l]->shape[1];
    start[l] = N;
    N += shapes[l][0] * shapes[l][1];
  }

  // Input projection + GroupNorm per level, flattened and concatenated: src [N, D];
  // pos [N, D] = sine encoding + level embedding; reference points [N, 2].
  Tensor src = Tensor::empty({N, D}), pos = Tensor::empty({N, D}), ref = Tensor::empty({N, 2});
  for (int l = 0; l < L; ++l) {
    Tensor p = W.input_proj[l](*level_in[l], nullptr, false, /*hwc_out=*/true);  // [H_l, W_l, D]
    *level_in[l] = Tensor();
    const int64_t Hl = shapes[l][0], Wl = shapes[l][1], n = Hl * Wl;
    const Norm& gn = W.input_proj_gn[l];  // GroupNorm(32) written straight into the level's rows of src
    kern::groupnorm_nhwc(p.data(), src.data() + start[l] * D, n, D, 32, gn.gamma.data(), gn.beta.data(), kNormEps,
                         false);
    const Tensor& pe = W.pos_embed(Hl, Wl);
    const float* le = W.enc_level_embed.data() + l * D;
    float* pp = pos.data() + start[l] * D;
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t t = 0; t < n; ++t)
      for (int ch = 0; ch < D; ++ch) pp[t * D + ch] = pe.data()[t * D + ch] + le[ch];
    for (int64_t r = 0; r < Hl; ++r)
      for (int64_t q = 0; q < Wl; ++q) {
        float* rp = ref.data() + (start[l] + r * Wl + q) * 2;
        rp[0] = (q + 0.5f) / (float)Wl;
        rp[1] = (r + 0.5f) / (float)Hl;
      }
  }
  emit(sink, "encoder.src", src);
  emit(sink, "encoder.pos", pos);

  const int n_off = heads * L * P * 2;
  const int64_t ffn_rows = std::min<int64_t>(N, 2048);  // FFN in row blocks: the hidden stays small
  // bf16 layers write the values [N, D] in bf16, the deformable attention samples them there (half
  // the bytes per sampled row) and writes its output in bf16 for output_proj, which would round it
  // to bf16 anyway; fp32 ones in fp32. The layers share the load's precision. With bf16 layers the
  // norms also write the bf16 inputs of the next products (src16 = src for value_proj and linear1,
  // q16 = src + pos for query_proj), rounded as the products would round them (dnn::Linear): the
  // same bits without a conversion pass over [N, D] before each of the three.
  const bool value_bf16 = W.precision == dnn::Precision::BF16;
  auto bf16_or_f32 = [&](int64_t rows, int64_t cols) {
    return value_bf16 ? Tensor::empty_bytes({rows, cols}, Layout::Plain, (size_t)rows * cols * sizeof(uint16_t))
                      : Tensor::empty({rows, cols});
  };
  Tensor q = bf16_or_f32(N, D), value = bf16_or_f32(N, D), attn = bf16_or_f32(N, D);
  Tensor src16 = value_bf16 ? bf16_or_f32(N, D) : Tensor();
  Tensor qp = Tensor::empty({N, n_off + heads * L * P}), a = Tensor::empty({N, D});
  auto as_bf16 = [](Tensor& t) { return reinterpret_cast<uint16_t*>(t.data()); };
  // the first layer's queries (and bf16 values); each layer's last norm gives the next's
  if (value_bf16) {
    kern::round_bf16(src.data(), pos.data(), as_bf16(q), N * D);
    kern::round_bf16(src.data(), nullptr, as_bf16(src16), N * D);
  } else {
    add_into(src, pos.data(), q);
  }
  for (size_t i = 0; i < W.enc_layers.size(); ++i) {
    const EncoderLayer& e = W.enc_layers[i];
    const bool last = i + 1 == W.enc_layers.size();
    // self-attention (multi-scale deformable): queries q = src + pos, values src
    if (value_bf16) {
      uint16_t *v16 = as_bf16(value), *a16 = as_bf16(attn);
      e.query_proj.forward_from_bf16(as_bf16(q), D, N, qp.data(), qp.shape[1]);  // [N, offsets ++ logits]
      e.value_proj.forward_bf16_from_bf16(as_bf16(src16), D, N, v16, D);         // [N, D] bf16
      kern::ms_deform_attn_bf16(v16, &shapes[0][0], start, L, P, heads, dh, ref.data(), qp.data(),
                                qp.data() + n_off, qp.shape[1], a16, N);         // [N, D] bf16
      e.output_proj.forward_from_bf16(a16, D, N, a.data(), D);                   // [N, D]
      // src = norm1(src + a), and src16; feed-forward a = linear2(relu(linear1(src16)))
      kern::layernorm_rows_bf16(src.data(), a.data(), e.norm1.gamma.data(), e.norm1.beta.data(), src.data(),
                                as_bf16(src16), nullptr, nullptr, N, D, kNormEps);
      dnn::feed_forward_from_bf16(e.linear1, e.linear2, as_bf16(src16), D, N, a.data(), D, ffn_rows);
      // src = norm2(src + a); before another layer also src16 and q16 = src + pos
      kern::layernorm_rows_bf16(src.data(), a.data(), e.norm2.gamma.data(), e.norm2.beta.data(), src.data(),
                                last ? nullptr : as_bf16(src16), last ? nullptr : pos.data(),
                                last ? nullptr : as_bf16(q), N, D, kNormEps);
    } else {
      e.query_proj.forward(q.data(), D, N, qp.data(), qp.shape[1]);            // [N, offsets ++ logits]
      e.value_proj.forward(src.data(), D, N, value.data(), D);               // [N, D]
      kern::ms_deform_attn(value.data(), &shapes[0][0], start, L, P, heads, dh, ref.data(), qp.data(),
                           qp.data() + n_off, qp.shape[1], attn.data(), N);  // [N, D]
      e.output_proj.forward(attn.data(), D, N, a.data(), D);                // [N, D]
      layer_norm(src, &a, e.norm1);                                          // src = norm1(src + a)
      // feed-forward: a = linear2(relu(linear1(src))), in blocks of rows (hidden [rows, F])
      dnn::feed_forward(e.linear1, e.linear2, src.data(), D, N, a.data(), D, ffn_rows);  // [N, D]
      if (last) layer_norm(src, &a, e.norm2);                                // src = norm2(src + a)
      else layer_norm_add(src, a, e.norm2, pos.data(), q);                   // and q = src + pos
    }
    emit(sink, "encoder.layer" + std::to_string(i), src);
  }
  q = value = attn = src16 = qp = a = Tensor();

  PixelDecoderOut out;
  const char* names[kDecoderFeatureLevels] = {"pixel_decoder.s32", "pixel_decoder.s16", "pixel_decoder.s8"};
  for (int l = 0; l < L; ++l) {
    out.maps[l] = rows_as_map(src, start[l], shapes[l][0], shapes[l][1]);
    emit(sink, names[l], out.maps[l]);
  }

  // FPN: stride 4 = layer_1(adapter_1(res2) + upsample(stride 8))
  Tensor lat = W.adapter_1(f.res2, nullptr, false, /*hwc_out=*/true);        // [Hp/4, Wp/4, D]
  f.res2 = Tensor();
  group_norm(lat, W.adapter_1_gn, false);
  const int64_t H4 = lat.shape[0], W4 = lat.shape[1];
  // lat += upsampled s8, a row at a time (no [Hp/4, Wp/4, D] intermediate)
  kern::resize_bilinear_nhwc_add(out.maps[2].data(), shapes[2][0], shapes[2][1], D, lat.data(), H4, W4);
  Tensor y = W.layer_1(lat, nullptr, false, /*hwc_out=*/true);              // [Hp/4, Wp/4, D]
  lat = Tensor();
  if (value_bf16 && !(sink && *sink)) {
    // GroupNorm + ReLU written straight in bf16, as mask_features would round them: the same bits
    // without an fp32 map written and converted (the dumps keep the fp32 path for pixel_decoder.s4).
    Tensor y16 = dnn::bf16_hwc_map(H4, W4, y.shape[2]);
    kern::groupnorm_nhwc_bf16(y.data(), reinterpret_cast<uint16_t*>(y16.data()), H4 * W4, y.shape[2], 32,
                              W.layer_1_gn.gamma.data(), W.layer_1_gn.beta.data(), kNormEps, true);
    y = Tensor();
    out.mask_features = W.mask_features(y16, nullptr, false, /*hwc_out=*/true);  // [Hp/4, Wp/4, mask_dim]
  } else {
    group_norm(y, W.layer_1_gn, true);
    emit(sink, "pixel_decoder.s4", y);
    out.mask_features = W.mask_features(y, nullptr, false, /*hwc_out=*/true);  // [Hp/4, Wp/4, mask_dim]
  }
  emit(sink, "mask_features", out.mask_features);
  return out;
}

// ---- prediction heads: class logits, mask logits, and the attention mask for the next layer ---
struct Heads {
  Tensor logits;                // [Q, K+1]
  Tensor masks;                 // [Q, H4, W4] (only when asked for: the last head, or dumps)
  std::vector<uint8_t> attn;    // [Q, Ht*Wt], 1 = key excluded (sigmoid(mask) < 0.5)
  Tensor small;                 // [Q, Ht*Wt] mask logits at the next level (scratch, reused)
  std::vector<uint16_t> me16;   // [Q, mask_dim] the mask embeddings in bf16 (bf16 mode)
};

// The mask features the heads multiply with. The stride-4 map is fp32 in both modes: rounding its
// [H4*W4, mask_dim] to bf16 for a oneDNN bf16 product cost more than the product saved (measured:
// 14.5 ms to round + 15.3 ms bf16 product against 20 ms fp32, one thread, 640x1056), and only the
// last head (or dumps) computes it. Each level's resized map [H_l*W_l, mask_dim], read by three
// heads' attention-mask logits, is fp32, or with bf16 layers bfloat16, rounded once when made (the
// products in bf16 like the layers', fp32 accumulation).
struct MaskFeatures {
  const Tensor* full = nullptr;         // [H4, W4, mask_dim] fp32
  Tensor small[kDecoderFeatureLevels];  // [H_l*W_l, mask_dim] per level, fp32 or bf16
  bool bf16 = false;
};

// attn[i] = sigmoid(x[i]) < 0.5, exactly as upstream computes it in float: x >= 0 never is,
// x < -1e-3 always is (1 + exp(1e-3) > 2.0019); only the few logits in between (and NaN, which
// gives 0 both ways) need the exp. The sign test runs vectorised over blocks of 64; a block is
// redone with the exp only where one of its logits lies in (-1e-3, 0).
void attention_mask_from_logits(const float* x, int64_t n, uint8_t* attn) {
  constexpr int64_t B = 64;
  const int64_t nb = (n + B - 1) / B;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t b0 = b * B, b1 = std::min(n, b0 + B);
    int band = 0;
    for (int64_t i = b0; i < b1; ++i) {
      attn[i] = x[i] < 0.f;
      band |= (x[i] >= -1e-3f) & (x[i] < 0.f);
    }
    if (band)
      for (int64_t i = b0; i < b1; ++i)
        if (x[i] >= -1e-3f && x[i] < 0.f) attn[i] = 1.f / (1.f + std::exp(-x[i])) < 0.5f;
  }
}

// Upstream computes masks = mask_embed . mask_features at stride 4 and resizes them to the next
// level's size for the attention mask. Bilinear resizing is linear, so resizing mask_features
// once per level (`mf_small`, [Ht*Wt, mask_dim]) and multiplying there gives the same logits
// with 4x to 64x fewer multiply-adds; the full-resolution masks are computed only when needed.
// Fills `h` in place: its buffers are reused from layer to layer.
void prediction_heads(const M2FP::Weights& W, const Tensor& output, MaskFeatures& mf, bool full_masks,
                      int small_level, Heads& h) {
  const ModelConfig& c = W.cfg;
  const Tensor& mask_features = *mf.full;
  const int64_t Q = output.shape[0], H4 = mask_features.shape[0], W4 = mask_features.shape[1];
  Tensor dn = output.clone();
  layer_norm(dn, nullptr, W.decoder_norm);                           // [Q, D]
  h.logits = W.class_embed(dn);                                      // [Q, K+1]
  Tensor me = W.mask_embed[0](dn, true);
  me = W.mask_embed[1](me, true);
  me = W.mask_embed[2](me);                                          // [Q, mask_dim]
  if (mf.bf16 && small_level >= 0) {
    h.me16.resize((size_t)(Q * c.mask_dim));
    kern::active().round_bf16(me.data(), nullptr, h.me16.data(), Q * c.mask_dim);
  }
  h.masks = Tensor();
  if (full_masks) {
    h.masks = Tensor::empty({Q, H4, W4});
    dnn::matmul_abt(me.data(), mask_features.data(), h.masks.data(), Q, H4 * W4, c.mask_dim);
  }
  if (small_level < 0) h.attn.clear();
  if (small_level >= 0) {
    const Tensor& mf_small = mf.small[small_level];
    const int64_t n = mf_small.shape[0];
    if (h.small.numel() < Q * n) h.small = Tensor::empty({Q * n});
    if (mf.bf16)
      dnn::matmul_abt_bf16(h.me16.data(), reinterpret_cast<const uint16_t*>(mf_small.data()), h.small.data(), Q, n,
                           c.mask_dim);  // [Q, Ht*Wt]
    else
      dnn::matmul_abt(me.data(), mf_small.data(), h.small.data(), Q, n, c.mask_dim);  // [Q, Ht*Wt]
    h.attn.resize((size_t)(Q * n));
    attention_mask_from_logits(h.small.data(), Q * n, h.attn.data());
  }
}

// ---- transformer decoder: 9 layers of masked cross-attention, self-attention and FFN ----------
ForwardOutputs transformer_decoder(const M2FP::Weights& W, const PixelDecoderOut& pdo,
                                   const TensorSink* sink, const ForwardHooks* hooks) {
  const ModelConfig& c = W.cfg;
  const int D = c.hidden_dim, heads = c.dec_nheads, dh = D / heads, Q = c.num_queries;
  const float scale = 1.f / std::sqrt((float)dh);
  constexpr int NL = kDecoderFeatureLevels;  // levels, read in turn: strides 32, 16, 8

  // Per level: memory src_l = map + level_embed (values), keys src_l + pos_l, in one pass. Read
  // only by cross_v and cross_k (three layers each): with bf16 layers they are kept in bf16, rounded
  // here once as those products would round them at each call (dnn::Linear), the same bits.
  const bool mem_bf16 = W.precision == dnn::Precision::BF16;
  Tensor src[NL], key_in[NL];
  int64_t Hs[NL], Ws[NL];
  for (int l = 0; l < NL; ++l) {
    Hs[l] = pdo.maps[l].shape[0];
    Ws[l] = pdo.maps[l].shape[1];
    const int64_t n = Hs[l] * Ws[l];
    const float *m = pdo.maps[l].data(), *le = W.dec_level_embed.data() + l * D,
                *pe = W.pos_embed(Hs[l], Ws[l]).data();
    if (mem_bf16) {
      const size_t bytes = (size_t)n * D * sizeof(uint16_t);
      src[l] = Tensor::empty_bytes({n, D}, Layout::Plain, bytes);     // [H_l*W_l, D] bf16
      key_in[l] = Tensor::empty_bytes({n, D}, Layout::Plain, bytes);  // [H_l*W_l, D] bf16
      uint16_t *sp = reinterpret_cast<uint16_t*>(src[l].data()), *kp = reinterpret_cast<uint16_t*>(key_in[l].data());
      const kern::KernelTable& kt = kern::active();
#pragma omp parallel if (n * D > 65536)
      {
        std::vector<float> srow((size_t)D), krow((size_t)D);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t ch = 0; ch < D; ++ch) {
            srow[ch] = m[t * D + ch] + le[ch];
            krow[ch] = srow[ch] + pe[t * D + ch];
          }
          kt.round_bf16(srow.data(), nullptr, sp + t * D, D);
          kt.round_bf16(krow.data(), nullptr, kp + t * D, D);
        }
      }
      continue;
    }
    src[l] = Tensor::empty({n, D});                                   // [H_l*W_l, D]
    key_in[l] = Tensor::empty({n, D});                                // [H_l*W_l, D]
    float *sp = src[l].data(), *kp = key_in[l].data();
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t ch = t * D; ch < (t + 1) * D; ++ch) {
        sp[ch] = m[ch] + le[ch - t * D];
        kp[ch] = sp[ch] + pe[ch];
      }
  }
  // cross_k / cross_v of one level's memory: [H_l*W_l, D], fp32; with bf16 layers in bf16 (the
  // cross-attention's products run in bf16: kern::masked_attention_bf16), rounded once as written.
  auto project = [&](const Linear& proj, const Tensor& x) {
    if (!mem_bf16) return proj(x);
    const int64_t n = x.shape[0];
    Tensor y = Tensor::empty_bytes({n, (int64_t)proj.out()}, Layout::Plain, (size_t)n * proj.out() * sizeof(uint16_t));
    proj.forward_bf16_from_bf16(reinterpret_cast<const uint16_t*>(x.data()), D, n, reinterpret_cast<uint16_t*>(y.data()),
                                proj.out());
    return y;
  };

  // mask_features resized to each level (see prediction_heads): [H_l*W_l, mask_dim]
  const Tensor& mf_full = pdo.mask_features;
  MaskFeatures mf;
  mf.full = &mf_full;
  mf.bf16 = mem_bf16;
  for (int l = 0; l < NL; ++l) {
    const int64_t n = Hs[l] * Ws[l], C = mf_full.shape[2];
    Tensor r = Tensor::empty({n, C});
    kern::resize_bilinear_nhwc(mf_full.data(), mf_full.shape[0], mf_full.shape[1], C, r.data(), Hs[l], Ws[l]);
    if (mem_bf16) {
      mf.small[l] = Tensor::empty_bytes({n, C}, Layout::Plain, (size_t)n * C * sizeof(uint16_t));
      kern::round_bf16(r.data(), nullptr, reinterpret_cast<uint16_t*>(mf.small[l].data()), n * C);
    } else {
      mf.small[l] = std::move(r);
    }
  }
  const bool dump = sink && *sink;

  Tensor output = Tensor::empty({Q, D});                              // query features
  std::memcpy(output.data(), W.query_feat.data(), W.query_feat.size() * sizeof(float));
  const float* qe = W.query_embed.data();                             // query positions [Q, D]

  // The heads' buffers are sized once for the largest level (no allocation per layer).
  Heads h;
  int64_t max_keys = 0;
  for (int l = 0; l < NL; ++l) max_keys = std::max(max_keys, Hs[l] * Ws[l]);
  h.small = Tensor::empty({Q * max_keys});
  h.attn.reserve((size_t)(Q * max_keys));
  prediction_heads(W, output, mf, dump, 0, h);
  emit(sink, "decoder.logits0", h.logits);
  if (dump) emit(sink, "decoder.masks0", h.masks);

  Tensor a = Tensor::empty({Q, D}), f = Tensor::empty({Q, D});
  for (size_t i = 0; i < W.dec_layers.size(); ++i) {
    const DecoderLayer& d = W.dec_layers[i];
    const int l = (int)(i % NL);
    const int64_t Lk = Hs[l] * Ws[l];
    if (hooks && hooks->attention_mask) hooks->attention_mask((int)i, Hs[l], Ws[l], h.attn);

    // masked cross-attention to level l (fully masked rows attend everywhere: in the kernel)
    Tensor q = d.cross_q(add(output, qe));                            // [Q, D]
    Tensor k = project(d.cross_k, key_in[l]);                         // [Lk, D]
    Tensor v = project(d.cross_v, src[l]);                            // [Lk, D]
    if (mem_bf16)
      kern::masked_attention_bf16(q.data(), D, reinterpret_cast<const uint16_t*>(k.data()), D,
                                  reinterpret_cast<const uint16_t*>(v.data()), D, h.attn.data(), a.data(), D, Q, Lk,
                                  heads, dh, scale);
    else
      kern::masked_attention(q.data(), D, k.data(), D, v.data(), D, h.attn.data(), a.data(), D, Q, Lk, heads, dh,
                             scale);
    Tensor o = d.cross_out(a);
    layer_norm(output, &o, d.cross_norm);                             // output = norm(output + o)

    // self-attention over the queries
    Tensor qk = d.self_qk(add(output, qe));                           // [Q, 2D] = q ++ k
    Tensor sv = d.self_v(output);                                     // [Q, D]
    kern::masked_attention(qk.data(), 2 * D, qk.data() + D, 2 * D, sv.data(), D, nullptr, a.data(), D,
                           Q, Q, heads, dh, scale);
    o = d.self_out(a);
    layer_norm(output, &o, d.self_norm);

    // feed-forward
    dnn::feed_forward(d.ffn1, d.ffn2, output.data(), D, Q, f.data(), D, Q);  // hidden bf16 when bf16
    layer_norm(output, &f, d.ffn_norm);
    emit(sink, "decoder.query" + std::to_string(i), output);

    // heads, with the attention mask for the next layer's level
    const bool last = i + 1 == W.dec_layers.size();
    const int nl = (int)((i + 1) % NL);
    prediction_heads(W, output, mf, last || dump, last ? -1 : nl, h);
    emit(sink, "decoder.logits" + std::to_string(i + 1), h.logits);
    if (dump) emit(sink, "decoder.masks" + std::to_string(i + 1), h.masks);
  }
  emit(sink, "pred_logits", h.logits);
  emit(sink, "pred_masks", h.masks);
  return {h.logits, h.masks};
}

}  // namespace

ForwardOutputs M2FP::forward(const Tensor& image, const TensorSink* sink, ForwardTimes* times,
                             const ForwardHooks* hooks) const {
  if (image.shape.size() != 3 || image.shape[2] != 3 || image.shape[0] % 32 || image.shape[1] % 32 ||
      image.shape[0] == 0 || image.shape[1] == 0)
    throw std::invalid_argument("M2FP::forward: expected [Hp, Wp, 3] with Hp, Wp multiples of 32, got " +
                                image.shape_str());
  emit(sink, "image", image);
  auto t0 = Clock::now();
  Features f = backbone(*w_, image, sink);
  const double t_backbone = ms_since(t0);
  t0 = Clock::now();
  PixelDecoderOut pdo = pixel_decoder(*w_, std::move(f), sink);
  const double t_pixel = ms_since(t0);
  t0 = Clock::now();
  ForwardOutputs out = transformer_decoder(*w_, pdo, sink, hooks);
  if (times) {
    times->backbone_ms = t_backbone;
    times->pixel_decoder_ms = t_pixel;
    times->transformer_decoder_ms = ms_since(t0);
  }
  return out;
}

void M2FP::map_buffers(int64_t Hp, int64_t Wp) const {
  prepare(Hp, Wp);  // (primitives already cached: nothing to do)
  // Nothing to map where the pool keeps nothing (AddressSanitizer builds, M2FP_BUFFER_POOL_MB=0).
  if (!pool::active() || pool::stats().limit_bytes == 0) return;
  Tensor image = Tensor::empty({Hp, Wp, 3}, Layout::HWC);
  std::memset(image.data(), 0, image.bytes);
  {
    dnn::ZeroRun zeros;
    forward(image);
  }
  pool::fill();  // also where the blank forward left holes: a real one may place its blocks there
}

// The same layers as forward() at the same sizes and with the same fusions; only the primitives are
// created (dnn::Conv2d::prepare, dnn::Linear::prepare, dnn::prepare_matmul_abt) and the positional
// encodings computed, nothing is run. Each layer's primitive is one task; the tasks are spread over
// the OpenMP threads (oneDNN creates primitives thread-safely, each layer locks its own cache; a
// weight reorder inside a task runs on its task's thread).
void M2FP::prepare(int64_t Hp, int64_t Wp) const {
  if (Hp <= 0 || Wp <= 0 || Hp % 32 || Wp % 32)
    throw std::invalid_argument("M2FP::prepare: expected Hp, Wp positive multiples of 32, got " +
                                std::to_string(Hp) + "x" + std::to_string(Wp));
  const Weights& W = *w_;
  const ModelConfig& c = W.cfg;
  std::vector<std::function<void()>> tasks;
  // ---- backbone (as backbone())
  int64_t h = Hp, w = Wp;
  for (const Conv2d* conv : {&W.stem1, &W.stem2, &W.stem3}) {
    tasks.push_back([conv, h, w] { conv->prepare(h, w, false, true); });
    h = conv->params().out_h(h);
    w = conv->params().out_w(w);
  }
  h = (h - 1) / 2 + 1;  // max-pool 3x3/2, padding 1
  w = (w - 1) / 2 + 1;
  int64_t lh[4], lw[4];
  for (int s = 0; s < 4; ++s) {
    for (const Bottleneck& blk : W.stages[s]) {
      const Bottleneck* b = &blk;
      const int64_t h1 = blk.conv1.params().out_h(h), w1 = blk.conv1.params().out_w(w);
      const int64_t h2 = blk.conv2.params().out_h(h1), w2 = blk.conv2.params().out_w(w1);
      tasks.push_back([b, h, w] { b->conv1.prepare(h, w, false, true); });
      tasks.push_back([b, h1, w1] { b->conv2.prepare(h1, w1, false, true); });
      if (blk.has_shortcut) tasks.push_back([b, h, w] { b->shortcut.prepare(h, w); });
      tasks.push_back([b, h2, w2] { b->conv3.prepare(h2, w2, true, true); });
      h = h2;
      w = w2;
    }
    lh[s] = h;
    lw[s] = w;
  }
  // ---- pixel decoder (as pixel_decoder())
  const int D = c.conv_dim;
  int64_t N = 0;
  for (int l = 0; l < W.enc_levels; ++l) {
    const Conv2d* conv = &W.input_proj[l];
    const int64_t hl = lh[3 - l], wl = lw[3 - l];
    tasks.push_back([conv, hl, wl] { conv->prepare(hl, wl, false, false, /*hwc_out=*/true); });
    tasks.push_back([&W, hl, wl] { W.pos_embed(hl, wl); });
    N += hl * wl;
  }
  const int64_t ffn_rows = std::min<int64_t>(N, 2048);
  for (const EncoderLayer& e : W.enc_layers) {
    const EncoderLayer* p = &e;
    tasks.push_back([p, N, D, bf16 = W.precision == dnn::Precision::BF16] {
      p->value_proj.prepare(N, D, D, false, /*y_bf16=*/bf16);
    });
    tasks.push_back([p, N, D] { p->query_proj.prepare(N, D, p->query_proj.out()); });
    tasks.push_back([p, N, D] { p->output_proj.prepare(N, D, D); });
    tasks.push_back([p, N, D, ffn_rows] { dnn::prepare_feed_forward(p->linear1, p->linear2, N, D, D, ffn_rows); });
  }
  for (const Conv2d* conv : {&W.adapter_1, &W.layer_1, &W.mask_features}) {
    const int64_t h0 = lh[0], w0 = lw[0];
    tasks.push_back([conv, h0, w0] { conv->prepare(h0, w0, false, false, /*hwc_out=*/true); });
  }
  // ---- transformer decoder (as transformer_decoder() and prediction_heads(); Linear::operator()
  // passes dense strides; the mask logits at stride 4 and at each level's size are matmul_abt)
  const int64_t Q = c.num_queries;
  auto dense = [&tasks](const Linear& l, int64_t M, bool relu = false) {
    const Linear* p = &l;
    tasks.push_back([p, M, relu] { p->prepare(M, p->in(), p->out(), relu); });
  };
  dense(W.class_embed, Q);
  dense(W.mask_embed[0], Q, true);
  dense(W.mask_embed[1], Q, true);
  dense(W.mask_embed[2], Q);
  const int64_t H4 = lh[0], W4 = lw[0], mask_dim = c.mask_dim;
  // (at each level in bf16 with bf16 layers: MaskFeatures)
  auto prepare_masks = [bf16 = W.precision == dnn::Precision::BF16](int64_t M, int64_t N, int64_t K) {
    if (bf16) dnn::prepare_matmul_abt_bf16(M, N, K);
    else dnn::prepare_matmul_abt(M, N, K);
  };
  tasks.push_back([Q, H4, W4, mask_dim] { dnn::prepare_matmul_abt(Q, H4 * W4, mask_dim); });
  for (int l = 0; l < kDecoderFeatureLevels; ++l) {
    const int64_t n = lh[3 - l] * lw[3 - l];
    tasks.push_back([&W, hl = lh[3 - l], wl = lw[3 - l]] { W.pos_embed(hl, wl); });
    tasks.push_back([=] { prepare_masks(Q, n, mask_dim); });
  }
  for (size_t i = 0; i < W.dec_layers.size(); ++i) {
    const DecoderLayer& d = W.dec_layers[i];
    const int s = 3 - (int)(i % kDecoderFeatureLevels);
    dense(d.cross_q, Q);
    if (W.precision == dnn::Precision::BF16) {  // bf16 keys and values (transformer_decoder's project)
      for (const Linear* p : {&d.cross_k, &d.cross_v})
        tasks.push_back([p, M = lh[s] * lw[s]] { p->prepare(M, p->in(), p->out(), false, /*y_bf16=*/true); });
    } else {
      dense(d.cross_k, lh[s] * lw[s]);
      dense(d.cross_v, lh[s] * lw[s]);
    }
    dense(d.cross_out, Q);
    dense(d.self_qk, Q);
    dense(d.self_v, Q);
    dense(d.self_out, Q);
    tasks.push_back([p = &d, Q, D = c.hidden_dim] { dnn::prepare_feed_forward(p->ffn1, p->ffn2, Q, D, D, Q); });
  }
  std::exception_ptr error;
  std::mutex error_mu;
  const int64_t n_tasks = (int64_t)tasks.size();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < n_tasks; ++t) {
    try {
      tasks[(size_t)t]();
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

void M2FP::warm_up(int64_t Hp, int64_t Wp) const {
  if (Hp <= 0 || Wp <= 0 || Hp % 32 || Wp % 32)
    throw std::invalid_argument("M2FP::warm_up: expected Hp, Wp positive multiples of 32, got " +
                                std::to_string(Hp) + "x" + std::to_string(Wp));
  prepare(Hp, Wp);
  Tensor image = Tensor::empty({Hp, Wp, 3}, Layout::HWC);
  std::memset(image.data(), 0, image.bytes);
  forward(image);
}

}  // namespace m2fp
