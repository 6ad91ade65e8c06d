// app/server/http.cpp: transport settings, the handlers around the routes, binding, raw connections.
#include "app/server/http.h"

#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "app/server/web_assets.h"

namespace m2fp::app {
namespace {

using Clock = std::chrono::steady_clock;

// Request start time: set by the pre-routing handler, read by the handlers and the logger.
// cpp-httplib handles one connection's requests one after another on one thread, so a thread-local
// is per request.
thread_local Clock::time_point t_request_start = Clock::now();

constexpr int kListenBacklog = 1024;

// The route name a path is counted under in /metrics.
std::string route_of(const std::string& method, const std::string& path) {
  static const char* const kExact[] = {"/", "/predict", "/batch", "/recommend", "/jobs", "/health", "/metrics", "/openapi.json"};
  for (const char* r : kExact)
    if (path == r) return r;
  if (path.rfind("/jobs/", 0) == 0) return "/jobs/{id}";
  // An unparsable request line leaves the path empty (fuzz/regressions/http/request_line_http21).
  if (method == "GET" && path.size() > 1 && find_web_asset(path.substr(1))) return "/static";
  return "other";
}

// A request's method or path for the access log: control bytes and non-ASCII as '?', at most 200
// characters (no forged log lines, no terminal escapes).
std::string printable(const std::string& s) {
  std::string out = s.substr(0, 200);
  for (char& c : out)
    if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f) c = '?';
  if (s.size() > 200) out += "...";
  return out;
}

const char* reason_of(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 411: return "length required";
    case 413: return "payload too large";
    case 414: return "URI too long";
    case 415: return "unsupported media type";
    case 416: return "range not satisfiable";
    case 429: return "too many requests";
    case 500: return "internal server error";
    case 503: return "service unavailable";
    default: return status >= 500 ? "server error" : "client error";
  }
}

// A request id the client chose (X-Request-Id), echoed on the answer and in the access log so that
// a client, a load balancer and the server's log can match answers to requests. Only short tokens
// of [A-Za-z0-9._:-] are taken (no header injection, no log forging); anything else is ignored.
std::string request_id_of(const httplib::Request& req) {
  std::string id = req.get_header_value("X-Request-Id");
  if (id.empty() || id.size() > 128) return "";
  for (char c : id)
    if (!(std::isalnum((unsigned char)c) || c == '.' || c == '_' || c == ':' || c == '-')) return "";
  return id;
}

// A connection without a socket: reads the given bytes, collects the answer. Server::handle_raw
// (the fuzzer, tests) and the reactor's complete requests (with the client's address) both use it.
class StringStream : public httplib::Stream {
 public:
  explicit StringStream(const std::string& in, const std::string& peer_ip = "127.0.0.1", int peer_port = 0,
                        const std::string& local_ip = "127.0.0.1", int local_port = 0)
      : in_(in), peer_ip_(peer_ip), local_ip_(local_ip), peer_port_(peer_port), local_port_(local_port) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return (ssize_t)n;
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return (ssize_t)size;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = peer_ip_, port = peer_port_; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = local_ip_, port = local_port_; }
  socket_t socket() const override { return INVALID_SOCKET; }
  bool at_end() const { return pos_ >= in_.size(); }

  std::string out;

 private:
  const std::string& in_;
  std::string peer_ip_, local_ip_;
  int peer_port_, local_port_;
  size_t pos_ = 0;
};

// The answer's head says Connection: close (cpp-httplib's own, or a handler's: the 411 answer).
bool says_close(const std::string& answer) {
  const size_t end = answer.find("\r\n\r\n");
  const std::string head = answer.substr(0, end == std::string::npos ? answer.size() : end + 2);
  for (size_t p = head.find("\r\n"); p != std::string::npos; p = head.find("\r\n", p + 2))
    if (strncasecmp(head.c_str() + p + 2, "Connection: close\r\n", 19) == 0) return true;
  return false;
}

const char* const kMethodOrder[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

}  // namespace

void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& msg) {
  send_json(res, status, {{"error", msg}, {"status", status}});
}

