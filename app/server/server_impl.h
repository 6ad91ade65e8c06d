// app/server/server_impl.h: the server's rooms wired together (Server::Impl), shared by the files of
// app/server/ that implement its parts: routes.cpp (the endpoints), results.cpp (answers from an
// analysis), status.cpp (/health, /metrics gauges) and server.cpp (set-up and the public interface).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/server/catalog_watch.h"
#include "app/server/http.h"
#include "app/server/jobs.h"
#include "app/server/metrics.h"
#include "app/server/request.h"
#include "app/server/server.h"
#include "app/server/status.h"
#include "outfit/outfit.h"
#include "service/analysis.h"
#include "service/parse_queue.h"
#include "service/session.h"

namespace m2fp::app {

struct Server::Impl {
  using Clock = std::chrono::steady_clock;

  ServeOptions opt;
  Clock::time_point started = Clock::now();
  int threads_per_worker = 1;
  Metrics metrics;
  std::unique_ptr<ModelFileWatch> model_file;  // made before the model is loaded
  std::unique_ptr<service::Session> session;
  OutfitKit kit;
  std::unique_ptr<CatalogWatch> catalog;
  std::unique_ptr<service::ParseQueue> queue;
  JobStore jobs;
  HttpServer http;
  int bound_port = -1;
  std::atomic<bool> stopping{false};

  // Checks the options, loads the model, the outfit tables and the catalogue, starts the workers.
  explicit Impl(const ServeOptions& o);

  // ---- routes.cpp: the endpoints
  void add_routes();
  void handle_asset(const std::string& name, httplib::Response& res);
  void handle_predict(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void handle_recommend(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void handle_job_submit(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void handle_job_get(const httplib::Request& req, httplib::Response& res);
  void handle_batch(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void handle_openapi(httplib::Response& res);
  // The per-request parse options' limits (the server's resize), the class names masks_union is
  // checked against, and the most photos one batch may hold (the queue's places when idle).
  ParseLimits parse_limits() const;
  std::vector<std::string> class_names() const;
  size_t max_batch() const;
  // When a request that arrived at t0 stops waiting for the engine (504).
  Clock::time_point deadline_from(Clock::time_point t0) const {
    return t0 + std::chrono::milliseconds((int64_t)(opt.timeout_s * 1000));
  }

  // ---- results.cpp: answers from an analysis
  // The /predict body: the per-request keys (model, cached, timings_ms), then the analysis's.
  // "options": the options in effect (options_json).
  std::string predict_text(const service::Analysis& a, bool cached, double queue_ms, Clock::time_point t0,
                           const service::AnalysisOptions& ao, const service::PredictForm& form) const;
  // The /recommend body: every person's garments and suggestions from the catalogue as it is now.
  nlohmann::json recommend_body(const service::Analysis& a, const RecommendOptions& ro, bool cached, double queue_ms,
                                Clock::time_point t0, const service::AnalysisOptions& ao);

  // ---- status.cpp: health and gauges
  nlohmann::json health();
  Gauges gauges();
  double uptime_s() const;
};

}  // namespace m2fp::app
