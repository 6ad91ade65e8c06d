// tests/engine/test_dnn_bf16.cpp: engine/dnn's bf16 paths (issue 14): a bf16 convolution writes bf16
// in oneDNN's layout, which the next bf16 convolution (and its fused residual sum and ReLU) and the
// max-pool read as they are; hwc_out and to_hwc() give fp32 channels-last; the feed-forward block
// keeps its hidden layer in bf16; the fp32 inputs of bf16 layers are rounded to nearest even.
// Against an fp64 reference of the same arithmetic. Skipped where oneDNN has no bf16 (below
// AVX-512); M2FP_WINOGRAD and DNNL_MAX_CPU_ISA=AVX512_CORE (bf16 emulated) leave them valid.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/dnn.h"
#include "engine/m2fp.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace m2fp {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = scale * nd(g);
  return v;
}

Tensor random_map(int64_t H, int64_t W, int64_t C, uint32_t seed) {
  Tensor t = Tensor::empty({H, W, C}, Layout::HWC);
  const std::vector<float> v = random_values((size_t)t.numel(), seed);
  std::memcpy(t.data(), v.data(), v.size() * sizeof(float));
  return t;
}

// Whether a feature map is stored in bf16 (2 bytes a value; oneDNN's blocked layouts may pad).
bool stored_as_bf16(const Tensor& t) { return t.layout == Layout::Opaque && t.bytes < (size_t)t.numel() * 4; }

struct ConvLayer {
  dnn::ConvParams p;
  std::vector<float> w, b;
  dnn::Conv2d conv;
  ConvLayer(const dnn::ConvParams& p_, uint32_t seed, dnn::Precision prec) : p(p_) {
    w = random_values((size_t)p.out_c * p.in_c * p.kh * p.kw, seed, 1.f / std::sqrt((float)(p.in_c * p.kh * p.kw)));
    b = random_values((size_t)p.out_c, seed + 1, 0.1f);
    conv.init(p, w.data(), b.data(), prec, "test");
  }
  // relu?(conv(x) + b + residual?) in fp64, channels-last.
  std::vector<float> reference(const std::vector<float>& x, int64_t H, int64_t W, const std::vector<float>* res,
                               bool relu) const {
    const int64_t Ho = p.out_h(H), Wo = p.out_w(W);
    std::vector<float> y((size_t)(Ho * Wo * p.out_c));
    for (int64_t oy = 0; oy < Ho; ++oy)
      for (int64_t ox = 0; ox < Wo; ++ox)
        for (int o = 0; o < p.out_c; ++o) {
          double s = b[o];
          for (int ky = 0; ky < p.kh; ++ky)
            for (int kx = 0; kx < p.kw; ++kx) {
              const int64_t iy = oy * p.stride - p.pad + ky * p.dilation, ix = ox * p.stride - p.pad + kx * p.dilation;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              for (int i = 0; i < p.in_c; ++i)
                s += (double)w[(((size_t)o * p.in_c + i) * p.kh + ky) * p.kw + kx] * x[(iy * W + ix) * p.in_c + i];
            }
          const size_t at = (size_t)((oy * Wo + ox) * p.out_c + o);
          if (res) s += (*res)[at];
          y[at] = relu && s < 0 ? 0.f : (float)s;
        }
    return y;
  }
};

std::vector<float> values_of(const Tensor& hwc) { return std::vector<float>(hwc.data(), hwc.data() + hwc.numel()); }

#define SKIP_WITHOUT_BF16() \
  if (!dnn::bf16_available()) GTEST_SKIP() << "oneDNN has no bf16 convolutions on this CPU (needs AVX-512)"

