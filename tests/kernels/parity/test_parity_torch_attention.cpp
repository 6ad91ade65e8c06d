// tests/kernels/parity/test_parity_torch_attention.cpp: semantic parity with PyTorch of the
// attention kernels and the position encoding. M2FP_PYTHON runs torch_attention_reference.py (next
// to this file) on inputs written to a temporary directory: the grid_sample formulation of
// MSDeformAttn, F.multi_head_attention_forward with a bool mask, PositionEmbeddingSine; the
// threaded entry points of the active ISA are compared with its outputs.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/attention_cases.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;
namespace fs = std::filesystem;

namespace {

using namespace kern::ktest;

struct TorchRun {
  bool ok = false;
  std::string error;
};

void write_raw(const fs::path& p, const void* data, size_t bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), (std::streamsize)bytes);
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::vector<float> read_f32(const fs::path& p, size_t n) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("missing torch output " + p.string());
  const size_t bytes = (size_t)f.tellg();
  if (bytes != n * sizeof(float))
    throw std::runtime_error(p.string() + ": " + std::to_string(bytes) + " bytes, expected " +
                             std::to_string(n * sizeof(float)));
  std::vector<float> v(n);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)bytes);
  return v;
}

// The parity cases (C++ side): inputs, and what our kernels output for them.
struct ParityCase {
  std::string name, kind, label, json;
  std::vector<float> ours, torch;  // our output; torch's (read back after the script ran)
  Tol tol;
};

std::vector<ParityCase>& parity_cases() {
  static std::vector<ParityCase> cases;
  return cases;
}

