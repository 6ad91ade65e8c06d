// tests/loader/test_config_bounds.cpp: upper bounds of the configuration values (found by
// fuzz/fuzz_config): huge layer counts or widths are refused before anything is derived from them.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model_loader/config.h"

namespace {

nlohmann::json cihp_model() {
  std::ifstream f(std::string(M2FP_SOURCE_DIR) + "/tools/configs/cihp_configuration.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str())["model"];
}

std::string error_of(const nlohmann::json& model) {
  try {
    m2fp::parse_model_config(model.dump());
  } catch (const m2fp::LoadError& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigBounds, HugeValuesAreRefusedByName) {
  struct Case {
    const char* section;
    const char* key;
    int64_t value;
    const char* message;
  } cases[] = {
      {"encoder", "transformer_enc_layers", 1000000000, "model.encoder.transformer_enc_layers: must be at most 1000"},
      {"decoder", "dec_layers", 1001, "model.decoder.dec_layers: must be at most 1000"},
      {"decoder", "hidden_dim", 2000000000, "model.decoder.hidden_dim: must be at most 65536"},
      {"decoder", "num_queries", 100001, "model.decoder.num_queries: must be at most 100000"},
      {"encoder", "conv_dim", 65536 * 2, "model.encoder.conv_dim: must be at most 65536"},
      {"encoder", "transformer_dim_feedforward", 1 << 30, "model.encoder.transformer_dim_feedforward: must be at most"},
      {"backbone", "width_per_group", 1 << 20, "model.backbone.width_per_group * num_groups: must be at most"},
      {"backbone", "num_groups", 1 << 30, "must be at most 65536"},
  };
  for (const Case& c : cases) {
    nlohmann::json m = cihp_model();
    m[c.section][c.key] = c.value;
    const std::string e = error_of(m);
    EXPECT_NE(e.find(c.message), std::string::npos) << c.key << ": " << e;
  }
  // the largest accepted values still give exact counts (int64, no overflow)
  nlohmann::json m = cihp_model();
  m["decoder"]["hidden_dim"] = 65536;
  m["decoder"]["dim_feedforward"] = 65536;
  m["decoder"]["dec_layers"] = 1000;
  m["encoder"]["transformer_enc_layers"] = 1000;
  const m2fp::ModelConfig cfg = m2fp::parse_model_config(m.dump());
  const auto table = m2fp::expected_tensors(cfg);
  const m2fp::ParamCount pc = m2fp::count_parameters(table);
  EXPECT_EQ(pc.tensors, (int64_t)table.size());
  // per layer: self- and cross-attention 4 h^2 each, FFN 2 h f (h = f = 65536)
  EXPECT_GE(pc.transformer_decoder, (int64_t)1000 * 10 * 65536 * 65536);
  std::printf("  largest accepted configuration: %zu tensors, %lld parameters\n", table.size(), (long long)pc.total());
}

}  // namespace
