// tests/loader/test_config.cpp: the "model" configuration, the expected tensor table (checked
// against the upstream CIHP state dict listing), parameter counts, WeightBinder, and the synthetic
// checkpoints written by the ctest fixtures.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "model_loader/config.h"
#include "model_loader/safetensors.h"
#include "tests/loader/loader_test_util.h"

using m2fp::DType;
using m2fp::ExpectedTensor;
using m2fp::LoadError;
using m2fp::ModelConfig;
using m2fp::SafetensorsFile;
using m2fp::WeightBinder;
using namespace m2fp_test;
using json = nlohmann::json;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::string kCihpConfigPath = std::string(M2FP_SOURCE_DIR) + "/tools/configs/cihp_configuration.json";
const std::string kCihpTsvPath = std::string(M2FP_SOURCE_DIR) + "/tests/data/cihp_state_dict.tsv";

// The "model" section of the CIHP configuration.json, as JSON to edit.
json cihp_model() { return json::parse(read_text(kCihpConfigPath)).at("model"); }

// Expects parse_model_config(j.dump()) to throw a LoadError containing every one of `parts`.
void expect_config_error(const json& j, std::initializer_list<std::string> parts) {
  try {
    ModelConfig c = m2fp::parse_model_config(j.dump());
    ADD_FAILURE() << "configuration accepted, expected an error containing '" << *parts.begin() << "'";
  } catch (const LoadError& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

std::vector<ExpectedTensor> read_tsv(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::vector<ExpectedTensor> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string name, shape, dtype;
    std::getline(ls, name, '\t');
    std::getline(ls, shape, '\t');
    std::getline(ls, dtype, '\t');
    ExpectedTensor t;
    t.name = name;
    std::istringstream ss(shape);
    std::string dim;
    while (std::getline(ss, dim, 'x')) t.shape.push_back(std::stoll(dim));
    if (dtype == "float32") t.dtype = DType::F32;
    else if (dtype == "int64") t.dtype = DType::I64;
    else throw std::runtime_error("unexpected dtype '" + dtype + "' in " + path);
    out.push_back(t);
  }
  return out;
}

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

int count_matching(const std::vector<ExpectedTensor>& ts, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  for (const auto& t : ts) {
    if (t.name.rfind(prefix, 0) == 0 && t.name.size() >= suffix.size() &&
        t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      ++n;
    }
  }
  return n;
}

const ExpectedTensor* find_expected(const std::vector<ExpectedTensor>& ts, const std::string& name) {
  for (const auto& t : ts) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// ---- parsing -------------------------------------------------------------------------------------

TEST(Config, CihpConfiguration) {
  const ModelConfig c = m2fp::parse_model_config(read_text(kCihpConfigPath));  // whole configuration.json
  EXPECT_EQ(c.depth, 101);
  EXPECT_EQ(c.stem_out_channels, 128);
  EXPECT_EQ(c.res2_out_channels, 256);
  EXPECT_EQ(c.stage_blocks(), (std::vector<int>{3, 4, 23, 3}));
  EXPECT_EQ(c.conv_dim, 256);
  EXPECT_EQ(c.enc_layers, 6);
  EXPECT_EQ(c.enc_dim_feedforward, 1024);
  EXPECT_EQ(c.transformer_in_features, (std::vector<std::string>{"res3", "res4", "res5"}));
  EXPECT_EQ(c.num_classes, 21);
  EXPECT_EQ(c.num_queries, 100);
  EXPECT_EQ(c.dec_layers, 9);
  EXPECT_EQ(c.dec_dim_feedforward, 2048);
  EXPECT_EQ(c.num_parsing, 20);
  EXPECT_FALSE(c.single_human);
  EXPECT_TRUE(c.parsing_on);
  EXPECT_FALSE(c.semantic_on);
  EXPECT_FLOAT_EQ(c.parsing_ins_score_thr, 0.5f);
  ASSERT_EQ(c.classes.size(), 21u);
  EXPECT_EQ(c.classes.front(), "Background");
  EXPECT_EQ(c.classes.back(), "Human");
  EXPECT_FALSE(c.synthetic);

  // the "model" section alone parses to the same thing
  const ModelConfig m = m2fp::parse_model_config(cihp_model().dump());
  EXPECT_EQ(m.summary(), c.summary());
  std::printf("  summary: %s\n", c.summary().c_str());
  EXPECT_NE(c.summary().find("multi-person"), std::string::npos);
  EXPECT_NE(c.summary().find("ResNet-101 (3-4-23-3)"), std::string::npos);
  EXPECT_NE(c.summary().find("21 classes (Human = 20)"), std::string::npos);
}

TEST(Config, MissingKeysNameTheKey) {
  struct Case {
    const char* section;
    const char* key;
  };
  const Case required[] = {
      {"backbone", "depth"},          {"backbone", "out_features"},        {"backbone", "norm"},
      {"backbone", "res5_multi_grid"}, {"encoder", "conv_dim"},            {"encoder", "transformer_in_features"},
      {"encoder", "in_features"},     {"encoder", "transformer_dropout"},  {"decoder", "num_queries"},
      {"decoder", "num_classes"},     {"decoder", "enforce_input_project"}};
  for (const Case& c : required) {
    json j = cihp_model();
    j[c.section].erase(c.key);
    expect_config_error(j, {std::string("model.") + c.section + "." + c.key + ": missing"});
  }
  for (const char* section : {"backbone", "encoder", "decoder"}) {
    json j = cihp_model();
    j.erase(section);
    expect_config_error(j, {std::string("model.") + section + ": missing"});
  }
}

TEST(Config, TypesAreChecked) {
  json j = cihp_model();
  j["backbone"]["depth"] = "101";
  expect_config_error(j, {"model.backbone.depth: expected an integer, got string \"101\""});
  j = cihp_model();
  j["decoder"]["num_queries"] = 100.0;
  expect_config_error(j, {"model.decoder.num_queries: expected an integer, got number"});
  j = cihp_model();
  j["decoder"]["pre_norm"] = 0;
  expect_config_error(j, {"model.decoder.pre_norm: expected true or false"});
  j = cihp_model();
  j["encoder"]["transformer_in_features"] = {"res3", 4, "res5"};
  expect_config_error(j, {"model.encoder.transformer_in_features[1]: expected a string"});
  j = cihp_model();
  j["backbone"]["res5_multi_grid"] = {1, "x", 1};
  expect_config_error(j, {"model.backbone.res5_multi_grid[1]: expected an integer"});
  j = cihp_model();
  j["backbone"] = {1, 2};
  expect_config_error(j, {"model.backbone: expected an object, got array"});
  j = cihp_model();
  j["decoder"]["hidden_dim"] = 1e12;
  expect_config_error(j, {"model.decoder.hidden_dim: expected an integer"});
  j = cihp_model();
  j["decoder"]["hidden_dim"] = 9999999999ll;
  expect_config_error(j, {"model.decoder.hidden_dim: integer 9999999999 out of range"});
  j = cihp_model();
  j["classes"] = "Background";
  expect_config_error(j, {"model.classes: expected a list of strings"});
  j = cihp_model();
  j["single_human"] = "false";
  expect_config_error(j, {"model.single_human: expected true or false"});
  j = cihp_model();
  j["type"] = "mask2former";
  expect_config_error(j, {"model.type: expected \"m2fp\""});

  expect_config_error(json::parse("[1, 2]"), {"must be a JSON object"});
  try {
    m2fp::parse_model_config("{\"backbone\": ");
    ADD_FAILURE() << "truncated JSON accepted";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
}

TEST(Config, ValuesAreValidated) {
  auto with = [](const char* section, const char* key, json v) {
    json j = cihp_model();
    if (*section) j[section][key] = v;
    else j[key] = v;
    return j;
  };
  expect_config_error(with("backbone", "depth", 77), {"model.backbone.depth: 77 is not one of 50, 101, 152"});
  expect_config_error(with("backbone", "norm", "GN"), {"model.backbone.norm", "only 'BN'"});
  expect_config_error(with("backbone", "res4_dilation", 3), {"model.backbone.res4_dilation"});
  expect_config_error(with("backbone", "res5_multi_grid", json{1, 2}), {"model.backbone.res5_multi_grid", "3"});
  expect_config_error(with("backbone", "stem_out_channels", 127), {"model.backbone.stem_out_channels"});
  expect_config_error(with("backbone", "out_features", json{"res2", "res3", "res4", "res6"}),
                      {"model.backbone.out_features", "'res6'"});
  expect_config_error(with("encoder", "conv_dim", 100), {"model.encoder.conv_dim", "multiple of 32"});
  expect_config_error(with("encoder", "transformer_nheads", 7), {"model.encoder.transformer_nheads"});
  expect_config_error(with("encoder", "common_stride", 3), {"model.encoder.common_stride", "power of two"});
  expect_config_error(with("encoder", "transformer_in_features", json{"res2", "res3"}),
                      {"model.encoder.transformer_in_features", "needs 3"});
  expect_config_error(with("encoder", "transformer_in_features", json{"res3", "res3", "res5"}),
                      {"listed twice"});
  expect_config_error(with("encoder", "in_features", json{"res3", "res4", "res5", "res9"}), {"'res9'"});
  expect_config_error(with("decoder", "mask_dim", 128), {"model.decoder.mask_dim", "model.encoder.mask_dim"});
  expect_config_error(with("decoder", "nheads", 3), {"model.decoder.nheads"});
  expect_config_error(with("decoder", "num_classes", 20), {"model.classes", "21 names", "num_classes is 20"});
  expect_config_error(with("", "num_parsing", 21), {"model.num_parsing"});
}

TEST(Config, UnknownKeysIgnoredAndUpstreamDefaults) {
  json j = cihp_model();
  j["some_future_key"] = {{"x", 1}};
  j["backbone"]["freeze_at"] = 0;
  j["decoder"]["whatever"] = "y";
  EXPECT_NO_THROW(m2fp::parse_model_config(j.dump()));

  // top-level keys with upstream defaults (M2FP.__init__): parsing_on False, semantic_on True,
  // parsing_ins_score_thr 0.5, sem_seg_postprocess_before_inference True, classes None
  j = cihp_model();
  for (const char* k : {"parsing_on", "semantic_on", "parsing_ins_score_thr", "sem_seg_postprocess_before_inference",
                        "classes", "num_parsing", "pretrained"}) {
    j.erase(k);
  }
  ModelConfig c = m2fp::parse_model_config(j.dump());
  EXPECT_FALSE(c.parsing_on);
  EXPECT_TRUE(c.semantic_on);
  EXPECT_FLOAT_EQ(c.parsing_ins_score_thr, 0.5f);
  EXPECT_TRUE(c.sem_seg_postprocess_before_inference);
  EXPECT_TRUE(c.classes.empty());
  EXPECT_EQ(c.num_parsing, -1);
  // null is Python's None: the same as absent for those keys
  j = cihp_model();
  j["classes"] = nullptr;
  EXPECT_TRUE(m2fp::parse_model_config(j.dump()).classes.empty());

  // single_human defaults to True upstream, which then needs input_single_human
  j = cihp_model();
  j.erase("single_human");
  expect_config_error(j, {"model.input_single_human: missing (required when single_human is true)"});
  j["input_single_human"] = {{"sizes", {{384, 512}}}, {"scale_factor", 0.8}};
  c = m2fp::parse_model_config(j.dump());
  EXPECT_TRUE(c.single_human);
  EXPECT_EQ(c.single_human_size[0], 384);
  EXPECT_EQ(c.single_human_size[1], 512);
  j["input_single_human"] = {{"sizes", {384, 512}}};
  expect_config_error(j, {"model.input_single_human.sizes"});

  // parsing_on needs num_parsing (upstream has None, which cannot work)
  j = cihp_model();
  j.erase("num_parsing");
  expect_config_error(j, {"model.num_parsing: missing (required when parsing_on is true)"});
}

// ---- the tensor table ----------------------------------------------------------------------------

TEST(ExpectedTensors, CihpEqualsUpstreamStateDict) {
  const ModelConfig c = m2fp::parse_model_config(read_text(kCihpConfigPath));
  const std::vector<ExpectedTensor> got = m2fp::expected_tensors(c);
  const std::vector<ExpectedTensor> want = read_tsv(kCihpTsvPath);
  ASSERT_EQ(want.size(), 928u);
  EXPECT_EQ(got.size(), want.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (got[i].name != want[i].name || got[i].shape != want[i].shape || got[i].dtype != want[i].dtype) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "entry " << i << ": got " << got[i].name << " " << m2fp::shape_to_string(got[i].shape) << " "
                      << m2fp::dtype_name(got[i].dtype) << ", upstream has " << want[i].name << " "
                      << m2fp::shape_to_string(want[i].shape) << " " << m2fp::dtype_name(want[i].dtype);
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
  std::printf("  expected_tensors(CIHP): %zu entries, %zu differ from tests/data/cihp_state_dict.tsv\n", got.size(),
              mismatches);
}

TEST(ExpectedTensors, ParameterCountsCihp) {
  const ModelConfig c = m2fp::parse_model_config(read_text(kCihpConfigPath));
  const m2fp::ParamCount p = m2fp::count_parameters(m2fp::expected_tensors(c));
  // independent count straight from the upstream listing
  int64_t bb = 0, pd = 0, td = 0, buf = 0;
  uint64_t bytes = 0;
  for (const ExpectedTensor& t : read_tsv(kCihpTsvPath)) {
    const int64_t n = numel(t.shape);
    bytes += static_cast<uint64_t>(n) * (t.dtype == DType::I64 ? 8 : 4);
    if (t.name.find("running_") != std::string::npos || t.name.find("num_batches_tracked") != std::string::npos) buf += n;
    else if (t.name.rfind("backbone.", 0) == 0) bb += n;
    else if (t.name.rfind("sem_seg_head.pixel_decoder.", 0) == 0) pd += n;
    else td += n;
  }
  std::printf("  parameters: backbone %lld, pixel decoder %lld, transformer decoder %lld, total %lld; "
              "BN buffers %lld; %lld tensors, %llu bytes\n",
              (long long)p.backbone, (long long)p.pixel_decoder, (long long)p.transformer_decoder,
              (long long)p.total(), (long long)p.buffers, (long long)p.tensors, (unsigned long long)p.bytes);
  EXPECT_EQ(p.total(), 63124118);
  EXPECT_EQ(p.backbone, bb);
  EXPECT_EQ(p.pixel_decoder, pd);
  EXPECT_EQ(p.transformer_decoder, td);
  EXPECT_EQ(p.other, 0);
  EXPECT_EQ(p.buffers, buf);
  EXPECT_EQ(p.tensors, 928);
  EXPECT_EQ(p.bytes, bytes);
}

TEST(ExpectedTensors, DepthChangesBlockCounts) {
  struct Case {
    int depth;
    int res3, res4;
  };
  for (Case k : {Case{50, 4, 6}, Case{101, 4, 23}, Case{152, 8, 36}}) {
    json j = cihp_model();
    j["backbone"]["depth"] = k.depth;
    const auto ts = m2fp::expected_tensors(m2fp::parse_model_config(j.dump()));
    EXPECT_EQ(count_matching(ts, "backbone.res2.", ".conv1.weight"), 3) << k.depth;
    EXPECT_EQ(count_matching(ts, "backbone.res3.", ".conv1.weight"), k.res3) << k.depth;
    EXPECT_EQ(count_matching(ts, "backbone.res4.", ".conv1.weight"), k.res4) << k.depth;
    EXPECT_EQ(count_matching(ts, "backbone.res5.", ".conv1.weight"), 3) << k.depth;
    EXPECT_EQ(count_matching(ts, "backbone.", ".shortcut.weight"), 4) << k.depth;  // block 0 of each stage
    const int blocks = 3 + k.res3 + k.res4 + 3;
    EXPECT_EQ(count_matching(ts, "backbone.", ".num_batches_tracked"), 3 + 4 + blocks * 3) << k.depth;
  }
}

TEST(ExpectedTensors, OtherKnobs) {
  json j = cihp_model();
  j["decoder"]["num_classes"] = 20;  // LIP
  j["parsing_on"] = false;
  j["classes"] = std::vector<std::string>(20, "c");
  j["num_queries"] = 50;             // top-level: ignored (unknown key)
  j["decoder"]["num_queries"] = 60;
  j["decoder"]["dec_layers"] = 4;
  j["decoder"]["dim_feedforward"] = 512;
  j["encoder"]["transformer_enc_layers"] = 2;
  j["encoder"]["transformer_dim_feedforward"] = 300;
  j["backbone"]["stem_out_channels"] = 64;
  j["backbone"]["res2_out_channels"] = 128;
  j["backbone"]["width_per_group"] = 32;
  j["backbone"]["num_groups"] = 2;
  const auto ts = m2fp::expected_tensors(m2fp::parse_model_config(j.dump()));
  auto shape = [&](const std::string& n) {
    const ExpectedTensor* t = find_expected(ts, n);
    EXPECT_NE(t, nullptr) << n;
    return t ? m2fp::shape_to_string(t->shape) : std::string("<missing>");
  };
  EXPECT_EQ(shape("sem_seg_head.predictor.class_embed.weight"), "[21, 256]");
  EXPECT_EQ(shape("sem_seg_head.predictor.class_embed.bias"), "[21]");
  EXPECT_EQ(shape("sem_seg_head.predictor.query_feat.weight"), "[60, 256]");
  EXPECT_EQ(shape("sem_seg_head.predictor.transformer_ffn_layers.3.linear1.weight"), "[512, 256]");
  EXPECT_EQ(find_expected(ts, "sem_seg_head.predictor.transformer_ffn_layers.4.linear1.weight"), nullptr);
  EXPECT_EQ(shape("sem_seg_head.pixel_decoder.transformer.encoder.layers.1.linear2.weight"), "[256, 300]");
  EXPECT_EQ(find_expected(ts, "sem_seg_head.pixel_decoder.transformer.encoder.layers.2.norm1.weight"), nullptr);
  EXPECT_EQ(shape("backbone.stem.conv1.weight"), "[32, 3, 3, 3]");
  EXPECT_EQ(shape("backbone.stem.conv3.weight"), "[64, 32, 3, 3]");
  EXPECT_EQ(shape("backbone.res2.0.shortcut.weight"), "[128, 64, 1, 1]");
  EXPECT_EQ(shape("backbone.res2.0.conv2.weight"), "[64, 32, 3, 3]");  // grouped: width 64, 2 groups
  EXPECT_EQ(shape("backbone.res5.2.conv3.weight"), "[1024, 512, 1, 1]");
  EXPECT_EQ(shape("sem_seg_head.pixel_decoder.input_proj.0.0.weight"), "[256, 1024, 1, 1]");  // res5
  EXPECT_EQ(shape("sem_seg_head.pixel_decoder.input_proj.2.0.weight"), "[256, 256, 1, 1]");   // res3
  EXPECT_EQ(shape("sem_seg_head.pixel_decoder.adapter_1.weight"), "[256, 128, 1, 1]");        // res2

  // hidden_dim != conv_dim (or enforce_input_project) adds the decoder's input projections
  j = cihp_model();
  j["decoder"]["enforce_input_project"] = true;
  const auto tp = m2fp::expected_tensors(m2fp::parse_model_config(j.dump()));
  EXPECT_EQ(tp.size(), 928u + 6u);
  size_t level = 0, proj = 0, cls = 0;
  for (size_t i = 0; i < tp.size(); ++i) {
    if (tp[i].name == "sem_seg_head.predictor.level_embed.weight") level = i;
    if (tp[i].name == "sem_seg_head.predictor.input_proj.0.weight") proj = i;
    if (tp[i].name == "sem_seg_head.predictor.class_embed.weight") cls = i;
  }
  EXPECT_TRUE(level < proj && proj < cls) << "state_dict order: level_embed, input_proj, class_embed";
  EXPECT_EQ(m2fp::shape_to_string(tp[proj].shape), "[256, 256, 1, 1]");

  // two FPN levels when the transformer starts at res4 with common_stride 4
  j = cihp_model();
  j["encoder"]["transformer_in_features"] = {"res4", "res5"};
  const auto tf = m2fp::expected_tensors(m2fp::parse_model_config(j.dump()));
  EXPECT_EQ(m2fp::shape_to_string(find_expected(tf, "sem_seg_head.pixel_decoder.transformer.level_embed")->shape),
            "[2, 256]");
  EXPECT_EQ(m2fp::shape_to_string(find_expected(tf, "sem_seg_head.pixel_decoder.adapter_2.weight")->shape),
            "[256, 512, 1, 1]");
  EXPECT_EQ(m2fp::shape_to_string(
                find_expected(tf, "sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.weight")
                    ->shape),
            "[128, 256]");  // 8 heads x 2 levels x 4 points x 2

  // a hand-built invalid config is refused by expected_tensors too
  ModelConfig bad;
  bad.depth = 34;
  EXPECT_THROW(m2fp::expected_tensors(bad), LoadError);
}

// ---- metadata and binding on small files -----------------------------------------------------------

class LoaderFiles : public TempFileTest {};

TEST_F(LoaderFiles, ReadModelConfigFromMetadata) {
  const std::string model = cihp_model().dump();
  ojson h;
  h["__metadata__"] = {{"format", "pt"}, {"m2fp.config", model}, {"m2fp.synthetic", "true"}, {"m2fp.source", "x.pt"}};
  auto f = SafetensorsFile::open(put("meta.safetensors", st_bytes(h.dump(), "")));
  const ModelConfig c = m2fp::read_model_config(*f);
  EXPECT_TRUE(c.synthetic);
  EXPECT_EQ(c.source, "x.pt");
  EXPECT_EQ(c.num_classes, 21);
  EXPECT_NE(c.summary().find("SYNTHETIC"), std::string::npos);

  // absent: a file not written by the converter
  const std::string plain = put("plain.safetensors", small_valid_file());
  auto g = SafetensorsFile::open(plain);
  try {
    m2fp::read_model_config(*g);
    ADD_FAILURE() << "no error without m2fp.config";
  } catch (const LoadError& e) {
    EXPECT_EQ(std::string(e.what()), plain + ": no 'm2fp.config' in the safetensors metadata (not converted by "
                                             "tools/convert_weights.py?)");
  }

  // bad config inside: file, metadata key and config key are all named
  json m = cihp_model();
  m["decoder"].erase("num_queries");
  h["__metadata__"]["m2fp.config"] = m.dump();
  const std::string badcfg = put("badcfg.safetensors", st_bytes(h.dump(), ""));
  try {
    m2fp::read_model_config(*SafetensorsFile::open(badcfg));
    ADD_FAILURE() << "missing key accepted";
  } catch (const LoadError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(badcfg + ": metadata 'm2fp.config': model.decoder.num_queries: missing", 0), 0u)
        << e.what();
  }
  h["__metadata__"]["m2fp.config"] = "{not json";
  const std::string notjson = put("notjson.safetensors", st_bytes(h.dump(), ""));
  EXPECT_THROW(m2fp::read_model_config(*SafetensorsFile::open(notjson)), LoadError);

  // m2fp.synthetic must be "true" or "false"
  h["__metadata__"]["m2fp.config"] = model;
  h["__metadata__"]["m2fp.synthetic"] = "yes";
  const std::string syn = put("syn.safetensors", st_bytes(h.dump(), ""));
  try {
    m2fp::read_model_config(*SafetensorsFile::open(syn));
    ADD_FAILURE() << "m2fp.synthetic 'yes' accepted";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find(syn + ": metadata 'm2fp.synthetic'"), std::string::npos) << e.what();
  }
}

TEST_F(LoaderFiles, WeightBinderChecksNameDtypeShape) {
  std::vector<float> w(256 * 64);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 0.001f;
  ojson h;
  h["proj.weight"] = entry("F32", {256, 64, 1, 1}, 0, 4 * w.size());
  h["counter"] = entry("I64", {}, 4 * w.size(), 4 * w.size() + 8);
  h["extra"] = entry("F32", {2}, 4 * w.size() + 8, 4 * w.size() + 16);
  std::vector<int64_t> cnt{7};
  std::vector<float> ex{1.f, 2.f};
  const std::string path = put("bind.safetensors", st_bytes(h.dump(), raw(w) + raw(cnt) + raw(ex)));
  auto f = SafetensorsFile::open(path);
  WeightBinder b(*f);

  const float* p = b.f32("proj.weight", {256, 64, 1, 1});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[0], 0.f);
  EXPECT_EQ(p[1000], w[1000]);
  EXPECT_EQ(b.tensor("counter", {}, DType::I64).numel(), 1);

  auto expect_msg = [&](auto&& fn, const std::string& want) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected: " << want;
    } catch (const LoadError& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  };
  expect_msg([&] { b.f32("proj.weight", {256, 128, 1, 1}); },
             path + ": tensor 'proj.weight': expected [256, 128, 1, 1], file has [256, 64, 1, 1]");
  expect_msg([&] { b.f32("proj.weight", {256, 64}); },
             path + ": tensor 'proj.weight': expected [256, 64], file has [256, 64, 1, 1]");
  expect_msg([&] { b.f32("counter", {}); }, path + ": tensor 'counter': expected dtype F32, file has I64");
  expect_msg([&] { b.f32("proj.bias", {256}); }, path + ": tensor 'proj.bias' not found (expected [256] F32)");

  EXPECT_EQ(b.bound(), (std::vector<std::string>{"proj.weight", "counter"}));
  EXPECT_EQ(b.unbound(), (std::vector<std::string>{"extra"}));
  b.f32("proj.weight", {256, 64, 1, 1});  // binding twice lists it once
  EXPECT_EQ(b.bound().size(), 2u);
}

