// tests/engine/test_parity.cpp: golden stage-by-stage parity of the engine against the PyTorch
// reference (tests/reference/), on the synthetic checkpoints the CTest fixtures write.
//
// For each case a deterministic photo is written as PNG (lossless, so the engine's stb_image and
// the reference's PIL decode the same pixels), the reference dumps every named intermediate
// (docs/INTERMEDIATES.md) with tests/reference/dump_reference.py, the engine parses the same
// photo collecting the same names through its TensorSink, and every stage is compared:
//   relative L2 error <= 1e-4 per stage; label map agreement >= 99.9%;
//   instances equal as sets (kind, class, query) with scores within 1e-3.
// A labelled table of max |diff| and relative L2 per stage is printed, like llm.c's test_gpt2.
// Reference dumps are cached under $M2FP_TESTDATA/parity/<case>/ref: delete that folder to
// regenerate them after changing the reference.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/io.h"
#include "engine/m2fp.h"
#include "engine/pipeline.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace m2fp;

namespace {

struct Case {
  const char* name;
  const char* model;  // "cihp" | "lip"
  int width, height;  // photo size
  int short_edge;     // multi-person resize (small for test speed)
  uint32_t seed;
};

// Landscape with a resized size that is no multiple of 32; portrait; single-person photos smaller
// than the 384x512 canvas (pad only), larger (shrink + pad), and 383 wide (upstream's
// PadTransform quirk: no padding when pad_left == pad_top == 0).
const Case kCases[] = {
    {"cihp_landscape", "cihp", 333, 222, 200, 1},
    {"cihp_portrait", "cihp", 211, 307, 224, 2},
    {"lip_small", "lip", 300, 200, 0, 3},
    {"lip_large", "lip", 700, 900, 0, 4},
    {"lip_quirk", "lip", 383, 512, 0, 5},
};

std::string testdata() { return M2FP_TESTDATA; }
std::string model_file(const Case& c) { return testdata() + "/" + c.model + "_synth.safetensors"; }
std::string model_dir(const Case& c) { return testdata() + "/" + c.model + "_synth"; }
std::string case_dir(const Case& c) { return testdata() + "/parity/" + c.name; }
std::string image_path(const Case& c) { return case_dir(c) + "/photo.png"; }

// Writes the photo and the reference dump once per build tree.
void prepare(const Case& c) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  fs::create_directories(case_dir(c));
  if (!fs::exists(image_path(c))) write_png_rgb(image_path(c), test::synthetic_photo(c.width, c.height, c.seed));
  const std::string ref = case_dir(c) + "/ref";
  if (fs::exists(ref + "/meta.json")) return;
  std::string cmd = std::string(M2FP_PYTHON) + " " + M2FP_SOURCE_DIR + "/tests/reference/dump_reference.py" +
                    " --model-dir " + model_dir(c) + " --image " + image_path(c) + " --out " + ref +
                    " --threads 2";
  if (c.short_edge) cmd += " --short-edge " + std::to_string(c.short_edge);
  cmd += " > " + case_dir(c) + "/ref.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream log(case_dir(c) + "/ref.log");
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    throw std::runtime_error("reference dump failed: " + cmd + "\n" + text);
  }
}

const M2FP& model_for(const Case& c) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<M2FP>> models;
  std::lock_guard<std::mutex> lock(mu);
  auto& m = models[c.model];
  if (!m) m = M2FP::load(model_file(c));
  return *m;
}

// Engine tensors by name, converted to the reference's layout ([C, H, W] for feature maps).
struct Collected {
  std::map<std::string, test::Npy> t;
};

TensorSink collector(Collected* out) {
  return [out](const std::string& name, const Tensor& x) {
    test::Npy n;
    if (x.layout == Layout::HWC && x.shape.size() == 3) {
      const int64_t H = x.shape[0], W = x.shape[1], C = x.shape[2];
      n.shape = {C, H, W};
      n.data.resize((size_t)x.numel());
      for (int64_t p = 0; p < H * W; ++p)
        for (int64_t ch = 0; ch < C; ++ch) n.data[ch * H * W + p] = x.data()[p * C + ch];
    } else {
      n.shape = x.shape;
      n.data.assign(x.data(), x.data() + x.numel());
    }
    out->t[name] = std::move(n);
  };
}

struct Param {
  Case c;
  kern::Isa isa;
};

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(info.param.c.name) + "_" + kern::isa_name(info.param.isa);
}

std::vector<Param> params() {
  std::vector<Param> v;
  for (kern::Isa isa : {kern::Isa::Scalar, kern::Isa::Avx2, kern::Isa::Avx512})
    if (kern::isa_supported(isa))
      for (const Case& c : kCases) v.push_back({c, isa});
  return v;
}

