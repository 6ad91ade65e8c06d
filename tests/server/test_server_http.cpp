// tests/server/test_server_http.cpp: the HTTP API of `m2fp serve`, in process: a Server on a free port
// with the synthetic CIHP checkpoint (CTest fixture synth_cihp), spoken to with cpp-httplib's client.
//
// Endpoints and their JSON (predict, recommend, jobs, health, metrics, the page), the cache, bad input
// (empty body, text, truncated JPEG, a PNG header claiming 100000 x 100000, oversize upload by
// Content-Length and chunked, malformed multipart, missing field, bad options) each answered 4xx with a
// JSON error while the server keeps serving, and, on a second server whose only worker is held inside
// the forward pass by an engine hook: queue full (429 + Retry-After), per-request timeout (504),
// identical photos parsed once, abandoned photos skipped, shutdown answering queued photos 503.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stb_image_write.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "app/server/server.h"
#include "engine/image.h"
#include "engine/io.h"
#include "engine/m2fp.h"
#include "service/masks.h"
#include "service/render.h"
#include "tests/service/service_test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace m2fp;
using namespace m2fp::app;

namespace {

std::string model_path() { return std::string(M2FP_TESTDATA) + "/cihp_synth.safetensors"; }

std::string scratch(const std::string& name) {
  const std::string d = std::string(M2FP_BINARY_DIR) + "/tests/server_tmp";
  fs::create_directories(d);
  return d + "/" + name;
}

// A small photo-like picture: a gradient background with a few coloured blocks; `seed` varies it so
// that different seeds give different bytes (different cache keys).
Image make_photo(int w, int h, int seed) {
  Image img = Image::blank(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.row(y) + 3 * x;
      p[0] = (uint8_t)(40 + (x * 3 + seed * 17) % 160);
      p[1] = (uint8_t)(60 + (y * 2 + seed * 5) % 150);
      p[2] = (uint8_t)(90 + ((x + y) + seed * 11) % 120);
      if (x > w / 3 && x < 2 * w / 3 && y > h / 5) {  // a "person": red top, blue trousers
        p[0] = y < h / 2 ? 200 : 30;
        p[1] = y < h / 2 ? 30 : 50;
        p[2] = y < h / 2 ? 40 : 160;
      }
    }
  return img;
}

std::string png_of(const Image& img) {
  const std::vector<uint8_t> v = encode_png(img);
  return std::string(v.begin(), v.end());
}

std::string jpeg_of(const Image& img) {
  std::string out;
  auto write = [](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append((const char*)data, size); };
  EXPECT_NE(stbi_write_jpg_to_func(write, &out, img.width, img.height, 3, img.rgb.data(), 90), 0);
  return out;
}

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) {
  return std::string{(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32((uint32_t)data.size()) + type + data + be32(crc32(type + data));
}

// A valid PNG header (signature, IHDR with correct CRC) claiming 100000 x 100000 RGB, then a tiny IDAT:
// decoding it would need 30 GB; the server must refuse it from the header.
std::string huge_png_header() {
  const std::string ihdr = be32(100000) + be32(100000) + std::string{8, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", std::string(16, '\0')) +
         png_chunk("IEND", "");
}

json body_json(const httplib::Result& r) {
  EXPECT_TRUE(r) << "no response: " << httplib::to_string(r.error());
  if (!r) return json();
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << r->body.substr(0, 200);
  try {
    return json::parse(r->body);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "response is not JSON (" << e.what() << "): " << r->body.substr(0, 200);
    return json();
  }
}

// A 4xx answer with a JSON {"error": non-empty, "status": code}.
void expect_error(const httplib::Result& r, int status, const std::string& needle) {
  ASSERT_TRUE(r) << "no response: " << httplib::to_string(r.error());
  EXPECT_EQ(r->status, status) << r->body;
  const json j = body_json(r);
  ASSERT_TRUE(j.contains("error")) << r->body;
  EXPECT_EQ(j["status"], status);
  const std::string msg = j["error"];
  EXPECT_NE(msg.find(needle), std::string::npos) << "error '" << msg << "' should mention '" << needle << "'";
}

httplib::MultipartFormDataItems upload(const std::string& bytes, const std::string& filename = "photo.png",
                                       const std::string& type = "image/png") {
  return {{"image", bytes, filename, type}};
}

bool is_png_of_size(const std::string& bytes, int w, int h) {
  if (bytes.size() < 24 || bytes.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0) return false;
  auto rd = [&](size_t o) {
    return (uint32_t)(uint8_t)bytes[o] << 24 | (uint32_t)(uint8_t)bytes[o + 1] << 16 |
           (uint32_t)(uint8_t)bytes[o + 2] << 8 | (uint8_t)bytes[o + 3];
  };
  return (int)rd(16) == w && (int)rd(20) == h;
}

std::string b64decode(const std::string& s) {
  static const std::string A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    const size_t v = A.find(c);
    if (v == std::string::npos) return "";
    buf = buf << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back((char)(buf >> bits & 0xFF));
    }
  }
  return out;
}

// A running Server and its listener thread.
struct Running {
  std::unique_ptr<Server> server;
  std::thread thread;
  explicit Running(const ServeOptions& o) : server(std::make_unique<Server>(o)) {
    thread = std::thread([this] { server->run(); });
    httplib::Client c("127.0.0.1", server->port());
    for (int i = 0; i < 200 && !c.Get("/health"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ~Running() {
    server->stop();
    if (thread.joinable()) thread.join();
  }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    c->set_read_timeout(900, 0);
    c->set_write_timeout(60, 0);
    c->set_connection_timeout(10, 0);
    return c;
  }
};

ServeOptions base_options() {
  ServeOptions o;
  o.model_path = model_path();
  o.port = 0;
  o.short_edge = 64;  // small network input: the tests exercise the service, not the network
  o.max_size = 128;
  o.threads = 2;
  o.access_log = false;
  o.max_upload_bytes = 2u << 20;
  o.timeout_s = 900;
  return o;
}

double metric(const std::string& text, const std::string& sample) {
  const size_t p = text.find("\n" + sample + " ");
  if (p == std::string::npos) return -1;
  return std::stod(text.substr(p + sample.size() + 2));
}

}  // namespace

class ServerHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(model_path())) return;
    ServeOptions o = base_options();
    o.catalog_path = scratch("catalog_http.db");
    fs::remove(o.catalog_path);
    running_ = new Running(o);
  }
  static void TearDownTestSuite() {
    delete running_;
    running_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(fs::exists(model_path())) << model_path() << " missing: run the CTest fixture fixture_synthetic_cihp "
                                          << "(tools/make_synthetic_checkpoint.py --variant cihp --seed 0 ...)";
    ASSERT_NE(running_, nullptr);
    cli_ = running_->client();
  }
  static Running* running_;
  std::unique_ptr<httplib::Client> cli_;
};
Running* ServerHttp::running_ = nullptr;

