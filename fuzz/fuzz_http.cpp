// fuzz/fuzz_http.cpp: the HTTP request handling of `m2fp serve` (app/server/) on raw request bytes.
//
// One Server (ServeOptions::listen = false, so no socket) with a stub engine (decode_image, then a
// made-up parsing of the photo: no model, microseconds per photo) takes the input through
// Server::handle_raw(): cpp-httplib's request line / header / body parsing (Content-Length, chunked,
// multipart/form-data), our pre-routing (411, X-Request-Id), routes, body reading with the upload
// limit, the form and query options of /predict, /recommend, /jobs and /jobs/{id}, the result cache,
// the job table, error answers and the access logger: the code a socket's handler thread runs.
//
// Input: raw bytes of one connection (one request or several pipelined). Two conveniences let the
// fuzzer reach deep states that it could not guess:
//   - an input starting with "FRAMED\n" is one request whose Content-Length header is rewritten to
//     the length of what follows the blank line (so mutations inside a multipart body stay framed);
//   - "JOBID" and "CACHEDSHA" are replaced by the id of the last job created and the SHA-256 of the
//     last photo answered (GET /jobs/JOBID, POST /recommend?sha256=CACHEDSHA reach their 200 paths).
//
// Oracle (a finding = __builtin_trap(), besides crashes and sanitizer reports):
//   - every request handled gets exactly one final answer (interim "100 Continue" aside), and only
//     the last one of a connection may get none (its bytes ended before a complete request);
//   - each answer is well-formed HTTP/1.1: status line, headers, body length = Content-Length
//     (or no body: HEAD);
//   - its status is one the service documents (docs/SERVICE.md) or cpp-httplib's own (416, 417 for
//     a malformed Range or Expect); a 405 carries Allow; never 500 (an exception nobody anticipated), never 206 (ranges
//     are ignored: the answers are JSON);
//   - an error answer (>= 400) is the JSON {"error": "...", "status": <its status>}, and every
//     application/json answer parses.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/server/server.h"
#include "engine/image.h"
#include "engine/pipeline.h"

namespace {

using m2fp::app::Server;
using m2fp::app::ServeOptions;
using json = nlohmann::json;

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_http: %s\n%.*s\n", what, (int)std::min<size_t>(detail.size(), 2000), detail.data());
  __builtin_trap();
}

// A made-up parsing of the decoded photo, cheap and deterministic, with something in every part of
// the answer: labels in horizontal bands (Hair, UpperClothes, Pants, Left-shoe; background in a
// left margin), one person holding them, a part instance per label.
m2fp::ParseResult stub_engine(const uint8_t* bytes, size_t size, const m2fp::ParseOptions& opt) {
  m2fp::ParseResult r;
  r.image = m2fp::decode_image(bytes, size, opt.decode);  // ImageError for a bad photo, as the engine
  const int w = r.image.width, h = r.image.height;
  m2fp::Parsing& p = r.parsing;
  p.width = w;
  p.height = h;
  p.class_names = {"Background", "Hat",      "Hair",      "Glove",     "Sunglasses", "UpperClothes", "Dress",
                   "Coat",       "Socks",    "Pants",     "Torso-skin", "Scarf",     "Skirt",        "Face",
                   "Left-arm",   "Right-arm", "Left-leg", "Right-leg", "Left-shoe",  "Right-shoe",   "Human"};
  static const uint8_t kBands[4] = {2, 5, 9, 18};
  p.labels.assign((size_t)w * h, 0);
  p.person_map.assign((size_t)w * h, 0);
  std::vector<int64_t> count(p.class_names.size(), 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t c = x < w / 8 ? 0 : kBands[std::min(3, y * 4 / std::max(1, h))];
      p.labels[(size_t)y * w + x] = c;
      p.person_map[(size_t)y * w + x] = c ? 1 : 0;
      ++count[c];
    }
  if (opt.keep_scores) {  // refine= asks for the per-class scores: the argmax's, one-hot
    p.score_classes = 20;
    p.scores.assign((size_t)20 * w * h, 0);
    for (size_t i = 0; i < p.labels.size(); ++i) p.scores[(size_t)p.labels[i] * w * h + i] = 255;
  }
  p.label_fractions.assign(p.class_names.size(), 0.0);
  for (size_t c = 0; c < count.size(); ++c) p.label_fractions[c] = (double)count[c] / std::max(1, w * h);
  m2fp::Instance human;
  human.kind = m2fp::Instance::Kind::Human;
  human.category_id = 20;
  human.label = "Human";
  human.score = 0.9f;
  human.area = (int64_t)w * h - count[0];
  human.bbox = {w / 8, 0, w, h};
  human.query = 0;
  human.person = 0;
  p.instances.push_back(human);
  m2fp::Person person;
  person.instance = 0;
  person.score = 0.9f;
  person.bbox = human.bbox;
  person.area = human.area;
  for (int i = 0; i < 4; ++i) {
    if (!count[kBands[i]]) continue;
    m2fp::Instance part;
    part.category_id = kBands[i];
    part.label = p.class_names[kBands[i]];
    part.score = 0.8f;
    part.area = count[kBands[i]];
    part.bbox = {w / 8, i * h / 4, w, (i + 1) * h / 4};
    part.query = 1 + i;
    part.person = 0;
    person.parts.push_back((int)p.instances.size());
    p.instances.push_back(part);
  }
  p.persons.push_back(person);
  r.geometry.nh = r.geometry.nw = 64;
  return r;
}

