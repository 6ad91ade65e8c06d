// bench/kernels/bench_kernels_a.cpp: softmax, LayerNorm, GroupNorm, bilinear resizes and the PIL
// resample at the model's sizes, for every ISA path this CPU supports.
//
// Each benchmark calls one path's single-threaded chunk function (kern::table_for(isa)) on the
// whole problem, so the numbers compare ISAs on one core; the threaded entry points split the
// same calls over the OpenMP pool. Counters: bytes/s = (bytes read + bytes written) per second,
// the minimum traffic of the op (inputs once, outputs once); GFLOP/s where arithmetic dominates.
//   ./bench_kernels --benchmark_filter=KernelsA --benchmark_min_time=0.05
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/internal.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

void set_rates(benchmark::State& st, double bytes, double flops) {
  st.SetBytesProcessed((int64_t)(bytes * (double)st.iterations()));
  if (flops > 0)
    st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9 * (double)st.iterations(), benchmark::Counter::kIsRate);
}

// softmax 800 x 10560 (100 queries x 8 heads over the largest cross-attention key set)
void BM_softmax(benchmark::State& st, Isa isa) {
  const int64_t rows = 800, n = 10560;
  const std::vector<float> x0 = randn((size_t)(rows * n), 1);
  std::vector<float> x = x0;
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    st.PauseTiming();
    x = x0;  // keep the input a fresh set of logits
    st.ResumeTiming();
    T.softmax_rows(x.data(), rows, n);
    benchmark::DoNotOptimize(x.data());
  }
  set_rates(st, 2.0 * 4 * rows * n, 0);
  st.counters["Melem/s"] = benchmark::Counter(1e-6 * rows * n * (double)st.iterations(), benchmark::Counter::kIsRate);
}

// LayerNorm 13860 x 256 with a residual (the encoder's norm1/norm2)
void BM_layernorm(benchmark::State& st, Isa isa) {
  const int64_t rows = 13860, C = 256;
  const std::vector<float> x = randn((size_t)(rows * C), 2), r = randn((size_t)(rows * C), 3);
  const std::vector<float> g = randn((size_t)C, 4), b = randn((size_t)C, 5);
  std::vector<float> y((size_t)(rows * C));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.layernorm_rows(x.data(), r.data(), g.data(), b.data(), y.data(), rows, C, 1e-5f);
    benchmark::DoNotOptimize(y.data());
  }
  set_rates(st, 3.0 * 4 * rows * C, 8.0 * rows * C);
}

// GroupNorm phases on the stride-4 map 160 x 264 x 256
void BM_groupnorm_stats(benchmark::State& st, Isa isa) {
  const int64_t HW = 160 * 264, C = 256;
  const std::vector<float> x = randn((size_t)(HW * C), 6);
  std::vector<double> s((size_t)C), q((size_t)C);
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.groupnorm_stats_nhwc(x.data(), HW, C, s.data(), q.data());
    benchmark::DoNotOptimize(s.data());
  }
  set_rates(st, 4.0 * HW * C, 3.0 * HW * C);
}

void BM_groupnorm_affine_relu(benchmark::State& st, Isa isa) {
  const int64_t HW = 160 * 264, C = 256;
  const std::vector<float> sc = randn((size_t)C, 7), sh = randn((size_t)C, 8);
  std::vector<float> x = randn((size_t)(HW * C), 9);
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.affine_nhwc(x.data(), x.data(), HW, C, sc.data(), sh.data(), true);  // in place, as the model
    benchmark::DoNotOptimize(x.data());
  }
  set_rates(st, 2.0 * 4 * HW * C, 2.0 * HW * C);
}

// Bilinear plane resize: P planes H x W -> oh x ow
void BM_resize_planes(benchmark::State& st, Isa isa, int64_t P, int64_t H, int64_t W, int64_t oh, int64_t ow) {
  const std::vector<float> src = randn((size_t)(P * H * W), 10);
  std::vector<float> dst((size_t)(P * oh * ow));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    for (int64_t p = 0; p < P; ++p)
      T.resize_bilinear_plane_rows(src.data() + p * H * W, H, W, dst.data() + p * oh * ow, oh, ow, 0, oh);
    benchmark::DoNotOptimize(dst.data());
  }
  set_rates(st, 4.0 * P * (H * W + oh * ow), 0);
  st.counters["Mpix/s"] = benchmark::Counter(1e-6 * P * oh * ow * (double)st.iterations(), benchmark::Counter::kIsRate);
}

