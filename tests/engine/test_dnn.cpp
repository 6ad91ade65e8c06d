// tests/engine/test_dnn.cpp: engine/dnn's convolutions against an fp64 reference, Winograd among
// them: which layers oneDNN runs as Winograd F(4x4, 3x3) (every fp32 stride-1 undilated 3x3 of 128
// channels and more where oneDNN has the kernel, i.e. AVX-512; the direct algorithm everywhere
// else), that both algorithms
// agree with the reference with the fused residual and ReLU, and that a Winograd layer met at a
// second input size still has its weights (oneDNN cannot reorder Winograd weights back).
// ctest runs this suite three times: as is, with DNNL_MAX_CPU_ISA=AVX2 (dnn_direct_below_avx512),
// where oneDNN has no Winograd and every layer must take the direct path, and with M2FP_WINOGRAD=1
// (dnn_winograd_on), which must turn it on for every layer (by default only the layers
// dnn::plan_winograd chose run it).
#include <cstdlib>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "engine/dnn.h"
#include "engine/dnn_wino.h"
#include "test_util.h"

namespace m2fp {
namespace {

// Whether oneDNN runs on AVX-512 here (its Winograd kernel needs avx512_core).
bool onednn_has_avx512() { return std::string(dnn::onednn_isa()).rfind("avx512_core", 0) == 0; }

struct Layer {
  dnn::ConvParams p;
  std::vector<float> w, b;
};

Layer make_layer(const dnn::ConvParams& p, uint32_t seed) {
  Layer l{p, {}, {}};
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  l.w.resize((size_t)p.out_c * p.in_c * p.kh * p.kw);
  for (float& v : l.w) v = nd(g) / std::sqrt((float)(p.in_c * p.kh * p.kw));
  l.b.resize(p.out_c);
  for (float& v : l.b) v = 0.1f * nd(g);
  return l;
}

Tensor random_map(int64_t H, int64_t W, int64_t C, uint32_t seed) {
  Tensor t = Tensor::empty({H, W, C}, Layout::HWC);
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = nd(g);
  return t;
}

// relu?(conv(x) + bias + residual?) in fp64, channels-last.
std::vector<float> reference(const Layer& l, const Tensor& x, const Tensor* res, bool relu) {
  const dnn::ConvParams& p = l.p;
  const int64_t H = x.shape[0], W = x.shape[1], Ho = p.out_h(H), Wo = p.out_w(W);
  std::vector<float> y((size_t)(Ho * Wo * p.out_c));
  for (int64_t oy = 0; oy < Ho; ++oy)
    for (int64_t ox = 0; ox < Wo; ++ox)
      for (int o = 0; o < p.out_c; ++o) {
        double s = l.b[o];
        for (int ky = 0; ky < p.kh; ++ky)
          for (int kx = 0; kx < p.kw; ++kx) {
            const int64_t iy = oy * p.stride - p.pad + ky * p.dilation, ix = ox * p.stride - p.pad + kx * p.dilation;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            const float* xp = x.data() + (iy * W + ix) * p.in_c;
            for (int i = 0; i < p.in_c; ++i)
              s += (double)l.w[(((size_t)o * p.in_c + i) * p.kh + ky) * p.kw + kx] * xp[i];
          }
        const size_t at = (size_t)((oy * Wo + ox) * p.out_c + o);
        if (res) s += res->data()[at];
        y[at] = relu && s < 0 ? 0.f : (float)s;
      }
  return y;
}

struct Case {
  const char* name;
  dnn::ConvParams p;
  bool winograd;  // fp32 3x3 stride 1 dilation 1 (any channels: the 128-channel rule is bf16's)
};

const Case kCases[] = {
    {"3x3_128to128", {128, 128, 3, 3, 1, 1, 1}, true},
    {"3x3_128to144", {128, 144, 3, 3, 1, 1, 1}, true},
    {"3x3_64to64", {64, 64, 3, 3, 1, 1, 1}, true},  // the stem's and res2's: faster in fp32 too
    {"3x3_stride2", {64, 64, 3, 3, 2, 1, 1}, false},
    {"3x3_dilation2", {128, 128, 3, 3, 1, 2, 2}, false},
    {"1x1", {64, 128, 1, 1, 1, 0, 1}, false},
};

// Before any test here calls set_winograd: the default (planned: a layer no plan chose runs
// direct) and M2FP_WINOGRAD=1 (ctest dnn_winograd_on runs this suite with it), which turns it on for
// every layer.
TEST(Winograd, PlannedByDefaultOnWithTheEnvironmentVariable) {
  const char* env = std::getenv("M2FP_WINOGRAD");
  const std::string e = env ? env : "";
  const bool off = e.empty() || e == "auto" || e == "0" || e == "off";  // for this unplanned layer
  if (e.empty() || e == "auto")
    EXPECT_EQ(dnn::winograd_mode(), dnn::WinogradMode::Planned) << "planned by default; M2FP_WINOGRAD=" << e;
  if (e == "0" || e == "off") EXPECT_FALSE(dnn::winograd_enabled()) << "M2FP_WINOGRAD=" << e;
  if (e == "1" || e == "on") EXPECT_EQ(dnn::winograd_mode(), dnn::WinogradMode::On) << "M2FP_WINOGRAD=" << e;
  const Case& c = kCases[0];
  const Layer l = make_layer(c.p, 4);
  dnn::Conv2d conv;
  conv.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, c.name);
  const Tensor x = random_map(12, 20, c.p.in_c, 6);
  const Tensor y = dnn::to_hwc(conv(x));
  const std::string algo = conv.algorithm_for(12, 20);
  if (off || e == "1" || e == "on")
    EXPECT_EQ(algo, !off && onednn_has_avx512() ? "winograd" : "direct") << "M2FP_WINOGRAD=" << e;
  const std::vector<float> ref = reference(l, x, nullptr, false);
  EXPECT_LE(test::compare(y.data(), ref.data(), (int64_t)ref.size()).rel_l2, algo == "winograd" ? 1e-5 : 2e-6);
}

// The default mode's plan: the 3x3 layers that can run Winograd, ranked by output area (gain per MB),
// admitted while what they add stays within the budget; the chosen run Winograd, the rest direct.
TEST(Winograd, ThePlanTakesTheMostGainPerMBWithinTheBudget) {
  const dnn::ConvParams p256{256, 256, 3, 3, 1, 1, 1}, p64{64, 64, 3, 3, 1, 1, 1}, p1x1{256, 256, 1, 1, 1, 0, 1};
  const Layer l256 = make_layer(p256, 21), l64 = make_layer(p64, 22), l1x1 = make_layer(p1x1, 23);
  dnn::Conv2d small_map, big_map, narrow, pointwise, unreferenced;
  small_map.init(p256, l256.w.data(), l256.b.data(), dnn::Precision::F32, "net.res.0.conv2");
  big_map.init(p256, l256.w.data(), l256.b.data(), dnn::Precision::F32, "net.res.1.conv2");
  narrow.init(p64, l64.w.data(), l64.b.data(), dnn::Precision::F32, "narrow");
  pointwise.init(p1x1, l1x1.w.data(), l1x1.b.data(), dnn::Precision::F32, "pointwise");
  unreferenced.init(p256, l256.w.data(), l256.b.data(), dnn::Precision::F32, "unreferenced");
  small_map.set_winograd_reference(12, 20);
  big_map.set_winograd_reference(24, 36);
  narrow.set_winograd_reference(8, 10);  // the smallest map: ranked last
  pointwise.set_winograd_reference(48, 64);
  const std::vector<const dnn::Conv2d*> convs{&small_map, &big_map, &narrow, &pointwise, &unreferenced};

  const dnn::WinogradPlan all = dnn::plan_winograd(convs, size_t(1) << 30);
  std::printf("  %s\n", all.summary().c_str());
  ASSERT_EQ(all.layers.size(), convs.size());
  EXPECT_FALSE(all.layers[3].chosen);
  EXPECT_FALSE(all.layers[4].chosen);
  EXPECT_EQ(all.layers[4].why, "no Winograd reference size");
  if (!onednn_has_avx512()) {  // no kernel: nothing chosen, every layer direct
    EXPECT_EQ(all.chosen, 0);
    EXPECT_EQ(all.used_bytes, 0u);
    EXPECT_NE(all.summary().find("no Winograd kernel"), std::string::npos) << all.summary();
  } else {
    EXPECT_EQ(all.chosen, 3);
    EXPECT_TRUE(all.layers[2].chosen) << "fp32 at 64 channels: " << all.layers[2].why;
    for (int i : {0, 1}) {
      const dnn::WinogradLayer& w = all.layers[i];
      EXPECT_TRUE(w.chosen) << w.name << ": " << w.why;
      EXPECT_GE(w.winograd_bytes, 4 * w.direct_bytes) << "6x6 per 3x3";
      EXPECT_EQ(w.direct_bytes, size_t(256) * 256 * 9 * 4);
    }
    EXPECT_EQ(all.layers[1].out_pixels, 24 * 36);
    EXPECT_NE(all.summary().find("2 x net.res.*.conv2"), std::string::npos) << all.summary();
    // A budget for one: the larger map's layer (more multiply-adds per weight), though listed second;
    // the narrow layer's map is the smallest, so it comes last and finds no room.
    const dnn::WinogradLayer& b = all.layers[1];
    const size_t one = b.winograd_bytes - b.direct_bytes + b.scratchpad_bytes + b.buffer_bytes;
    const dnn::WinogradPlan plan = dnn::plan_winograd(convs, one);
    EXPECT_EQ(plan.chosen, 1);
    EXPECT_TRUE(plan.layers[1].chosen);
    EXPECT_FALSE(plan.layers[0].chosen);
    EXPECT_NE(plan.layers[0].why.find("budget"), std::string::npos) << plan.layers[0].why;
    EXPECT_FALSE(plan.layers[2].chosen);
    EXPECT_EQ(plan.used_bytes, one);
    // The planned mode runs the chosen one as Winograd and the other direct; both match fp64.
    dnn::set_winograd_mode(dnn::WinogradMode::Planned);
    for (const dnn::Conv2d* c : {&small_map, &big_map}) {
      const Tensor x = random_map(24, 36, 256, 24);
      const Tensor y = dnn::to_hwc((*c)(x, nullptr, true));
      EXPECT_EQ(c->algorithm_for(24, 36), c == &big_map ? "winograd" : "direct");
      const std::vector<float> ref = reference(l256, x, nullptr, true);
      EXPECT_LE(test::compare(y.data(), ref.data(), (int64_t)ref.size()).rel_l2, 1e-5);
    }
  }
  const dnn::WinogradPlan none = dnn::plan_winograd(convs, 0);
  EXPECT_EQ(none.chosen, 0);
  EXPECT_EQ(none.used_bytes, 0u);
}

TEST(Winograd, EachLayerTakesTheExpectedAlgorithmAndMatchesFp64) {
  dnn::set_winograd(true);  // off by default (M2FP_WINOGRAD=1 turns it on)
  std::printf("oneDNN %s on %s\n", dnn::onednn_version().c_str(), dnn::onednn_isa());
  for (const Case& c : kCases) {
    const Layer l = make_layer(c.p, 7);
    dnn::Conv2d conv;
    conv.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, c.name);
    const int64_t H = 21, W = 26;  // not multiples of the 4x4 Winograd tile
    const Tensor x = random_map(H, W, c.p.in_c, 11);
    const Tensor res = random_map(c.p.out_h(H), c.p.out_w(W), c.p.out_c, 13);
    const Tensor y = dnn::to_hwc(conv(x, &res, /*relu=*/true));
    const std::string algo = conv.algorithm_for(H, W);
    const bool want_wino = c.winograd && onednn_has_avx512();
    EXPECT_EQ(algo, want_wino ? "winograd" : "direct") << c.name;
    const std::vector<float> ref = reference(l, x, &res, true);
    const test::Diff d = test::compare(y.data(), ref.data(), (int64_t)ref.size());
    std::printf("  %-14s %-8s rel L2 %.2e, max |diff| %.2e\n", c.name, algo.c_str(), d.rel_l2, d.max_abs);
    EXPECT_LE(d.rel_l2, algo == "winograd" ? 1e-5 : 2e-6) << c.name;
  }
}

