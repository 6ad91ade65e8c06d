// model_loader/config.cpp: parsing the "model" section, the expected tensor table, parameter
// counts and the name/shape binder. Facts from upstream modelscope:
//   backbone/deeplab_resnet.py (build_resnet_deeplab_backbone), m2fp/m2fp_encoder.py
//   (MSDeformAttnPixelDecoder), maskdino/maskdino_encoder.py (MSDeformAttnTransformerEncoderOnly),
//   m2fp/m2fp_decoder.py (MultiScaleMaskedTransformerDecoder), m2fp_net.py (M2FP.__init__ defaults).
#include "model_loader/config.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace m2fp {

using json = nlohmann::json;

namespace {

[[noreturn]] void fail_key(const std::string& key, const std::string& what) { throw LoadError(key + ": " + what); }

std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string got(const json& v) { return std::string(v.type_name()) + " " + brief(v); }

// One JSON object of the configuration with its dotted path ("model.backbone"), and typed getters
// whose errors name the full key.
class Section {
 public:
  Section(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  std::string key(const char* k) const { return path_ + "." + k; }
  // null counts as absent (Python None)
  const json* get(const char* k) const {
    auto it = j_.find(k);
    return (it == j_.end() || it->is_null()) ? nullptr : &*it;
  }
  const json& need(const char* k) const {
    const json* v = get(k);
    if (!v) fail_key(key(k), "missing (required, no upstream default)");
    return *v;
  }

  Section obj(const char* k) const {
    const json& v = need(k);
    if (!v.is_object()) fail_key(key(k), "expected an object, got " + got(v));
    return Section(v, key(k));
  }
  int to_int(const char* k, const json& v) const {
    if (!v.is_number_integer()) fail_key(key(k), "expected an integer, got " + got(v));
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int>::max())
                               : (v.get<int64_t>() < std::numeric_limits<int>::min())) {
      fail_key(key(k), "integer " + brief(v) + " out of range");
    }
    return v.get<int>();
  }
  int req_int(const char* k) const { return to_int(k, need(k)); }
  int opt_int(const char* k, int def) const {
    const json* v = get(k);
    return v ? to_int(k, *v) : def;
  }
  bool to_bool(const char* k, const json& v) const {
    if (!v.is_boolean()) fail_key(key(k), "expected true or false, got " + got(v));
    return v.get<bool>();
  }
  bool req_bool(const char* k) const { return to_bool(k, need(k)); }
  bool opt_bool(const char* k, bool def) const {
    const json* v = get(k);
    return v ? to_bool(k, *v) : def;
  }
  double to_num(const char* k, const json& v) const {
    if (!v.is_number()) fail_key(key(k), "expected a number, got " + got(v));
    return v.get<double>();
  }
  double req_num(const char* k) const { return to_num(k, need(k)); }
  double opt_num(const char* k, double def) const {
    const json* v = get(k);
    return v ? to_num(k, *v) : def;
  }
  std::string req_str(const char* k) const {
    const json& v = need(k);
    if (!v.is_string()) fail_key(key(k), "expected a string, got " + got(v));
    return v.get<std::string>();
  }
  std::vector<std::string> str_list(const char* k, const json& v) const {
    if (!v.is_array()) fail_key(key(k), "expected a list of strings, got " + got(v));
    std::vector<std::string> out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) fail_key(key(k) + "[" + std::to_string(i) + "]", "expected a string, got " + got(v[i]));
      out.push_back(v[i].get<std::string>());
    }
    return out;
  }
  std::vector<std::string> req_str_list(const char* k) const { return str_list(k, need(k)); }
  std::vector<int> req_int_list(const char* k) const {
    const json& v = need(k);
    if (!v.is_array()) fail_key(key(k), "expected a list of integers, got " + got(v));
    std::vector<int> out;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string ki = std::string(k) + "[" + std::to_string(i) + "]";
      out.push_back(to_int(ki.c_str(), v[i]));
    }
    return out;
  }

 private:
  const json& j_;
  std::string path_;
};

void require(bool ok, const std::string& key, const std::string& what) {
  if (!ok) fail_key(key, what);
}

const char* const kFeatureNames[] = {"res2", "res3", "res4", "res5"};

