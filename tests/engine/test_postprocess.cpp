// tests/engine/test_postprocess.cpp: multi-person post-processing's instance masks on hand-made
// decoder outputs (no checkpoint): every instance's bits against the mask upsampled independently
// (kern::resize_bilinear_planes twice, as upstream's F.interpolate, crop between), for masks of
// every extent: the whole photo, small boxes, a single pixel, none. engine/postprocess.cpp keeps all
// instances' masks in one block and moves them to its front when they fill less than 7/8 of it
// (small boxes): both layouts are covered here, kept and streamed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/postprocess.h"
#include "kernels/kernels.h"

using namespace m2fp;

namespace {

constexpr int64_t kQ = 8, kK1 = 22, kH4 = 12, kW4 = 16;  // CIHP: 21 classes (Human = 20) + no object

PostprocessGeometry geometry(int64_t W0 = 150) {
  PostprocessGeometry g;
  g.Hp = 48, g.Wp = 64;  // padded input, 4x the mask planes
  g.nh = 40, g.nw = 60;  // the photo inside it
  g.crop_box = BBox{0, 0, 60, 40};
  g.H0 = 101, g.W0 = W0;  // 150 columns: 3 words, the last one partly used
  return g;
}

// Query q's logits: one class far above the others (probability ~1); query 7's all equal (1/22
// each, below every role's threshold: its mask, positive everywhere, makes no instance).
ForwardOutputs outputs(bool small_boxes) {
  ForwardOutputs out{Tensor::empty({kQ, kK1}), Tensor::empty({kQ, kH4, kW4})};
  const int cls[kQ] = {20, 2, 5, 13, 20, 9, 14, -1};  // 0 and 4 humans, the others parts
  for (int64_t q = 0; q < kQ; ++q)
    for (int64_t c = 0; c < kK1; ++c) out.pred_logits.data()[q * kK1 + c] = c == cls[q] ? 9.f : -2.f;
  for (int64_t q = 0; q < kQ; ++q)
    for (int64_t y = 0; y < kH4; ++y)
      for (int64_t x = 0; x < kW4; ++x) {
        float v = 3.f + 0.1f * (float)((x * 7 + y * 3 + q) % 5);  // positive everywhere
        if (small_boxes) {
          const bool in = q == 0 || q == 7 ? true                                           // the whole photo
                          : q == 1 ? (y >= 2 && y <= 4 && x >= 3 && x <= 6)          // a small box
                          : q == 2 ? (y >= 7 && y <= 8 && x >= 9 && x <= 13)         // another
                          : q == 3 ? (y == 5 && x == 11)                             // one plane pixel
                          : q == 4 ? (y >= 1 && y <= 9 && x >= 1 && x <= 7)          // a second person
                          : q == 5 ? (y >= 8 && x <= 2)                              // a corner
                                   : false;                                          // none at all
          v = in ? v : -4.f - 0.1f * (float)((x + y) % 3);
        }
        out.pred_masks.data()[(q * kH4 + y) * kW4 + x] = v;
      }
  return out;
}

// Query q's mask logits at the original size, computed on their own: the plane resized to the padded
// size, cropped to the photo, resized to the original size.
std::vector<float> upsampled(const ForwardOutputs& out, int q, const PostprocessGeometry& g) {
  std::vector<float> padded((size_t)(g.Hp * g.Wp)), crop((size_t)(g.nh * g.nw)), full((size_t)(g.H0 * g.W0));
  kern::resize_bilinear_planes(out.pred_masks.data() + (int64_t)q * kH4 * kW4, 1, kH4, kW4, padded.data(), g.Hp, g.Wp);
  for (int64_t y = 0; y < g.nh; ++y)
    std::copy_n(padded.data() + (g.crop_box.y0 + y) * g.Wp + g.crop_box.x0, g.nw, crop.data() + y * g.nw);
  kern::resize_bilinear_planes(crop.data(), 1, g.nh, g.nw, full.data(), g.H0, g.W0);
  return full;
}

void expect_masks_match(bool small_boxes, double keep_mask_bytes, int64_t W0) {
  const PostprocessGeometry g = geometry(W0);
  const ForwardOutputs out = outputs(small_boxes);
  PostprocessOptions opt;
  opt.keep_mask_bytes = keep_mask_bytes;
  opt.band_rows = 16;
  const Parsing p = postprocess(ModelConfig{}, out, g, opt);
  // queries 0-5 have foreground (6 has none in the small-box case): an instance each
  ASSERT_EQ(p.instances.size(), small_boxes ? 6u : 7u);
  ASSERT_EQ(p.persons.size(), 2u);
  int64_t small = 0;
  for (const Instance& in : p.instances) {
    SCOPED_TRACE("query " + std::to_string(in.query));
    const std::vector<float> m = upsampled(out, in.query, g);
    int64_t area = 0, wrong = 0;
    BBox box{INT32_MAX, INT32_MAX, -1, -1};
    for (int y = 0; y < g.H0; ++y)
      for (int x = 0; x < g.W0; ++x) {
        const bool fg = m[(size_t)(y * g.W0 + x)] > 0.f;
        wrong += fg != in.mask_at(x, y);
        if (fg) {
          ++area;
          box = BBox{std::min(box.x0, x), std::min(box.y0, y), std::max(box.x1, x + 1), std::max(box.y1, y + 1)};
        }
      }
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ(in.area, area);
    EXPECT_EQ(std::tie(in.bbox.x0, in.bbox.y0, in.bbox.x1, in.bbox.y1), std::tie(box.x0, box.y0, box.x1, box.y1));
    // the mask holds exactly its box's rows of whole bytes
    EXPECT_EQ(in.mask_bits.size(), (size_t)((box.y1 - box.y0) * ((box.x1 - box.x0 + 7) / 8)));
    small += in.bbox.x1 - in.bbox.x0 < g.W0 / 2;
  }
  if (small_boxes) EXPECT_GE(small, 4) << "the small-box case has small boxes";
}

// 192 columns: every mask fills its words (3 per row), the block stays as pass A wrote it; 150: the
// masks' rows are 19 bytes of 24, less than 7/8 of the block, which is compacted.
TEST(PostprocessMasks, WholePhotoMasksMatchTheUpsampledLogits) {
  for (int64_t W0 : {192, 150}) {
    SCOPED_TRACE("W0 " + std::to_string(W0));
    expect_masks_match(false, 96.0 * (1 << 20), W0);  // kept between the passes
    expect_masks_match(false, 0, W0);                 // streamed
  }
}

TEST(PostprocessMasks, SmallBoxesMatchTheUpsampledLogits) {
  expect_masks_match(true, 96.0 * (1 << 20), 150);
  expect_masks_match(true, 0, 150);
}

// A Parsing's copies share their masks' bytes, and a mask outlives the parsing it came from.
TEST(PostprocessMasks, MasksOutliveTheirParsing) {
  const PostprocessGeometry g = geometry();
  const ForwardOutputs out = outputs(true);
  MaskBits kept;
  std::vector<uint8_t> want;
  {
    const Parsing p = postprocess(ModelConfig{}, out, g);
    ASSERT_FALSE(p.instances.empty());
    const Parsing copy = p;
    EXPECT_EQ(copy.instances[0].mask_bits.data(), p.instances[0].mask_bits.data());
    kept = p.instances[0].mask_bits;
    want.assign(kept.begin(), kept.end());
  }
  ASSERT_EQ(kept.size(), want.size());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), kept.begin()));
}

}  // namespace
