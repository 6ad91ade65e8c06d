// app/server/routes.cpp: the table of endpoints and their handlers (docs/SERVICE.md describes them).
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
  http.Get("/metrics",   [this](const Req&, Res& res) {
    res.set_content(metrics.prometheus(gauges()), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Post("/predict",   [this](const Req& req, Res& res, const Reader& r) { handle_predict(req, res, r); });
  http.Post("/recommend", [this](const Req& req, Res& res, const Reader& r) { handle_recommend(req, res, r); });
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

void Server::Impl::handle_predict(const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
  const auto t0 = request_start();
  guarded(res, [&] {
    Body body = read_body(req, reader, opt.max_upload_bytes);
    const service::AnalysisOptions ao = read_analysis_options(req, body);
    const Upload up = read_upload(req, body, opt.max_pixels);
    service::PredictForm form;
    try {
      form.format = service::parse_mask_format(field(req, body, "mask_format"));
      form.label_set = service::parse_label_set(field(req, body, "label_set"));
      form.masks_union = service::parse_union_names(field(req, body, "masks_union"), session->model() ? session->model()->config().classes : service::cihp_classes());
      const std::string d = field(req, body, "mask_dilate");
      form.dilate = d.empty() ? 0 : std::stoi(d);
      if (form.dilate < 0 || form.dilate > 256) throw std::invalid_argument("mask_dilate must be 0..256");
    } catch (const std::invalid_argument& e) {
      throw HttpError(400, e.what());
    } catch (const std::out_of_range&) {
      throw HttpError(400, "mask_dilate out of range");
    }
    bool cached = false;
    double queue_ms = 0;
    service::AnalysisPtr a =
        queue->obtain(up.sha, up.bytes, deadline_from(t0), opt.timeout_s, &cached, &queue_ms, ao);
    res.set_header("X-Cache", cached ? "hit" : "miss");
    res.status = 200;
    res.set_content(predict_text(*a, cached, queue_ms, t0, form), "application/json");
  });
}

void Server::Impl::handle_recommend(const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader) {
  const auto t0 = request_start();
  guarded(res, [&] {
    Body body = read_body(req, reader, opt.max_upload_bytes);
    const RecommendOptions ro = read_reco(req, body, kit.rules);
    const service::AnalysisOptions ao = read_analysis_options(req, body);
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
    send_json(res, 200, recommend_body(*a, ro, cached, queue_ms, t0));
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
    const service::AnalysisOptions ao = read_analysis_options(req, body);
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
                         {"image", {{"sha256", up.sha}, {"bytes", up.bytes->size()}}}});
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
      j["result"] = recommend_body(*job->analysis, job->reco, job->cached, job->queue_ms, t0);
    if (state == "done" && job->task == "predict") {
      // {"id": ..., "result": <the /predict body>}
      std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      text.pop_back();
      text += ",\"result\":" + predict_text(*job->analysis, job->cached, job->queue_ms, t0) + "}";
      res.status = 200;
      res.set_content(text, "application/json");
      return;
    }
    send_json(res, 200, j);
  });
}

}  // namespace m2fp::app
