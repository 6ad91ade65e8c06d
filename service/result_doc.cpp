// service/result_doc.cpp: result.json for one parsed photo (`m2fp parse`, the C API).
#include "service/result_doc.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>

#include "engine/side_by_side.h"
#include "service/report.h"

namespace m2fp::service {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The outfit half of the document: garments per person, the catalogue's suggestions.
struct OutfitPart {
  std::vector<PersonOutfit> persons;
  nlohmann::json advice;
  size_t catalog_items = 0;
  double ms = 0;
};

OutfitPart outfit_part(const ParseResult& r, const OutfitSetup& outfits) {
  const auto o0 = Clock::now();
  OutfitPart o;
  o.persons = extract_outfits(r.parsing, r.image, outfits.kit->garments, outfits.kit->garment_options);
  const std::vector<CatalogItem> items = outfits.catalog->items();
  o.advice = advise_outfits(o.persons, &items, outfits.reco, outfits.kit->rules);
  o.catalog_items = items.size();
  o.ms = ms_between(o0, Clock::now());
  return o;
}

// The document from its halves: `j` is parsing_json(r.parsing); `o` the outfit half, when outfits.
nlohmann::json assemble(nlohmann::json j, const Session& session, const ParseResult& r, const nlohmann::json& file,
                        const std::vector<std::string>& outputs, const OutfitSetup* outfits, OutfitPart* o) {
  j["image"] = {{"file", file},
                {"width", r.image.width},
                {"height", r.image.height},
                {"network_input", {{"height", r.geometry.nh}, {"width", r.geometry.nw}}},
                {"padded", {{"height", r.geometry.Hp}, {"width", r.geometry.Wp}}}};
  j["model"] = session.model_json();
  j["threads"] = threads();
  j["timings_ms"] = timings_json(r.timings);
  j["outputs"] = outputs;
  if (o) {
    add_person_garments(j, o->persons);
    j["outfits"] = std::move(o->advice);
    j["catalog"] = {{"path", outfits->catalog_name}, {"items", o->catalog_items}};
    j["timings_ms"]["outfits"] = o->ms;
  }
  return j;
}

}  // namespace

nlohmann::json result_document(const Session& session, const ParseResult& r, const nlohmann::json& file,
                               const std::vector<std::string>& outputs, const OutfitSetup* outfits) {
  return result_document_beside(session, r, file, outputs, outfits, {}, nullptr);
}

nlohmann::json result_document_beside(const Session& session, const ParseResult& r, const nlohmann::json& file,
                                      const std::vector<std::string>& outputs, const OutfitSetup* outfits,
                                      const std::vector<std::function<void()>>& pictures, double* write_ms) {
  const bool with_outfits = outfits && outfits->kit;
  nlohmann::json parsing;
  OutfitPart o;
  std::exception_ptr doc_error;
  std::vector<std::exception_ptr> picture_error(pictures.size());
  const auto t0 = Clock::now();
  std::atomic<int64_t> last_picture_ns{0};  // the last picture's end, ns after t0
  std::vector<std::function<void()>> jobs;
  auto doc_job = [&](auto f) {
    return [&doc_error, f] {
      try {
        f();
      } catch (...) {
#pragma omp critical(m2fp_result_doc_error)
        if (!doc_error) doc_error = std::current_exception();
      }
    };
  };
  auto picture_job = [&](size_t i) {
    return [&, i] {
      try {
        pictures[i]();
      } catch (...) {
        picture_error[i] = std::current_exception();
      }
      const int64_t end = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
      int64_t seen = last_picture_ns.load();
      while (end > seen && !last_picture_ns.compare_exchange_weak(seen, end)) {
      }
    };
  };
  if (with_outfits) jobs.push_back(doc_job([&] { o = outfit_part(r, *outfits); }));
  if (!pictures.empty()) jobs.push_back(picture_job(0));
  jobs.push_back(doc_job([&] { parsing = parsing_json(r.parsing); }));
  for (size_t i = 1; i < pictures.size(); ++i) jobs.push_back(picture_job(i));
  run_side_by_side(jobs);
  if (write_ms) *write_ms = last_picture_ns.load() * 1e-6;
  for (const std::exception_ptr& e : picture_error)
    if (e) std::rethrow_exception(e);
  if (doc_error) std::rethrow_exception(doc_error);
  return assemble(std::move(parsing), session, r, file, outputs, outfits, with_outfits ? &o : nullptr);
}

}  // namespace m2fp::service
