// tests/kernels/parity/test_parity_torch_pillow.cpp: semantic parity with PyTorch 1.13 and Pillow.
// torch_pillow_reference.py (next to this file), run with M2FP_PYTHON (/usr/bin/python3), computes
// F.interpolate / layer_norm / group_norm / softmax / Image.resize(BILINEAR) on inputs this test
// writes to a temporary directory; the threaded entry points of every ISA are compared with its
// outputs (tolerances as in the per-op tests; PIL exact).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "m2fp_parity_torch_pillow_XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed for " + t);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

template <class T>
void write_bin(const std::filesystem::path& p, const std::vector<T>& v) {
  std::ofstream f(p, std::ios::binary);
  f.write((const char*)v.data(), (std::streamsize)(v.size() * sizeof(T)));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

template <class T>
std::vector<T> read_bin(const std::filesystem::path& p, size_t n) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("missing reference output " + p.string());
  std::vector<T> v(n);
  f.read((char*)v.data(), (std::streamsize)(n * sizeof(T)));
  if ((size_t)f.gcount() != n * sizeof(T) || f.peek() != EOF)
    throw std::runtime_error(p.string() + ": expected " + std::to_string(n * sizeof(T)) + " bytes");
  return v;
}

std::string run_capture(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *rc = -1;
    return "popen failed";
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *rc = pclose(p);
  return out;
}

