// capi/m2fp_capi.cpp: the C API (include/m2fp.h), a thin front door over service/: a model is a
// service::Session with its options, a result the Parsing widened for C plus the result document
// service::result_document() builds (the same as `m2fp parse`'s result.json).
//
// Every entry point catches everything: no exception crosses into C, nothing exits or aborts.
// Threads: Session::parse is safe from several threads at once, so parses run in parallel; the one
// shared piece, the outfit catalogue (a SQLite connection), is read under the model's mutex.
#include <m2fp.h>  // the public header (include/), as callers see it

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "service/masks.h"
#include "service/numbers.h"
#include "service/outfits.h"
#include "service/report.h"
#include "service/result_doc.h"
#include "service/session.h"

#ifndef M2FP_VERSION
#error "M2FP_VERSION must be defined by the build"
#endif

struct m2fp_model {
  std::unique_ptr<m2fp::service::Session> session;
  m2fp::service::OutfitSetup outfits;  // kit null: no outfit analysis (outfits=0)
  std::mutex outfits_mutex;
  int threads = 0;  // <= 0: OpenMP's default
};

struct m2fp_result {
  int width = 0, height = 0;
  std::vector<uint8_t> labels;
  std::vector<uint16_t> persons;
  std::string json;
  m2fp::Parsing parsing;  // for m2fp_result_output (label sets, union masks)
};