int stage_of(const std::string& f) {  // "res2" -> 2 ... "res5" -> 5, else 0
  for (int i = 0; i < 4; ++i) {
    if (f == kFeatureNames[i]) return i + 2;
  }
  return 0;
}

void check_feature_list(const std::vector<std::string>& v, const std::string& key) {
  require(!v.empty(), key, "must name at least one feature");
  std::set<std::string> seen;
  for (const std::string& f : v) {
    require(stage_of(f) != 0, key, "unsupported feature '" + f + "' (expected res2, res3, res4 or res5)");
    require(seen.insert(f).second, key, "feature '" + f + "' listed twice");
  }
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ---- the geometry both validation and the tensor table need ------------------------------------

struct Feature {
  std::string name;
  int channels = 0;
  int stride = 0;
};

struct Geometry {
  std::vector<int> blocks;                // per built stage, res2 first
  std::vector<Feature> stage_out;         // res2.. of the built stages
  std::vector<Feature> pixel_features;    // encoder in_features, sorted by stride (res2 first)
  std::vector<Feature> transformer_features;  // transformer_in_features, sorted by stride
  int num_fpn_levels = 0;                 // adapter_i / layer_i pairs
};

std::vector<int> blocks_for_depth(int depth) {
  switch (depth) {
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default: return {};
  }
}

int ilog2(int v) {
  int r = 0;
  while (v > 1) {
    v >>= 1;
    ++r;
  }
  return r;
}

Geometry geometry(const ModelConfig& c) {
  Geometry g;
  const std::vector<int> all_blocks = blocks_for_depth(c.depth);
  if (all_blocks.empty()) return g;  // invalid depth: validate() reports it
  int max_stage = 2;
  for (const std::string& f : c.out_features) max_stage = std::max(max_stage, stage_of(f));
  int stride = 4;  // after the stem (conv s2 + max-pool s2)
  int channels = c.res2_out_channels;
  for (int s = 2; s <= max_stage; ++s) {
    const int dilation = s == 4 ? c.res4_dilation : s == 5 ? c.res5_dilation : 1;
    const int first_stride = (s == 2 || dilation > 1) ? 1 : 2;
    stride *= first_stride;
    g.blocks.push_back(all_blocks[s - 2]);
    g.stage_out.push_back(Feature{kFeatureNames[s - 2], channels, stride});
    channels *= 2;
  }
  auto shape_of = [&](const std::string& f) { return g.stage_out[stage_of(f) - 2]; };
  // upstream: {k: v for k, v in backbone.output_shape().items() if k in in_features}, i.e. backbone
  // out_features order, then a stable sort by stride
  for (const std::string& f : c.out_features) {
    if (contains(c.enc_in_features, f)) g.pixel_features.push_back(shape_of(f));
  }
  std::vector<Feature> tf;
  for (const Feature& f : g.pixel_features) {
    if (contains(c.transformer_in_features, f.name)) tf.push_back(f);
  }
  auto by_stride = [](const Feature& a, const Feature& b) { return a.stride < b.stride; };
  std::stable_sort(g.pixel_features.begin(), g.pixel_features.end(), by_stride);
  std::stable_sort(tf.begin(), tf.end(), by_stride);
  g.transformer_features = tf;
  if (!tf.empty() && c.common_stride > 0) {
    const int levels = ilog2(tf.front().stride) - ilog2(c.common_stride);
    g.num_fpn_levels = std::min<int>(std::max(levels, 0), static_cast<int>(g.pixel_features.size()));
  }
  return g;
}

void validate(const ModelConfig& c) {
  // Upper bounds: far above any M2FP model, low enough that everything derived from the values
  // (tensor tables, element counts in int64, layer cost tables) stays small and exact. A hostile
  // file with transformer_enc_layers 10^9 made expected_tensors() allocate without bound and a
  // hidden_dim of 2 * 10^9 overflowed count_parameters() (found by fuzz/fuzz_config). Checked
  // first: the checks below compute with these values.
  const int kMaxWidth = 65536, kMaxLayers = 1000, kMaxCount = 100000;
  const std::pair<const char*, int64_t> widths[] = {
      {"model.backbone.stem_out_channels", c.stem_out_channels},
      {"model.backbone.res2_out_channels", c.res2_out_channels},
      {"model.backbone.width_per_group * num_groups", (int64_t)c.width_per_group * c.num_groups},
      {"model.encoder.conv_dim", c.conv_dim},
      {"model.encoder.mask_dim", c.mask_dim},
      {"model.encoder.transformer_dim_feedforward", c.enc_dim_feedforward},
      {"model.decoder.hidden_dim", c.hidden_dim},
      {"model.decoder.dim_feedforward", c.dec_dim_feedforward},
      {"model.input_single_human.sizes", std::max(c.single_human_size[0], c.single_human_size[1])}};
  for (const auto& [key, v] : widths) require(v <= kMaxWidth, key, "must be at most " + std::to_string(kMaxWidth));
  require(c.num_groups <= kMaxWidth, "model.backbone.num_groups", "must be at most " + std::to_string(kMaxWidth));
  for (int m : c.res5_multi_grid) require(m <= 64, "model.backbone.res5_multi_grid", "entries must be at most 64");
  require(c.enc_layers <= kMaxLayers, "model.encoder.transformer_enc_layers",
          "must be at most " + std::to_string(kMaxLayers));
  require(c.dec_layers <= kMaxLayers, "model.decoder.dec_layers", "must be at most " + std::to_string(kMaxLayers));
  require(c.num_queries <= kMaxCount, "model.decoder.num_queries", "must be at most " + std::to_string(kMaxCount));
  require(c.num_classes <= kMaxCount, "model.decoder.num_classes", "must be at most " + std::to_string(kMaxCount));
  // backbone
  require(!blocks_for_depth(c.depth).empty(), "model.backbone.depth",
          std::to_string(c.depth) + " is not one of 50, 101, 152");
  require(c.norm == "BN", "model.backbone.norm", "'" + c.norm + "' is not supported (only 'BN')");
  require(c.num_groups >= 1, "model.backbone.num_groups", "must be >= 1");
  require(c.width_per_group >= 1, "model.backbone.width_per_group", "must be >= 1");
  require(c.stem_out_channels >= 2 && c.stem_out_channels % 2 == 0, "model.backbone.stem_out_channels",
          "must be a positive even number (the stem's first convs have half of it)");
  require(c.res2_out_channels >= 1, "model.backbone.res2_out_channels", "must be >= 1");
  require(c.res4_dilation == 1 || c.res4_dilation == 2, "model.backbone.res4_dilation", "must be 1 or 2");
  require(c.res5_dilation == 1 || c.res5_dilation == 2 || c.res5_dilation == 4, "model.backbone.res5_dilation",
          "must be 1, 2 or 4");
  require(c.res4_dilation != 2 || c.res5_dilation == 4, "model.backbone.res5_dilation",
          "must be 4 when res4_dilation is 2");
  check_feature_list(c.out_features, "model.backbone.out_features");
  const std::vector<int> blocks = blocks_for_depth(c.depth);
  const bool has_res5 = contains(c.out_features, "res5");
  if (has_res5) {
    require(static_cast<int>(c.res5_multi_grid.size()) == blocks[3], "model.backbone.res5_multi_grid",
            "needs one entry per res5 block (" + std::to_string(blocks[3]) + "), got " +
                std::to_string(c.res5_multi_grid.size()));
    for (int m : c.res5_multi_grid) require(m >= 1, "model.backbone.res5_multi_grid", "entries must be >= 1");
  }
  // pixel decoder
  check_feature_list(c.enc_in_features, "model.encoder.in_features");
  for (const std::string& f : c.enc_in_features) {
    require(contains(c.out_features, f), "model.encoder.in_features",
            "'" + f + "' is not among model.backbone.out_features");
  }
  check_feature_list(c.transformer_in_features, "model.encoder.transformer_in_features");
  for (const std::string& f : c.transformer_in_features) {
    require(contains(c.enc_in_features, f), "model.encoder.transformer_in_features",
            "'" + f + "' is not among model.encoder.in_features");
  }
  require(c.conv_dim >= 32 && c.conv_dim % 32 == 0, "model.encoder.conv_dim",
          "must be a positive multiple of 32 (GroupNorm with 32 groups)");
  require(c.mask_dim >= 1, "model.encoder.mask_dim", "must be >= 1");
  require(c.enc_nheads >= 1 && c.conv_dim % c.enc_nheads == 0, "model.encoder.transformer_nheads",
          "must be >= 1 and divide conv_dim " + std::to_string(c.conv_dim));
  require(c.enc_dim_feedforward >= 1, "model.encoder.transformer_dim_feedforward", "must be >= 1");
  require(c.enc_layers >= 0, "model.encoder.transformer_enc_layers", "must be >= 0");
  require(c.common_stride >= 1 && (c.common_stride & (c.common_stride - 1)) == 0, "model.encoder.common_stride",
          "must be a power of two");
  const Geometry g = geometry(c);
  require(c.common_stride <= g.transformer_features.front().stride, "model.encoder.common_stride",
          "must not exceed the finest transformer feature stride " +
              std::to_string(g.transformer_features.front().stride));
  // the transformer decoder always reads 3 levels: transformer levels first, then FPN levels
  const size_t levels = g.transformer_features.size() + static_cast<size_t>(g.num_fpn_levels);
  require(levels >= 3, "model.encoder.transformer_in_features",
          "the pixel decoder yields " + std::to_string(levels) +
              " feature levels, the transformer decoder needs 3");
  // transformer decoder
  require(c.num_classes >= 1, "model.decoder.num_classes", "must be >= 1");
  require(c.hidden_dim >= 2 && c.hidden_dim % 2 == 0, "model.decoder.hidden_dim", "must be a positive even number");
  require(c.num_queries >= 1, "model.decoder.num_queries", "must be >= 1");
  require(c.dec_nheads >= 1 && c.hidden_dim % c.dec_nheads == 0, "model.decoder.nheads",
          "must be >= 1 and divide hidden_dim " + std::to_string(c.hidden_dim));
  require(c.dec_dim_feedforward >= 1, "model.decoder.dim_feedforward", "must be >= 1");
  require(c.dec_layers >= 0, "model.decoder.dec_layers", "must be >= 0");
  require(c.dec_mask_dim == c.mask_dim, "model.decoder.mask_dim",
          std::to_string(c.dec_mask_dim) + " differs from model.encoder.mask_dim " + std::to_string(c.mask_dim) +
              " (masks are mask_embed . mask_features)");
  // task
  require(c.classes.empty() || static_cast<int>(c.classes.size()) == c.num_classes, "model.classes",
          "has " + std::to_string(c.classes.size()) + " names, model.decoder.num_classes is " +
              std::to_string(c.num_classes));
  if (c.parsing_on) {
    require(c.num_parsing >= 1 && c.num_parsing < c.num_classes, "model.num_parsing",
            "must be a class index in [1, num_classes) when parsing_on is true");
  }
  require(c.single_human_size[0] >= 1 && c.single_human_size[1] >= 1, "model.input_single_human.sizes",
          "must be positive");
}

}  // namespace

