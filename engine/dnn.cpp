// engine/dnn.cpp: oneDNN convolutions, matmuls and pooling with per-shape primitive caches.
#include "engine/dnn.h"

#include <dnnl.hpp>

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

namespace m2fp::dnn {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Scratchpads are supplied per call (user mode) so one primitive may run on several threads.
dnnl::primitive_attr make_attr(const dnnl::post_ops& po) {
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

struct Scratch {
  std::vector<uint8_t> bytes;
  dnnl::memory get(const dnnl::memory::desc& md) {
    if (bytes.size() < md.get_size()) bytes.resize(md.get_size());
    return dnnl::memory(md, cpu_engine(), bytes.data());
  }
};
thread_local Scratch t_scratch;

}  // namespace

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

bool parse_precision(const std::string& s, Precision* out) {
  if (s == "fp32" || s == "f32") *out = Precision::F32;
  else if (s == "bf16") *out = Precision::BF16;
  else return false;
  return true;
}

// ---- Conv2d -----------------------------------------------------------------------------------
struct Conv2d::Impl {
  ConvParams p;
  Precision prec = Precision::F32;
  std::vector<float> w;     // [out_c, in_c, kh, kw]
  std::vector<float> bias;  // [out_c] or empty

  struct Entry {
    dnnl::convolution_forward prim;
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::memory weights;   // reordered to pd.weights_desc()
    dnnl::memory bias;
  };
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, bool, bool>, std::shared_ptr<Entry>> cache;

  std::shared_ptr<Entry> get(int64_t H, int64_t W, bool sum, bool relu) {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_tuple(H, W, sum, relu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;

    const dt act = prec == Precision::BF16 ? dt::bf16 : dt::f32;
    const int64_t Ho = p.out_h(H), Wo = p.out_w(W);
    dnnl::memory::desc src_md({1, p.in_c, H, W}, act, tag::nhwc);
    dnnl::memory::desc w_md({p.out_c, p.in_c, p.kh, p.kw}, act, tag::any);
    dnnl::memory::desc b_md({p.out_c}, dt::f32, tag::x);
    dnnl::memory::desc dst_md({1, p.out_c, Ho, Wo}, dt::f32, tag::nhwc);
    dnnl::post_ops po;
    if (sum) po.append_sum(1.f);
    if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    const dnnl::memory::dims strides{p.stride, p.stride}, dil{p.dilation - 1, p.dilation - 1},
        pad{p.pad, p.pad};
    auto desc = bias.empty()
                    ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                      dnnl::algorithm::convolution_direct, src_md,
                                                      w_md, dst_md, strides, dil, pad, pad)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                      dnnl::algorithm::convolution_direct, src_md,
                                                      w_md, b_md, dst_md, strides, dil, pad, pad);
    auto e = std::make_shared<Entry>();
    e->pd = dnnl::convolution_forward::primitive_desc(desc, make_attr(po), cpu_engine());
    e->prim = dnnl::convolution_forward(e->pd);
    // Weights: reuse an already reordered copy when another shape chose the same layout.
    for (auto& kv : cache)
      if (kv.second->weights.get_desc() == e->pd.weights_desc()) e->weights = kv.second->weights;
    if (!e->weights) {
      dnnl::stream s(cpu_engine());
      dnnl::memory src_w({{p.out_c, p.in_c, p.kh, p.kw}, dt::f32, tag::oihw}, cpu_engine(), w.data());
      e->weights = dnnl::memory(e->pd.weights_desc(), cpu_engine());
      dnnl::reorder(src_w, e->weights).execute(s, src_w, e->weights);
      s.wait();
    }
    if (!bias.empty()) e->bias = dnnl::memory(b_md, cpu_engine(), bias.data());
    cache[key] = e;
    return e;
  }
};

void Conv2d::init(const ConvParams& p, const float* w, const float* bias, Precision prec) {
  p_ = p;
  impl_ = std::make_shared<Impl>();
  impl_->p = p;
  impl_->prec = prec;
  impl_->w.assign(w, w + (size_t)p.out_c * p.in_c * p.kh * p.kw);
  if (bias) impl_->bias.assign(bias, bias + p.out_c);
}

namespace {
// fp32 HWC -> bf16 memory of the same logical shape (BF16 precision only).
dnnl::memory to_bf16(const float* x, const dnnl::memory::dims& dims, std::vector<uint16_t>* buf) {
  dnnl::memory::desc f_md(dims, dt::f32, tag::nhwc), b_md(dims, dt::bf16, tag::nhwc);
  buf->resize(b_md.get_size() / 2);
  dnnl::memory src(f_md, cpu_engine(), const_cast<float*>(x)), dst(b_md, cpu_engine(), buf->data());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  return dst;
}
}  // namespace

