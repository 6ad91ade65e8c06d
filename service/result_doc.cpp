// service/result_doc.cpp: result.json for one parsed photo (`m2fp parse`, the C API).
#include "service/result_doc.h"

#include <atomic>
#include <chrono>
#include <stdexcept>

#include "service/masks.h"
#include "service/report.h"

namespace m2fp::service {

std::vector<SideTask> outfit_tasks(const ParseResult& r, const OutfitSetup* outfits, DocumentParts* parts) {
  if (!outfits || !outfits->kit) return {};
  return {[&r, outfits, parts] {
    const auto t0 = std::chrono::steady_clock::now();
    parts->people = extract_outfits(r.parsing, r.image, outfits->kit->garments, outfits->kit->garment_options);
    const std::vector<CatalogItem> items = outfits->catalog->items();
    parts->advice = advise_outfits(parts->people, &items, outfits->reco, outfits->kit->rules);
    parts->catalog_items = items.size();
    parts->outfits_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    parts->analysed = true;
  }};
}

std::vector<SideTask> mask_tasks(const ParseResult& r, DocumentParts* parts) {
  const Parsing& p = r.parsing;
  parts->masks.assign(p.instances.size(), nlohmann::json());
  std::vector<SideTask> tasks;
  for (size_t i = 0; i < p.instances.size(); ++i)
    tasks.push_back([&p, parts, i] { parts->masks[i] = instance_rle(p.instances[i], p.width, p.height); });
  return tasks;
}

nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits,
                               DocumentParts&& parts) {
  const Parsing& p = r.parsing;
  if (parts.masks.size() != p.instances.size())
    throw std::logic_error("result_document: the parts hold " + std::to_string(parts.masks.size()) +
                           " masks for " + std::to_string(p.instances.size()) + " instances");
  const bool analyse = outfits && outfits->kit;
  if (analyse && !parts.analysed) throw std::logic_error("result_document: the outfit task has not run");
  nlohmann::json j = parsing_json(p, std::move(parts.masks));
  j["image"] = {{"file", file},
                {"width", r.image.width},
                {"height", r.image.height},
                {"network_input", {{"height", r.geometry.nh}, {"width", r.geometry.nw}}},
                {"padded", {{"height", r.geometry.Hp}, {"width", r.geometry.Wp}}}};
  j["model"] = session.model_json();
  j["threads"] = threads();
  j["timings_ms"] = timings_json(r.timings);
  j["outputs"] = outputs;
  if (analyse) {
    add_person_garments(j, parts.people);
    j["outfits"] = std::move(parts.advice);
    j["catalog"] = {{"path", outfits->catalog_name}, {"items", parts.catalog_items}};
    j["timings_ms"]["outfits"] = parts.outfits_ms;
  }
  return j;
}

nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits,
                               std::vector<SideTask> beside, double* beside_ms) {
  DocumentParts parts;
  std::vector<SideTask> tasks = outfit_tasks(r, outfits, &parts);
  const size_t first_beside = tasks.size(), end_beside = first_beside + beside.size();
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int64_t> last_ns{0};  // the last of `beside` done, from t0
  for (SideTask& t : beside)
    tasks.push_back([t = std::move(t), &last_ns, t0] {
      t();
      const int64_t ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
      for (int64_t seen = last_ns.load(); ns > seen && !last_ns.compare_exchange_weak(seen, ns);) {
      }
    });
  for (SideTask& t : mask_tasks(r, &parts)) tasks.push_back(std::move(t));
  const std::vector<std::exception_ptr> errors = run_side_by_side(tasks, threads());
  for (size_t i = first_beside; i < end_beside; ++i)
    if (errors[i]) std::rethrow_exception(errors[i]);
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  if (beside_ms) *beside_ms = (double)last_ns.load() / 1e6;
  return result_document(session, r, file, outputs, outfits, std::move(parts));
}

nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits) {
  return result_document(session, r, file, outputs, outfits, {}, nullptr);
}

}  // namespace m2fp::service