// Bilinear NHWC resize 80 x 132 x 256 -> 160 x 264 (pixel decoder FPN)
void BM_resize_nhwc(benchmark::State& st, Isa isa) {
  const int64_t H = 80, W = 132, C = 256, oh = 160, ow = 264;
  const std::vector<float> src = randn((size_t)(H * W * C), 11);
  std::vector<float> dst((size_t)(oh * ow * C));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.resize_bilinear_nhwc_rows(src.data(), H, W, C, dst.data(), oh, ow, 0, oh);
    benchmark::DoNotOptimize(dst.data());
  }
  set_rates(st, 4.0 * C * (H * W + oh * ow), 6.0 * oh * ow * C);
}

// PIL BILINEAR resize of a 548 x 342 RGB image to 1025 x 640 (the model's input size): the
// horizontal pass over the rows the vertical pass reads, then the vertical pass.
void BM_pil_resize_rgb(benchmark::State& st, Isa isa) {
  const int64_t W = 548, H = 342, ow = 1025, oh = 640;
  const int ch = 3;
  std::mt19937_64 g(12);
  std::vector<uint8_t> src((size_t)(H * W * ch));
  for (uint8_t& v : src) v = (uint8_t)(g() & 255);
  std::vector<int32_t> xb, xk, yb, yk;
  const int kx = kern::pil_bilinear_coeffs(W, ow, &xb, &xk);
  const int ky = kern::pil_bilinear_coeffs(H, oh, &yb, &yk);
  const int64_t ymin = yb[0], ymax = yb[2 * (oh - 1)] + yb[2 * (oh - 1) + 1];
  for (int64_t i = 0; i < oh; ++i) yb[2 * i] -= (int32_t)ymin;
  std::vector<uint8_t> tmp((size_t)((ymax - ymin) * ow * ch)), dst((size_t)(oh * ow * ch));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.pil_resample_h_u8(src.data() + ymin * W * ch, W, ch, tmp.data(), ow, xb.data(), xk.data(), kx, 0, ymax - ymin);
    T.pil_resample_v_u8(tmp.data(), ow, ch, dst.data(), yb.data(), yk.data(), ky, 0, oh);
    benchmark::DoNotOptimize(dst.data());
  }
  set_rates(st, (double)(H * W + oh * ow) * ch, 0);
  st.counters["Mpix/s"] = benchmark::Counter(1e-6 * oh * ow * (double)st.iterations(), benchmark::Counter::kIsRate);
}

// Registers every benchmark once per ISA the CPU supports, named KernelsA/<op>/<isa>.
struct Register {
  Register() {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
      if (!kern::isa_supported(isa)) continue;
      const std::string s = std::string("/") + kern::isa_name(isa);
      auto reg = [&](const std::string& name, auto fn) {
        benchmark::RegisterBenchmark(("KernelsA/" + name + s).c_str(), fn)->Unit(benchmark::kMillisecond);
      };
      reg("softmax_800x10560", [isa](benchmark::State& st) { BM_softmax(st, isa); });
      reg("layernorm_13860x256_residual", [isa](benchmark::State& st) { BM_layernorm(st, isa); });
      reg("groupnorm_stats_160x264x256", [isa](benchmark::State& st) { BM_groupnorm_stats(st, isa); });
      reg("groupnorm_affine_relu_160x264x256", [isa](benchmark::State& st) { BM_groupnorm_affine_relu(st, isa); });
      reg("resize_planes_100x160x264_to_640x1056",
          [isa](benchmark::State& st) { BM_resize_planes(st, isa, 100, 160, 264, 640, 1056); });
      reg("resize_planes_100x160x264_to_80x132",
          [isa](benchmark::State& st) { BM_resize_planes(st, isa, 100, 160, 264, 80, 132); });
      reg("resize_nhwc_80x132x256_to_160x264", [isa](benchmark::State& st) { BM_resize_nhwc(st, isa); });
      reg("pil_resize_rgb_548x342_to_1025x640", [isa](benchmark::State& st) { BM_pil_resize_rgb(st, isa); });
    }
  }
} const register_kernels_a;

}  // namespace
