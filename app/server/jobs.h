// app/server/jobs.h: the asynchronous jobs of POST /jobs: kept by id until collected or expired.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "outfit/recommend.h"
#include "service/parse_queue.h"

namespace m2fp::app {

struct Job {
  using Clock = std::chrono::steady_clock;
  std::string id, task;  // task: predict | recommend
  RecommendOptions reco;
  service::AnalysisOptions options;  // as /predict reads them (values in effect)
  service::PredictForm form;         // task predict: the masks' form, as /predict
  std::shared_ptr<service::Pending> pending;  // until it finishes (the job is one of its waiters)
  service::AnalysisPtr analysis;
  bool cached = false;
  int status = 0;  // 0 = not finished; 200 done; else failed with `error`
  std::string error;
  double queue_ms = 0;
  Clock::time_point created = Clock::now(), finished;
};

class JobStore {
 public:
  JobStore(int max_jobs, double ttl_s) : max_jobs_(max_jobs), ttl_s_(ttl_s) {}

  // Forgets finished jobs past their time to live, then the oldest finished ones while full; false
  // (with *count, the jobs kept) when every place is taken by an unfinished job.
  bool make_room(size_t* count);
  // Keeps the job under a new random id; returns its state.
  std::string add(const std::shared_ptr<Job>& job);
  // The job with this id, its outcome collected if its parse is done, and its state; null if unknown.
  std::shared_ptr<Job> find(const std::string& id, std::string* state);
  // Jobs kept, by state: queued, running, done, failed.
  std::map<std::string, double> counts();
  double ttl_s() const { return ttl_s_; }

 private:
  const int max_jobs_;
  const double ttl_s_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
};

}  // namespace m2fp::app
