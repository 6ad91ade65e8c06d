// bench/kernels/bench_util.h: what the kernel benchmarks (bench/kernels/bench_<op>.cpp) share:
// random inputs, the rate counters and the registration of a benchmark once per ISA path.
//
// Per-ISA benchmarks call one path's single-threaded chunk function (kern::table_for(isa)) on the
// whole problem, so the numbers compare ISAs on one core; the "threaded" ones call the entry
// point of kernels.h on the active path, split over the OpenMP pool. Counters: bytes_per_second =
// (bytes read + bytes written) per second, the minimum traffic of the op (inputs once, outputs
// once); GFLOP/s where arithmetic dominates (each file's header gives its formulas). Run briefly:
//   ./bench_kernels --benchmark_filter=Softmax --benchmark_min_time=0.05
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace m2fp::kern::kbench {

inline std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// bytes and flops are per iteration; flops = 0 leaves GFLOP/s out.
inline void set_rates(benchmark::State& st, double bytes, double flops) {
  st.SetBytesProcessed((int64_t)(bytes * (double)st.iterations()));
  if (flops > 0)
    st.counters["GFLOP/s"] =
        benchmark::Counter(flops * 1e-9 * (double)st.iterations(), benchmark::Counter::kIsRate);
}

// Registers fn(state, isa) as "<name>/<isa>" for each of `isas` this CPU supports (milliseconds);
// returns the registrations, for arguments.
template <class Fn>
std::vector<benchmark::internal::Benchmark*> per_isa(
    const std::string& name, Fn fn,
    std::initializer_list<Isa> isas = {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
  std::vector<benchmark::internal::Benchmark*> regs;
  for (Isa isa : isas) {
    if (!isa_supported(isa)) continue;
    regs.push_back(benchmark::RegisterBenchmark((name + "/" + isa_name(isa)).c_str(),
                                                [fn, isa](benchmark::State& st) { fn(st, isa); })
                       ->Unit(benchmark::kMillisecond));
  }
  return regs;
}

}  // namespace m2fp::kern::kbench
