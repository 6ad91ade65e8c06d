// bench/kernels/bench_pos_embed.cpp: the sine position encoding of the largest level, 80 x 132 x
// 256 channels. Bytes: the output once.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;

namespace {

using namespace kern::kbench;

void BM_SinePosEmbed(benchmark::State& state) {
  const int64_t H = state.range(0), W = state.range(1);
  std::vector<float> out((size_t)(H * W * 256));
  for (auto _ : state) {
    kern::sine_pos_embed(H, W, 128, 10000.f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(state, 4.0 * (double)out.size(), 0);
}

[[maybe_unused]] const bool registered = [] {
  benchmark::RegisterBenchmark("SinePosEmbed", BM_SinePosEmbed)->Args({80, 132})->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace
