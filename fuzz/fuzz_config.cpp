// fuzz/fuzz_config.cpp: libFuzzer target for the configuration JSON (a converted file's
// "m2fp.config" metadata, or a configuration.json): parse_model_config's type and value checks,
// then everything derived from a configuration that was accepted: the expected tensor table,
// parameter counts, the summary line and `m2fp inspect`'s cost table (engine/m2fp.cpp layer_costs)
// for a small input.
//
// Findings: crashes, ASan/UBSan reports (integer overflow in sizes derived from hostile values),
// exceptions other than LoadError, unbounded work (-timeout) or memory (-malloc_limit_mb).
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/m2fp.h"
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
  (void)m2fp::layer_costs(cfg, 64, 96);
  return 0;
}
