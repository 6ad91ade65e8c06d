// tests/engine/test_prepare.cpp: M2FP::prepare (LoadOptions::prepare_sizes) creates at load every
// convolution and linear-layer primitive the first forward() at that size needs, so that forward
// creates none, and the outputs are byte-identical to a model loaded without it (same primitives,
// same weight layouts). Synthetic CIHP checkpoint (random weights, ctest fixture_synthetic_cihp).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/buffer_pool.h"
#include "engine/dnn.h"
#include "engine/m2fp.h"

namespace m2fp {
namespace {

std::string cihp_model() { return std::string(M2FP_TESTDATA) + "/cihp_synth.safetensors"; }

Tensor test_image(int64_t H, int64_t W) {
  Tensor t = Tensor::empty({H, W, 3}, Layout::HWC);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = (float)((i * 7919) % 255) / 64.f - 2.f;
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape == b.shape && std::memcmp(a.data(), b.data(), (size_t)a.numel() * sizeof(float)) == 0;
}

TEST(Prepare, FirstForwardCreatesNoPrimitiveAndGivesTheSameOutputs) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  const int64_t Hp = 96, Wp = 160;  // 2048 tokens and more at stride 8..32 would need a bigger photo
  LoadOptions lo;
  lo.prepare_sizes = {{Hp, Wp}};
  const int64_t before_load = dnn::layer_primitives_created();
  std::unique_ptr<M2FP> prepared = M2FP::load(cihp_model(), lo);
  const int64_t after_load = dnn::layer_primitives_created();
  // 112 convolutions + 30 encoder and 85 decoder linear layers at this size (one FFN row block)
  EXPECT_EQ(after_load - before_load, 227) << "the load should have created every primitive";
  const Tensor img = test_image(Hp, Wp);
  const ForwardOutputs a = prepared->forward(img);
  EXPECT_EQ(dnn::layer_primitives_created(), after_load) << "forward() created primitives prepare() had not";

  std::unique_ptr<M2FP> plain = M2FP::load(cihp_model());
  const ForwardOutputs b = plain->forward(img);
  EXPECT_TRUE(same_bytes(a.pred_logits, b.pred_logits));
  EXPECT_TRUE(same_bytes(a.pred_masks, b.pred_masks));
}

// The load maps and faults in the buffer pool's blocks for the first prepared size (M2FP::map_buffers:
// a forward on a blank image with oneDNN's products replaced by zeros, dnn::ZeroRun): the first
// forward at that size then maps no new pool memory (pool misses), where a model loaded without it
// does; and its outputs are those of the model loaded without it.
TEST(Prepare, FirstForwardMapsNoNewPoolBlock) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  if (pool::stats().limit_bytes == 0) GTEST_SKIP() << "M2FP_BUFFER_POOL_MB=0: the pool keeps nothing";
  const int64_t Hp = 192, Wp = 320;
  const Tensor img = test_image(Hp, Wp);

  pool::trim();  // nothing cached from an earlier test
  std::unique_ptr<M2FP> plain = M2FP::load(cihp_model());
  size_t misses = pool::stats().misses;
  const ForwardOutputs b = plain->forward(img);
  const size_t plain_misses = pool::stats().misses - misses;
  EXPECT_GT(plain_misses, 0u) << "without prepare, the first forward should map new pool memory";
  plain.reset();

  pool::trim();
  LoadOptions lo;
  lo.prepare_sizes = {{Hp, Wp}};
  std::unique_ptr<M2FP> prepared = M2FP::load(cihp_model(), lo);
  misses = pool::stats().misses;
  const ForwardOutputs a = prepared->forward(img);
  EXPECT_EQ(pool::stats().misses - misses, 0u) << "the first forward after prepare() mapped new pool blocks ("
                                                << plain_misses << " without prepare)";
  EXPECT_TRUE(same_bytes(a.pred_logits, b.pred_logits));
  EXPECT_TRUE(same_bytes(a.pred_masks, b.pred_masks));
}

