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

int cmd_serve(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"model", "port", "host", "catalog", "threads", "workers", "queue", "http-threads", "max-upload-mb",
          "max-pixels", "timeout", "cache-mb", "short-edge", "max-size", "precision", "web-dir", "max-jobs",
          "cors", "header-timeout", "body-timeout", "keep-alive-timeout", "keep-alive-max", "max-conns-per-client"},
         {"quiet", "help"});
  if (a.has("help")) return usage(false);
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
  o.max_pixels = (int64_t)a.get_int("max-pixels", 50, 1, 1000) * 1000000;
  o.timeout_s = a.get_int("timeout", 120, 1, 86400);
  o.cache_bytes = (size_t)a.get_int("cache-mb", 256, 0, 65536) << 20;
  o.short_edge = a.get_int("short-edge", 640, 32, 4096);
  o.max_size = a.get_int("max-size", 1333, 32, 8192);
  o.precision = a.get_parsed("precision", "fp32", service::parse_precision);
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
