// service/result_doc.h: the result document of one parsed photo: what `m2fp parse` writes as
// result.json and the C API's m2fp_result_json() returns (docs/OUTPUTS.md describes its keys).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/pipeline.h"
#include "outfit/garments.h"
#include "service/outfits.h"
#include "service/session.h"
#include "service/side_by_side.h"

namespace m2fp::service {

// parsing_json(r.parsing) plus "image" ({"file": file, sizes}), "model", "threads", "timings_ms",
// "outputs" and, when `outfits` is given (its kit loaded), every person's "garments", "outfits" with
// the catalogue's recommendations and "catalog". `file` is the photo's path, or null when the photo
// came as bytes or pixels. The outfit part reads outfits->catalog: callers sharing one OutfitSetup
// between threads serialise calls that pass it. Its costly parts are made side by side on the
// threads (DocumentParts below).
nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits);
// The same with other tasks run beside its parts (`m2fp parse`'s pictures: pictures.h), all side by side:
// the outfit analysis first (the longest), then `beside` in their order, then the masks. The first error
// of `beside` is rethrown before any of the document's (the pictures' IoError before an outfit error);
// *beside_ms, when given: from the start to the last of `beside` done (result.json's timings_ms.write).
nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits,
                               std::vector<SideTask> beside, double* beside_ms);

// The parts of the document that cost time on a large photo, made by tasks for run_side_by_side
// (beside other work, as `m2fp parse` makes its pictures beside them): the outfit analysis (garments,
// dominant colours, recommendations) as one task, each instance's COCO RLE as one. The tasks refer to
// r, outfits and the parts, which must outlive them.
struct DocumentParts {
  std::vector<nlohmann::json> masks;  // [instances]: instance_rle
  bool analysed = false;              // the outfit task ran
  std::vector<PersonOutfit> people;
  nlohmann::json advice;
  size_t catalog_items = 0;
  double outfits_ms = 0;  // the outfit task, start to end (timings_ms.outfits)
};
// The outfit analysis task (none when `outfits` has no kit) and the masks' tasks, to run in that
// order (the analysis is the longest); then the document from the parts they made.
std::vector<SideTask> outfit_tasks(const ParseResult& r, const OutfitSetup* outfits, DocumentParts* parts);
std::vector<SideTask> mask_tasks(const ParseResult& r, DocumentParts* parts);
nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits,
                               DocumentParts&& parts);

}  // namespace m2fp::service
