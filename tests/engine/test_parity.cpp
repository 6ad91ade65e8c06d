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
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "engine/io.h"
#include "engine/m2fp.h"
#include "engine/pipeline.h"
#include "engine/postprocess.h"
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

// Readable names in CTest's listing instead of "40-byte object <...>".
void PrintTo(const Param& p, std::ostream* os) { *os << p.c.name << " on " << kern::isa_name(p.isa); }
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

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

// The reference's attention masks, recomputed from its dumped mask logits exactly as the model
// does (bilinear resize to the level's size, sigmoid < 0.5), for each decoder layer.
struct ReferenceMasks {
  std::string ref_dir;
  std::map<int, std::vector<uint8_t>> bits;  // layer -> [Q, Ht*Wt]
  const std::vector<uint8_t>& for_layer(int layer, int64_t Ht, int64_t Wt) {
    auto& b = bits[layer];
    if (b.empty()) {
      const test::Npy m = test::read_npy(ref_dir + "/decoder.masks" + std::to_string(layer) + ".npy");
      const int64_t Q = m.shape[0], H4 = m.shape[1], W4 = m.shape[2];
      std::vector<float> small((size_t)(Q * Ht * Wt));
      kern::resize_bilinear_planes(m.data.data(), Q, H4, W4, small.data(), Ht, Wt);
      b.resize(small.size());
      for (size_t i = 0; i < small.size(); ++i) b[i] = 1.f / (1.f + std::exp(-small[i])) < 0.5f;
    }
    return b;
  }
};

struct EngineRun {
  Collected got;
  ParseResult result;
  int64_t mask_bits = 0, mask_flips = 0;  // attention-mask bits where engine and reference differ
};

EngineRun run_engine(const Case& c, kern::Isa isa, ReferenceMasks& rm, bool teacher_forced) {
  EngineRun run;
  TensorSink sink = collector(&run.got);
  ForwardHooks hooks;
  hooks.attention_mask = [&](int layer, int64_t Ht, int64_t Wt, std::vector<uint8_t>& mask) {
    const std::vector<uint8_t>& want = rm.for_layer(layer, Ht, Wt);
    EXPECT_EQ(mask.size(), want.size());
    for (size_t i = 0; i < mask.size() && i < want.size(); ++i) run.mask_flips += mask[i] != want[i];
    run.mask_bits += (int64_t)mask.size();
    if (teacher_forced) mask = want;
  };
  ParseOptions opt;
  if (c.short_edge) opt.short_edge = c.short_edge;
  opt.emit_semantic = true;
  opt.hooks = &hooks;
  const std::vector<uint8_t> bytes = testutil::read_bytes(image_path(c));
  kern::set_active_isa(isa);
  run.result = parse_image_bytes(model_for(c), bytes.data(), bytes.size(), opt, &sink);
  kern::set_active_isa(kern::best_isa());
  return run;
}

// Share of equal elements (label maps as engine/reference dumps or as Parsing::labels).
template <class V>
double agreement(const V& have, const V& want) {
  int64_t same = 0;
  for (size_t i = 0; i < want.size(); ++i) same += have[i] == want[i];
  return (double)same / std::max<size_t>(1, want.size());
}
double label_agreement(const test::Npy& have, const test::Npy& want) { return agreement(have.data, want.data); }

// A dump read back as an engine tensor (Layout::Plain, same shape).
Tensor to_tensor(const test::Npy& n) {
  Tensor t = Tensor::empty(n.shape);
  std::copy(n.data.begin(), n.data.end(), t.data());
  return t;
}

class SyntheticParity : public ::testing::TestWithParam<Param> {};

