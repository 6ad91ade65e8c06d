// app/report.h: JSON for what a parse produced (result.json, HTTP responses).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/m2fp.h"
#include "engine/pipeline.h"

namespace m2fp::app {

nlohmann::json model_json(const M2FP& model, const std::string& model_path);
// instances, persons, label_fractions, labels_present
nlohmann::json parsing_json(const Parsing& p);
nlohmann::json timings_json(const StageTimings& t);
nlohmann::json bbox_json(const BBox& b);
// Text said wherever results from random weights are shown.
extern const char* const kSyntheticWarning;

}  // namespace m2fp::app