TEST(Winograd, SecondInputSizeReusesThePlainWeights) {
  dnn::set_winograd(true);
  const Case& c = kCases[0];
  const Layer l = make_layer(c.p, 3);
  dnn::Conv2d conv;
  conv.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, c.name);
  for (int64_t H : {16, 37, 16}) {  // back to the first size: its cached primitive
    const int64_t W = H + 5;
    const Tensor x = random_map(H, W, c.p.in_c, (uint32_t)H);
    const Tensor y = dnn::to_hwc(conv(x));
    const std::vector<float> ref = reference(l, x, nullptr, false);
    const test::Diff d = test::compare(y.data(), ref.data(), (int64_t)ref.size());
    std::printf("  %lldx%lld %-8s rel L2 %.2e\n", (long long)H, (long long)W, conv.algorithm_for(H, W).c_str(),
                d.rel_l2);
    EXPECT_LE(d.rel_l2, 1e-5) << H << "x" << W;
  }
}

// With a WeightSource, a Winograd layer keeps only its Winograd weights (4x the plain ones) and
// writes the plain ones again from the source when an input size runs direct; the direct result
// is the same as that of a layer that kept its plain copy. A source that fails fails the call.
TEST(Winograd, ALayerWithASourceDropsItsPlainCopyAndAsksAgain) {
  if (!onednn_has_avx512()) GTEST_SKIP() << "no Winograd below AVX-512";
  const Case& c = kCases[0];
  const Layer l = make_layer(c.p, 12);
  int asked = 0;
  const dnn::Conv2d::WeightSource source = [&](float* dst) {
    ++asked;
    std::copy(l.w.begin(), l.w.end(), dst);
  };
  dnn::set_winograd(true);
  dnn::Conv2d kept, sourced;
  kept.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, "kept");
  sourced.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, "sourced", source);
  kept.prepare(16, 24);
  sourced.prepare(16, 24);
  ASSERT_EQ(sourced.algorithm_for(16, 24), "winograd");
  const size_t plain = l.w.size() * sizeof(float);
  EXPECT_EQ(kept.weight_bytes() - sourced.weight_bytes(), plain) << "the plain copy should be gone";
  EXPECT_GE(sourced.weight_bytes(), 4 * plain) << "the Winograd weights: 6x6 per 3x3";
  EXPECT_EQ(asked, 0);

  dnn::set_winograd(false);  // the next size runs direct: the source writes the plain weights again
  const int64_t rederived = dnn::weights_rederived();
  const Tensor x = random_map(13, 19, c.p.in_c, 21);
  const Tensor a = dnn::to_hwc(kept(x, nullptr, true)), b = dnn::to_hwc(sourced(x, nullptr, true));
  dnn::set_winograd(true);
  EXPECT_EQ(sourced.algorithm_for(13, 19), "direct");
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(dnn::weights_rederived(), rederived + 1);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.bytes), 0) << "the same direct result as with the kept copy";
  const std::vector<float> ref = reference(l, x, nullptr, true);
  EXPECT_LE(test::compare(b.data(), ref.data(), (int64_t)ref.size()).rel_l2, 2e-6);
  // The Winograd size again: its cached primitive and weights, the source not asked.
  const Tensor x2 = random_map(16, 24, c.p.in_c, 22);
  const Tensor y2 = dnn::to_hwc(sourced(x2));
  EXPECT_EQ(asked, 1);
  const std::vector<float> ref2 = reference(l, x2, nullptr, false);
  EXPECT_LE(test::compare(y2.data(), ref2.data(), (int64_t)ref2.size()).rel_l2, 1e-5);

  // A source that cannot give the weights (the model file changed, say): the call throws its error.
  dnn::Conv2d failing;
  failing.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, "failing",
               [](float*) { throw std::runtime_error("model file changed"); });
  failing.prepare(16, 24);
  ASSERT_EQ(failing.algorithm_for(16, 24), "winograd");
  dnn::set_winograd(false);
  EXPECT_THROW(failing.prepare(13, 19), std::runtime_error);
  dnn::set_winograd(true);
}

