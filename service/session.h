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
};

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