// A bottleneck-like chain: 1x1 (ReLU) -> 3x3 (ReLU) -> 1x1 + residual (ReLU), every map between them
// bf16 in oneDNN's layout, as in the backbone. The fp32 chain is the reference's twin (fp64).
TEST(Bf16Layers, ChainKeepsBf16BetweenConvolutionsAndMatchesFp64) {
  SKIP_WITHOUT_BF16();
  const int64_t H = 13, W = 22;
  const auto bf16 = dnn::Precision::BF16;
  ConvLayer c1({64, 32, 1, 1, 1, 0, 1}, 1, bf16), c2({32, 32, 3, 3, 1, 1, 1}, 3, bf16), c3({32, 64, 1, 1, 1, 0, 1}, 5, bf16);
  const Tensor x = random_map(H, W, 64, 7);
  const Tensor in = c1.conv(x);  // the residual, bf16 like the backbone's block inputs
  const Tensor h1 = c2.conv(in, nullptr, true);
  const Tensor h2 = c3.conv(h1, nullptr, true);
  const Tensor y = c1.conv(h2, &in, true);  // 64 -> 32: the residual has the output's shape
  for (const Tensor* t : {&in, &h1, &h2, &y}) {
    EXPECT_TRUE(stored_as_bf16(*t)) << "a bf16 convolution should write bf16 (" << t->bytes << " bytes for "
                                    << t->numel() << " values)";
    EXPECT_EQ(t->shape[0], H);
    EXPECT_EQ(t->shape[1], W);
  }
  // fp64 reference of the same chain from the same input (bf16 rounding of weights, inputs and
  // every intermediate: ~1e-2 over four layers; a lost residual or ReLU gives O(1)).
  const std::vector<float> xin = values_of(x);
  const std::vector<float> r_in = c1.reference(xin, H, W, nullptr, false);
  const std::vector<float> r1 = c2.reference(r_in, H, W, nullptr, true);
  const std::vector<float> r2 = c3.reference(r1, H, W, nullptr, true);
  const std::vector<float> ry = c1.reference(r2, H, W, &r_in, true);
  const Tensor yh = dnn::to_hwc(y);
  ASSERT_EQ(yh.layout, Layout::HWC);
  ASSERT_EQ(yh.numel(), (int64_t)ry.size());
  const test::Diff d = test::compare(yh.data(), ry.data(), (int64_t)ry.size());
  std::printf("bf16 chain of 4 convolutions vs fp64: rel L2 %.3e, max |diff| %.3e\n", d.rel_l2, d.max_abs);
  EXPECT_LE(d.rel_l2, 2e-2);
  EXPECT_GT(d.rel_l2, 0.0) << "bit-exact with fp64: bf16 was not used";
}

// A bf16 1x1 layer with a residual and ReLU on both of its paths (engine/dnn.cpp): a small output (here
// 20x20x256, 0.2 MB) adds the residual after the product (kern::add_bf16), a large one (130x130x256,
// 8.3 MB, past kAddAfterMaxBytes) by oneDNN's binary post-op. Each against fp64 from the same bf16 input
// and residual values; a lost residual or ReLU gives O(1).
TEST(Bf16Layers, ResidualLayerMatchesFp64BelowAndAboveTheAddAfterSize) {
  SKIP_WITHOUT_BF16();
  const auto bf16 = dnn::Precision::BF16;
  ConvLayer make_in({16, 16, 1, 1, 1, 0, 1}, 21, bf16), shortcut({16, 256, 1, 1, 1, 0, 1}, 23, bf16),
      last({16, 256, 1, 1, 1, 0, 1}, 25, bf16);
  for (int64_t side : {20, 130}) {
    const Tensor x = make_in.conv(random_map(side, side, 16, 27));  // bf16, as the layers read it
    const Tensor r = shortcut.conv(x);                              // the bf16 residual
    const Tensor y = last.conv(x, &r, true);
    EXPECT_TRUE(stored_as_bf16(y));
    const std::vector<float> xv = values_of(dnn::to_hwc(x)), rv = values_of(dnn::to_hwc(r));
    const std::vector<float> want = last.reference(xv, side, side, &rv, true);
    const std::vector<float> got = values_of(dnn::to_hwc(y));
    ASSERT_EQ(got.size(), want.size());
    const test::Diff d = test::compare(got.data(), want.data(), (int64_t)want.size());
    int64_t negative = 0;
    for (float v : got) negative += v < 0.f;
    std::printf("bf16 1x1 + residual + ReLU at %lldx%lld vs fp64: rel L2 %.3e, max |diff| %.3e\n", (long long)side,
                (long long)side, d.rel_l2, d.max_abs);
    EXPECT_LE(d.rel_l2, 1e-2) << side;
    EXPECT_EQ(negative, 0) << side << ": the ReLU was not applied";
  }
}