// The fp32 layer (weights l) on x with the fused ReLU, run direct (Winograd off) and then by a layer
// named `name` with Winograd on: the second must take Winograd and match the first within 1e-5 of
// relative L2, whole and in the rows where the strips' zero padding is or two strips meet (0, 15, 16,
// the last). Returns the Winograd output (channels-last); empty when the shapes differ (a failure).
Tensor strips_against_direct(const dnn::ConvParams& p, const Layer& l, const Tensor& x, const char* name) {
  const int64_t H = x.shape[0], W = x.shape[1];
  dnn::set_winograd(false);
  dnn::Conv2d direct;
  direct.init(p, l.w.data(), l.b.data(), dnn::Precision::F32, "direct");
  const Tensor a = dnn::to_hwc(direct(x, nullptr, true));
  dnn::set_winograd(true);
  dnn::Conv2d strips;
  strips.init(p, l.w.data(), l.b.data(), dnn::Precision::F32, name);
  Tensor b = dnn::to_hwc(strips(x, nullptr, true));
  EXPECT_EQ(direct.algorithm_for(H, W), "direct");
  EXPECT_EQ(strips.algorithm_for(H, W), "winograd");
  if (a.shape != b.shape) {
    ADD_FAILURE() << name << ": the Winograd output's shape differs from the direct one's";
    return Tensor();
  }
  const test::Diff d = test::compare(b.data(), a.data(), a.numel());
  std::printf("  %s against direct: rel L2 %.2e, max |diff| %.2e\n", name, d.rel_l2, d.max_abs);
  EXPECT_LE(d.rel_l2, 1e-5);
  const int64_t row = W * p.out_c;
  for (int64_t r : {int64_t(0), int64_t(15), int64_t(16), H - 1}) {
    const test::Diff dr = test::compare(b.data() + r * row, a.data() + r * row, row);
    EXPECT_LE(dr.rel_l2, 1e-5) << name << ", row " << r;
  }
  return b;
}