// ---- ModelConfig --------------------------------------------------------------------------------

std::vector<int> ModelConfig::stage_blocks() const { return geometry(*this).blocks; }

std::string ModelConfig::summary() const {
  std::ostringstream s;
  s << "M2FP " << (single_human ? "single-person" : "multi-person") << " parsing";
  if (single_human) s << " (input " << single_human_size[0] << "x" << single_human_size[1] << ")";
  s << ", ResNet-" << depth << " (";
  const std::vector<int> b = stage_blocks();
  for (size_t i = 0; i < b.size(); ++i) s << (i ? "-" : "") << b[i];
  s << "), " << num_classes << " classes";
  if (parsing_on) s << " (Human = " << num_parsing << ")";
  s << ", " << num_queries << " queries, pixel decoder " << enc_layers << " x " << conv_dim << " (" << enc_nheads
    << " heads, FFN " << enc_dim_feedforward << "), transformer decoder " << dec_layers << " x " << hidden_dim << " ("
    << dec_nheads << " heads, FFN " << dec_dim_feedforward << ")";
  if (synthetic) s << ", SYNTHETIC random weights";
  if (!source.empty()) s << ", from " << source;
  return s.str();
}

ModelConfig parse_model_config(const std::string& json_text) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw LoadError(std::string("model configuration is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) throw LoadError(std::string("model configuration must be a JSON object, got ") + got(root));
  // a whole configuration.json: use its "model" section
  if (!root.contains("backbone") && root.contains("model")) {
    json m = root["model"];
    if (!m.is_object()) throw LoadError("model: expected an object, got " + got(m));
    root = std::move(m);
  }
  Section model(root, "model");
  ModelConfig c;
  if (const json* t = model.get("type")) {
    if (!t->is_string() || t->get<std::string>() != "m2fp") fail_key("model.type", "expected \"m2fp\", got " + got(*t));
  }

  const Section bb = model.obj("backbone");
  c.out_features = bb.req_str_list("out_features");
  c.depth = bb.req_int("depth");
  c.num_groups = bb.req_int("num_groups");
  c.width_per_group = bb.req_int("width_per_group");
  c.norm = bb.req_str("norm");
  c.stem_out_channels = bb.req_int("stem_out_channels");
  c.res2_out_channels = bb.req_int("res2_out_channels");
  c.stride_in_1x1 = bb.req_bool("stride_in_1x1");
  c.res4_dilation = bb.req_int("res4_dilation");
  c.res5_dilation = bb.req_int("res5_dilation");
  c.res5_multi_grid = bb.req_int_list("res5_multi_grid");

  const Section enc = model.obj("encoder");
  c.enc_in_features = enc.req_str_list("in_features");
  c.transformer_dropout = static_cast<float>(enc.req_num("transformer_dropout"));
  c.enc_nheads = enc.req_int("transformer_nheads");
  c.enc_dim_feedforward = enc.req_int("transformer_dim_feedforward");
  c.enc_layers = enc.req_int("transformer_enc_layers");
  c.conv_dim = enc.req_int("conv_dim");
  c.mask_dim = enc.req_int("mask_dim");
  c.transformer_in_features = enc.req_str_list("transformer_in_features");
  c.common_stride = enc.req_int("common_stride");

  const Section dec = model.obj("decoder");
  c.num_classes = dec.req_int("num_classes");
  c.hidden_dim = dec.req_int("hidden_dim");
  c.num_queries = dec.req_int("num_queries");
  c.dec_nheads = dec.req_int("nheads");
  c.dec_dim_feedforward = dec.req_int("dim_feedforward");
  c.dec_layers = dec.req_int("dec_layers");
  c.pre_norm = dec.req_bool("pre_norm");
  c.dec_mask_dim = dec.req_int("mask_dim");
  c.enforce_input_project = dec.req_bool("enforce_input_project");
  if (!dec.opt_bool("mask_classification", true)) {
    fail_key("model.decoder.mask_classification", "false is not supported upstream");
  }

  // top level, upstream defaults from M2FP.__init__
  if (const json* v = model.get("classes")) c.classes = model.str_list("classes", *v);
  else c.classes.clear();
  c.single_human = model.opt_bool("single_human", true);
  c.parsing_ins_score_thr = static_cast<float>(model.opt_num("parsing_ins_score_thr", 0.5));
  c.parsing_on = model.opt_bool("parsing_on", false);
  c.semantic_on = model.opt_bool("semantic_on", true);
  c.sem_seg_postprocess_before_inference = model.opt_bool("sem_seg_postprocess_before_inference", true);
  if (!c.semantic_on && !(c.sem_seg_postprocess_before_inference || c.parsing_on)) {
    fail_key("model.sem_seg_postprocess_before_inference", "must be true when semantic_on is false (upstream asserts it)");
  }
  if (const json* v = model.get("num_parsing")) {
    c.num_parsing = model.to_int("num_parsing", *v);
  } else if (c.parsing_on) {
    fail_key("model.num_parsing", "missing (required when parsing_on is true)");
  } else {
    c.num_parsing = -1;  // upstream None: no Human class
  }
  if (const json* v = model.get("input_single_human")) {
    if (!v->is_object()) fail_key("model.input_single_human", "expected an object, got " + got(*v));
    Section ish(*v, "model.input_single_human");
    const json& sizes = ish.need("sizes");
    if (!sizes.is_array() || sizes.empty() || !sizes[0].is_array() || sizes[0].size() != 2) {
      fail_key("model.input_single_human.sizes", "expected [[width, height], ...], got " + got(sizes));
    }
    for (int i = 0; i < 2; ++i) {
      const json& v = sizes[0][i];
      if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 || v.get<uint64_t>() > 65536) {
        fail_key("model.input_single_human.sizes", "expected [[width, height], ...] with sizes in [1, 65536], got " +
                                                       got(sizes));
      }
      c.single_human_size[i] = v.get<int>();
    }
  } else if (c.single_human) {
    fail_key("model.input_single_human", "missing (required when single_human is true)");
  }

  validate(c);
  return c;
}