class SyntheticParity : public ::testing::TestWithParam<Param> {};

TEST_P(SyntheticParity, StagesMatchPyTorchReference) {
  const Param& p = GetParam();
  const Case& c = p.c;
  if (!fs::exists(model_file(c)) || !fs::exists(model_dir(c) + "/pytorch_model.pt"))
    GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c)
                 << "); run through ctest, whose fixtures write it";
  ASSERT_NO_THROW(prepare(c));
  const std::string ref = case_dir(c) + "/ref";
  kern::set_active_isa(p.isa);

  Collected got;
  TensorSink sink = collector(&got);
  ParseOptions opt;
  if (c.short_edge) opt.short_edge = c.short_edge;
  opt.emit_semantic = true;
  std::ifstream f(image_path(c), std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ParseResult r = parse_image_bytes(model_for(c), bytes.data(), bytes.size(), opt, &sink);
  kern::set_active_isa(kern::best_isa());

  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(ref + "/meta.json"));
  std::vector<std::string> names = meta.at("names").get<std::vector<std::string>>();
  std::printf("[%s on %s] photo %dx%d, network input %lldx%lld padded to %lldx%lld\n", c.name,
              kern::isa_name(p.isa), c.width, c.height, (long long)r.geometry.nh, (long long)r.geometry.nw,
              (long long)r.geometry.Hp, (long long)r.geometry.Wp);
  std::printf("  %-24s %-20s %12s %12s %12s\n", "stage", "shape", "max|diff|", "rel L2", "ref rms");
  int compared = 0;
  for (const std::string& name : names) {
    const test::Npy want = test::read_npy(ref + "/" + name + ".npy");
    auto it = got.t.find(name);
    ASSERT_NE(it, got.t.end()) << "the engine produced no '" << name << "'";
    const test::Npy& have = it->second;
    ASSERT_EQ(have.shape, want.shape) << name << ": engine " << test::shape_str(have.shape) << " vs reference "
                                      << test::shape_str(want.shape);
    const test::Diff d = test::compare(have.data.data(), want.data.data(), (int64_t)want.data.size());
    std::printf("  %-24s %-20s %12.3e %12.3e %12.3e\n", name.c_str(), test::shape_str(want.shape).c_str(),
                d.max_abs, d.rel_l2, d.ref_rms);
    ++compared;
    if (name == "labels") {
      int64_t same = 0;
      for (size_t i = 0; i < want.data.size(); ++i) same += have.data[i] == want.data[i];
      const double agree = (double)same / want.data.size();
      std::printf("  %-24s %-20s %12.5f%%\n", "labels agreement", "", 100 * agree);
      EXPECT_GE(agree, 0.999) << "label map agreement";
    } else if (name == "semantic") {
      EXPECT_LE(d.rel_l2, 1e-3) << name;  // thresholded pastes: a few pixels may flip
    } else {
      EXPECT_LE(d.rel_l2, 1e-4) << name << " (max |diff| " << d.max_abs << " at flat index " << d.argmax << ")";
    }
  }
  EXPECT_GE(compared, 20) << "too few stages compared";

  // Instances as sets: (kind, category_id, query) -> score within 1e-3.
  const nlohmann::json inst = nlohmann::json::parse(std::ifstream(ref + "/instances.json"));
  std::map<std::tuple<std::string, int, int>, float> want_set, have_set;
  for (const auto& e : inst)
    want_set[{e.at("kind").get<std::string>(), e.at("category_id").get<int>(), e.at("query").get<int>()}] =
        e.at("score").get<float>();
  for (const Instance& in : r.parsing.instances)
    have_set[{in.kind == Instance::Kind::Human ? "human" : "part", in.category_id, in.query}] = in.score;
  std::printf("  instances: engine %zu, reference %zu\n", have_set.size(), want_set.size());
  for (const auto& [k, s] : want_set) {
    auto it = have_set.find(k);
    if (it == have_set.end()) {
      ADD_FAILURE() << "reference instance missing in the engine: " << std::get<0>(k) << " class " << std::get<1>(k)
                    << " query " << std::get<2>(k) << " score " << s;
      continue;
    }
    EXPECT_NEAR(it->second, s, 1e-3) << std::get<0>(k) << " class " << std::get<1>(k) << " query " << std::get<2>(k);
  }
  for (const auto& [k, s] : have_set)
    if (!want_set.count(k))
      ADD_FAILURE() << "engine instance not in the reference: " << std::get<0>(k) << " class " << std::get<1>(k)
                    << " query " << std::get<2>(k) << " score " << s;
  if (!r.parsing.single_human) {
    EXPECT_GT(want_set.size(), 0u) << "the synthetic model should produce instances (non-trivial test)";
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, SyntheticParity, ::testing::ValuesIn(params()), param_name);

}  // namespace
