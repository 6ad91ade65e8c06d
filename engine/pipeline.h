// engine/pipeline.h: one photo through the whole engine: decode -> pre-process -> network ->
// post-process, with per-stage timings. The application layer's parse session (service/session.h)
// calls this for every front door.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "engine/image.h"
#include "engine/m2fp.h"
#include "engine/parsing.h"
#include "engine/postprocess.h"

namespace m2fp {

struct ParseOptions {
  int short_edge = 640;        // multi-person resize (upstream min_size)
  int max_size = 1333;         // multi-person resize cap (upstream max_size)
  bool emit_semantic = false;  // hand "semantic" and "labels" to the sink (large)
  bool keep_scores = false;    // keep the per-class scores in Parsing::scores (PostprocessOptions)
  DecodeOptions decode;
  const ForwardHooks* hooks = nullptr;  // tests and audits (see ForwardHooks)
};

struct StageTimings {
  double decode_ms = 0, preprocess_ms = 0, backbone_ms = 0, pixel_decoder_ms = 0,
         transformer_decoder_ms = 0, postprocess_ms = 0;
  double total_ms = 0;  // decode to the last output (model load excluded)
};

struct ParseResult {
  Image image;                 // the decoded photo (EXIF orientation applied)
  Parsing parsing;
  PostprocessGeometry geometry;
  StageTimings timings;
};

// The padded network input (Hp, Wp) of a photo width x height pixels (after its EXIF orientation)
// under these options: the size M2FP::prepare wants for it. Throws ImageError where pre-processing
// would (a photo too elongated), std::invalid_argument for non-positive sizes.
std::pair<int64_t, int64_t> network_input_size(const ModelConfig& cfg, int width, int height,
                                               const ParseOptions& opt = {});

// Decodes `bytes` (PNG, JPEG, BMP) and parses the photo. Throws ImageError for bad images.
ParseResult parse_image_bytes(const M2FP& model, const uint8_t* bytes, size_t size,
                              const ParseOptions& opt = {}, const TensorSink* sink = nullptr);

// Parses an already-decoded photo (a caller's own pixels: the C API's m2fp_parse_rgb). decode_ms is 0.
ParseResult parse_image(const M2FP& model, Image image, const ParseOptions& opt = {},
                        const TensorSink* sink = nullptr);

}  // namespace m2fp
