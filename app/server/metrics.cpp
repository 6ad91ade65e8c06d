// app/server/metrics.cpp: counters, histograms and the Prometheus text format.
#include "app/server/metrics.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace m2fp::app {

std::string prom_escape(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string prom_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  for (size_t i = 1; i < bounds_.size(); ++i)
    if (!(bounds_[i] > bounds_[i - 1])) throw std::invalid_argument("Histogram: bounds must ascend");
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // Prometheus buckets are "le" (<=)
  ++counts_[i];
  ++count_;
  sum_ += v;
}

double Histogram::quantile_bound(double q) const {
  if (count_ == 0) return 0;
  const double need = q * (double)count_;
  uint64_t cum = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    cum += counts_[i];
    if ((double)cum >= need) return i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
  }
  return std::numeric_limits<double>::infinity();
}

void Histogram::write(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const std::string le = i < bounds_.size() ? prom_number(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + prom_number(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics() : engine_(latency_buckets()), queue_wait_(latency_buckets()) {}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
  auto it = latency_.find(endpoint);
  if (it == latency_.end()) it = latency_.emplace(endpoint, Histogram(latency_buckets())).first;
  it->second.observe(seconds);
}

void Metrics::engine(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  engine_.observe(seconds);
}

void Metrics::queue_wait(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_wait_.observe(seconds);
}

void Metrics::rejected(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_[reason];
}

void Metrics::connection_event(const std::string& event) {
  std::lock_guard<std::mutex> lock(mu_);
  ++connection_events_[event];
}

uint64_t Metrics::requests_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& kv : requests_) n += kv.second;
  return n;
}

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double v) { out += name + " " + prom_number(v) + "\n"; }

}  // namespace

std::string Metrics::prometheus(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string o;
  family(o, "m2fp_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& kv : requests_)
    o += "m2fp_http_requests_total{endpoint=\"" + prom_escape(kv.first.first) + "\",code=\"" +
         std::to_string(kv.first.second) + "\"} " + std::to_string(kv.second) + "\n";
  family(o, "m2fp_http_request_duration_seconds", "histogram", "HTTP request latency, by route.");
  for (const auto& kv : latency_)
    kv.second.write(o, "m2fp_http_request_duration_seconds", "endpoint=\"" + prom_escape(kv.first) + "\"");
  family(o, "m2fp_engine_duration_seconds", "histogram", "One photo through the engine and the garment analysis.");
  engine_.write(o, "m2fp_engine_duration_seconds", "");
  family(o, "m2fp_queue_wait_seconds", "histogram", "Time a photo waited in the queue for a worker.");
  queue_wait_.write(o, "m2fp_queue_wait_seconds", "");
  family(o, "m2fp_rejected_total", "counter", "Requests refused: queue_full (429), timeout (504).");
  for (const char* r : {"queue_full", "timeout"}) {
    auto it = rejected_.find(r);
    o += std::string("m2fp_rejected_total{reason=\"") + r + "\"} " +
         std::to_string(it == rejected_.end() ? 0 : it->second) + "\n";
  }
  family(o, "m2fp_http_connections", "gauge", "Open client connections.");
  sample(o, "m2fp_http_connections", g.http_connections);
  family(o, "m2fp_http_connection_events_total", "counter",
         "Connections closed or refused by the transport: header_timeout, body_timeout (408), write_timeout, "
         "per_client_cap, capacity (503), evicted (a stalled connection closed to make room), header_too_large (431).");
  for (const char* e : {"header_timeout", "body_timeout", "write_timeout", "per_client_cap", "capacity", "evicted",
                        "header_too_large"}) {
    auto it = connection_events_.find(e);
    o += std::string("m2fp_http_connection_events_total{event=\"") + e + "\"} " +
         std::to_string(it == connection_events_.end() ? 0 : it->second) + "\n";
  }
  family(o, "m2fp_cache_hits_total", "counter", "Result cache hits (photo SHA-256 and parse options).");
  sample(o, "m2fp_cache_hits_total", (double)g.cache_hits);
  family(o, "m2fp_cache_misses_total", "counter", "Result cache misses.");
  sample(o, "m2fp_cache_misses_total", (double)g.cache_misses);
  family(o, "m2fp_cache_evictions_total", "counter", "Results evicted from the cache.");
  sample(o, "m2fp_cache_evictions_total", (double)g.cache_evictions);
  family(o, "m2fp_cache_entries", "gauge", "Results in the cache.");
  sample(o, "m2fp_cache_entries", g.cache_entries);
  family(o, "m2fp_cache_bytes", "gauge", "Approximate bytes held by the cache.");
  sample(o, "m2fp_cache_bytes", g.cache_bytes);
  family(o, "m2fp_cache_max_bytes", "gauge", "The cache's byte budget.");
  sample(o, "m2fp_cache_max_bytes", g.cache_max_bytes);
  family(o, "m2fp_queue_depth", "gauge", "Photos waiting for a worker.");
  sample(o, "m2fp_queue_depth", g.queue_depth);
  family(o, "m2fp_queue_capacity", "gauge", "Photos that may wait before requests are refused with 429.");
  sample(o, "m2fp_queue_capacity", g.queue_capacity);
  family(o, "m2fp_workers", "gauge", "Engine worker threads.");
  sample(o, "m2fp_workers", g.workers);
  family(o, "m2fp_workers_busy", "gauge", "Engine workers parsing a photo now.");
  sample(o, "m2fp_workers_busy", g.workers_busy);
  family(o, "m2fp_jobs", "gauge", "Asynchronous jobs kept, by state.");
  for (const auto& kv : g.jobs) o += "m2fp_jobs{state=\"" + prom_escape(kv.first) + "\"} " + prom_number(kv.second) + "\n";
  family(o, "m2fp_uptime_seconds", "gauge", "Seconds since the server started.");
  sample(o, "m2fp_uptime_seconds", g.uptime_s);
  family(o, "m2fp_model_synthetic", "gauge", "1 when the model has synthetic (random) weights.");
  sample(o, "m2fp_model_synthetic", g.synthetic ? 1 : 0);
  return o;
}

}  // namespace m2fp::app