// Stage by stage, with the decoder's attention masks taken from the reference (teacher forcing):
// every named stage within relative L2 1e-4, labels >= 99.9%, instances equal as sets.
// The CIHP parity photos and their reference dumps, written once per build tree: the CTest fixture
// fixture_parity_cihp runs this alone, for tests that read them without running the engine's parity
// tests first (tests/cli/test_outputs.py).
TEST(ParityData, CihpPhotosAndReferenceDumps) {
  for (const Case& c : kCases) {
    if (std::string(c.model) != "cihp") continue;
    ASSERT_TRUE(fs::exists(model_file(c))) << model_file(c) << " missing (ctest fixture_synthetic_cihp)";
    prepare(c);
    EXPECT_TRUE(fs::exists(case_dir(c) + "/ref/meta.json")) << c.name;
  }
}

TEST_P(SyntheticParity, StagesMatchPyTorchReference) {
  const Param& p = GetParam();
  const Case& c = p.c;
  if (!fs::exists(model_file(c)) || !fs::exists(model_dir(c) + "/pytorch_model.pt"))
    GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c)
                 << "); run through ctest, whose fixtures write it";
  ASSERT_NO_THROW(prepare(c));
  const std::string ref = case_dir(c) + "/ref";
  ReferenceMasks rm{ref, {}};
  EngineRun run = run_engine(c, p.isa, rm, /*teacher_forced=*/true);
  const ParseResult& r = run.result;

  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(ref + "/meta.json"));
  std::vector<std::string> names = meta.at("names").get<std::vector<std::string>>();
  std::printf("[%s on %s] photo %dx%d, network input %lldx%lld padded to %lldx%lld\n", c.name,
              kern::isa_name(p.isa), c.width, c.height, (long long)r.geometry.nh, (long long)r.geometry.nw,
              (long long)r.geometry.Hp, (long long)r.geometry.Wp);
  std::printf("  decoder attention masks: engine's own differ from the reference's in %lld of %lld bits "
              "(replaced by the reference's for this comparison)\n",
              (long long)run.mask_flips, (long long)run.mask_bits);
  EXPECT_LE(run.mask_flips, std::max<int64_t>(2, run.mask_bits / 10000));
  std::printf("  %-24s %-20s %12s %12s %12s\n", "stage", "shape", "max|diff|", "rel L2", "ref rms");
  int compared = 0;
  for (const std::string& name : names) {
    const test::Npy want = test::read_npy(ref + "/" + name + ".npy");
    auto it = run.got.t.find(name);
    ASSERT_NE(it, run.got.t.end()) << "the engine produced no '" << name << "'";
    const test::Npy& have = it->second;
    ASSERT_EQ(have.shape, want.shape) << name << ": engine " << test::shape_str(have.shape) << " vs reference "
                                      << test::shape_str(want.shape);
    const test::Diff d = test::compare(have.data.data(), want.data.data(), (int64_t)want.data.size());
    std::printf("  %-24s %-20s %12.3e %12.3e %12.3e\n", name.c_str(), test::shape_str(want.shape).c_str(),
                d.max_abs, d.rel_l2, d.ref_rms);
    ++compared;
    if (name == "labels") {
      const double agree = label_agreement(have, want);
      std::printf("  %-24s %-20s %12.5f%%\n", "labels agreement", "", 100 * agree);
      EXPECT_GE(agree, 0.999) << "label map agreement";
    } else if (name == "semantic" && !r.parsing.single_human) {
      // Pasted probabilities jump by ~0.5 where p = sigmoid(mask) * score crosses the 0.5 paste
      // threshold, so a mask logit that differs in the 7th digit can flip a pixel. Such flips must
      // be rare (<= 0.1% of values, the label-map bound); everywhere else the 1e-4 bound holds.
      std::vector<float> a2, b2;
      int64_t flips = 0;
      for (size_t i = 0; i < want.data.size(); ++i) {
        if (std::fabs(have.data[i] - want.data[i]) > 1e-3f) {
          ++flips;
          continue;
        }
        a2.push_back(have.data[i]);
        b2.push_back(want.data[i]);
      }
      const test::Diff d2 = test::compare(a2.data(), b2.data(), (int64_t)b2.size());
      const double flip_frac = (double)flips / want.data.size();
      std::printf("  %-24s %-20s %12s %12.3e  (%lld threshold flips, %.4f%%)\n", "semantic w/o flips", "", "",
                  d2.rel_l2, (long long)flips, 100 * flip_frac);
      EXPECT_LE(flip_frac, 1e-3) << "semantic: too many paste-threshold flips";
      EXPECT_LE(d2.rel_l2, 1e-4) << "semantic (away from paste-threshold flips)";
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

// The engine on its own (no teacher forcing). A mask logit within rounding distance of 0 can flip
// one attention-mask bit (sigmoid < 0.5 is a hard threshold of the model), and with random weights
// one flip can move later layers by ~1e-3, so the strict per-stage bounds are checked above with the
// reference's masks; here the free-running label map must still agree on >= 99% of pixels (a real
// defect gives far less) and the figures are printed.
TEST_P(SyntheticParity, FreeRunningLabelsMatch) {
  const Param& p = GetParam();
  const Case& c = p.c;
  if (!fs::exists(model_file(c)) || !fs::exists(model_dir(c) + "/pytorch_model.pt"))
    GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c) << ")";
  ASSERT_NO_THROW(prepare(c));
  const std::string ref = case_dir(c) + "/ref";
  ReferenceMasks rm{ref, {}};
  EngineRun run = run_engine(c, p.isa, rm, /*teacher_forced=*/false);
  const test::Npy want = test::read_npy(ref + "/labels.npy");
  const double agree = label_agreement(run.got.t.at("labels"), want);
  const test::Npy lw = test::read_npy(ref + "/pred_logits.npy"), mw = test::read_npy(ref + "/pred_masks.npy");
  const test::Diff dl = test::compare(run.got.t.at("pred_logits").data.data(), lw.data.data(), (int64_t)lw.data.size());
  const test::Diff dm = test::compare(run.got.t.at("pred_masks").data.data(), mw.data.data(), (int64_t)mw.data.size());
  std::printf("[%s on %s, free-running] attention-mask bits differing: %lld of %lld; pred_logits rel L2 %.3e, "
              "pred_masks rel L2 %.3e; labels agreement %.5f%%\n",
              c.name, kern::isa_name(p.isa), (long long)run.mask_flips, (long long)run.mask_bits, dl.rel_l2,
              dm.rel_l2, 100 * agree);
  EXPECT_GE(agree, 0.99);
}

INSTANTIATE_TEST_SUITE_P(Engine, SyntheticParity, ::testing::ValuesIn(params()), param_name);

// --precision bf16 (oneDNN bfloat16 convolutions and matrix products, fp32 accumulation, fp32 kernels)
// against the engine's fp32 on the same photo: pred_masks and pred_logits within relative L2 3e-2 and
// label maps agreeing on >= 99% of pixels (issue 4's bounds; multi-person: see the control below).
// Only where oneDNN has bf16 (AVX-512).
//
// With random weights the decoder's hard attention-mask threshold (sigmoid < 0.5) makes the synthetic
// model chaotic: bf16 rounding in the encoder's FFNs alone (1e-3) moves 4% of the labels once flipped
// mask bits propagate, which says nothing about bf16's accuracy. So, as in the parity tests above,
// the bf16 run is handed the fp32 run's attention masks (teacher forcing); the free-running figures
// are printed too.
class Bf16VsFp32 : public ::testing::TestWithParam<Case> {};

TEST_P(Bf16VsFp32, MasksAndLabelsAgree) {
  const Case& c = GetParam();
  if (!dnn::bf16_available()) GTEST_SKIP() << "oneDNN has no bf16 convolutions on this CPU (needs AVX-512)";
  if (!fs::exists(model_file(c))) GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c) << ")";
  ASSERT_NO_THROW(prepare(c));
  LoadOptions lo;
  lo.precision = dnn::Precision::BF16;
  std::unique_ptr<M2FP> bf16;
  ASSERT_NO_THROW(bf16 = M2FP::load(model_file(c), lo));
  ASSERT_EQ(bf16->precision(), dnn::Precision::BF16);
  const std::vector<uint8_t> bytes = testutil::read_bytes(image_path(c));

  std::map<int, std::vector<uint8_t>> fp32_masks;  // decoder layer -> the fp32 run's attention mask
  int64_t bits = 0, flips = 0;
  ForwardHooks record, replay;
  record.attention_mask = [&](int layer, int64_t, int64_t, std::vector<uint8_t>& m) { fp32_masks[layer] = m; };
  replay.attention_mask = [&](int layer, int64_t, int64_t, std::vector<uint8_t>& m) {
    const std::vector<uint8_t>& want = fp32_masks.at(layer);
    ASSERT_EQ(m.size(), want.size());
    for (size_t i = 0; i < m.size(); ++i) flips += m[i] != want[i];
    bits += (int64_t)m.size();
    m = want;
  };
  auto run = [&](const M2FP& model, const ForwardHooks* hooks, Collected* got) {
    ParseOptions opt;
    if (c.short_edge) opt.short_edge = c.short_edge;
    opt.emit_semantic = true;
    opt.hooks = hooks;
    const TensorSink sink = collector(got);
    return parse_image_bytes(model, bytes.data(), bytes.size(), opt, &sink);
  };
  Collected g32, g16, free16;
  const ParseResult r32 = run(model_for(c), &record, &g32);
  const ParseResult r16 = run(*bf16, &replay, &g16);
  run(*bf16, nullptr, &free16);

  auto rel = [](const Collected& a, const Collected& b, const char* name) {
    const test::Npy &x = a.t.at(name), &y = b.t.at(name);
    EXPECT_EQ(x.shape, y.shape) << name;
    return test::compare(x.data.data(), y.data.data(), (int64_t)y.data.size());
  };
  const test::Diff dm = rel(g16, g32, "pred_masks"), dl = rel(g16, g32, "pred_logits"), db = rel(g16, g32, "res5");
  const test::Diff dmf = rel(free16, g32, "pred_masks");
  const double agree = label_agreement(g16.t.at("labels"), g32.t.at("labels"));
  const double agree_free = label_agreement(free16.t.at("labels"), g32.t.at("labels"));
  std::printf("[%s, bf16 vs fp32] res5 rel L2 %.3e; pred_logits rel L2 %.3e; pred_masks rel L2 %.3e (max |diff| "
              "%.3e); labels agreement %.4f%%; instances %zu vs %zu; bf16's own attention masks differ in %lld of "
              "%lld bits\n",
              c.name, db.rel_l2, dl.rel_l2, dm.rel_l2, dm.max_abs, 100 * agree, r16.parsing.instances.size(),
              r32.parsing.instances.size(), (long long)flips, (long long)bits);
  std::printf("[%s, bf16 vs fp32, free-running] pred_masks rel L2 %.3e; labels agreement %.4f%%\n", c.name,
              dmf.rel_l2, 100 * agree_free);

  // Control: how much the synthetic model's label map moves when only its final fp32 outputs are
  // rounded to bf16 (relative error ~2e-3, ten times less than the bf16 network's): the post-
  // processing's score ordering and paste threshold (sigmoid(mask) * score > 0.5) see near-ties
  // everywhere in a random model's outputs.
  auto rounded_to_bf16 = [](const test::Npy& n) {
    Tensor t = to_tensor(n);
    for (int64_t i = 0; i < t.numel(); ++i) {
      uint32_t u;
      std::memcpy(&u, t.data() + i, 4);
      u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;  // round to nearest even, 8-bit mantissa
      std::memcpy(t.data() + i, &u, 4);
    }
    return t;
  };
  const ForwardOutputs rounded{rounded_to_bf16(g32.t.at("pred_logits")), rounded_to_bf16(g32.t.at("pred_masks"))};
  const Parsing pr = postprocess(model_for(c).config(), rounded, r32.geometry);
  const double agree_control = agreement(pr.labels, r32.parsing.labels);
  std::printf("[%s, control] fp32 outputs rounded to bf16: labels agreement %.4f%%\n", c.name, 100 * agree_control);

  EXPECT_GT(db.rel_l2, 0.0) << "bf16 gave exactly the fp32 backbone: bf16 was not used";
  EXPECT_LE(dm.rel_l2, 3e-2) << "pred_masks";
  EXPECT_LE(dl.rel_l2, 3e-2) << "pred_logits";
  // Single-person (LIP) label maps: issue 4's >= 99%. Multi-person (CIHP) ones on random weights: the
  // control above shows that even a tenth of bf16's error moves 1-2.5% of the labels, so the bound
  // here is a sanity one (a broken bf16 path gives far less); >= 99% needs the real checkpoint.
  const bool multi = !model_for(c).config().single_human;
  EXPECT_GE(agree, multi ? 0.9 : 0.99) << "label map";
}

