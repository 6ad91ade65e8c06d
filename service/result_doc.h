// service/result_doc.h: the result document of one parsed photo: what `m2fp parse` writes as
// result.json and the C API's m2fp_result_json() returns (docs/OUTPUTS.md describes its keys).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/pipeline.h"
#include "service/outfits.h"
#include "service/session.h"

namespace m2fp::service {

// parsing_json(r.parsing) plus "image" ({"file": file, sizes}), "model", "threads", "timings_ms",
// "outputs" and, when `outfits` is given (its kit loaded), every person's "garments", "outfits" with
// the catalogue's recommendations and "catalog". `file` is the photo's path, or null when the photo
// came as bytes or pixels. The outfit part reads outfits->catalog: callers sharing one OutfitSetup
// between threads serialise calls that pass it.
nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits);

}  // namespace m2fp::service