// The layer alone in a plan with room for anything, weighed at H x W: it must be chosen, in strips of 16
// rows. Returns what the plan says of it.
dnn::WinogradLayer planned_in_strips(const dnn::ConvParams& p, const Layer& l, dnn::Precision prec, int64_t H,
                                     int64_t W) {
  dnn::Conv2d planned;
  planned.init(p, l.w.data(), l.b.data(), prec, "planned");
  planned.set_winograd_reference(H, W);
  const dnn::WinogradPlan plan = dnn::plan_winograd({&planned}, size_t(1) << 30);
  if (plan.layers.size() != 1u) {
    ADD_FAILURE() << "the plan of one layer has " << plan.layers.size();
    return {};
  }
  EXPECT_TRUE(plan.layers[0].chosen) << plan.layers[0].why;
  EXPECT_EQ(plan.layers[0].strip_rows, 16);
  return plan.layers[0];
}

// A layer whose Winograd scratchpad for the whole map would pass the cap (the pixel decoder's layer_1,
// 256 channels at 1/4 scale: ~200 MB) runs in strips of rows: against the direct algorithm at a
// height that leaves a partial last strip, with the fused ReLU, read from a plain HWC input.
TEST(Winograd, AWideLayerRunsInStripsAndMatchesDirect) {
  if (!onednn_has_avx512()) GTEST_SKIP() << "no Winograd below AVX-512";
  const dnn::ConvParams p{256, 256, 3, 3, 1, 1, 1};
  const Layer l = make_layer(p, 14);
  const int64_t H = 150, W = 264;  // 150 = 9 strips of 16 rows + 6
  const Tensor x = random_map(H, W, p.in_c, 15);
  const Tensor b = strips_against_direct(p, l, x, "strips");
  if (b.numel() == 0) return;
  // A bf16 layer runs the same fp32 Winograd, its strips shared out over the threads (one strip per
  // thread at a time): the fp32 input read as it is, the fp32 layer's values; under a ZeroRun of the
  // calling thread every thread writes zeros.
  if (!dnn::bf16_available()) return;
  dnn::Conv2d bf16;
  bf16.init(p, l.w.data(), l.b.data(), dnn::Precision::BF16, "bf16 strips");
  const Tensor c = bf16(x, nullptr, true, /*hwc_out=*/true);
  EXPECT_EQ(bf16.algorithm_for(H, W), "winograd");
  ASSERT_EQ(c.shape, b.shape);
  const test::Diff dc = test::compare(c.data(), b.data(), b.numel());
  std::printf("  bf16 layer's strips against the fp32 layer's: rel L2 %.2e (%s)\n", dc.rel_l2,
              std::memcmp(c.data(), b.data(), b.bytes) ? "not bit-identical" : "bit-identical");
  EXPECT_LE(dc.rel_l2, 1e-6);
  {
    dnn::ZeroRun zero;
    const Tensor z = bf16(x, nullptr, true, /*hwc_out=*/true);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < z.numel(); ++i) nonzero += z.data()[i] != 0.f;
    EXPECT_EQ(nonzero, 0) << "a strip computed under a ZeroRun";
  }
  // The plan weighs it in strips within the caps (one primitive's scratchpad), counting a scratchpad
  // per thread.
  planned_in_strips(p, l, dnn::Precision::BF16, H, W);
}