// The bf16 network writes some inputs of its bf16 layers straight in bf16 where nothing is dumped
// (pixel decoder: layer_1's GroupNorm for mask_features) and keeps the fp32 map where the sink wants
// it: both give the same bits, so the dumps (and the parity tests reading them) show what a plain
// parse computes.
TEST(Bf16Dumps, DumpingDoesNotChangeTheOutputs) {
  const Case& c = kCases[0];
  if (!dnn::bf16_available()) GTEST_SKIP() << "oneDNN has no bf16 convolutions on this CPU (needs AVX-512)";
  if (!fs::exists(model_file(c))) GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c) << ")";
  LoadOptions lo;
  lo.precision = dnn::Precision::BF16;
  std::unique_ptr<M2FP> bf16;
  ASSERT_NO_THROW(bf16 = M2FP::load(model_file(c), lo));
  Tensor image = Tensor::empty({128, 160, 3}, Layout::HWC);
  for (int64_t i = 0; i < image.numel(); ++i) image.data()[i] = (float)((i * 7919) % 255) / 64.f - 2.f;
  Collected got;
  const TensorSink sink = collector(&got);
  const ForwardOutputs plain = bf16->forward(image), dumped = bf16->forward(image, &sink);
  ASSERT_TRUE(got.t.count("pixel_decoder.s4")) << "the dump lacks pixel_decoder.s4";
  for (const auto& [name, a, b] : {std::tuple{"pred_logits", &plain.pred_logits, &dumped.pred_logits},
                                   std::tuple{"pred_masks", &plain.pred_masks, &dumped.pred_masks}}) {
    ASSERT_EQ(a->shape, b->shape) << name;
    EXPECT_EQ(0, std::memcmp(a->data(), b->data(), (size_t)a->numel() * sizeof(float))) << name;
  }
}

