// app/server/metrics.h: the server's counters and latency histograms, written in the Prometheus text
// exposition format (version 0.0.4) by GET /metrics.
//
//   m2fp_http_requests_total{endpoint,code}        counter   requests answered, by route and status
//   m2fp_http_request_duration_seconds{endpoint}   histogram request latency (headers read -> response)
//   m2fp_engine_duration_seconds                    histogram one photo through the engine + garments
//   m2fp_queue_wait_seconds                         histogram time a photo waited for a worker
//   m2fp_cache_hits_total / _misses_total / _evictions_total, m2fp_cache_entries, m2fp_cache_bytes
//   m2fp_queue_depth, m2fp_queue_capacity, m2fp_workers, m2fp_workers_busy     gauges
//   m2fp_rejected_total{reason}                     counter   queue_full, timeout
//   m2fp_http_connection_events_total{event}        counter   header/body/write timeouts, refusals, evictions
//   m2fp_http_connections                           gauge     open client connections
//   m2fp_jobs{state}                                gauge     asynchronous jobs kept, by state
//   m2fp_uptime_seconds, m2fp_model_synthetic       gauges
// Endpoints are route names ("/jobs/{id}", "other"), never raw paths, so the label set stays small.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace m2fp::app {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implicit
  void observe(double v);
  // Appends NAME_bucket{LABELS,le=...}, NAME_sum{LABELS}, NAME_count{LABELS} lines; `labels` is
  // either empty or `key="value",...` without braces.
  void write(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // The smallest bucket bound below which at least q of the observations fall (+Inf: infinity).
  double quantile_bound(double q) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Default latency buckets in seconds: 5 ms .. 5 min.
std::vector<double> latency_buckets();

struct Gauges {
  double queue_depth = 0, queue_capacity = 0, workers = 0, workers_busy = 0;
  double cache_entries = 0, cache_bytes = 0, cache_max_bytes = 0;
  uint64_t cache_hits = 0, cache_misses = 0, cache_evictions = 0;
  std::map<std::string, double> jobs;  // state -> count
  double uptime_s = 0;
  double http_connections = 0;
  bool synthetic = false;
};

class Metrics {
 public:
  Metrics();
  void request(const std::string& endpoint, int status, double seconds);
  void engine(double seconds);
  void queue_wait(double seconds);
  void rejected(const std::string& reason);
  // The transport closed or refused a connection (reactor.h's ConnectionEvent names).
  void connection_event(const std::string& event);
  std::string prometheus(const Gauges& g) const;

  uint64_t requests_total() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram engine_, queue_wait_;
  std::map<std::string, uint64_t> rejected_;
  std::map<std::string, uint64_t> connection_events_;
};

// Prometheus label value escaping (backslash, double quote, line feed).
std::string prom_escape(const std::string& v);
// A number as Prometheus writes it ("+Inf", integers without a fraction, else %.9g).
std::string prom_number(double v);

}  // namespace m2fp::app