TEST_F(LoaderFiles, WeightBinderRefusesMisalignedFloats) {
  // header of 10 bytes (not padded): data starts at file offset 18, so F32 data is misaligned
  ojson h;
  h["w"] = entry("F32", {1}, 0, 4);
  std::string header = h.dump();
  while ((header.size() % 8) != 2) header += ' ';
  const std::string path = put("misaligned.safetensors", st_bytes(header, std::string(4, '\0'), false));
  auto f = SafetensorsFile::open(path);
  WeightBinder b(*f);
  try {
    b.f32("w", {1});
    ADD_FAILURE() << "misaligned F32 accepted";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": tensor 'w': data at offset 0 is not 4-byte aligned"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(LoaderFiles, NetworkBinderBindsTheTableEachEntryOnce) {
  // a CIHP configuration with two of its tensors (one mis-shaped) and one that is not in its table
  const ModelConfig c = m2fp::parse_model_config(read_text(kCihpConfigPath));
  std::vector<float> w(64 * 3 * 3 * 3, 0.5f), g(32, 1.f), x(2, 2.f);
  ojson h;
  h["backbone.stem.conv1.weight"] = entry("F32", {64, 3, 3, 3}, 0, 4 * w.size());
  h["backbone.stem.conv1.norm.weight"] = entry("F32", {32}, 4 * w.size(), 4 * (w.size() + g.size()));
  h["extra"] = entry("F32", {2}, 4 * (w.size() + g.size()), 4 * (w.size() + g.size() + x.size()));
  const std::string path = put("network.safetensors", st_bytes(h.dump(), raw(w) + raw(g) + raw(x)));
  auto f = SafetensorsFile::open(path);
  m2fp::NetworkBinder b(*f, c);

  EXPECT_TRUE(b.has("backbone.stem.conv1.weight"));
  EXPECT_FALSE(b.has("extra"));
  const m2fp::Weight conv = b.f32("backbone.stem.conv1.weight");
  EXPECT_EQ(conv.shape, (std::vector<int64_t>{64, 3, 3, 3}));  // from the table
  EXPECT_EQ(conv.dim(0), 64);
  EXPECT_EQ(conv.numel(), 64 * 27);
  EXPECT_EQ(conv.data[5], 0.5f);
  EXPECT_THROW(b.f32("backbone.stem.conv1.weight"), std::logic_error);  // bound twice

  auto expect_msg = [&](auto&& fn, const std::string& want) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected: " << want;
    } catch (const LoadError& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  };
  expect_msg([&] { b.f32("extra"); },
             path + ": tensor 'extra' is not part of the network for this configuration (model.* in 'm2fp.config')");
  expect_msg([&] { b.f32("backbone.stem.conv1.norm.weight"); },
             path + ": tensor 'backbone.stem.conv1.norm.weight': expected [64], file has [32]");
  expect_msg([&] { b.unused("backbone.stem.conv1.norm.num_batches_tracked"); },
             path + ": tensor 'backbone.stem.conv1.norm.num_batches_tracked' not found (expected [] I64)");
  // a refused tensor does not count as bound: finish() names the first entry not bound
  expect_msg([&] { b.finish(); }, path + ": tensor 'backbone.stem.conv1.norm.weight' belongs to a layer of this "
                                         "configuration that the engine does not build");
  EXPECT_EQ(b.bound(), (std::vector<std::string>{"backbone.stem.conv1.weight"}));
}

// ---- the synthetic checkpoints written by the ctest fixtures --------------------------------------

void check_checkpoint(const std::string& path, bool expect_single_human, int expect_classes) {
  const auto t0 = std::chrono::steady_clock::now();
  auto f = SafetensorsFile::open(path);
  const ModelConfig c = m2fp::read_model_config(*f);
  const auto expected = m2fp::expected_tensors(c);
  WeightBinder b(*f);
  double abs_sum = 0;
  for (const ExpectedTensor& t : expected) {
    if (t.dtype == DType::F32) {
      const float* p = b.f32(t.name, t.shape);
      const int64_t n = numel(t.shape);
      for (int64_t i = 0; i < n; i += 1 + n / 16) {
        ASSERT_TRUE(std::isfinite(p[i])) << t.name << "[" << i << "]";
        abs_sum += std::fabs(p[i]);
      }
    } else {
      b.tensor(t.name, t.shape, t.dtype);
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(b.unbound().empty()) << b.unbound().size() << " tensors in the file are not part of the network, e.g. "
                                   << b.unbound().front();
  EXPECT_EQ(b.bound().size(), expected.size());
  EXPECT_GT(abs_sum, 0.0) << "all sampled weights are zero";
  EXPECT_TRUE(c.synthetic) << "the fixture's checkpoint should be marked m2fp.synthetic = true";
  EXPECT_EQ(c.single_human, expect_single_human);
  EXPECT_EQ(c.num_classes, expect_classes);
  const m2fp::ParamCount p = m2fp::count_parameters(*f);
  std::printf("  %s: %.1f MB, %zu tensors bound in %.1f ms (open + config + bind + sampled reads)\n", path.c_str(),
              f->file_size() / 1e6, expected.size(), ms);
  std::printf("  %s\n", c.summary().c_str());
  std::printf("  parameters: backbone %lld + pixel decoder %lld + transformer decoder %lld = %lld (+ %lld BN buffers)\n",
              (long long)p.backbone, (long long)p.pixel_decoder, (long long)p.transformer_decoder, (long long)p.total(),
              (long long)p.buffers);
  EXPECT_EQ(p.total(), m2fp::count_parameters(expected).total());
  if (!expect_single_human) EXPECT_EQ(p.total(), 63124118);
}

TEST(SyntheticCheckpoint, CihpBindsEveryTensor) {
  const std::string path = testdata_dir() + "/cihp_synth.safetensors";
  if (!std::ifstream(path)) GTEST_SKIP() << path << " missing: run ctest (fixture_synthetic_cihp) to create it";
  check_checkpoint(path, false, 21);
}

TEST(SyntheticCheckpoint, LipBindsEveryTensor) {
  const std::string path = testdata_dir() + "/lip_synth.safetensors";
  if (!std::ifstream(path)) GTEST_SKIP() << path << " missing: run ctest (fixture_synthetic_lip) to create it";
  check_checkpoint(path, true, 20);
}

}  // namespace
