// bench/kernels/bench_layernorm.cpp: LayerNorm 13860 x 256 with a residual (the encoder's
// norm1/norm2). Bytes: x, residual and y once; FLOP: 8 per element.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

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

[[maybe_unused]] const bool registered = [] {
  per_isa("LayerNorm/13860x256_residual", BM_layernorm);
  return true;
}();

}  // namespace
