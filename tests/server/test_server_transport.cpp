// tests/server/test_server_transport.cpp: the connections of `m2fp serve` (app/server/reactor.h) and
// its HTTP semantics, spoken to with raw sockets: stalled clients (200 of them) do not starve
// /health, /metrics or /predict; header and body deadlines (408); the per-client cap (a stalled
// connection evicted, else 503); keep-alive limit and pipelining; Expect: 100-continue; chunked
// uploads; bodies over the limit (413, the connection kept where it can be); a 20 MiB upload;
// 405 with Allow, OPTIONS; CORS off by default and on for listed origins.
//
// The server runs with a stub engine (no model file: a made-up parsing of the decoded photo), so
// these tests exercise the transport and take seconds. Stalled connections come from other loopback
// addresses (127.0.0.2 ...) so that the per-client cap is tested on its own.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "app/args.h"
#include "app/server/server.h"
#include "engine/image.h"
#include "engine/io.h"
#include "engine/pipeline.h"

using json = nlohmann::json;
using namespace m2fp;
using namespace m2fp::app;

namespace {

using Clock = std::chrono::steady_clock;

// A made-up parsing of the decoded photo: one person whose upper half is UpperClothes.
ParseResult stub_engine(const uint8_t* bytes, size_t size, const ParseOptions& opt) {
  ParseResult r;
  r.image = decode_image(bytes, size, opt.decode);
  const int w = r.image.width, h = r.image.height;
  Parsing& p = r.parsing;
  p.width = w;
  p.height = h;
  p.class_names = {"Background", "Hat",      "Hair",      "Glove",     "Sunglasses", "UpperClothes", "Dress",
                   "Coat",       "Socks",    "Pants",     "Torso-skin", "Scarf",     "Skirt",        "Face",
                   "Left-arm",   "Right-arm", "Left-leg", "Right-leg", "Left-shoe",  "Right-shoe",   "Human"};
  p.labels.assign((size_t)w * h, 0);
  p.person_map.assign((size_t)w * h, 0);
  int64_t area = 0;
  for (int y = 0; y < h / 2; ++y)
    for (int x = 0; x < w; ++x) {
      p.labels[(size_t)y * w + x] = 5;
      p.person_map[(size_t)y * w + x] = 1;
      ++area;
    }
  p.label_fractions.assign(p.class_names.size(), 0.0);
  p.label_fractions[5] = (double)area / std::max(1, w * h);
  p.label_fractions[0] = 1 - p.label_fractions[5];
  Instance human;
  human.kind = Instance::Kind::Human;
  human.category_id = 20;
  human.label = "Human";
  human.score = 0.9f;
  human.area = area;
  human.bbox = {0, 0, w, std::max(1, h / 2)};
  human.person = 0;
  p.instances.push_back(human);
  Instance part = human;
  part.kind = Instance::Kind::Part;
  part.category_id = 5;
  part.label = "UpperClothes";
  part.query = 1;
  p.instances.push_back(part);
  Person person;
  person.instance = 0;
  person.score = 0.9f;
  person.bbox = human.bbox;
  person.area = area;
  person.parts = {1};
  p.persons.push_back(person);
  r.geometry.nh = r.geometry.nw = 64;
  return r;
}

ServeOptions stub_options() {
  ServeOptions o;
  o.model_path = "stub.safetensors";
  o.engine_stub = stub_engine;
  o.catalog_path = ":memory:";
  o.port = 0;
  o.threads = 1;
  o.access_log = false;
  o.max_upload_bytes = 2u << 20;
  return o;
}

std::string png_photo(int w = 48, int h = 40, int seed = 0) {
  Image img = Image::blank(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* px = img.row(y) + 3 * x;
      px[0] = (uint8_t)(x * 5 + seed), px[1] = (uint8_t)(y * 6), px[2] = (uint8_t)(x + y);
    }
  const std::vector<uint8_t> v = encode_png(img);
  return std::string(v.begin(), v.end());
}

struct Running {
  std::unique_ptr<Server> server;
  std::thread thread;
  explicit Running(const ServeOptions& o) : server(std::make_unique<Server>(o)) {
    thread = std::thread([this] { server->run(); });
  }
  ~Running() {
    server->stop();
    thread.join();
  }
  int port() const { return server->port(); }
  std::unique_ptr<httplib::Client> client(int timeout_s = 10) const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    c->set_read_timeout(timeout_s, 0);
    c->set_write_timeout(timeout_s, 0);
    c->set_connection_timeout(timeout_s, 0);
    return c;
  }
};