std::string human_bytes(size_t n) {
  char buf[32];
  if (n >= (1u << 20) && n % (1u << 20) == 0) std::snprintf(buf, sizeof buf, "%zu MiB", n >> 20);
  else std::snprintf(buf, sizeof buf, "%zu bytes", n);
  return buf;
}

Clock::time_point request_start() { return t_request_start; }

HttpServer::HttpServer(const TransportOptions& opt, Metrics& metrics) : opt_(opt), metrics_(metrics) {
  opt_.connections.handler_threads = std::max<size_t>(1, opt_.handler_threads);
  opt_.connections.max_body_bytes = opt_.max_upload_bytes;
  set_payload_max_length(opt_.max_upload_bytes);
  // The connections are the reactor's (reactor.h: deadlines, caps, TCP_NODELAY); cpp-httplib sees
  // each complete request as bytes. Its keep-alive settings only write the Keep-Alive header (and
  // bound handle_buffer's pipelined requests).
  set_keep_alive_max_count(std::max<size_t>(1, opt_.connections.keep_alive_max));
  set_keep_alive_timeout(std::max<time_t>(1, (time_t)opt_.connections.keep_alive_timeout_s));
  // cpp-httplib's default sets SO_REUSEPORT too, which lets a second server bind the same port and
  // silently take half the connections. SO_REUSEADDR alone: restarts work, a port in use is an error.
  set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    const std::string rid = request_id_of(req);
    if (!rid.empty()) res.set_header("X-Request-Id", rid);
    // CORS (off unless --cors): an allowed Origin gets Access-Control-Allow-Origin on every answer.
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && cors_allows(origin)) {
      const bool any = opt_.cors_origins.size() == 1 && opt_.cors_origins[0] == "*";
      res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
      if (!any) res.set_header("Vary", "Origin");
      res.set_header("Access-Control-Expose-Headers", "X-Request-Id, X-Cache, Retry-After, Location");
    }
    // Range requests are not supported (RFC 9110 allows ignoring them): cpp-httplib 0.11 would slice
    // every routed answer, JSON and errors included, into a 206 or a multipart/byteranges body
    // (fuzz/regressions/http/range_on_error). The request object is cpp-httplib's own, not const.
    const_cast<httplib::Request&>(req).ranges.clear();
    const std::string te = req.get_header_value("Transfer-Encoding");
    if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") && !req.has_header("Content-Length") &&
        te.find("chunked") == std::string::npos && req.path != "/predict" && req.path != "/recommend" &&
        req.path != "/jobs") {
      // A request with neither length nor chunked framing has no body (RFC 9112 6.3), but cpp-httplib
      // 0.11 would read one until the client closes (a client waiting for its answer never does).
      // Our routes read their bodies themselves (read_body: empty); anything else is refused here.
      send_error(res, 411, "send the request with a Content-Length header (or chunked)");
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Errors cpp-httplib answers itself (unknown route, unreadable or malformed body, too large) get
  // the same JSON shape as ours; answers that already have a body are left as they are.
  // cpp-httplib calls the error handler and the logger outside its exception guard: anything thrown
  // there would end the process (std::terminate), so neither may throw.
  set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                 httplib::Response& res) {
    // cpp-httplib answers a Range header it cannot satisfy with 416 before routing (so before the
    // pre-routing handler drops ranges) and would then slice this very answer by that range
    // (fuzz/regressions/http/range_416_sliced).
    const_cast<httplib::Request&>(req).ranges.clear();
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    try {
      std::string msg;
      // A path some route takes, asked with another method: 405 with the methods it takes. cpp-httplib
      // leaves 404 (400 for TRACE and CONNECT, which it routes nowhere).
      if (res.status == 404 || (res.status == 400 && (req.method == "TRACE" || req.method == "CONNECT"))) {
        const std::string allow = req.path.empty() ? std::string() : allowed_methods(req.path);
        if (!allow.empty()) {
          res.status = 405;
          res.set_header("Allow", allow);
          msg = "method " + printable(req.method) + " not allowed on " + req.path + ": use " + allow;
        }
      }
      if (res.status == 405) {
        // the message is set above
      } else if (res.status == 404) msg = "no such endpoint: " + req.method + " " + req.path + " (see GET /health)";
      else if (res.status == 413)
        msg = req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0
                  ? "form-urlencoded bodies are limited to 8 KiB: send the photo as multipart field 'image' or "
                    "as the raw body with Content-Type image/jpeg, image/png or application/octet-stream"
                  : "upload larger than the limit of " + human_bytes(opt_.max_upload_bytes);
      else if (res.status == 400)
        msg = req.is_multipart_form_data() || req.get_header_value("Content-Type").find("multipart") != std::string::npos
                  ? "malformed multipart/form-data body"
                  : "the request could not be read (bad request line, headers or body)";
      else msg = reason_of(res.status);
      send_error(res, res.status, msg);
    } catch (...) {
      res.set_content("{\"error\":\"" + std::string(reason_of(res.status)) + "\",\"status\":" +
                          std::to_string(res.status) + "}",
                      "application/json");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));

  // OPTIONS on a known path: 204 with Allow; a CORS preflight from an allowed origin also gets the
  // methods and request headers it may use. Unknown paths: 404, as for any method.
  httplib::Server::Options(".*", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string allow = allowed_methods(req.path);
    if (allow.empty()) return send_error(res, 404, "no such endpoint: OPTIONS " + req.path + " (see GET /health)");
    res.status = 204;
    res.set_header("Allow", allow);
    if (res.has_header("Access-Control-Allow-Origin") && req.has_header("Access-Control-Request-Method")) {
      res.set_header("Access-Control-Allow-Methods", allow);
      res.set_header("Access-Control-Allow-Headers", "Content-Type, X-Request-Id");
      res.set_header("Access-Control-Max-Age", "600");
    }
  });

  set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg += std::string(": ") + e.what();
    } catch (...) {
    }
    send_error(res, 500, msg);
  });

  set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    try {
      const double s = std::chrono::duration<double>(Clock::now() - t_request_start).count();
      metrics_.request(route_of(req.method, req.path), res.status, s);
      if (opt_.access_log) {
        const std::string rid = request_id_of(req);
        std::fprintf(stderr, "%s %s %s %d %zu %.1f ms%s%s\n", req.remote_addr.c_str(), printable(req.method).c_str(),
                     printable(req.path).c_str(), res.status, res.body.size(), s * 1000, rid.empty() ? "" : " id=",
                     rid.c_str());
      }
    } catch (...) {
      // a request that cannot be counted or logged is still answered
    }
  });
}

