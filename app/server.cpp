// app/server.cpp: the outfit service: HTTP routes (cpp-httplib), the engine worker pool, the result
// cache, asynchronous jobs and metrics. docs/SERVICE.md is the user-facing description.
//
// A request's life (POST /predict):
//   pre-routing   start clock; refuse bodies without Content-Length (411) or above the limit (413)
//   handler       upload -> bytes (multipart field "image" or raw body); sniff the format (415);
//                 key = SHA-256(bytes) + parse options; cache hit -> answer
//                 else join the identical photo in flight, or queue a new one (429 when full);
//                 wait until the deadline (504)
//   worker        parse_image_bytes -> extract_outfits -> masks and coloured mask as PNG/base64
//                 -> Analysis (cached) -> every waiter
//   logger        count the request and its latency by route
#include "app/server.h"

#include <omp.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <unordered_map>

#include "app/args.h"
#include "app/commands.h"
#include "app/lru_cache.h"
#include "app/metrics.h"
#include "app/report.h"
#include "app/sha256.h"
#include "app/web_assets.h"
#include "app/work_pool.h"
#include "engine/image.h"
#include "engine/io.h"
#include "engine/pipeline.h"
#include "engine/render.h"
#include "outfit/outfit.h"
#include "outfit/outfit_json.h"

namespace fs = std::filesystem;

namespace m2fp::app {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// An answer other than 200, with the message for the JSON body.
struct HttpError : std::runtime_error {
  int status;
  double retry_after_s = 0;
  HttpError(int s, const std::string& m, double retry = 0) : std::runtime_error(m), status(s), retry_after_s(retry) {}
};

// Strings from the request (a path, a field's value) may be any bytes: invalid UTF-8 is written as
// U+FFFD instead of making dump() throw (in an error handler that would end the process).
void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& msg) {
  send_json(res, status, {{"error", msg}, {"status", status}});
}

// The route name a path is counted under in /metrics.
std::string route_of(const std::string& method, const std::string& path) {
  static const char* const kExact[] = {"/", "/predict", "/recommend", "/jobs", "/health", "/metrics"};
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

std::string human_bytes(size_t n) {
  char buf[32];
  if (n >= (1u << 20) && n % (1u << 20) == 0) std::snprintf(buf, sizeof buf, "%zu MiB", n >> 20);
  else std::snprintf(buf, sizeof buf, "%zu bytes", n);
  return buf;
}

// Request start time: set by the pre-routing handler, read by the logger. cpp-httplib handles one
// connection's requests one after another on one thread, so a thread-local is per request.
thread_local Clock::time_point t_request_start = Clock::now();

// ---- the work -----------------------------------------------------------------------------------

// One photo parsed: what the cache keeps. `predict_text` is the /predict body, serialised once, less
// the per-request keys (model, cached, timings_ms), which predict_text() splices in front: a cache hit
// costs a string copy, not a JSON walk over megabytes of base64.
struct Analysis {
  std::string predict_text;          // {"colored_mask": ..., "masks": {...}, ...}
  json meta;                         // labels, legend, image (for /recommend)
  json timings;                      // the engine's stage timings (ms)
  std::vector<PersonOutfit> outfits;
  size_t cost = 0;                   // approximate bytes, for the cache budget
};
using AnalysisPtr = std::shared_ptr<const Analysis>;

struct Outcome {
  AnalysisPtr analysis;
  int status = 200;  // else the error's HTTP status
  std::string error;
  double queue_ms = 0, engine_ms = 0;
};

// A photo queued or being parsed; every request for the same key waits on `future`.
struct Pending {
  std::string key, sha;
  std::shared_ptr<const std::string> bytes;
  std::promise<Outcome> promise;
  std::shared_future<Outcome> future;
  std::atomic<int> waiters{0};  // requests (and jobs) still interested; 0 when run -> skipped
  std::atomic<int> state{0};    // 0 queued, 1 running, 2 done
  Clock::time_point enqueued = Clock::now();
};

struct Job {
  std::string id, task;  // task: predict | recommend
  RecommendOptions reco;
  std::shared_ptr<Pending> pending;  // until it finishes
  AnalysisPtr analysis;
  bool cached = false;
  int status = 0;  // 0 = not finished; 200 done; else failed with `error`
  std::string error;
  double queue_ms = 0;
  Clock::time_point created = Clock::now(), finished;
};

// A request body as read through cpp-httplib's ContentReader (see read_body): multipart parts or the
// raw bytes. Bytes beyond the upload limit are read and dropped, so the connection stays in step.
struct Body {
  struct Part {
    std::string name, filename, content_type, content;
  };
  bool multipart = false;
  std::vector<Part> parts;
  std::string raw;
  size_t total = 0;
  bool overflow = false;

  const Part* part(const std::string& name) const {
    for (const Part& p : parts)
      if (p.name == name) return &p;
    return nullptr;
  }
};

struct Upload {
  std::shared_ptr<const std::string> bytes;
  std::string sha;
  ImageFormat format = ImageFormat::Unknown;
};

std::string random_id() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)rng(), (unsigned long long)rng());
  return buf;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
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

constexpr int kListenBacklog = 1024;

// A connection without a socket (Server::handle_raw): reads the given bytes, collects the answer.
class StringStream : public httplib::Stream {
 public:
  explicit StringStream(const std::string& in) : in_(in) {}
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
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 0; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = "127.0.0.1", port = 0; }
  socket_t socket() const override { return INVALID_SOCKET; }
  bool at_end() const { return pos_ >= in_.size(); }

  std::string out;

 private:
  const std::string& in_;
  size_t pos_ = 0;
};

