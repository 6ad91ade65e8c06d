// app/server/server.cpp: the server's set-up (options checked, model, outfit tables, catalogue,
// workers, routes, socket) and its public interface (run, stop, handle_raw, describe).
//
// A request's life (POST /predict):
//   http          start clock; refuse bodies without Content-Length (411) or above the limit (413)
//   routes        request: upload -> bytes (multipart field "image" or raw body); sniff the format (415);
//                 parse queue: cache hit -> answer; else join the identical photo in flight, or queue a
//                 new one (429 when full); wait until the deadline (504)
//   worker        service::analyse_photo: parse -> garments -> masks and coloured mask -> cached
//   results       the answer: the analysis with this request's keys
//   http          count the request and its latency by route; the access log
#include "app/server/server_impl.h"

#include <algorithm>
#include <cstdio>
#include <regex>

#include "app/args.h"
#include "service/outfits.h"

namespace m2fp::app {

namespace {

// "*" alone, or an origin as browsers send it: scheme://host[:port], no path, no trailing slash.
void check_cors_origin(const std::string& origin, size_t count) {
  if (origin == "*") {
    if (count > 1) throw UsageError("--cors: '*' allows every origin and cannot be combined with others");
    return;
  }
  static const std::regex re(R"(https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?)");
  if (!std::regex_match(origin, re))
    throw UsageError("--cors: '" + origin + "' is not an origin (scheme://host[:port], e.g. https://shop.example)");
}

ServeOptions checked(const ServeOptions& o) {
  if (o.model_path.empty()) throw UsageError("missing required option --model");
  if (o.workers < 1) throw UsageError("--workers must be >= 1");
  if (o.queue < 0) throw UsageError("--queue must be >= 0");
  if (o.listen && (o.port < 0 || o.port > 65535)) throw UsageError("--port must be in [0, 65535]");
  if (!(o.header_timeout_s > 0) || !(o.body_timeout_s > 0) || !(o.keep_alive_timeout_s > 0))
    throw UsageError("--header-timeout, --body-timeout and --keep-alive-timeout must be > 0");
  if (o.keep_alive_max < 1) throw UsageError("--keep-alive-max must be >= 1");
  if (o.max_conns_per_client < 0) throw UsageError("--max-conns-per-client must be >= 0");
  for (const std::string& origin : o.cors_origins) check_cors_origin(origin, o.cors_origins.size());
  return o;
}

TransportOptions transport_of(const ServeOptions& o) {
  TransportOptions t;
  t.handler_threads = o.http_threads > 0 ? (size_t)o.http_threads : (size_t)(2 * (o.workers + o.queue) + 8);
  t.max_upload_bytes = o.max_upload_bytes;
  t.access_log = o.access_log;
  t.connections.header_timeout_s = o.header_timeout_s;
  t.connections.body_timeout_s = o.body_timeout_s;
  t.connections.keep_alive_timeout_s = o.keep_alive_timeout_s;
  t.connections.keep_alive_max = (size_t)o.keep_alive_max;
  t.connections.max_per_client = (size_t)o.max_conns_per_client;
  t.cors_origins = o.cors_origins;
  return t;
}

}  // namespace

Server::Impl::Impl(const ServeOptions& o)
    : opt(checked(o)), jobs(o.max_jobs, o.job_ttl_s), http(transport_of(o), metrics) {
  threads_per_worker = std::max(1, (opt.threads > 0 ? opt.threads : service::threads()) / opt.workers);
  service::SessionOptions so;
  so.model_path = opt.model_path;
  so.precision = opt.precision;
  so.parse.short_edge = opt.short_edge;
  so.parse.max_size = opt.max_size;
  so.prepare_photos = opt.prepare_photos;
  so.warm_up = opt.warm_up;
  so.parse.decode.max_pixels = opt.max_pixels;
  so.parse.hooks = opt.hooks;
  so.engine_stub = opt.engine_stub;
  model_file = std::make_unique<ModelFileWatch>(opt.model_path, (bool)opt.engine_stub);
  session = std::make_unique<service::Session>(so);
  kit = OutfitKit::load();
  catalog = std::make_unique<CatalogWatch>(opt.catalog_path.empty() ? service::default_catalog_path() : opt.catalog_path,
                                           kit, opt.access_log);
  service::ParseQueueOptions qo;
  qo.workers = opt.workers;
  qo.capacity = (size_t)opt.queue;
  qo.threads_per_worker = threads_per_worker;
  qo.cache_bytes = opt.cache_bytes;
  qo.cache_entries = opt.cache_entries;
  service::QueueEvents events;
  events.queue_wait = [this](double s) { metrics.queue_wait(s); };
  events.engine = [this](double s) { metrics.engine(s); };
  events.rejected = [this](const char* reason) { metrics.rejected(reason); };
  queue = std::make_unique<service::ParseQueue>(*session, kit, qo, std::move(events));
  add_routes();
  if (opt.listen) bound_port = http.bind(opt.host, opt.port);
}

Server::Server(const ServeOptions& opt) : impl_(std::make_unique<Impl>(opt)) {}

Server::~Server() { stop(); }

int Server::port() const { return impl_->bound_port; }

std::string Server::url() const {
  const std::string& h = impl_->opt.host;
  const std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : h;
  return "http://" + host + ":" + std::to_string(impl_->bound_port);
}

bool Server::run() {
  if (impl_->bound_port < 0) throw std::logic_error("Server::run: constructed with listen = false");
  return impl_->http.serve();
}

std::vector<std::string> Server::handle_raw(const std::string& request_bytes) {
  return impl_->http.handle_buffer(request_bytes);
}

void Server::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->http.stop();
  impl_->queue->stop();
}

bool Server::synthetic() const { return impl_->session->synthetic(); }

std::string Server::describe() const {
  const Impl& m = *impl_;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "model %s (%s); %d worker%s x %d threads, queue %d, cache %s, upload limit %s, timeout %g s; "
                "catalogue %s",
                m.opt.model_path.c_str(), m.session->summary().c_str(), m.opt.workers, m.opt.workers > 1 ? "s" : "",
                m.threads_per_worker, m.opt.queue, m.opt.cache_bytes ? human_bytes(m.opt.cache_bytes).c_str() : "off",
                human_bytes(m.opt.max_upload_bytes).c_str(), m.opt.timeout_s, m.catalog->path().c_str());
  return buf;
}

}  // namespace m2fp::app
