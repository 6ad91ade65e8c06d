// service/report.h: JSON for what a parse produced (result.json, HTTP responses).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/m2fp.h"
#include "engine/pipeline.h"
#include "outfit/garments.h"
#include "service/masks.h"

namespace m2fp::service {

nlohmann::json model_json(const M2FP& model, const std::string& model_path);
// instances, persons, label_fractions, labels_present
nlohmann::json parsing_json(const Parsing& p);
// The same with the instances' masks already made (masks[i] = instance_rle of instance i, as
// result_doc.h's mask tasks make them); throws std::invalid_argument when their number differs.
nlohmann::json parsing_json(const Parsing& p, std::vector<nlohmann::json>&& masks);
// Writes j.dump(2) and a newline to `path` atomically (engine/io.h), the text streamed out in pieces
// (a 12 MP photo's result.json is megabytes of mask runs: no copy of it in memory).
void write_json_file(const std::string& path, const nlohmann::json& j);
nlohmann::json timings_json(const StageTimings& t);
nlohmann::json bbox_json(const BBox& b);
// Labels present apart from Background, with their palette colour (service/render.h) and share of the
// photo: [{"id", "label", "color": "#rrggbb", "fraction"}], by class index.
nlohmann::json legend_json(const Parsing& p);
// Adds each person's garments (outfit/outfit_json.h shape) to parsing_json(p)["persons"][k]["garments"].
// A single-person parsing (no person instances) gets one person entry covering the photo.
void add_person_garments(nlohmann::json& parsing, const std::vector<PersonOutfit>& outfits);
// A label set's view of a parsing document (parsing_json's keys, with or without garments), for
// `--label-set` / `label_set=` (docs/OUTPUTS.md): instances[] and persons[].parts[] get
// "set_category_id" and "set_label" (the part's id and name in the set; 0 and null when the class has
// no counterpart; human instances -1 and null), persons[].garments[] get "set_labels" (their classes
// in the set, those without a counterpart left out), "label_fractions" and "labels_present" become
// the set's (from in_label_set(p, s), service/masks.h). Nothing changes for CIHP.
void add_label_set_keys(nlohmann::json& doc, const Parsing& p, LabelSet s);
// Text said wherever results from random weights are shown.
extern const char* const kSyntheticWarning;

}  // namespace m2fp::service
