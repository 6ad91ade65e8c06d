// bench/kernels/bench_kernels_b.cpp: throughput of the part-B kernels at the model's sizes, per
// ISA path (single-threaded chunk functions, so the paths compare directly), plus the threaded
// entry points on the active path.
//
//   ms_deform_attn : 13860 queries (levels 20x33, 40x66, 80x132 of a 640x1056 input), 8 heads x
//                    32, 3 levels x 4 points. FLOP = 2 per MAC, counting the 4 bilinear corner
//                    reads of every sample as MACs: Lq*heads*L*P*4*dh*2. Bytes: corner rows read
//                    + the offsets/logits rows + the output.
//   attention      : 100 queries, 8 heads x 32; cross-attention over Lk = 660, 2640, 10560 keys
//                    with region masks (each query allows one rectangle of ~1/4 of the map,
//                    like Mask2Former's sigmoid(mask) >= 0.5 regions), self-attention Lk = 100
//                    without mask. FLOP = heads*Lq*Lk*dh*4 (q.k and p.v, 2 per MAC, masked keys
//                    included). Bytes: q, k, v, mask and the output once.
// Counters: GFLOP/s and GB/s (rates over the measured time). Run briefly, e.g.
//   bench_kernels --benchmark_filter='MsDeform|Attention' --benchmark_min_time=0.05
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace {

using m2fp::kern::Isa;
namespace kern = m2fp::kern;

const Isa kIsas[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512};

bool pick_isa(benchmark::State& state, int idx, Isa* isa) {
  *isa = kIsas[idx];
  if (!kern::isa_supported(*isa)) {
    state.SkipWithError("ISA not supported on this CPU");
    return false;
  }
  state.SetLabel(kern::isa_name(*isa));
  return true;
}

// ---- multi-scale deformable attention at model size ------------------------------------------
struct MsdaModel {
  static constexpr int L = 3, P = 4, heads = 8, dh = 32;
  static constexpr int64_t ld_qp = heads * L * P * 3;  // 192 offsets + 96 logits
  std::vector<int64_t> shapes{20, 33, 40, 66, 80, 132}, starts{0, 660, 3300};
  int64_t len_in = 13860, Lq = 13860;
  std::vector<float> value, ref, qp, out;  // [Len_in, 256], [Lq, 2], [Lq, 288], [Lq, 256]
  MsdaModel() {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    value.resize((size_t)len_in * heads * dh);
    for (auto& x : value) x = nd(rng);
    qp.resize((size_t)Lq * ld_qp);
    for (auto& x : qp) x = 2.f * nd(rng);  // offsets of a few pixels, logits ~ N(0, 2)
    ref.resize((size_t)Lq * 2);
    int64_t q = 0;
    for (int l = 0; l < L; ++l)  // reference point of each token: its pixel centre
      for (int64_t r = 0; r < shapes[2 * l]; ++r)
        for (int64_t c = 0; c < shapes[2 * l + 1]; ++c, ++q) {
          ref[2 * q] = (c + 0.5f) / shapes[2 * l + 1];
          ref[2 * q + 1] = (r + 0.5f) / shapes[2 * l];
        }
    out.resize((size_t)Lq * heads * dh);
  }
  double flops() const { return (double)Lq * heads * L * P * 4 * dh * 2; }
  double bytes() const {
    return (double)Lq * heads * L * P * 4 * dh * 4 + (double)Lq * ld_qp * 4 + (double)Lq * heads * dh * 4;
  }
};

MsdaModel& msda_model() {
  static MsdaModel m;
  return m;
}

void set_rates(benchmark::State& state, double flops, double bytes) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_MsDeformAttn(benchmark::State& state) {
  Isa isa;
  if (!pick_isa(state, (int)state.range(0), &isa)) return;
  MsdaModel& m = msda_model();
  const kern::KernelTable& t = kern::table_for(isa);
  for (auto _ : state) {
    t.ms_deform_attn(m.value.data(), m.shapes.data(), m.starts.data(), m.L, m.P, m.heads, m.dh,
                     m.ref.data(), m.qp.data(), m.qp.data() + 192, m.ld_qp, m.out.data(), 0, m.Lq);
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.flops(), m.bytes());
}
BENCHMARK(BM_MsDeformAttn)->ArgName("isa")->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

void BM_MsDeformAttnThreaded(benchmark::State& state) {
  MsdaModel& m = msda_model();
  state.SetLabel(kern::isa_name(kern::active_isa()));
  for (auto _ : state) {
    kern::ms_deform_attn(m.value.data(), m.shapes.data(), m.starts.data(), m.L, m.P, m.heads, m.dh,
                         m.ref.data(), m.qp.data(), m.qp.data() + 192, m.ld_qp, m.out.data(), m.Lq);
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.flops(), m.bytes());
}
BENCHMARK(BM_MsDeformAttnThreaded)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- masked attention at the decoder's sizes -------------------------------------------------
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

// All heads on one thread, in calls of qb queries: 50 is what kern::masked_attention hands out
// on two threads (each call reuses every block of keys for all its queries), 8 shows the cost
// of small calls (k and v streamed from memory once per 8 queries).
void BM_Attention(benchmark::State& state) {
  Isa isa;
  if (!pick_isa(state, (int)state.range(0), &isa)) return;
  AttnModel& m = attn_model(state.range(1));
  const int64_t qb = state.range(2);
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
  set_rates(state, m.flops(), m.bytes());
}
BENCHMARK(BM_Attention)
    ->ArgNames({"isa", "Lk", "qb"})
    ->ArgsProduct({{0, 1, 2}, {660, 2640, 10560, 100}, {50}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention)
    ->ArgNames({"isa", "Lk", "qb"})
    ->ArgsProduct({{1, 2}, {10560}, {8}})
    ->Unit(benchmark::kMillisecond);

void BM_MaskedAttentionThreaded(benchmark::State& state) {
  AttnModel& m = attn_model(state.range(0));
  state.SetLabel(kern::isa_name(kern::active_isa()));
  const uint8_t* mask = m.mask.empty() ? nullptr : m.mask.data();
  for (auto _ : state) {
    kern::masked_attention(m.q.data(), m.E, m.k.data(), m.E, m.v.data(), m.E, mask, m.out.data(), m.E,
                           m.Lq, m.Lk, m.heads, m.dh, 1.f / std::sqrt(32.f));
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.flops(), m.bytes());
}
BENCHMARK(BM_MaskedAttentionThreaded)
    ->ArgName("Lk")
    ->Arg(660)->Arg(2640)->Arg(10560)->Arg(100)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_SinePosEmbed(benchmark::State& state) {
  const int64_t H = state.range(0), W = state.range(1);
  std::vector<float> out((size_t)(H * W * 256));
  for (auto _ : state) {
    kern::sine_pos_embed(H, W, 128, 10000.f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GB/s"] = benchmark::Counter(out.size() * 4e-9 * state.iterations(),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SinePosEmbed)->Args({80, 132})->Unit(benchmark::kMillisecond);

}  // namespace
