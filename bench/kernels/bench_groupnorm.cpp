// bench/kernels/bench_groupnorm.cpp: the two GroupNorm phases on the stride-4 map 160 x 264 x 256:
// statistics (x read once; 3 FLOP per element) and the affine + ReLU in place, as the model runs
// it (x read and written; 2 FLOP per element).
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

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

[[maybe_unused]] const bool registered = [] {
  per_isa("GroupNorm/stats_160x264x256", BM_groupnorm_stats);
  per_isa("GroupNorm/affine_relu_160x264x256", BM_groupnorm_affine_relu);
  return true;
}();

}  // namespace