TEST_F(ServerHttp, HealthSaysSyntheticAndLimits) {
  auto r = cli_->Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const json j = body_json(r);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["model"]["synthetic"], true);
  EXPECT_NE(j["model"]["warning"].get<std::string>().find("SYNTHETIC"), std::string::npos);
  EXPECT_EQ(j["workers"], 1);
  EXPECT_EQ(j["limits"]["max_upload_bytes"], 2u << 20);
  EXPECT_GT(j["catalog"]["items"].get<int>(), 100) << "the default catalogue is seeded on first use";
  EXPECT_FALSE(j["options"]["styles"].empty());
  EXPECT_FALSE(j["options"]["occasions"].empty());
}

TEST_F(ServerHttp, ServesThePage) {
  auto r = cli_->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("id=\"dropzone\""), std::string::npos);
  auto js = cli_->Get("/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  auto css = cli_->Get("/style.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->status, 200);
  expect_error(cli_->Get("/nothing.js"), 404, "nothing.js");
  expect_error(cli_->Get("/no/such/endpoint"), 404, "no such endpoint");
}

TEST_F(ServerHttp, PredictThenCacheHit) {
  const Image img = make_photo(96, 72, 1);
  const std::string png = png_of(img);
  auto r = cli_->Post("/predict", upload(png));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
  EXPECT_EQ(r->get_header_value("X-Cache"), "miss");
  const json j = body_json(r);
  for (const char* k : {"labels", "masks", "scores", "colored_mask", "instances", "persons", "timings_ms", "legend",
                        "image", "model", "labels_present"})
    EXPECT_TRUE(j.contains(k)) << "missing key " << k;
  EXPECT_EQ(j["cached"], false);
  EXPECT_EQ(j["model"]["synthetic"], true);
  EXPECT_EQ(j["image"]["width"], 96);
  EXPECT_EQ(j["image"]["height"], 72);
  EXPECT_EQ(j["image"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_GT(j["timings_ms"]["total"].get<double>(), 0);
  // Issue 11 changed this deliberately: masks/labels/scores are ModelScope's aligned lists (one entry
  // per part then human instance with score > 0), no longer a dict keyed by label.
  ASSERT_TRUE(j["masks"].is_array());
  ASSERT_EQ(j["labels"].size(), j["masks"].size());
  ASSERT_EQ(j["scores"].size(), j["masks"].size());
  size_t kept = 0;
  for (const auto& in : j["instances"]) kept += in["score"].get<double>() > 0;
  EXPECT_EQ(j["masks"].size(), kept);
  for (size_t i = 0; i < j["masks"].size(); ++i) {
    EXPECT_TRUE(is_png_of_size(b64decode(j["masks"][i]), 96, 72)) << j["labels"][i];
    EXPECT_GT(j["scores"][i].get<double>(), 0.0);
  }
  EXPECT_TRUE(is_png_of_size(b64decode(j["colored_mask"]), 96, 72));
  // the legend: the labels present but Background
  size_t fg = 0;
  for (const auto& n : j["labels_present"]) fg += n != "Background";
  ASSERT_EQ(j["legend"].size(), fg);
  for (const auto& in : j["instances"]) EXPECT_EQ(in["mask"]["size"], json({72, 96})) << in.dump();
  // persons carry their garments; every part instance's person is a valid index
  for (const auto& p : j["persons"]) EXPECT_TRUE(p.contains("garments") && p["garments"].is_array()) << p.dump();
  for (const auto& in : j["instances"])
    if (in["kind"] == "part" && in["person"] >= 0) EXPECT_LT(in["person"].get<int>(), (int)j["persons"].size());

  // the same bytes again, this time as a raw body: a cache hit with the same answer
  auto r2 = cli_->Post("/predict", png, "image/png");
  ASSERT_TRUE(r2);
  ASSERT_EQ(r2->status, 200);
  EXPECT_EQ(r2->get_header_value("X-Cache"), "hit");
  const json j2 = body_json(r2);
  EXPECT_EQ(j2["cached"], true);
  EXPECT_EQ(j2["labels"], j["labels"]);
  EXPECT_EQ(j2["colored_mask"], j["colored_mask"]);
  EXPECT_EQ(j2["instances"], j["instances"]);

  // the other forms, from the cache: COCO RLE, no masks, ATR labels, union masks
  auto rle = body_json(cli_->Post("/predict?mask_format=rle&masks_union=upper_body,label:Hair%2BFace", upload(png)));
  ASSERT_EQ(rle["masks"].size(), j["masks"].size());
  for (size_t i = 0; i < rle["masks"].size(); ++i) {
    EXPECT_EQ(rle["masks"][i]["size"], json({72, 96}));
    EXPECT_TRUE(rle["masks"][i]["counts"].is_string());
  }
  EXPECT_EQ(rle["labels"], j["labels"]);
  EXPECT_TRUE(is_png_of_size(b64decode(rle["masks_union"]["upper_body"]), 96, 72));
  EXPECT_TRUE(is_png_of_size(b64decode(rle["masks_union"]["label:Hair+Face"]), 96, 72));
  auto none = body_json(cli_->Post("/predict?mask_format=none&label_set=atr", upload(png)));
  EXPECT_FALSE(none.contains("masks"));
  EXPECT_EQ(none["label_set"], "atr");
  EXPECT_EQ(none["labels"].size(), none["scores"].size());
  expect_error(cli_->Post("/predict?mask_format=jpeg", upload(png)), 400, "mask_format");
  expect_error(cli_->Post("/predict?label_set=pascal", upload(png)), 400, "label set");
  expect_error(cli_->Post("/predict?masks_union=shirt", upload(png)), 400, "unknown mask");
}

TEST_F(ServerHttp, RefineAndSmoothEdgesArePerRequestOptions) {
  const std::string png = png_of(make_photo(88, 66, 7));
  auto plain = cli_->Post("/predict", upload(png));
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200) << plain->body.substr(0, 300);
  const json a = body_json(plain);
  EXPECT_FALSE(a.contains("refinements"));
  EXPECT_FALSE(a.contains("smooth_edges"));
  // refine= is part of the cache key: the same photo with refinements is parsed again
  auto ref = cli_->Post("/predict?refine=dark,small", upload(png));
  ASSERT_TRUE(ref);
  ASSERT_EQ(ref->status, 200) << ref->body.substr(0, 300);
  EXPECT_EQ(ref->get_header_value("X-Cache"), "miss");
  const json b = body_json(ref);
  ASSERT_TRUE(b.contains("refinements"));
  EXPECT_EQ(b["refinements"]["requested"], json::array({"dark", "small"}));
  ASSERT_EQ(b["refinements"]["changes"].size(), 2u);
  if (b["refinements"]["changes"][0]["pixels"] == 0 && b["refinements"]["changes"][1]["pixels"] == 0)
    EXPECT_EQ(b["colored_mask"], a["colored_mask"]);
  // the same options spelled otherwise: a cache hit
  auto again = cli_->Post("/predict?refine=small,dark", upload(png));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->get_header_value("X-Cache"), "hit");
  // smooth_edges=1: its own cache entry, marked in the answer, the same labels
  auto sm = cli_->Post("/predict?smooth_edges=1", upload(png));
  ASSERT_TRUE(sm);
  ASSERT_EQ(sm->status, 200);
  EXPECT_EQ(sm->get_header_value("X-Cache"), "miss");
  const json c = body_json(sm);
  EXPECT_EQ(c["smooth_edges"], true);
  EXPECT_EQ(c["labels"], a["labels"]);
  EXPECT_TRUE(is_png_of_size(b64decode(c["colored_mask"]), 88, 66));
  expect_error(cli_->Post("/predict?refine=hats", upload(png)), 400, "refine must be");
  expect_error(cli_->Post("/predict?smooth_edges=maybe", upload(png)), 400, "smooth_edges must be");
}