// Multi-person post-processing keeps the full-resolution masks between its two passes for small
// photos and streams them for large ones (each output row computed where it is used by
// kern::mask_row_fused, overlaps by popcount): both, at several band heights, must give the same
// parsing, bit for bit.
TEST(Postprocess, KeptAndBandedMasksGiveTheSameParsing) {
  const Case& c = kCases[0];
  if (!fs::exists(model_file(c))) GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c) << ")";
  ASSERT_NO_THROW(prepare(c));
  const std::vector<uint8_t> bytes = testutil::read_bytes(image_path(c));
  ParseOptions opt;
  opt.short_edge = c.short_edge;
  Collected got;
  const TensorSink sink = collector(&got);
  const ParseResult r = parse_image_bytes(model_for(c), bytes.data(), bytes.size(), opt, &sink);
  const ForwardOutputs out{to_tensor(got.t.at("pred_logits")), to_tensor(got.t.at("pred_masks"))};
  PostprocessOptions kept;
  const Parsing want = postprocess(model_for(c).config(), out, r.geometry, kept);
  EXPECT_EQ(want.labels, r.parsing.labels);
  ASSERT_GT(want.instances.size(), 0u);
  for (int band : {1, 7, 32, 1000}) {
    PostprocessOptions banded;
    banded.keep_mask_bytes = 0;
    banded.band_rows = band;
    const Parsing got2 = postprocess(model_for(c).config(), out, r.geometry, banded);
    EXPECT_EQ(got2.labels, want.labels) << "band " << band;
    EXPECT_EQ(got2.person_map, want.person_map) << "band " << band;
    ASSERT_EQ(got2.instances.size(), want.instances.size()) << "band " << band;
    for (size_t i = 0; i < want.instances.size(); ++i) {
      const Instance &a = got2.instances[i], &b = want.instances[i];
      EXPECT_EQ(std::tie(a.category_id, a.query, a.area, a.person), std::tie(b.category_id, b.query, b.area, b.person))
          << "band " << band << " instance " << i;
      EXPECT_EQ(a.score, b.score) << "band " << band << " instance " << i;
      EXPECT_EQ(a.mask_bits, b.mask_bits) << "band " << band << " instance " << i;
    }
  }
  // every instance's bit mask holds `area` pixels, inside its box
  for (const Instance& in : want.instances) {
    int64_t n = 0;
    for (uint8_t byte : in.mask_bits) n += __builtin_popcount(byte);
    EXPECT_EQ(n, in.area) << in.label << " query " << in.query;
  }
}