// A TCP connection to the server from a chosen loopback address (any 127.x.y.z is local on Linux).
int connect_from(const std::string& src, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, src.c_str(), &a.sin_addr);
  if (::bind(fd, (sockaddr*)&a, sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in d{};
  d.sin_family = AF_INET;
  d.sin_port = htons((uint16_t)port);
  d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, (sockaddr*)&d, sizeof d) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += (size_t)n;
  }
  return true;
}

// Reads one answer (head and Content-Length body) from `buf` + the socket; what follows stays in buf.
// "" on EOF or timeout before a complete answer.
std::string read_answer(int fd, std::string& buf, double timeout_s = 10) {
  const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t len = 0;
      const std::string head = buf.substr(0, end + 2);
      for (const char* name : {"\r\nContent-Length: ", "\r\ncontent-length: "}) {
        const size_t p = head.find(name);
        if (p != std::string::npos) len = std::stoul(head.substr(p + std::strlen(name)));
      }
      if (buf.size() >= end + 4 + len) {
        std::string answer = buf.substr(0, end + 4 + len);
        buf.erase(0, end + 4 + len);
        return answer;
      }
    }
    const int left = (int)std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return "";
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) return "";
    char tmp[65536];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return "";
    buf.append(tmp, (size_t)n);
  }
}

std::string read_answer(int fd, double timeout_s = 10) {
  std::string buf;
  return read_answer(fd, buf, timeout_s);
}

// The server closed the connection (EOF or reset) within timeout_s, reading and dropping any bytes.
bool closed_by_server(int fd, double timeout_s = 10) {
  const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const int left = (int)std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) return false;
    char tmp[4096];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return true;
  }
}

int status_of(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return -1;
  return std::stoi(answer.substr(9, 3));
}

std::string header_of(const std::string& answer, const std::string& name) {
  const size_t end = answer.find("\r\n\r\n");
  const std::string head = answer.substr(0, end);
  const std::string key = "\r\n" + name + ": ";
  const size_t p = head.find(key);
  if (p == std::string::npos) return "";
  const size_t e = head.find("\r\n", p + key.size());
  return head.substr(p + key.size(), e == std::string::npos ? std::string::npos : e - p - key.size());
}

std::string body_of(const std::string& answer) {
  const size_t end = answer.find("\r\n\r\n");
  return end == std::string::npos ? "" : answer.substr(end + 4);
}

std::string post_head(const std::string& path, size_t length, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: " +
         std::to_string(length) + "\r\n" + extra + "\r\n";
}

double metric(const std::string& text, const std::string& sample) {
  const size_t p = text.find("\n" + sample + " ");
  if (p == std::string::npos) return -1;
  return std::stod(text.substr(p + sample.size() + 2));
}

struct Fds {
  std::vector<int> v;
  ~Fds() {
    for (int fd : v)
      if (fd >= 0) ::close(fd);
  }
};

}  // namespace

