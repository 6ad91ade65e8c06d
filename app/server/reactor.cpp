// app/server/reactor.cpp: accept, read, frame and write on one epoll thread; handle on a pool.
//
// A connection's life: Head (reading the request line and headers: the header deadline runs from
// the accept, or from the first byte of a later request; an idle keep-alive connection has the
// keep-alive timeout) -> Body (Content-Length or chunked, within the body deadline; a body over the
// limit is read and dropped, the handler then answers 413) -> Busy (a handler thread has the
// request; the connection is not watched) -> Write (the answer, within the write deadline) -> Head
// again, or Linger (half-closed, unread bytes drained for a moment so that the answer is not lost
// to a reset) -> closed.
//
// Room for new connections: when a client address (or the whole server) is at its cap, the oldest
// of its connections still in Head (stalled before finishing its headers, or idle between requests)
// is closed to make room; when none is, the new connection is answered 503 and closed.
#include "app/server/reactor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace m2fp::app {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kListenKey = 0, kWakeKey = 1;
constexpr double kLingerS = 2;
constexpr size_t kReadChunk = 64u << 10;
constexpr size_t kReadPerWake = 1u << 20;  // per connection and event: others get their turn
constexpr size_t kAcceptPerWake = 256;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

std::string fmt_s(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

// An answer the reactor gives itself (408, 431, 503): JSON as every other error, then close.
std::string own_answer(int status, const char* reason, const std::string& msg) {
  const std::string body = "{\"error\":\"" + msg + "\",\"status\":" + std::to_string(status) + "}";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// Chunked framing (RFC 9112 7.1) as cpp-httplib reads it: hex size line (extensions ignored), data,
// CRLF; after the zero chunk, trailer lines up to an empty line.
class ChunkParser {
 public:
  enum class State { Size, Data, DataEnd, Trailer, Done, Bad };
  // Consumes bytes up to the end of the body (or a framing error); returns how many.
  size_t feed(const char* p, size_t n) {
    size_t i = 0;
    while (i < n && st_ != State::Done && st_ != State::Bad) {
      if (st_ == State::Data) {
        const size_t k = (size_t)std::min<uint64_t>(n - i, remaining_);
        i += k;
        remaining_ -= k;
        decoded_ += k;
        if (remaining_ == 0) st_ = State::DataEnd;
        continue;
      }
      const char c = p[i++];
      line_ += c;
      if (line_.size() > 4096) {
        st_ = State::Bad;
        break;
      }
      if (c != '\n') continue;
      if (st_ == State::Size) {
        char* end = nullptr;
        const unsigned long len = std::strtoul(line_.c_str(), &end, 16);
        if (end == line_.c_str() || len == ULONG_MAX) st_ = State::Bad;
        else if (len == 0) st_ = State::Trailer;
        else {
          remaining_ = len;
          st_ = State::Data;
        }
      } else if (st_ == State::DataEnd) {
        st_ = line_ == "\r\n" ? State::Size : State::Bad;
      } else if (st_ == State::Trailer) {
        if (line_ == "\r\n") st_ = State::Done;
        else if (++trailers_ > 64) st_ = State::Bad;
      }
      line_.clear();
    }
    return i;
  }
  State state() const { return st_; }
  uint64_t decoded() const { return decoded_; }

 private:
  State st_ = State::Size;
  std::string line_;
  uint64_t remaining_ = 0, decoded_ = 0;
  int trailers_ = 0;
};

struct Conn {
  enum class St { Head, Body, Busy, Write, Linger };
  uint64_t id = 0;
  int fd = -1;
  std::string ip, local_ip;
  int port = 0, local_port = 0;
  St st = St::Head;
  uint32_t watching = 0;  // epoll events registered (0: not registered)
  Clock::time_point deadline, head_since;
  bool got_bytes = false;  // this request has begun arriving
  bool peer_eof = false;   // the client half-closed: answer what is complete, then close
  size_t requests = 0;

  std::string in;       // bytes of this request (and any pipelined after it)
  size_t scan = 0;      // Head: start of the line not yet complete
  size_t lines = 0;     // Head: complete lines so far
  size_t head_len = 0;  // Body: length of the head in `in`
  // Body framing
  bool chunked = false, oversize = false, close_after_body = false;
  uint64_t content_length = 0, discard_left = 0;
  size_t body_pos = 0;  // chunked: where the parser stands in `in`
  ChunkParser chunks;

  std::string out;
  size_t out_pos = 0;
  bool close_after_write = false;
};

class Pool {
 public:
  explicit Pool(size_t n) {
    for (size_t i = 0; i < std::max<size_t>(1, n); ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Pool() { shutdown(); }
  void enqueue(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      jobs_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }
  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (down_) return;
      down_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return down_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool down_ = false;
};

void address_of(const sockaddr_storage& ss, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

}  // namespace

struct Reactor::Impl {
  Reactor& self;
  int listen_fd;
  ConnectionLimits lim;
  Handler handler;
  ConnectionEvent event;

  std::atomic<bool> stop_requested{false};
  int epfd = -1;
  std::atomic<int> wakefd{-1};
  bool listening = false, draining = false;
  Clock::time_point accept_paused_until{};
  uint64_t next_id = 2;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
  std::unordered_map<std::string, size_t> per_ip;
  size_t in_handler = 0;  // connections Busy or Write

  std::mutex done_mu;
  std::vector<std::pair<uint64_t, RawAnswer>> done;
  std::unique_ptr<Pool> pool;

  Impl(Reactor& s, int fd, const ConnectionLimits& l, Handler h, ConnectionEvent e)
      : self(s), listen_fd(fd), lim(l), handler(std::move(h)), event(std::move(e)) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
      lim.max_connections = std::min<size_t>(lim.max_connections, (size_t)rl.rlim_cur - 64);
    lim.max_connections = std::max<size_t>(lim.max_connections, 1);
  }

  void note(const char* what) {
    if (!event) return;
    try {
      event(what);
    } catch (...) {
    }
  }

  void wake() {
    const uint64_t one = 1;
    const int fd = wakefd.load();
    if (fd >= 0) (void)!::write(fd, &one, sizeof one);
  }

  void watch(Conn& c, uint32_t events) {
    if (c.watching == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    if (events == 0) epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    else epoll_ctl(epfd, c.watching ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev);
    c.watching = events;
  }

  void close_conn(uint64_t id) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    Conn& c = *it->second;
    if (c.watching) epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    if (c.st == Conn::St::Busy || c.st == Conn::St::Write) --in_handler;
    auto pi = per_ip.find(c.ip);
    if (pi != per_ip.end() && --pi->second == 0) per_ip.erase(pi);
    conns.erase(it);
    self.open_ = conns.size();
  }

  // Best effort: a short answer to a client we are about to close (it may not be reading).
  static void send_and_forget(int fd, const std::string& bytes) {
    (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  void refuse(Conn& c, int status, const char* reason, const std::string& msg, const char* what) {
    send_and_forget(c.fd, own_answer(status, reason, msg));
    note(what);
    close_conn(c.id);
  }

  // The connection waiting longest for a request's headers (among those of `ip`, or all).
  Conn* oldest_stalled(const std::string* ip, const Conn* exclude = nullptr) {
    Conn* best = nullptr;
    for (auto& kv : conns) {
      Conn& c = *kv.second;
      if (&c == exclude || c.st != Conn::St::Head || (ip && c.ip != *ip)) continue;
      // Accepted in one batch, connections share a time: the earlier accepted (lower id) is older.
      if (!best || c.head_since < best->head_since || (c.head_since == best->head_since && c.id < best->id))
        best = &c;
    }
    return best;
  }

  void enter_head(Conn& c, Clock::time_point now) {
    c.st = Conn::St::Head;
    c.head_since = now;
    c.scan = c.lines = c.head_len = c.body_pos = 0;
    c.chunked = c.oversize = c.close_after_body = false;
    c.content_length = c.discard_left = 0;
    c.chunks = ChunkParser();
    c.got_bytes = !c.in.empty();
    c.deadline = now + seconds(c.got_bytes || c.requests == 0 ? lim.header_timeout_s : lim.keep_alive_timeout_s);
    watch(c, EPOLLIN | EPOLLRDHUP);
  }

  void accept_all(Clock::time_point now) {
    for (size_t n = 0; n < kAcceptPerWake; ++n) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: make room by closing the longest-stalled connection, else pause.
          if (Conn* v = oldest_stalled(nullptr)) {
            note("evicted");
            close_conn(v->id);
            continue;
          }
          note("capacity");
          pause_accept(now);
        }
        return;
      }
      auto c = std::make_unique<Conn>();
      c->id = next_id++;
      c->fd = fd;
      address_of(ss, c->ip, c->port);
      sockaddr_storage ls{};
      socklen_t llen = sizeof ls;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ls), &llen) == 0) address_of(ls, c->local_ip, c->local_port);
      // Headers and body of an answer are one write here, but keep-alive answers are small: no Nagle.
      int yes = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
      Conn& ref = *c;
      conns.emplace(c->id, std::move(c));
      ++per_ip[ref.ip];
      self.open_ = conns.size();
      if (lim.max_per_client > 0 && per_ip[ref.ip] > lim.max_per_client) {
        if (Conn* v = oldest_stalled(&ref.ip, &ref)) {
          note("evicted");
          close_conn(v->id);
        } else {
          refuse(ref, 503, "Service Unavailable",
                 "too many connections from your address (limit " + std::to_string(lim.max_per_client) +
                     "): reuse a keep-alive connection",
                 "per_client_cap");
          continue;
        }
      }
      if (conns.size() > lim.max_connections) {
        if (Conn* v = oldest_stalled(nullptr, &ref)) {
          note("evicted");
          close_conn(v->id);
        } else {
          refuse(ref, 503, "Service Unavailable", "the server is at its connection limit: try again later",
                 "capacity");
          continue;
        }
      }
      enter_head(ref, now);
    }
  }

  void pause_accept(Clock::time_point now) {
    if (!listening) return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
    listening = false;
    accept_paused_until = now + std::chrono::milliseconds(100);
  }

  void resume_accept() {
    if (listening || draining) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenKey;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) == 0) listening = true;
  }

  // Looks for the end of the head (a line "\r\n" after the request line, as cpp-httplib reads it).
  bool head_complete(Conn& c) {
    for (;;) {
      const size_t nl = c.in.find('\n', c.scan);
      if (nl == std::string::npos) return false;
      const bool blank = nl == c.scan + 1 && c.in[c.scan] == '\r';
      c.scan = nl + 1;
      if (c.lines++ > 0 && blank) {
        c.head_len = c.scan;
        return true;
      }
    }
  }

  // The framing headers of a complete head.
  void read_framing(Conn& c, bool& expect100) {
    std::string cl, te, expect;
    bool has_cl = false, has_te = false, has_expect = false;
    size_t p = c.in.find('\n') + 1;
    while (p < c.head_len) {
      const size_t nl = c.in.find('\n', p);
      const std::string line = c.in.substr(p, nl - p + 1);
      p = nl + 1;
      if (line.size() < 2 || line[line.size() - 2] != '\r') continue;  // cpp-httplib skips such lines
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string name = line.substr(0, colon);
      const std::string value = trim(line.substr(colon + 1));
      if (!has_cl && strcasecmp(name.c_str(), "Content-Length") == 0) has_cl = true, cl = value;
      else if (!has_te && strcasecmp(name.c_str(), "Transfer-Encoding") == 0) has_te = true, te = value;
      else if (!has_expect && strcasecmp(name.c_str(), "Expect") == 0) has_expect = true, expect = value;
    }
    expect100 = has_expect && expect == "100-continue";
    if (has_te && strcasecmp(te.c_str(), "chunked") == 0) {
      c.chunked = true;
      c.body_pos = c.head_len;
    } else if (has_cl) {
      c.content_length = std::strtoull(cl.c_str(), nullptr, 10);
      c.oversize = c.content_length > lim.max_body_bytes;
      c.discard_left = c.oversize ? c.content_length : 0;
    } else if (has_te) {
      c.close_after_body = true;  // a framing we do not read: no body, and no next request
    }
  }

  // The head with its framing replaced by Content-Length: n (a chunked body over the limit, dropped).
  std::string head_with_length(const Conn& c, uint64_t n) {
    std::string out;
    size_t p = c.in.find('\n') + 1;
    out = c.in.substr(0, p);
    while (p < c.head_len) {
      const size_t nl = c.in.find('\n', p);
      const std::string line = c.in.substr(p, nl - p + 1);
      p = nl + 1;
      if (line == "\r\n") break;
      const size_t colon = line.find(':');
      const std::string name = colon == std::string::npos ? "" : line.substr(0, colon);
      if (strcasecmp(name.c_str(), "Transfer-Encoding") == 0 || strcasecmp(name.c_str(), "Content-Length") == 0)
        continue;
      out += line;
    }
    return out + "Content-Length: " + std::to_string(n) + "\r\n\r\n";
  }

  void dispatch(Conn& c, std::string bytes, bool last) {
    ++c.requests;
    RawRequest r;
    r.bytes = std::move(bytes);
    r.peer_ip = c.ip;
    r.peer_port = c.port;
    r.local_ip = c.local_ip;
    r.local_port = c.local_port;
    r.last = last || c.requests >= lim.keep_alive_max || draining;
    c.close_after_write = r.last;
    c.st = Conn::St::Busy;
    ++in_handler;
    watch(c, 0);
    const uint64_t id = c.id;
    pool->enqueue([this, id, r = std::move(r)] {
      RawAnswer a;
      try {
        a = handler(r);
      } catch (...) {
        a.bytes = own_answer(500, "Internal Server Error", "internal error");
        a.close = true;
      }
      {
        std::lock_guard<std::mutex> lk(done_mu);
        done.emplace_back(id, std::move(a));
      }
      wake();
    });
  }

  // Moves a connection on as far as the bytes it has allow.
  void advance(Conn& c, Clock::time_point now) {
    if (c.st == Conn::St::Head) {
      if (!c.in.empty() && !c.got_bytes) {
        c.got_bytes = true;
        c.deadline = now + seconds(lim.header_timeout_s);
      }
      const bool complete = head_complete(c);
      if (!complete || c.head_len > lim.max_header_bytes) {
        if (c.in.size() > lim.max_header_bytes)
          refuse(c, 431, "Request Header Fields Too Large",
                 "request line and headers larger than " + std::to_string(lim.max_header_bytes >> 10) + " KiB",
                 "header_too_large");
        return;
      }
      bool expect100 = false;
      read_framing(c, expect100);
      c.st = Conn::St::Body;
      c.deadline = now + seconds(lim.body_timeout_s);
      const bool body_expected = c.chunked || c.content_length > 0;
      const bool nothing_sent = c.in.size() == c.head_len;
      if (expect100 && body_expected && nothing_sent) {
        if (c.oversize) {
          // The client waits for our word before sending: it gets the 413 instead, and no body comes.
          dispatch(c, c.in.substr(0, c.head_len), true);
          c.in.clear();
          return;
        }
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(sizeof kContinue - 1))
          return close_conn(c.id);
      }
    }
    if (c.st != Conn::St::Body) return;
    if (c.chunked) {
      const size_t used = c.chunks.feed(c.in.data() + c.body_pos, c.in.size() - c.body_pos);
      c.body_pos += used;
      const size_t raw_cap = 2 * lim.max_body_bytes + (64u << 10);  // framing overhead of tiny chunks
      if (!c.oversize && (c.chunks.decoded() > lim.max_body_bytes || c.body_pos - c.head_len > raw_cap))
        c.oversize = true;
      if (c.oversize) {  // drop what was read of the body; only its size is kept
        c.in.erase(c.head_len, c.body_pos - c.head_len);
        c.body_pos = c.head_len;
      }
      if (c.chunks.state() == ChunkParser::State::Bad) {
        // cpp-httplib answers the malformed body (400); nothing after it can be trusted.
        std::string bytes = c.in.substr(0, c.body_pos);
        c.in.clear();
        return dispatch(c, std::move(bytes), true);
      }
      if (c.chunks.state() != ChunkParser::State::Done) return;
      std::string bytes = c.oversize ? head_with_length(c, c.chunks.decoded()) : c.in.substr(0, c.body_pos);
      c.in.erase(0, c.body_pos);
      return dispatch(c, std::move(bytes), c.close_after_body);
    }
    if (c.oversize) {
      const size_t k = (size_t)std::min<uint64_t>(c.in.size() - c.head_len, c.discard_left);
      c.in.erase(c.head_len, k);
      c.discard_left -= k;
      if (c.discard_left > 0) return;
      std::string bytes = c.in.substr(0, c.head_len);
      c.in.erase(0, c.head_len);
      return dispatch(c, std::move(bytes), false);
    }
    const uint64_t need = c.head_len + c.content_length;
    if (c.in.size() < need) return;
    std::string bytes = c.in.substr(0, (size_t)need);
    c.in.erase(0, (size_t)need);
    dispatch(c, std::move(bytes), c.close_after_body);
  }

  void on_readable(Conn& c, Clock::time_point now) {
    char buf[kReadChunk];
    size_t got = 0;
    bool eof = false;
    while (got < kReadPerWake) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        got += (size_t)n;
        if (c.st != Conn::St::Linger) c.in.append(buf, (size_t)n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;  // closed by the client, or an error
      break;
    }
    if (c.st == Conn::St::Linger) {
      if (eof) close_conn(c.id);
      return;
    }
    if (eof) c.peer_eof = true;
    const uint64_t id = c.id;
    advance(c, now);
    if (!conns.count(id)) return;
    if (c.peer_eof) {
      if (c.st == Conn::St::Busy) c.close_after_write = true;  // answer, then close
      else close_conn(c.id);                                   // an incomplete request: nobody to answer
    }
  }

  void write_some(Conn& c, Clock::time_point now) {
    while (c.out_pos < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_pos += (size_t)n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        watch(c, EPOLLOUT);
        return;
      }
      return close_conn(c.id);  // the client went away
    }
    c.out.clear();
    c.out.shrink_to_fit();
    c.out_pos = 0;
    --in_handler;
    if (c.close_after_write || c.peer_eof || draining) {
      // Half-close and drain for a moment: closing with unread bytes would reset the connection and
      // could destroy the answer before the client reads it.
      ::shutdown(c.fd, SHUT_WR);
      c.st = Conn::St::Linger;
      c.in.clear();
      c.deadline = now + seconds(kLingerS);
      watch(c, EPOLLIN | EPOLLRDHUP);
      return;
    }
    enter_head(c, now);
    if (!c.in.empty()) advance(c, now);  // a pipelined request already here
  }

  void finish(uint64_t id, RawAnswer a, Clock::time_point now) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    Conn& c = *it->second;
    c.st = Conn::St::Write;
    if (a.bytes.empty()) a.close = true;
    c.close_after_write = c.close_after_write || a.close;
    c.out = std::move(a.bytes);
    c.out_pos = 0;
    c.deadline = now + seconds(lim.write_timeout_s);
    if (c.out.empty()) {
      --in_handler;
      c.st = Conn::St::Linger;
      return close_conn(id);
    }
    write_some(c, now);
  }

  void expire(Clock::time_point now) {
    std::vector<uint64_t> due;
    for (auto& kv : conns)
      if (kv.second->st != Conn::St::Busy && kv.second->deadline <= now) due.push_back(kv.first);
    for (uint64_t id : due) {
      Conn& c = *conns[id];
      switch (c.st) {
        case Conn::St::Head:
          if (c.got_bytes)
            refuse(c, 408, "Request Timeout",
                   "request line and headers not received within " + fmt_s(lim.header_timeout_s) + " s",
                   "header_timeout");
          else close_conn(id);  // idle keep-alive, or connected and silent
          break;
        case Conn::St::Body:
          refuse(c, 408, "Request Timeout", "request body not received within " + fmt_s(lim.body_timeout_s) + " s",
                 "body_timeout");
          break;
        case Conn::St::Write:
          note("write_timeout");
          close_conn(id);
          break;
        default: close_conn(id);
      }
    }
  }

  void begin_drain() {
    draining = true;
    if (listening) epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
    listening = false;
    std::vector<uint64_t> idle;
    for (auto& kv : conns)
      if (kv.second->st == Conn::St::Head || kv.second->st == Conn::St::Body || kv.second->st == Conn::St::Linger)
        idle.push_back(kv.first);
    for (uint64_t id : idle) close_conn(id);
  }

  bool run() {
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd < 0 || wakefd.load() < 0) return false;
    const int fl = fcntl(listen_fd, F_GETFL, 0);
    fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeKey;
    epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd.load(), &ev);
    resume_accept();
    if (!listening) return false;
    pool = std::make_unique<Pool>(lim.handler_threads);

    std::vector<epoll_event> evs(256);
    Clock::time_point next_sweep = Clock::now();
    for (;;) {
      if (stop_requested && !draining) begin_drain();
      if (draining && in_handler == 0) break;
      const int n = epoll_wait(epfd, evs.data(), (int)evs.size(), 100);
      const Clock::time_point now = Clock::now();
      for (int i = 0; i < n; ++i) {
        const uint64_t key = evs[i].data.u64;
        if (key == kListenKey) {
          if (!draining) accept_all(now);
          continue;
        }
        if (key == kWakeKey) {
          uint64_t v;
          (void)!::read(wakefd.load(), &v, sizeof v);
          continue;
        }
        auto it = conns.find(key);
        if (it == conns.end()) continue;
        Conn& c = *it->second;
        if (c.st == Conn::St::Write && (evs[i].events & EPOLLOUT)) write_some(c, now);
        else if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          if (c.st == Conn::St::Write) close_conn(key);  // error while writing
          else on_readable(c, now);
        }
      }
      std::vector<std::pair<uint64_t, RawAnswer>> ready;
      {
        std::lock_guard<std::mutex> lk(done_mu);
        ready.swap(done);
      }
      for (auto& [id, a] : ready) finish(id, std::move(a), now);
      if (!listening && !draining && now >= accept_paused_until) resume_accept();
      if (now >= next_sweep) {
        expire(now);
        next_sweep = now + std::chrono::milliseconds(100);
      }
    }
    std::vector<uint64_t> all;
    for (auto& kv : conns) all.push_back(kv.first);
    for (uint64_t id : all) close_conn(id);
    pool->shutdown();
    ::close(epfd);
    ::close(wakefd.exchange(-1));
    epfd = -1;
    return true;
  }
};

Reactor::Reactor(int listen_fd, const ConnectionLimits& limits, Handler handler, ConnectionEvent event)
    : impl_(std::make_unique<Impl>(*this, listen_fd, limits, std::move(handler), std::move(event))) {}

Reactor::~Reactor() = default;

bool Reactor::run() { return impl_->run(); }

void Reactor::stop() {
  impl_->stop_requested = true;
  impl_->wake();
}

}  // namespace m2fp::app