// ModelScope's pipeline answer is the instances with score > 0 in order (parts then humans): the
// post-processing run on the reference's own pred_logits / pred_masks gives the reference's
// instances in the same order, the same areas (the masks' `mask > 0` pixels upsampled as
// F.interpolate does) and scores within 1e-6 (measured 2.4e-7: the engine sums sigmoid(mask) in
// double, torch in float32). tests/cli/test_outputs.py compares the masks themselves.
TEST(Postprocess, ReferenceTensorsGiveTheReferenceInstances) {
  for (const Case& c : kCases) {
    if (std::string(c.model) != "cihp") continue;
    if (!fs::exists(model_file(c))) GTEST_SKIP() << "synthetic checkpoint missing (" << model_file(c) << ")";
    ASSERT_NO_THROW(prepare(c));
    const std::string ref = case_dir(c) + "/ref";
    const std::vector<uint8_t> bytes = testutil::read_bytes(image_path(c));
    ParseOptions opt;
    opt.short_edge = c.short_edge;
    const ParseResult r = parse_image_bytes(model_for(c), bytes.data(), bytes.size(), opt);
    const ForwardOutputs out{to_tensor(test::read_npy(ref + "/pred_logits.npy")),
                             to_tensor(test::read_npy(ref + "/pred_masks.npy"))};
    const Parsing p = postprocess(model_for(c).config(), out, r.geometry);
    const nlohmann::json inst = nlohmann::json::parse(std::ifstream(ref + "/instances.json"));
    ASSERT_EQ(p.instances.size(), inst.size()) << c.name;
    double worst = 0;
    for (size_t i = 0; i < inst.size(); ++i) {
      const Instance& in = p.instances[i];
      EXPECT_EQ(in.kind == Instance::Kind::Human ? "human" : "part", inst[i].at("kind").get<std::string>())
          << c.name << " " << i;
      EXPECT_EQ(in.category_id, inst[i].at("category_id").get<int>()) << c.name << " " << i;
      EXPECT_EQ(in.query, inst[i].at("query").get<int>()) << c.name << " " << i;
      EXPECT_NEAR(in.score, inst[i].at("score").get<double>(), 1e-6) << c.name << " " << i;
      EXPECT_EQ(in.area, inst[i].at("area").get<int64_t>()) << c.name << " " << i;
      worst = std::max(worst, std::fabs(in.score - inst[i].at("score").get<double>()));
    }
    std::printf("[%s] post-processing on the reference's tensors: %zu instances, max |score diff| %.2e\n", c.name,
                inst.size(), worst);
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Engine, Bf16VsFp32, ::testing::Values(kCases[0], kCases[1], kCases[2]), case_name);

}  // namespace
