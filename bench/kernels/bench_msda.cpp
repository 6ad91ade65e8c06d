// bench/kernels/bench_msda.cpp: fused multi-scale deformable attention at the model's size:
// 13860 queries (levels 20x33, 40x66, 80x132 of a 640x1056 input), 8 heads x 32, 3 levels x 4
// points; per ISA on one core, and the threaded entry point on the active path.
//   FLOP  = 2 per MAC, counting the 4 bilinear corner reads of every sample as MACs:
//           Lq*heads*L*P*4*dh*2
//   bytes = corner rows read + the offsets/logits rows + the output
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

struct MsdaModel {
  static constexpr int L = 3, P = 4, heads = 8, dh = 32;
  static constexpr int64_t ld_qp = heads * L * P * 3;  // 192 offsets + 96 logits
  std::vector<int64_t> shapes{20, 33, 40, 66, 80, 132}, starts{0, 660, 3300};
  int64_t len_in = 13860, Lq = 13860;
  std::vector<float> value, ref, qp, out;  // [Len_in, 256], [Lq, 2], [Lq, 288], [Lq, 256]
  std::vector<uint16_t> value16, out16;    // value truncated to bfloat16, the bf16 op's output
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
    value16.resize(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &value[i], sizeof u);
      value16[i] = (uint16_t)(u >> 16);
    }
    out16.resize(out.size());
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

void BM_MsDeformAttn(benchmark::State& state, Isa isa) {
  MsdaModel& m = msda_model();
  const kern::KernelTable& t = kern::table_for(isa);
  for (auto _ : state) {
    t.ms_deform_attn(m.value.data(), m.shapes.data(), m.starts.data(), m.L, m.P, m.heads, m.dh,
                     m.ref.data(), m.qp.data(), m.qp.data() + 192, m.ld_qp, m.out.data(), 0, m.Lq);
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

// The bfloat16 op (values and output in bf16, kern::ms_deform_attn_bf16): half the bytes per row.
void BM_MsDeformAttnBf16(benchmark::State& state, Isa isa) {
  MsdaModel& m = msda_model();
  const kern::KernelTable& t = kern::table_for(isa);
  for (auto _ : state) {
    t.ms_deform_attn_bf16(m.value16.data(), m.shapes.data(), m.starts.data(), m.L, m.P, m.heads, m.dh,
                          m.ref.data(), m.qp.data(), m.qp.data() + 192, m.ld_qp, m.out16.data(), 0, m.Lq);
    benchmark::DoNotOptimize(m.out16.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

void BM_MsDeformAttnThreaded(benchmark::State& state) {
  MsdaModel& m = msda_model();
  state.SetLabel(kern::isa_name(kern::active_isa()));
  for (auto _ : state) {
    kern::ms_deform_attn(m.value.data(), m.shapes.data(), m.starts.data(), m.L, m.P, m.heads, m.dh,
                         m.ref.data(), m.qp.data(), m.qp.data() + 192, m.ld_qp, m.out.data(), m.Lq);
    benchmark::DoNotOptimize(m.out.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

// The bf16 op's threaded entry point (kern::ms_deform_attn_bf16), as the pixel decoder calls it.
void BM_MsDeformAttnBf16Threaded(benchmark::State& state) {
  MsdaModel& m = msda_model();
  state.SetLabel(kern::isa_name(kern::active_isa()));
  for (auto _ : state) {
    kern::ms_deform_attn_bf16(m.value16.data(), m.shapes.data(), m.starts.data(), m.L, m.P, m.heads, m.dh,
                              m.ref.data(), m.qp.data(), m.qp.data() + 192, m.ld_qp, m.out16.data(), m.Lq);
    benchmark::DoNotOptimize(m.out16.data());
  }
  set_rates(state, m.bytes(), m.flops());
}

[[maybe_unused]] const bool registered = [] {
  per_isa("MsDeformAttn/13860q", BM_MsDeformAttn);
  per_isa("MsDeformAttnBf16/13860q", BM_MsDeformAttnBf16);
  benchmark::RegisterBenchmark("MsDeformAttn/13860q/threaded", BM_MsDeformAttnThreaded)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("MsDeformAttnBf16/13860q/threaded", BM_MsDeformAttnBf16Threaded)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  return true;
}();

}  // namespace
