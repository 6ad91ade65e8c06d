// service/analysis.h: one photo parsed and analysed, as the parse queue's cache keeps it: the parsing
// rendered once (masks and coloured mask as base64 PNG, legend, persons with garments), the persons'
// garments for recommendations asked later, and the stage timings.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "outfit/outfit.h"
#include "service/masks.h"
#include "service/refine.h"
#include "service/session.h"

namespace m2fp::service {

// Per-request options that change the answer (part of the parse queue's cache key).
struct AnalysisOptions {
  RefineRequest refine;       // service/refine.h; none by default (the model's own answer)
  bool smooth_edges = false;  // colored_mask from smooth_label_edges() of the labels (service/render.h)
  // The network's resize for this photo (multi-person models; SPEC section 1); 0: the session's.
  // The parse queue's key holds the values in effect (ParseQueue::key_of), not these.
  int short_edge = 0, max_size = 0;
  std::string key() const;    // "" for the defaults, else "|refine=...|smooth_edges=1"
};

struct Analysis {
  // The /predict body less the per-request keys (model, cached, timings_ms), serialised once: an
  // answer from the cache costs string copies, not a JSON walk over megabytes of base64. Three parts:
  // predict_text {"image", "refinements", ...}: the keys no request option changes;
  // modelscope_text {"masks", "labels", "scores"}: the default form (PNG masks, CIHP);
  // labelled_text {"instances", "persons", "label_fractions", "labels_present", "legend",
  // "colored_mask", "labels_png"}: the label-bearing keys in CIHP ids. A request with another form
  // or label set has its own built from `parsing` and `outfits` (predict_masks_text).
  std::string predict_text;
  std::string modelscope_text;
  std::string labelled_text;
  bool smooth_edges = false;  // colored_mask from the smoothed label map
  std::shared_ptr<const Parsing> parsing;  // for the other forms, union masks
  nlohmann::json meta;      // {"labels", "legend", "image"} (for recommendation answers)
  nlohmann::json timings;   // the engine's stage timings plus outfits, encode and engine (ms)
  std::vector<PersonOutfit> outfits;
  size_t cost = 0;          // approximate bytes, for the cache budget
};
using AnalysisPtr = std::shared_ptr<const Analysis>;

// How a /predict answer wants its masks: ModelScope's masks in `format` and `label_set` ids, the
// label-bearing keys in `label_set` ids (docs/OUTPUTS.md), and the named union masks (masks_union,
// base64 0/255 PNG, dilated by `dilate`).
struct PredictForm {
  MaskFormat format = MaskFormat::Png;
  LabelSet label_set = LabelSet::Cihp;
  std::vector<std::string> masks_union;
  int dilate = 0;
  bool is_default() const { return format == MaskFormat::Png && label_set == LabelSet::Cihp && masks_union.empty(); }
};
// The keys a request's form decides, as a JSON object's text: the ModelScope keys, the label-bearing
// keys of Analysis::labelled_text in the form's label set, and "masks_union", "label_set" when asked.
// The rest of the /predict body is Analysis::predict_text (no key in both).
std::string predict_masks_text(const Analysis& a, const PredictForm& form);

// Parses the photo with the session, extracts every person's garments and renders the result.
// `sha` is the photo's SHA-256 (reported in "image"). Throws as Session::parse.
// With refinements asked, garments and colours come from the refined labels, and the answer has
// "refinements" (refinements_json).
std::shared_ptr<Analysis> analyse_photo(const Session& session, const OutfitKit& kit, const std::string& bytes,
                                        const std::string& sha, const AnalysisOptions& opt = {});

}  // namespace m2fp::service