// Under a ZeroRun the layers write zeros instead of running oneDNN (on this thread only); afterwards
// they compute again, with the same outputs as before.
TEST(Prepare, ZeroRunWritesZerosOnItsThreadOnly) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  std::unique_ptr<M2FP> m = M2FP::load(cihp_model());
  const Tensor img = test_image(64, 96);
  const ForwardOutputs before = m->forward(img);
  EXPECT_FALSE(dnn::zero_run_active());
  {
    dnn::ZeroRun zeros;
    EXPECT_TRUE(dnn::zero_run_active());
    const ForwardOutputs z = m->forward(img);
    // the class head is a linear layer: its output is all zeros
    bool all_zero = true;
    for (int64_t i = 0; i < z.pred_logits.numel(); ++i) all_zero = all_zero && z.pred_logits.data()[i] == 0.f;
    EXPECT_TRUE(all_zero);
  }
  EXPECT_FALSE(dnn::zero_run_active());
  const ForwardOutputs after = m->forward(img);
  EXPECT_TRUE(same_bytes(before.pred_logits, after.pred_logits));
  EXPECT_TRUE(same_bytes(before.pred_masks, after.pred_masks));
}

// warm_up runs one forward on a blank image at load (the buffer pool, scratchpads and threads warmed):
// the later forwards on a real image are byte-identical to those of a model loaded without it, and
// the prepared layers run in parallel over the OpenMP threads create the same primitives.
TEST(Prepare, WarmUpGivesTheSameOutputs) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  const int64_t Hp = 96, Wp = 128;
  LoadOptions lo;
  lo.prepare_sizes = {{Hp, Wp}};
  lo.warm_up = true;
  std::unique_ptr<M2FP> warmed = M2FP::load(cihp_model(), lo);
  const int64_t after_load = dnn::layer_primitives_created();
  const Tensor img = test_image(Hp, Wp);
  const ForwardOutputs a = warmed->forward(img);
  EXPECT_EQ(dnn::layer_primitives_created(), after_load) << "forward() created primitives the load had not";
  const ForwardOutputs a2 = warmed->forward(img);  // and again: nothing left over from the blank image

  std::unique_ptr<M2FP> plain = M2FP::load(cihp_model());
  const ForwardOutputs b = plain->forward(img);
  EXPECT_TRUE(same_bytes(a.pred_logits, b.pred_logits));
  EXPECT_TRUE(same_bytes(a.pred_masks, b.pred_masks));
  EXPECT_TRUE(same_bytes(a2.pred_logits, b.pred_logits));
  EXPECT_TRUE(same_bytes(a2.pred_masks, b.pred_masks));
}

// A convolution that runs Winograd keeps only its Winograd weights (M2FP::load gives each layer a
// source that reads the model file again, dnn::Conv2d::WeightSource): prepared at the 640x1056
// reference size, res4's 3x3 layers drop their plain weights; at 384x640 (res4 at 24x40; oneDNN
// 2.6.3 on AVX-512) their Winograd kernel wants another weight layout, so they run direct with the
// plain weights written again from the file, and the outputs are byte-identical to those of a model
// that never dropped them.
TEST(Prepare, WinogradLayersReadTheirPlainWeightsAgainFromTheFile) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  dnn::set_winograd(true);  // off by default; this test is about Winograd layers
  struct Restore {
    ~Restore() { dnn::set_winograd(false); }
  } restore;
  LoadOptions lo;
  lo.prepare_sizes = {{640, 1056}};
  std::unique_ptr<M2FP> prepared = M2FP::load(cihp_model(), lo);
  const int64_t before = dnn::weights_rederived();
  const Tensor img = test_image(384, 640);
  const ForwardOutputs a = prepared->forward(img);
  const bool avx512 = std::string(dnn::onednn_isa()).rfind("avx512_core", 0) == 0;
  if (avx512) EXPECT_GT(dnn::weights_rederived(), before) << "no layer read its weights again: the test shows nothing";
  else EXPECT_EQ(dnn::weights_rederived(), before) << "no Winograd below AVX-512: nothing to read again";

  std::unique_ptr<M2FP> plain = M2FP::load(cihp_model());
  const ForwardOutputs b = plain->forward(img);
  EXPECT_TRUE(same_bytes(a.pred_logits, b.pred_logits));
  EXPECT_TRUE(same_bytes(a.pred_masks, b.pred_masks));
}

TEST(Prepare, WarmUpRefusesSizesForwardRefuses) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  std::unique_ptr<M2FP> m = M2FP::load(cihp_model());
  EXPECT_THROW(m->warm_up(96, 100), std::invalid_argument);
  EXPECT_THROW(m->warm_up(0, 96), std::invalid_argument);
}

TEST(Prepare, RefusesSizesForwardRefuses) {
  if (!std::filesystem::exists(cihp_model())) GTEST_SKIP() << cihp_model() << " missing (ctest fixture)";
  LoadOptions lo;
  lo.prepare_sizes = {{100, 160}};
  EXPECT_THROW(M2FP::load(cihp_model(), lo), std::invalid_argument);
}

}  // namespace
}  // namespace m2fp
