// bench/kernels/bench_attention.cpp: masked attention at the decoder's sizes: 100 queries,
// 8 heads x 32; cross-attention over Lk = 660, 2640, 10560 keys with region masks (each query
// allows one rectangle of ~1/4 of the map, like Mask2Former's sigmoid(mask) >= 0.5 regions),
// self-attention Lk = 100 without mask; per ISA on one core, and the threaded entry point on
// the active path.
//   FLOP  = heads*Lq*Lk*dh*4 (q.k and p.v, 2 per MAC, masked keys included)
//   bytes = q, k, v, mask and the output once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

struct AttnModel {
  static constexpr int heads = 8, dh = 32;
  static constexpr int64_t Lq = 100, E = heads * dh;
  int64_t Lk;
  std::vector<float> q, k, v, out;  // [Lq, E], [Lk, E], [Lk, E], [Lq, E]
  std::vector<uint8_t> mask;        // [Lq, Lk] or empty
  explicit AttnModel(int64_t lk) : Lk(lk) {
    std::mt19937 rng((uint32_t)lk);
    std::normal_distribution<float> nd(0.f, 1.f);
    q.resize((size_t)(Lq * E));
    k.resize((size_t)(Lk * E));
    v.resize((size_t)(Lk * E));
    for (auto* a : {&q, &k, &v})
      for (auto& x : *a) x = nd(rng);
    out.resize((size_t)(Lq * E));
    if (Lk == Lq) return;  // self-attention: no mask
    // The level's map: Lk = 660, 2640, 10560 = (20x33) * 4^i.
    const int64_t Hm = Lk == 660 ? 20 : Lk == 2640 ? 40 : 80, Wm = Lk / Hm;
    mask.assign((size_t)(Lq * Lk), 1);
    std::uniform_int_distribution<int64_t> ry(0, Hm / 2), rx(0, Wm / 2);
    for (int64_t i = 0; i < Lq; ++i) {
      const int64_t y0 = ry(rng), x0 = rx(rng);
      for (int64_t y = y0; y < y0 + Hm / 2; ++y)
        for (int64_t x = x0; x < x0 + Wm / 2; ++x) mask[i * Lk + y * Wm + x] = 0;
    }
  }
  double flops() const { return (double)heads * Lq * Lk * dh * 4; }
  double bytes() const { return 4.0 * (2 * Lq * E + 2 * Lk * E) + (double)mask.size(); }
};

AttnModel& attn_model(int64_t Lk) {
  static std::vector<AttnModel*> models;
  for (AttnModel* m : models)
    if (m->Lk == Lk) return *m;
  models.push_back(new AttnModel(Lk));
  return *models.back();
}

// All heads on one thread in one-head calls (attention_head) of qb queries: 100 = one call per
// head (each call reuses every block of keys for all its queries), 50 what kern::masked_attention
// handed out on two threads before it called attention_heads, 8 shows the cost of small calls (k
// and v streamed from memory once per 8 queries).
void BM_Attention(benchmark::State& state, Isa isa) {
  AttnModel& m = attn_model(state.range(0));
  const int64_t qb = state.range(1);
  const kern::KernelTable& t = kern::table_for(isa);
  const float scale = 1.f / std::sqrt(32.f);
  const uint8_t* mask = m.mask.empty() ? nullptr : m.mask.data();
  for (auto _ : state) {
    for (int h = 0; h < m.heads; ++h)
      for (int64_t q0 = 0; q0 < m.Lq; q0 += qb)
        t.attention_head(m.q.data() + h * m.dh, m.E, m.k.data() + h * m.dh, m.E, m.v.data() + h * m.dh,
                         m.E, mask, m.out.data() + h * m.dh, m.E, m.Lk, m.dh, scale, q0,
                         std::min<int64_t>(m.Lq, q0 + qb));
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

// All heads and queries in one attention_heads call (what kern::masked_attention hands one thread
// when it runs alone): each block of keys is read once for all the heads, and its mask bytes are
// transposed once per tile for all of them.
void BM_AttentionHeads(benchmark::State& state, Isa isa) {
  AttnModel& m = attn_model(state.range(0));
  const kern::KernelTable& t = kern::table_for(isa);
  const float scale = 1.f / std::sqrt(32.f);
  const uint8_t* mask = m.mask.empty() ? nullptr : m.mask.data();
  for (auto _ : state) {
    t.attention_heads(m.q.data(), m.E, m.k.data(), m.E, m.v.data(), m.E, mask, m.out.data(), m.E, m.Lk, m.dh,
                      scale, 0, m.Lq, m.heads);
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

// The same with bfloat16 k and v and the products in bf16 (attention_heads_bf16: the bf16 decoder's
// cross-attention; VDPBF16PS on AVX-512 where the CPU has AVX512-BF16). Same FLOP count.
void BM_AttentionHeadsBf16(benchmark::State& state, Isa isa) {
  AttnModel& m = attn_model(state.range(0));
  static std::vector<uint16_t> k16, v16;
  k16.resize(m.k.size());
  v16.resize(m.v.size());
  for (size_t i = 0; i < m.k.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &m.k[i], 4);
    k16[i] = (uint16_t)(u >> 16);
    std::memcpy(&u, &m.v[i], 4);
    v16[i] = (uint16_t)(u >> 16);
  }
  const kern::KernelTable& t = kern::table_for(isa);
  const uint8_t* mask = m.mask.empty() ? nullptr : m.mask.data();
  for (auto _ : state) {
    t.attention_heads_bf16(m.q.data(), m.E, k16.data(), m.E, v16.data(), m.E, mask, m.out.data(), m.E, m.Lk, m.dh,
                           1.f / std::sqrt(32.f), 0, m.Lq, m.heads);
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.bytes() - 2.0 * (double)(m.k.size() + m.v.size()), m.flops());
}

void BM_MaskedAttentionThreaded(benchmark::State& state) {
  AttnModel& m = attn_model(state.range(0));
  state.SetLabel(kern::isa_name(kern::active_isa()));
  const uint8_t* mask = m.mask.empty() ? nullptr : m.mask.data();
  for (auto _ : state) {
    kern::masked_attention(m.q.data(), m.E, m.k.data(), m.E, m.v.data(), m.E, mask, m.out.data(), m.E,
                           m.Lq, m.Lk, m.heads, m.dh, 1.f / std::sqrt(32.f));
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

[[maybe_unused]] const bool registered = [] {
  for (auto* b : per_isa("Attention", BM_Attention))
    b->ArgNames({"Lk", "qb"})->ArgsProduct({{660, 2640, 10560, 100}, {50, 100}});
  for (auto* b : per_isa("Attention", BM_Attention, {Isa::Avx2, Isa::Avx512}))
    b->ArgNames({"Lk", "qb"})->Args({10560, 8});
  for (auto* b : per_isa("AttentionHeads", BM_AttentionHeads))
    b->ArgName("Lk")->Arg(660)->Arg(2640)->Arg(10560)->Arg(100);
  for (auto* b : per_isa("AttentionHeadsBf16", BM_AttentionHeadsBf16))
    b->ArgName("Lk")->Arg(660)->Arg(2640)->Arg(10560);
  benchmark::RegisterBenchmark("Attention/threaded", BM_MaskedAttentionThreaded)
      ->ArgName("Lk")
      ->Arg(660)->Arg(2640)->Arg(10560)->Arg(100)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  return true;
}();

}  // namespace