Tensor Conv2d::operator()(const Tensor& x, const Tensor* residual, bool relu) const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  if (x.shape.size() != 3 || x.shape[2] != p_.in_c)
    throw std::invalid_argument("Conv2d: expected [H, W, " + std::to_string(p_.in_c) + "], got " +
                                x.shape_str());
  const int64_t H = x.shape[0], W = x.shape[1], Ho = p_.out_h(H), Wo = p_.out_w(W);
  Tensor y = Tensor::empty({Ho, Wo, p_.out_c}, Layout::HWC);
  if (residual) {
    if (residual->shape != y.shape)
      throw std::invalid_argument("Conv2d: residual " + residual->shape_str() + " != output " + y.shape_str());
    std::memcpy(y.data(), residual->data(), (size_t)y.numel() * sizeof(float));
  }
  auto e = impl_->get(H, W, residual != nullptr, relu);
  dnnl::stream s(cpu_engine());
  std::vector<uint16_t> xb;
  dnnl::memory src = impl_->prec == Precision::BF16
                         ? to_bf16(x.data(), {1, p_.in_c, H, W}, &xb)
                         : dnnl::memory(e->pd.src_desc(), cpu_engine(), const_cast<float*>(x.data()));
  dnnl::memory dst(e->pd.dst_desc(), cpu_engine(), y.data());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src},
                                             {DNNL_ARG_WEIGHTS, e->weights},
                                             {DNNL_ARG_DST, dst},
                                             {DNNL_ARG_SCRATCHPAD, t_scratch.get(e->pd.scratchpad_desc())}};
  if (e->bias) args[DNNL_ARG_BIAS] = e->bias;
  e->prim.execute(s, args);
  s.wait();
  return y;
}

// ---- Linear (matmul) --------------------------------------------------------------------------
struct Linear::Impl {
  int in = 0, out = 0;
  Precision prec = Precision::F32;
  std::vector<float> w;     // [out, in]
  std::vector<float> bias;  // [out] or empty
  struct Entry {
    dnnl::matmul prim;
    dnnl::matmul::primitive_desc pd;
    dnnl::memory weights, bias;
  };
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::shared_ptr<Entry>> cache;

  std::shared_ptr<Entry> get(int64_t M, int64_t ldx, int64_t ldy, bool relu) {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_tuple(M, ldx, ldy, relu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    const dt act = prec == Precision::BF16 ? dt::bf16 : dt::f32;
    // BF16 inputs are converted into a dense [M, in] buffer, so their stride is `in`.
    const int64_t lds = prec == Precision::BF16 ? in : ldx;
    dnnl::memory::desc src_md({M, in}, act, {lds, 1});
    dnnl::memory::desc w_md({in, out}, act, tag::any);
    dnnl::memory::desc b_md({1, out}, dt::f32, tag::ab);
    dnnl::memory::desc dst_md({M, out}, dt::f32, {ldy, 1});
    dnnl::post_ops po;
    if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    auto desc = bias.empty() ? dnnl::matmul::desc(src_md, w_md, dst_md)
                             : dnnl::matmul::desc(src_md, w_md, b_md, dst_md);
    auto e = std::make_shared<Entry>();
    e->pd = dnnl::matmul::primitive_desc(desc, make_attr(po), cpu_engine());
    e->prim = dnnl::matmul(e->pd);
    for (auto& kv : cache)
      if (kv.second->weights.get_desc() == e->pd.weights_desc()) e->weights = kv.second->weights;
    if (!e->weights) {
      dnnl::stream s(cpu_engine());
      // PyTorch's [out, in] row-major is the matmul's [in, out] with strides (1, in).
      dnnl::memory src_w({{in, out}, dt::f32, {1, in}}, cpu_engine(), w.data());
      e->weights = dnnl::memory(e->pd.weights_desc(), cpu_engine());
      dnnl::reorder(src_w, e->weights).execute(s, src_w, e->weights);
      s.wait();
    }
    if (!bias.empty()) e->bias = dnnl::memory(b_md, cpu_engine(), bias.data());
    cache[key] = e;
    return e;
  }
};

void Linear::init(int in, int out, const float* w, const float* bias, Precision prec) {
  in_ = in;
  out_ = out;
  impl_ = std::make_shared<Impl>();
  impl_->in = in;
  impl_->out = out;
  impl_->prec = prec;
  impl_->w.assign(w, w + (size_t)in * out);
  if (bias) impl_->bias.assign(bias, bias + out);
}

void Linear::forward(const float* x, int64_t ldx, int64_t M, float* y, int64_t ldy, bool relu) const {
  if (!impl_) throw std::logic_error("Linear used before init");
  if (M == 0) return;
  auto e = impl_->get(M, ldx, ldy, relu);
  dnnl::stream s(cpu_engine());
  std::vector<uint16_t> xb;
  dnnl::memory src;
  if (impl_->prec == Precision::BF16) {
    dnnl::memory f({{M, in_}, dt::f32, {ldx, 1}}, cpu_engine(), const_cast<float*>(x));
    xb.resize((size_t)M * in_);
    src = dnnl::memory(e->pd.src_desc(), cpu_engine(), xb.data());
    dnnl::reorder(f, src).execute(s, f, src);
  } else {
    src = dnnl::memory(e->pd.src_desc(), cpu_engine(), const_cast<float*>(x));
  }
  dnnl::memory dst(e->pd.dst_desc(), cpu_engine(), y);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src},
                                             {DNNL_ARG_WEIGHTS, e->weights},
                                             {DNNL_ARG_DST, dst},
                                             {DNNL_ARG_SCRATCHPAD, t_scratch.get(e->pd.scratchpad_desc())}};
  if (e->bias) args[DNNL_ARG_BIAS] = e->bias;
  e->prim.execute(s, args);
  s.wait();
}