// hwc_out gives fp32 channels-last straight from the primitive's fp32 output, equal to to_hwc() of
// an fp32-output run within fp32 (same arithmetic, one rounding fewer than bf16 out).
TEST(Bf16Layers, HwcOutIsFp32ChannelsLast) {
  SKIP_WITHOUT_BF16();
  ConvLayer c({32, 48, 3, 3, 1, 1, 1}, 11, dnn::Precision::BF16);
  const Tensor x = random_map(9, 17, 32, 12);
  const Tensor y = c.conv(x, nullptr, true, /*hwc_out=*/true);
  ASSERT_EQ(y.layout, Layout::HWC);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{9, 17, 48}));
  const std::vector<float> ref = c.reference(values_of(x), 9, 17, nullptr, true);
  const test::Diff d = test::compare(y.data(), ref.data(), (int64_t)ref.size());
  EXPECT_LE(d.rel_l2, 1e-2);
  // bf16 out, converted: within bf16's rounding of the fp32 out (relative 2^-8 per value)
  const Tensor yb = dnn::to_hwc(c.conv(x, nullptr, true));
  for (int64_t i = 0; i < y.numel(); ++i)
    ASSERT_NEAR(yb.data()[i], y.data()[i], std::fabs(y.data()[i]) * (1.0 / 256) + 1e-4) << i;
  // prepare() with hwc_out creates the primitive the hwc_out call uses: nothing new afterwards
  ConvLayer c2({32, 48, 3, 3, 1, 1, 1}, 11, dnn::Precision::BF16);
  c2.conv.prepare(9, 17, false, true, /*hwc_out=*/true);
  const int64_t n = dnn::layer_primitives_created();
  const Tensor y2 = c2.conv(x, nullptr, true, /*hwc_out=*/true);
  EXPECT_EQ(dnn::layer_primitives_created(), n);
  EXPECT_EQ(std::memcmp(y2.data(), y.data(), (size_t)y.numel() * 4), 0);
}

// The max-pool keeps bf16: rounding is monotonic, so pooling the bf16 map equals pooling its fp32
// conversion, exactly.
TEST(Bf16Layers, MaxPoolKeepsBf16) {
  SKIP_WITHOUT_BF16();
  ConvLayer c({16, 64, 3, 3, 2, 1, 1}, 21, dnn::Precision::BF16);
  const Tensor m = c.conv(random_map(31, 46, 16, 22), nullptr, true);
  ASSERT_TRUE(stored_as_bf16(m));
  const Tensor p = dnn::max_pool_3x3_s2(m);
  EXPECT_TRUE(stored_as_bf16(p));
  const Tensor ph = dnn::to_hwc(p), want = dnn::max_pool_3x3_s2(dnn::to_hwc(m));
  ASSERT_EQ(ph.shape, want.shape);
  EXPECT_EQ(std::memcmp(ph.data(), dnn::to_hwc(want).data(), (size_t)ph.numel() * 4), 0);
}

// accumulate() gives relu(conv(x) + residual) byte-identical to operator() with the residual (fp32 and
// bf16), for fp32 layers over the residual's memory when nothing else holds it; a residual still held
// elsewhere is left as it was.
TEST(Bf16Layers, AccumulateWritesOverAnUnsharedResidual) {
  for (const auto prec : {dnn::Precision::F32, dnn::Precision::BF16}) {
    if (prec == dnn::Precision::BF16 && !dnn::bf16_available()) continue;
    ConvLayer c({32, 32, 3, 3, 1, 1, 1}, 41, prec), sc({16, 32, 1, 1, 1, 0, 1}, 43, prec);
    const Tensor x = c.conv(random_map(11, 19, 32, 44));
    const Tensor r = sc.conv(random_map(11, 19, 16, 45));  // in the layout the convolutions pick
    const Tensor want = c.conv(x, &r, true);
    Tensor shared = r;  // held twice: a new tensor, r unchanged
    const Tensor y1 = c.conv.accumulate(x, std::move(shared), true);
    EXPECT_NE(y1.data(), r.data());
    Tensor own = r.clone();
    const float* mem = own.data();
    const Tensor y2 = c.conv.accumulate(x, std::move(own), true);
    // fp32 layers add the residual by oneDNN's sum post-op, over the residual; bf16 ones after the
    // product (kern::add_bf16, engine/dnn.cpp), into a fresh output.
    if (prec == dnn::Precision::F32) EXPECT_EQ(y2.data(), mem) << "an unshared residual in the output's layout should be the output";
    for (const Tensor* y : {&y1, &y2}) {
      ASSERT_EQ(y->bytes, want.bytes);
      EXPECT_EQ(std::memcmp(y->data(), want.data(), want.bytes), 0) << dnn::precision_name(prec);
    }
    EXPECT_EQ(std::memcmp(dnn::to_hwc(r).data(), dnn::to_hwc(sc.conv(random_map(11, 19, 16, 45))).data(),
                          (size_t)r.numel() * 4), 0) << "the shared residual was modified";
  }
}

