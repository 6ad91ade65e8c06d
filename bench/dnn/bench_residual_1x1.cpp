// bench/dnn/bench_residual_1x1.cpp: the bf16 bottlenecks' last 1x1 convolutions (the ones that add the
// shortcut, then ReLU) of the 640x1056 benchmark input, three ways, straight on oneDNN:
//   binary    the residual added by a binary post-op and the ReLU by an eltwise one, with the first
//             implementation that needs no scratchpad (oneDNN 2.6: jit_bf16), what engine/dnn.cpp ran
//             before 2026-12-07;
//   sum       oneDNN's sum post-op, then the ReLU (brgconv_1x1), over the destination as it is (as the
//             fp32 layers add it: the shortcut's map is the destination, no copy);
//   add       no post-ops (brgconv_1x1), then the engine's own pass kern::add_bf16 (the residual and
//             the ReLU): what engine/dnn.cpp runs now.
// Everything channels-last bf16, as the network has it. Before each run 64 MB of other memory is written
// (the network's other layers push the weights and the residual out of the caches); the three variants
// alternate; prints the median and the minimum of --reps runs of each (wall time) and GFLOP/s at the
// median. Host speed swings: compare the columns of one run, and repeat.
//
//   OMP_NUM_THREADS=2 build/bench/bench_residual_1x1 [--reps 60]
#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/dnn.h"
#include "kernels/kernels.h"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Shape {
  const char* name;
  int H, W, ic, oc;
};

}  // namespace

int main(int argc, char** argv) {
  int reps = 60;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_residual_1x1 [--reps N]\n");
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  if (!m2fp::dnn::bf16_available()) {
    std::fprintf(stderr, "bench_residual_1x1: oneDNN has no bf16 convolutions on this CPU (needs AVX-512)\n");
    return 1;
  }
  const Shape shapes[] = {{"res2", 160, 264, 64, 256},
                          {"res3", 80, 132, 128, 512},
                          {"res4", 40, 66, 256, 1024},
                          {"res5", 20, 33, 512, 2048}};
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream st(eng);
  std::vector<unsigned char> other(64u << 20, 1);
  std::printf("oneDNN %d.%d.%d; bf16, channels-last; %d runs of each, alternating; median (min) ms; synthetic data\n",
              dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch, reps);
  for (const Shape& s : shapes) {
    const dnnl::memory::desc src({1, s.ic, s.H, s.W}, dt::bf16, tag::nhwc), dst({1, s.oc, s.H, s.W}, dt::bf16, tag::nhwc);
    const dnnl::memory::desc w({s.oc, s.ic, 1, 1}, dt::bf16, tag::any), b({s.oc}, dt::f32, tag::x);
    const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                            src, w, b, dst, {1, 1}, {0, 0}, {0, 0});
    const double gflop = 2.0 * s.H * s.W * s.ic * s.oc / 1e9;
    dnnl::memory msrc(src, eng), mdst(dst, eng), mres(dst, eng), mb(b, eng);
    const size_t n = dst.get_size() / 2;
    // bf16 values around 1 (0x3f80 +- a little), biases 0
    for (size_t i = 0; i < src.get_size() / 2; ++i) static_cast<uint16_t*>(msrc.get_data_handle())[i] = (uint16_t)(0x3f00 + i % 256);
    for (size_t i = 0; i < n; ++i) static_cast<uint16_t*>(mres.get_data_handle())[i] = (uint16_t)(0xbf00 + i % 256);
    std::memset(mb.get_data_handle(), 0, b.get_size());

    struct Variant {
      const char* name;
      dnnl::convolution_forward::primitive_desc pd;
      bool binary, add_after;
    };
    auto attr_of = [&](dnnl::post_ops po) {
      dnnl::primitive_attr a;
      a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      a.set_post_ops(po);
      return a;
    };
    dnnl::post_ops po_binary, po_sum;
    po_binary.append_binary(dnnl::algorithm::binary_add, dst);
    po_binary.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    po_sum.append_sum(1.f);
    po_sum.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    const dnnl::primitive_attr a_binary = attr_of(po_binary);
    dnnl::convolution_forward::primitive_desc pd_binary(d, a_binary, eng);
    while (!(pd_binary.scratchpad_desc().get_size() == 0 && std::strncmp(pd_binary.impl_info_str(), "ref", 3) != 0))
      if (!pd_binary.next_impl()) break;
    std::vector<Variant> vs = {{"binary", pd_binary, true, false},
                               {"sum", dnnl::convolution_forward::primitive_desc(d, attr_of(po_sum), eng), false, false},
                               {"add", dnnl::convolution_forward::primitive_desc(d, attr_of(dnnl::post_ops()), eng), false, true}};
    std::vector<std::function<void()>> run;
    std::vector<dnnl::memory> keep;
    for (const Variant& v : vs) {
      dnnl::memory mw(v.pd.weights_desc(), eng), sp(v.pd.scratchpad_desc(), eng);
      std::memset(mw.get_data_handle(), 0x3c, v.pd.weights_desc().get_size());  // small positive weights
      keep.push_back(mw);
      keep.push_back(sp);
      dnnl::convolution_forward c(v.pd);
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, msrc}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb},
                                                 {DNNL_ARG_DST, mdst}, {DNNL_ARG_SCRATCHPAD, sp}};
      if (v.binary) args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = mres;
      run.push_back([&, c, args, v, n]() {
        c.execute(st, args);
        st.wait();
        if (v.add_after)
          m2fp::kern::add_bf16(static_cast<uint16_t*>(mdst.get_data_handle()),
                               static_cast<const uint16_t*>(mres.get_data_handle()), (int64_t)n, true);
      });
    }
    std::vector<std::vector<double>> t(vs.size());
    for (int r = 0; r < reps + 2; ++r)
      for (size_t k = 0; k < vs.size(); ++k) {
        for (size_t i = 0; i < other.size(); i += 64) other[i]++;
        const double t0 = now_ms();
        run[k]();
        if (r >= 2) t[k].push_back(now_ms() - t0);  // (two warm-up rounds)
      }
    std::printf("%s  %3dx%-3d %4d->%-4d", s.name, s.H, s.W, s.ic, s.oc);
    for (size_t k = 0; k < vs.size(); ++k) {
      std::sort(t[k].begin(), t[k].end());
      const double med = t[k][t[k].size() / 2];
      std::printf("  %s %s %.2f (%.2f) %.0f GF/s", vs[k].name, vs[k].pd.impl_info_str(), med, t[k][0], gflop / med * 1e3);
    }
    std::printf("\n");
  }
  return 0;
}