HttpServer::~HttpServer() {
  const socket_t s = svr_sock_.exchange(INVALID_SOCKET);
  if (s != INVALID_SOCKET) ::close(s);
}

int HttpServer::bind(const std::string& host, int port) {
  int bound = port;
  if (port == 0) {
    bound = bind_to_any_port(host);
    if (bound < 0) throw std::runtime_error("cannot listen on " + host + " (any port)");
  } else if (!bind_to_port(host, port)) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                             " (address in use, or not a local address?)");
  }
  // cpp-httplib 0.11 listens with a backlog of 5: a burst of more new connections than that overflows
  // the accept queue, and the kernel drops handshakes (clients stall for a SYN retransmission, or
  // are reset: tests/load lost a request to it at 16 clients). listen() again sets a deeper queue
  // (on Linux it only changes the backlog of a listening socket, capped by net.core.somaxconn).
  if (::listen(svr_sock_, kListenBacklog) != 0)
    std::fprintf(stderr, "m2fp serve: warning: cannot deepen the listen queue: %s\n", std::strerror(errno));
  return bound;
}

bool HttpServer::serve() {
  {
    std::lock_guard<std::mutex> lk(reactor_mu_);
    if (stopped_) return true;
    if (svr_sock_ == INVALID_SOCKET || reactor_) return false;
    reactor_ = std::make_unique<Reactor>(
        svr_sock_, opt_.connections, [this](const RawRequest& r) { return answer(r); },
        [this](const char* what) { metrics_.connection_event(what); });
  }
  const bool ok = reactor_->run();
  const socket_t s = svr_sock_.exchange(INVALID_SOCKET);
  if (s != INVALID_SOCKET) ::close(s);
  return ok;
}

void HttpServer::stop() {
  std::lock_guard<std::mutex> lk(reactor_mu_);
  stopped_ = true;
  if (reactor_) reactor_->stop();
}