// y = l2(relu(l1(x))) in fp64 over rows with strides.
std::vector<float> ffn_reference(const std::vector<float>& w1, const std::vector<float>& b1,
                                 const std::vector<float>& w2, const std::vector<float>& b2, const float* x,
                                 int64_t ldx, int64_t M, int D, int F) {
  std::vector<float> y((size_t)(M * D));
  std::vector<double> h(F);
  for (int64_t r = 0; r < M; ++r) {
    for (int f = 0; f < F; ++f) {
      double s = b1[f];
      for (int i = 0; i < D; ++i) s += (double)w1[(size_t)f * D + i] * x[r * ldx + i];
      h[f] = s > 0 ? s : 0;
    }
    for (int o = 0; o < D; ++o) {
      double s = b2[o];
      for (int f = 0; f < F; ++f) s += (double)w2[(size_t)o * F + f] * h[f];
      y[(size_t)(r * D + o)] = (float)s;
    }
  }
  return y;
}

// feed_forward in bf16 (hidden layer bf16) against fp64; in fp32 byte-identical to the two layers
// called one after the other per block of rows (what the encoder did before feed_forward).
TEST(Bf16Layers, FeedForwardMatchesFp64AndFp32IsTheTwoLayers) {
  const int D = 48, F = 160;
  const int64_t M = 203, ldx = 56, ldy = 50, block = 64;  // a last block of 11 rows
  const std::vector<float> w1 = random_values((size_t)F * D, 31, 1.f / std::sqrt((float)D)),
                           b1 = random_values(F, 32, 0.1f),
                           w2 = random_values((size_t)D * F, 33, 1.f / std::sqrt((float)F)),
                           b2 = random_values(D, 34, 0.1f), x = random_values((size_t)(M * ldx), 35);
  const std::vector<float> ref = ffn_reference(w1, b1, w2, b2, x.data(), ldx, M, D, F);
  auto dense = [&](const std::vector<float>& y) {
    std::vector<float> d((size_t)(M * D));
    for (int64_t r = 0; r < M; ++r) std::memcpy(&d[(size_t)(r * D)], &y[(size_t)(r * ldy)], D * sizeof(float));
    return d;
  };
  {  // fp32
    dnn::Linear l1, l2;
    l1.init(D, F, w1.data(), b1.data(), dnn::Precision::F32);
    l2.init(F, D, w2.data(), b2.data(), dnn::Precision::F32);
    std::vector<float> y((size_t)(M * ldy), -7.f), y2((size_t)(M * ldy), -7.f), hidden((size_t)(block * F));
    dnn::feed_forward(l1, l2, x.data(), ldx, M, y.data(), ldy, block);
    for (int64_t r0 = 0; r0 < M; r0 += block) {
      const int64_t rows = std::min(block, M - r0);
      l1.forward(x.data() + r0 * ldx, ldx, rows, hidden.data(), F, true);
      l2.forward(hidden.data(), F, rows, y2.data() + r0 * ldy, ldy);
    }
    EXPECT_EQ(std::memcmp(y.data(), y2.data(), y.size() * sizeof(float)), 0);
    EXPECT_LE(test::compare(dense(y).data(), ref.data(), (int64_t)ref.size()).rel_l2, 1e-5);
  }
  if (!dnn::bf16_available()) GTEST_SKIP() << "oneDNN has no bf16 on this CPU: fp32 checked only";
  dnn::Linear l1, l2;
  l1.init(D, F, w1.data(), b1.data(), dnn::Precision::BF16);
  l2.init(F, D, w2.data(), b2.data(), dnn::Precision::BF16);
  dnn::prepare_feed_forward(l1, l2, M, ldx, ldy, block);
  const int64_t n = dnn::layer_primitives_created();
  std::vector<float> y((size_t)(M * ldy), -7.f);
  dnn::feed_forward(l1, l2, x.data(), ldx, M, y.data(), ldy, block);
  EXPECT_EQ(dnn::layer_primitives_created(), n) << "prepare_feed_forward missed a primitive";
  for (int64_t r = 0; r < M; ++r)  // the row padding of y is left alone
    for (int64_t c = D; c < ldy; ++c) ASSERT_EQ(y[(size_t)(r * ldy + c)], -7.f);
  const test::Diff d = test::compare(dense(y).data(), ref.data(), (int64_t)ref.size());
  std::printf("bf16 feed-forward vs fp64: rel L2 %.3e\n", d.rel_l2);
  EXPECT_LE(d.rel_l2, 1e-2);
  EXPECT_GT(d.rel_l2, 1e-5) << "as exact as fp32: bf16 was not used";
  // mismatched layers are refused
  dnn::Linear other;
  other.init(D + 1, D, random_values((size_t)(D + 1) * D, 36).data(), b2.data(), dnn::Precision::BF16);
  EXPECT_THROW(dnn::feed_forward(l1, other, x.data(), ldx, M, y.data(), ldy, block), std::invalid_argument);
  EXPECT_THROW(dnn::feed_forward(l1, l2, x.data(), ldx, M, y.data(), ldy, 0), std::invalid_argument);
}