// cpp-httplib's server with its per-request entry point opened up for StringStream: the same
// process_request() a socket's handler thread calls for each request of a keep-alive connection.
class HttpServer : public httplib::Server {
 public:
  // Linux: listen() on a listening socket only changes its backlog (capped by net.core.somaxconn).
  void set_listen_backlog(int n) {
    if (::listen(svr_sock_, n) != 0)
      std::fprintf(stderr, "m2fp serve: warning: cannot deepen the listen queue: %s\n", std::strerror(errno));
  }

  std::vector<std::string> handle_buffer(const std::string& bytes) {
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
};

}  // namespace

// ---------------------------------------------------------------------------------------------------

struct Server::Impl {
  ServeOptions opt;
  std::unique_ptr<M2FP> model;
  json model_j;
  OutfitKit kit;
  std::string catalog_path;
  int threads_per_worker = 1;
  Clock::time_point started = Clock::now();

  LruCache<Analysis> cache;
  Metrics metrics;
  std::unique_ptr<WorkPool> pool;

  std::mutex inflight_mu;
  std::unordered_map<std::string, std::shared_ptr<Pending>> inflight;

  std::mutex jobs_mu;
  std::map<std::string, std::shared_ptr<Job>> jobs;

  std::mutex catalog_mu;
  std::shared_ptr<const std::vector<CatalogItem>> items;
  struct timespec catalog_mtime {};
  off_t catalog_size = -1;

  std::mutex engine_time_mu;
  double engine_s_avg = 0;  // running mean, for Retry-After

  HttpServer http;
  int bound_port = -1;

  // The model file as it was when loaded (its weights are copied into memory then; the file is not
  // read again): /health reports whether it has changed on disk since.
  struct stat model_stat {};
  bool model_stat_ok = false;
  std::atomic<bool> model_change_logged{false};
  std::atomic<bool> stopping{false};

  explicit Impl(const ServeOptions& o) : opt(o), cache(o.cache_bytes, o.cache_entries) {}

  // ---- set-up -----------------------------------------------------------------------------------
  void load() {
    if (opt.model_path.empty()) throw UsageError("missing required option --model");
    if (opt.workers < 1) throw UsageError("--workers must be >= 1");
    if (opt.queue < 0) throw UsageError("--queue must be >= 0");
    LoadOptions lo;
    if (!dnn::parse_precision(opt.precision, &lo.precision))
      throw UsageError("--precision must be fp32 or bf16, got '" + opt.precision + "'");
    const int total = opt.threads > 0 ? opt.threads : omp_get_max_threads();
    threads_per_worker = std::max(1, total / opt.workers);

    if (opt.engine_stub) {
      model_j = {{"file", opt.model_path}, {"summary", "stub engine (tests)"}, {"stub", true}, {"synthetic", true},
                 {"warning", kSyntheticWarning}};
    } else {
      struct stat before;
      const bool before_ok = ::stat(opt.model_path.c_str(), &before) == 0;
      model = M2FP::load(opt.model_path, lo);
      model_j = model_json(*model, opt.model_path);
      model_stat_ok = before_ok;
      model_stat = before;
    }
    kit = OutfitKit::load();
    catalog_path = opt.catalog_path.empty() ? default_catalog_path() : opt.catalog_path;
    {
      std::error_code ec;
      const fs::path parent = fs::path(catalog_path).parent_path();
      if (!parent.empty()) fs::create_directories(parent, ec);
      const bool existed = catalog_path == ":memory:" || fs::exists(catalog_path, ec);
      try {
        Catalog cat = Catalog::open_or_create(catalog_path, kit.seed_catalog());
        items = std::make_shared<const std::vector<CatalogItem>>(cat.items());
      } catch (const std::exception& e) {
        // A catalogue this call began to create (e.g. the disk filled up while seeding) is removed, so
        // that no half-made database is left behind; SQLite's "unable to open database file" gets the
        // reason the folder gives.
        if (!existed)
          for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(catalog_path + suffix, ec);
        throw std::runtime_error(std::string(e.what()) + catalog_folder_problem(catalog_path, existed) +
                                 " (--catalog FILE.db chooses where the catalogue lives)");
      }
      struct stat st;
      if (::stat(catalog_path.c_str(), &st) == 0) catalog_mtime = st.st_mtim, catalog_size = st.st_size;
    }
    const int tpw = threads_per_worker;
    pool = std::make_unique<WorkPool>(opt.workers, (size_t)opt.queue, [tpw](int) { omp_set_num_threads(tpw); });
  }