// Several photos in one multipart body: each answered as /predict would, in order, a bad one with
// its own error; the batch's photos share the options; repeats and cached photos need no new parse.
TEST_F(ServerHttp, BatchAnswersEveryPhotoInOrder) {
  const std::string a = png_of(make_photo(96, 72, 31)), b = jpeg_of(make_photo(80, 60, 32));
  httplib::MultipartFormDataItems items = {{"image", a, "a.png", "image/png"},
                                           {"image", b, "b.jpg", "image/jpeg"},
                                           {"image", "not a photo\n", "c.txt", "text/plain"},
                                           {"image", a, "a-again.png", "image/png"},
                                           {"mask_format", "rle", "", ""},
                                           {"masks_union", "upper_body", "", ""}};
  auto r = cli_->Post("/batch", items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
  const json j = body_json(r);
  EXPECT_EQ(j["count"], 4);
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["results"].size(), 4u);
  const json &ra = j["results"][0], &rb = j["results"][1], &rc = j["results"][2], &ra2 = j["results"][3];
  EXPECT_EQ(ra["image"]["width"], 96);
  EXPECT_EQ(ra["image"]["format"], "PNG");
  EXPECT_EQ(rb["image"]["width"], 80);
  EXPECT_EQ(rb["image"]["format"], "JPEG");
  EXPECT_EQ(rc, json({{"error", rc.value("error", "")}, {"status", 415}})) << rc.dump();
  EXPECT_NE(rc["error"].get<std::string>().find("not an image"), std::string::npos);
  EXPECT_EQ(ra2["image"]["sha256"], ra["image"]["sha256"]);
  EXPECT_EQ(ra2["instances"], ra["instances"]);
  for (const json* x : {&ra, &rb, &ra2}) {
    EXPECT_EQ((*x)["options"]["mask_format"], "rle");
    EXPECT_EQ((*x)["options"]["masks_union"], json::array({"upper_body"}));
    EXPECT_EQ((*x)["model"]["synthetic"], true);
    ASSERT_FALSE((*x)["masks"].empty());
    EXPECT_TRUE((*x)["masks"][0].contains("counts"));
    EXPECT_TRUE((*x)["masks_union"].contains("upper_body"));
  }
  // Each entry is what /predict answers for that photo with the same options (now from the cache).
  auto p = cli_->Post("/predict?mask_format=rle&masks_union=upper_body", upload(b, "b.jpg", "image/jpeg"));
  ASSERT_TRUE(p);
  ASSERT_EQ(p->status, 200);
  EXPECT_EQ(p->get_header_value("X-Cache"), "hit") << "the batch's parse is cached for /predict";
  const json pj = body_json(p);
  for (const char* k : {"masks", "labels", "scores", "masks_union", "instances", "persons", "colored_mask", "image"})
    EXPECT_EQ(pj[k], rb[k]) << k;
  // The same batch again: every photo from the cache.
  const json again = body_json(cli_->Post("/batch", items));
  for (size_t i : {0u, 1u, 3u}) EXPECT_EQ(again["results"][i]["cached"], true) << i;

  // A raw body is a batch of one.
  const json one = body_json(cli_->Post("/batch", a, "image/png"));
  ASSERT_EQ(one["results"].size(), 1u);
  EXPECT_EQ(one["results"][0]["image"]["sha256"], ra["image"]["sha256"]);
  // Refused as a whole: no photo, too many photos (max(queue 8, workers 1) = 8), a bad option.
  expect_error(cli_->Post("/batch", httplib::MultipartFormDataItems{{"k", "1", "", ""}}), 400, "no field 'image'");
  httplib::MultipartFormDataItems nine;
  for (int i = 0; i < 9; ++i) nine.push_back({"image", a, "a.png", "image/png"});
  expect_error(cli_->Post("/batch", nine), 400, "at most 8 photos");
  expect_error(cli_->Post("/batch?mask_dilate=-1", items), 400, "mask_dilate must be an integer in [0, 256]");
  // /predict (and /recommend, /jobs) take one photo and name /batch for several.
  httplib::MultipartFormDataItems two = {{"image", a, "a.png", "image/png"}, {"image", b, "b.jpg", "image/jpeg"}};
  expect_error(cli_->Post("/predict", two), 400, "POST /batch");
  expect_error(cli_->Post("/recommend", two), 400, "POST /batch");
  expect_error(cli_->Post("/jobs", two), 400, "POST /batch");
}

