// bench/kernels/bench_mask_row_fused.cpp: one 4000-column output row of an upsampled mask (a 12 MP
// photo's width) through kern::mask_row_fused, as the streaming post-processing runs it: statistics
// (pass A), paste + bits (a pasted part in pass B), person map + bits (a human), bits only. Bytes:
// the two source rows read, plus what each sink reads and writes.
#include <benchmark/benchmark.h>

#include <string>
#include <utility>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

enum class Use { Stats, PasteBits, PersonBits, Bits };

void BM_mask_row_fused(benchmark::State& st, Isa isa, Use use) {
  const int64_t n = 4000;
  const std::vector<float> h0 = randn((size_t)n, 1), h1 = randn((size_t)n, 2);
  std::vector<float> cat((size_t)n, 0.f), times((size_t)n, 0.f), best((size_t)n, 0.f);
  std::vector<uint8_t> who((size_t)n, 0);
  std::vector<uint64_t> bits((size_t)(n + 63) / 64);
  int64_t count = 0, first, last;
  double sig_sum = 0;
  kern::MaskRowSinks o;
  double bytes = 8.0 * n;
  if (use == Use::Stats) {
    o.count = &count, o.sig_sum = &sig_sum, o.first = &first, o.last = &last;
  } else {
    o.bits = bits.data();
    bytes += n / 8.0;
  }
  if (use == Use::PasteBits) o.cat = cat.data(), o.times = times.data(), o.score = 0.8f, bytes += 16.0 * n;
  if (use == Use::PersonBits) o.best = best.data(), o.who = who.data(), o.id = 1, bytes += 10.0 * n;
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.mask_row_fused(h0.data(), h1.data(), 0.625f, 0.375f, n, &o);
    benchmark::DoNotOptimize(bits.data());
    benchmark::DoNotOptimize(cat.data());
    benchmark::ClobberMemory();
  }
  set_rates(st, bytes, 0);
  st.counters["Mpx/s"] = benchmark::Counter(1e-6 * n * (double)st.iterations(), benchmark::Counter::kIsRate);
}

[[maybe_unused]] const bool registered = [] {
  const std::pair<const char*, Use> uses[] = {
      {"stats", Use::Stats}, {"paste+bits", Use::PasteBits}, {"person+bits", Use::PersonBits}, {"bits", Use::Bits}};
  for (const auto& [name, use] : uses)
    for (auto* b : per_isa(std::string("MaskRowFused/") + name + "/4000",
                           [use = use](benchmark::State& s, Isa i) { BM_mask_row_fused(s, i, use); }))
      b->Unit(benchmark::kMicrosecond);
  return true;
}();

}  // namespace