namespace {

using m2fp::service::OptionError;

void set_error(char** error, const std::string& msg) {
  if (!error) return;
  *error = static_cast<char*>(std::malloc(msg.size() + 1));
  if (*error) std::memcpy(*error, msg.c_str(), msg.size() + 1);
}
void clear_error(char** error) {
  if (error) *error = nullptr;
}

int parse_int(const std::string& key, const std::string& v, int lo, int hi) {
  const std::optional<long> n = m2fp::service::parse_integer(v);
  if (!n || *n < lo || *n > hi)
    throw OptionError("option " + key + ": must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "], got '" + v + "'");
  return (int)*n;
}

struct LoadSettings {
  m2fp::service::SessionOptions so;
  int threads = 0;
  bool outfits = true;
  std::string catalog;
  bool has_isa = false;
  m2fp::kern::Isa isa{};
};

LoadSettings parse_options(const char* options) {
  LoadSettings s;
  if (!options) return s;
  std::istringstream in(options);
  std::string tok;
  while (in >> tok) {
    const size_t eq = tok.find('=');
    if (eq == std::string::npos || eq == 0) throw OptionError("option '" + tok + "': expected key=value");
    const std::string key = tok.substr(0, eq), v = tok.substr(eq + 1);
    if (key == "threads") {
      s.threads = parse_int(key, v, 0, 1024);
    } else if (key == "precision") {
      try {
        s.so.precision = m2fp::service::parse_precision(v);
      } catch (const OptionError& e) {
        throw OptionError("option precision: " + std::string(e.what()));
      }
    } else if (key == "short_edge") {
      s.so.parse.short_edge = parse_int(key, v, 32, 4096);
    } else if (key == "max_size") {
      s.so.parse.max_size = parse_int(key, v, 32, 8192);
    } else if (key == "max_pixels") {
      s.so.parse.decode.max_pixels = (int64_t)parse_int(key, v, 1, 1000) * 1000000;
    } else if (key == "isa") {
      if (!m2fp::kern::parse_isa(v.c_str(), &s.isa))
        throw OptionError("option isa: must be scalar, avx2 or avx512, got '" + v + "'");
      if (!m2fp::kern::isa_supported(s.isa)) throw OptionError("option isa: " + v + " is not supported on this CPU");
      s.has_isa = true;
    } else if (key == "outfits") {
      if (v != "0" && v != "1") throw OptionError("option outfits: must be 0 or 1, got '" + v + "'");
      s.outfits = v == "1";
    } else if (key == "prepare") {
      try {
        s.so.prepare_photos = m2fp::service::parse_photo_sizes(v);
      } catch (const m2fp::service::OptionError& e) {
        throw OptionError("option prepare: " + std::string(e.what()));
      }
    } else if (key == "warm_up") {
      if (v != "0" && v != "1") throw OptionError("option warm_up: must be 0 or 1, got '" + v + "'");
      s.so.warm_up = v == "1";
    } else if (key == "catalog") {
      if (v.empty()) throw OptionError("option catalog: empty path");
      s.catalog = v;
    } else {
      throw OptionError("unknown option '" + key +
                        "' (known: threads, precision, short_edge, max_size, isa, max_pixels, outfits, catalog, prepare, "
                        "warm_up)");
    }
  }
  return s;
}

template <class F>
m2fp_result* guarded(char** error, F&& f) {
  clear_error(error);
  try {
    return f();
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown error");
  }
  return nullptr;
}

m2fp_result* make_result(m2fp_model* model, const m2fp::ParseResult& r, const nlohmann::json& file) {
  auto res = std::make_unique<m2fp_result>();
  const m2fp::Parsing& p = r.parsing;
  res->width = p.width;
  res->height = p.height;
  res->labels = p.labels;
  res->persons.assign(p.person_map.begin(), p.person_map.end());
  if (res->persons.empty()) res->persons.assign(p.labels.size(), 0);
  nlohmann::json j;
  if (model->outfits.kit) {
    std::lock_guard<std::mutex> lock(model->outfits_mutex);
    j = m2fp::service::result_document(*model->session, r, file, {}, &model->outfits);
  } else {
    j = m2fp::service::result_document(*model->session, r, file, {}, nullptr);
  }
  res->json = j.dump(2) + "\n";
  res->parsing = p;
  res->parsing.scores = std::vector<uint8_t>();
  return res.release();
}

// m2fp_result_output's request: one of labels=SET, mask=NAME [dilate=N], json=SET.
struct OutputRequest {
  std::string kind, value;  // "labels" | "mask" | "json", and its value
  int dilate = 0;
};

OutputRequest parse_request(const char* request) {
  if (!request) throw std::invalid_argument("request is NULL");
  OutputRequest q;
  std::istringstream in(request);
  std::string tok;
  bool has_dilate = false;
  while (in >> tok) {
    const size_t eq = tok.find('=');
    if (eq == std::string::npos || eq == 0) throw OptionError("request '" + tok + "': expected key=value");
    const std::string key = tok.substr(0, eq), v = tok.substr(eq + 1);
    if (key == "labels" || key == "mask" || key == "json") {
      if (!q.kind.empty())
        throw OptionError("request: one of labels=, mask=, json= only (got " + q.kind + " and " + key + ")");
      q.kind = key;
      q.value = v;
    } else if (key == "dilate") {
      q.dilate = parse_int(key, v, 0, 1024);
      has_dilate = true;
    } else {
      throw OptionError("request: unknown key '" + key + "' (known: labels, mask, dilate, json)");
    }
  }
  if (q.kind.empty()) throw OptionError("request: empty (labels=SET, mask=NAME [dilate=N] or json=SET)");
  if (has_dilate && q.kind != "mask") throw OptionError("request: dilate= goes with mask= only");
  return q;
}

m2fp::service::LabelSet label_set_of(const std::string& v) {
  if (v.empty()) throw OptionError("request: empty label set (cihp, lip or atr)");
  return m2fp::service::parse_label_set(v);
}

void check_model(const m2fp_model* model) {
  if (!model) throw std::invalid_argument("model is NULL");
}

}  // namespace

