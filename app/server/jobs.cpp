// app/server/jobs.cpp: job ids, outcome collection, states and expiry.
#include "app/server/jobs.h"

#include <cstdio>
#include <random>

namespace m2fp::app {
namespace {

std::string random_id() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)rng(), (unsigned long long)rng());
  return buf;
}

// Collects a job's outcome once its parse is done.
void refresh(Job& j) {
  if (j.status != 0 || !j.pending) return;
  if (j.pending->future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  const service::Outcome& out = j.pending->future.get();
  j.status = out.status;
  j.error = out.error;
  j.analysis = out.analysis;
  j.queue_ms = out.queue_ms;
  j.finished = Job::Clock::now();
  j.pending.reset();
}

std::string state_of(const Job& j) {
  if (j.status == 200) return "done";
  if (j.status != 0) return "failed";
  return j.pending && j.pending->state == 1 ? "running" : "queued";
}

}  // namespace

bool JobStore::make_room(size_t* count) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Job::Clock::now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    refresh(*it->second);
    if (it->second->status != 0 &&
        std::chrono::duration<double, std::milli>(now - it->second->finished).count() > ttl_s_ * 1000)
      it = jobs_.erase(it);
    else
      ++it;
  }
  while ((int)jobs_.size() >= max_jobs_) {
    auto oldest = jobs_.end();
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it)
      if (it->second->status != 0 && (oldest == jobs_.end() || it->second->finished < oldest->second->finished))
        oldest = it;
    if (oldest == jobs_.end()) break;
    jobs_.erase(oldest);
  }
  *count = jobs_.size();
  return (int)jobs_.size() < max_jobs_;
}

std::string JobStore::add(const std::shared_ptr<Job>& job) {
  job->id = random_id();
  std::lock_guard<std::mutex> lock(mu_);
  jobs_[job->id] = job;
  refresh(*job);
  return state_of(*job);
}

std::shared_ptr<Job> JobStore::find(const std::string& id, std::string* state) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return nullptr;
  refresh(*it->second);
  *state = state_of(*it->second);
  return it->second;
}

std::map<std::string, double> JobStore::counts() {
  std::map<std::string, double> n = {{"queued", 0}, {"running", 0}, {"done", 0}, {"failed", 0}};
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : jobs_) {
    refresh(*kv.second);
    n[state_of(*kv.second)] += 1;
  }
  return n;
}

}  // namespace m2fp::app