ModelConfig read_model_config(const SafetensorsFile& file) {
  const auto& md = file.metadata();
  auto it = md.find("m2fp.config");
  if (it == md.end()) {
    throw LoadError(file.path() +
                    ": no 'm2fp.config' in the safetensors metadata (not converted by tools/convert_weights.py?)");
  }
  ModelConfig c;
  try {
    c = parse_model_config(it->second);
  } catch (const LoadError& e) {
    throw LoadError(file.path() + ": metadata 'm2fp.config': " + e.what());
  }
  auto syn = md.find("m2fp.synthetic");
  if (syn != md.end()) {
    if (syn->second == "true") c.synthetic = true;
    else if (syn->second == "false") c.synthetic = false;
    else throw LoadError(file.path() + ": metadata 'm2fp.synthetic': expected \"true\" or \"false\", got \"" +
                         syn->second.substr(0, 40) + "\"");
  }
  auto src = md.find("m2fp.source");
  if (src != md.end()) c.source = src->second;
  return c;
}

// ---- the tensor table -----------------------------------------------------------------------------

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg) {
  validate(cfg);
  const Geometry g = geometry(cfg);
  std::vector<ExpectedTensor> t;
  auto add = [&t](const std::string& name, std::vector<int64_t> shape, DType dt = DType::F32) {
    t.push_back(ExpectedTensor{name, std::move(shape), dt});
  };
  // Conv2d without bias + BatchNorm (detectron2-style Conv2d with .norm)
  auto conv_bn = [&](const std::string& p, int64_t out, int64_t in_per_group, int64_t k) {
    add(p + ".weight", {out, in_per_group, k, k});
    add(p + ".norm.weight", {out});
    add(p + ".norm.bias", {out});
    add(p + ".norm.running_mean", {out});
    add(p + ".norm.running_var", {out});
    add(p + ".norm.num_batches_tracked", {}, DType::I64);
  };
  auto linear = [&](const std::string& p, int64_t out, int64_t in) {
    add(p + ".weight", {out, in});
    add(p + ".bias", {out});
  };
  auto layer_norm = [&](const std::string& p, int64_t d) {
    add(p + ".weight", {d});
    add(p + ".bias", {d});
  };

  // ---- backbone: DeepLab stem (3 convs) + bottleneck stages res2..
  const int64_t stem = cfg.stem_out_channels;
  conv_bn("backbone.stem.conv1", stem / 2, 3, 3);
  conv_bn("backbone.stem.conv2", stem / 2, stem / 2, 3);
  conv_bn("backbone.stem.conv3", stem, stem / 2, 3);
  int64_t in = stem, out = cfg.res2_out_channels, width = int64_t(cfg.num_groups) * cfg.width_per_group;
  for (size_t s = 0; s < g.blocks.size(); ++s) {
    for (int b = 0; b < g.blocks[s]; ++b) {
      const std::string p = "backbone.res" + std::to_string(s + 2) + "." + std::to_string(b);
      const int64_t block_in = b == 0 ? in : out;
      if (block_in != out) conv_bn(p + ".shortcut", out, block_in, 1);  // projection shortcut
      conv_bn(p + ".conv1", width, block_in, 1);
      conv_bn(p + ".conv2", width, width / cfg.num_groups, 3);
      conv_bn(p + ".conv3", out, width, 1);
    }
    in = out;
    out *= 2;
    width *= 2;
  }

  // ---- pixel decoder
  const std::string pd = "sem_seg_head.pixel_decoder.";
  const int64_t d = cfg.conv_dim;
  const int64_t levels = static_cast<int64_t>(g.transformer_features.size());
  for (int64_t i = 0; i < levels; ++i) {  // low resolution first: res5, res4, res3
    const Feature& f = g.transformer_features[levels - 1 - i];
    const std::string p = pd + "input_proj." + std::to_string(i);
    add(p + ".0.weight", {d, f.channels, 1, 1});
    add(p + ".0.bias", {d});
    add(p + ".1.weight", {d});  // GroupNorm(32)
    add(p + ".1.bias", {d});
  }
  add(pd + "transformer.level_embed", {levels, d});
  const int64_t hlp = int64_t(cfg.enc_nheads) * levels * cfg.enc_n_points;
  for (int l = 0; l < cfg.enc_layers; ++l) {
    const std::string p = pd + "transformer.encoder.layers." + std::to_string(l);
    linear(p + ".self_attn.sampling_offsets", hlp * 2, d);
    linear(p + ".self_attn.attention_weights", hlp, d);
    linear(p + ".self_attn.value_proj", d, d);
    linear(p + ".self_attn.output_proj", d, d);
    layer_norm(p + ".norm1", d);
    linear(p + ".linear1", cfg.enc_dim_feedforward, d);
    linear(p + ".linear2", d, cfg.enc_dim_feedforward);
    layer_norm(p + ".norm2", d);
  }
  add(pd + "mask_features.weight", {cfg.mask_dim, d, 1, 1});
  add(pd + "mask_features.bias", {cfg.mask_dim});
  for (int i = 0; i < g.num_fpn_levels; ++i) {
    const std::string n = std::to_string(i + 1);
    add(pd + "adapter_" + n + ".weight", {d, g.pixel_features[i].channels, 1, 1});
    add(pd + "adapter_" + n + ".norm.weight", {d});  // GroupNorm(32)
    add(pd + "adapter_" + n + ".norm.bias", {d});
    add(pd + "layer_" + n + ".weight", {d, d, 3, 3});
    add(pd + "layer_" + n + ".norm.weight", {d});
    add(pd + "layer_" + n + ".norm.bias", {d});
  }

  // ---- transformer decoder
  const std::string pr = "sem_seg_head.predictor.";
  const int64_t h = cfg.hidden_dim;
  for (int l = 0; l < cfg.dec_layers; ++l) {
    const std::string p = pr + "transformer_self_attention_layers." + std::to_string(l);
    add(p + ".self_attn.in_proj_weight", {3 * h, h});
    add(p + ".self_attn.in_proj_bias", {3 * h});
    linear(p + ".self_attn.out_proj", h, h);
    layer_norm(p + ".norm", h);
  }
  for (int l = 0; l < cfg.dec_layers; ++l) {
    const std::string p = pr + "transformer_cross_attention_layers." + std::to_string(l);
    add(p + ".multihead_attn.in_proj_weight", {3 * h, h});
    add(p + ".multihead_attn.in_proj_bias", {3 * h});
    linear(p + ".multihead_attn.out_proj", h, h);
    layer_norm(p + ".norm", h);
  }
  for (int l = 0; l < cfg.dec_layers; ++l) {
    const std::string p = pr + "transformer_ffn_layers." + std::to_string(l);
    linear(p + ".linear1", cfg.dec_dim_feedforward, h);
    linear(p + ".linear2", h, cfg.dec_dim_feedforward);
    layer_norm(p + ".norm", h);
  }
  layer_norm(pr + "decoder_norm", h);
  add(pr + "query_feat.weight", {cfg.num_queries, h});
  add(pr + "query_embed.weight", {cfg.num_queries, h});
  add(pr + "level_embed.weight", {kDecoderFeatureLevels, h});
  if (d != h || cfg.enforce_input_project) {  // 1x1 conv with bias per level
    for (int i = 0; i < kDecoderFeatureLevels; ++i) {
      add(pr + "input_proj." + std::to_string(i) + ".weight", {h, d, 1, 1});
      add(pr + "input_proj." + std::to_string(i) + ".bias", {h});
    }
  }
  linear(pr + "class_embed", cfg.num_classes + 1, h);
  linear(pr + "mask_embed.layers.0", h, h);
  linear(pr + "mask_embed.layers.1", h, h);
  linear(pr + "mask_embed.layers.2", cfg.dec_mask_dim, h);
  return t;
}

