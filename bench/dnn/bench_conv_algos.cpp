// bench/dnn/bench_conv_algos.cpp: the network's stride-1 3x3 convolution shapes (640x1056 benchmark
// input) run as Winograd and as direct, alternately, each input in the layout the layer before it
// gives (a 1x1 direct convolution's output); prints the minimum of --reps runs of each and their ratio.
// The evidence behind engine/dnn.cpp's Winograd caps and bf16's 128-channel rule: the "winograd" column is
// what the default runs (the pixel decoder's layer_1 in strips of 16 rows; layers it keeps direct say
// "direct" there). M2FP_WINOGRAD=all tries every layer on the whole map (the stem's conv3, res5, 64-channel
// layers, layer_1 with its 200 MB scratchpad); timings on a loaded machine swing widely, so compare the
// two columns of one run, and repeat.
//
// --precision bf16: the layers as the bf16 network has them, bf16 direct against fp32 Winograd with its
// conversions: the input a bf16 1x1 layer's output (bf16, oneDNN's layout; layer_1: fp32 channels-last,
// as the pixel decoder gives it, and fp32 channels-last out), converted to fp32 for Winograd inside its
// time; Winograd's fp32 output is converted by the next bf16 layer as it reads it, so the "+next"
// columns add a bf16 1x1 layer reading each output (layer_1: none, the GroupNorm reads fp32).
//
// --cpu-time: the process's CPU time instead of wall time (with OMP_NUM_THREADS=1 on a host that other
// jobs load, the work without the time the thread waited for a core; with more threads it counts
// their spinning at barriers too).
//
//   OMP_NUM_THREADS=1 build/bench/bench_conv_algos [--reps 5] [--precision fp32|bf16] [--cpu-time]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <time.h>

#include "engine/dnn.h"

using namespace m2fp;