Tensor Linear::operator()(const Tensor& x, bool relu) const {
  if (x.shape.size() != 2 || x.shape[1] != in_)
    throw std::invalid_argument("Linear: expected [M, " + std::to_string(in_) + "], got " + x.shape_str());
  Tensor y = Tensor::empty({x.shape[0], out_});
  forward(x.data(), in_, x.shape[0], y.data(), out_, relu);
  return y;
}

// ---- matmul of two activations ----------------------------------------------------------------
namespace {
void matmul_act(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K, bool bt) {
  struct Entry {
    dnnl::matmul prim;
    dnnl::matmul::primitive_desc pd;
  };
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::shared_ptr<Entry>> cache;
  std::shared_ptr<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = cache[std::make_tuple(M, N, K, bt)];
    if (!slot) {
      slot = std::make_shared<Entry>();
      dnnl::memory::desc a_md({M, K}, dt::f32, tag::ab), b_md({K, N}, dt::f32, bt ? tag::ba : tag::ab),
          c_md({M, N}, dt::f32, tag::ab);
      slot->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md),
                                              make_attr(dnnl::post_ops()), cpu_engine());
      slot->prim = dnnl::matmul(slot->pd);
    }
    e = slot;
  }
  dnnl::stream s(cpu_engine());
  dnnl::memory am(e->pd.src_desc(), cpu_engine(), const_cast<float*>(a)),
      bm(e->pd.weights_desc(), cpu_engine(), const_cast<float*>(b)), cm(e->pd.dst_desc(), cpu_engine(), c);
  e->prim.execute(s, {{DNNL_ARG_SRC, am},
                      {DNNL_ARG_WEIGHTS, bm},
                      {DNNL_ARG_DST, cm},
                      {DNNL_ARG_SCRATCHPAD, t_scratch.get(e->pd.scratchpad_desc())}});
  s.wait();
}
}  // namespace

void matmul_abt(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K) {
  matmul_act(a, b, c, M, N, K, true);
}
void matmul_ab(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K) {
  matmul_act(a, b, c, M, N, K, false);
}

// ---- max-pool ---------------------------------------------------------------------------------
Tensor max_pool_3x3_s2(const Tensor& x) {
  const int64_t H = x.shape[0], W = x.shape[1], C = x.shape[2];
  const int64_t Ho = (H + 2 - 3) / 2 + 1, Wo = (W + 2 - 3) / 2 + 1;
  Tensor y = Tensor::empty({Ho, Wo, C}, Layout::HWC);
  dnnl::memory::desc src_md({1, C, H, W}, dt::f32, tag::nhwc), dst_md({1, C, Ho, Wo}, dt::f32, tag::nhwc);
  dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                src_md, dst_md, {2, 2}, {3, 3}, {1, 1}, {1, 1});
  dnnl::pooling_forward::primitive_desc pd(d, cpu_engine());
  dnnl::stream s(cpu_engine());
  dnnl::memory src(src_md, cpu_engine(), const_cast<float*>(x.data())), dst(dst_md, cpu_engine(), y.data());
  dnnl::pooling_forward(pd).execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  s.wait();
  return y;
}

}  // namespace m2fp::dnn