// short_edge and max_size change the network's input: validated against the server's own resize,
// part of the cache key, echoed with every other option in the answer.
TEST_F(ServerHttp, PerRequestResizeIsValidatedKeyedAndEchoed) {
  const std::string png = png_of(make_photo(96, 72, 41));
  auto d = cli_->Post("/predict", upload(png));
  ASSERT_TRUE(d);
  ASSERT_EQ(d->status, 200) << d->body.substr(0, 300);
  const json dj = body_json(d);
  EXPECT_EQ(dj["options"], json({{"short_edge", 64}, {"max_size", 128}, {"smooth_edges", false},
                                 {"refine", json::array()}, {"mask_format", "png"}, {"label_set", "cihp"},
                                 {"masks_union", json::array()}, {"mask_dilate", 0}}));
  EXPECT_EQ(dj["image"]["network_input"], json({{"height", 64}, {"width", 85}}));
  // The server's values asked explicitly: the same key, a cache hit.
  auto same = cli_->Post("/predict?short_edge=64&max_size=128", upload(png));
  ASSERT_TRUE(same);
  EXPECT_EQ(same->get_header_value("X-Cache"), "hit");
  // A smaller input: parsed again (a miss), then cached under its own key.
  auto small = cli_->Post("/predict?short_edge=32&smooth_edges=1&refine=dark", upload(png));
  ASSERT_TRUE(small);
  ASSERT_EQ(small->status, 200) << small->body.substr(0, 300);
  EXPECT_EQ(small->get_header_value("X-Cache"), "miss");
  const json sj = body_json(small);
  EXPECT_EQ(sj["image"]["network_input"], json({{"height", 32}, {"width", 43}}));
  EXPECT_EQ(sj["options"]["short_edge"], 32);
  EXPECT_EQ(sj["options"]["smooth_edges"], true);
  EXPECT_EQ(sj["options"]["refine"], json::array({"dark"}));
  EXPECT_TRUE(is_png_of_size(b64decode(sj["colored_mask"]), 96, 72)) << "masks stay at the photo's size";
  httplib::MultipartFormDataItems as_fields = upload(png);
  as_fields.push_back({"short_edge", "32", "", ""});
  as_fields.push_back({"smooth_edges", "yes", "", ""});
  as_fields.push_back({"refine", "dark", "", ""});
  auto small2 = cli_->Post("/predict", as_fields);
  ASSERT_TRUE(small2);
  EXPECT_EQ(small2->get_header_value("X-Cache"), "hit") << "the same options as multipart fields";
  auto capped = cli_->Post("/predict?max_size=48", upload(png));
  ASSERT_TRUE(capped);
  ASSERT_EQ(capped->status, 200);
  EXPECT_EQ(capped->get_header_value("X-Cache"), "miss");
  EXPECT_EQ(body_json(capped)["image"]["network_input"], json({{"height", 36}, {"width", 48}}));
  // Out of range or not integers: 400 naming the range.
  expect_error(cli_->Post("/predict?short_edge=65", upload(png)), 400, "short_edge must be an integer in [32, 64]");
  expect_error(cli_->Post("/predict?short_edge=31", upload(png)), 400, "[32, 64]");
  expect_error(cli_->Post("/predict?short_edge=4x", upload(png)), 400, "short_edge must be an integer");
  expect_error(cli_->Post("/predict?max_size=129", upload(png)), 400, "max_size must be an integer in [32, 128]");
  expect_error(cli_->Post("/predict?max_size=0", upload(png)), 400, "max_size must be an integer in [32, 128]");
  expect_error(cli_->Post("/predict?mask_dilate=257", upload(png)), 400, "mask_dilate must be an integer in [0, 256]");
  expect_error(cli_->Post("/predict?mask_dilate=2.5", upload(png)), 400, "mask_dilate must be an integer");
  expect_error(cli_->Post("/recommend?short_edge=1000", upload(png)), 400, "short_edge");
  // /recommend echoes the photo options beside its own.
  const json rj = body_json(cli_->Post("/recommend?short_edge=32&smooth_edges=1&refine=dark&k=1", upload(png)));
  EXPECT_EQ(rj["cached"], true);
  EXPECT_EQ(rj["options"]["short_edge"], 32);
  EXPECT_EQ(rj["options"]["k"], 1);
}