  // Why a catalogue could not be created or opened, as far as its folder tells: "" when nothing is
  // visibly wrong with it.
  static std::string catalog_folder_problem(const std::string& path, bool existed) {
    const fs::path file(path);
    const fs::path parent = file.parent_path().empty() ? fs::path(".") : file.parent_path();
    std::error_code ec;
    if (!fs::is_directory(parent, ec))
      return "; '" + parent.string() + "' is not a folder" + (ec ? " (" + ec.message() + ")" : std::string());
    if (existed) return "";
    // Can a file be created there? (root ignores permission bits, so ask the file system.)
    const std::string probe = (parent / (".m2fp-write-test-" + random_id())).string();
    const int fd = ::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) return "; cannot create files in '" + parent.string() + "': " + std::strerror(errno);
    ::close(fd);
    ::unlink(probe.c_str());
    return "";
  }

  // The catalogue's items; re-read when the database file changed (m2fp catalog import while serving).
  std::shared_ptr<const std::vector<CatalogItem>> catalog_items() {
    std::lock_guard<std::mutex> lock(catalog_mu);
    struct stat st;
    if (::stat(catalog_path.c_str(), &st) == 0 &&
        (st.st_mtim.tv_sec != catalog_mtime.tv_sec || st.st_mtim.tv_nsec != catalog_mtime.tv_nsec ||
         st.st_size != catalog_size)) {
      try {
        Catalog cat = Catalog::open(catalog_path);
        items = std::make_shared<const std::vector<CatalogItem>>(cat.items());
        catalog_mtime = st.st_mtim;
        catalog_size = st.st_size;
        if (opt.access_log)
          std::fprintf(stderr, "m2fp serve: catalogue %s changed, %zu items\n", catalog_path.c_str(), items->size());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "m2fp serve: catalogue %s: %s (keeping the %zu items read before)\n",
                     catalog_path.c_str(), e.what(), items->size());
      }
    }
    return items;
  }

  std::string cache_key(const std::string& sha) const {
    return sha + "|short_edge=" + std::to_string(opt.short_edge) + "|max_size=" + std::to_string(opt.max_size) +
           "|max_pixels=" + std::to_string(opt.max_pixels);
  }

  // ---- the engine side (worker threads) -------------------------------------------------------------
  std::shared_ptr<Analysis> analyse(const std::string& bytes, const std::string& sha) const {
    ParseOptions po;
    po.short_edge = opt.short_edge;
    po.max_size = opt.max_size;
    po.decode.max_pixels = opt.max_pixels;
    po.hooks = opt.hooks;
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    ParseResult r = opt.engine_stub ? opt.engine_stub(data, bytes.size(), po)
                                    : parse_image_bytes(*model, data, bytes.size(), po);
    const Parsing& p = r.parsing;

    auto a = std::make_shared<Analysis>();
    const auto t0 = Clock::now();
    a->outfits = extract_outfits(p, r.image, kit.garments, kit.garment_options);
    const auto t1 = Clock::now();

    json j = parsing_json(p);
    add_person_garments(j, a->outfits);
    // labels present (Background left out) and one black/white PNG mask per label
    json labels = json::array(), masks = json::object();
    std::vector<uint8_t> mask((size_t)p.width * p.height);
    for (size_t c = 1; c < p.label_fractions.size(); ++c) {
      if (!(p.label_fractions[c] > 0)) continue;
      const std::string name = c < p.class_names.size() ? p.class_names[c] : std::to_string(c);
      for (size_t i = 0; i < mask.size(); ++i) mask[i] = p.labels[i] == c ? 255 : 0;
      std::string b64 = base64_encode(encode_png(mask.data(), p.width, p.height, 1));
      labels.push_back(name);
      masks[name] = std::move(b64);
    }
    std::string colored = base64_encode(encode_png(colorize_labels(p.labels, p.width, p.height)));
    const auto t2 = Clock::now();

    j["labels"] = labels;
    j["masks"] = std::move(masks);
    j["colored_mask"] = std::move(colored);
    j["legend"] = legend_json(p);
    j["image"] = {{"width", p.width},
                  {"height", p.height},
                  {"sha256", sha},
                  {"bytes", bytes.size()},
                  {"format", image_format_name(sniff_image_format(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                                  bytes.size()))},
                  {"network_input", {{"height", r.geometry.nh}, {"width", r.geometry.nw}}}};
    json t = timings_json(r.timings);
    t["outfits"] = ms_between(t0, t1);
    t["encode"] = ms_between(t1, t2);
    t["engine"] = r.timings.total_ms + ms_between(t0, t2);
    a->timings = t;
    a->meta = {{"labels", j["labels"]}, {"legend", j["legend"]}, {"image", j["image"]}};
    a->predict_text = j.dump();
    a->cost = a->predict_text.size() + a->meta.dump().size() + 1024 * (a->outfits.size() + 4);
    return a;
  }

  void work(const std::shared_ptr<Pending>& p, bool cancelled) {
    Outcome out;
    const auto start = Clock::now();
    out.queue_ms = ms_between(p->enqueued, start);
    if (cancelled) {
      out.status = 503;
      out.error = "the server is shutting down";
    } else if (p->waiters.load() <= 0) {
      out.status = 504;
      out.error = "every request for this photo gave up before a worker was free";
    } else {
      p->state = 1;
      metrics.queue_wait(out.queue_ms / 1000);
      try {
        std::shared_ptr<Analysis> a = analyse(*p->bytes, p->sha);
        out.analysis = a;
        cache.put(p->key, a, a->cost);
      } catch (const ImageError& e) {
        out.status = 400;
        out.error = std::string("bad image: ") + e.what();
      } catch (const std::bad_alloc&) {
        out.status = 503;
        out.error = "out of memory while parsing this photo";
      } catch (const std::exception& e) {
        out.status = 500;
        out.error = std::string("parsing failed: ") + e.what();
      }
      out.engine_ms = ms_between(start, Clock::now());
      metrics.engine(out.engine_ms / 1000);
      std::lock_guard<std::mutex> lock(engine_time_mu);
      engine_s_avg = engine_s_avg == 0 ? out.engine_ms / 1000 : 0.8 * engine_s_avg + 0.2 * out.engine_ms / 1000;
    }
    {
      std::lock_guard<std::mutex> lock(inflight_mu);
      auto it = inflight.find(p->key);
      if (it != inflight.end() && it->second == p) inflight.erase(it);
    }
    p->bytes.reset();
    p->state = 2;
    p->promise.set_value(std::move(out));
  }

  double retry_after_s() {
    std::lock_guard<std::mutex> lock(engine_time_mu);
    const double per = engine_s_avg > 0 ? engine_s_avg : 5.0;
    const double s = std::ceil(per * (double)(pool->depth() + 1) / pool->workers());
    return std::clamp(s, 1.0, 600.0);
  }

  // The photo's pending parse: the one already in flight for this key, or a new one queued.
  std::shared_ptr<Pending> acquire(const std::string& key, const Upload& up) {
    std::lock_guard<std::mutex> lock(inflight_mu);
    auto it = inflight.find(key);
    if (it != inflight.end()) {
      ++it->second->waiters;
      return it->second;
    }
    auto p = std::make_shared<Pending>();
    p->key = key;
    p->sha = up.sha;
    p->bytes = up.bytes;
    p->future = p->promise.get_future().share();
    p->waiters = 1;
    inflight[key] = p;
    if (!pool->try_submit([this, p](bool cancelled) { work(p, cancelled); })) {
      inflight.erase(key);
      if (stopping) throw HttpError(503, "the server is shutting down");
      metrics.rejected("queue_full");
      const double retry = retry_after_s();
      throw HttpError(429,
                      "the engine queue is full (" + std::to_string(pool->depth()) + " photos waiting for " +
                          std::to_string(pool->workers()) + " workers); retry after " +
                          std::to_string((int)retry) + " s",
                      retry);
    }
    return p;
  }

  // The analysis of an upload: from the cache, or parsed (waiting at most until `deadline`).
  AnalysisPtr obtain(const Upload& up, Clock::time_point deadline, bool* cached, double* queue_ms) {
    const std::string key = cache_key(up.sha);
    if (AnalysisPtr a = cache.get(key)) {
      *cached = true;
      return a;
    }
    *cached = false;
    std::shared_ptr<Pending> p = acquire(key, up);
    if (p->future.wait_until(deadline) != std::future_status::ready) {
      --p->waiters;
      metrics.rejected("timeout");
      throw HttpError(504, "no result within the request timeout of " + std::to_string((int)opt.timeout_s) +
                               " s (the photo is " + (p->state == 1 ? "being parsed" : "still queued") +
                               "; its result will be cached if it completes)");
    }
    const Outcome& out = p->future.get();
    if (out.status != 200) throw HttpError(out.status, out.error);
    *queue_ms = out.queue_ms;
    return out.analysis;
  }

  // ---- request parsing --------------------------------------------------------------------------------
  // The whole body, read with the upload limit (413) whatever its framing (Content-Length or chunked).
  Body read_body(const httplib::Request& req, const httplib::ContentReader& reader) const {
    Body b;
    b.multipart = req.is_multipart_form_data();
    const size_t limit = opt.max_upload_bytes;
    auto keep = [&b, limit](std::string& dst, const char* data, size_t n) {
      b.total += n;
      if (b.total > limit) b.overflow = true;  // keep reading (and dropping) to the end of the body
      else dst.append(data, n);
      return true;
    };
    const std::string te = req.get_header_value("Transfer-Encoding");
    if (!req.has_header("Content-Length") && te.find("chunked") == std::string::npos)
      return b;  // no framing: no body (RFC 9112 6.3), and nothing to read
    bool ok;
    if (b.multipart) {
      ok = reader(
          [&b](const httplib::MultipartFormData& f) {
            b.parts.push_back({f.name, f.filename, f.content_type, {}});
            return true;
          },
          [&b, &keep](const char* data, size_t n) { return b.parts.empty() ? true : keep(b.parts.back().content, data, n); });
    } else {
      ok = reader([&b, &keep](const char* data, size_t n) { return keep(b.raw, data, n); });
    }
    const std::string cl = req.get_header_value("Content-Length");
    if (b.overflow || (!cl.empty() && std::strtoull(cl.c_str(), nullptr, 10) > limit))
      throw HttpError(413, "upload larger than the limit of " + human_bytes(limit) +
                               (cl.empty() ? std::string() : " (Content-Length " + cl + ")"));
    if (!ok)
      throw HttpError(400, b.multipart ? "malformed multipart/form-data body"
                                       : "the request body could not be read (truncated or malformed)");
    return b;
  }

  // A form field: from the query string, else from a multipart part of that name.
  static std::string field(const httplib::Request& req, const Body& b, const std::string& name) {
    if (req.has_param(name)) return req.get_param_value(name);
    if (const Body::Part* p = b.part(name)) return p->content;
    return "";
  }

  Upload read_upload(const httplib::Request& req, Body& b) const {
    std::string bytes;
    if (b.multipart) {
      Body::Part* image = nullptr;
      for (Body::Part& p : b.parts)
        if (p.name == "image") image = &p;
      if (!image) {
        std::string names;
        for (const Body::Part& p : b.parts) names += (names.empty() ? "" : ", ") + p.name;
        throw HttpError(400, "the multipart body has no field 'image'" +
                                 (names.empty() ? std::string(" (no fields at all)") : " (fields: " + names + ")"));
      }
      bytes = std::move(image->content);
    } else {
      const std::string ct = req.get_header_value("Content-Type");
      if (ct.rfind("application/x-www-form-urlencoded", 0) == 0)
        throw HttpError(415,
                        "a form-urlencoded body cannot carry a photo: send it as multipart field 'image' or as the "
                        "raw body with Content-Type image/jpeg, image/png or application/octet-stream");
      bytes = std::move(b.raw);
    }
    if (bytes.empty())
      throw HttpError(400, "empty upload: send the photo as multipart field 'image' or as the raw request body");
    Upload up;
    up.format = sniff_image_format(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (up.format == ImageFormat::Unknown)
      throw HttpError(415, "not an image: PNG, JPEG or BMP expected (the first bytes match no image signature)");
    if (up.format != ImageFormat::Png && up.format != ImageFormat::Jpeg && up.format != ImageFormat::Bmp)
      throw HttpError(415, std::string(image_format_name(up.format)) +
                               " images are not supported: send PNG, JPEG or BMP");
    // A header claiming more than --max-pixels is refused here, before the photo takes a place in the
    // queue (found by tests/load: such uploads waited behind real photos and got 429). The worker's
    // decode_image makes this check again, with every other one; this is only the early answer.
    ImageHeader head;
    const int64_t hw = read_image_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &head) ? head.width : 0;
    const int64_t hh = head.height;
    if ((uint64_t)hw * (uint64_t)hh > (uint64_t)opt.max_pixels)
      throw HttpError(400, "bad image: its header says " + std::to_string(hw) + "x" + std::to_string(hh) + " = " +
                               std::to_string((uint64_t)hw * (uint64_t)hh) + " pixels, more than the limit of " +
                               std::to_string(opt.max_pixels) + " (--max-pixels)");
    up.sha = sha256_hex(bytes.data(), bytes.size());
    up.bytes = std::make_shared<const std::string>(std::move(bytes));
    return up;
  }

  RecommendOptions read_reco(const httplib::Request& req, const Body& b) const {
    RecommendOptions ro;
    ro.style = field(req, b, "style");
    ro.occasion = field(req, b, "occasion");
    ro.season = field(req, b, "season");
    const std::string k = field(req, b, "k");
    if (!k.empty()) {
      size_t used = 0;
      long v = -1;
      try {
        v = std::stol(k, &used);
      } catch (...) {
        used = 0;
      }
      if (used != k.size() || v < 0 || v > 50) throw HttpError(400, "k must be an integer in [0, 50], got '" + k + "'");
      ro.k = (int)v;
    }
    const std::string mp = field(req, b, "max_price");
    if (!mp.empty()) {
      size_t used = 0;
      double v = -1;
      try {
        v = std::stod(mp, &used);
      } catch (...) {
        used = 0;
      }
      if (used != mp.size() || !(v >= 0)) throw HttpError(400, "max_price must be a number >= 0, got '" + mp + "'");
      ro.max_price = v;
    }
    try {  // the recommender's own validation (known styles, occasions, seasons)
      recommend(PersonOutfit{}, std::vector<CatalogItem>{}, ro, kit.rules);
    } catch (const std::invalid_argument& e) {
      std::string msg = e.what();
      if (msg.rfind("recommend: ", 0) == 0) msg = msg.substr(11);
      throw HttpError(400, msg);
    }
    return ro;
  }

  // ---- responses --------------------------------------------------------------------------------------
  // The /predict body: the per-request keys, then the cached text's keys.
  std::string predict_text(const Analysis& a, bool cached, double queue_ms, Clock::time_point t0) const {
    json head;
    head["model"] = model_j;
    head["cached"] = cached;
    json t = a.timings;
    t["queue_wait"] = cached ? 0.0 : queue_ms;
    t["request"] = ms_between(t0, Clock::now());
    head["timings_ms"] = std::move(t);
    std::string out = head.dump();
    out.pop_back();  // the closing brace: the analysis's keys follow
    out.reserve(out.size() + a.predict_text.size() + 1);
    out += ',';
    out.append(a.predict_text, 1, std::string::npos);
    return out;
  }

  json recommend_body(const Analysis& a, const RecommendOptions& ro, bool cached, double queue_ms,
                      Clock::time_point t0) {
    const auto items_now = catalog_items();
    const auto r0 = Clock::now();
    json persons = json::array();
    for (const PersonOutfit& p : a.outfits) persons.push_back(outfit_advice_json(p, recommend(p, *items_now, ro, kit.rules)));
    json j;
    j["persons"] = std::move(persons);
    j["options"] = {{"style", ro.style}, {"occasion", ro.occasion}, {"season", ro.season}, {"k", ro.k}};
    if (ro.max_price > 0) j["options"]["max_price"] = ro.max_price;
    j["labels"] = a.meta["labels"];
    j["legend"] = a.meta["legend"];
    j["image"] = a.meta["image"];
    j["catalog"] = {{"path", catalog_path}, {"items", items_now->size()}};
    j["model"] = model_j;
    j["cached"] = cached;
    json t = a.timings;
    t["recommend"] = ms_between(r0, Clock::now());
    t["queue_wait"] = cached ? 0.0 : queue_ms;
    t["request"] = ms_between(t0, Clock::now());
    j["timings_ms"] = t;
    return j;
  }

  Clock::time_point deadline_from(Clock::time_point t0) const {
    return t0 + std::chrono::milliseconds((int64_t)(opt.timeout_s * 1000));
  }

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

  void handle_predict(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    const auto t0 = t_request_start;
    guarded(res, [&] {
      Body body = read_body(req, reader);
      const Upload up = read_upload(req, body);
      bool cached = false;
      double queue_ms = 0;
      AnalysisPtr a = obtain(up, deadline_from(t0), &cached, &queue_ms);
      res.set_header("X-Cache", cached ? "hit" : "miss");
      res.status = 200;
      res.set_content(predict_text(*a, cached, queue_ms, t0), "application/json");
    });
  }

  void handle_recommend(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    const auto t0 = t_request_start;
    guarded(res, [&] {
      Body body = read_body(req, reader);
      const RecommendOptions ro = read_reco(req, body);
      AnalysisPtr a;
      bool cached = false;
      double queue_ms = 0;
      const std::string sha = field(req, body, "sha256");
      const bool has_image = body.multipart ? body.part("image") != nullptr : !body.raw.empty();
      if (!sha.empty() && !has_image) {
        // A photo parsed before: no upload needed while its result is in the cache.
        if (!is_hex64(sha)) throw HttpError(400, "sha256 must be 64 lower-case hex digits");
        a = cache.get(cache_key(sha));
        if (!a) throw HttpError(404, "no cached result for sha256 " + sha + ": upload the photo (field 'image')");
        cached = true;
      } else {
        const Upload up = read_upload(req, body);
        a = obtain(up, deadline_from(t0), &cached, &queue_ms);
      }
      res.set_header("X-Cache", cached ? "hit" : "miss");
      send_json(res, 200, recommend_body(*a, ro, cached, queue_ms, t0));
    });
  }

  // Drops finished jobs past their time to live, then the oldest finished ones while over max_jobs.
  void prune_jobs_locked() {
    const auto now = Clock::now();
    for (auto it = jobs.begin(); it != jobs.end();) {
      refresh(*it->second);
      if (it->second->status != 0 && ms_between(it->second->finished, now) > opt.job_ttl_s * 1000)
        it = jobs.erase(it);
      else
        ++it;
    }
    while ((int)jobs.size() >= opt.max_jobs) {
      auto oldest = jobs.end();
      for (auto it = jobs.begin(); it != jobs.end(); ++it)
        if (it->second->status != 0 && (oldest == jobs.end() || it->second->finished < oldest->second->finished))
          oldest = it;
      if (oldest == jobs.end()) break;
      jobs.erase(oldest);
    }
  }

  // Collects a job's outcome once its parse is done.
  static void refresh(Job& j) {
    if (j.status != 0 || !j.pending) return;
    if (j.pending->future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    const Outcome& out = j.pending->future.get();
    j.status = out.status;
    j.error = out.error;
    j.analysis = out.analysis;
    j.queue_ms = out.queue_ms;
    j.finished = Clock::now();
    j.pending.reset();
  }

  static std::string state_of(const Job& j) {
    if (j.status == 200) return "done";
    if (j.status != 0) return "failed";
    return j.pending && j.pending->state == 1 ? "running" : "queued";
  }

  void handle_job_submit(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    guarded(res, [&] {
      Body body = read_body(req, reader);
      std::string task = field(req, body, "task");
      if (task.empty()) task = "predict";
      if (task != "predict" && task != "recommend")
        throw HttpError(400, "task must be 'predict' or 'recommend', got '" + task + "'");
      auto job = std::make_shared<Job>();
      job->task = task;
      if (task == "recommend") job->reco = read_reco(req, body);
      const Upload up = read_upload(req, body);
      {
        std::lock_guard<std::mutex> lock(jobs_mu);
        prune_jobs_locked();
        if ((int)jobs.size() >= opt.max_jobs)
          throw HttpError(429, "too many unfinished jobs (" + std::to_string(jobs.size()) + ")", retry_after_s());
      }
      const std::string key = cache_key(up.sha);
      if (AnalysisPtr a = cache.get(key)) {
        job->analysis = a;
        job->cached = true;
        job->status = 200;
        job->finished = Clock::now();
      } else {
        job->pending = acquire(key, up);  // the job stays a waiter until it is collected
      }
      job->id = random_id();
      std::string state;
      {
        std::lock_guard<std::mutex> lock(jobs_mu);
        jobs[job->id] = job;
        refresh(*job);
        state = state_of(*job);
      }
      res.set_header("Location", "/jobs/" + job->id);
      send_json(res, 202, {{"id", job->id}, {"task", task}, {"state", state}, {"url", "/jobs/" + job->id},
                           {"image", {{"sha256", up.sha}, {"bytes", up.bytes->size()}}}});
    });
  }

  void handle_job_get(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = t_request_start;
    guarded(res, [&] {
      const std::string id = req.matches[1];
      std::shared_ptr<Job> job;
      std::string state;
      {
        std::lock_guard<std::mutex> lock(jobs_mu);
        auto it = jobs.find(id);
        if (it == jobs.end()) throw HttpError(404, "no job " + id + " (unknown, or finished more than " +
                                                       std::to_string((int)opt.job_ttl_s) + " s ago)");
        job = it->second;
        refresh(*job);
        state = state_of(*job);
      }
      json j = {{"id", job->id}, {"task", job->task}, {"state", state},
                {"age_ms", ms_between(job->created, Clock::now())}};
      if (state == "queued") j["queue_depth"] = pool->depth();
      if (state == "failed") j["error"] = {{"error", job->error}, {"status", job->status}};
      if (state == "done" && job->task == "recommend")
        j["result"] = recommend_body(*job->analysis, job->reco, job->cached, job->queue_ms, t0);
      if (state == "done" && job->task == "predict") {
        // {"id": ..., "result": <the /predict body>}
        std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
        text.pop_back();
        text += ",\"result\":" + predict_text(*job->analysis, job->cached, job->queue_ms, t0) + "}";
        res.status = 200;
        res.set_content(text, "application/json");
        return;
      }
      send_json(res, 200, j);
    });
  }

  bool synthetic() const { return model ? model->config().synthetic : true; }

  // The model file now versus when it was loaded. The server keeps serving the weights it loaded
  // (they are in memory: a file truncated, rewritten or replaced underneath cannot hurt it) and says
  // so here, once in the log too, so that an operator knows a restart is needed to use the new file.
  json model_file_status() {
    json j = {{"path", opt.model_path}};
    if (!model) {
      j["state"] = "stub";
      return j;
    }
    j["loaded_bytes"] = model_stat_ok ? (int64_t)model_stat.st_size : -1;
    struct stat now;
    std::string state, what;
    if (::stat(opt.model_path.c_str(), &now) != 0) {
      state = "missing";
      what = std::string("cannot be read any more (") + std::strerror(errno) + ")";
    } else if (!model_stat_ok) {
      state = "unknown";
    } else if (now.st_dev != model_stat.st_dev || now.st_ino != model_stat.st_ino ||
               now.st_size != model_stat.st_size || now.st_mtim.tv_sec != model_stat.st_mtim.tv_sec ||
               now.st_mtim.tv_nsec != model_stat.st_mtim.tv_nsec) {
      state = "changed";
      what = "has changed (" + std::to_string((int64_t)model_stat.st_size) + " bytes when loaded, " +
             std::to_string((int64_t)now.st_size) + " now" +
             (now.st_ino != model_stat.st_ino ? ", another file" : "") + ")";
    } else {
      state = "unchanged";
    }
    j["state"] = state;
    if (!what.empty()) {
      const std::string note = "the model file " + what +
                               "; this server keeps serving the weights it loaded at start "
                               "(they are held in memory); restart it to load the new file";
      j["note"] = note;
      if (!model_change_logged.exchange(true))
        std::fprintf(stderr, "m2fp serve: %s: %s\n", opt.model_path.c_str(), note.c_str());
    }
    return j;
  }

  json health() {
    const auto cs = cache.stats();
    const auto items_now = catalog_items();
    json occasions = json::array();
    for (const auto& kv : kit.rules.occasions) occasions.push_back(kv.first);
    return {{"status", stopping ? "stopping" : "ok"},
            {"model", model_j},
            {"model_file", model_file_status()},
            {"workers", pool->workers()},
            {"threads_per_worker", threads_per_worker},
            {"busy", pool->busy()},
            {"queue", {{"depth", pool->depth()}, {"capacity", pool->capacity()}}},
            {"cache", {{"entries", cs.entries}, {"bytes", cs.bytes}, {"max_bytes", cs.max_bytes},
                       {"hits", cs.hits}, {"misses", cs.misses}}},
            {"catalog", {{"path", catalog_path}, {"items", items_now->size()}}},
            {"limits", {{"max_upload_bytes", opt.max_upload_bytes}, {"max_pixels", opt.max_pixels},
                        {"timeout_s", opt.timeout_s}}},
            {"parse", {{"short_edge", opt.short_edge}, {"max_size", opt.max_size}}},
            {"options", {{"styles", kit.rules.styles}, {"occasions", occasions}, {"seasons", kit.rules.seasons}}},
            {"uptime_s", ms_between(started, Clock::now()) / 1000},
            {"version", "0.1.0"}};
  }

  Gauges gauges() {
    Gauges g;
    const auto cs = cache.stats();
    g.queue_depth = (double)pool->depth();
    g.queue_capacity = (double)pool->capacity();
    g.workers = pool->workers();
    g.workers_busy = pool->busy();
    g.cache_entries = (double)cs.entries;
    g.cache_bytes = (double)cs.bytes;
    g.cache_max_bytes = (double)cs.max_bytes;
    g.cache_hits = cs.hits;
    g.cache_misses = cs.misses;
    g.cache_evictions = cs.evictions;
    g.uptime_s = ms_between(started, Clock::now()) / 1000;
    g.synthetic = synthetic();
    g.jobs = {{"queued", 0}, {"running", 0}, {"done", 0}, {"failed", 0}};
    std::lock_guard<std::mutex> lock(jobs_mu);
    for (auto& kv : jobs) {
      refresh(*kv.second);
      g.jobs[state_of(*kv.second)] += 1;
    }
    return g;
  }

  // The web page's files: embedded at build time (web/), or read from --web-dir.
  void handle_asset(const std::string& name, httplib::Response& res) {
    const WebAsset* a = find_web_asset(name);
    if (!a) return send_error(res, 404, "no such file: /" + name);
    res.set_header("Cache-Control", "no-cache");
    if (!opt.web_dir.empty()) {
      std::ifstream f(opt.web_dir + "/" + name, std::ios::binary);
      if (!f) return send_error(res, 404, "no such file in --web-dir: " + name);
      std::stringstream ss;
      ss << f.rdbuf();
      res.set_content(ss.str(), a->content_type);
      return;
    }
    res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
  }

  // ---- routes -----------------------------------------------------------------------------------------
  void routes() {
    const size_t http_threads =
        opt.http_threads > 0 ? (size_t)opt.http_threads : (size_t)(2 * (opt.workers + opt.queue) + 8);
    http.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
    http.set_payload_max_length(opt.max_upload_bytes);
    // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm holds the
    // body back until the client's delayed ACK (~40 ms on Linux) on every small keep-alive answer.
    http.set_tcp_nodelay(true);
    http.set_keep_alive_max_count(1000);
    http.set_keep_alive_timeout(5);
    http.set_read_timeout(30);
    http.set_write_timeout(30);
    // cpp-httplib's default sets SO_REUSEPORT too, which lets a second server bind the same port and
    // silently take half the connections. SO_REUSEADDR alone: restarts work, a port in use is an error.
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = Clock::now();
      const std::string rid = request_id_of(req);
      if (!rid.empty()) res.set_header("X-Request-Id", rid);
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
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                        httplib::Response& res) {
      // cpp-httplib answers a Range header it cannot satisfy with 416 before routing (so before the
      // pre-routing handler drops ranges) and would then slice this very answer by that range
      // (fuzz/regressions/http/range_416_sliced).
      const_cast<httplib::Request&>(req).ranges.clear();
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      try {
      std::string msg;
      if (res.status == 404) msg = "no such endpoint: " + req.method + " " + req.path + " (see GET /health)";
      else if (res.status == 413)
        msg = req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0
                  ? "form-urlencoded bodies are limited to 8 KiB: send the photo as multipart field 'image' or "
                    "as the raw body with Content-Type image/jpeg, image/png or application/octet-stream"
                  : "upload larger than the limit of " + human_bytes(opt.max_upload_bytes);
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

    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string msg = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        msg += std::string(": ") + e.what();
      } catch (...) {
      }
      send_error(res, 500, msg);
    });

    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      try {
        const double s = ms_between(t_request_start, Clock::now()) / 1000;
        metrics.request(route_of(req.method, req.path), res.status, s);
        if (opt.access_log) {
          const std::string rid = request_id_of(req);
          std::fprintf(stderr, "%s %s %s %d %zu %.1f ms%s%s\n", req.remote_addr.c_str(), printable(req.method).c_str(),
                       printable(req.path).c_str(), res.status, res.body.size(), s * 1000, rid.empty() ? "" : " id=",
                       rid.c_str());
        }
      } catch (...) {
        // a request that cannot be counted or logged is still answered
      }
    });

    http.Get("/", [this](const httplib::Request&, httplib::Response& res) { handle_asset("index.html", res); });
    http.Get(R"(/([A-Za-z0-9_-]+\.(html|js|css|svg|png|ico)))",
             [this](const httplib::Request& req, httplib::Response& res) { handle_asset(req.matches[1], res); });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, health()); });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus(gauges()), "text/plain; version=0.0.4; charset=utf-8");
    });
    // POST bodies are read by the handlers themselves (ContentReader): the same limit for every framing.
    using Reader = httplib::ContentReader;
    http.Post("/predict", [this](const httplib::Request& req, httplib::Response& res, const Reader& reader) {
      handle_predict(req, res, reader);
    });
    http.Post("/recommend", [this](const httplib::Request& req, httplib::Response& res, const Reader& reader) {
      handle_recommend(req, res, reader);
    });
    http.Post("/jobs", [this](const httplib::Request& req, httplib::Response& res, const Reader& reader) {
      handle_job_submit(req, res, reader);
    });
    http.Get(R"(/jobs/([A-Za-z0-9]+))",
             [this](const httplib::Request& req, httplib::Response& res) { handle_job_get(req, res); });
  }

  void bind() {
    if (opt.port == 0) {
      bound_port = http.bind_to_any_port(opt.host);
      if (bound_port < 0) throw std::runtime_error("cannot listen on " + opt.host + " (any port)");
    } else {
      if (opt.port < 0 || opt.port > 65535) throw UsageError("--port must be in [0, 65535]");
      if (!http.bind_to_port(opt.host, opt.port))
        throw std::runtime_error("cannot listen on " + opt.host + ":" + std::to_string(opt.port) +
                                 " (address in use, or not a local address?)");
      bound_port = opt.port;
    }
    // cpp-httplib 0.11 listens with a backlog of 5: a burst of more new connections than that overflows
    // the accept queue, and the kernel drops handshakes (clients stall for a SYN retransmission, or
    // are reset: tests/load lost a request to it at 16 clients). listen() again sets a deeper queue.
    http.set_listen_backlog(kListenBacklog);
  }
};

