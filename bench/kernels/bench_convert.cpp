// bench/kernels/bench_convert.cpp: fp32 -> bfloat16 rounding (round_bf16) at the encoder's size,
// [13860, 256] (the tokens of a 640x1056 input), alone and as the sum of two rows (src + pos); per
// ISA on one core, and the threaded entry point on the active path.
//   bytes = the fp32 read (one or two inputs) + the bf16 written
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

struct ConvertData {
  static constexpr int64_t n = 13860 * 256;
  std::vector<float> x, a;
  std::vector<uint16_t> y;
  ConvertData() : x((size_t)n), a((size_t)n), y((size_t)n) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (size_t i = 0; i < (size_t)n; ++i) x[i] = nd(rng), a[i] = nd(rng);
  }
};

ConvertData& data() {
  static ConvertData d;
  return d;
}

void BM_RoundBf16(benchmark::State& state, Isa isa, bool sum) {
  ConvertData& d = data();
  const kern::KernelTable& t = kern::table_for(isa);
  for (auto _ : state) {
    t.round_bf16(d.x.data(), sum ? d.a.data() : nullptr, d.y.data(), d.n);
    benchmark::DoNotOptimize(d.y.data());
  }
  set_rates(state, (double)d.n * ((sum ? 8 : 4) + 2), 0);
}

void BM_RoundBf16Threaded(benchmark::State& state) {
  ConvertData& d = data();
  state.SetLabel(kern::isa_name(kern::active_isa()));
  for (auto _ : state) {
    kern::round_bf16(d.x.data(), d.a.data(), d.y.data(), d.n);
    benchmark::DoNotOptimize(d.y.data());
  }
  set_rates(state, (double)d.n * 10, 0);
}

[[maybe_unused]] const bool registered = [] {
  per_isa("RoundBf16/13860x256", [](benchmark::State& s, Isa isa) { BM_RoundBf16(s, isa, false); });
  per_isa("RoundBf16Sum/13860x256", [](benchmark::State& s, Isa isa) { BM_RoundBf16(s, isa, true); });
  benchmark::RegisterBenchmark("RoundBf16Sum/13860x256/threaded", BM_RoundBf16Threaded)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  return true;
}();

}  // namespace
