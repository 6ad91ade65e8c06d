// service/refine.h: optional refinements of a parsing on top of the model's answer (issue 13; the
// seed article's fixes). Off by default: upstream-equal output is the default, and every front
// door asks for them explicitly (`m2fp parse --refine dark,small`, `refine=` on /predict).
//
//   dark  - dark clothes mistaken for background: Background pixels inside a person, dark on the
//           photo (HSV value), connected to a garment of that person, take the garment's class
//           where the model's own score for it is within a margin of the winner's.
//   small - small items missed: Background pixels in windows sized from the face (above the head:
//           Hat, at the eyes: Sunglasses, around the neck: Scarf, at the arms' ends: Glove, above
//           the shoes: Socks) take that class where its score passes a lowered threshold in a
//           connected blob of plausible size.
//
// Both read only what the model already produced: the semantic map's per-class scores
// (Parsing::scores, kept by the engine when ParseOptions::keep_scores) and the photo.
// Thresholds: outfit/data/refine.json (RefineTable). docs/OUTPUTS.md documents them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/image.h"
#include "engine/parsing.h"
#include "outfit/refine_table.h"

namespace m2fp::service {

struct RefineRequest {
  bool dark = false, small = false;
  bool any() const { return dark || small; }
  std::string spelled() const;  // "dark,small", "dark", "small" or "" (cache keys, reports)
};

// "dark", "small", "dark,small" (any order), "all", "none" or ""; throws OptionError otherwise.
RefineRequest parse_refine(const std::string& list);

// What one refinement changed.
struct RefineChange {
  std::string name;                          // "dark" or "small"
  int64_t pixels = 0;                        // pixels relabelled
  std::map<std::string, int64_t> per_class;  // new label -> pixels
  std::map<int, int64_t> per_person;         // person index (0-based; -1 single-person photo) -> pixels
};

// Applies the requested refinements to `p` in place (labels and label_fractions; instances and
// persons are the model's), dark first. Needs p.scores (throws std::invalid_argument when a
// refinement is asked and the scores are absent) and the photo the parsing came from (same size).
std::vector<RefineChange> refine_parsing(Parsing& p, const Image& photo, const RefineRequest& req,
                                         const RefineTable& table);

// result.json "refinements": {"requested": [...], "changes": [{"name", "pixels", "per_class",
// "per_person"}]}.
nlohmann::json refinements_json(const RefineRequest& req, const std::vector<RefineChange>& changes);

}  // namespace m2fp::service
