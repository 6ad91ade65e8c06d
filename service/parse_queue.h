// service/parse_queue.h: photos waiting for the engine, parsed by a pool of workers sharing one
// session, with their analyses cached by the photo's SHA-256 and the session's parse options.
//
// A photo already cached is answered from the cache; the same photo in flight at the same time is
// parsed once for every request that wants it; a new one waits in a bounded queue, refused when the
// queue is full (with how long to wait before trying again). Outcomes and refusals carry a status
// in HTTP's vocabulary (the server answers with it; other front doors read it as a kind of failure).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "outfit/outfit.h"
#include "service/analysis.h"
#include "service/lru_cache.h"
#include "service/session.h"
#include "service/work_pool.h"

namespace m2fp::service {

// A photo the layer will not or could not parse: 400 bad photo, 404 not cached, 429 queue full (retry
// after retry_after_s), 500 engine failure, 503 shutting down or out of memory, 504 gave up waiting.
struct Refusal : std::runtime_error {
  int status;
  double retry_after_s = 0;
  Refusal(int s, const std::string& m, double retry = 0) : std::runtime_error(m), status(s), retry_after_s(retry) {}
};

// How a queued parse ended.
struct Outcome {
  AnalysisPtr analysis;
  int status = 200;  // else a Refusal's status, with `error`
  std::string error;
  double queue_ms = 0, engine_ms = 0;
};

// A photo queued or being parsed; everyone interested in the same key waits on `future`.
struct Pending {
  std::string key, sha;
  AnalysisOptions opts;
  std::shared_ptr<const std::string> bytes;
  std::promise<Outcome> promise;
  std::shared_future<Outcome> future;
  std::atomic<int> waiters{0};  // requests (and jobs) still interested; 0 when run -> skipped
  std::atomic<int> state{0};    // 0 queued, 1 running, 2 done
  std::chrono::steady_clock::time_point enqueued = std::chrono::steady_clock::now();
};

struct ParseQueueOptions {
  int workers = 1;               // engine workers sharing the session
  size_t capacity = 8;           // photos that may wait for a worker
  int threads_per_worker = 1;    // OpenMP threads of each worker
  size_t cache_bytes = 256u << 20, cache_entries = 512;  // cache budget; 0 bytes disables it
};

// What the queue reports as it works (the server's metrics).
struct QueueEvents {
  std::function<void(double seconds)> queue_wait;  // a photo waited this long for a worker
  std::function<void(double seconds)> engine;      // a photo took this long in the engine
  std::function<void(const char* reason)> rejected;  // "queue_full", "timeout"
};

class ParseQueue {
 public:
  using Clock = std::chrono::steady_clock;

  ParseQueue(const Session& session, const OutfitKit& kit, const ParseQueueOptions& opt, QueueEvents events);
  ~ParseQueue();  // stop()

  // The cached analysis of the photo with this SHA-256, or null.
  AnalysisPtr cached(const std::string& sha, const AnalysisOptions& ao = {});
  // The photo's pending parse: the one in flight for it, or a new one queued. Throws Refusal (429
  // queue full, 503 stopping).
  std::shared_ptr<Pending> acquire(const std::string& sha, std::shared_ptr<const std::string> bytes,
                                   const AnalysisOptions& ao = {});
  // The photo's analysis: cached (*was_cached), or parsed, waiting at most until `deadline` (Refusal
  // 504 then, naming timeout_s) or the parse's failure as a Refusal.
  AnalysisPtr obtain(const std::string& sha, std::shared_ptr<const std::string> bytes, Clock::time_point deadline,
                     double timeout_s, bool* was_cached, double* queue_ms, const AnalysisOptions& ao = {});
  // Seconds until a place in the queue is likely free (the Retry-After of a 429).
  double retry_after_s();
  // Stops taking photos, answers the waiting ones 503, lets running ones finish. Idempotent.
  void stop();

  const WorkPool& pool() const { return *pool_; }
  LruCache<Analysis>::Stats cache_stats() const { return cache_.stats(); }

 private:
  std::string key_of(const std::string& sha, const AnalysisOptions& ao) const;
  void work(const std::shared_ptr<Pending>& p, bool cancelled);

  const Session& session_;
  const OutfitKit& kit_;
  QueueEvents events_;
  LruCache<Analysis> cache_;
  std::mutex inflight_mu_;
  std::unordered_map<std::string, std::shared_ptr<Pending>> inflight_;
  std::mutex engine_time_mu_;
  double engine_s_avg_ = 0;  // running mean, for Retry-After
  std::atomic<bool> stopping_{false};
  std::unique_ptr<WorkPool> pool_;  // last: its workers use everything above
};

}  // namespace m2fp::service
