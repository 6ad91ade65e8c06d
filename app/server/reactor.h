// app/server/reactor.h: the server's connections: one thread (epoll) accepts, reads every request's
// headers and body within their deadlines and limits, caps connections per client address, and
// writes the answers; a pool of handler threads turns complete requests (bytes) into answers
// (bytes). No thread ever waits on a client, so stalled or slow clients cannot starve the others.
//
// Knows sockets and HTTP/1.1 framing (request line, headers, Content-Length, chunked, Expect:
// 100-continue) only; the request itself is handled by the callback (http.cpp: cpp-httplib's
// request processing on the bytes, as Server::handle_raw does).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace m2fp::app {

struct ConnectionLimits {
  double header_timeout_s = 10;     // a request's line and headers, from its first byte (or the accept)
  double body_timeout_s = 120;      // its whole body, from the end of its headers
  double write_timeout_s = 30;      // an answer, from when it is ready
  double keep_alive_timeout_s = 5;  // idle between requests of a connection
  size_t keep_alive_max = 100;      // requests per connection (the last one's answer closes it)
  size_t max_per_client = 64;       // open connections per client address; 0: no cap
  size_t max_connections = 4096;    // open connections in all (lowered to the open-file limit)
  size_t max_header_bytes = 64u << 10;
  size_t max_body_bytes = 20u << 20;  // larger bodies are read and dropped (the handler answers 413)
  size_t handler_threads = 8;
};

// One complete request as received, and where it came from.
struct RawRequest {
  std::string bytes;  // request line, headers and the whole body (framing as sent)
  std::string peer_ip, local_ip;
  int peer_port = 0, local_port = 0;
  bool last = false;  // the connection closes after this answer (keep-alive limit, unread body)
};

struct RawAnswer {
  std::string bytes;   // the status line, headers and body, as they go on the wire
  bool close = false;  // close the connection after it
};

// Connection events for /metrics: "header_timeout", "body_timeout", "write_timeout",
// "per_client_cap" (a connection refused), "evicted" (a stalled one closed to make room), "capacity".
using ConnectionEvent = std::function<void(const char* what)>;

class Reactor {
 public:
  using Handler = std::function<RawAnswer(const RawRequest&)>;
  // `listen_fd` is a bound, listening socket; the reactor makes it non-blocking (it does not own it).
  Reactor(int listen_fd, const ConnectionLimits& limits, Handler handler, ConnectionEvent event);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Serves until stop(); then answers the requests already being handled, closes every connection
  // and returns. Returns false if the event loop could not be set up.
  bool run();
  // From any thread, also before run(): stop accepting and reading, finish what is being handled.
  void stop();
  size_t open_connections() const { return open_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<size_t> open_{0};
};

}  // namespace m2fp::app