// ---- parameter counts ---------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}
bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

void count_one(ParamCount& c, const std::string& name, int64_t numel, uint64_t bytes) {
  c.tensors += 1;
  c.bytes += bytes;
  if (ends_with(name, ".running_mean") || ends_with(name, ".running_var") || ends_with(name, ".num_batches_tracked")) {
    c.buffers += numel;
  } else if (starts_with(name, "backbone.")) {
    c.backbone += numel;
  } else if (starts_with(name, "sem_seg_head.pixel_decoder.")) {
    c.pixel_decoder += numel;
  } else if (starts_with(name, "sem_seg_head.predictor.")) {
    c.transformer_decoder += numel;
  } else {
    c.other += numel;
  }
}

}  // namespace

ParamCount count_parameters(const SafetensorsFile& file) {
  ParamCount c;
  for (const TensorView& t : file.tensors()) count_one(c, t.name, t.numel(), t.nbytes());
  return c;
}

ParamCount count_parameters(const std::vector<ExpectedTensor>& tensors) {
  ParamCount c;
  for (const ExpectedTensor& t : tensors) {
    int64_t n = 1;
    for (int64_t v : t.shape) n *= v;
    count_one(c, t.name, n, static_cast<uint64_t>(n) * dtype_size(t.dtype));
  }
  return c;
}