Server& server() {
  static Server* s = [] {
    ServeOptions o;
    o.model_path = "stub.safetensors";
    o.catalog_path = ":memory:";  // the seed catalogue in a private in-memory SQLite database
    o.listen = false;
    o.access_log = false;
    o.threads = 1;
    o.workers = 1;
    o.queue = 2;
    o.http_threads = 1;
    o.max_upload_bytes = 4096;    // below libFuzzer's -max_len: 413 is reachable
    o.max_pixels = 16384;         // 128 x 128: photos stay cheap
    o.timeout_s = 30;
    o.cache_bytes = 256 << 10;    // a few entries: eviction happens
    o.cache_entries = 8;
    o.max_jobs = 8;
    o.engine_stub = stub_engine;
    o.cors_origins = {"https://shop.example"};  // CORS headers on answers and preflights
    return new Server(o);
  }();
  return *s;
}

std::string g_last_job, g_last_sha;  // for the JOBID / CACHEDSHA placeholders

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (to.empty()) return;
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
}

bool iequals_prefix(const std::string& s, size_t pos, const char* prefix) {
  for (size_t i = 0; prefix[i]; ++i)
    if (pos + i >= s.size() || std::tolower((unsigned char)s[pos + i]) != std::tolower((unsigned char)prefix[i]))
      return false;
  return true;
}

// "FRAMED\n" inputs: drop the head's Content-Length lines and add the body's true length.
std::string framed(const std::string& in) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return in;
  std::string head = in.substr(0, end), body = in.substr(end + 4), out;
  size_t pos = 0;
  while (pos <= head.size()) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string::npos) eol = head.size();
    if (!iequals_prefix(head, pos, "content-length:")) out.append(head, pos, eol - pos).append("\r\n");
    pos = eol + 2;
  }
  return out + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool allowed_status(int s) {
  switch (s) {
    case 200: case 202: case 204: case 400: case 404: case 405: case 411: case 413: case 414: case 415:
    case 416: case 417: case 429: case 503: case 504:
      return true;
    default:
      return false;
  }
}

// Checks one request's answer bytes; returns the final answer's JSON body (null if none).
json check_answer(std::string seg, bool may_be_empty) {
  if (seg.empty()) {
    if (!may_be_empty) finding("a request that is not the connection's last got no answer", seg);
    return nullptr;
  }
  // An interim "100 Continue" may precede the answer.
  if (seg.rfind("HTTP/1.1 100 ", 0) == 0) {
    const size_t e = seg.find("\r\n\r\n");
    if (e == std::string::npos) finding("unterminated 100 Continue", seg);
    seg.erase(0, e + 4);
  }
  if (seg.rfind("HTTP/1.1 ", 0) != 0 || seg.size() < 12) finding("answer without an HTTP/1.1 status line", seg);
  const int status = std::atoi(seg.c_str() + 9);
  if (status == 500) finding("500: an exception nobody anticipated", seg);
  if (!allowed_status(status)) finding("unexpected status", seg);
  const size_t head_end = seg.find("\r\n\r\n");
  if (head_end == std::string::npos) finding("answer head not terminated", seg);
  const std::string head = seg.substr(0, head_end);
  if (status == 405 && head.find("\r\nAllow: ") == std::string::npos) finding("405 without Allow", seg);
  const std::string body = seg.substr(head_end + 4);
  long long content_length = -1;
  std::string content_type;
  for (size_t pos = head.find("\r\n"); pos != std::string::npos && pos < head.size(); pos = head.find("\r\n", pos)) {
    pos += 2;
    if (iequals_prefix(head, pos, "content-length:")) content_length = std::atoll(head.c_str() + pos + 15);
    if (iequals_prefix(head, pos, "content-type:")) {
      const size_t eol = head.find("\r\n", pos);
      content_type = head.substr(pos + 13, (eol == std::string::npos ? head.size() : eol) - pos - 13);
    }
  }
  if (!body.empty() && content_length != (long long)body.size())
    finding("body length differs from Content-Length (or a second answer followed)", seg);
  if (body.empty()) return nullptr;  // HEAD, or an empty 200
  const bool is_json = content_type.find("application/json") != std::string::npos;
  if (status >= 400 && !is_json) finding("error answer that is not JSON", seg);
  if (!is_json) return nullptr;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) finding("application/json answer that does not parse", seg);
  if (status >= 400) {
    if (!j.is_object() || !j.contains("error") || !j["error"].is_string() || j["error"].get<std::string>().empty() ||
        !j.contains("status") || j["status"] != status)
      finding("error answer is not {\"error\": \"...\", \"status\": <status>}", seg);
  }
  return j;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Server& s = server();
  std::string in(reinterpret_cast<const char*>(data), size);
  replace_all(in, "JOBID", g_last_job);
  replace_all(in, "CACHEDSHA", g_last_sha);
  if (in.rfind("FRAMED\n", 0) == 0) in = framed(in.substr(7));
  const std::vector<std::string> answers = s.handle_raw(in);
  static const bool verbose = std::getenv("FUZZ_HTTP_VERBOSE") != nullptr;  // what each seed gets
  for (size_t i = 0; i < answers.size(); ++i) {
    if (verbose) {
      const size_t body = answers[i].find("\r\n\r\n");
      std::fprintf(stderr, "  answer %zu: %.*s | %.160s\n", i, (int)answers[i].find("\r\n"), answers[i].c_str(),
                   body == std::string::npos ? "" : answers[i].c_str() + body + 4);
    }
    const json j = check_answer(answers[i], i + 1 == answers.size());
    if (!j.is_object()) continue;
    if (j.contains("id") && j["id"].is_string() && j.contains("url")) g_last_job = j["id"].get<std::string>();
    if (j.contains("image") && j["image"].is_object() && j["image"].contains("sha256") && j["image"]["sha256"].is_string())
      g_last_sha = j["image"]["sha256"].get<std::string>();
  }
  return 0;
}
