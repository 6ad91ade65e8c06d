// engine/parsing.h: what a parse produces, independent of how it was computed.
//
// The label map is the semantic map's argmax at the original image size; instances are the
// upstream part and human instances (multi-person mode); persons are the human instances with the
// part instances assigned to them by mask overlap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace m2fp {

struct BBox {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // half-open pixel box [x0, x1) x [y0, y1)
};

struct Instance {
  enum class Kind { Part, Human };
  Kind kind = Kind::Part;
  int category_id = 0;
  std::string label;
  float score = 0.f;
  int64_t area = 0;    // pixels of mask > 0 at original size
  BBox bbox;
  int query = -1;      // decoder query the mask comes from
  int person = -1;     // parts: index into Parsing::persons, -1 if unassigned
};

struct Person {
  int instance = -1;          // index into Parsing::instances (the Human instance)
  float score = 0.f;
  BBox bbox;
  int64_t area = 0;
  std::vector<int> parts;     // indices into Parsing::instances
};

struct Parsing {
  int width = 0, height = 0;              // original image size
  bool single_human = false;
  std::vector<std::string> class_names;   // class index -> name (CIHP: 20 parts + Human)
  std::vector<uint8_t> labels;            // [height * width] class index per pixel (0 = background)
  std::vector<uint8_t> person_map;        // [height * width] 0 = none, k = persons[k - 1]
  std::vector<Instance> instances;
  std::vector<Person> persons;
  std::vector<double> label_fractions;    // per class: share of pixels with that label
  // The semantic map's per-class scores, kept only when asked (PostprocessOptions::keep_scores, for
  // the service's refinements): [score_classes, height, width], each score clamped to [0, 1] and
  // stored as round(score * 255). Empty by default (no cost when not asked).
  int score_classes = 0;
  std::vector<uint8_t> scores;
  uint8_t score_at(int c, int64_t i) const { return scores[(size_t)c * width * height + i]; }
};

}  // namespace m2fp