TEST(TorchParity, InterpolateNormsSoftmaxAndPillow) {
  TempDir dir;
  std::ofstream cases(dir.path / "cases.txt");
  Rng rng(14);
  // Each case: a name, how to write it, and a check run after the script.
  std::vector<std::function<void()>> checks;
  auto file = [&](const std::string& name, const std::string& part) { return dir.path / (name + "." + part + ".bin"); };
  int id = 0;
  DiffLog log_i("parity interpolate vs torch"), log_n("parity layernorm/groupnorm vs torch"),
      log_s("parity softmax vs torch");
  int pil_max = 0, pil_cases = 0;

  // F.interpolate on planes and on NHWC maps.
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> planes;  // P H W oh ow
  for (double f : kFactors) planes.emplace_back(3, 13, 17, scaled(13, f), scaled(17, f));
  for (double f : kFactors) planes.emplace_back(2, 37, 29, scaled(37, f), scaled(29, 1.0 / f));
  planes.emplace_back(2, 1, 1, 5, 7);
  planes.emplace_back(2, 13, 17, 1, 1);
  planes.emplace_back(2, 160, 264, 640, 1056);
  planes.emplace_back(3, 160, 264, 80, 132);
  planes.emplace_back(3, 20, 33, 160, 264);
  for (auto [P, H, W, oh, ow] : planes) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(P * H * W));
    write_bin(file(name, "in"), x);
    cases << "interp_planes " << name << " P=" << P << " H=" << H << " W=" << W << " OH=" << oh << " OW=" << ow << "\n";
    checks.push_back([&, name, x, P = P, H = H, W = W, oh = oh, ow = ow] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(P * oh * ow));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::resize_bilinear_planes(x.data(), P, H, W, got.data(), oh, ow);
        EXPECT_TRUE(close("F.interpolate planes " + isa_str(isa) + " " + std::to_string(H) + "x" + std::to_string(W) +
                              "->" + std::to_string(oh) + "x" + std::to_string(ow),
                          got.data(), want.data(), (int64_t)want.size(), 1e-6, 0, &log_i));
      }
    });
  }
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> nhwc;  // H W C oh ow
  for (double f : kFactors) nhwc.emplace_back(13, 17, 13, scaled(13, f), scaled(17, f));
  nhwc.emplace_back(1, 1, 3, 4, 5);
  nhwc.emplace_back(20, 33, 256, 40, 66);
  nhwc.emplace_back(40, 66, 256, 80, 132);
  for (auto [H, W, C, oh, ow] : nhwc) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(H * W * C));
    write_bin(file(name, "in"), x);
    cases << "interp_nhwc " << name << " H=" << H << " W=" << W << " C=" << C << " OH=" << oh << " OW=" << ow << "\n";
    checks.push_back([&, name, x, H = H, W = W, C = C, oh = oh, ow = ow] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(oh * ow * C));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::resize_bilinear_nhwc(x.data(), H, W, C, got.data(), oh, ow);
        EXPECT_TRUE(close("F.interpolate NHWC " + isa_str(isa) + " C=" + std::to_string(C) + " " + std::to_string(H) +
                              "x" + std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow),
                          got.data(), want.data(), (int64_t)want.size(), 1e-6, 0, &log_i));
      }
    });
  }
  // torch.layer_norm
  // (No C = 1 or 2-value groups here: there the variance is ~0 and torch's float formula
  // x * (rstd * g) + (b - mean * rstd * g) loses digits to cancellation amplified by rstd ~ 316;
  // those sizes are covered against the double-precision definition above.)
  for (auto [R, C, res] : {std::tuple<int64_t, int64_t, int>{7, 3, 0}, {7, 13, 1}, {33, 256, 1}, {5, 257, 0}}) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(R * C), 2.f, 1.5f), r = rng.normals((size_t)(R * C));
    std::vector<float> g = rng.normals((size_t)C, 1.f, 0.3f), b = rng.normals((size_t)C, 0.f, 0.3f);
    write_bin(file(name, "in"), x);
    write_bin(file(name, "res"), r);
    write_bin(file(name, "gamma"), g);
    write_bin(file(name, "beta"), b);
    cases << "layernorm " << name << " R=" << R << " C=" << C << " eps=1e-05 res=" << res << "\n";
    checks.push_back([&, name, x, r, g, b, R = R, C = C, res = res] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(R * C));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), got.data(), R, C, 1e-5f);
        EXPECT_TRUE(close("torch.layer_norm " + isa_str(isa) + " R=" + std::to_string(R) + " C=" + std::to_string(C) +
                              " residual=" + std::to_string(res),
                          got.data(), want.data(), (int64_t)want.size(), 1e-5, 1e-5, &log_n));
      }
    });
  }
  // torch.group_norm (+ ReLU)
  for (auto [H, W, C, G, relu] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int>{13, 17, 64, 32, 1},
                                  {7, 5, 39, 3, 0}, {1, 1, 39, 3, 0}, {20, 33, 256, 32, 1}}) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(H * W * C), -1.f, 3.f);
    std::vector<float> g = rng.normals((size_t)C, 1.f, 0.3f), b = rng.normals((size_t)C, 0.f, 0.3f);
    write_bin(file(name, "in"), x);
    write_bin(file(name, "gamma"), g);
    write_bin(file(name, "beta"), b);
    cases << "groupnorm " << name << " H=" << H << " W=" << W << " C=" << C << " G=" << G << " eps=1e-05 relu=" << relu << "\n";
    checks.push_back([&, name, x, g, b, H = H, W = W, C = C, G = G, relu = relu] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(H * W * C));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got(want.size());
        kern::groupnorm_nhwc(x.data(), got.data(), H * W, C, G, g.data(), b.data(), 1e-5f, relu);
        EXPECT_TRUE(close("torch.group_norm " + isa_str(isa) + " HxWxC=" + std::to_string(H) + "x" + std::to_string(W) +
                              "x" + std::to_string(C) + " G=" + std::to_string(G),
                          got.data(), want.data(), (int64_t)want.size(), 1e-5, 1e-5, &log_n));
      }
    });
  }
  // torch.softmax (with -inf entries and large logits)
  for (auto [R, N, sd] : {std::tuple<int64_t, int64_t, float>{5, 13, 1.f}, {3, 1000, 10.f}, {2, 10560, 3.f}, {4, 1, 1.f}}) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<float> x = rng.normals((size_t)(R * N), 0.f, sd);
    for (int64_t i = 3; i < R * N; i += 7) x[i] = -INFINITY;
    if (N > 1) x[0] = 1e4f;
    write_bin(file(name, "in"), x);
    cases << "softmax " << name << " R=" << R << " N=" << N << "\n";
    checks.push_back([&, name, x, R = R, N = N] {
      auto want = read_bin<float>(file(name, "out"), (size_t)(R * N));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<float> got = x;
        kern::softmax_rows(got.data(), R, N);
        EXPECT_TRUE(close("torch.softmax " + isa_str(isa) + " R=" + std::to_string(R) + " N=" + std::to_string(N),
                          got.data(), want.data(), (int64_t)want.size(), 1e-7, 2e-6, &log_s));
      }
    });
  }
  // PIL Image.resize(BILINEAR) on L and RGB images
  std::vector<std::tuple<int64_t, int64_t, int, int64_t, int64_t>> pil;  // H W ch oh ow
  for (int ch : {1, 3})
    for (double f : kFactors) pil.emplace_back(37, 53, ch, scaled(37, f), scaled(53, f));
  pil.emplace_back(342, 548, 3, 640, 1025);  // the model's input resize
  pil.emplace_back(480, 640, 3, scaled(480, 1.0 / 7.0), scaled(640, 0.37));
  pil.emplace_back(1, 1, 3, 4, 6);
  pil.emplace_back(9, 11, 1, 1, 1);
  for (auto [H, W, ch, oh, ow] : pil) {
    const std::string name = "c" + std::to_string(id++);
    std::vector<uint8_t> x = rng.bytes((size_t)(H * W * ch));
    // Smooth regions plus saturated and noisy bands: like photos, with clip cases.
    for (int64_t y = 0; y < H; ++y)
      for (int64_t xx = 0; xx < W / 2; ++xx)
        for (int c = 0; c < ch; ++c) x[(size_t)((y * W + xx) * ch + c)] = (uint8_t)((y * 7 + xx * 3 + c * 50) & 255);
    for (int64_t i = 0; i < (int64_t)x.size() / 8; ++i) x[(size_t)i] = 255;
    write_bin(file(name, "in"), x);
    cases << "pil " << name << " H=" << H << " W=" << W << " ch=" << ch << " OH=" << oh << " OW=" << ow << "\n";
    checks.push_back([&, name, x, H = H, W = W, ch = ch, oh = oh, ow = ow] {
      auto want = read_bin<uint8_t>(file(name, "out"), (size_t)(oh * ow * ch));
      for (Isa isa : all_isas()) {
        ScopedIsa s(isa);
        std::vector<uint8_t> got(want.size());
        kern::resize_pil_bilinear_u8(x.data(), H, W, ch, got.data(), oh, ow);
        EXPECT_TRUE(same_bytes("PIL resize " + isa_str(isa) + " ch=" + std::to_string(ch) + " " + std::to_string(H) +
                                   "x" + std::to_string(W) + "->" + std::to_string(oh) + "x" + std::to_string(ow),
                               got.data(), want.data(), (int64_t)want.size(), &pil_max));
        ++pil_cases;
      }
    });
  }
  cases.close();

  const std::string script = std::string(M2FP_SOURCE_DIR) + "/tests/kernels/parity/torch_pillow_reference.py";
  const std::string cmd = "OMP_NUM_THREADS=1 '" + std::string(M2FP_PYTHON) + "' '" + script + "' '" +
                          dir.path.string() + "' 2>&1";
  int rc = 0;
  const std::string out = run_capture(cmd, &rc);
  ASSERT_EQ(rc, 0) << "reference script failed (" << cmd << "):\n" << out
                   << "\nIt needs torch, numpy and PIL: M2FP_PYTHON should be Debian's /usr/bin/python3.";
  std::printf("  %s", out.c_str());
  for (auto& check : checks) check();
  std::printf("  [parity PIL resize vs Pillow] %d cases, max difference %d levels\n", pil_cases, pil_max);
}

}  // namespace
