// app/server/server.h: the outfit service behind `m2fp serve` (docs/SERVICE.md documents the HTTP API).
//
//   GET  /                 the web page (web/, embedded in the binary at build time)
//   POST /predict          photo -> labels, per-label masks, coloured mask, instances, persons + garments
//   POST /recommend        photo (or the SHA-256 of one already parsed) -> per person garments + suggestions
//   POST /batch            several photos (one field "image" each) -> {"results": [/predict answer or error...]}
//   POST /jobs             the same work asynchronously: 202 + id;  GET /jobs/{id}: state and result
//   GET  /openapi.json     the API in OpenAPI 3.1 (docs/openapi.json, embedded at build time)
//   GET  /health           model, workers, queue, cache, catalogue, limits
//   GET  /metrics          Prometheus text
//
// Shape: one connection thread (app/server/reactor.h) accepts and reads every request within its
// deadlines; a pool of handler threads runs cpp-httplib's request processing and our handlers; every
// engine call goes to the parse queue (service/parse_queue.h): `workers` threads sharing one parse
// session (each with threads/workers OpenMP threads) behind a bounded queue (429 + Retry-After when full). Handlers wait for their photo
// with a deadline (504 after timeout_s). Results are cached by the photo's SHA-256 and the parse
// options (LRU, bounded in bytes); identical photos in flight at the same time are parsed once.
// Uploads are limited in size (413) and in pixels (the header is checked before decoding). Every
// error is a JSON {"error", "status"} body.
//
// The rooms of app/server/: http (transport, errors, access log), routes (the endpoints), request
// (decoding bodies and uploads), results (answers from an analysis), jobs (POST /jobs), status
// (/health, /metrics gauges, the model file), catalog_watch (the catalogue, re-read on change),
// metrics (Prometheus text), web_assets (the embedded page); server_impl.h wires them together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/dnn.h"
#include "service/session.h"

namespace m2fp::app {

struct ServeOptions {
  std::string model_path;
  std::string host = "127.0.0.1";
  int port = 5000;                          // 0: any free port (Server::port() says which)
  std::string catalog_path;                 // SQLite catalogue; "" = service::default_catalog_path()
  dnn::Precision precision = dnn::Precision::F32;
  int threads = 0;                          // OpenMP threads for the engine in all; 0 = all cores
  int workers = 1;                          // engine workers sharing the model
  int queue = 8;                            // photos that may wait for a worker
  int http_threads = 0;                     // HTTP handler threads; 0 = 2 * (workers + queue) + 8
  size_t max_upload_bytes = 20u << 20;      // request body limit (413 above)
  int64_t max_pixels = 24'000'000;          // decoded photo limit, checked on the header (400 above);
                                            // docs/SERVICE.md: what the default costs
  double timeout_s = 120;                   // per-request deadline while waiting for the engine (504)
  size_t cache_bytes = 256u << 20;          // result cache budget; 0 disables the cache
  size_t cache_entries = 512;
  int short_edge = 640, max_size = 1333;    // multi-person resize (ParseOptions)
  // Photo sizes (width, height) the network is prepared for at start (SessionOptions::prepare_photos,
  // --prepare) and whether a blank parse of each warms the process up as well (--warm-up).
  std::vector<std::pair<int, int>> prepare_photos;
  bool warm_up = false;
  int max_jobs = 256;                       // asynchronous jobs kept (finished ones dropped first)
  double job_ttl_s = 600;                   // finished jobs are forgotten after this
  std::string web_dir;                      // serve the page from this folder instead of the embedded copy
  bool access_log = true;                   // one stderr line per request
  // Connections (docs/SERVICE.md, "Connections and limits"): the request line and headers must
  // arrive within header_timeout_s, the body within body_timeout_s; keep-alive connections idle at
  // most keep_alive_timeout_s and carry at most keep_alive_max requests; one client address holds at
  // most max_conns_per_client connections (0: no cap), its oldest stalled one closed to make room.
  double header_timeout_s = 10;
  double body_timeout_s = 120;
  double keep_alive_timeout_s = 5;
  int keep_alive_max = 100;
  int max_conns_per_client = 64;
  // Origins allowed to call the API from a browser (CORS); empty: CORS off; {"*"}: any origin.
  std::vector<std::string> cors_origins;
  const ForwardHooks* hooks = nullptr;      // engine hooks (tests hold a worker busy with one)
  // Tests and fuzzing (fuzz/fuzz_http.cpp): when set, no model file is read and this stands in for
  // the engine on the worker threads (service::EngineStub); the model is reported as
  // {"stub": true, "synthetic": true}.
  service::EngineStub engine_stub;
  bool listen = true;                       // false: no socket is opened (handle_raw() only; port() -1)
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
  // Handles raw HTTP/1.1 bytes (one request, or several pipelined on one keep-alive connection)
  // exactly as if they had arrived on a connection: cpp-httplib's request parsing, our pre-routing,
  // routes, body reading (multipart, chunked, limits), error answers and the access log; returns the
  // bytes that would have been written back, one string per request handled (empty where the bytes
  // ended before a complete request). No socket is involved (fuzzing and tests).
  std::vector<std::string> handle_raw(const std::string& request_bytes);
  std::string describe() const;  // one line: model, workers x threads, queue, cache, catalogue
  bool synthetic() const;        // the model's weights are synthetic (random)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace m2fp::app