// Inputs given already in bf16 (the encoder's norms write them, kern::round_bf16): forward_from_bf16,
// forward_bf16_from_bf16 and feed_forward_from_bf16 on the rounded rows give byte for byte what the
// fp32-input calls give (which round the same way), with the primitives those calls prepared; fp32
// layers refuse bf16 inputs.
TEST(Bf16Layers, Bf16InputsGiveTheFp32InputCallsBits) {
  SKIP_WITHOUT_BF16();
  const int D = 48, F = 160;
  const int64_t M = 203, block = 64;
  const std::vector<float> w1 = random_values((size_t)F * D, 51, 1.f / std::sqrt((float)D)),
                           b1 = random_values(F, 52, 0.1f),
                           w2 = random_values((size_t)D * F, 53, 1.f / std::sqrt((float)F)),
                           b2 = random_values(D, 54, 0.1f), x = random_values((size_t)(M * D), 55);
  std::vector<uint16_t> x16((size_t)(M * D));
  kern::round_bf16(x.data(), nullptr, x16.data(), M * D);
  dnn::Linear l1, l2;
  l1.init(D, F, w1.data(), b1.data(), dnn::Precision::BF16);
  l2.init(F, D, w2.data(), b2.data(), dnn::Precision::BF16);
  dnn::prepare_feed_forward(l1, l2, M, D, D, block);
  l1.prepare(M, D, F);
  l1.prepare(M, D, F, false, /*y_bf16=*/true);
  const int64_t n = dnn::layer_primitives_created();
  {
    std::vector<float> want((size_t)(M * D)), got((size_t)(M * D), -7.f);
    dnn::feed_forward(l1, l2, x.data(), D, M, want.data(), D, block);
    dnn::feed_forward_from_bf16(l1, l2, x16.data(), D, M, got.data(), D, block);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "feed_forward_from_bf16";
  }
  {
    std::vector<float> want((size_t)(M * F)), got((size_t)(M * F), -7.f);
    l1.forward(x.data(), D, M, want.data(), F);
    l1.forward_from_bf16(x16.data(), D, M, got.data(), F);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "forward_from_bf16";
  }
  {
    std::vector<uint16_t> want((size_t)(M * F)), got((size_t)(M * F), 0xabcd);
    l1.forward_bf16(x.data(), D, M, want.data(), F);
    l1.forward_bf16_from_bf16(x16.data(), D, M, got.data(), F);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(uint16_t)), 0) << "forward_bf16_from_bf16";
  }
  EXPECT_EQ(dnn::layer_primitives_created(), n) << "a bf16-input call made a primitive of its own";
  dnn::Linear f1, f2;
  f1.init(D, F, w1.data(), b1.data(), dnn::Precision::F32);
  f2.init(F, D, w2.data(), b2.data(), dnn::Precision::F32);
  std::vector<float> y((size_t)(M * F));
  std::vector<uint16_t> y16((size_t)(M * F));
  EXPECT_THROW(f1.forward_from_bf16(x16.data(), D, M, y.data(), F), std::logic_error);
  EXPECT_THROW(f1.forward_bf16_from_bf16(x16.data(), D, M, y16.data(), F), std::logic_error);
  EXPECT_THROW(dnn::feed_forward_from_bf16(f1, f2, x16.data(), D, M, y.data(), D, block), std::logic_error);
}