// Writes every case to a temporary directory, runs the torch script once, reads its outputs back
// and removes the directory (kept when M2FP_KEEP_TMP is set).
const TorchRun& torch_run() {
  static TorchRun run = [] {
    TorchRun r;
    fs::path dir;
    try {
      std::string tmpl = (fs::temp_directory_path() / "m2fp_parity_attention_XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
      dir = tmpl;
      auto& cases = parity_cases();
      std::ostringstream manifest;
      manifest << "[\n";

      // multi-scale deformable attention through the threaded entry point
      const std::vector<MsdaCase> mcases = {
          {{{20, 33}, {40, 66}, {80, 132}}, 4, 8, 32, 1000, Loc::Random, false, 501},  // model layout
          {{{13, 17}, {1, 1}}, 3, 3, 13, 41, Loc::Random, true, 502},
          {{{5, 9}, {13, 17}, {26, 34}}, 2, 2, 7, 41, Loc::FarOutside, false, 503},
          {{{5, 9}, {13, 17}, {26, 34}}, 4, 8, 33, 41, Loc::Border, true, 504},
          {{{16, 8}, {4, 2}, {1, 1}}, 4, 2, 32, 41, Loc::Centres, false, 505},
          {{{7, 1}, {1, 3}}, 1, 1, 1, 41, Loc::Random, false, 506},
          {{{5, 9}, {13, 17}}, 3, 8, 32, 41, Loc::Random, false, 507, 100.f},  // large logits
      };
      for (size_t i = 0; i < mcases.size(); ++i) {
        const MsdaData d = make_msda(mcases[i]);
        const std::string n = "msda" + std::to_string(i);
        write_raw(dir / (n + ".value.f32"), d.value.data(), d.value.size() * 4);
        write_raw(dir / (n + ".shapes.i64"), d.shapes.data(), d.shapes.size() * 8);
        write_raw(dir / (n + ".ref.f32"), d.ref.data(), d.ref.size() * 4);
        write_raw(dir / (n + ".qp.f32"), d.qp.data(), d.qp.size() * 4);
        ParityCase pc;
        pc.name = n, pc.kind = "msda", pc.label = mcases[i].str();
        // only summation order differs from torch (the taps are computed as grid_sample does);
        // the naive pix = loc*size - 0.5 already fails this at the model's map sizes
        pc.tol = {3e-6, 1e-5};
        pc.ours.assign((size_t)mcases[i].Lq * mcases[i].heads * mcases[i].dh, -7.f);
        kern::ms_deform_attn(d.value.data(), d.shapes.data(), d.starts.data(), d.L, mcases[i].P,
                             mcases[i].heads, mcases[i].dh, d.ref.data(), d.offsets(), d.logits(),
                             d.ld_qp, pc.ours.data(), mcases[i].Lq);
        std::ostringstream j;
        j << "{\"kind\": \"msda\", \"name\": \"" << n << "\", \"L\": " << d.L << ", \"P\": "
          << mcases[i].P << ", \"heads\": " << mcases[i].heads << ", \"dh\": " << mcases[i].dh
          << ", \"Lq\": " << mcases[i].Lq << ", \"ld_qp\": " << d.ld_qp << ", \"off_col\": "
          << d.off_col << ", \"logit_col\": " << d.logit_col << ", \"value\": \"" << n
          << ".value.f32\", \"shapes\": \"" << n << ".shapes.i64\", \"ref\": \"" << n
          << ".ref.f32\", \"qp\": \"" << n << ".qp.f32\"}";
        pc.json = j.str();
        cases.push_back(std::move(pc));
      }

      // multi-head attention, all heads through kern::masked_attention, scale 1/sqrt(dh)
      struct M { int64_t Lq, Lk; int heads, dh; Mask mask; bool large; };
      const std::vector<M> acases = {
          {100, 10560, 8, 32, Mask::Regions, false}, {100, 2640, 8, 32, Mask::FullRows, false},
          {100, 660, 8, 32, Mask::Random, false},    {100, 100, 8, 32, Mask::None, false},
          {37, 7, 3, 13, Mask::SingleKey, false},    {37, 1, 2, 7, Mask::None, false},
          {37, 1000, 1, 33, Mask::FullRows, false},  {29, 1000, 2, 16, Mask::Random, true},
      };
      uint32_t seed = 601;
      for (size_t i = 0; i < acases.size(); ++i) {
        const M& a = acases[i];
        const int64_t E = (int64_t)a.heads * a.dh;
        std::mt19937 rng(seed++);
        std::vector<float> q = randn((size_t)(a.Lq * E), rng), k = randn((size_t)(a.Lk * E), rng),
                           v = randn((size_t)(a.Lk * E), rng);
        if (a.large) {  // integer q, k and dh 16 (scale 1/4): exact scores up to ~500
          std::uniform_int_distribution<int> ii(-8, 8);
          for (auto& x : q) x = (float)ii(rng);
          for (auto& x : k) x = (float)ii(rng);
        }
        const std::vector<uint8_t> mask = make_mask(a.mask, a.Lq, a.Lk, rng);
        const std::string n = "mha" + std::to_string(i);
        write_raw(dir / (n + ".q.f32"), q.data(), q.size() * 4);
        write_raw(dir / (n + ".k.f32"), k.data(), k.size() * 4);
        write_raw(dir / (n + ".v.f32"), v.data(), v.size() * 4);
        if (!mask.empty()) write_raw(dir / (n + ".mask.u8"), mask.data(), mask.size());
        ParityCase pc;
        pc.name = n, pc.kind = "mha";
        std::ostringstream lab;
        lab << "mha{Lq=" << a.Lq << " Lk=" << a.Lk << " heads=" << a.heads << " dh=" << a.dh
            << " mask=" << mask_name(a.mask) << " large_logits=" << a.large << "}";
        pc.label = lab.str();
        pc.tol = {3e-6, 1e-5};
        pc.ours.assign((size_t)(a.Lq * E), -7.f);
        kern::masked_attention(q.data(), E, k.data(), E, v.data(), E,
                               mask.empty() ? nullptr : mask.data(), pc.ours.data(), E, a.Lq, a.Lk,
                               a.heads, a.dh, (float)(1.0 / std::sqrt((double)a.dh)));
        std::ostringstream j;
        j << "{\"kind\": \"mha\", \"name\": \"" << n << "\", \"Lq\": " << a.Lq << ", \"Lk\": " << a.Lk
          << ", \"heads\": " << a.heads << ", \"dh\": " << a.dh << ", \"q\": \"" << n
          << ".q.f32\", \"k\": \"" << n << ".k.f32\", \"v\": \"" << n << ".v.f32\", \"mask\": "
          << (mask.empty() ? std::string("null") : "\"" + n + ".mask.u8\"") << "}";
        pc.json = j.str();
        cases.push_back(std::move(pc));
      }

      // sine position encoding: the model's three levels, odd sizes, and F not a power of two
      struct Pz { int64_t H, W; int F; };
      const std::vector<Pz> pcases = {{20, 33, 128}, {40, 66, 128}, {80, 132, 128},
                                      {13, 17, 128}, {1, 1, 128},   {7, 3, 6}};
      for (size_t i = 0; i < pcases.size(); ++i) {
        const Pz& p = pcases[i];
        const std::string n = "pos" + std::to_string(i);
        ParityCase pc;
        pc.name = n, pc.kind = "pos";
        pc.label = "sine_pos_embed{H=" + std::to_string(p.H) + " W=" + std::to_string(p.W) +
                   " F=" + std::to_string(p.F) + " T=10000}";
        pc.tol = {2e-6, 0};
        pc.ours.assign((size_t)(p.H * p.W * 2 * p.F), -7.f);
        kern::sine_pos_embed(p.H, p.W, p.F, 10000.f, pc.ours.data());
        pc.json = "{\"kind\": \"pos\", \"name\": \"" + n + "\", \"H\": " + std::to_string(p.H) +
                  ", \"W\": " + std::to_string(p.W) + ", \"F\": " + std::to_string(p.F) +
                  ", \"T\": 10000}";
        cases.push_back(std::move(pc));
      }

      for (size_t i = 0; i < cases.size(); ++i)
        manifest << "  " << cases[i].json << (i + 1 < cases.size() ? ",\n" : "\n");
      manifest << "]\n";
      const std::string ms = manifest.str();
      write_raw(dir / "manifest.json", ms.data(), ms.size());

      const fs::path script = fs::path(M2FP_SOURCE_DIR) / "tests/kernels/parity/torch_attention_reference.py";
      const fs::path log = dir / "torch.log";
      const std::string cmd = std::string("OMP_NUM_THREADS=1 \"") + M2FP_PYTHON + "\" \"" +
                              script.string() + "\" \"" + dir.string() + "\" > \"" +
                              log.string() + "\" 2>&1";
      const int rc = std::system(cmd.c_str());
      if (rc != 0) {
        std::ifstream lf(log);
        std::stringstream ss;
        ss << lf.rdbuf();
        throw std::runtime_error("'" + cmd + "' failed (status " + std::to_string(rc) + "):\n" +
                                 ss.str());
      }
      for (ParityCase& c : cases) c.torch = read_f32(dir / (c.name + ".out.f32"), c.ours.size());
      r.ok = true;
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    if (!dir.empty()) {
      if (std::getenv("M2FP_KEEP_TMP")) {
        std::printf("  kept %s\n", dir.c_str());
      } else {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    }
    return r;
  }();
  return run;
}

void check_parity(const std::string& kind) {
  const TorchRun& r = torch_run();
  ASSERT_TRUE(r.ok) << "PyTorch reference run failed: " << r.error;
  int n = 0;
  for (const ParityCase& c : parity_cases()) {
    if (c.kind != kind) continue;
    expect_close(c.label + " (" + kern::isa_name(kern::active_isa()) + ") vs torch", c.ours, c.torch,
                 c.tol);
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST(TorchParity, MsDeformAttn) { check_parity("msda"); }
TEST(TorchParity, MaskedAttention) { check_parity("mha"); }
TEST(TorchParity, SinePosEmbed) { check_parity("pos"); }

}  // namespace
