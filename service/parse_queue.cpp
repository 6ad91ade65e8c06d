// service/parse_queue.cpp: the cache, in-flight sharing, the bounded queue and its workers.
#include "service/parse_queue.h"

#include <algorithm>
#include <cmath>

namespace m2fp::service {
namespace {
double ms_between(ParseQueue::Clock::time_point a, ParseQueue::Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

void MedianWindow::add(double v) {
  if (samples_.size() < window_) {
    samples_.push_back(v);
  } else {
    samples_[next_] = v;
    next_ = (next_ + 1) % window_;
  }
}

double MedianWindow::median() const {
  if (samples_.empty()) return 0;
  std::vector<double> s = samples_;
  const size_t mid = s.size() / 2;
  std::nth_element(s.begin(), s.begin() + (long)mid, s.end());
  if (s.size() % 2) return s[mid];
  const double hi = s[mid];
  const double lo = *std::max_element(s.begin(), s.begin() + (long)mid);
  return (lo + hi) / 2;
}

ParseQueue::ParseQueue(const Session& session, const OutfitKit& kit, const ParseQueueOptions& opt,
                       QueueEvents events)
    : session_(session), kit_(kit), events_(std::move(events)), cache_(opt.cache_bytes, opt.cache_entries) {
  const int tpw = opt.threads_per_worker;
  pool_ = std::make_unique<WorkPool>(opt.workers, opt.capacity, [tpw](int) { set_threads(tpw); });
}

ParseQueue::~ParseQueue() { stop(); }

void ParseQueue::stop() {
  stopping_ = true;
  pool_->stop();
}

std::string ParseQueue::key_of(const std::string& sha, const AnalysisOptions& ao) const {
  const ParseOptions& po = session_.options().parse;
  const int short_edge = ao.short_edge > 0 ? ao.short_edge : po.short_edge;
  const int max_size = ao.max_size > 0 ? ao.max_size : po.max_size;
  return sha + "|short_edge=" + std::to_string(short_edge) + "|max_size=" + std::to_string(max_size) +
         "|max_pixels=" + std::to_string(po.decode.max_pixels) + ao.key();
}

AnalysisPtr ParseQueue::cached(const std::string& sha, const AnalysisOptions& ao) {
  return cache_.get(key_of(sha, ao));
}

void ParseQueue::work(const std::shared_ptr<Pending>& p, bool cancelled) {
  Outcome out;
  const auto start = Clock::now();
  out.queue_ms = ms_between(p->enqueued, start);
  if (cancelled) {
    out.status = 503;
    out.error = "the server is shutting down";
  } else if (p->waiters.load() <= 0) {
    out.status = 504;
    out.error = "every request for this photo gave up before a worker was free";
  } else {
    p->state = 1;
    events_.queue_wait(out.queue_ms / 1000);
    try {
      std::shared_ptr<Analysis> a = analyse_photo(session_, kit_, *p->bytes, p->sha, p->opts);
      out.analysis = a;
      cache_.put(p->key, a, a->cost);
    } catch (const ImageError& e) {
      out.status = 400;
      out.error = std::string("bad image: ") + e.what();
    } catch (const std::bad_alloc&) {
      out.status = 503;
      out.error = "out of memory while parsing this photo";
    } catch (const std::exception& e) {
      out.status = 500;
      out.error = std::string("parsing failed: ") + e.what();
    }
    out.engine_ms = ms_between(start, Clock::now());
    events_.engine(out.engine_ms / 1000);
    if (out.status == 200) {  // a photo refused in milliseconds says nothing about the next one's time
      std::lock_guard<std::mutex> lock(engine_time_mu_);
      engine_s_.add(out.engine_ms / 1000);
    }
  }
  {
    std::lock_guard<std::mutex> lock(inflight_mu_);
    auto it = inflight_.find(p->key);
    if (it != inflight_.end() && it->second == p) inflight_.erase(it);
  }
  p->bytes.reset();
  p->state = 2;
  p->promise.set_value(std::move(out));
}

double ParseQueue::typical_engine_s() {
  std::lock_guard<std::mutex> lock(engine_time_mu_);
  return engine_s_.median();
}

double ParseQueue::retry_after_s(size_t places) {
  const double median = typical_engine_s();
  const double per = median > 0 ? median : 5.0;
  const double s = std::ceil(per * (double)(pool_->depth() + std::max<size_t>(places, 1)) / pool_->workers());
  return std::clamp(s, 1.0, 600.0);
}

std::shared_ptr<Pending> ParseQueue::acquire(const std::string& sha, std::shared_ptr<const std::string> bytes,
                                             const AnalysisOptions& ao) {
  return acquire_all({PhotoRef{sha, std::move(bytes)}}, ao)[0];
}

std::vector<std::shared_ptr<Pending>> ParseQueue::acquire_all(const std::vector<PhotoRef>& photos,
                                                              const AnalysisOptions& ao) {
  std::vector<std::shared_ptr<Pending>> out;
  out.reserve(photos.size());
  std::vector<std::shared_ptr<Pending>> fresh;  // the parses this call queues
  std::lock_guard<std::mutex> lock(inflight_mu_);
  for (const PhotoRef& ph : photos) {
    const std::string key = key_of(ph.sha, ao);
    auto it = inflight_.find(key);
    if (it != inflight_.end()) {  // in flight already, or earlier in this batch
      ++it->second->waiters;
      out.push_back(it->second);
      continue;
    }
    auto p = std::make_shared<Pending>();
    p->key = key;
    p->sha = ph.sha;
    p->opts = ao;
    p->bytes = ph.bytes;
    p->future = p->promise.get_future().share();
    p->waiters = 1;
    inflight_[key] = p;
    out.push_back(p);
    fresh.push_back(p);
  }
  std::vector<WorkPool::Task> tasks;
  tasks.reserve(fresh.size());
  for (const auto& p : fresh) tasks.push_back([this, p](bool cancelled) { work(p, cancelled); });
  if (!tasks.empty() && !pool_->try_submit_all(std::move(tasks))) {
    // Nothing was queued: undo the joins and the new entries.
    for (const auto& p : out) --p->waiters;
    for (const auto& p : fresh) inflight_.erase(p->key);
    if (stopping_) throw Refusal(503, "the server is shutting down");
    events_.rejected("queue_full");
    const double retry = retry_after_s(fresh.size());
    const std::string waiting = std::to_string(pool_->depth()) + (pool_->depth() == 1 ? " photo" : " photos") +
                                " waiting for " + std::to_string(pool_->workers()) +
                                (pool_->workers() == 1 ? " worker" : " workers");
    throw Refusal(429,
                  (fresh.size() == 1 ? "the engine queue is full (" + waiting + ")"
                                     : "the engine queue has no room for the " + std::to_string(fresh.size()) +
                                           " photos of this batch (" + waiting + ", " +
                                           std::to_string(pool_->free_places()) + " places free)") +
                      "; retry after " + std::to_string((int)retry) + " s",
                  retry);
  }
  return out;
}

AnalysisPtr ParseQueue::obtain(const std::string& sha, std::shared_ptr<const std::string> bytes,
                               Clock::time_point deadline, double timeout_s, bool* was_cached, double* queue_ms,
                               const AnalysisOptions& ao) {
  if (AnalysisPtr a = cached(sha, ao)) {
    *was_cached = true;
    return a;
  }
  *was_cached = false;
  return await(acquire(sha, std::move(bytes), ao), deadline, timeout_s, queue_ms);
}

AnalysisPtr ParseQueue::await(const std::shared_ptr<Pending>& p, Clock::time_point deadline, double timeout_s,
                              double* queue_ms) {
  if (p->future.wait_until(deadline) != std::future_status::ready) {
    --p->waiters;
    events_.rejected("timeout");
    throw Refusal(504, "no result within the request timeout of " + std::to_string((int)timeout_s) +
                           " s (the photo is " + (p->state == 1 ? "being parsed" : "still queued") +
                           "; its result will be cached if it completes)");
  }
  const Outcome& out = p->future.get();
  if (out.status != 200) throw Refusal(out.status, out.error);
  *queue_ms = out.queue_ms;
  return out.analysis;
}

}  // namespace m2fp::service
