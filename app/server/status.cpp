// app/server/status.cpp: GET /health and the gauges of GET /metrics, and the model file's state.
#include "app/server/status.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "app/server/server_impl.h"

namespace m2fp::app {

ModelFileWatch::ModelFileWatch(const std::string& path, bool stub) : path_(path), stub_(stub) {
  if (!stub_) loaded_ok_ = ::stat(path_.c_str(), &loaded_) == 0;
}

nlohmann::json ModelFileWatch::status() {
  nlohmann::json j = {{"path", path_}};
  if (stub_) {
    j["state"] = "stub";
    return j;
  }
  j["loaded_bytes"] = loaded_ok_ ? (int64_t)loaded_.st_size : -1;
  struct stat now;
  std::string state, what;
  if (::stat(path_.c_str(), &now) != 0) {
    state = "missing";
    what = std::string("cannot be read any more (") + std::strerror(errno) + ")";
  } else if (!loaded_ok_) {
    state = "unknown";
  } else if (now.st_dev != loaded_.st_dev || now.st_ino != loaded_.st_ino || now.st_size != loaded_.st_size ||
             now.st_mtim.tv_sec != loaded_.st_mtim.tv_sec || now.st_mtim.tv_nsec != loaded_.st_mtim.tv_nsec) {
    state = "changed";
    what = "has changed (" + std::to_string((int64_t)loaded_.st_size) + " bytes when loaded, " +
           std::to_string((int64_t)now.st_size) + " now" + (now.st_ino != loaded_.st_ino ? ", another file" : "") +
           ")";
  } else {
    state = "unchanged";
  }
  j["state"] = state;
  if (!what.empty()) {
    const std::string note = "the model file " + what +
                             "; this server keeps serving the weights it loaded at start "
                             "(they are held in memory); restart it to load the new file";
    j["note"] = note;
    if (!change_logged_.exchange(true)) std::fprintf(stderr, "m2fp serve: %s: %s\n", path_.c_str(), note.c_str());
  }
  return j;
}

double Server::Impl::uptime_s() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - started).count() / 1000;
}

nlohmann::json Server::Impl::health() {
  const auto cs = queue->cache_stats();
  const auto items_now = catalog->items();
  const service::WorkPool& pool = queue->pool();
  nlohmann::json occasions = nlohmann::json::array();
  for (const auto& kv : kit.rules.occasions) occasions.push_back(kv.first);
  const ParseOptions& po = session->options().parse;
  return {{"status", stopping ? "stopping" : "ok"},
          {"model", session->model_json()},
          {"model_file", model_file->status()},
          {"workers", pool.workers()},
          {"threads_per_worker", threads_per_worker},
          {"busy", pool.busy()},
          {"queue", {{"depth", pool.depth()}, {"capacity", pool.capacity()},
                     {"engine_s_median", queue->typical_engine_s()}}},
          {"cache", {{"entries", cs.entries}, {"bytes", cs.bytes}, {"max_bytes", cs.max_bytes},
                     {"hits", cs.hits}, {"misses", cs.misses}}},
          {"catalog", {{"path", catalog->path()}, {"items", items_now->size()}}},
          {"limits", {{"max_upload_bytes", opt.max_upload_bytes}, {"max_pixels", po.decode.max_pixels},
                      {"timeout_s", opt.timeout_s}, {"header_timeout_s", opt.header_timeout_s},
                      {"body_timeout_s", opt.body_timeout_s}, {"keep_alive_timeout_s", opt.keep_alive_timeout_s},
                      {"keep_alive_max", opt.keep_alive_max}, {"max_conns_per_client", opt.max_conns_per_client}, {"max_batch", max_batch()}}},
          {"cors", opt.cors_origins},
          {"parse", {{"short_edge", po.short_edge}, {"max_size", po.max_size}}},
          {"options", {{"styles", kit.rules.styles}, {"occasions", occasions}, {"seasons", kit.rules.seasons}}},
          {"uptime_s", uptime_s()},
          {"version", "0.1.0"}};
}

Gauges Server::Impl::gauges() {
  Gauges g;
  const auto cs = queue->cache_stats();
  const service::WorkPool& pool = queue->pool();
  g.queue_depth = (double)pool.depth();
  g.queue_capacity = (double)pool.capacity();
  g.workers = pool.workers();
  g.workers_busy = pool.busy();
  g.cache_entries = (double)cs.entries;
  g.cache_bytes = (double)cs.bytes;
  g.cache_max_bytes = (double)cs.max_bytes;
  g.cache_hits = cs.hits;
  g.cache_misses = cs.misses;
  g.cache_evictions = cs.evictions;
  g.uptime_s = uptime_s();
  g.http_connections = (double)http.open_connections();
  g.synthetic = session->synthetic();
  g.jobs = jobs.counts();
  return g;
}

}  // namespace m2fp::app
