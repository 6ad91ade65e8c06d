// model_loader/config.h: the M2FP configuration (ModelScope configuration.json, "model" section),
// as stored by tools/convert_weights.py in the safetensors metadata under "m2fp.config".
#pragma once

#include <array>
#include <string>
#include <vector>

#include "model_loader/safetensors.h"

namespace m2fp {

struct ModelConfig {
  // backbone (DeepLab ResNet)
  int depth = 101;                      // 50 | 101 | 152
  int num_groups = 1, width_per_group = 64;
  int stem_out_channels = 128, res2_out_channels = 256;
  bool stride_in_1x1 = false;
  int res4_dilation = 1, res5_dilation = 1;
  std::vector<int> res5_multi_grid{1, 1, 1};
  // pixel decoder (MSDeformAttnPixelDecoder)
  int conv_dim = 256, mask_dim = 256, enc_nheads = 8, enc_dim_feedforward = 1024, enc_layers = 6;
  int common_stride = 4;
  std::vector<std::string> transformer_in_features{"res3", "res4", "res5"};
  // transformer decoder (MultiScaleMaskedTransformerDecoder)
  int num_classes = 21, hidden_dim = 256, num_queries = 100, dec_nheads = 8;
  int dec_dim_feedforward = 2048, dec_layers = 9, dec_mask_dim = 256;
  bool pre_norm = false, enforce_input_project = false;
  // task
  std::vector<std::string> classes;
  int num_parsing = 20;
  bool single_human = false;
  std::array<int, 2> single_human_size{384, 512};  // input_single_human.sizes[0] = (w, h)
  float parsing_ins_score_thr = 0.5f;
  bool parsing_on = true, semantic_on = false, sem_seg_postprocess_before_inference = true;
  // provenance
  bool synthetic = false;              // random weights (tools/make_synthetic_checkpoint.py)
  std::string source;                  // what the converter read

  std::string summary() const;         // one line: "CIHP multi-person, 21 classes, ..."
};

// Parses the JSON text of the "model" section. Throws LoadError naming the offending key.
ModelConfig parse_model_config(const std::string& json_text);
// Reads "m2fp.config" (and "m2fp.synthetic", "m2fp.source") from the file's metadata.
ModelConfig read_model_config(const SafetensorsFile& file);

// Every tensor the network reads, with its shape, derived from the configuration (for the CIHP
// model: exactly ../shared/m2fp/cihp_state_dict.tsv minus nothing; BatchNorm num_batches_tracked
// included with shape {} and dtype I64).
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg);

// Binds weights by name, checking dtype and shape. Every error names the file and the key.
class WeightBinder {
 public:
  explicit WeightBinder(const SafetensorsFile& file) : file_(file) {}
  // A float32 tensor of exactly `shape`; throws LoadError if missing, wrong dtype or shape.
  const float* f32(const std::string& name, const std::vector<int64_t>& shape);
  const SafetensorsFile& file() const { return file_; }
  std::vector<std::string> bound() const { return bound_; }

 private:
  const SafetensorsFile& file_;
  std::vector<std::string> bound_;
};

}  // namespace m2fp