namespace {
struct Shape {
  const char* name;
  int H, W, in_c, out_c;
};
const Shape kShapes[] = {{"stem.conv2", 320, 528, 64, 64},   {"stem.conv3", 320, 528, 64, 128},
                         {"res2.conv2", 160, 264, 64, 64},   {"res3.conv2", 80, 132, 128, 128},
                         {"res4.conv2", 40, 66, 256, 256},   {"res5.conv2", 20, 33, 512, 512},
                         {"layer_1", 160, 264, 256, 256}};

struct Case {
  Shape s;
  dnn::Conv2d pre, wino, direct, next;
  Tensor x;
  bool hwc = false;  // bf16 layer_1: fp32 channels-last in and out, no next layer
};
}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  dnn::Precision prec = dnn::Precision::F32;
  bool cpu_time = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--cpu-time")) {
      cpu_time = true;
      continue;
    }
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc && dnn::parse_precision(argv[i + 1], &prec)) {
      ++i;
    } else {
      std::fprintf(stderr, "usage: bench_conv_algos [--reps N] [--precision fp32|bf16] [--cpu-time]\n");
      return 2;
    }
  }
  const bool bf16 = prec == dnn::Precision::BF16;
  if (bf16 && !dnn::bf16_available()) {
    std::fprintf(stderr, "bench_conv_algos: no bf16 convolutions on this CPU\n");
    return 1;
  }
  if (reps < 1 || reps > 1000) {
    std::fprintf(stderr, "bench_conv_algos: --reps must be 1..1000\n");
    return 2;
  }
  std::printf("oneDNN %s on %s; %s layers; min of %d runs each (%s), alternating; synthetic weights and inputs\n",
              dnn::onednn_version().c_str(), dnn::onednn_isa(), dnn::precision_name(prec), reps,
              cpu_time ? "process CPU time" : "wall time");
  auto now_ms = [cpu_time] {
    timespec ts{};
    clock_gettime(cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  };
  std::vector<std::unique_ptr<Case>> cases;
  std::mt19937 g(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  // Winograd primitives first, under the mode M2FP_WINOGRAD gives (set_winograd(false) below
  // cannot give "all" back); the default (planned) runs them as a plan that chose them would (on).
  if (dnn::winograd_mode() == dnn::WinogradMode::Planned) dnn::set_winograd_mode(dnn::WinogradMode::On);
  for (const Shape& s : kShapes) {
    auto c = std::make_unique<Case>();
    c->s = s;
    std::vector<float> w((size_t)s.out_c * s.in_c * 9), w1((size_t)s.in_c * s.in_c), b(s.out_c);
    for (float& v : w) v = 0.05f * nd(g);
    for (float& v : w1) v = 0.05f * nd(g);
    for (float& v : b) v = 0.1f * nd(g);
    std::vector<float> w2((size_t)s.out_c * s.out_c);
    for (float& v : w2) v = 0.05f * nd(g);
    c->hwc = bf16 && !std::strcmp(s.name, "layer_1");
    c->pre.init({s.in_c, s.in_c, 1, 1, 1, 0, 1}, w1.data(), nullptr, prec);
    c->wino.init({s.in_c, s.out_c, 3, 3, 1, 1, 1}, w.data(), b.data(), prec, s.name);
    c->direct.init({s.in_c, s.out_c, 3, 3, 1, 1, 1}, w.data(), b.data(), prec, s.name);
    c->next.init({s.out_c, s.out_c, 1, 1, 1, 0, 1}, w2.data(), nullptr, prec);
    c->wino.prepare(s.H, s.W, false, !c->hwc, c->hwc);
    Tensor x0 = Tensor::empty({s.H, s.W, s.in_c}, Layout::HWC);
    for (int64_t i = 0; i < x0.numel(); ++i) x0.data()[i] = nd(g);
    c->x = c->hwc ? x0 : c->pre(x0);
    cases.push_back(std::move(c));
  }
  dnn::set_winograd(false);
  for (auto& c : cases) c->direct.prepare(c->s.H, c->s.W, false, !c->hwc, c->hwc);
  for (auto& c : cases) {
    double best[2] = {1e30, 1e30}, next[2] = {1e30, 1e30};
    for (int r = 0; r <= reps; ++r)  // run 0 warms up
      for (int k = 0; k < 2; ++k) {
        const double t0 = now_ms();
        const Tensor y = c->hwc ? (k == 0 ? c->direct : c->wino)(c->x, nullptr, false, true)
                                : (k == 0 ? c->direct : c->wino)(c->x, nullptr, true);
        const double t1 = now_ms();
        if (bf16 && !c->hwc) c->next(y, nullptr, true);
        const double t2 = now_ms();
        if (r > 0) {
          best[k] = std::min(best[k], t1 - t0);
          next[k] = std::min(next[k], t2 - t1);
        }
      }
    const Shape& s = c->s;
    // What running it as Winograd adds (weights over the direct ones; the scratchpad is shared by all
    // Winograd layers, the largest kept) and saves: ms saved per MB of weights added, the plan's ranking.
    c->wino.set_winograd_reference(s.H, s.W);
    const dnn::WinogradLayer wl = c->wino.winograd_candidate();
    const double added_mb = wl.winograd_bytes > wl.direct_bytes ? (wl.winograd_bytes - wl.direct_bytes) / 1048576.0 : 0;
    std::printf("%-11s %3dx%-3d %3d->%-3d  direct %8.2f ms  %-8s %8.2f ms  direct/this %.2fx  weights +%5.1f MB, "
                "scratchpad %5.1f MB, saves %6.2f ms/MB\n",
                s.name, s.H, s.W, s.in_c, s.out_c, best[0], c->wino.algorithm_for(s.H, s.W).c_str(), best[1],
                best[0] / best[1], added_mb, wl.scratchpad_bytes / 1048576.0,
                added_mb > 0 ? (best[0] - best[1]) / added_mb : 0.0);
    if (bf16 && !c->hwc)  // the next bf16 layer reading the output: bf16 as it is, or fp32 converted
      std::printf("%-11s next bf16 1x1 reading it: after direct %6.2f ms, after %-8s %6.2f ms; with it "
                  "direct/this %.2fx\n",
                  s.name, next[0], c->wino.algorithm_for(s.H, s.W).c_str(), next[1],
                  (best[0] + next[0]) / (best[1] + next[1]));
    std::fflush(stdout);
  }
  return 0;
}