// A layer whose input converted for the whole-map kernel would pass 16 MB (the stem's conv2: 64
// channels at 320x528, 43 MB, which the plan would count against its budget) runs in strips too,
// even with a small scratchpad: against the direct algorithm, its first and last rows on their own;
// the plan weighs it with its strips' buffers.
TEST(Winograd, ALargeInputRunsInStripsAndMatchesDirect) {
  if (!onednn_has_avx512()) GTEST_SKIP() << "no Winograd below AVX-512";
  const dnn::ConvParams p{64, 64, 3, 3, 1, 1, 1};
  const Layer l = make_layer(p, 31);
  const int64_t H = 170, W = 400;  // 64 x 170 x 400 floats = 17.4 MB; 170 = 10 strips of 16 + 10
  strips_against_direct(p, l, random_map(H, W, p.in_c, 32), "narrow strips");
  const dnn::WinogradLayer planned = planned_in_strips(p, l, dnn::Precision::F32, H, W);
  EXPECT_LT(planned.buffer_bytes, size_t(8) << 20) << "a strip's buffers, not the whole map's";
}

// oneDNN's Winograd weight layout depends on the input size (for a 256-channel 3x3 layer it differs
// between 40x66 and 40x60 or 48x80, 2.6.3 on AVX-512): held to the 40x66 one, the layer runs the
// sizes wanting another layout direct instead of keeping a second 9 MB copy.
TEST(Winograd, OneWeightLayoutPerLayerWithAReferenceSize) {
  if (!onednn_has_avx512()) GTEST_SKIP() << "no Winograd below AVX-512";
  dnn::set_winograd(true);
  const dnn::ConvParams p{256, 256, 3, 3, 1, 1, 1};
  const Layer l = make_layer(p, 8);
  dnn::Conv2d held, free;
  held.init(p, l.w.data(), l.b.data(), dnn::Precision::F32, "held");
  free.init(p, l.w.data(), l.b.data(), dnn::Precision::F32, "free");
  held.set_winograd_reference(40, 66);
  int held_direct = 0;
  for (auto [H, W] : {std::pair<int64_t, int64_t>{40, 66}, {40, 60}, {48, 80}, {32, 48}}) {
    held.prepare(H, W, true, true);
    free.prepare(H, W, true, true);
    EXPECT_EQ(free.algorithm_for(H, W), "winograd") << H << "x" << W;
    held_direct += held.algorithm_for(H, W) == "direct";
    if (H == 40 && W == 66) EXPECT_EQ(held.algorithm_for(H, W), "winograd");
  }
  EXPECT_GE(held_direct, 1) << "every size had the reference's layout: the test no longer shows the hold";
}

