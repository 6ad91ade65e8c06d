// service/session.cpp: model loading with its precision, per-photo parsing, photo files, threads.
#include "service/session.h"

#include <omp.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "service/numbers.h"
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
  lo.warm_up = opt_.warm_up;  // the load warms its prepare_sizes up, or maps the first one's buffers
  const auto t0 = std::chrono::steady_clock::now();
  try {
    model_ = M2FP::load(opt_.model_path, lo);
  } catch (const LoadError& e) {
    // The engine refuses bf16 first thing, before the file is opened, when the CPU cannot run it.
    if (opt_.precision == dnn::Precision::BF16 && !dnn::bf16_available()) throw PrecisionUnavailable(e.what());
    throw;
  }
  for (const auto& [w, h] : opt_.prepare_photos) prepare(w, h, opt_.warm_up);
  if (!opt_.warm_up && opt_.prepare_sizes.empty() && !opt_.prepare_photos.empty())
    map_buffers(opt_.prepare_photos[0].first, opt_.prepare_photos[0].second);
  load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  model_json_ = service::model_json(*model_, opt_.model_path);
}

Session::~Session() = default;

std::pair<int64_t, int64_t> Session::input_size(int width, int height) const {
  if (!model_) return {0, 0};
  return network_input_size(model_->config(), width, height, opt_.parse);
}

void Session::prepare(int width, int height, bool warm_up) const {
  if (!model_) return;
  const auto [Hp, Wp] = input_size(width, height);
  if (warm_up) model_->warm_up(Hp, Wp);
  else model_->prepare(Hp, Wp);
}

void Session::map_buffers(int width, int height) const {
  if (!model_) return;
  const auto [Hp, Wp] = input_size(width, height);
  model_->map_buffers(Hp, Wp);
}

std::vector<std::pair<int, int>> parse_photo_sizes(const std::string& spec) {
  if (spec == "common") return {{1024, 768}, {768, 1024}, {1200, 800}, {800, 1200}, {1920, 1080}, {1080, 1920}};
  std::vector<std::pair<int, int>> out;
  size_t pos = 0;
  while (true) {
    const size_t comma = spec.find(',', pos);
    const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const size_t x = item.find('x');
    auto side = [](const std::string& v) {  // 0 (refused) unless a decimal integer 1..65535
      const std::optional<long> n = parse_integer(v);
      return n && *n >= 1 && *n <= 65535 ? (int)*n : 0;
    };
    const int w = x == std::string::npos ? 0 : side(item.substr(0, x));
    const int h = x == std::string::npos ? 0 : side(item.substr(x + 1));
    if (w < 1 || h < 1)
      throw OptionError("must be \"common\" or photo sizes WIDTHxHEIGHT[,WIDTHxHEIGHT...] (1..65535 pixels), got '" +
                        item.substr(0, 64) + "'");
    out.push_back({w, h});
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

bool photo_file_size(const std::string& path, int* width, int* height) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::vector<uint8_t> head(size_t(1) << 20);
  f.read(reinterpret_cast<char*>(head.data()), (std::streamsize)head.size());
  const std::streamsize n = f.gcount();
  if (n <= 0) return false;
  return photo_size(head.data(), (size_t)n, width, height);
}

bool photo_size(const uint8_t* bytes, size_t size, int* width, int* height) {
  ImageHeader h;
  if (!read_image_header(bytes, size, &h) || h.width < 1 || h.height < 1 || h.width > 65535 || h.height > 65535)
    return false;
  int orientation = 1;
  try {
    if (h.format != ImageFormat::Bmp) orientation = read_exif_orientation(bytes, size);
  } catch (const std::exception&) {
    return false;  // malformed EXIF: decoding reports it
  }
  const bool swap = orientation >= 5 && orientation <= 8;
  *width = (int)(swap ? h.height : h.width);
  *height = (int)(swap ? h.width : h.height);
  return true;
}

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
