// app/server/results.cpp: the /predict and /recommend answers (and their /jobs forms) from an analysis.
#include "app/server/server_impl.h"

#include "outfit/outfit.h"

namespace m2fp::app {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The keys every answer from an analysis carries: the model, whether it came from the cache, and the
// analysis's timings with this request's own (queue_wait: 0 from the cache; request: until now).
void add_request_keys(nlohmann::json& j, const nlohmann::json& model, nlohmann::json timings, bool cached,
                      double queue_ms, Clock::time_point t0) {
  j["model"] = model;
  j["cached"] = cached;
  timings["queue_wait"] = cached ? 0.0 : queue_ms;
  timings["request"] = ms_between(t0, Clock::now());
  j["timings_ms"] = std::move(timings);
}

}  // namespace

std::string Server::Impl::predict_text(const service::Analysis& a, bool cached, double queue_ms,
                                       Clock::time_point t0, const service::AnalysisOptions& ao,
                                       const service::PredictForm& form) const {
  nlohmann::json head;
  add_request_keys(head, session->model_json(), a.timings, cached, queue_ms, t0);
  head["options"] = options_json(ao, &form);
  std::string out = head.dump();
  out.pop_back();  // the closing brace: the ModelScope keys and the analysis's keys follow
  const std::string ms = service::predict_masks_text(a, form);
  out.reserve(out.size() + ms.size() + a.predict_text.size() + 2);
  out += ',';
  out.append(ms, 1, ms.size() - 2);
  out += ',';
  out.append(a.predict_text, 1, std::string::npos);
  return out;
}

nlohmann::json Server::Impl::recommend_body(const service::Analysis& a, const RecommendOptions& ro, bool cached,
                                            double queue_ms, Clock::time_point t0,
                                            const service::AnalysisOptions& ao) {
  const auto items_now = catalog->items();
  const auto r0 = Clock::now();
  nlohmann::json j;
  j["persons"] = advise_outfits(a.outfits, items_now.get(), ro, kit.rules);
  j["options"] = {{"style", ro.style}, {"occasion", ro.occasion}, {"season", ro.season}, {"k", ro.k}};
  if (ro.max_price > 0) j["options"]["max_price"] = ro.max_price;
  j["options"].update(options_json(ao));
  j["labels"] = a.meta["labels"];
  j["legend"] = a.meta["legend"];
  j["image"] = a.meta["image"];
  j["catalog"] = {{"path", catalog->path()}, {"items", items_now->size()}};
  nlohmann::json t = a.timings;
  t["recommend"] = ms_between(r0, Clock::now());
  add_request_keys(j, session->model_json(), std::move(t), cached, queue_ms, t0);
  return j;
}

}  // namespace m2fp::app