// engine/dnn_wino.h writes a layer's Winograd weights itself (WeightStore, at load): byte for byte
// what oneDNN's own reorder writes, for every Winograd weight layout the network meets (res3 and
// res4's 3x3 layers at the benchmark size and at sizes with other blockings, the pixel decoder's
// layer_1 in strips, res5's, the stem's 64 -> 128, channels oneDNN pads), from weights with exact and
// negative zeros, tiny and huge values among them.
TEST(Winograd, OwnWeightTransformGivesOneDNNsBytes) {
  if (!onednn_has_avx512()) GTEST_SKIP() << "no Winograd below AVX-512";
  struct Shape {
    int ic, oc;
    int64_t H, W, pad_h;
  } shapes[] = {{128, 128, 80, 132, 1}, {256, 256, 40, 66, 1}, {256, 256, 40, 60, 1}, {256, 256, 48, 80, 1},
                {256, 256, 32, 48, 1},  {256, 256, 18, 264, 0}, {512, 512, 20, 33, 1}, {64, 128, 320, 528, 1},
                {128, 256, 24, 40, 1},  {136, 264, 20, 24, 1}, {40, 72, 16, 20, 1},  {64, 64, 160, 264, 1},
                {64, 64, 18, 528, 0},   {64, 128, 18, 528, 0}};
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  int compared = 0;
  for (const Shape& sh : shapes) {
    SCOPED_TRACE(std::to_string(sh.ic) + "->" + std::to_string(sh.oc) + " at " + std::to_string(sh.H) + "x" +
                 std::to_string(sh.W));
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    const int64_t Ho = sh.H + 2 * sh.pad_h - 2;
    dnnl::memory::desc src({1, sh.ic, sh.H, sh.W}, dt::f32, tag::any), wd({sh.oc, sh.ic, 3, 3}, dt::f32, tag::any),
        dst({1, sh.oc, Ho, sh.W}, dt::f32, tag::any);
    dnnl::memory::desc want;
    try {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, src,
                                        wd, dst, {1, 1}, {0, 0}, {sh.pad_h, 1}, {sh.pad_h, 1});
      want = dnnl::convolution_forward::primitive_desc(d, eng).weights_desc();
    } catch (const dnnl::error&) {
      continue;  // no Winograd kernel for this shape
    }
    ASSERT_EQ(want.data.format_kind, dnnl_format_kind_wino);
    const dnnl_wino_desc_t& wdesc = want.data.format_desc.wino_desc;
    const dnn::WinoWeightLayout L{wdesc.r,        wdesc.alpha,    wdesc.ic,        wdesc.oc,       wdesc.ic_block,
                                  wdesc.oc_block, wdesc.ic2_block, wdesc.oc2_block, want.get_size()};
    if (wdesc.wino_format != dnnl_wino_wei_OBaaIBOIio) continue;  // another kernel's layout: oneDNN reorders it
    ASSERT_TRUE(dnn::wino_layout_supported(L));
    std::vector<float> w((size_t)sh.oc * sh.ic * 9);
    std::mt19937 g(11 + sh.ic + sh.oc);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (size_t i = 0; i < w.size(); ++i) {
      const uint32_t r = g() % 64;
      w[i] = r == 0 ? 0.f : r == 1 ? -0.f : r == 2 ? nd(g) * 1e-30f : r == 3 ? nd(g) * 1e30f : nd(g);
    }
    const dnnl::memory::desc plain({sh.oc, sh.ic, 3, 3}, dt::f32, tag::oihw);
    std::vector<uint8_t> theirs(want.get_size()), ours(want.get_size(), 0xAB);
    dnnl::memory a(plain, eng, w.data()), b(want, eng, theirs.data());
    dnnl::reorder(a, b).execute(strm, a, b);
    strm.wait();
    dnn::wino_weights_from_oihw(w.data(), sh.oc, sh.ic, L, reinterpret_cast<float*>(ours.data()));
    size_t first_diff = ours.size();
    for (size_t i = 0; i < ours.size() && first_diff == ours.size(); ++i)
      if (ours[i] != theirs[i]) first_diff = i;
    EXPECT_EQ(first_diff, ours.size()) << "first differing byte of " << ours.size() << " (blocks ic " << L.ic_block
                                       << " oc " << L.oc_block << " ic2 " << L.ic2_block << " oc2 " << L.oc2_block << ")";
    ++compared;
    std::printf("%d->%d at %lldx%lld: %zu bytes the same (blocks ic %d oc %d ic2 %d oc2 %d)\n", sh.ic, sh.oc,
                (long long)sh.H, (long long)sh.W, ours.size(), L.ic_block, L.oc_block, L.ic2_block, L.oc2_block);
  }
  EXPECT_GE(compared, 6) << "oneDNN gave Winograd for fewer shapes than the network has";
  dnn::WinoWeightLayout bad{3, 4, 16, 16, 16, 16, 1, 1, 16 * 16 * 16 * 4};  // F(2x2, 3x3): not this layout
  EXPECT_FALSE(dnn::wino_layout_supported(bad));
  std::vector<float> w9(16 * 16 * 9), out(16 * 16 * 16);
  EXPECT_THROW(dnn::wino_weights_from_oihw(w9.data(), 16, 16, bad, out.data()), std::invalid_argument);
}

