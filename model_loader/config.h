// model_loader/config.h: the M2FP configuration (ModelScope configuration.json, "model" section),
// as stored by tools/convert_weights.py in the safetensors metadata under "m2fp.config", and
// everything derived from it: the tensor names/shapes the network reads (the one table the engine
// binds through), parameter counts.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model_loader/safetensors.h"

namespace m2fp {

// The member initialisers are the CIHP model's values (tools/configs/cihp_configuration.json).
// parse_model_config() does not rely on them: a key missing from the JSON gets upstream's default
// where upstream (modelscope M2FP.__init__) has one, and is an error otherwise.
struct ModelConfig {
  // backbone (DeepLab ResNet), "backbone" section; all keys required upstream
  std::vector<std::string> out_features{"res2", "res3", "res4", "res5"};
  int depth = 101;                      // 50 | 101 | 152
  int num_groups = 1, width_per_group = 64;
  std::string norm = "BN";              // only BatchNorm is supported
  int stem_out_channels = 128, res2_out_channels = 256;
  bool stride_in_1x1 = false;
  int res4_dilation = 1, res5_dilation = 1;
  std::vector<int> res5_multi_grid{1, 1, 1};
  // pixel decoder (MSDeformAttnPixelDecoder), "encoder" section; all keys required upstream
  std::vector<std::string> enc_in_features{"res2", "res3", "res4", "res5"};  // "in_features"
  float transformer_dropout = 0.0f;     // training only
  int conv_dim = 256, mask_dim = 256, enc_nheads = 8, enc_dim_feedforward = 1024, enc_layers = 6;
  int common_stride = 4;
  std::vector<std::string> transformer_in_features{"res3", "res4", "res5"};
  int enc_n_points = 4;                 // fixed upstream (MSDeformAttnTransformerEncoderOnly), not configurable
  // transformer decoder (MultiScaleMaskedTransformerDecoder), "decoder" section; all keys required
  int num_classes = 21, hidden_dim = 256, num_queries = 100, dec_nheads = 8;
  int dec_dim_feedforward = 2048, dec_layers = 9, dec_mask_dim = 256;
  bool pre_norm = false, enforce_input_project = false;
  // task (top level of the "model" section; upstream defaults in brackets)
  std::vector<std::string> classes;     // [None -> empty]; else exactly num_classes names
  int num_parsing = 20;                 // [None]; the "Human" class; required when parsing_on
  bool single_human = false;            // [true]
  std::array<int, 2> single_human_size{384, 512};  // input_single_human.sizes[0] = (w, h); required when single_human
  float parsing_ins_score_thr = 0.5f;   // [0.5]
  bool parsing_on = true;               // [false]
  bool semantic_on = false;             // [true]
  bool sem_seg_postprocess_before_inference = true;  // [true]; upstream uses (value || parsing_on)
  // provenance (safetensors metadata, not the "model" section)
  bool synthetic = false;              // random weights (tools/make_synthetic_checkpoint.py)
  std::string source;                  // what the converter read

  std::vector<int> stage_blocks() const;  // blocks per built stage res2.. : 3-4-23-3 for depth 101
  std::string summary() const;         // one line: "M2FP multi-person parsing, ResNet-101 ..."
};

// Parses the JSON text of the "model" section (a whole configuration.json is accepted too: its
// "model" object is used). Types are checked, values validated (depth, dilations, feature names,
// divisibility the network needs); unknown keys are ignored. Throws LoadError naming the
// offending key, e.g. "model.decoder.num_queries: missing (required)".
ModelConfig parse_model_config(const std::string& json_text);
// Reads "m2fp.config" (and "m2fp.synthetic", "m2fp.source") from the file's metadata. Throws
// LoadError naming the file and the metadata key.
ModelConfig read_model_config(const SafetensorsFile& file);

// Every tensor the network reads, with its shape, derived from the configuration, in upstream
// state_dict order (for the CIHP model: exactly tests/data/cihp_state_dict.tsv, 928 entries;
// BatchNorm num_batches_tracked included with shape {} and dtype I64).
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg);
// The transformer decoder always reads 3 feature levels (upstream num_feature_levels).
constexpr int kDecoderFeatureLevels = 3;

// Element counts per component. Learnable parameters are counted per component; BatchNorm
// buffers (running_mean, running_var, num_batches_tracked) separately. CIHP: 63,124,118 parameters.
struct ParamCount {
  int64_t backbone = 0;             // backbone.*
  int64_t pixel_decoder = 0;        // sem_seg_head.pixel_decoder.*
  int64_t transformer_decoder = 0;  // sem_seg_head.predictor.*
  int64_t other = 0;                // anything else
  int64_t buffers = 0;              // BatchNorm running statistics and counters (all components)
  int64_t tensors = 0;
  uint64_t bytes = 0;               // data bytes of all counted tensors
  int64_t total() const { return backbone + pixel_decoder + transformer_decoder + other; }
};
ParamCount count_parameters(const SafetensorsFile& file);
ParamCount count_parameters(const std::vector<ExpectedTensor>& tensors);

// Binds weights by name, checking dtype and shape. Every error names the file and the key.
class WeightBinder {
 public:
  explicit WeightBinder(const SafetensorsFile& file) : file_(file) {}
  // A float32 tensor of exactly `shape`; throws LoadError if missing, wrong dtype or shape, or
  // its data is not 4-byte aligned.
  const float* f32(const std::string& name, const std::vector<int64_t>& shape);
  // Any dtype: the view of `name`, checked against `shape` and `dtype`.
  const TensorView& tensor(const std::string& name, const std::vector<int64_t>& shape, DType dtype);
  const SafetensorsFile& file() const { return file_; }
  std::vector<std::string> bound() const { return bound_; }   // in binding order, each once
  std::vector<std::string> unbound() const;                    // file tensors never bound, file order

 private:
  const SafetensorsFile& file_;
  std::vector<std::string> bound_;
};

// A float32 tensor bound from the file: its data and its shape (the table's, which the file's equals).
struct Weight {
  const float* data = nullptr;
  std::vector<int64_t> shape;
  int dim(size_t i) const { return static_cast<int>(shape.at(i)); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Binds the network of one configuration: the tensors of expected_tensors(cfg), each by name, with
// the table's dtype and shape (WeightBinder's checks and errors), each exactly once. M2FP::load takes
// every weight through it, so the table is the one list of what the network reads.
class NetworkBinder {
 public:
  NetworkBinder(const SafetensorsFile& file, const ModelConfig& cfg);
  // The float32 tensor `name`. Throws LoadError if the table has no such entry (the configuration
  // builds no such layer) or WeightBinder refuses the file's tensor; std::logic_error if it was
  // bound before.
  Weight f32(const std::string& name);
  // A tensor the forward pass does not read (BatchNorm's num_batches_tracked): checked like the
  // others and counted as bound.
  void unused(const std::string& name);
  bool has(const std::string& name) const;  // whether the table holds `name`
  // Throws LoadError naming the first table entry that was never bound (a layer of this
  // configuration that the engine does not build).
  void finish() const;
  std::vector<std::string> bound() const { return binder_.bound(); }  // in binding order

 private:
  size_t row(const std::string& name) const;  // the table row of `name`, not bound yet
  WeightBinder binder_;
  std::vector<ExpectedTensor> table_;
  std::map<std::string, size_t> index_;  // name -> row of table_
  std::vector<bool> bound_;              // per row of table_
};

}  // namespace m2fp