size_t HttpServer::open_connections() const {
  auto* self = const_cast<HttpServer*>(this);
  std::lock_guard<std::mutex> lk(self->reactor_mu_);
  return reactor_ ? reactor_->open_connections() : 0;
}

RawAnswer HttpServer::answer(const RawRequest& r) {
  // One complete request, exactly as cpp-httplib's socket handler would process it.
  StringStream strm(r.bytes, r.peer_ip, r.peer_port, r.local_ip, r.local_port);
  bool closed = false;
  const bool ok = process_request(strm, r.last, closed, [](httplib::Request&) {});
  RawAnswer a;
  a.bytes = std::move(strm.out);
  // The reactor says "100 Continue" itself, when it wants the body; the request reaches us complete.
  static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  if (a.bytes.compare(0, kContinue.size(), kContinue) == 0) a.bytes.erase(0, kContinue.size());
  a.close = !ok || closed || r.last || says_close(a.bytes);
  return a;
}

void HttpServer::remember(const char* method, const std::string& pattern) {
  routes_.emplace_back(method, std::regex(pattern));
}

std::string HttpServer::allowed_methods(const std::string& path) const {
  bool has[7] = {false, false, false, false, false, false, false};
  bool any = false;
  for (const auto& [method, re] : routes_) {
    if (!std::regex_match(path, re)) continue;
    any = true;
    for (int i = 0; i < 7; ++i)
      if (method == kMethodOrder[i]) has[i] = true;
  }
  if (!any) return "";
  has[1] = has[1] || has[0];  // HEAD wherever GET
  has[6] = true;              // OPTIONS on every known path
  std::string out;
  for (int i = 0; i < 7; ++i)
    if (has[i]) out += (out.empty() ? "" : ", ") + std::string(kMethodOrder[i]);
  return out;
}

bool HttpServer::cors_allows(const std::string& origin) const {
  for (const std::string& o : opt_.cors_origins)
    if (o == "*" || o == origin) return true;
  return false;
}

// clang-format off
HttpServer& HttpServer::Get(const std::string& p, Handler h) { remember("GET", p); httplib::Server::Get(p, std::move(h)); return *this; }
HttpServer& HttpServer::Post(const std::string& p, Handler h) { remember("POST", p); httplib::Server::Post(p, std::move(h)); return *this; }
HttpServer& HttpServer::Post(const std::string& p, HandlerWithContentReader h) { remember("POST", p); httplib::Server::Post(p, std::move(h)); return *this; }
HttpServer& HttpServer::Put(const std::string& p, Handler h) { remember("PUT", p); httplib::Server::Put(p, std::move(h)); return *this; }
HttpServer& HttpServer::Put(const std::string& p, HandlerWithContentReader h) { remember("PUT", p); httplib::Server::Put(p, std::move(h)); return *this; }
HttpServer& HttpServer::Patch(const std::string& p, Handler h) { remember("PATCH", p); httplib::Server::Patch(p, std::move(h)); return *this; }
HttpServer& HttpServer::Patch(const std::string& p, HandlerWithContentReader h) { remember("PATCH", p); httplib::Server::Patch(p, std::move(h)); return *this; }
HttpServer& HttpServer::Delete(const std::string& p, Handler h) { remember("DELETE", p); httplib::Server::Delete(p, std::move(h)); return *this; }
HttpServer& HttpServer::Delete(const std::string& p, HandlerWithContentReader h) { remember("DELETE", p); httplib::Server::Delete(p, std::move(h)); return *this; }
// clang-format on

std::vector<std::string> HttpServer::handle_buffer(const std::string& bytes) {
  // The same process_request() a socket's handler thread calls for each request of a keep-alive
  // connection.
  std::vector<std::string> answers;
  StringStream strm(bytes);
  for (size_t n = 0; n < keep_alive_max_count_ && !strm.at_end(); ++n) {
    bool closed = false;
    const bool last = n + 1 == keep_alive_max_count_;
    const bool ok = process_request(strm, last, closed, [](httplib::Request&) {});
    answers.push_back(std::move(strm.out));
    strm.out.clear();
    if (!ok || closed) break;
  }
  return answers;
}

}  // namespace m2fp::app
