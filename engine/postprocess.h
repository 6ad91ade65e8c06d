// engine/postprocess.h: from the decoder's logits and mask logits to a Parsing, as upstream's
// M2FP.postprocess computes it (modelscope .../image_human_parsing/m2fp_net.py), in bounded memory.
//
// Multi-person (parsing_on): masks are upsampled to the padded size, cropped to the resized image
// and upsampled to the original size; the top 100 (query, class) pairs become part and human
// instances (score = class probability x mean foreground sigmoid), the semantic map pastes the part
// instances with score >= parsing_ins_score_thr, and the label map is its argmax.
// Single-person (single_human): semantic inference softmax(logits)[:, :-1]^T . sigmoid(masks),
// cropped back to the photo's box and resized to the original size; the label map is its argmax.
//
// Full-resolution masks are never all held at once. Small photos (keep_mask_bytes) keep the
// selected queries' masks between the two passes; larger ones stream them: per band of output rows,
// each query's crop rows are resized to the output width once and every output row is computed on
// the fly where it is used (kern::mask_row_fused), so a 12-megapixel photo costs a few tens of
// megabytes of scratch here, not 100 x 48 MB. Pass A takes every selected query's statistics and,
// for the queries that can become instances, its bit words (1 bit per pixel, which become the
// instances' masks in place and give the part/human overlaps by kern::and_popcount); pass B then
// runs only the pasted and human queries (paste, argmax, person map). Both give the same parsing,
// bit for bit (tests/engine/test_parity.cpp, Postprocess.KeptAndBandedMasksGiveTheSameParsing).
#pragma once

#include <functional>

#include "engine/m2fp.h"
#include "engine/parsing.h"
#include "engine/tensor.h"
#include "model_loader/config.h"

namespace m2fp {

struct PostprocessGeometry {
  int64_t Hp = 0, Wp = 0;  // padded network input
  int64_t nh = 0, nw = 0;  // the photo inside it (resized size, or the single-person canvas size)
  int64_t H0 = 0, W0 = 0;  // original photo
  BBox crop_box;           // single-person: the photo's box inside the canvas
};

struct PostprocessOptions {
  // Hand the full [C, H0, W0] semantic map to the sink as "semantic" (and "labels"); costs
  // C x H0 x W0 floats, so only for dumps and parity tests.
  bool emit_semantic = false;
  // Keep the semantic map's per-class scores in Parsing::scores (uint8, C x H0 x W0 bytes): for the
  // service's refinements only; the label map and everything else are the same either way.
  bool keep_scores = false;
  int band_rows = 32;  // output rows per band
  // Multi-person: the full-resolution masks pass B can read (those of the selected queries whose
  // class probability could make them pasted or a human) are kept between the two passes (instead
  // of being upsampled twice) when they take at most this many bytes; 0 = never (always stream them).
  double keep_mask_bytes = 96.0 * (1 << 20);
};

Parsing postprocess(const ModelConfig& cfg, const ForwardOutputs& out, const PostprocessGeometry& g,
                    const PostprocessOptions& opt = {}, const TensorSink* sink = nullptr);

}  // namespace m2fp
