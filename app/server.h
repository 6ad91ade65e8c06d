// app/server.h: the outfit service behind `m2fp serve` (docs/SERVICE.md documents the HTTP API).
//
//   GET  /                 the web page (web/, embedded in the binary at build time)
//   POST /predict          photo -> labels, per-label masks, coloured mask, instances, persons + garments
//   POST /recommend        photo (or the SHA-256 of one already parsed) -> per person garments + suggestions
//   POST /jobs             the same work asynchronously: 202 + id;  GET /jobs/{id}: state and result
//   GET  /health           model, workers, queue, cache, catalogue, limits
//   GET  /metrics          Prometheus text
//
// Shape: cpp-httplib's own thread pool runs the handlers; every engine call goes to a WorkPool of
// `workers` threads sharing one M2FP (each with threads/workers OpenMP threads) behind a bounded queue
// (429 + Retry-After when full). Handlers wait for their photo with a deadline (504 after timeout_s).
// Results are cached by the photo's SHA-256 and the parse options (LRU, bounded in bytes); identical
// photos in flight at the same time are parsed once. Uploads are limited in size (413) and in pixels
// (decode_image checks the header before decoding). Every error is a JSON {"error", "status"} body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace m2fp {
struct ForwardHooks;
}

namespace m2fp::app {

struct ServeOptions {
  std::string model_path;
  std::string host = "127.0.0.1";
  int port = 5000;                          // 0: any free port (Server::port() says which)
  std::string catalog_path;                 // SQLite catalogue; "" = default_catalog_path()
  std::string precision = "fp32";           // fp32 | bf16
  int threads = 0;                          // OpenMP threads for the engine in all; 0 = all cores
  int workers = 1;                          // engine workers sharing the model
  int queue = 8;                            // photos that may wait for a worker
  int http_threads = 0;                     // cpp-httplib handler threads; 0 = 2 * (workers + queue) + 8
  size_t max_upload_bytes = 20u << 20;      // request body limit (413 above)
  int64_t max_pixels = 50'000'000;          // decoded photo limit, checked on the header (400 above)
  double timeout_s = 120;                   // per-request deadline while waiting for the engine (504)
  size_t cache_bytes = 256u << 20;          // result cache budget; 0 disables the cache
  size_t cache_entries = 512;
  int short_edge = 640, max_size = 1333;    // multi-person resize (ParseOptions)
  int max_jobs = 256;                       // asynchronous jobs kept (finished ones dropped first)
  double job_ttl_s = 600;                   // finished jobs are forgotten after this
  std::string web_dir;                      // serve the page from this folder instead of the embedded copy
  bool access_log = true;                   // one stderr line per request
  const ForwardHooks* hooks = nullptr;      // engine hooks (tests hold a worker busy with one)
};

class Server {
 public:
  // Loads the model, the outfit tables and the catalogue (created from the seed CSV on first use),
  // starts the workers and binds the socket. Throws with a clear message on any failure.
  explicit Server(const ServeOptions& opt);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;            // the bound port
  std::string url() const;     // http://host:port
  // Serves until stop() (from any thread). Returns false if the listener failed.
  bool run();
  // Stops listening, answers queued photos with 503, lets running ones finish. Thread-safe, idempotent.
  void stop();
  std::string describe() const;
  bool synthetic() const;        // the model's weights are synthetic (random)  // one line: model, workers x threads, queue, cache, catalogue

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace m2fp::app
