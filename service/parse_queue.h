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
#include <vector>

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

// One photo for acquire_all: its SHA-256 and its bytes.
struct PhotoRef {
  std::string sha;
  std::shared_ptr<const std::string> bytes;
};

// The median of the last `window` samples: a typical per-photo engine time that one outlier (a huge
// photo, a cold start) does not inflate, unlike a mean. 0 before the first sample.
class MedianWindow {
 public:
  explicit MedianWindow(size_t window = 31) : window_(window == 0 ? 1 : window) {}
  void add(double v);
  double median() const;  // of an even count: the mean of the middle two
  size_t count() const { return samples_.size(); }

 private:
  size_t window_, next_ = 0;
  std::vector<double> samples_;
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
  // Every photo's pending parse, all or none (a batch): photos in flight, and repeats within the
  // batch, join one parse; every other photo takes one place in the queue. Throws Refusal 429 (its
  // Retry-After sized for the places needed) when they do not all fit, 503 when stopping; nothing
  // is queued then. Cached photos are the caller's to answer before (see cached()).
  std::vector<std::shared_ptr<Pending>> acquire_all(const std::vector<PhotoRef>& photos,
                                                    const AnalysisOptions& ao = {});
  // Waits for a pending parse until `deadline`: its analysis, or a Refusal (504 naming timeout_s,
  // after which the caller is no longer one of its waiters; or the parse's failure).
  AnalysisPtr await(const std::shared_ptr<Pending>& p, Clock::time_point deadline, double timeout_s,
                    double* queue_ms);
  // The photo's analysis: cached (*was_cached), or parsed, waiting at most until `deadline` (Refusal
  // 504 then, naming timeout_s) or the parse's failure as a Refusal.
  AnalysisPtr obtain(const std::string& sha, std::shared_ptr<const std::string> bytes, Clock::time_point deadline,
                     double timeout_s, bool* was_cached, double* queue_ms, const AnalysisOptions& ao = {});
  // Seconds until `places` places in the queue are likely free (the Retry-After of a 429): the
  // median engine time of the last photos (5 s before any) times the photos ahead plus `places`,
  // divided by the workers; 1 to 600.
  double retry_after_s(size_t places = 1);
  // The median engine time per photo of the last successful parses (0 before any), in seconds.
  double typical_engine_s();
  // The cache key of a photo with these options (the session's resize when ao leaves it 0).
  std::string key_of(const std::string& sha, const AnalysisOptions& ao) const;
  // Stops taking photos, answers the waiting ones 503, lets running ones finish. Idempotent.
  void stop();

  const WorkPool& pool() const { return *pool_; }
  LruCache<Analysis>::Stats cache_stats() const { return cache_.stats(); }

 private:
  void work(const std::shared_ptr<Pending>& p, bool cancelled);

  const Session& session_;
  const OutfitKit& kit_;
  QueueEvents events_;
  LruCache<Analysis> cache_;
  std::mutex inflight_mu_;
  std::unordered_map<std::string, std::shared_ptr<Pending>> inflight_;
  std::mutex engine_time_mu_;
  MedianWindow engine_s_;  // successful parses' engine times, for Retry-After
  std::atomic<bool> stopping_{false};
  std::unique_ptr<WorkPool> pool_;  // last: its workers use everything above
};

}  // namespace m2fp::service
