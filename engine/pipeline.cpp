// engine/pipeline.cpp: decode -> pre-process -> forward -> post-process for one photo.
#include "engine/pipeline.h"

#include <chrono>

#include "engine/buffer_pool.h"
#include "engine/preprocess.h"

namespace m2fp {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

ParseResult run(const M2FP& model, Image image, const ParseOptions& opt, const TensorSink* sink,
                Clock::time_point t_start, double decode_ms) {
  const ModelConfig& cfg = model.config();
  ParseResult r;
  r.timings.decode_ms = decode_ms;

  auto t0 = Clock::now();
  const bool dump = sink && *sink;
  Preprocessed pre = cfg.single_human
                         ? preprocess_single_person(image, cfg.single_human_size[0], cfg.single_human_size[1], dump)
                         : preprocess_multi_person(image, opt.short_edge, opt.max_size, dump);
  if (dump) (*sink)("input", pre.input);
  auto t1 = Clock::now();
  r.timings.preprocess_ms = ms_between(t0, t1);

  ForwardTimes ft;
  ForwardOutputs out = model.forward(pre.image, sink, &ft, opt.hooks);
  r.timings.backbone_ms = ft.backbone_ms;
  r.timings.pixel_decoder_ms = ft.pixel_decoder_ms;
  r.timings.transformer_decoder_ms = ft.transformer_decoder_ms;
  pre.image = Tensor();
  // No pool::trim before a large photo's post-processing: the forward's free ranges in the pool's
  // region serve its buffers, and pages given back would only be faulted in again (README, the
  // buffer pool paragraph, has the measurements).

  auto t2 = Clock::now();
  r.geometry.Hp = pre.Hp;
  r.geometry.Wp = pre.Wp;
  r.geometry.nh = pre.nh;
  r.geometry.nw = pre.nw;
  r.geometry.H0 = image.height;
  r.geometry.W0 = image.width;
  r.geometry.crop_box = pre.crop_box;
  PostprocessOptions po;
  po.emit_semantic = opt.emit_semantic;
  po.keep_scores = opt.keep_scores;
  r.parsing = postprocess(cfg, out, r.geometry, po, sink);
  auto t3 = Clock::now();
  r.timings.postprocess_ms = ms_between(t2, t3);
  r.timings.total_ms = ms_between(t_start, t3);
  r.image = std::move(image);
  return r;
}
}  // namespace

std::pair<int64_t, int64_t> network_input_size(const ModelConfig& cfg, int width, int height,
                                               const ParseOptions& opt) {
  auto up = [](int64_t v) { return (v + kSizeDivisibility - 1) / kSizeDivisibility * kSizeDivisibility; };
  if (cfg.single_human) {  // as preprocess_single_person
    const CenterPlan plan = single_person_plan(height, width, cfg.single_human_size[0], cfg.single_human_size[1]);
    return plan.padded ? std::pair<int64_t, int64_t>{up(plan.out_h), up(plan.out_w)}
                       : std::pair<int64_t, int64_t>{up(plan.new_h), up(plan.new_w)};
  }
  const auto [nh, nw] = multi_person_resize_shape(height, width, opt.short_edge, opt.max_size);  // as preprocess_multi_person
  if (nh < 1 || nw < 1)
    throw ImageError("image " + std::to_string(width) + "x" + std::to_string(height) + " is too elongated");
  return {up(nh), up(nw)};
}

ParseResult parse_image_bytes(const M2FP& model, const uint8_t* bytes, size_t size, const ParseOptions& opt,
                              const TensorSink* sink) {
  auto t0 = Clock::now();
  Image img = decode_image(bytes, size, opt.decode);
  return run(model, std::move(img), opt, sink, t0, ms_between(t0, Clock::now()));
}

ParseResult parse_image(const M2FP& model, Image image, const ParseOptions& opt, const TensorSink* sink) {
  return run(model, std::move(image), opt, sink, Clock::now(), 0.0);
}

}  // namespace m2fp
