// bench/kernels/bench_resize.cpp: bilinear resizes at the model's sizes: 100 mask planes
// 160 x 264 up to the 640 x 1056 input and down to the 80 x 132 attention masks, and the pixel
// decoder's NHWC 80 x 132 x 256 -> 160 x 264. Bytes: source and destination once; FLOP (NHWC):
// 6 per output element.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "bench/kernels/bench_util.h"
#include "kernels/bilinear_taps.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::kbench;

// P planes H x W -> oh x ow
void BM_resize_planes(benchmark::State& st, Isa isa, int64_t P, int64_t H, int64_t W, int64_t oh, int64_t ow) {
  const std::vector<float> src = randn((size_t)(P * H * W), 10);
  std::vector<float> dst((size_t)(P * oh * ow));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    for (int64_t p = 0; p < P; ++p)
      T.resize_bilinear_plane_rows(src.data() + p * H * W, H, W, dst.data() + p * oh * ow, oh, ow, 0, oh);
    benchmark::DoNotOptimize(dst.data());
  }
  set_rates(st, 4.0 * P * (H * W + oh * ow), 0);
  st.counters["Mpix/s"] = benchmark::Counter(1e-6 * P * oh * ow * (double)st.iterations(), benchmark::Counter::kIsRate);
}

// Post-processing's mask upsample for a 548 x 342 photo, 64 output rows at a time with
// resize_bilinear_window: 160 x 264 -> the crop box (1025 columns) of the 640 x 1056 padded size,
// the crop rows the band reads, then those rows -> 342 x 548. Per mask plane.
void BM_resize_window_mask(benchmark::State& st, Isa isa) {
  const int64_t H = 160, W = 264, Hp = 640, Wp = 1056, ch = 640, cw = 1025, H0 = 342, W0 = 548, band = 64;
  const std::vector<float> src = randn((size_t)(H * W), 12);
  std::vector<float> crop((size_t)(band * 2 + 4) * cw), dst((size_t)(H0 * W0));
  const kern::KernelTable& T = kern::table_for(isa);
  const float sy = kern::torch_linear_scale(ch, H0);
  for (auto _ : st) {
    for (int64_t y0 = 0; y0 < H0; y0 += band) {
      const int64_t y1 = std::min(H0, y0 + band);
      const int64_t r0 = kern::torch_linear_tap(ch, H0, sy, y0).i0, r1 = kern::torch_linear_tap(ch, H0, sy, y1 - 1).i1 + 1;
      T.resize_bilinear_window(src.data(), W, 0, H, W, crop.data(), cw, Hp, Wp, r0, r1, 0, cw);
      T.resize_bilinear_window(crop.data(), cw, r0, ch, cw, dst.data() + y0 * W0, W0, H0, W0, y0, y1, 0, W0);
    }
    benchmark::DoNotOptimize(dst.data());
  }
  st.counters["Mpix/s"] = benchmark::Counter(1e-6 * H0 * W0 * (double)st.iterations(), benchmark::Counter::kIsRate);
}

void BM_resize_nhwc(benchmark::State& st, Isa isa) {
  const int64_t H = 80, W = 132, C = 256, oh = 160, ow = 264;
  const std::vector<float> src = randn((size_t)(H * W * C), 11);
  std::vector<float> dst((size_t)(oh * ow * C));
  const kern::KernelTable& T = kern::table_for(isa);
  for (auto _ : st) {
    T.resize_bilinear_nhwc_rows(src.data(), H, W, C, dst.data(), oh, ow, 0, oh);
    benchmark::DoNotOptimize(dst.data());
  }
  set_rates(st, 4.0 * C * (H * W + oh * ow), 6.0 * oh * ow * C);
}

[[maybe_unused]] const bool registered = [] {
  per_isa("Resize/planes_100x160x264_to_640x1056",
          [](benchmark::State& st, Isa isa) { BM_resize_planes(st, isa, 100, 160, 264, 640, 1056); });
  per_isa("Resize/planes_100x160x264_to_80x132",
          [](benchmark::State& st, Isa isa) { BM_resize_planes(st, isa, 100, 160, 264, 80, 132); });
  per_isa("Resize/nhwc_80x132x256_to_160x264", BM_resize_nhwc);
  per_isa("Resize/window_mask_160x264_to_548x342", BM_resize_window_mask);
  return true;
}();

}  // namespace