// ---- WeightBinder ----------------------------------------------------------------------------------

const TensorView& WeightBinder::tensor(const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
  const TensorView* t = file_.find(name);
  if (!t) {
    throw LoadError(file_.path() + ": tensor '" + name + "' not found (expected " + shape_to_string(shape) + " " +
                    dtype_name(dtype) + ")");
  }
  if (t->dtype != dtype) {
    throw LoadError(file_.path() + ": tensor '" + name + "': expected dtype " + dtype_name(dtype) + ", file has " +
                    dtype_name(t->dtype));
  }
  if (t->shape != shape) {
    throw LoadError(file_.path() + ": tensor '" + name + "': expected " + shape_to_string(shape) + ", file has " +
                    t->shape_str());
  }
  if (std::find(bound_.begin(), bound_.end(), name) == bound_.end()) bound_.push_back(name);
  return *t;
}

const float* WeightBinder::f32(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView& t = tensor(name, shape, DType::F32);
  if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0) {
    throw LoadError(file_.path() + ": tensor '" + name + "': data at offset " + std::to_string(t.begin) +
                    " is not 4-byte aligned (header length " + std::to_string(file_.header_size()) +
                    "; tools/convert_weights.py pads the header to a multiple of 8)");
  }
  return reinterpret_cast<const float*>(t.data);
}