// A bf16 Linear rounds its fp32 input to the nearest bf16, ties to even (as oneDNN does), and keeps
// NaN: through an identity weight the output is the rounded input itself.
TEST(Bf16Layers, LinearRoundsItsInputToNearestEven) {
  SKIP_WITHOUT_BF16();
  const int N = 8;
  std::vector<float> eye((size_t)N * N, 0.f);
  for (int i = 0; i < N; ++i) eye[(size_t)i * N + i] = 1.f;
  dnn::Linear l;
  l.init(N, N, eye.data(), nullptr, dnn::Precision::BF16);
  const float ulp = std::ldexp(1.f, -7);  // bf16's spacing in [1, 2)
  // in: exact, a tie down to even, a tie up to even, above and below a tie, negative, tiny, large
  const float in[N] = {1.f, 1.f + ulp / 2, 1.f + 3 * ulp / 2, 1.f + ulp / 2 + ulp / 8, 1.f + ulp / 2 - ulp / 8,
                       -(1.f + 3 * ulp / 2), 3e-20f, 3e20f};
  const float want[N] = {1.f, 1.f, 1.f + 2 * ulp, 1.f + ulp, 1.f, -(1.f + 2 * ulp), 0.f, 0.f};
  std::vector<float> x(2 * N, 0.f), y(2 * N, 0.f);
  std::memcpy(x.data(), in, sizeof in);
  x[N + 3] = std::numeric_limits<float>::quiet_NaN();  // second row: a NaN
  l.forward(x.data(), N, 2, y.data(), N);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << "value " << i << " (" << in[i] << ")";
  for (int i = 6; i < 8; ++i) EXPECT_NEAR(y[i], in[i], std::fabs(in[i]) / 256) << "value " << i;
  EXPECT_TRUE(std::isnan(y[N + 3]));
}

