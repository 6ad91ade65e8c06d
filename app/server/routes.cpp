// app/server/routes.cpp: the table of endpoints and their handlers (docs/SERVICE.md describes them).
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "app/server/server_impl.h"
#include "app/server/web_assets.h"

namespace m2fp::app {

void Server::Impl::add_routes() {
  using Req = httplib::Request;
  using Res = httplib::Response;
  // POST bodies are read by the handlers themselves (ContentReader): the same limit for every framing.
  using Reader = httplib::ContentReader;
  // clang-format off
  http.Get("/",          [this](const Req&, Res& res) { handle_asset("index.html", res); });
  http.Get(R"(/([A-Za-z0-9_-]+\.(html|js|css|svg|png|ico)))",
                         [this](const Req& req, Res& res) { handle_asset(req.matches[1], res); });
  http.Get("/health",    [this](const Req&, Res& res) { send_json(res, 200, health()); });
  http.Get("/openapi.json", [this](const Req&, Res& res) { handle_openapi(res); });
  http.Get("/metrics",   [this](const Req&, Res& res) {
    res.set_content(metrics.prometheus(gauges()), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Post("/predict",   [this](const Req& req, Res& res, const Reader& r) { handle_predict(req, res, r); });
  http.Post("/recommend", [this](const Req& req, Res& res, const Reader& r) { handle_recommend(req, res, r); });
  http.Post("/batch",     [this](const Req& req, Res& res, const Reader& r) { handle_batch(req, res, r); });
  http.Post("/jobs",      [this](const Req& req, Res& res, const Reader& r) { handle_job_submit(req, res, r); });
  http.Get(R"(/jobs/([A-Za-z0-9]+))",
                         [this](const Req& req, Res& res) { handle_job_get(req, res); });
  // clang-format on
}

// The web page's files: embedded at build time (web/), or read from --web-dir.
void Server::Impl::handle_asset(const std::string& name, httplib::Response& res) {
  const WebAsset* a = find_web_asset(name);
  if (!a) return send_error(res, 404, "no such file: /" + name);
  res.set_header("Cache-Control", "no-cache");
  if (!opt.web_dir.empty()) {
    std::ifstream f(opt.web_dir + "/" + name, std::ios::binary);
    if (!f) return send_error(res, 404, "no such file in --web-dir: " + name);
    std::stringstream ss;
    ss << f.rdbuf();
    res.set_content(ss.str(), a->content_type);
    return;
  }
  res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
}

ParseLimits Server::Impl::parse_limits() const {
  const ParseOptions& po = session->options().parse;
  return {po.short_edge, po.max_size};
}

std::vector<std::string> Server::Impl::class_names() const {
  return session->model() ? session->model()->config().classes : service::cihp_classes();
}

size_t Server::Impl::max_batch() const {
  return std::max<size_t>(queue->pool().capacity(), (size_t)queue->pool().workers());
}

// GET /openapi.json: docs/openapi.json, embedded at build time.
void Server::Impl::handle_openapi(httplib::Response& res) {
  const WebAsset* a = find_doc_asset("openapi.json");
  if (!a) return send_error(res, 404, "no API description was built into this binary");
  res.set_header("Cache-Control", "no-cache");
  res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
}

void Server::Impl::handle_predict(const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
  const auto t0 = request_start();
  guarded(res, [&] {
    Body body = read_body(req, reader, opt.max_upload_bytes);
    const service::AnalysisOptions ao = read_analysis_options(req, body, parse_limits());
    const service::PredictForm form = read_predict_form(req, body, class_names());
    const Upload up = read_upload(req, body, opt.max_pixels);
    bool cached = false;
    double queue_ms = 0;
    service::AnalysisPtr a =
        queue->obtain(up.sha, up.bytes, deadline_from(t0), opt.timeout_s, &cached, &queue_ms, ao);
    res.set_header("X-Cache", cached ? "hit" : "miss");
    res.status = 200;
    res.set_content(predict_text(*a, cached, queue_ms, t0, ao, form), "application/json");
  });
}

// POST /batch: every photo of the request, each answered as /predict would (or with its own error),
// in order. The photos that need a parse are queued all together or not at all (429): a batch takes
// one place in the queue per photo it adds.
void Server::Impl::handle_batch(const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader) {
  const auto t0 = request_start();
  guarded(res, [&] {
    Body body = read_body(req, reader, opt.max_upload_bytes);
    const service::AnalysisOptions ao = read_analysis_options(req, body, parse_limits());
    const service::PredictForm form = read_predict_form(req, body, class_names());
    std::vector<std::string> photos = read_batch_photos(req, body);
    if (photos.size() > max_batch())
      throw HttpError(400, "a batch holds at most " + std::to_string(max_batch()) + " photos (the places of the " +
                               "engine queue: the larger of --queue and --workers), got " +
                               std::to_string(photos.size()) + "; split it");
    struct Item {
      std::string error;  // set: this photo's answer is {"error", "status"}
      int status = 0;
      Upload up;
      service::AnalysisPtr analysis;
      bool cached = false;
      size_t pending = SIZE_MAX;  // index into `pendings`
    };
    std::vector<Item> items(photos.size());
    std::vector<service::PhotoRef> refs;
    for (size_t i = 0; i < photos.size(); ++i) {
      Item& it = items[i];
      try {
        it.up = check_upload(std::move(photos[i]), opt.max_pixels);
      } catch (const HttpError& e) {
        it.error = e.what();
        it.status = e.status;
        continue;
      }
      if ((it.analysis = queue->cached(it.up.sha, ao))) {
        it.cached = true;
        continue;
      }
      it.pending = refs.size();
      refs.push_back({it.up.sha, it.up.bytes});
    }
    std::vector<std::shared_ptr<service::Pending>> pendings;
    if (!refs.empty()) pendings = queue->acquire_all(refs, ao);  // 429 for the whole batch when it does not fit
    std::string out = "{\"results\":[";
    size_t failed = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      Item& it = items[i];
      double queue_ms = 0;
      if (it.pending != SIZE_MAX) {
        try {
          it.analysis = queue->await(pendings[it.pending], deadline_from(t0), opt.timeout_s, &queue_ms);
        } catch (const HttpError& e) {
          it.error = e.what();
          it.status = e.status;
        }
      }
      if (i) out += ',';
      if (it.analysis) {
        out += predict_text(*it.analysis, it.cached, queue_ms, t0, ao, form);
      } else {
        ++failed;
        out += nlohmann::json({{"error", it.error}, {"status", it.status}})
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
    }
    out += "],\"count\":" + std::to_string(items.size()) + ",\"failed\":" + std::to_string(failed) + "}";
    res.status = 200;
    res.set_content(out, "application/json");
  });
}

void Server::Impl::handle_recommend(const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader) {
  const auto t0 = request_start();
  guarded(res, [&] {
    Body body = read_body(req, reader, opt.max_upload_bytes);
    const RecommendOptions ro = read_reco(req, body, kit.rules);
    const service::AnalysisOptions ao = read_analysis_options(req, body, parse_limits());
    service::AnalysisPtr a;
    bool cached = false;
    double queue_ms = 0;
    const std::string sha = field(req, body, "sha256");
    if (!sha.empty() && !body.has_image()) {
      // A photo parsed before: no upload needed while its result is in the cache.
      if (!is_hex64(sha)) throw HttpError(400, "sha256 must be 64 lower-case hex digits");
      a = queue->cached(sha, ao);
      if (!a) throw HttpError(404, "no cached result for sha256 " + sha + ": upload the photo (field 'image')");
      cached = true;
    } else {
      const Upload up = read_upload(req, body, opt.max_pixels);
      a = queue->obtain(up.sha, up.bytes, deadline_from(t0), opt.timeout_s, &cached, &queue_ms, ao);
    }
    res.set_header("X-Cache", cached ? "hit" : "miss");
    send_json(res, 200, recommend_body(*a, ro, cached, queue_ms, t0, ao));
  });
}

void Server::Impl::handle_job_submit(const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
  guarded(res, [&] {
    Body body = read_body(req, reader, opt.max_upload_bytes);
    std::string task = field(req, body, "task");
    if (task.empty()) task = "predict";
    if (task != "predict" && task != "recommend")
      throw HttpError(400, "task must be 'predict' or 'recommend', got '" + task + "'");
    auto job = std::make_shared<Job>();
    job->task = task;
    if (task == "recommend") job->reco = read_reco(req, body, kit.rules);
    const service::AnalysisOptions ao = read_analysis_options(req, body, parse_limits());
    job->options = ao;
    if (task == "predict") job->form = read_predict_form(req, body, class_names());
    const Upload up = read_upload(req, body, opt.max_pixels);
    size_t kept = 0;
    if (!jobs.make_room(&kept))
      throw HttpError(429, "too many unfinished jobs (" + std::to_string(kept) + ")", queue->retry_after_s());
    if (service::AnalysisPtr a = queue->cached(up.sha, ao)) {
      job->analysis = a;
      job->cached = true;
      job->status = 200;
      job->finished = Job::Clock::now();
    } else {
      job->pending = queue->acquire(up.sha, up.bytes, ao);  // the job stays a waiter until it is collected
    }
    const std::string state = jobs.add(job);
    res.set_header("Location", "/jobs/" + job->id);
    send_json(res, 202, {{"id", job->id}, {"task", task}, {"state", state}, {"url", "/jobs/" + job->id},
                         {"image", {{"sha256", up.sha}, {"bytes", up.bytes->size()}}},
                         {"options", options_json(ao, task == "predict" ? &job->form : nullptr)}});
  });
}

void Server::Impl::handle_job_get(const httplib::Request& req, httplib::Response& res) {
  const auto t0 = request_start();
  guarded(res, [&] {
    const std::string id = req.matches[1];
    std::string state;
    const std::shared_ptr<Job> job = jobs.find(id, &state);
    if (!job)
      throw HttpError(404, "no job " + id + " (unknown, or finished more than " + std::to_string((int)jobs.ttl_s()) +
                               " s ago)");
    nlohmann::json j = {{"id", job->id}, {"task", job->task}, {"state", state},
                        {"age_ms", std::chrono::duration<double, std::milli>(Clock::now() - job->created).count()}};
    if (state == "queued") j["queue_depth"] = queue->pool().depth();
    if (state == "failed") j["error"] = {{"error", job->error}, {"status", job->status}};
    if (state == "done" && job->task == "recommend")
      j["result"] = recommend_body(*job->analysis, job->reco, job->cached, job->queue_ms, t0, job->options);
    if (state == "done" && job->task == "predict") {
      // {"id": ..., "result": <the /predict body>}
      std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      text.pop_back();
      text += ",\"result\":" + predict_text(*job->analysis, job->cached, job->queue_ms, t0, job->options, job->form) +
              "}";
      res.status = 200;
      res.set_content(text, "application/json");
      return;
    }
    send_json(res, 200, j);
  });
}

}  // namespace m2fp::app
