// fuzz/fuzz_config.cpp: libFuzzer target for the configuration JSON (a converted file's
// "m2fp.config" metadata, or a configuration.json): parse_model_config's type and value checks,
// then everything derived from a configuration that was accepted: the expected tensor table,
// parameter counts and the summary line. (`m2fp inspect`'s cost table comes from a loaded model's
// layers, each backed by a tensor of the file: M2FP::layer_costs.)
//
// Findings: crashes, ASan/UBSan reports (integer overflow in sizes derived from hostile values),
// exceptions other than LoadError, unbounded work (-timeout) or memory (-malloc_limit_mb).
#include <cstddef>
#include <cstdint>
#include <string>

#include "model_loader/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  m2fp::ModelConfig cfg;
  try {
    cfg = m2fp::parse_model_config(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const m2fp::LoadError&) {
    return 0;
  }
  (void)cfg.summary();
  (void)cfg.stage_blocks();
  const std::vector<m2fp::ExpectedTensor> table = m2fp::expected_tensors(cfg);
  const m2fp::ParamCount pc = m2fp::count_parameters(table);
  if (pc.tensors != (int64_t)table.size()) __builtin_trap();
  return 0;
}