// A bf16 3x3 layer may run oneDNN's fp32 Winograd (issue 14): its bf16 input (a bf16 layer's output,
// oneDNN's layout) converted to fp32, its output fp32 (so more accurate than bf16 direct, which also
// rounds the weights), which the next bf16 layer reads rounded to bf16 as from any fp32 map. In the
// Winograd suite: dnn_winograd_on runs it with M2FP_WINOGRAD=1, dnn_direct_below_avx512 (no bf16
// there) skips it.
TEST(Winograd, Bf16LayerRunsFp32WinogradAndTheNextBf16LayerReadsIt) {
  SKIP_WITHOUT_BF16();
  const dnn::WinogradMode before = dnn::winograd_mode();
  struct Restore {
    dnn::WinogradMode m;
    ~Restore() { dnn::set_winograd_mode(m); }
  } restore{before};
  const auto bf16 = dnn::Precision::BF16;
  const int64_t H = 9, W = 14;  // not multiples of the 4x4 tile
  ConvLayer pre({256, 256, 1, 1, 1, 0, 1}, 61, bf16), next({256, 256, 1, 1, 1, 0, 1}, 65, bf16);
  dnn::set_winograd(false);
  ConvLayer direct({256, 256, 3, 3, 1, 1, 1}, 63, bf16);  // the same weights, direct
  const Tensor in = pre.conv(random_map(H, W, 256, 62), nullptr, true);
  ASSERT_TRUE(stored_as_bf16(in));
  const Tensor yd = direct.conv(in, nullptr, true);
  ASSERT_EQ(direct.conv.algorithm_for(H, W), "direct");
  dnn::set_winograd(true);
  ConvLayer wino({256, 256, 3, 3, 1, 1, 1}, 63, bf16);
  const Tensor y = wino.conv(in, nullptr, true);
  ASSERT_EQ(wino.conv.algorithm_for(H, W), "winograd") << "oneDNN has jit_wino_4x3 wherever it has bf16";
  EXPECT_FALSE(stored_as_bf16(y)) << "Winograd writes fp32";
  // Against fp64 from the bf16 input's values: Winograd keeps fp32 weights (~1e-6), bf16 direct
  // rounds them (~1e-3).
  const std::vector<float> ref = wino.reference(values_of(dnn::to_hwc(in)), H, W, nullptr, true);
  const test::Diff dw = test::compare(dnn::to_hwc(y).data(), ref.data(), (int64_t)ref.size());
  const test::Diff dd = test::compare(dnn::to_hwc(yd).data(), ref.data(), (int64_t)ref.size());
  std::printf("bf16 3x3 256->256 vs fp64: fp32 Winograd rel L2 %.3e, bf16 direct %.3e\n", dw.rel_l2, dd.rel_l2);
  EXPECT_LE(dw.rel_l2, 1e-5);
  EXPECT_GT(dd.rel_l2, 10 * dw.rel_l2);
  // The next bf16 layer reads the fp32 output rounded to bf16: the bits it gives from the same
  // values in plain fp32 channels-last.
  const Tensor z = next.conv(y, nullptr, true), z_hwc = next.conv(dnn::to_hwc(y), nullptr, true);
  ASSERT_TRUE(stored_as_bf16(z));
  ASSERT_EQ(z.bytes, z_hwc.bytes);
  EXPECT_EQ(std::memcmp(z.data(), z_hwc.data(), z.bytes), 0);
  // hwc_out (the pixel decoder's layer_1): fp32 channels-last, the same values.
  const Tensor yh = wino.conv(in, nullptr, true, /*hwc_out=*/true);
  ASSERT_EQ(yh.layout, Layout::HWC);
  EXPECT_EQ(std::memcmp(yh.data(), dnn::to_hwc(y).data(), (size_t)yh.numel() * 4), 0);
}

// A bf16 layer makes its Winograd weights from fp32 ones only: one without a weight source whose
// plain fp32 copy went when its bf16 copy was made (an earlier size ran direct) stays direct, and
// correct, at a size that would run Winograd.
TEST(Winograd, Bf16LayerWithoutItsFp32WeightsStaysDirect) {
  SKIP_WITHOUT_BF16();
  const dnn::WinogradMode before = dnn::winograd_mode();
  struct Restore {
    dnn::WinogradMode m;
    ~Restore() { dnn::set_winograd_mode(m); }
  } restore{before};
  dnn::set_winograd(false);
  ConvLayer c({256, 256, 3, 3, 1, 1, 1}, 71, dnn::Precision::BF16);
  c.conv(random_map(6, 7, 256, 72), nullptr, true);
  dnn::set_winograd(true);
  const Tensor x = random_map(8, 10, 256, 73);
  const Tensor y = c.conv(x, nullptr, true, /*hwc_out=*/true);
  EXPECT_EQ(c.conv.algorithm_for(8, 10), "direct");
  const std::vector<float> ref = c.reference(values_of(x), 8, 10, nullptr, true);
  EXPECT_LE(test::compare(y.data(), ref.data(), (int64_t)ref.size()).rel_l2, 1e-2);
}