TEST(Winograd, OffKeepsTheDirectAlgorithm) {
  const Case& c = kCases[0];
  const Layer l = make_layer(c.p, 5);
  dnn::set_winograd(false);
  dnn::Conv2d conv;
  conv.init(c.p, l.w.data(), l.b.data(), dnn::Precision::F32, c.name);
  const Tensor x = random_map(12, 20, c.p.in_c, 1);
  const Tensor y = dnn::to_hwc(conv(x, nullptr, true));
  dnn::set_winograd(true);
  EXPECT_EQ(conv.algorithm_for(12, 20), "direct");
  const std::vector<float> ref = reference(l, x, nullptr, true);
  EXPECT_LE(test::compare(y.data(), ref.data(), (int64_t)ref.size()).rel_l2, 2e-6);
}

// M2FP_WINOGRAD=1 (set_winograd(true)) runs a bf16 layer of 128 channels as fp32 Winograd too (the
// plan weighs bf16 layers by their output area: tests/engine/test_dnn_bf16.cpp): its fp32 input read
// as it is, within fp32 Winograd's error of fp64; off, bf16 direct (its input rounded to bf16).
TEST(Winograd, Bf16LayersFollowTheMode) {
  if (!dnn::bf16_available()) GTEST_SKIP() << "oneDNN has no bf16 convolutions on this CPU";
  const Case& c = kCases[0];
  const Layer l = make_layer(c.p, 9);
  const Tensor x = random_map(12, 20, c.p.in_c, 2);
  const std::vector<float> ref = reference(l, x, nullptr, false);
  for (const bool on : {true, false}) {
    dnn::set_winograd(on);
    dnn::Conv2d conv;
    conv.init(c.p, l.w.data(), l.b.data(), dnn::Precision::BF16, c.name);
    const Tensor y = dnn::to_hwc(conv(x));
    EXPECT_EQ(conv.algorithm_for(12, 20), on ? "winograd" : "direct");
    EXPECT_LE(test::compare(y.data(), ref.data(), (int64_t)ref.size()).rel_l2, on ? 1e-5 : 1e-2);  // bf16: ~3e-3
  }
}

TEST(ConvPeakProbe, GivesAPlausibleRate) {
  std::string shape;
  const double g = dnn::probe_conv_gflops(dnn::Precision::F32, 1, &shape);
  std::printf("fp32 direct convolution: %.1f GFLOP/s (%s)\n", g, shape.c_str());
  EXPECT_GT(g, 0.1);  // any CPU does more than 0.1 GFLOP/s; 0 means no run was timed
  EXPECT_LT(g, 1e5);
  EXPECT_FALSE(shape.empty());
}

}  // namespace
}  // namespace m2fp