// POST /jobs honours the masks' options exactly as /predict does.
TEST_F(ServerHttp, JobsHonourTheMaskOptions) {
  const std::string png = png_of(make_photo(72, 96, 51));
  const std::string q = "?mask_format=rle&label_set=atr&masks_union=upper_body,hair&mask_dilate=3";
  auto sub = cli_->Post(("/jobs" + q).c_str(), upload(png));
  ASSERT_TRUE(sub);
  ASSERT_EQ(sub->status, 202) << sub->body;
  const json acc = body_json(sub);
  EXPECT_EQ(acc["options"]["mask_format"], "rle");
  EXPECT_EQ(acc["options"]["mask_dilate"], 3);
  json st;
  for (int i = 0; i < 3000; ++i) {
    st = body_json(cli_->Get(("/jobs/" + acc["id"].get<std::string>()).c_str()));
    if (st["state"] == "done" || st["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(st["state"], "done") << st.dump().substr(0, 300);
  const json& jr = st["result"];
  const json pr = body_json(cli_->Post(("/predict" + q).c_str(), upload(png)));
  EXPECT_EQ(jr["label_set"], "atr");
  ASSERT_FALSE(jr["masks"].empty());
  EXPECT_TRUE(jr["masks"][0].contains("counts")) << "RLE, not PNG";
  ASSERT_TRUE(jr.contains("masks_union"));
  EXPECT_TRUE(is_png_of_size(b64decode(jr["masks_union"]["hair"]), 72, 96));
  for (const char* k : {"masks", "labels", "scores", "label_set", "masks_union", "options"}) EXPECT_EQ(jr[k], pr[k]) << k;
  // Without masks; and a bad value refused at submission, before anything is queued.
  auto none = cli_->Post("/jobs?mask_format=none", upload(png));
  ASSERT_TRUE(none);
  ASSERT_EQ(none->status, 202);
  const std::string id2 = body_json(none)["id"];
  for (int i = 0; i < 3000; ++i) {
    st = body_json(cli_->Get(("/jobs/" + id2).c_str()));
    if (st["state"] == "done" || st["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(st["state"], "done");
  EXPECT_FALSE(st["result"].contains("masks"));
  EXPECT_EQ(st["result"]["labels"].size(), st["result"]["scores"].size()) << "labels and scores stay";
  EXPECT_FALSE(st["result"]["labels"].empty());
  expect_error(cli_->Post("/jobs?mask_format=gif", upload(png)), 400, "mask_format must be png, rle or none");
  expect_error(cli_->Post("/jobs?masks_union=cape", upload(png)), 400, "unknown mask");
}

TEST_F(ServerHttp, ServesItsOpenApiDescription) {
  auto r = cli_->Get("/openapi.json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  const json j = body_json(r);
  EXPECT_EQ(j["openapi"].get<std::string>().rfind("3.1", 0), 0u);
  for (const char* p : {"/predict", "/batch", "/recommend", "/jobs", "/jobs/{id}", "/health", "/metrics", "/openapi.json"})
    EXPECT_TRUE(j["paths"].contains(p)) << p;
  const json h = body_json(cli_->Get("/health"));
  EXPECT_EQ(h["limits"]["max_batch"], 8);
  EXPECT_GE(h["queue"]["engine_s_median"].get<double>(), 0.0);
}

TEST_F(ServerHttp, PredictJpegRawBody) {
  const std::string jpg = jpeg_of(make_photo(80, 100, 2));
  auto r = cli_->Post("/predict", jpg, "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
  const json j = body_json(r);
  EXPECT_EQ(j["image"]["format"], "JPEG");
  EXPECT_EQ(j["image"]["width"], 80);
  EXPECT_EQ(j["image"]["height"], 100);
}

TEST_F(ServerHttp, RecommendPerPersonWithReasons) {
  const std::string png = png_of(make_photo(96, 72, 1));
  httplib::MultipartFormDataItems items = upload(png);
  items.push_back({"k", "3", "", ""});
  items.push_back({"style", "casual", "", ""});
  auto r = cli_->Post("/recommend", items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
  const json j = body_json(r);
  EXPECT_EQ(j["options"]["k"], 3);
  EXPECT_EQ(j["options"]["style"], "casual");
  ASSERT_FALSE(j["persons"].empty()) << "the synthetic model finds persons in this photo";
  for (const auto& p : j["persons"]) {
    ASSERT_TRUE(p.contains("garments"));
    ASSERT_TRUE(p.contains("recommendations"));
    EXPECT_LE(p["recommendations"].size(), 3u);
    for (const auto& rec : p["recommendations"]) {
      EXPECT_FALSE(rec["item"]["name"].get<std::string>().empty());
      EXPECT_GE(rec["score"].get<double>(), 0.0);
      EXPECT_LE(rec["score"].get<double>(), 1.0);
      EXPECT_FALSE(rec["reason"].get<std::string>().empty());
    }
  }
  // By SHA-256 alone (no upload) while the parse is cached, with other options.
  const std::string sha = j["image"]["sha256"];
  auto r2 = cli_->Post("/recommend?k=1&occasion=office", httplib::MultipartFormDataItems{{"sha256", sha, "", ""}});
  ASSERT_TRUE(r2);
  ASSERT_EQ(r2->status, 200) << r2->body.substr(0, 300);
  const json j2 = body_json(r2);
  EXPECT_EQ(j2["cached"], true);
  EXPECT_EQ(j2["options"]["occasion"], "office");
  for (const auto& p : j2["persons"]) EXPECT_LE(p["recommendations"].size(), 1u);

  expect_error(cli_->Post("/recommend", httplib::MultipartFormDataItems{{"sha256", std::string(64, 'a'), "", ""}}), 404,
               "no cached result");
  expect_error(cli_->Post("/recommend", httplib::MultipartFormDataItems{{"sha256", "xyz", "", ""}}), 400, "sha256");
  items = upload(png);
  items.push_back({"style", "gothic", "", ""});
  expect_error(cli_->Post("/recommend", items), 400, "unknown style 'gothic'");
  items = upload(png);
  items.push_back({"k", "many", "", ""});
  expect_error(cli_->Post("/recommend", items), 400, "k must be an integer");
}

TEST_F(ServerHttp, AsynchronousJobs) {
  const std::string png = png_of(make_photo(64, 64, 3));
  httplib::MultipartFormDataItems items = upload(png);
  items.push_back({"task", "recommend", "", ""});
  items.push_back({"k", "2", "", ""});
  auto r = cli_->Post("/jobs", items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const json j = body_json(r);
  const std::string id = j["id"];
  EXPECT_EQ(r->get_header_value("Location"), "/jobs/" + id);
  EXPECT_TRUE(j["state"] == "queued" || j["state"] == "running" || j["state"] == "done") << j.dump();
  json st;
  for (int i = 0; i < 3000; ++i) {
    auto g = cli_->Get(("/jobs/" + id).c_str());
    ASSERT_TRUE(g);
    ASSERT_EQ(g->status, 200);
    st = body_json(g);
    if (st["state"] == "done" || st["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(st["state"], "done") << st.dump().substr(0, 300);
  EXPECT_EQ(st["task"], "recommend");
  ASSERT_TRUE(st["result"].contains("persons"));
  for (const auto& p : st["result"]["persons"]) EXPECT_LE(p["recommendations"].size(), 2u);

  expect_error(cli_->Get("/jobs/0123456789abcdef"), 404, "no job");
  items = upload(png);
  items.push_back({"task", "dance", "", ""});
  expect_error(cli_->Post("/jobs", items), 400, "task must be");
}

TEST_F(ServerHttp, BadInputIsRefusedAndServingGoesOn) {
  // empty body
  expect_error(cli_->Post("/predict", std::string(), "image/png"), 400, "empty upload");
  // a text file, raw and as the multipart field
  expect_error(cli_->Post("/predict", "hello, this is not a photo\n", "text/plain"), 415, "not an image");
  expect_error(cli_->Post("/predict", upload("name,colour\nshirt,red\n", "list.csv", "text/csv")), 415, "not an image");
  // a GIF: a known format the engine does not take
  expect_error(cli_->Post("/predict", std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00", 13), "image/gif"), 415, "GIF");
  // a truncated JPEG (the first half of a real one)
  const std::string jpg = jpeg_of(make_photo(120, 90, 4));
  expect_error(cli_->Post("/predict", upload(jpg.substr(0, jpg.size() / 2), "cut.jpg", "image/jpeg")), 400, "bad image");
  // a PNG whose header claims 100000 x 100000: refused from the header, nothing decoded
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(cli_->Post("/predict", upload(huge_png_header(), "huge.png")), 400, "bad image");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
  // an upload over the 2 MiB limit: by Content-Length, and chunked (no length known in advance)
  const std::string big(3u << 20, 'x');
  expect_error(cli_->Post("/predict", upload(big, "big.png")), 413, "larger than the limit");
  expect_error(cli_->Post("/predict", big, "image/png"), 413, "larger than the limit");
  size_t sent = 0;
  expect_error(cli_->Post(
                   "/predict",
                   [&](size_t, httplib::DataSink& sink) {
                     if (sent >= big.size()) {
                       sink.done();
                       return true;
                     }
                     sink.write(big.data() + sent, 64 * 1024);
                     sent += 64 * 1024;
                     return true;
                   },
                   "image/png"),
               413, "larger than the limit");
  // malformed multipart: a boundary that never closes, and a part without headers
  httplib::Headers mh = {{"Content-Type", "multipart/form-data; boundary=XyZ"}};
  expect_error(cli_->Post("/predict", mh, "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\x89PNG",
                          "multipart/form-data; boundary=XyZ"),
               400, "multipart");
  expect_error(cli_->Post("/predict", mh, "this is no multipart body at all", "multipart/form-data; boundary=XyZ"), 400,
               "multipart");
  // multipart without the image field
  expect_error(cli_->Post("/predict", httplib::MultipartFormDataItems{{"photo", png_of(make_photo(8, 8, 0)), "p.png",
                                                                       "image/png"}}),
               400, "no field 'image'");
  // a form-urlencoded body (curl -d)
  expect_error(cli_->Post("/predict", "a=b", "application/x-www-form-urlencoded"), 415, "form-urlencoded");

  // still serving: health and a real photo
  auto h = cli_->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto ok = cli_->Post("/predict", upload(png_of(make_photo(96, 72, 1))));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// A raw HTTP/1.1 exchange on a fresh connection: the status line and the JSON body.
std::string raw_exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket failed";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, (sockaddr*)&addr, sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  ::send(fd, request.data(), request.size(), 0);
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, (size_t)n);
    const size_t hdr = got.find("\r\n\r\n");
    if (hdr != std::string::npos && got.find('}', hdr) != std::string::npos) break;
  }
  ::close(fd);
  return got;
}

TEST_F(ServerHttp, PostWithoutLengthOrChunking) {
  // No Content-Length and no chunked framing: no body (RFC 9112). Our routes answer at once (here:
  // an empty upload) instead of reading until the client closes; other paths are refused with 411.
  const int port = running_->server->port();
  const auto t0 = std::chrono::steady_clock::now();
  std::string got = raw_exchange(port, "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
  EXPECT_NE(got.find("empty upload"), std::string::npos) << got;
  got = raw_exchange(port, "POST /elsewhere HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 411", 0), 0u) << got;
  EXPECT_NE(got.find("\"error\""), std::string::npos) << got;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  // curl -X POST 'URL/recommend?sha256=...' sends no body at all: options from the query string.
  const std::string sha(64, 'b');
  got = raw_exchange(port, "POST /recommend?sha256=" + sha + "&k=1 HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 404", 0), 0u) << got;
  EXPECT_NE(got.find("no cached result"), std::string::npos) << got;
}

TEST_F(ServerHttp, MetricsInPrometheusText) {
  cli_->Post("/predict", upload(png_of(make_photo(96, 72, 1))));  // a cache hit by now or a parse
  cli_->Post("/predict", upload(png_of(make_photo(96, 72, 1))));  // certainly a hit
  // A request is counted by the access logger right after its answer is written, so the last one may
  // still be on its way into the counters when the client already has its answer: poll briefly.
  for (int i = 0; i < 100; ++i) {
    auto m = cli_->Get("/metrics");
    ASSERT_TRUE(m);
    if (metric(m->body, "m2fp_http_requests_total{endpoint=\"/predict\",code=\"200\"}") >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto r = cli_->Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  const std::string& t = r->body;
  EXPECT_GE(metric(t, "m2fp_http_requests_total{endpoint=\"/predict\",code=\"200\"}"), 2);
  EXPECT_GE(metric(t, "m2fp_cache_hits_total"), 1);
  EXPECT_GE(metric(t, "m2fp_engine_duration_seconds_count"), 1);
  EXPECT_GE(metric(t, "m2fp_http_request_duration_seconds_count{endpoint=\"/predict\"}"), 2);
  EXPECT_EQ(metric(t, "m2fp_queue_depth"), 0);
  EXPECT_EQ(metric(t, "m2fp_queue_capacity"), 8);
  EXPECT_EQ(metric(t, "m2fp_model_synthetic"), 1);
  EXPECT_NE(t.find("m2fp_http_request_duration_seconds_bucket{endpoint=\"/predict\",le=\"+Inf\"}"), std::string::npos);
  // raw paths never become labels
  EXPECT_EQ(t.find("endpoint=\"/no/such/endpoint\""), std::string::npos);
}

// ---- a server whose only worker can be held inside the forward pass ---------------------------------
namespace {

using m2fp::test::Gate;  // tests/service/service_test_util.h

json health_of(httplib::Client& c) {
  auto r = c.Get("/health");
  return r && r->status == 200 ? json::parse(r->body) : json();
}

void wait_busy(httplib::Client& c, int busy, size_t depth) {
  for (int i = 0; i < 6000; ++i) {
    const json h = health_of(c);
    if (!h.is_null() && h["busy"] == busy && h["queue"]["depth"] == depth) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "the server never reached busy=" << busy << ", depth=" << depth;
}

json wait_job(httplib::Client& c, const std::string& id) {
  json st;
  for (int i = 0; i < 9000; ++i) {
    auto g = c.Get(("/jobs/" + id).c_str());
    if (!g) break;
    st = json::parse(g->body);
    if (st["state"] == "done" || st["state"] == "failed") return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "job " << id << " did not finish: " << st.dump().substr(0, 200);
  return st;
}

std::string submit_job(httplib::Client& c, const std::string& png) {
  auto r = c.Post("/jobs", upload(png));
  EXPECT_TRUE(r);
  if (!r) return "";
  EXPECT_EQ(r->status, 202) << r->body;
  return json::parse(r->body).value("id", "");
}

}  // namespace

TEST(ServerQueue, FullQueueTimeoutCoalescingAndShutdown) {
  ASSERT_TRUE(fs::exists(model_path())) << model_path() << " missing (CTest fixture fixture_synthetic_cihp)";
  Gate gate;
  ForwardHooks hooks;
  hooks.attention_mask = [&gate](int, int64_t, int64_t, std::vector<uint8_t>&) { gate.wait(); };
  ServeOptions o = base_options();
  o.catalog_path = scratch("catalog_queue.db");
  o.workers = 1;
  o.queue = 1;
  o.timeout_s = 2;
  o.hooks = &hooks;
  auto srv = std::make_unique<Running>(o);
  auto cli = srv->client();
  const std::string A = png_of(make_photo(64, 48, 10)), B = png_of(make_photo(64, 48, 11)),
                    C = png_of(make_photo(64, 48, 12)), D = png_of(make_photo(64, 48, 13));

  // A holds the only worker (asynchronously, so nobody times out on it).
  const std::string job_a = submit_job(*cli, A);
  wait_busy(*cli, 1, 0);
  // B waits in the queue (capacity 1) and gives up after the 2 s request timeout.
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(cli->Post("/predict", upload(B)), 504, "timeout");
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.9);
  // B is still queued: C finds the queue full.
  auto rc = cli->Post("/predict", upload(C));
  expect_error(rc, 429, "queue is full");
  ASSERT_TRUE(rc);
  ASSERT_TRUE(rc->has_header("Retry-After"));
  EXPECT_GE(std::stoi(rc->get_header_value("Retry-After")), 1);
  // A again joins the parse in flight instead of queueing (so: a timeout, not a 429).
  expect_error(cli->Post("/predict", upload(A)), 504, "timeout");

  gate.set(true);
  const json ja = wait_job(*cli, job_a);
  EXPECT_EQ(ja["state"], "done");
  wait_busy(*cli, 0, 0);
  auto m = cli->Get("/metrics");
  ASSERT_TRUE(m);
  // Only A went through the engine: B was abandoned before a worker was free and skipped.
  EXPECT_EQ(metric(m->body, "m2fp_engine_duration_seconds_count"), 1) << m->body;
  EXPECT_EQ(metric(m->body, "m2fp_rejected_total{reason=\"queue_full\"}"), 1);
  EXPECT_EQ(metric(m->body, "m2fp_rejected_total{reason=\"timeout\"}"), 2);

  // Two jobs for the same new photo while the worker is held: parsed once.
  gate.set(false);
  const std::string d1 = submit_job(*cli, D);
  wait_busy(*cli, 1, 0);
  const std::string d2 = submit_job(*cli, D);
  gate.set(true);
  EXPECT_EQ(wait_job(*cli, d1)["state"], "done");
  EXPECT_EQ(wait_job(*cli, d2)["state"], "done");
  m = cli->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "m2fp_engine_duration_seconds_count"), 2) << "D parsed once for two jobs";

  // Shutdown: a queued photo is answered 503, the running one finishes.
  gate.set(false);
  const std::string job_b = submit_job(*cli, B);
  wait_busy(*cli, 1, 0);
  auto queued = std::async(std::launch::async, [&] {
    auto c2 = srv->client();
    auto r = c2->Post("/predict", upload(C));
    return std::make_pair(r ? r->status : -1, r ? r->body : std::string());
  });
  wait_busy(*cli, 1, 1);
  std::thread stopper([&] { srv->server->stop(); });
  const auto [status, body] = queued.get();
  EXPECT_EQ(status, 503) << body;
  EXPECT_NE(body.find("shutting down"), std::string::npos) << body;
  gate.set(true);
  stopper.join();
  srv.reset();
}

// A batch takes one place in the queue per photo it adds, all or none.
TEST(ServerQueue, BatchTakesOnePlacePerPhoto) {
  ASSERT_TRUE(fs::exists(model_path())) << model_path() << " missing (CTest fixture fixture_synthetic_cihp)";
  Gate gate;
  ForwardHooks hooks;
  hooks.attention_mask = [&gate](int, int64_t, int64_t, std::vector<uint8_t>&) { gate.wait(); };
  ServeOptions o = base_options();
  o.catalog_path = scratch("catalog_batch.db");
  o.workers = 1;
  o.queue = 3;
  o.hooks = &hooks;
  Running srv(o);
  struct OpenAtExit {
    Gate& g;
    ~OpenAtExit() { g.set(true); }
  } open_at_exit{gate};  // a failed expectation must not leave the worker held
  auto cli = srv.client();
  std::vector<std::string> photo;
  for (int i = 0; i < 6; ++i) photo.push_back(png_of(make_photo(64, 48, 60 + i)));
  auto item = [&](int i) { return httplib::MultipartFormData{"image", photo[i], "p.png", "image/png"}; };
  const std::string job_a = submit_job(*cli, photo[0]);  // holds the only worker
  wait_busy(*cli, 1, 0);
  const std::string job_b = submit_job(*cli, photo[1]);  // waits: 2 of 3 places left
  wait_busy(*cli, 1, 1);
  // Three new photos for two places: refused as a whole, nothing queued.
  auto r = cli->Post("/batch", httplib::MultipartFormDataItems{item(2), item(3), item(4)});
  expect_error(r, 429, "no room for the 3 photos of this batch");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_header("Retry-After"));
  EXPECT_GE(std::stoi(r->get_header_value("Retry-After")), 1);
  EXPECT_EQ(health_of(*cli)["queue"]["depth"], 1) << "a refused batch leaves nothing behind";
  // Two of them, plus the photo being parsed (it joins that parse): queued together.
  auto pending = std::async(std::launch::async, [&] {
    auto c2 = srv.client();
    auto res = c2->Post("/batch", httplib::MultipartFormDataItems{item(2), item(3), item(0)});
    return std::make_pair(res ? res->status : -1, res ? res->body : std::string());
  });
  wait_busy(*cli, 1, 3);
  // The queue is full now: a single photo is refused too.
  expect_error(cli->Post("/predict", upload(photo[4])), 429, "queue is full");
  gate.set(true);
  const auto [status, body] = pending.get();
  ASSERT_EQ(status, 200) << body.substr(0, 300);
  const json j = json::parse(body);
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["failed"], 0);
  for (const auto& x : j["results"]) EXPECT_EQ(x["cached"], false);
  EXPECT_EQ(j["results"][2]["image"]["sha256"], wait_job(*cli, job_a)["result"]["image"]["sha256"]);
  EXPECT_EQ(wait_job(*cli, job_b)["state"], "done");
  auto m = cli->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(metric(m->body, "m2fp_engine_duration_seconds_count"), 4) << "A once (job and batch), B, two new photos";
  EXPECT_EQ(metric(m->body, "m2fp_rejected_total{reason=\"queue_full\"}"), 2);
}

TEST(ServerQueue, TwoWorkersParseAtTheSameTime) {
  ASSERT_TRUE(fs::exists(model_path())) << model_path() << " missing (CTest fixture fixture_synthetic_cihp)";
  Gate gate;
  ForwardHooks hooks;
  hooks.attention_mask = [&gate](int, int64_t, int64_t, std::vector<uint8_t>&) { gate.wait(); };
  ServeOptions o = base_options();
  o.catalog_path = scratch("catalog_two.db");
  o.workers = 2;
  o.threads = 2;  // one OpenMP thread each
  o.queue = 0;
  o.hooks = &hooks;
  Running srv(o);
  auto cli = srv.client();
  const json h = health_of(*cli);
  EXPECT_EQ(h["workers"], 2);
  EXPECT_EQ(h["threads_per_worker"], 1);
  // Two different photos: both workers end up inside the forward pass of the one shared model.
  const std::string j1 = submit_job(*cli, png_of(make_photo(64, 48, 20)));
  const std::string j2 = submit_job(*cli, png_of(make_photo(64, 48, 21)));
  wait_busy(*cli, 2, 0);
  // Both busy and no waiting room: a third photo is refused.
  expect_error(cli->Post("/predict", upload(png_of(make_photo(64, 48, 22)))), 429, "queue is full");
  gate.set(true);
  const json r1 = wait_job(*cli, j1), r2 = wait_job(*cli, j2);
  EXPECT_EQ(r1["state"], "done");
  EXPECT_EQ(r2["state"], "done");
  EXPECT_NE(r1["result"]["image"]["sha256"], r2["result"]["image"]["sha256"]);
}

// label_set= (docs/OUTPUTS.md): every label-bearing key of /predict follows the set, each key once.
TEST_F(ServerHttp, LabelSetRemapsEveryLabelBearingKey) {
  const std::string png = png_of(make_photo(96, 72, 11));
  auto raw = [&](const std::string& query) {
    auto r = cli_->Post("/predict" + query, upload(png));
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body.substr(0, 300) : std::string("no answer"));
    std::map<std::string, int> keys;  // top-level keys of the text as sent: none twice
    const json j = json::parse(r ? r->body : std::string("{}"), [&](int depth, json::parse_event_t ev, json& v) {
      if (depth == 1 && ev == json::parse_event_t::key) ++keys[v.get<std::string>()];
      return true;
    });
    for (const auto& [k, n] : keys) EXPECT_EQ(n, 1) << query << ": key " << k;
    return j;
  };
  const json cihp = raw(""), atr = raw("?label_set=atr&mask_format=rle"), lip = raw("?label_set=lip");
  const json cihp_rle = raw("?mask_format=rle");  // CIHP in another form: the label-bearing keys as the default's
  for (const char* k : {"instances", "persons", "label_fractions", "labels_present", "legend", "colored_mask", "labels_png"})
    EXPECT_EQ(cihp_rle[k], cihp[k]) << k;
  EXPECT_FALSE(cihp.contains("label_set"));
  EXPECT_EQ(atr["label_set"], "atr");

  const std::vector<std::string> cihp_names = service::cihp_classes(),
                                  atr_names = service::label_set_classes(service::LabelSet::Atr, {});
  const std::vector<service::Rgb> pal = service::parsing_palette(256);
  auto ids_of = [&](const std::string& b64) {  // an RGB picture in palette colours -> ids
    const std::string bytes = b64decode(b64);
    const Image im = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    std::vector<int> ids((size_t)im.width * im.height, -1);
    for (size_t i = 0; i < ids.size(); ++i)
      for (int c = 0; c < 20 && ids[i] < 0; ++c)
        if (std::equal(pal[(size_t)c].begin(), pal[(size_t)c].end(), im.rgb.begin() + 3 * i)) ids[i] = c;
    return ids;
  };
  // colored_mask and labels_png (its palette expanded) are the label map in the set's ids
  const std::vector<int> c_ids = ids_of(cihp["colored_mask"]), a_ids = ids_of(atr["colored_mask"]);
  ASSERT_EQ(c_ids.size(), 96u * 72u);
  EXPECT_EQ(ids_of(cihp["labels_png"]), c_ids);
  EXPECT_EQ(ids_of(atr["labels_png"]), a_ids);
  std::set<std::string> present;
  size_t differ = 0;
  for (size_t i = 0; i < c_ids.size(); ++i) {
    ASSERT_GE(c_ids[i], 0) << "pixel " << i << " not in a palette colour";
    EXPECT_EQ(a_ids[i], service::map_label(service::LabelSet::Atr, c_ids[i])) << "pixel " << i;
    differ += a_ids[i] != c_ids[i];
    present.insert(atr_names[(size_t)a_ids[i]]);
  }
  EXPECT_GT(differ, 0u) << "the photo should hold classes whose ATR id differs (a non-trivial test)";
  // labels_present, label_fractions and the legend in ATR names and ids
  std::set<std::string> listed;
  for (const auto& n : atr["labels_present"]) listed.insert(n.get<std::string>());
  EXPECT_EQ(listed, present);
  double total = 0;
  for (const auto& [name, f] : atr["label_fractions"].items()) {
    EXPECT_TRUE(present.count(name)) << name;
    total += f.get<double>();
  }
  EXPECT_NEAR(total, 1.0, 1e-9);
  for (const auto& e : atr["legend"]) EXPECT_EQ(e["label"], atr_names[e["id"].get<size_t>()]) << e.dump();
  // instances and persons keep CIHP ids and add the set's
  ASSERT_EQ(atr["instances"].size(), cihp["instances"].size());
  for (size_t i = 0; i < atr["instances"].size(); ++i) {
    const json &a = atr["instances"][i], &c = cihp["instances"][i];
    EXPECT_EQ(a["category_id"], c["category_id"]);
    const int want = a["kind"] == "human" ? -1 : service::map_label(service::LabelSet::Atr, c["category_id"].get<int>());
    EXPECT_EQ(a["set_category_id"], want) << a.dump().substr(0, 200);
    EXPECT_EQ(a["set_label"], want > 0 ? json(atr_names[(size_t)want]) : json(nullptr));
  }
  size_t parts = 0;
  for (const auto& person : atr["persons"]) {
    for (const auto& part : person["parts"]) {
      const int want = service::map_label(service::LabelSet::Atr, part["category_id"].get<int>());
      EXPECT_EQ(part["set_category_id"], want);
      EXPECT_EQ(part["set_label"], want > 0 ? json(atr_names[(size_t)want]) : json(nullptr));
      ++parts;
    }
    for (const auto& g : person["garments"]) {
      ASSERT_TRUE(g.contains("set_labels")) << g.dump();
      for (const auto& l : g["set_labels"]) EXPECT_NE(std::find(atr_names.begin(), atr_names.end(), l), atr_names.end());
    }
  }
  EXPECT_GT(parts, 0u) << "the synthetic model should give persons with parts (a non-trivial test)";
  // LIP: Torso-skin has no LIP class
  for (const auto& n : lip["labels_present"]) EXPECT_NE(n, "Torso-skin");
  EXPECT_EQ(lip["label_set"], "lip");
}
