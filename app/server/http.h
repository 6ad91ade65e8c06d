// app/server/http.h: the server's HTTP transport over cpp-httplib: the listener, connections without a
// socket (handle_raw), JSON answers and errors, the access log and per-route request metrics.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <new>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/server/metrics.h"
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
};

// cpp-httplib's server with our transport settings and handlers around the routes (pre-routing
// checks, errors as JSON, exceptions as 500, the access log and request metrics), and its
// per-request entry point opened up for connections without a socket.
class HttpServer : public httplib::Server {
 public:
  HttpServer(const TransportOptions& opt, Metrics& metrics);
  // Binds host:port (0: any free port) and deepens the listen queue; returns the bound port.
  // Throws when the address cannot be bound.
  int bind(const std::string& host, int port);
  // Handles raw HTTP/1.1 bytes as if they had arrived on a connection (Server::handle_raw).
  std::vector<std::string> handle_buffer(const std::string& bytes);

 private:
  TransportOptions opt_;
  Metrics& metrics_;
};

}  // namespace m2fp::app
