// service/result_doc.cpp: result.json for one parsed photo (`m2fp parse`, the C API).
#include "service/result_doc.h"

#include <chrono>

#include "service/report.h"

namespace m2fp::service {

nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits) {
  const Parsing& p = r.parsing;
  nlohmann::json j = parsing_json(p);
  j["image"] = {{"file", file},
                {"width", r.image.width},
                {"height", r.image.height},
                {"network_input", {{"height", r.geometry.nh}, {"width", r.geometry.nw}}},
                {"padded", {{"height", r.geometry.Hp}, {"width", r.geometry.Wp}}}};
  j["model"] = session.model_json();
  j["threads"] = threads();
  j["timings_ms"] = timings_json(r.timings);
  j["outputs"] = outputs;
  if (outfits && outfits->kit) {
    const auto o0 = std::chrono::steady_clock::now();
    const std::vector<PersonOutfit> po =
        extract_outfits(p, r.image, outfits->kit->garments, outfits->kit->garment_options);
    add_person_garments(j, po);
    const std::vector<CatalogItem> items = outfits->catalog->items();
    j["outfits"] = advise_outfits(po, &items, outfits->reco, outfits->kit->rules);
    j["catalog"] = {{"path", outfits->catalog_name}, {"items", items.size()}};
    j["timings_ms"]["outfits"] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - o0).count();
  }
  return j;
}

}  // namespace m2fp::service
