// app/server/http.h: the server's HTTP transport over cpp-httplib: the listener, connections without a
// socket (handle_raw), JSON answers and errors, the access log and per-route request metrics.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/server/metrics.h"
#include "app/server/reactor.h"
#include "service/parse_queue.h"

namespace m2fp::app {

// An answer other than 200, with the message for the JSON body (and a Retry-After for 429).
using HttpError = service::Refusal;

// Strings from the request (a path, a field's value) may be any bytes: invalid UTF-8 is written as
// U+FFFD instead of making dump() throw (in an error handler that would end the process).
void send_json(httplib::Response& res, int status, const nlohmann::json& j);
// {"error": msg, "status": status}
void send_error(httplib::Response& res, int status, const std::string& msg);

// "20 MiB" for whole mebibytes, else "N bytes".
std::string human_bytes(size_t n);

// When the request being handled on this thread arrived (set before routing).
std::chrono::steady_clock::time_point request_start();

// Runs `body`, turning HttpError (and anything else) into a JSON error answer.
template <class F>
void guarded(httplib::Response& res, F&& body) {
  try {
    body();
  } catch (const HttpError& e) {
    send_error(res, e.status, e.what());
    if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string((int)e.retry_after_s));
  } catch (const std::bad_alloc&) {
    send_error(res, 503, "out of memory");
  } catch (const std::exception& e) {
    send_error(res, 500, std::string("internal error: ") + e.what());
  }
}

struct TransportOptions {
  size_t handler_threads = 8;
  size_t max_upload_bytes = 20u << 20;
  bool access_log = true;  // one stderr line per request
  // Deadlines, keep-alive and connection caps (reactor.h); handler_threads and max_upload_bytes
  // above take precedence over the same fields there.
  ConnectionLimits connections;
  // Origins allowed to call the API from a browser (CORS): empty: none (no CORS headers at all);
  // "*": any; else exact origins such as "https://shop.example".
  std::vector<std::string> cors_origins;
};

// cpp-httplib's request processing with our handlers around the routes (pre-routing checks, CORS,
// errors as JSON, 405 for a known path with another method, OPTIONS, exceptions as 500, the access
// log and request metrics), under our own connection handling (reactor.h): cpp-httplib parses and
// routes each complete request from its bytes, as it does for connections without a socket.
class HttpServer : public httplib::Server {
 public:
  HttpServer(const TransportOptions& opt, Metrics& metrics);
  ~HttpServer() override;
  // Binds host:port (0: any free port) and deepens the listen queue; returns the bound port.
  // Throws when the address cannot be bound.
  int bind(const std::string& host, int port);
  // Serves connections on the bound socket until stop(); false if serving could not start.
  bool serve();
  // From any thread: stops accepting; serve() returns once the requests being handled are answered.
  void stop();
  size_t open_connections() const;
  // Handles raw HTTP/1.1 bytes as if they had arrived on a connection (Server::handle_raw).
  std::vector<std::string> handle_buffer(const std::string& bytes);

  // The route table: as cpp-httplib's, and remembered so that a known path asked with another
  // method is answered 405 with Allow (and OPTIONS with 204 and Allow).
  HttpServer& Get(const std::string& pattern, Handler handler);
  HttpServer& Post(const std::string& pattern, Handler handler);
  HttpServer& Post(const std::string& pattern, HandlerWithContentReader handler);
  HttpServer& Put(const std::string& pattern, Handler handler);
  HttpServer& Put(const std::string& pattern, HandlerWithContentReader handler);
  HttpServer& Patch(const std::string& pattern, Handler handler);
  HttpServer& Patch(const std::string& pattern, HandlerWithContentReader handler);
  HttpServer& Delete(const std::string& pattern, Handler handler);
  HttpServer& Delete(const std::string& pattern, HandlerWithContentReader handler);
  // "GET, HEAD, OPTIONS" style: the methods some route takes for `path` ("" when none does).
  std::string allowed_methods(const std::string& path) const;

 private:
  RawAnswer answer(const RawRequest& r);
  void remember(const char* method, const std::string& pattern);
  bool cors_allows(const std::string& origin) const;

  TransportOptions opt_;
  Metrics& metrics_;
  std::vector<std::pair<std::string, std::regex>> routes_;
  std::unique_ptr<Reactor> reactor_;
  std::mutex reactor_mu_;
  std::atomic<bool> stopped_{false};
};

}  // namespace m2fp::app
