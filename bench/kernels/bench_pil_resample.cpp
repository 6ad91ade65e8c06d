// bench/kernels/bench_pil_resample.cpp: PIL BILINEAR resize of a 548 x 342 RGB image to
// 1025 x 640 (the model's input size), and of a 4000 x 3000 one (a phone's 12 MP photo) to 853 x 640
// (x4.7 down: 11 taps a pass): the horizontal pass over the rows the vertical pass reads, then the
// vertical pass; the /h and /v cases time one pass alone. Bytes: source and destination once.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/internal.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

// passes: 1 horizontal, 2 vertical, 3 both.
void pil_resize_rgb(benchmark::State& st, Isa isa, int64_t W, int64_t H, int64_t ow, int64_t oh, int passes) {
  const int ch = 3;
  std::mt19937_64 g(12);
  std::vector<uint8_t> src((size_t)(H * W * ch));
  for (uint8_t& v : src) v = (uint8_t)(g() & 255);
  std::vector<int32_t> xb, xk, yb, yk;
  const int kx = kern::pil_bilinear_coeffs(W, ow, &xb, &xk);
  const int ky = kern::pil_bilinear_coeffs(H, oh, &yb, &yk);
  const int64_t ymin = yb[0], ymax = yb[2 * (oh - 1)] + yb[2 * (oh - 1) + 1];
  for (int64_t i = 0; i < oh; ++i) yb[2 * i] -= (int32_t)ymin;
  std::vector<uint8_t> tmp((size_t)((ymax - ymin) * ow * ch)), dst((size_t)(oh * ow * ch));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    if (passes & 1)
      T.pil_resample_h_u8(src.data() + ymin * W * ch, W, ch, tmp.data(), ow, xb.data(), xk.data(), kx, 0,
                          ymax - ymin);
    if (passes & 2) T.pil_resample_v_u8(tmp.data(), ow, ch, dst.data(), yb.data(), yk.data(), ky, 0, oh);
    benchmark::DoNotOptimize(dst.data());
  }
  set_rates(st, (double)(H * W + oh * ow) * ch, 0);
  st.counters["Mpix/s"] = benchmark::Counter(1e-6 * oh * ow * (double)st.iterations(), benchmark::Counter::kIsRate);
}

void BM_pil_resize_rgb(benchmark::State& st, Isa isa) { pil_resize_rgb(st, isa, 548, 342, 1025, 640, 3); }
void BM_pil_resize_12mp(benchmark::State& st, Isa isa) { pil_resize_rgb(st, isa, 4000, 3000, 853, 640, 3); }
void BM_pil_resize_12mp_h(benchmark::State& st, Isa isa) { pil_resize_rgb(st, isa, 4000, 3000, 853, 640, 1); }
void BM_pil_resize_12mp_v(benchmark::State& st, Isa isa) { pil_resize_rgb(st, isa, 4000, 3000, 853, 640, 2); }

[[maybe_unused]] const bool registered = [] {
  per_isa("PilResample/rgb_548x342_to_1025x640", BM_pil_resize_rgb);
  per_isa("PilResample/rgb_4000x3000_to_853x640", BM_pil_resize_12mp);
  per_isa("PilResample/rgb_4000x3000_to_853x640/h", BM_pil_resize_12mp_h);
  per_isa("PilResample/rgb_4000x3000_to_853x640/v", BM_pil_resize_12mp_v);
  return true;
}();

}  // namespace
