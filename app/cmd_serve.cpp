// app/cmd_serve.cpp: `m2fp serve`: the outfit service (app/server/server.h; docs/SERVICE.md).
//
// SIGINT / SIGTERM stop it cleanly: a dedicated thread waits for them (sigwait) with the signals
// blocked everywhere else, then stops the listener; queued photos are answered 503, running ones finish.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "app/args.h"
#include "app/commands.h"
#include "app/server/server.h"
#include "service/report.h"

namespace m2fp::app {

namespace {

// `m2fp serve --help`. The defaults are those the getters below use (Args checks them).
const CommandSpec& serve_spec() {
  static const CommandSpec spec = {
      "m2fp serve --model FILE [options]",
      "The outfit service: the web page at /, POST /predict, /recommend and /jobs; GET /health and /metrics\n"
      "(docs/SERVICE.md). SIGINT or SIGTERM stops it: queued photos are answered 503, running ones finish.",
      {
          {"model", "FILE", "", "the converted model (.safetensors; tools/convert_weights.py converts a PyTorch checkpoint); required"},
          {"host", "ADDR", "127.0.0.1", "the address to listen on (0.0.0.0: every interface)"},
          {"port", "N", "5000", "the TCP port, 0..65535; 0 picks a free one (printed on the 'listening on' line)"},
          {"catalog", "FILE.db", "", "the SQLite catalogue recommendations come from; without it $M2FP_CATALOG, else data/catalog.db in the current folder (created from the seed catalogue on first use)"},
          {"threads", "N", "0", "OpenMP threads for the engine, all workers together, 0..1024; 0: every core"},
          {"workers", "N", "1", "photos parsed at the same time (engine workers sharing one model), 1..64"},
          {"queue", "N", "8", "photos that may wait for a worker, 0..10000; beyond it: 429 with Retry-After"},
          {"timeout", "SECONDS", "120", "how long a request waits for the engine, 1..86400 seconds; then 504"},
          {"max-upload-mb", "MB", "20", "the request body limit in MiB, 1..1024; above it: 413"},
          {"max-pixels", "MPX", "24", "the largest photo in megapixels (millions of pixels), 1..1000, checked on the header before decoding; above it: 400"},
          {"cache-mb", "MB", "256", "the result cache in MiB (keyed by the photo's SHA-256 and the options), 0..65536; 0: off"},
          {"short-edge", "PX", "640", "multi-person models: the photo is resized so its short edge has this many pixels, 32..4096"},
          {"max-size", "PX", "1333", "multi-person models: ... unless its long edge would exceed this many pixels, 32..8192"},
          {"precision", "fp32|bf16", "fp32", "the convolutions' arithmetic; bf16 needs AVX512-BF16 (see m2fp --version)"},
          {"prepare", "WxH[,WxH...]|common", "", "prepare the network at start for photos of these sizes (width x height in pixels; common: 4:3, 3:2 and 16:9, landscape and portrait), so that the first request of such a size creates no oneDNN primitive; off by default"},
          {"warm-up", "", "", "with --prepare: also run one blank parse per prepared size at start, so that the first request runs as fast as later ones (about one parse's time per size at start)"},
          {"http-threads", "N", "0", "HTTP handler threads, 0..1024; 0: 2 x (workers + queue) + 8"},
          {"max-jobs", "N", "256", "asynchronous jobs (POST /jobs) kept until collected, 1..100000; finished ones are dropped first"},
          {"web-dir", "DIR", "", "serve the page from this folder instead of the copy built into the binary"},
          {"cors", "ORIGIN[,ORIGIN...]|*", "", "allow these web origins (or any, '*') to call the API from a browser: preflights answered 204, Access-Control-Allow-Origin on answers; off by default"},
          {"header-timeout", "SECONDS", "10", "time a client has to send a request's headers, 1..3600 seconds; then 408 and the connection is closed"},
          {"body-timeout", "SECONDS", "120", "time a client has to send a request's body, 1..86400 seconds; then 408"},
          {"keep-alive-timeout", "SECONDS", "5", "how long an idle kept-alive connection stays open, 1..3600 seconds"},
          {"keep-alive-max", "N", "100", "requests per connection before it is closed, 1..1000000"},
          {"max-conns-per-client", "N", "64", "open connections per client address, 0..1000000 (0: no cap); the oldest stalled one makes room, else 503. Behind a proxy raise it or use 0"},
          {"quiet", "", "", "no access log (one stderr line per request otherwise)"},
      },
      "deploy/systemd/m2fp.service runs it as a hardened system service (docs/SERVICE.md)."};
  return spec;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  Args a(argc, argv, 2, serve_spec());
  if (a.has("help")) return print_help(serve_spec());
  if (!a.positional().empty()) throw UsageError("unexpected argument '" + a.positional()[0] + "'");
  ServeOptions o;
  o.model_path = a.require("model");
  o.host = a.get("host", o.host);
  o.port = a.get_int("port", o.port, 0, 65535);
  o.catalog_path = a.get("catalog");
  o.threads = a.get_int("threads", 0, 0, 1024);
  o.workers = a.get_int("workers", 1, 1, 64);
  o.queue = a.get_int("queue", 8, 0, 10000);
  o.http_threads = a.get_int("http-threads", 0, 0, 1024);
  o.max_upload_bytes = (size_t)a.get_int("max-upload-mb", 20, 1, 1024) << 20;
  o.max_pixels = (int64_t)a.get_int("max-pixels", 24, 1, 1000) * 1000000;  // megapixels (docs/SERVICE.md)
  o.timeout_s = a.get_int("timeout", 120, 1, 86400);
  o.cache_bytes = (size_t)a.get_int("cache-mb", 256, 0, 65536) << 20;
  o.short_edge = a.get_int("short-edge", 640, 32, 4096);
  o.max_size = a.get_int("max-size", 1333, 32, 8192);
  o.precision = a.get_parsed("precision", "fp32", service::parse_precision);
  if (a.has("prepare")) o.prepare_photos = a.get_parsed("prepare", "", service::parse_photo_sizes);
  o.warm_up = a.has("warm-up");
  if (o.warm_up && o.prepare_photos.empty()) throw UsageError("--warm-up needs --prepare (the sizes to warm up)");
  o.web_dir = a.get("web-dir");
  o.max_jobs = a.get_int("max-jobs", 256, 1, 100000);
  o.access_log = !a.has("quiet");
  o.header_timeout_s = a.get_int("header-timeout", 10, 1, 3600);
  o.body_timeout_s = a.get_int("body-timeout", 120, 1, 86400);
  o.keep_alive_timeout_s = a.get_int("keep-alive-timeout", 5, 1, 3600);
  o.keep_alive_max = a.get_int("keep-alive-max", 100, 1, 1000000);
  o.max_conns_per_client = a.get_int("max-conns-per-client", 64, 0, 1000000);
  if (a.has("cors")) {
    const std::string list = a.get("cors");
    size_t start = 0;
    for (;;) {
      const size_t comma = list.find(',', start);
      const std::string origin = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (origin.empty()) throw UsageError("--cors: empty origin in '" + list + "' (ORIGIN[,ORIGIN...] or '*')");
      o.cors_origins.push_back(origin);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }

  // Block SIGINT/SIGTERM in this thread before any other starts, so all threads inherit the mask and
  // only the waiter below receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  Server server(o);
  std::fprintf(stderr, "m2fp serve: %s\n", server.describe().c_str());
  if (server.synthetic()) std::fprintf(stderr, "m2fp serve: WARNING: %s\n", service::kSyntheticWarning);
  std::printf("m2fp serve: listening on %s\n", server.url().c_str());
  std::fflush(stdout);

  std::atomic<bool> finished{false}, signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (finished) return;  // woken by the main thread below: the listener ended on its own
    signalled = true;
    std::fprintf(stderr, "m2fp serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  const bool ok = server.run();
  finished = true;
  if (!signalled) pthread_kill(waiter.native_handle(), SIGTERM);  // blocked here, so only sigwait sees it
  waiter.join();
  server.stop();
  std::fprintf(stderr, "m2fp serve: stopped\n");
  return ok ? 0 : 1;
}

}  // namespace m2fp::app