std::vector<std::string> WeightBinder::unbound() const {
  std::set<std::string> b(bound_.begin(), bound_.end());
  std::vector<std::string> out;
  for (const TensorView& t : file_.tensors()) {
    if (!b.count(t.name)) out.push_back(t.name);
  }
  return out;
}

// ---- NetworkBinder ---------------------------------------------------------------------------------

NetworkBinder::NetworkBinder(const SafetensorsFile& file, const ModelConfig& cfg)
    : binder_(file), table_(expected_tensors(cfg)), bound_(table_.size(), false) {
  for (size_t i = 0; i < table_.size(); ++i) index_.emplace(table_[i].name, i);
}

bool NetworkBinder::has(const std::string& name) const { return index_.count(name) != 0; }

size_t NetworkBinder::row(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    throw LoadError(binder_.file().path() + ": tensor '" + name +
                    "' is not part of the network for this configuration (model.* in 'm2fp.config')");
  }
  if (bound_[it->second]) throw std::logic_error("NetworkBinder: tensor '" + name + "' bound twice");
  return it->second;
}

Weight NetworkBinder::f32(const std::string& name) {
  const size_t i = row(name);
  Weight w{binder_.f32(name, table_[i].shape), table_[i].shape};
  bound_[i] = true;
  return w;
}

void NetworkBinder::unused(const std::string& name) {
  const size_t i = row(name);
  binder_.tensor(name, table_[i].shape, table_[i].dtype);
  bound_[i] = true;
}

void NetworkBinder::finish() const {
  for (size_t i = 0; i < table_.size(); ++i) {
    if (!bound_[i]) {
      throw LoadError(binder_.file().path() + ": tensor '" + table_[i].name +
                      "' belongs to a layer of this configuration that the engine does not build");
    }
  }
}

}  // namespace m2fp
