// bench/kernels/bench_softmax.cpp: softmax over rows, 800 x 10560 (100 queries x 8 heads over the
// largest cross-attention key set). Bytes: the rows read and written once.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

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

[[maybe_unused]] const bool registered = [] {
  per_isa("Softmax/800x10560", BM_softmax);
  return true;
}();

}  // namespace
