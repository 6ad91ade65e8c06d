// bench/kernels/bench_mask_row_fused.cpp: one 4000-column output row of an upsampled mask (a 12 MP
// photo's width) through kern::mask_row_fused, as the streaming post-processing runs it: statistics
// with the bit words (pass A), paste (a pasted part in pass B, score 0.8), person map (a human), and
// the generic body's sets (statistics alone, paste + bits, person + bits, bits only). Bytes: the two
// source rows read, plus what each sink reads and writes. Also kern::and_popcount (the part/human
// overlaps from those bits).
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

enum class Use { StatsBits, Paste, Person, Stats, PasteBits, PersonBits, Bits };

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
  if (use == Use::Stats || use == Use::StatsBits) o.count = &count, o.sig_sum = &sig_sum, o.first = &first, o.last = &last;
  if (use != Use::Stats && use != Use::Paste && use != Use::Person) {
    o.bits = bits.data();
    bytes += n / 8.0;
  }
  if (use == Use::Paste || use == Use::PasteBits) o.cat = cat.data(), o.times = times.data(), o.score = 0.8f, bytes += 16.0 * n;
  if (use == Use::Person || use == Use::PersonBits) o.best = best.data(), o.who = who.data(), o.id = 1, bytes += 10.0 * n;
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

// kern::and_popcount over one 64-row block of two 4000-column bit masks (a part/human overlap of
// a 12 MP photo's post-processing: 63 words a row).
void BM_and_popcount(benchmark::State& st, Isa isa) {
  const int64_t ld = 63, rows = 64;
  std::vector<uint64_t> a((size_t)(ld * rows)), b((size_t)(ld * rows));
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < a.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    a[i] = x;
    b[i] = x * 0xbf58476d1ce4e5b9ull;
  }
  const kern::KernelTable& T = kern::table_for(isa);
  int64_t count = 0;
  for (auto _ : st) {
    T.and_popcount(a.data(), b.data(), ld, rows, ld, &count);
    benchmark::DoNotOptimize(count);
  }
  set_rates(st, 16.0 * ld * rows, 0);
}

[[maybe_unused]] const bool registered = [] {
  for (auto* b : per_isa("AndPopcount/63x64", [](benchmark::State& s, Isa i) { BM_and_popcount(s, i); }))
    b->Unit(benchmark::kMicrosecond);
  const std::pair<const char*, Use> uses[] = {
      {"stats+bits", Use::StatsBits}, {"paste", Use::Paste},           {"person", Use::Person},
      {"stats", Use::Stats},          {"paste+bits", Use::PasteBits}, {"person+bits", Use::PersonBits},
      {"bits", Use::Bits}};
  for (const auto& [name, use] : uses)
    for (auto* b : per_isa(std::string("MaskRowFused/") + name + "/4000",
                           [use = use](benchmark::State& s, Isa i) { BM_mask_row_fused(s, i, use); }))
      b->Unit(benchmark::kMicrosecond);
  return true;
}();

}  // namespace