// plan_winograd weighs bf16 layers against their bf16 weights (2 bytes each) and only where their
// output map at the reference size has 16384 pixels and more (the pixel decoder's layer_1, not res3
// or res4: dnn.cpp, kWinoMinPixelsBf16); a chosen one runs Winograd in the planned mode.
TEST(Winograd, ThePlanWeighsBf16LayersByTheirOutputArea) {
  SKIP_WITHOUT_BF16();
  const dnn::WinogradMode before = dnn::winograd_mode();
  struct Restore {
    dnn::WinogradMode m;
    ~Restore() { dnn::set_winograd_mode(m); }
  } restore{before};
  const auto bf16 = dnn::Precision::BF16;
  ConvLayer big({128, 128, 3, 3, 1, 1, 1}, 81, bf16), small({128, 128, 3, 3, 1, 1, 1}, 82, bf16);
  big.conv.set_winograd_reference(128, 128);    // 16384 output pixels
  small.conv.set_winograd_reference(127, 128);  // 16256
  const dnn::WinogradPlan plan = dnn::plan_winograd({&big.conv, &small.conv}, size_t(1) << 30);
  ASSERT_EQ(plan.layers.size(), 2u);
  EXPECT_EQ(plan.layers[0].direct_bytes, (size_t)128 * 128 * 9 * 2);
  EXPECT_TRUE(plan.layers[0].chosen) << plan.layers[0].why;
  EXPECT_GT(plan.layers[0].winograd_bytes, plan.layers[0].direct_bytes) << "fp32 6x6 per bf16 3x3";
  EXPECT_FALSE(plan.layers[1].chosen);
  EXPECT_EQ(plan.layers[1].why, "bf16, fewer than 16384 output pixels");
  // A bf16 layer below 128 channels stays direct however large its map (fp32 Winograd loses to bf16
  // direct there: dnn.cpp, kWinoMinChannelsBf16); an fp32 one of the same shape is weighed.
  ConvLayer narrow({64, 128, 3, 3, 1, 1, 1}, 85, bf16), narrow32({64, 128, 3, 3, 1, 1, 1}, 86, dnn::Precision::F32);
  narrow.conv.set_winograd_reference(128, 128);
  narrow32.conv.set_winograd_reference(128, 128);
  const dnn::WinogradPlan np = dnn::plan_winograd({&narrow.conv, &narrow32.conv}, size_t(1) << 30);
  EXPECT_FALSE(np.layers[0].chosen);
  EXPECT_EQ(np.layers[0].why, "bf16, fewer than 128 channels");
  EXPECT_TRUE(np.layers[1].chosen) << np.layers[1].why;
  dnn::set_winograd_mode(dnn::WinogradMode::Planned);
  big.conv(random_map(128, 128, 128, 83), nullptr, true);
  small.conv(random_map(127, 128, 128, 84), nullptr, true);
  EXPECT_EQ(big.conv.algorithm_for(128, 128), "winograd");
  EXPECT_EQ(small.conv.algorithm_for(127, 128), "direct");
}

// M2FP::prepare in bf16 creates every primitive the forward uses (bf16 destinations, hwc_out layers,
// the feed-forward's bf16 hidden layer), and the outputs are byte-identical to an unprepared load.
TEST(Prepare, Bf16FirstForwardCreatesNoPrimitiveAndGivesTheSameOutputs) {
  SKIP_WITHOUT_BF16();
  const std::string model = std::string(M2FP_TESTDATA) + "/cihp_synth.safetensors";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing (ctest fixture)";
  const int64_t Hp = 96, Wp = 160;
  LoadOptions lo;
  lo.precision = dnn::Precision::BF16;
  lo.prepare_sizes = {{Hp, Wp}};
  std::unique_ptr<M2FP> prepared = M2FP::load(model, lo);
  const int64_t after_load = dnn::layer_primitives_created();
  Tensor img = Tensor::empty({Hp, Wp, 3}, Layout::HWC);
  for (int64_t i = 0; i < img.numel(); ++i) img.data()[i] = (float)((i * 7919) % 255) / 64.f - 2.f;
  const ForwardOutputs a = prepared->forward(img);
  EXPECT_EQ(dnn::layer_primitives_created(), after_load) << "forward() created primitives prepare() had not";
  LoadOptions plain_lo;
  plain_lo.precision = dnn::Precision::BF16;
  const ForwardOutputs b = M2FP::load(model, plain_lo)->forward(img);
  ASSERT_EQ(a.pred_masks.shape, b.pred_masks.shape);
  EXPECT_EQ(std::memcmp(a.pred_logits.data(), b.pred_logits.data(), (size_t)a.pred_logits.numel() * 4), 0);
  EXPECT_EQ(std::memcmp(a.pred_masks.data(), b.pred_masks.data(), (size_t)a.pred_masks.numel() * 4), 0);
}

}  // namespace
}  // namespace m2fp
