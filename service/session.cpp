// service/session.cpp: model loading with its precision, per-photo parsing, photo files, threads.
#include "service/session.h"

#include <omp.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "service/report.h"

namespace m2fp::service {

dnn::Precision parse_precision(const std::string& name) {
  dnn::Precision p;
  if (!dnn::parse_precision(name, &p)) throw OptionError("must be fp32 or bf16, got '" + name + "'");
  return p;
}

void set_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int threads() { return omp_get_max_threads(); }

Session::Session(const SessionOptions& opt) : opt_(opt) {
  if (opt_.engine_stub) {
    model_json_ = {{"file", opt_.model_path}, {"summary", "stub engine (tests)"}, {"stub", true},
                   {"synthetic", true}, {"warning", kSyntheticWarning}};
    return;
  }
  LoadOptions lo;
  lo.precision = opt_.precision;
  lo.prepare_sizes = opt_.prepare_sizes;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    model_ = M2FP::load(opt_.model_path, lo);
  } catch (const LoadError& e) {
    // The engine refuses bf16 first thing, before the file is opened, when the CPU cannot run it.
    if (opt_.precision == dnn::Precision::BF16 && !dnn::bf16_available()) throw PrecisionUnavailable(e.what());
    throw;
  }
  load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  model_json_ = service::model_json(*model_, opt_.model_path);
}

Session::~Session() = default;

ParseResult Session::parse(const uint8_t* bytes, size_t size, const TensorSink* sink, bool keep_scores) const {
  ParseOptions po = opt_.parse;
  po.keep_scores = po.keep_scores || keep_scores;
  if (opt_.engine_stub) return opt_.engine_stub(bytes, size, po);
  return parse_image_bytes(*model_, bytes, size, po, sink);
}

ParseResult Session::parse_resized(const uint8_t* bytes, size_t size, int short_edge, int max_size,
                                   bool keep_scores) const {
  ParseOptions po = opt_.parse;
  po.keep_scores = po.keep_scores || keep_scores;
  if (short_edge > 0) po.short_edge = short_edge;
  if (max_size > 0) po.max_size = max_size;
  if (opt_.engine_stub) return opt_.engine_stub(bytes, size, po);
  return parse_image_bytes(*model_, bytes, size, po, nullptr);
}

ParseResult Session::parse_image(Image image, const TensorSink* sink) const {
  if (opt_.engine_stub) throw std::logic_error("a stub session parses photo bytes only");
  return m2fp::parse_image(*model_, std::move(image), opt_.parse, sink);
}

dnn::Precision Session::precision() const { return model_ ? model_->precision() : opt_.precision; }

bool Session::synthetic() const { return model_ ? model_->config().synthetic : true; }

std::string Session::summary() const { return model_ ? model_->config().summary() : "stub engine"; }

std::vector<uint8_t> read_photo_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw std::runtime_error(path + ": is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error(path + ": read error");
  return bytes;
}

}  // namespace m2fp::service
