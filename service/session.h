// service/session.h: one parse session: the model, its precision, the parse options and the OpenMP
// threads; photo bytes (or a photo file) in, a ParseResult out. Every front door parses through it.
//
//   SessionOptions so;
//   so.model_path = "m.safetensors";
//   so.precision = parse_precision("bf16");
//   Session s(so);
//   ParseResult r = s.parse(bytes.data(), bytes.size());
//
// Precision: whether bf16 can run is decided once, by the engine when it loads the model
// (dnn::bf16_available()); a session that asked for bf16 on a CPU without it throws
// PrecisionUnavailable with the engine's reason, before any weights are read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/m2fp.h"
#include "engine/pipeline.h"

namespace m2fp::service {

// The precision asked for cannot run on this CPU (the engine's message says why and what to use).
struct PrecisionUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An option's value that is not valid. The message is what follows the option's name as a front door
// spells it ("must be fp32 or bf16, got 'fp8'" after "--precision").
struct OptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// "fp32" (or "f32") or "bf16"; throws OptionError for anything else.
dnn::Precision parse_precision(const std::string& name);

// Applies a thread count to OpenMP (the pool oneDNN and the kernels share); n <= 0 leaves it as is.
void set_threads(int n);
int threads();  // OpenMP's thread count for the next parallel region on this thread

// Stands in for the engine where no model file is read (the server's tests and its fuzzer): parses
// the photo bytes as parse_image_bytes would (throwing ImageError for a bad photo).
using EngineStub = std::function<ParseResult(const uint8_t* bytes, size_t size, const ParseOptions& opt)>;

struct SessionOptions {
  std::string model_path;
  dnn::Precision precision = dnn::Precision::F32;
  ParseOptions parse;      // resize, decode limits, hooks; the same for every photo of the session
  EngineStub engine_stub;  // set: no model is loaded; reported as {"stub": true, "synthetic": true}
  // Padded input sizes (Hp, Wp) whose oneDNN primitives and weight layouts the load prepares
  // (M2FP::prepare): the first parse at such a size then runs as fast as the later ones.
  std::vector<std::pair<int64_t, int64_t>> prepare_sizes;
  // Photo sizes (width, height; after EXIF orientation) whose network inputs under `parse` the load
  // prepares as well (parse_photo_sizes: "640x480,1920x1080" or "common").
  // Without warm_up, the load also maps the buffer pool's blocks for the first prepared size (the
  // first of prepare_sizes, else of prepare_photos; M2FP::map_buffers), so that the first parse at
  // that size does not fault them in.
  std::vector<std::pair<int, int>> prepare_photos;
  // Also run one forward pass on a blank image of each prepared size at load (M2FP::warm_up): the
  // first parse then runs as a warm one (buffer pool, scratchpads, threads), for a process that
  // parses many photos (the server); costs about one parse per size at load.
  bool warm_up = false;
};

// Photo sizes to prepare (SessionOptions::prepare_photos): "WxH[,WxH...]" (width x height in pixels,
// each 1..65535), or "common": landscape and portrait 4:3, 3:2 and 16:9 (1024x768, 768x1024,
// 1200x800, 800x1200, 1920x1080, 1080x1920). Throws OptionError naming what is wrong.
std::vector<std::pair<int, int>> parse_photo_sizes(const std::string& spec);

// The width and height of a photo as it will be parsed (its header's, swapped for EXIF orientations
// 5..8), read without decoding; false where the header cannot be read (decoding will say why).
bool photo_size(const uint8_t* bytes, size_t size, int* width, int* height);
// The same for a photo file, reading only its first bytes (up to 1 MiB, where JPEG's frame header is);
// false where it cannot be opened or read.
bool photo_file_size(const std::string& path, int* width, int* height);

class Session {
 public:
  // Loads the model (unless engine_stub is set). Throws PrecisionUnavailable, or LoadError naming
  // the file and the problem.
  explicit Session(const SessionOptions& opt);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Decodes and parses one photo. Throws ImageError for bad photo bytes. Safe to call from several
  // threads at once.
  // keep_scores: the parsing also keeps the per-class scores (Parsing::scores) the refinements read.
  ParseResult parse(const uint8_t* bytes, size_t size, const TensorSink* sink = nullptr,
                    bool keep_scores = false) const;
  // The same with this photo's own resize (short_edge, max_size; 0 keeps the session's).
  ParseResult parse_resized(const uint8_t* bytes, size_t size, int short_edge, int max_size,
                            bool keep_scores = false) const;
  // Parses an already-decoded photo (no decode limits apply). Safe to call from several threads at
  // once. A stub session cannot: it throws std::logic_error.
  ParseResult parse_image(Image image, const TensorSink* sink = nullptr) const;

  // The padded network input (Hp, Wp) this session gives a photo of width x height pixels, and
  // preparing for it (M2FP::prepare, and M2FP::warm_up when `warm_up`): the first parse of such
  // a photo then creates no oneDNN primitive. No-ops for a stub; prepare throws ImageError for a
  // size no parse accepts. Safe to call from several threads at once.
  std::pair<int64_t, int64_t> input_size(int width, int height) const;
  void prepare(int width, int height, bool warm_up = false) const;
  // prepare(width, height) and the buffer pool's blocks for that size mapped and faulted in
  // (M2FP::map_buffers): for the photo parsed first. No-op for a stub.
  void map_buffers(int width, int height) const;

  const SessionOptions& options() const { return opt_; }
  const M2FP* model() const { return model_.get(); }  // null for a stub
  dnn::Precision precision() const;                    // what the model runs in (a stub: what was asked)
  bool synthetic() const;                              // random weights (a stub counts as synthetic)
  std::string summary() const;                         // the model's one-line summary, or "stub engine"
  double load_ms() const { return load_ms_; }
  // The model for reports: {"file", "summary", "synthetic", "warning"?, "source", "mode", "classes",
  // "precision", "isa"}; a stub: {"file", "summary", "stub", "synthetic", "warning"}.
  const nlohmann::json& model_json() const { return model_json_; }

 private:
  SessionOptions opt_;
  std::unique_ptr<M2FP> model_;
  double load_ms_ = 0;
  nlohmann::json model_json_;
};

// A photo file's bytes. Throws std::runtime_error naming the path (a folder, cannot open, read error).
std::vector<uint8_t> read_photo_file(const std::string& path);

}  // namespace m2fp::service