extern "C" {

const char* m2fp_version(void) { return M2FP_VERSION; }

m2fp_model* m2fp_load(const char* model_path, const char* options, char** error) {
  clear_error(error);
  try {
    if (!model_path) throw std::invalid_argument("model_path is NULL");
    LoadSettings s = parse_options(options);
    s.so.model_path = model_path;
    if (s.has_isa) m2fp::kern::set_active_isa(s.isa);
    auto m = std::make_unique<m2fp_model>();
    m->threads = s.threads;
    if (s.outfits) m->outfits = m2fp::service::load_outfit_setup(s.catalog, {});
    m->session = std::make_unique<m2fp::service::Session>(s.so);
    return m.release();
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown error");
  }
  return nullptr;
}

void m2fp_model_free(m2fp_model* model) { delete model; }

m2fp_result* m2fp_parse_file(m2fp_model* model, const char* image_path, char** error) {
  return guarded(error, [&] {
    check_model(model);
    if (!image_path) throw std::invalid_argument("image_path is NULL");
    const std::vector<uint8_t> bytes = m2fp::service::read_photo_file(image_path);
    m2fp::service::set_threads(model->threads);
    try {
      return make_result(model, model->session->parse(bytes.data(), bytes.size()), image_path);
    } catch (const m2fp::ImageError& e) {
      throw std::runtime_error(std::string(image_path) + ": " + e.what());
    }
  });
}

m2fp_result* m2fp_parse_memory(m2fp_model* model, const void* bytes, size_t size, char** error) {
  return guarded(error, [&] {
    check_model(model);
    if (!bytes && size) throw std::invalid_argument("bytes is NULL");
    m2fp::service::set_threads(model->threads);
    return make_result(model, model->session->parse(static_cast<const uint8_t*>(bytes), size), nullptr);
  });
}

m2fp_result* m2fp_parse_rgb(m2fp_model* model, const uint8_t* rgb, int width, int height, size_t row_stride,
                            char** error) {
  return guarded(error, [&] {
    check_model(model);
    if (!rgb) throw std::invalid_argument("rgb is NULL");
    if (width <= 0 || height <= 0)
      throw std::invalid_argument("bad size " + std::to_string(width) + "x" + std::to_string(height));
    if (row_stride < (size_t)width * 3)
      throw std::invalid_argument("row_stride " + std::to_string(row_stride) + " is less than 3 * width (" +
                                  std::to_string((size_t)width * 3) + ")");
    const int64_t pixels = (int64_t)width * height;
    if (pixels > model->session->options().parse.decode.max_pixels)
      throw std::invalid_argument("image of " + std::to_string(pixels) + " pixels is above the limit of " +
                                  std::to_string(model->session->options().parse.decode.max_pixels));
    m2fp::Image img;
    img.width = width;
    img.height = height;
    img.rgb.resize((size_t)pixels * 3);
    for (int y = 0; y < height; ++y) std::memcpy(img.row(y), rgb + (size_t)y * row_stride, (size_t)width * 3);
    m2fp::service::set_threads(model->threads);
    return make_result(model, model->session->parse_image(std::move(img)), nullptr);
  });
}

int m2fp_result_width(const m2fp_result* r) { return r ? r->width : 0; }
int m2fp_result_height(const m2fp_result* r) { return r ? r->height : 0; }
const uint8_t* m2fp_result_labels(const m2fp_result* r) { return r ? r->labels.data() : nullptr; }
const uint16_t* m2fp_result_persons(const m2fp_result* r) { return r ? r->persons.data() : nullptr; }
const char* m2fp_result_json(const m2fp_result* r) { return r ? r->json.c_str() : nullptr; }
void* m2fp_result_output(const m2fp_result* r, const char* request, size_t* size, char** error) {
  clear_error(error);
  if (size) *size = 0;
  try {
    if (!r) throw std::invalid_argument("result is NULL");
    const OutputRequest q = parse_request(request);
    std::string out;
    if (q.kind == "labels") {
      const std::vector<uint8_t> m = m2fp::service::map_labels(r->parsing.labels, label_set_of(q.value), r->parsing.class_names);
      out.assign(m.begin(), m.end());
    } else if (q.kind == "mask") {
      if (q.value.empty()) throw OptionError("request: empty mask name");
      const std::vector<uint8_t> m = m2fp::service::union_mask(r->parsing, q.value, q.dilate);
      out.assign(m.begin(), m.end());
    } else {
      const m2fp::service::LabelSet set = label_set_of(q.value);
      nlohmann::json j = nlohmann::json::parse(r->json);
      m2fp::service::add_label_set_keys(j, r->parsing, set);
      j["label_set"] = {{"name", m2fp::service::label_set_name(set)},
                        {"classes", m2fp::service::label_set_classes(set, r->parsing.class_names)}};
      out = j.dump(2) + "\n";
    }
    void* buf = std::malloc(out.size() + 1);
    if (!buf) throw std::bad_alloc();
    std::memcpy(buf, out.data(), out.size());
    static_cast<char*>(buf)[out.size()] = 0;
    if (size) *size = out.size();
    return buf;
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown error");
  }
  return nullptr;
}

void m2fp_result_free(m2fp_result* r) { delete r; }
void m2fp_string_free(char* s) { std::free(s); }

}  // extern "C"