TEST(Transport, StalledClientsDoNotStarveHealthMetricsOrPredict) {
  Running srv(stub_options());
  // 200 stalled connections from 10 other addresses (20 each, under the per-client cap of 64):
  // half stop in the middle of their headers, half after the headers in the middle of a body.
  Fds stalled;
  for (int i = 0; i < 200; ++i) {
    const int fd = connect_from("127.0.0." + std::to_string(2 + i % 10), srv.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    stalled.v.push_back(fd);
    ASSERT_TRUE(send_all(fd, i % 2 ? "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: " : post_head("/predict", 1000) + "0123"));
  }
  auto cli = srv.client(5);  // cpp-httplib 0.11 under the old transport: ~30 s here (issue 12)
  for (int k = 0; k < 3; ++k) {
    auto h = cli->Get("/health");
    ASSERT_TRUE(h) << httplib::to_string(h.error());
    EXPECT_EQ(h->status, 200);
  }
  auto m = cli->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_GE(metric(m->body, "m2fp_http_connections"), 200) << "the stalled connections are still open";
  httplib::MultipartFormDataItems items = {{"image", png_photo(), "p.png", "image/png"}};
  auto p = cli->Post("/predict", items);
  ASSERT_TRUE(p) << httplib::to_string(p.error());
  EXPECT_EQ(p->status, 200) << p->body.substr(0, 300);
  EXPECT_EQ(json::parse(p->body)["image"]["width"], 48);
}

TEST(Transport, HeaderAndBodyDeadlinesAnswer408) {
  ServeOptions o = stub_options();
  o.header_timeout_s = 1;
  o.body_timeout_s = 1;
  o.keep_alive_timeout_s = 1;
  Running srv(o);
  const int port = srv.port();
  Fds fds;
  const int slow_head = connect_from("127.0.0.1", port), slow_body = connect_from("127.0.0.1", port),
            silent = connect_from("127.0.0.1", port);
  fds.v = {slow_head, slow_body, silent};
  ASSERT_TRUE(send_all(slow_head, "GET /health HTTP/1.1\r\nHost: t\r\n"));
  ASSERT_TRUE(send_all(slow_body, post_head("/predict", 100) + "0123456789"));
  const std::string a = read_answer(slow_head);
  EXPECT_EQ(status_of(a), 408) << a;
  EXPECT_NE(body_of(a).find("headers not received within 1 s"), std::string::npos) << a;
  EXPECT_TRUE(closed_by_server(slow_head));
  const std::string b = read_answer(slow_body);
  EXPECT_EQ(status_of(b), 408) << b;
  EXPECT_NE(body_of(b).find("body not received within 1 s"), std::string::npos) << b;
  EXPECT_EQ(json::parse(body_of(b))["status"], 408);
  // A connection that never says anything is closed without an answer.
  std::string none;
  EXPECT_EQ(read_answer(silent, none), "");
  EXPECT_TRUE(none.empty()) << none;
  // A keep-alive connection idle past its timeout is closed after its answer.
  const int idle = connect_from("127.0.0.1", port);
  fds.v.push_back(idle);
  ASSERT_TRUE(send_all(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(status_of(read_answer(idle)), 200);
  EXPECT_TRUE(closed_by_server(idle, 5));
  auto m = srv.client()->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_GE(metric(m->body, "m2fp_http_connection_events_total{event=\"header_timeout\"}"), 1) << m->body;
  EXPECT_GE(metric(m->body, "m2fp_http_connection_events_total{event=\"body_timeout\"}"), 1);
}

TEST(Transport, PerClientCapEvictsTheOldestStalledElseRefuses) {
  ServeOptions o = stub_options();
  o.max_conns_per_client = 4;
  Running srv(o);
  const int port = srv.port();
  Fds fds;
  // Four connections from 127.0.0.3 stalled in their headers: a fifth closes the oldest and is served.
  for (int i = 0; i < 4; ++i) {
    fds.v.push_back(connect_from("127.0.0.3", port));
    ASSERT_TRUE(send_all(fds.v.back(), "GET /health HTTP/1.1\r\n"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int fifth = connect_from("127.0.0.3", port);
  fds.v.push_back(fifth);
  ASSERT_TRUE(send_all(fifth, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(status_of(read_answer(fifth)), 200);
  EXPECT_TRUE(closed_by_server(fds.v[0], 5)) << "the oldest stalled connection makes room";
  // Four from 127.0.0.4 in the middle of a body are not stalled in their headers: a fifth is refused.
  for (int i = 0; i < 4; ++i) {
    fds.v.push_back(connect_from("127.0.0.4", port));
    ASSERT_TRUE(send_all(fds.v.back(), post_head("/predict", 1000) + "xy"));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int refused = connect_from("127.0.0.4", port);
  fds.v.push_back(refused);
  const std::string r = read_answer(refused);
  EXPECT_EQ(status_of(r), 503) << r;
  EXPECT_NE(body_of(r).find("too many connections from your address (limit 4)"), std::string::npos) << r;
  EXPECT_TRUE(closed_by_server(refused));
  // Other addresses are not affected.
  auto h = srv.client()->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = srv.client()->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "m2fp_http_connection_events_total{event=\"per_client_cap\"}"), 1) << m->body;
  EXPECT_GE(metric(m->body, "m2fp_http_connection_events_total{event=\"evicted\"}"), 1);
}

TEST(Transport, KeepAliveLimitAndPipelining) {
  ServeOptions o = stub_options();
  o.keep_alive_max = 3;
  Running srv(o);
  Fds fds;
  const int fd = connect_from("127.0.0.1", srv.port());
  fds.v.push_back(fd);
  // Two requests in one write: two answers, in order.
  ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\nX-Request-Id: one\r\n\r\n"
                           "GET /nothing HTTP/1.1\r\nHost: t\r\nX-Request-Id: two\r\n\r\n"));
  std::string buf;
  const std::string a1 = read_answer(fd, buf), a2 = read_answer(fd, buf);
  EXPECT_EQ(status_of(a1), 200) << a1;
  EXPECT_EQ(header_of(a1, "X-Request-Id"), "one");
  EXPECT_EQ(header_of(a1, "Keep-Alive"), "timeout=5, max=3");
  EXPECT_EQ(status_of(a2), 404) << a2;
  EXPECT_EQ(header_of(a2, "X-Request-Id"), "two");
  // The third request is the last one of this connection.
  ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
  const std::string a3 = read_answer(fd, buf);
  EXPECT_EQ(status_of(a3), 200) << a3;
  EXPECT_EQ(header_of(a3, "Connection"), "close");
  EXPECT_TRUE(closed_by_server(fd));
}

TEST(Transport, UploadsExpectContinueChunkedAndOverTheLimit) {
  ServeOptions o = stub_options();
  Running srv(o);
  const int port = srv.port();
  const std::string png = png_photo(40, 30, 1);
  Fds fds;
  {  // Expect: 100-continue: the interim answer, then the body, then the result.
    const int fd = connect_from("127.0.0.1", port);
    fds.v.push_back(fd);
    ASSERT_TRUE(send_all(fd, post_head("/predict", png.size(), "Expect: 100-continue\r\n")));
    std::string buf;
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1) << "no 100 Continue";
    char tmp[256];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    ASSERT_GT(n, 0);
    buf.assign(tmp, (size_t)n);
    ASSERT_EQ(buf.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u) << buf;
    buf.erase(0, 25);
    ASSERT_TRUE(send_all(fd, png));
    const std::string a = read_answer(fd, buf);
    EXPECT_EQ(status_of(a), 200) << a.substr(0, 300);
    EXPECT_EQ(a.find("100 Continue"), std::string::npos) << "one interim answer only";
  }
  {  // Chunked, in three chunks (one with an extension), sent in two writes: parsed as one photo.
    const int fd = connect_from("127.0.0.1", port);
    fds.v.push_back(fd);
    auto hex = [](size_t n) {
      char b[16];
      std::snprintf(b, sizeof b, "%zx", n);
      return std::string(b);
    };
    const size_t third = png.size() / 3;
    std::string body = hex(third) + "\r\n" + png.substr(0, third) + "\r\n" + hex(third) + ";ext=1\r\n" +
                       png.substr(third, third) + "\r\n" + hex(png.size() - 2 * third) + "\r\n" +
                       png.substr(2 * third) + "\r\n0\r\n\r\n";
    ASSERT_TRUE(send_all(fd, "POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n" +
                                 body.substr(0, 100)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(send_all(fd, body.substr(100)));
    const std::string a = read_answer(fd);
    EXPECT_EQ(status_of(a), 200) << a.substr(0, 300);
  }
  {  // Over the limit by Content-Length, without Expect: the body is read and dropped, 413, and
     // the connection goes on.
    const int fd = connect_from("127.0.0.1", port);
    fds.v.push_back(fd);
    const size_t big = (2u << 20) + 1;
    ASSERT_TRUE(send_all(fd, post_head("/predict", big) + std::string(big, 'x')));
    std::string buf;
    const std::string a = read_answer(fd, buf);
    EXPECT_EQ(status_of(a), 413) << a;
    EXPECT_NE(body_of(a).find("larger than the limit of 2 MiB"), std::string::npos) << a;
    ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    EXPECT_EQ(status_of(read_answer(fd, buf)), 200);
  }
  {  // Over the limit with Expect: 413 at once, no 100 Continue, no body awaited; then closed.
    const int fd = connect_from("127.0.0.1", port);
    fds.v.push_back(fd);
    ASSERT_TRUE(send_all(fd, post_head("/predict", 50u << 20, "Expect: 100-continue\r\n")));
    const std::string a = read_answer(fd);
    EXPECT_EQ(status_of(a), 413) << a;
    EXPECT_TRUE(closed_by_server(fd));
  }
  {  // Over the limit chunked: 413 after the body, framing kept.
    const int fd = connect_from("127.0.0.1", port);
    fds.v.push_back(fd);
    std::string body;
    const std::string chunk(1u << 20, 'y');
    for (int i = 0; i < 3; ++i) body += "100000\r\n" + chunk + "\r\n";
    body += "0\r\n\r\n";
    ASSERT_TRUE(send_all(fd, "POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n" +
                                 body + "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    std::string buf;
    const std::string a = read_answer(fd, buf);
    EXPECT_EQ(status_of(a), 413) << a;
    EXPECT_NE(body_of(a).find("larger than the limit"), std::string::npos) << a;
    EXPECT_EQ(status_of(read_answer(fd, buf)), 200) << "the pipelined request after the dropped body";
  }
}

TEST(Transport, TwentyMebibyteUploadIsParsed) {
  ServeOptions o = stub_options();
  o.max_upload_bytes = 20u << 20;
  Running srv(o);
  // A small PNG made 20 MiB (minus a little) by an ancillary chunk that decoders skip.
  const std::string png = png_photo(32, 24, 2);
  const size_t pad = (20u << 20) - png.size() - 12 - 256;
  std::string chunk = std::string("\0\0\0\0", 4) + "ruBy" + std::string(pad, 'p') + std::string(4, '\0');
  chunk[0] = (char)(pad >> 24), chunk[1] = (char)(pad >> 16), chunk[2] = (char)(pad >> 8), chunk[3] = (char)pad;
  const std::string big = png.substr(0, 33) + chunk + png.substr(33);  // after the signature and IHDR
  ASSERT_LE(big.size(), 20u << 20);
  auto cli = srv.client(60);
  auto r = cli->Post("/predict", big, "image/png");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200) << r->body.substr(0, 300);
  EXPECT_EQ(json::parse(r->body)["image"]["bytes"], big.size());
}

TEST(Transport, MethodNotAllowedCarriesAllow) {
  Running srv(stub_options());
  auto cli = srv.client();
  struct Case {
    std::string method, path;
    int status;
    std::string allow;
  };
  const std::vector<Case> cases = {
      {"GET", "/predict", 405, "POST, OPTIONS"},          {"POST", "/health", 405, "GET, HEAD, OPTIONS"},
      {"GET", "/jobs", 405, "POST, OPTIONS"},             {"DELETE", "/jobs/abc123", 405, "GET, HEAD, OPTIONS"},
      {"PUT", "/metrics", 405, "GET, HEAD, OPTIONS"},     {"POST", "/app.js", 405, "GET, HEAD, OPTIONS"},
      {"GET", "/no/such/endpoint", 404, ""},              {"DELETE", "/nowhere", 404, ""},
      {"OPTIONS", "/predict", 204, "POST, OPTIONS"},      {"OPTIONS", "/nowhere", 404, ""},
      {"TRACE", "/health", 405, "GET, HEAD, OPTIONS"},
  };
  for (const Case& c : cases) {
    const int fd = connect_from("127.0.0.1", srv.port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, c.method + " " + c.path + " HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
    const std::string a = read_answer(fd);
    ::close(fd);
    EXPECT_EQ(status_of(a), c.status) << c.method << " " << c.path << ": " << a;
    EXPECT_EQ(header_of(a, "Allow"), c.allow) << c.method << " " << c.path;
    if (c.status >= 400) {
      const json j = json::parse(body_of(a));
      EXPECT_EQ(j["status"], c.status);
      if (c.status == 405)
        EXPECT_NE(j["error"].get<std::string>().find("use " + c.allow), std::string::npos) << j.dump();
    }
  }
  // The same without a socket (Server::handle_raw, the fuzzer's entry point).
  const std::vector<std::string> raw = srv.server->handle_raw("GET /recommend HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(raw.size(), 1u);
  EXPECT_EQ(status_of(raw[0]), 405) << raw[0];
  EXPECT_EQ(header_of(raw[0], "Allow"), "POST, OPTIONS");
}

TEST(Transport, CorsOffByDefault) {
  Running srv(stub_options());
  auto cli = srv.client();
  auto r = cli->Get("/health", {{"Origin", "https://shop.example"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  auto pre = cli->Options("/predict", {{"Origin", "https://shop.example"}, {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_FALSE(pre->has_header("Access-Control-Allow-Origin"));
  EXPECT_FALSE(pre->has_header("Access-Control-Allow-Methods"));
}

TEST(Transport, CorsForListedOriginsAndAny) {
  ServeOptions o = stub_options();
  o.cors_origins = {"https://shop.example", "http://localhost:8080"};
  {
    Running srv(o);
    auto cli = srv.client();
    const httplib::Headers preflight = {{"Origin", "https://shop.example"},
                                        {"Access-Control-Request-Method", "POST"},
                                        {"Access-Control-Request-Headers", "content-type"}};
    auto pre = cli->Options("/predict", preflight);
    ASSERT_TRUE(pre);
    EXPECT_EQ(pre->status, 204);
    EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "https://shop.example");
    EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Methods"), "POST, OPTIONS");
    EXPECT_NE(pre->get_header_value("Access-Control-Allow-Headers").find("Content-Type"), std::string::npos);
    EXPECT_EQ(pre->get_header_value("Vary"), "Origin");
    EXPECT_FALSE(pre->get_header_value("Access-Control-Max-Age").empty());
    // Answers (a success and an error) carry the origin for listed origins only.
    auto h = cli->Get("/health", {{"Origin", "http://localhost:8080"}});
    ASSERT_TRUE(h);
    EXPECT_EQ(h->get_header_value("Access-Control-Allow-Origin"), "http://localhost:8080");
    EXPECT_NE(h->get_header_value("Access-Control-Expose-Headers").find("X-Request-Id"), std::string::npos);
    auto e2 = cli->Post("/predict", {{"Origin", "https://shop.example"}}, "not a photo", "text/plain");
    ASSERT_TRUE(e2);
    EXPECT_EQ(e2->status, 415);
    EXPECT_EQ(e2->get_header_value("Access-Control-Allow-Origin"), "https://shop.example");
    auto other = cli->Get("/health", {{"Origin", "https://evil.example"}});
    ASSERT_TRUE(other);
    EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
    auto other_pre = cli->Options("/predict", {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}});
    ASSERT_TRUE(other_pre);
    EXPECT_FALSE(other_pre->has_header("Access-Control-Allow-Origin"));
  }
  o.cors_origins = {"*"};
  {
    Running srv(o);
    auto h = srv.client()->Get("/health", {{"Origin", "https://anyone.example"}});
    ASSERT_TRUE(h);
    EXPECT_EQ(h->get_header_value("Access-Control-Allow-Origin"), "*");
    EXPECT_FALSE(h->has_header("Vary"));
  }
  // Not origins: refused when the server is made.
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"shop.example"}, {"https://shop.example/"}, {"*", "https://a.example"}, {""}}) {
    ServeOptions b = stub_options();
    b.listen = false;
    b.cors_origins = bad;
    EXPECT_THROW(Server s(b), UsageError) << bad[0];
  }
}

TEST(Transport, MultipartDribbledInTinySegments) {
  // cpp-httplib 0.11's multipart parser fails (400) when its first read of the body is shorter than
  // the boundary line; the body now reaches it whole, however the client's TCP segments fell.
  Running srv(stub_options());
  const std::string png = png_photo(24, 16, 3);
  const std::string boundary = "----------------------------dribbledribbledribble";
  const std::string body = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n" +
                           "Content-Type: image/png\r\n\r\n" + png + "\r\n--" + boundary + "--\r\n";
  Fds fds;
  const int fd = connect_from("127.0.0.1", srv.port());
  fds.v.push_back(fd);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ASSERT_TRUE(send_all(fd, "POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=" +
                               boundary + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  for (size_t off = 0; off < body.size(); off += 7) {
    ASSERT_TRUE(send_all(fd, body.substr(off, 7)));
    if (off < 140) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::string a = read_answer(fd);
  EXPECT_EQ(status_of(a), 200) << a.substr(0, 300);
}
