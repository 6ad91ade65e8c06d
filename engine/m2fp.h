// engine/m2fp.h: the M2FP network: load a converted checkpoint, run the forward pass.
//
// The forward pass itself (backbone -> pixel decoder -> transformer decoder -> heads) reads top to
// bottom in engine/m2fp.cpp. Pre-processing is engine/preprocess.h, post-processing
// engine/postprocess.h; engine/pipeline.h strings them together for one photo.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/dnn.h"
#include "engine/tensor.h"
#include "model_loader/config.h"

namespace m2fp {

// Receives every named intermediate (docs/INTERMEDIATES.md) as it is computed. HWC tensors are
// channels-last; consumers that need PyTorch's [C, H, W] transpose them (see engine/io.h).
using TensorSink = std::function<void(const std::string& name, const Tensor& t)>;

struct ForwardOutputs {
  Tensor pred_logits;  // [Q, K+1]          class logits of the last prediction head
  Tensor pred_masks;   // [Q, Hp/4, Wp/4]  mask logits of the last prediction head
};

// Test and audit hooks into the forward pass.
struct ForwardHooks {
  // Called with the attention mask decoder layer `layer` is about to use: [Q, Ht * Wt], 1 = key
  // excluded (sigmoid(mask) < 0.5). It may inspect or replace it (parity tests substitute the
  // PyTorch reference's mask so that a rounding-level flip of one bit, a discontinuity of the
  // model itself, does not hide every later stage from the comparison).
  std::function<void(int layer, int64_t Ht, int64_t Wt, std::vector<uint8_t>& mask)> attention_mask;
};

struct ForwardTimes {
  double backbone_ms = 0, pixel_decoder_ms = 0, transformer_decoder_ms = 0;
};

// One row of the layer table: a layer (or a stage's blocks) with its output shape and multiply-adds.
struct LayerCost {
  std::string stage, name, out_shape;
  double macs = 0;
};

struct LoadOptions {
  dnn::Precision precision = dnn::Precision::F32;
  // Padded input sizes (Hp, Wp; multiples of 32) to prepare() for at load, so that the first parse
  // at such a size does not pay for creating oneDNN's primitives and reordering the weights; the
  // first of them also gets map_buffers() (unless warm_up), so that the first parse at that size
  // does not fault the buffer pool's pages in either.
  std::vector<std::pair<int64_t, int64_t>> prepare_sizes;
  // Also run one forward() on a blank image of each prepared size at load (warm_up()): the first parse
  // then also finds the buffer pool, oneDNN's scratchpads and the threads as a warm one does. Costs
  // about one parse's network time at load per size; for long-lived processes (the server).
  bool warm_up = false;
};

class M2FP {
 public:
  // Maps and validates the safetensors file, binds every tensor of the configuration's table
  // (model_loader/config.h: expected_tensors) by name, dtype and shape, each exactly once (errors
  // name the file and the key), folds BatchNorm into the convolutions and copies the weights it keeps.
  static std::unique_ptr<M2FP> load(const std::string& path, const LoadOptions& opt = {});
  ~M2FP();

  const ModelConfig& config() const;
  dnn::Precision precision() const;
  // The convolutions chosen at load to run Winograd (dnn::plan_winograd within
  // dnn::winograd_budget_bytes(), for the 640x1056 benchmark input's sizes; used in the default
  // WinogradMode::Planned). bf16 models plan too: a chosen layer runs fp32 Winograd (engine/dnn.h).
  const dnn::WinogradPlan& winograd_plan() const;
  int num_classes() const;    // K (CIHP 21, LIP 20); logits have K + 1 columns

  // image [Hp, Wp, 3] (Layout::HWC), normalised, Hp and Wp multiples of 32.
  // Safe to call from several threads at once.
  ForwardOutputs forward(const Tensor& image, const TensorSink* sink = nullptr,
                         ForwardTimes* times = nullptr, const ForwardHooks* hooks = nullptr) const;

  // Multiply-adds per layer for an Hp x Wp input, from the loaded layers in the order forward()
  // runs them (`m2fp inspect`, GFLOP/s figures). engine/inspect.cpp.
  std::vector<LayerCost> layer_costs(int64_t Hp, int64_t Wp) const;

  // Creates the oneDNN primitives of every convolution and linear layer for an Hp x Wp input and
  // reorders their weights into the layouts those primitives want (what the first forward() at that
  // size would otherwise do), without running the network. Throws std::invalid_argument for a size
  // forward() would refuse. Safe to call from several threads at once.
  void prepare(int64_t Hp, int64_t Wp) const;
  // prepare(), then the buffer pool's blocks (engine/buffer_pool.h) a forward() at this size asks
  // for, mapped and their pages faulted in: one forward() on a blank image with oneDNN's products
  // replaced by zeros (dnn::ZeroRun: no multiply-adds), so that the first forward at that size reuses
  // pages already in memory instead of faulting its ~400 MB of activations in (fp32, 640x1056: ~1 s
  // of system time on the development VM; bench/README.md, "Cold start"). Costs those faults and the
  // engine's own kernels (not oneDNN's) once, then makes the pool's free ranges below the most it
  // reached resident (pool::fill). Once per process is enough: the pool keeps the pages (another
  // size reuses them; mapping every size of many would only fill the pool's cache). Outputs of later
  // forwards are unchanged (tests/engine/test_prepare.cpp).
  // Does nothing more than prepare() where the pool keeps nothing (AddressSanitizer builds,
  // M2FP_BUFFER_POOL_MB=0). Safe to call from several threads at once.
  void map_buffers(int64_t Hp, int64_t Wp) const;
  // prepare(), then one forward() on a blank Hp x Wp image, whose only effect is on the process: the
  // buffer pool (engine/buffer_pool.h) holds the blocks a forward at that size asks for, their pages
  // mapped; the calling thread's scratchpads are grown; OpenMP's threads are started. Outputs of
  // later forwards are unchanged (tests/engine/test_prepare.cpp). Safe to call from several threads.
  void warm_up(int64_t Hp, int64_t Wp) const;

  struct Weights;

 private:
  M2FP();
  std::unique_ptr<Weights> w_;
};

}  // namespace m2fp
