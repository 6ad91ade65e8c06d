// service/result_doc.h: the result document of one parsed photo: what `m2fp parse` writes as
// result.json and the C API's m2fp_result_json() returns (docs/OUTPUTS.md describes its keys).
#pragma once

#include <functional>
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
// Its two costly halves, the masks' RLE (parsing_json) and the outfit analysis, run side by side
// (run_side_by_side, engine/side_by_side.h).
nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits);

// What `m2fp parse` does after the parse, on one team of threads() threads: `pictures` (jobs that each
// render, encode and write one picture file; the costliest first) side by side with result_document's
// two halves, in the order outfit analysis, pictures[0], masks' RLE, the other pictures. Returns the
// document (result_document's, the same keys and values) and sets *write_ms to the milliseconds from
// the start to the last picture written (timings_ms.write). Errors: a picture's first (in the order
// given), then the document's.
nlohmann::json result_document_beside(const Session& session, const ParseResult& r, const nlohmann::json& file,
                                      const std::vector<std::string>& outputs, const OutfitSetup* outfits,
                                      const std::vector<std::function<void()>>& pictures, double* write_ms);

}  // namespace m2fp::service