Server::Server(const ServeOptions& opt) : impl_(std::make_unique<Impl>(opt)) {
  impl_->load();
  impl_->routes();
  if (opt.listen) impl_->bind();
}

Server::~Server() { stop(); }

int Server::port() const { return impl_->bound_port; }

std::string Server::url() const {
  const std::string& h = impl_->opt.host;
  const std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : h;
  return "http://" + host + ":" + std::to_string(impl_->bound_port);
}

bool Server::run() {
  if (impl_->bound_port < 0) throw std::logic_error("Server::run: constructed with listen = false");
  return impl_->http.listen_after_bind();
}

std::vector<std::string> Server::handle_raw(const std::string& request_bytes) {
  return impl_->http.handle_buffer(request_bytes);
}

void Server::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->http.stop();
  if (impl_->pool) impl_->pool->stop();
}

bool Server::synthetic() const { return impl_->synthetic(); }

std::string Server::describe() const {
  const Impl& m = *impl_;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "model %s (%s%s); %d worker%s x %d threads, queue %d, cache %s, upload limit %s, timeout %g s; "
                "catalogue %s",
                m.opt.model_path.c_str(), m.model ? m.model->config().summary().c_str() : "stub engine",
                "", m.opt.workers, m.opt.workers > 1 ? "s" : "",
                m.threads_per_worker, m.opt.queue, m.opt.cache_bytes ? human_bytes(m.opt.cache_bytes).c_str() : "off",
                human_bytes(m.opt.max_upload_bytes).c_str(), m.opt.timeout_s, m.catalog_path.c_str());
  return buf;
}

}  // namespace m2fp::app
