// engine/dnn.cpp: oneDNN convolutions, matmuls and pooling with per-shape primitive caches.
#include "engine/dnn.h"

#include <dnnl.hpp>
#include <omp.h>

#include "engine/buffer_pool.h"
#include "engine/dnn_wino.h"
#include "kernels/kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <tuple>

namespace m2fp::dnn {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Scratchpads are supplied per call (user mode) so one primitive may run on several threads.
dnnl::primitive_attr make_attr(const dnnl::post_ops& po) {
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// oneDNN falls back to its (very slow) reference kernels for unusual combinations; say so once.
void warn_if_reference(const char* impl, const char* what) {
  static std::atomic<bool> warned{false};
  if (std::strncmp(impl, "ref", 3) == 0 && !warned.exchange(true))
    std::fprintf(stderr, "m2fp: warning: oneDNN chose its reference implementation (%s) for a %s; "
                         "expect it to be slow\n", impl, what);
}

// Per-thread buffers that only grow, for a primitive's scratchpad and for an input converted for
// a primitive (not zeroed, unlike a std::vector). Taking them from the pool
// for each call instead kept Winograd's large scratchpads out of the resident set between calls, but
// made every small matmul of the transformer decoder allocate, and the pool resize its blocks: with
// 2 threads the decoder went from ~110 to ~190 ms and the network ~15% slower (bench_e2e,
// 2026-12-06, measured alternately).
// They live as long as their thread, so they are mapped for themselves (pool::map_pages, huge pages
// from 2 MB) rather than taken from the pool's cache, which hands out the smallest cached block that
// fits: a buffer held for good would pin a block of any larger size (with Winograd's scratchpads and
// converted inputs, ~90 MB more in use for good than the buffers asked for, bench_e2e 2026-12-06).
struct ThreadBuffer {
  void* p = nullptr;
  size_t cap = 0;
  size_t touched = 0;  // bytes from p known to be faulted in (zero_fill wrote them)
  ThreadBuffer() = default;
  ThreadBuffer(const ThreadBuffer&) = delete;
  ThreadBuffer& operator=(const ThreadBuffer&) = delete;
  ~ThreadBuffer() { pool::unmap_pages(p, cap); }
  void* get(size_t n) {
    if (n == 0) return nullptr;
    if (n > cap) {
      pool::unmap_pages(p, cap);
      p = nullptr;
      cap = 0;
      touched = 0;
      p = pool::map_pages(n);
      cap = n;
    }
    return p;
  }
};
thread_local ThreadBuffer t_scratchpad, t_converted, t_strip_out;
thread_local int t_zero_run = 0;  // ZeroRun scopes alive on this thread

// Memory about to be written in full faulted in by one call (pool::populate) rather than a fault per
// page as it is written: the weight copies under 2 MB (res4's 1x1 layers: 1 MB each) and the pool's
// smaller blocks come in 4 KiB pages (~25k of a one-photo parse's ~60k faults, perf record -e
// page-faults, 2026-12-06).
void populate_for_write(void* p, size_t n) {
  if (n >= (size_t(64) << 10)) pool::populate(p, n, /*for_write=*/true);  // a few pages: faulting them is as cheap
}

// f(offset, length) over the n bytes in 2 MB pieces on the threads: writes that fault fresh pages
// in (a page fault costs its thread; the pool's blocks and weight copies come in 2 MB huge pages).
template <class F>
void in_pieces(size_t n, const F& f) {
  constexpr size_t kPiece = size_t(2) << 20;
  const int64_t pieces = (int64_t)((n + kPiece - 1) / kPiece);
#pragma omp parallel for schedule(dynamic, 1) if (pieces > 1)
  for (int64_t i = 0; i < pieces; ++i) f((size_t)i * kPiece, std::min(kPiece, n - (size_t)i * kPiece));
}

// A ZeroRun's stand-in for running a primitive: zeros into its destination and scratchpad, so their
// pages are faulted in as the primitive's own writes would fault them.
void zero_bytes(void* p, size_t n) {
  populate_for_write(p, n);
  in_pieces(n, [&](size_t o, size_t len) { std::memset(static_cast<char*>(p) + o, 0, len); });
}
// A layer's weights copied at load (their fresh huge pages are faulted in by the copy).
void copy_bytes(void* dst, const void* src, size_t n) {
  in_pieces(n, [&](size_t o, size_t len) {
    std::memcpy(static_cast<char*>(dst) + o, static_cast<const char*>(src) + o, len);
  });
}
// The scratchpad is this thread's t_scratchpad, which stays mapped: only the part that no earlier
// call touched is written (the Winograd layers' ~30 MB scratchpads were written over again for each
// of the 22 layers of the plan, ~0.7 GB of memset per blank forward for no new page).
void zero_fill(void* dst, size_t dst_bytes, size_t scratch_bytes) {
  if (dst) zero_bytes(dst, dst_bytes);
  if (scratch_bytes > t_scratchpad.touched) {
    zero_bytes(static_cast<char*>(t_scratchpad.p) + t_scratchpad.touched, scratch_bytes - t_scratchpad.touched);
    t_scratchpad.touched = scratch_bytes;
  }
}

// The threads a BF16 layer's Winograd strips run on at once (run_in_strips).
int strip_threads() { return std::max(1, omp_get_max_threads()); }

// -1: not decided yet (M2FP_WINOGRAD read on first use), else a WinogradMode: Planned (the default,
// M2FP_WINOGRAD unset or auto), Off (0), On within the memory caps below (1), All (every layer oneDNN
// accepts).
std::atomic<int> g_winograd{-1};

// Winograd's memory caps. Its transformed weights are 4x the plain ones (6x6 per 3x3) and its
// scratchpad holds the transformed input and output tiles. Measured with oneDNN 2.6.3 on the
// 640x1056 benchmark input: res4's 3x3 layers (40x66, 256 channels) take 9 MB of weights (2.25
// direct) and 27 MB of scratchpad; res5's (20x33, 512) would take 36 MB of weights each; the stem's
// conv3 (320x528, 64->128) asks for a 285 MB scratchpad and the pixel decoder's layer_1 (160x264,
// 256) for 200 MB on the whole map (wino_plan runs such a layer in strips instead). Layers over the
// weight cap stay direct. Speed (bench/dnn/bench_conv_algos, 1 thread, min of 5, one algorithm after
// the other; with 2 threads on the shared 2-core host, where other jobs starve one thread, Winograd
// loses more at its barriers than direct): 2026-12-06 06:00 UTC res4 2.6x, res3 1.6x, layer_1 2.2x
// (whole map), res5 1.9x (27 MB more weights per layer: over the weight cap while it was 16 MB; 1.81x
// with 2 threads, 2026-12-07 11:40 UTC, and within the 800 MB bound since the buffer pool cuts its
// blocks from one region), stem conv3 1.35x (64 inputs).
constexpr size_t kWinoMaxWeightBytes = 40u << 20, kWinoMaxScratchBytes = 64u << 20;
// A BF16 layer below 128 input or output channels stays bf16 direct: fp32 Winograd with its conversions
// is slower there (bench_conv_algos --precision bf16, 2 threads, 2026-12-06 22:45 UTC: stem conv2 0.70x,
// stem conv3 0.79x, res2 0.66x of direct's speed). fp32 layers have no such rule: at 64 channels
// Winograd still wins in fp32 (same run, fp32: stem conv2 29.6 -> 24.1 ms, stem conv3 62.3 -> 38.2 ms,
// res2 7.2 -> 5.6 ms; all in strips but res2), where the comparison of 06:00 UTC (1 thread, whole map
// only) had found 1.02-1.35x and kept them direct.
constexpr int kWinoMinChannelsBf16 = 128;
// A BF16 layer (run as fp32 Winograd, its input and output converted) is weighed by the plan only
// where its output map at the reference size has this many pixels: fp32 Winograd's weights are 8x the
// bf16 direct ones and read once per call, so the fewer output pixels per weight, the less of its
// arithmetic saving is left. bench_conv_algos --precision bf16 --cpu-time, 1 thread, 2026-12-06 15:49 UTC
// (loaded host), bf16 direct / Winograd with its conversions: layer_1 (160x264 = 42240 pixels, 256
// channels) 1.18-1.24x; res4 (40x66 = 2640, 256) 1.01-1.02x for +7.9 MB each; res3 (80x132 = 10560,
// 128) 0.86-0.90x. M2FP_WINOGRAD=1 ignores it (every layer within the caps and the 128-channel rule).
constexpr int64_t kWinoMinPixelsBf16 = 16384;
// Output rows per strip for a layer whose whole-map Winograd scratchpad is over the cap (wino_plan).
// The pixel decoder's layer_1 (160x264, 256 channels; bench_conv_algos, 1 thread): direct 522 ms,
// Winograd on the whole map 235 ms (200 MB scratchpad), in strips of 16 rows ~2x direct's speed with
// 34 MB; strips of 32 and 40 rows needed 52 and 61 MB for no more speed.
constexpr int64_t kWinoStripRows = 16;
// A layer whose input, converted into the whole-map kernel's layout, would take more than this runs in
// strips too: the stem's conv2 (320x528, 64 channels) would hold a 43 MB converted copy of its input
// (counted against the plan's budget, where it displaced 5 of res4's layers); in strips oneDNN gives
// it F(2x2, 3x3) with 0.3 MB of weights and 4.4 MB of buffers, at the same speed.
constexpr size_t kWinoMaxWholeInputBytes = 16u << 20;
// A bf16 residual layer whose output takes at most this adds its residual after the product, itself
// (kern::add_bf16: the output still in the cache); a larger one by oneDNN's binary post-op (Conv2d::Impl::get).
// The backbone at 640x1056: res4's 5.4 MB and res5's 2.7 MB outputs add after, res3's 10.8 MB and res2's 21.6 MB
// do not.
constexpr size_t kAddAfterMaxBytes = 8u << 20;
// What the Winograd plan (WinogradMode::Planned) may add to the resident set by default
// (M2FP_WINOGRAD_MB sets another): see plan_winograd and README, "Winograd". 300 MB holds every
// stride-1 3x3 layer of the model at 640x1056 (+275 MB, peak RSS ~742 MB fp32); 180 MB did until the
// buffer pool's region (engine/buffer_pool.h) freed ~120 MB, leaving res4's last four and res5's two
// direct.
constexpr int kDefaultWinogradBudgetMB = 300;
std::atomic<bool> g_verbose{false};
std::atomic<int64_t> g_layer_primitives{0};
std::atomic<int64_t> g_weights_rederived{0};

}  // namespace

void set_winograd(bool on) { g_winograd = (int)(on ? WinogradMode::On : WinogradMode::Off); }
void set_winograd_mode(WinogradMode m) { g_winograd = (int)m; }

ZeroRun::ZeroRun() { ++t_zero_run; }
ZeroRun::~ZeroRun() { --t_zero_run; }
bool zero_run_active() { return t_zero_run > 0; }

WinogradMode winograd_mode() {
  int v = g_winograd.load();
  if (v < 0) {
    const char* env = std::getenv("M2FP_WINOGRAD");
    const std::string e = env ? env : "";
    // Planned by default (README, "Winograd": the layers of most gain per MB within the 800 MB
    // bound). oneDNN has the kernel on AVX-512 only, elsewhere every layer stays direct whatever
    // this says.
    WinogradMode m = WinogradMode::Planned;
    if (e == "1" || e == "on") m = WinogradMode::On;
    else if (e == "0" || e == "off") m = WinogradMode::Off;
    else if (e == "all") m = WinogradMode::All;
    else if (!e.empty() && e != "auto")
      std::fprintf(stderr, "m2fp: warning: M2FP_WINOGRAD=%s not understood (auto, 0/off, 1/on, all); Winograd "
                           "stays as planned (auto)\n", e.c_str());
    v = (int)m;
    int expected = -1;
    if (!g_winograd.compare_exchange_strong(expected, v)) v = expected;
  }
  return (WinogradMode)v;
}

const char* winograd_mode_name(WinogradMode m) {
  switch (m) {
    case WinogradMode::Off: return "off";
    case WinogradMode::Planned: return "auto";
    case WinogradMode::On: return "on";
    case WinogradMode::All: return "all";
  }
  return "?";
}

bool winograd_enabled() { return winograd_mode() != WinogradMode::Off; }

void set_verbose(bool on) { g_verbose = on; }
int64_t layer_primitives_created() { return g_layer_primitives.load(); }
int64_t weights_rederived() { return g_weights_rederived.load(); }

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

bool parse_precision(const std::string& s, Precision* out) {
  if (s == "fp32" || s == "f32") *out = Precision::F32;
  else if (s == "bf16") *out = Precision::BF16;
  else return false;
  return true;
}

bool bf16_available() {
  static const bool ok = [] {
    try {
      dnnl::memory::desc src({1, 16, 8, 8}, dt::bf16, tag::any), w({16, 16, 3, 3}, dt::bf16, tag::any),
          dst({1, 16, 8, 8}, dt::f32, tag::any);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        src, w, dst, {1, 1}, {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc pd(d, cpu_engine());
      return std::strncmp(pd.impl_info_str(), "ref", 3) != 0;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

const char* onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::all: return "all (no limit set)";
    default: return "other";
  }
}

double probe_conv_gflops(Precision prec, int reps, std::string* shape) {
  struct Case {
    int ic, oc, k;
  } cases[] = {{256, 256, 3}, {1024, 256, 1}};
  const int64_t H = 80, W = 108;
  const dt act = prec == Precision::BF16 ? dt::bf16 : dt::f32;
  double best = 0;
  for (const Case& c : cases) {
    dnnl::memory::desc src({1, c.ic, H, W}, act, tag::any), w({c.oc, c.ic, c.k, c.k}, act, tag::any),
        dst({1, c.oc, H, W}, dt::f32, tag::any);
    const int pad = c.k / 2;
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                      src, w, dst, {1, 1}, {0, 0}, {pad, pad}, {pad, pad});
    dnnl::convolution_forward::primitive_desc pd(d, cpu_engine());
    dnnl::convolution_forward prim(pd);
    dnnl::memory sm(pd.src_desc(), cpu_engine()), wm(pd.weights_desc(), cpu_engine()),
        dm(pd.dst_desc(), cpu_engine()), scratch(pd.scratchpad_desc(), cpu_engine());
    // Any normal finite values do: bytes 0x3c make 0.0115 in f32 (0x3c3c3c3c) and in bf16 (0x3c3c).
    std::memset(sm.get_data_handle(), 0x3c, sm.get_desc().get_size());
    std::memset(wm.get_data_handle(), 0x3c, wm.get_desc().get_size());
    dnnl::stream s(cpu_engine());
    const double flop = 2.0 * H * W * c.oc * c.ic * c.k * c.k;
    for (int i = 0; i < std::max(1, reps) + 1; ++i) {  // the first run only warms up
      const auto t0 = std::chrono::steady_clock::now();
      prim.execute(s, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dm}, {DNNL_ARG_SCRATCHPAD, scratch}});
      s.wait();
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (i > 0 && sec > 0 && flop / sec / 1e9 > best) {
        best = flop / sec / 1e9;
        if (shape)
          *shape = std::to_string(c.k) + "x" + std::to_string(c.k) + " " + std::to_string(c.ic) + "->" +
                   std::to_string(c.oc) + " at " + std::to_string(H) + "x" + std::to_string(W) + " (" +
                   pd.impl_info_str() + ")";
      }
    }
  }
  return best;
}

// ---- feature-map layouts ----------------------------------------------------------------------
namespace {

struct Fmt {
  dnnl::memory::desc md;
};

dnnl::memory::desc hwc_md(int64_t H, int64_t W, int64_t C, dt type = dt::f32) {
  return dnnl::memory::desc({1, C, H, W}, type, tag::nhwc);
}

// The memory descriptor of a feature map tensor [H, W, C] (HWC or Opaque).
dnnl::memory::desc md_of(const Tensor& t) {
  if (t.shape.size() != 3) throw std::invalid_argument("expected a feature map [H, W, C], got " + t.shape_str());
  if (t.layout == Layout::Opaque) return static_cast<const Fmt*>(t.fmt.get())->md;
  if (t.layout == Layout::HWC) return hwc_md(t.shape[0], t.shape[1], t.shape[2]);
  throw std::invalid_argument("expected a feature map tensor (HWC or Opaque layout)");
}

// A feature map [H, W, C] stored as `md` (HWC when md is plain nhwc f32).
Tensor map_for(const dnnl::memory::desc& md, int64_t H, int64_t W, int64_t C) {
  if (md == hwc_md(H, W, C)) return Tensor::empty({H, W, C}, Layout::HWC);
  Tensor t = Tensor::empty_bytes({H, W, C}, Layout::Opaque, md.get_size());
  t.fmt = std::make_shared<Fmt>(Fmt{md});
  return t;
}

void reorder(const dnnl::memory::desc& from, const void* src, const dnnl::memory::desc& to, void* dst) {
  dnnl::stream s(cpu_engine());
  dnnl::memory a(from, cpu_engine(), const_cast<void*>(src)), b(to, cpu_engine(), dst);
  dnnl::reorder(a, b).execute(s, a, b);
  s.wait();
}

// A layer's weights from one layout into another, at load (WeightStore). The reorder into
// Winograd's layout transforms the weights through a scratchpad of the output's size (oneDNN's
// wino_reorder: 9 MB for a res4 layer); left to oneDNN, each reorder mallocs it afresh and faults
// it in 4 KiB pages. Here it comes from pool::map_pages (2 MB huge pages) and goes back after.
void reorder_weights(const dnnl::memory::desc& from, const void* src, const dnnl::memory::desc& to, void* dst) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::reorder::primitive_desc pd(cpu_engine(), from, cpu_engine(), to, attr);
  const size_t sb = pd.scratchpad_desc().get_size();
  std::unique_ptr<void, std::function<void(void*)>> scratch(sb ? pool::map_pages(sb) : nullptr,
                                                            [sb](void* p) { pool::unmap_pages(p, sb); });
  dnnl::stream s(cpu_engine());
  dnnl::memory a(from, cpu_engine(), const_cast<void*>(src)), b(to, cpu_engine(), dst);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
  if (sb) args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(pd.scratchpad_desc(), cpu_engine(), scratch.get());
  dnnl::reorder(pd).execute(s, args);
  s.wait();
}

// Rows of fp32 (`rows` rows of `n` values, row stride ldx) rounded to bf16 (to nearest even, as
// oneDNN rounds; a NaN stays a NaN) into dense rows y [rows, n]: the inputs of bf16 layers given in
// fp32 (the encoder's FFN and projections, the convolutions after a GroupNorm). oneDNN 2.6's reorder
// took as long for these plain layouts as the matrix product that reads them (verbose log of the
// benchmark, 2026-12-06: 2048x256 f32->bf16 at ~0.9x the time of the 2048x256x1024 product).
void f32_to_bf16_rows(const float* x, int64_t ldx, int64_t rows, int64_t n, uint16_t* y) {
#pragma omp parallel for schedule(static) if (rows * n > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint16_t* yr = y + r * n;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, xr + i, sizeof u);
      const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, nan = (u >> 16) | 0x40u;
      yr[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
    }
  }
}

// Winograd weights (oneDNN's wino format) cannot be reordered into anything else.
bool is_wino(const dnnl::memory::desc& md) { return md.data.format_kind == dnnl_format_kind_wino; }

// A layer's weights: one copy per layout its primitives asked for, starting from the plain
// PyTorch layout. New layouts are derived from a copy in an ordinary (non-Winograd) layout; the
// plain copy is dropped after the first reorder into another ordinary layout, so a direct layer
// holds one copy of its weights in the steady state. A Winograd copy (4x the plain size) cannot be
// reordered into anything else: a layer with a source (Conv2d::WeightSource, the model file) drops
// its ordinary copies once its Winograd copy exists (those no other primitive still uses), and
// writes the plain weights again from the source if another input size later wants an ordinary
// layout; a layer without one keeps its plain copy beside the Winograd one.
class WeightStore {
 public:
  // data null: the source writes the plain copy (a BatchNorm folded straight into it, not into a
  // copy first).
  void init(const dnnl::memory::desc& plain, const void* data, std::function<void(float*)> source = {}) {
    plain_md_ = plain;
    source_ = std::move(source);
    if (!data && !source_) throw std::invalid_argument("WeightStore: no weights and no source");
    Copy c = allocate(plain);
    if (data) copy_bytes(c.m.get_data_handle(), data, plain.get_size());
    else source_(static_cast<float*>(c.m.get_data_handle()));
    c.plain = true;
    copies_.assign(1, c);
  }
  // Callers hold the layer's lock. `owner` keeps the copy's memory alive as long as the primitive
  // that uses it (the store may drop its own reference earlier).
  dnnl::memory get(const dnnl::memory::desc& want, std::shared_ptr<void>* owner) {
    for (const Copy& c : copies_)
      if (c.m.get_desc() == want) {
        *owner = c.owner;
        return c.m;
      }
    // Winograd weights (fp32) are made from an fp32 copy only: a BF16 layer's bf16 copies lost bits.
    const bool wino = is_wino(want);
    size_t from = copies_.size();
    for (size_t i = 0; i < copies_.size() && from == copies_.size(); ++i)
      if (!is_wino(copies_[i].m.get_desc()) && (!wino || wino_source(copies_[i]))) from = i;
    if (from == copies_.size()) {  // no copy to derive it from: the plain weights again
      if (!source_)
        throw std::logic_error(wino ? "WeightStore: no fp32 copy of the weights for the Winograd layout"
                                    : "WeightStore: no copy of the weights in an ordinary layout");
      Copy p = allocate(plain_md_);
      source_(static_cast<float*>(p.m.get_data_handle()));
      p.plain = true;
      copies_.push_back(p);
      ++rederived_;
      ++g_weights_rederived;
    }
    Copy c = allocate(want);
    if (!(copies_[from].plain && wino_from_plain(want, copies_[from], c.m.get_data_handle())))
      reorder_weights(copies_[from].m.get_desc(), copies_[from].m.get_data_handle(), want, c.m.get_data_handle());
    // Drop the plain copy once another ordinary layout exists; with a source, every ordinary copy
    // no primitive holds once a Winograd copy exists.
    copies_.erase(std::remove_if(copies_.begin(), copies_.end(),
                                 [&](const Copy& k) {
                                   return wino ? source_ && k.owner.use_count() == 1 : k.plain;
                                 }),
                  copies_.end());
    copies_.push_back(c);
    *owner = c.owner;
    return c.m;
  }
  // The bytes of the copies the store holds (primitives may hold copies it dropped).
  size_t bytes() const {
    size_t n = 0;
    for (const Copy& c : copies_) n += c.m.get_desc().get_size();
    return n;
  }
  int rederived() const { return rederived_; }
  // Whether get() can make a Winograd copy: an fp32 copy in an ordinary layout is left, or the source
  // writes the plain weights again.
  bool can_make_wino() const {
    return source_ || std::any_of(copies_.begin(), copies_.end(), [](const Copy& c) { return wino_source(c); });
  }

 private:
  struct Copy {
    dnnl::memory m;
    std::shared_ptr<void> owner;
    bool plain = false;
  };
  // Whether a Winograd copy may be derived from c: fp32 in an ordinary layout (a BF16 layer's bf16
  // copies lost bits).
  static bool wino_source(const Copy& c) {
    return !is_wino(c.m.get_desc()) && c.m.get_desc().data_type() == dt::f32;
  }
  // The plain weights (oihw fp32, 3x3) into the Winograd layout of jit_wino_4x3 by dnn_wino.h, the
  // same bytes as oneDNN's reorder in a fraction of its time; false (nothing written) for any other
  // layout, which oneDNN's reorder then makes.
  bool wino_from_plain(const dnnl::memory::desc& want, const Copy& plain, void* dst) const {
    if (!is_wino(want) || want.data_type() != dt::f32 || plain_md_.data.ndims != 4) return false;
    const dnnl_wino_desc_t& d = want.data.format_desc.wino_desc;
    if (d.wino_format != dnnl_wino_wei_OBaaIBOIio || plain_md_.data.dims[2] != 3 || plain_md_.data.dims[3] != 3)
      return false;
    const WinoWeightLayout L{d.r, d.alpha, d.ic, d.oc, d.ic_block, d.oc_block, d.ic2_block, d.oc2_block,
                             want.get_size()};
    if (!wino_layout_supported(L)) return false;
    wino_weights_from_oihw(static_cast<const float*>(plain.m.get_data_handle()), (int)plain_md_.data.dims[0],
                           (int)plain_md_.data.dims[1], L, static_cast<float*>(dst));
    return true;
  }
  // The weights' memory from pool::map_pages (huge pages from 2 MB: a model's ~250 MB of weights
  // written at load in ~500 faults rather than ~64k; oneDNN's own allocations come in 4 KiB pages).
  // A Winograd copy's bytes are reserved off the buffer pool's cache while it lives (pool::reserve):
  // the network's ~205 MB of them (benchmark size) would otherwise raise the peak resident set by as
  // much (the plain copies they replace and their scratchpad are about a quarter of it each).
  static Copy allocate(const dnnl::memory::desc& md) {
    const size_t n = md.get_size();
    const ptrdiff_t reserved = is_wino(md) ? (ptrdiff_t)n : 0;
    std::shared_ptr<void> owner(pool::map_pages(n), [n, reserved](void* p) {
      pool::unmap_pages(p, n);
      if (reserved) pool::reserve(-reserved);
    });
    if (reserved) pool::reserve(reserved);
    populate_for_write(owner.get(), n);
    return {dnnl::memory(md, cpu_engine(), owner.get()), owner};
  }
  std::vector<Copy> copies_;
  dnnl::memory::desc plain_md_;
  std::function<void(float*)> source_;
  int rederived_ = 0;
};

// The largest scratchpad of the Winograd primitives alive is reserved off the buffer pool's cache
// (pool::reserve), like their weights: the per-thread scratchpad buffer grows to it (res3's 32 MB,
// layer_1's strips' 34 MB, against ~0 for the direct kernels) and stays. The reservation lives as long
// as the returned handle.
std::shared_ptr<void> reserve_scratchpad(size_t bytes) {
  struct Reservations {
    std::mutex mu;
    std::multiset<size_t> alive;
    size_t reserved = 0;
    void update() {  // callers hold mu
      const size_t want = alive.empty() ? 0 : *alive.rbegin();
      pool::reserve((ptrdiff_t)want - (ptrdiff_t)reserved);
      reserved = want;
    }
  };
  static Reservations* r = new Reservations();  // never destroyed: primitives may outlive statics
  {
    std::lock_guard<std::mutex> l(r->mu);
    r->alive.insert(bytes);
    r->update();
  }
  return std::shared_ptr<void>(nullptr, [bytes](void*) {
    std::lock_guard<std::mutex> l(r->mu);
    r->alive.erase(r->alive.find(bytes));
    r->update();
  });
}

// One cached primitive of a layer for one input shape: the primitive, its descriptor, the
// layer's weights in the layout it wants, and the bias.
template <class Prim>
struct PrimEntry {
  typename Prim::primitive_desc pd;
  Prim prim;
  dnnl::memory weights, bias;
  std::shared_ptr<void> weights_owner;  // the memory of `weights` (WeightStore)
  int64_t strip_rows = 0;               // a convolution run in strips of this many output rows (wino_plan)
  std::shared_ptr<void> reservation;    // a Winograd primitive's scratchpad held off the pool (reserve_scratchpad)
  dnnl::memory::desc residual_md;       // a residual added by a binary post-op or after (its layout), not a sum
  bool add_after = false;               // the engine adds it after the primitive (kern::add_bf16) ...
  bool relu_after = false;              // ... and then the ReLU

  PrimEntry(const typename Prim::desc& d, const dnnl::post_ops& po, WeightStore& w, std::vector<float>& b,
            const dnnl::memory::desc& b_md, const char* what)
      : PrimEntry(typename Prim::primitive_desc(d, make_attr(po), cpu_engine()), w, b, b_md, what) {}
  PrimEntry(const typename Prim::primitive_desc& pd_, WeightStore& w, std::vector<float>& b,
            const dnnl::memory::desc& b_md, const char* what)
      : pd(pd_), prim(pd) {
    warn_if_reference(pd.impl_info_str(), what);
    weights = w.get(pd.weights_desc(), &weights_owner);
    if (!b.empty()) bias = dnnl::memory(b_md, cpu_engine(), b.data());
  }

  // src and dst already in pd's layouts (residual: a binary post-op's, in residual_md); the
  // scratchpad is per call.
  void execute(const void* src, void* dst, const void* residual = nullptr) const {
    dnnl::stream s(cpu_engine());
    void* const scratch = t_scratchpad.get(pd.scratchpad_desc().get_size());
    if (t_zero_run) return zero_fill(dst, pd.dst_desc().get_size(), pd.scratchpad_desc().get_size());
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, dnnl::memory(pd.src_desc(), cpu_engine(), const_cast<void*>(src))},
        {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_DST, dnnl::memory(pd.dst_desc(), cpu_engine(), dst)},
        {DNNL_ARG_SCRATCHPAD, dnnl::memory(pd.scratchpad_desc(), cpu_engine(), scratch)}};
    if (bias) args[DNNL_ARG_BIAS] = bias;
    if (residual)
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] =
          dnnl::memory(residual_md, cpu_engine(), const_cast<void*>(residual));
    prim.execute(s, args);
    s.wait();
  }
};

}  // namespace

Tensor to_hwc(const Tensor& x) {
  if (x.layout == Layout::HWC) return x;
  const int64_t H = x.shape[0], W = x.shape[1], C = x.shape[2];
  Tensor y = Tensor::empty({H, W, C}, Layout::HWC);
  reorder(md_of(x), x.data(), hwc_md(H, W, C), y.data());
  return y;
}

Tensor bf16_hwc_map(int64_t H, int64_t W, int64_t C) { return map_for(hwc_md(H, W, C, dt::bf16), H, W, C); }

namespace {

// A stride-1 3x3 "same" convolution whose primitive `e` computes strip_rows output rows from
// strip_rows + 2 input rows (wino_plan): each strip's input rows (zeros beyond the map) gathered into
// a per-thread buffer, the strip computed into another, its valid rows put into place in a plain
// channels-last output (the layer that runs in strips, layer_1, feeds the engine's GroupNorm: a
// blocked output would be converted there, another map of its size at the parse's peak).
// on_threads (BF16 layers): the strips shared out over the threads, each strip run whole on one
// thread (oneDNN runs a primitive called inside a parallel region on the calling thread alone), with
// that thread's scratchpad and buffers: no barrier inside a strip (Winograd has three per call, which
// cost the most when another job takes a core away), one scratchpad per thread. Otherwise (fp32
// layers, outputs as they were) the strips one after the other, each over all threads.
Tensor run_in_strips(const PrimEntry<dnnl::convolution_forward>& e, const Tensor& x, const ConvParams& p,
                     bool on_threads) {
  const int64_t H = x.shape[0], W = x.shape[1], hs = e.strip_rows, C = p.in_c, O = p.out_c;
  const dnnl::memory::desc in_md = e.pd.src_desc(), out_md = e.pd.dst_desc(), xmd = md_of(x);
  const dnnl::memory::desc y_md = hwc_md(H, W, O);
  Tensor y = Tensor::empty({H, W, O}, Layout::HWC);
  auto strip = [&](int64_t r0) {
    void* const in = t_converted.get(in_md.get_size());
    void* const out = t_strip_out.get(out_md.get_size());
    const int64_t lo = r0 - 1, hi = r0 + hs + 1;  // input rows [lo, hi)
    const int64_t vlo = std::max<int64_t>(lo, 0), vhi = std::min(hi, H), rows = std::min(hs, H - r0);
    if (vlo != lo || vhi != hi) std::memset(in, 0, in_md.get_size());
    reorder(xmd.submemory_desc({1, C, vhi - vlo, W}, {0, 0, vlo, 0}), x.data(),
            in_md.submemory_desc({1, C, vhi - vlo, W}, {0, 0, vlo - lo, 0}), in);
    e.execute(in, out);
    reorder(out_md.submemory_desc({1, O, rows, W}, {0, 0, 0, 0}), out,
            y_md.submemory_desc({1, O, rows, W}, {0, 0, r0, 0}), y.data());
  };
  const int64_t n = (H + hs - 1) / hs;
  if (!on_threads || n < 2) {
    for (int64_t i = 0; i < n; ++i) strip(i * hs);
    return y;
  }
  const int zero_run = t_zero_run;  // a ZeroRun of the calling thread holds on the others too
  std::exception_ptr error;
  std::mutex error_mu;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    const int own = t_zero_run;
    t_zero_run = zero_run;
    try {
      strip(i * hs);
    } catch (...) {
      std::lock_guard<std::mutex> l(error_mu);
      if (!error) error = std::current_exception();
    }
    t_zero_run = own;
  }
  if (error) std::rethrow_exception(error);
  return y;
}

}  // namespace

// ---- Conv2d -----------------------------------------------------------------------------------
struct Conv2d::Impl {
  ConvParams p;
  Precision prec = Precision::F32;
  std::string name;         // for --verbose logs
  WeightStore w;            // [out_c, in_c, kh, kw], as the primitives want them
  std::vector<float> bias;  // [out_c] or empty

  using Entry = PrimEntry<dnnl::convolution_forward>;
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, bool, bool, bool>, std::shared_ptr<Entry>> cache;
  std::map<std::pair<int64_t, int64_t>, std::string> algo;  // per input size, for algorithm_for()
  bool planned = false;                 // plan_winograd chose it (WinogradMode::Planned)
  int64_t ref_h = 0, ref_w = 0;         // set_winograd_reference (0: none)
  bool ref_done = false;                // ref_md computed (lazily, at the first Winograd candidate)
  dnnl::memory::desc ref_md;            // the Winograd weight layout for the reference size (zero: none)

  // Whether oneDNN could run this layer as Winograd F(4x4, 3x3): 3x3, stride 1, no dilation. A BF16
  // layer runs it in fp32 (jit_wino_4x3 has no bf16): its input converted to fp32 (reorder into the
  // kernel's layout), its output fp32, which the next BF16 layer converts as it reads it.
  bool winograd_shape() const { return p.kh == 3 && p.kw == 3 && p.stride == 1 && p.dilation == 1; }

  // The mode for this layer: a Planned layer the plan chose runs as On does, one it did not as Off.
  WinogradMode mode() const {
    const WinogradMode m = winograd_mode();
    if (m == WinogradMode::Planned) return planned ? WinogradMode::On : WinogradMode::Off;
    return m;
  }
  bool winograd_candidate() const { return winograd_shape() && mode() != WinogradMode::Off; }
  // kWinoMinChannelsBf16: a BF16 layer this narrow stays direct (On and Planned; All ignores it).
  bool too_narrow_for_bf16_winograd() const {
    return prec == Precision::BF16 && (p.in_c < kWinoMinChannelsBf16 || p.out_c < kWinoMinChannelsBf16);
  }

  // The Winograd primitive for an H x W input (fp32, the layer's post-ops): for the whole map, or,
  // where the whole map's scratchpad would be over the cap (oneDNN's jit_wino_4x3 transforms the
  // whole input and output at once for wide layers: the pixel decoder's layer_1 at 160x264 asks for
  // 200 MB), for strips of kWinoStripRows output rows, each read with its two halo rows (no padding
  // along H: the caller zero-fills it), which bounds the scratchpad (34 MB for layer_1) and makes
  // the weight layout independent of the photo's height. Strips need "same" padding (1) and no
  // residual sum. Throws dnnl::error where oneDNN has no Winograd kernel for the layer.
  struct WinoPlan {
    dnnl::convolution_forward::primitive_desc pd;
    int64_t strip_rows = 0;       // 0: the whole map in one call
    size_t whole_scratchpad = 0;  // the whole map's, when in strips
  };
  WinoPlan wino_plan(int64_t H, int64_t W, const dnnl::post_ops& po, bool sum) const {
    // oneDNN's first Winograd kernel for a one-image convolution on more than one thread is
    // jit_fp32_wino_2x3 where it applies (stem.conv2's 64-channel strips); jit_wino_4x3 is taken
    // instead when it also applies: the kernel one thread gets (the layer's output then no longer
    // depends on the thread count), whose weight layout dnn_wino.h writes, and a little faster
    // (stem.conv2's 20 strips per forward, 2 threads, ONEDNN_VERBOSE sums of two runs each:
    // 18.7 / 19.8 ms as 2x3, 18.2 / 18.2 ms as 4x3).
    auto make = [&](int64_t h_in, int64_t pad_h) {
      const int64_t h_out = h_in + 2 * pad_h - 2;
      dnnl::memory::desc s({1, p.in_c, h_in, W}, dt::f32, tag::any), wd({p.out_c, p.in_c, 3, 3}, dt::f32, tag::any),
          b({p.out_c}, dt::f32, tag::x), d({1, p.out_c, h_out, p.out_w(W)}, dt::f32, tag::any);
      const dnnl::memory::dims st{1, 1}, dil{0, 0}, pl{pad_h, p.pad}, pr{pad_h, p.pad};
      const auto a = dnnl::algorithm::convolution_winograd;
      const auto k = dnnl::prop_kind::forward_inference;
      // (the operation and attributes named: the iterator behind next_impl() reads them again)
      const dnnl::convolution_forward::desc cd = bias.empty()
                                                     ? dnnl::convolution_forward::desc(k, a, s, wd, d, st, dil, pl, pr)
                                                     : dnnl::convolution_forward::desc(k, a, s, wd, b, d, st, dil, pl, pr);
      const dnnl::primitive_attr attr = make_attr(po);
      const dnnl::convolution_forward::primitive_desc first(cd, attr, cpu_engine());
      dnnl::convolution_forward::primitive_desc pd = first;
      do {
        if (std::strstr(pd.impl_info_str(), "wino_4x3")) return pd;
      } while (pd.next_impl());
      return first;
    };
    WinoPlan wp{make(H, p.pad), 0, 0};
    const size_t whole = wp.pd.scratchpad_desc().get_size();
    const size_t whole_in = wp.pd.src_desc().get_size();
    if (mode() == WinogradMode::All || (whole <= kWinoMaxScratchBytes && whole_in <= kWinoMaxWholeInputBytes) ||
        p.pad != 1 || sum || p.out_h(H) <= kWinoStripRows)
      return wp;
    return WinoPlan{make(kWinoStripRows + 2, 0), kWinoStripRows, whole};
  }

  // f32_out: an fp32 destination from a BF16 layer (for the engine's own kernels); BF16 layers
  // otherwise write bf16, which the next BF16 convolution reads as it is (sum post-op in bf16 too).
  std::shared_ptr<Entry> get(int64_t H, int64_t W, bool sum, bool relu, bool f32_out) {
    std::lock_guard<std::mutex> lock(mu);
    if (prec != Precision::BF16) f32_out = false;  // F32 layers: always fp32, one primitive
    auto key = std::make_tuple(H, W, sum, relu, f32_out);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;

    const dt act = prec == Precision::BF16 ? dt::bf16 : dt::f32;
    const dt out = prec == Precision::BF16 && !f32_out ? dt::bf16 : dt::f32;
    const int64_t Ho = p.out_h(H), Wo = p.out_w(W);
    dnnl::memory::desc src_md({1, p.in_c, H, W}, act, tag::any);
    dnnl::memory::desc w_md({p.out_c, p.in_c, p.kh, p.kw}, act, tag::any);
    dnnl::memory::desc b_md({p.out_c}, dt::f32, tag::x);
    dnnl::memory::desc dst_md({1, p.out_c, Ho, Wo}, out, tag::any);
    dnnl::post_ops po;
    if (sum) po.append_sum(1.f);
    if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    // A BF16 direct layer with a residual (a bf16 channels-last map, as the bf16 layers write them: the
    // bottlenecks' last 1x1 convolutions) does not take the sum post-op: oneDNN 2.6's fastest bf16 1x1
    // kernel, brgconv_1x1, runs it well below its speed without it, and has no binary post-op. Where the
    // output is small enough to stay in the cache (kAddAfterMaxBytes: res4, res5) the layer runs
    // brgconv_1x1 without post-ops and the engine adds the residual and the ReLU after it (kern::add_bf16);
    // a larger one (res2, res3) takes a binary add post-op into a fresh destination with the first
    // kernel that has one and needs no scratchpad (jit_bf16; jit_bf16_1x1 keeps the whole output in fp32
    // in its scratchpad, 41 MB a thread at res2), where the separate pass over twice its output from
    // memory costs more than it saves. bench/dnn/bench_residual_1x1 (2 threads, the caches flushed
    // between runs, median ms, 2026-12-07, two runs), binary / sum / add after: res2 160x264 64->256
    // 2.2-2.7 / 4.4-5.0 / 3.3-3.6; res3 80x132 128->512 1.9-2.7 / 3.0-3.4 / 2.4-2.7; res4 40x66 256->1024
    // 2.2-2.7 / 2.3-2.6 / 2.0-2.2; res5 20x33 512->2048 2.1-2.4 / 2.1-2.3 / 1.9-2.1. The add after rounds
    // the product to bf16 before the add (a post-op rounds once), within the Bf16VsFp32 bounds. fp32
    // layers keep the sum (there a binary add is the slower: 64->256 12.5 against 14.1-15.0 ms).
    dnnl::memory::desc residual_md;
    dnnl::post_ops direct_po = po;
    bool add_after = false;
    if (sum && prec == Precision::BF16) {
      residual_md = hwc_md(Ho, Wo, p.out_c, dt::bf16);
      add_after = out == dt::bf16 && (size_t)(Ho * Wo * p.out_c) * sizeof(uint16_t) <= kAddAfterMaxBytes;
      direct_po = dnnl::post_ops();
      if (!add_after) {
        direct_po.append_binary(dnnl::algorithm::binary_add, residual_md);
        if (relu) direct_po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      }
    }
    const dnnl::memory::dims strides{p.stride, p.stride}, dil{p.dilation - 1, p.dilation - 1},
        pad{p.pad, p.pad};
    auto desc = [&](dnnl::algorithm alg, const dnnl::memory::desc& s_md, const dnnl::memory::desc& d_md) {
      return bias.empty() ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, s_md,
                                                            w_md, d_md, strides, dil, pad, pad)
                          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, s_md,
                                                            w_md, b_md, d_md, strides, dil, pad, pad);
    };
    std::shared_ptr<Entry> e;
    const char* alg = "direct";
    std::string why;  // why a candidate stayed direct, for the log
    if (winograd_candidate() && ref_h > 0 && !ref_done) {
      ref_done = true;
      try {
        ref_md = wino_plan(ref_h, ref_w, dnnl::post_ops(), false).pd.weights_desc();
      } catch (const dnnl::error&) {
        ref_md = dnnl::memory::desc();  // no Winograd at the reference size: none at any
      }
    }
    if (winograd_shape() && !winograd_candidate() && winograd_mode() == WinogradMode::Planned)
      why = ", not among the layers the Winograd plan chose";
    if (winograd_candidate() && !w.can_make_wino()) {
      why = ", its fp32 weights are gone (a BF16 layer without a weight source made its bf16 copy first)";
    } else if (winograd_candidate()) {
      // oneDNN throws (unimplemented) where it has no Winograd kernel for this layer or CPU.
      try {
        const WinoPlan wp = wino_plan(H, W, po, sum);
        const size_t wb = wp.pd.weights_desc().get_size(), sb = wp.pd.scratchpad_desc().get_size();
        if (ref_h > 0 && !(wp.pd.weights_desc() == ref_md)) {
          why = ref_md.get_size() ? ", its Winograd weight layout is not the one kept for " + std::to_string(ref_h) +
                                        "x" + std::to_string(ref_w)
                                  : ", no Winograd at its reference size " + std::to_string(ref_h) + "x" +
                                        std::to_string(ref_w);
        } else if (mode() == WinogradMode::On && too_narrow_for_bf16_winograd()) {
          why = ", a bf16 layer runs Winograd with " + std::to_string(kWinoMinChannelsBf16) + " channels and more";
        } else if (mode() == WinogradMode::All || (wb <= kWinoMaxWeightBytes && sb <= kWinoMaxScratchBytes)) {
          e = std::make_shared<Entry>(wp.pd, w, bias, b_md, "convolution");
          e->strip_rows = wp.strip_rows;
          // A BF16 layer's strips run one per thread, each with its thread's scratchpad (run_in_strips).
          e->reservation = reserve_scratchpad(wp.strip_rows && prec == Precision::BF16 ? sb * strip_threads() : sb);
          alg = "winograd";
          if (wp.strip_rows)
            why = ", in strips of " + std::to_string(wp.strip_rows) + " rows: " +
                  std::to_string(wp.whole_scratchpad >> 20) + " MB of scratchpad for the whole map";
        } else {
          why = ", Winograd would need " + std::to_string(wb >> 20) + " MB of weights and " +
                std::to_string(sb >> 20) + " MB of scratchpad";
        }
      } catch (const dnnl::error&) {
        e.reset();
        why = ", no Winograd kernel in oneDNN for it here";
      }
    }
    if (!e && residual_md.get_size()) {
      // The source and destination are channels-last like the residual (the add after reads it in step;
      // oneDNN 2.6 indexes a binary post-op's residual by the destination's offsets: a blocked destination
      // read it wrongly, Bf16Layers tests). The add after takes oneDNN's first implementation (brgconv_1x1);
      // the binary post-op the first one without a scratchpad (not the reference one); none: the sum post-op.
      const dnnl::memory::desc s_md({1, p.in_c, H, W}, act, tag::nhwc), d_md({1, p.out_c, Ho, Wo}, out, tag::nhwc);
      try {
        // (the operation and attributes named: the iterator behind next_impl() reads them again)
        const dnnl::convolution_forward::desc d = desc(dnnl::algorithm::convolution_direct, s_md, d_md);
        const dnnl::primitive_attr attr = make_attr(direct_po);
        dnnl::convolution_forward::primitive_desc pd(d, attr, cpu_engine());
        do {
          if (add_after || (pd.scratchpad_desc().get_size() == 0 && std::strncmp(pd.impl_info_str(), "ref", 3) != 0)) {
            e = std::make_shared<Entry>(pd, w, bias, b_md, "convolution");
            e->residual_md = residual_md;
            e->add_after = add_after;
            e->relu_after = add_after && relu;
            break;
          }
        } while (pd.next_impl());
      } catch (const dnnl::error&) {
        e.reset();
      }
    }
    if (!e)
      e = std::make_shared<Entry>(desc(dnnl::algorithm::convolution_direct, src_md, dst_md), po, w, bias, b_md,
                                  "convolution");
    if (g_verbose)
      std::fprintf(stderr, "m2fp: conv %s %dx%d %d->%d stride %d dilation %d at %lldx%lld: %s (%s; weights %.1f MB, "
                   "scratchpad %.1f MB%s)\n",
                   name.empty() ? "(unnamed)" : name.c_str(), p.kh, p.kw, p.in_c, p.out_c, p.stride, p.dilation,
                   (long long)H, (long long)W, alg, e->pd.impl_info_str(), e->pd.weights_desc().get_size() / 1048576.0,
                   e->pd.scratchpad_desc().get_size() / 1048576.0, why.c_str());
    algo[{H, W}] = alg;
    ++g_layer_primitives;
    cache[key] = e;
    return e;
  }
};

void Conv2d::init(const ConvParams& p, const float* w, const float* bias, Precision prec, const std::string& name,
                  WeightSource source) {
  p_ = p;
  impl_ = std::make_shared<Impl>();
  impl_->p = p;
  impl_->prec = prec;
  impl_->name = name;
  impl_->w.init({{p.out_c, p.in_c, p.kh, p.kw}, dt::f32, tag::oihw}, w, std::move(source));
  if (bias) impl_->bias.assign(bias, bias + p.out_c);
}

void Conv2d::prepare(int64_t H, int64_t W, bool residual, bool relu, bool hwc_out) const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  impl_->get(H, W, residual, relu, hwc_out);
}

void Conv2d::set_winograd_reference(int64_t H, int64_t W) const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->ref_h = H;
  impl_->ref_w = W;
  impl_->ref_done = false;
}

void Conv2d::set_winograd_planned(bool on) const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->planned = on;
}

WinogradLayer Conv2d::winograd_candidate() const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  std::lock_guard<std::mutex> lock(impl_->mu);
  const Impl& m = *impl_;
  WinogradLayer l;
  l.name = m.name.empty() ? "(unnamed)" : m.name;
  l.H = m.ref_h;
  l.W = m.ref_w;
  l.direct_bytes = (size_t)p_.out_c * p_.in_c * p_.kh * p_.kw * (m.prec == Precision::BF16 ? 2 : 4);
  if (!m.winograd_shape()) {
    l.why = "not a 3x3 stride-1 undilated convolution";
    return l;
  }
  if (m.ref_h <= 0) {
    l.why = "no Winograd reference size";
    return l;
  }
  l.out_pixels = p_.out_h(m.ref_h) * p_.out_w(m.ref_w);
  if (m.too_narrow_for_bf16_winograd()) {
    l.why = "bf16, fewer than " + std::to_string(kWinoMinChannelsBf16) + " channels";
    return l;
  }
  if (m.prec == Precision::BF16 && l.out_pixels < kWinoMinPixelsBf16) {
    l.why = "bf16, fewer than " + std::to_string(kWinoMinPixelsBf16) + " output pixels";
    return l;
  }
  try {
    const Impl::WinoPlan wp = m.wino_plan(m.ref_h, m.ref_w, dnnl::post_ops(), false);
    l.winograd_bytes = wp.pd.weights_desc().get_size();
    l.scratchpad_bytes = wp.pd.scratchpad_desc().get_size();
    l.strip_rows = wp.strip_rows;
    // The input converted into the kernel's layout (t_converted), and in strips each strip's output
    // (t_strip_out); a whole-map Winograd output is a map like a direct one's.
    l.buffer_bytes = wp.pd.src_desc().get_size() + (wp.strip_rows ? wp.pd.dst_desc().get_size() : 0);
  } catch (const dnnl::error&) {
    l.why = "no Winograd kernel in oneDNN for it here";
    return l;
  }
  if (l.winograd_bytes > kWinoMaxWeightBytes || l.scratchpad_bytes > kWinoMaxScratchBytes)  // the primitive's
    l.why = "over Winograd's caps (" + std::to_string(l.winograd_bytes >> 20) + " MB of weights, " +
            std::to_string(l.scratchpad_bytes >> 20) + " MB of scratchpad)";
  if (l.strip_rows && m.prec == Precision::BF16) {  // one strip per thread: each its scratchpad and buffers
    l.scratchpad_bytes *= strip_threads();
    l.buffer_bytes *= strip_threads();
  }
  return l;
}

size_t winograd_budget_bytes() {
  const char* e = std::getenv("M2FP_WINOGRAD_MB");
  if (e && *e) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(e, &end, 10);
    if (end && *end == '\0' && mb <= (1ull << 20)) return (size_t)mb << 20;
    std::fprintf(stderr, "m2fp: warning: M2FP_WINOGRAD_MB=%s not understood (a number of MB); using %d\n", e,
                 kDefaultWinogradBudgetMB);
  }
  return (size_t)kDefaultWinogradBudgetMB << 20;
}

WinogradPlan plan_winograd(const std::vector<const Conv2d*>& convs, size_t budget_bytes) {
  WinogradPlan plan;
  plan.budget_bytes = budget_bytes;
  std::vector<size_t> order;
  for (const Conv2d* c : convs) {
    WinogradLayer l = c->winograd_candidate();
    if (l.why.empty()) order.push_back(plan.layers.size());
    plan.layers.push_back(std::move(l));
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return plan.layers[a].out_pixels > plan.layers[b].out_pixels;
  });
  // What the chosen add: each one's weights over the direct ones, plus the largest scratchpad and the
  // largest converted input (per-thread buffers that grow to the largest and stay).
  size_t weights = 0, scratch = 0, buffers = 0;
  for (size_t i : order) {
    WinogradLayer& l = plan.layers[i];
    const size_t w = weights + (l.winograd_bytes > l.direct_bytes ? l.winograd_bytes - l.direct_bytes : 0);
    const size_t sc = std::max(scratch, l.scratchpad_bytes), bu = std::max(buffers, l.buffer_bytes);
    if (w + sc + bu > budget_bytes) {
      l.why = "over the Winograd budget of " + std::to_string(budget_bytes >> 20) + " MB";
      continue;
    }
    weights = w;
    scratch = sc;
    buffers = bu;
    l.chosen = true;
    ++plan.chosen;
  }
  plan.used_bytes = plan.chosen ? weights + scratch + buffers : 0;
  for (size_t i = 0; i < convs.size(); ++i) convs[i]->set_winograd_planned(plan.layers[i].chosen);
  return plan;
}

std::string WinogradPlan::summary() const {
  // Layers grouped by name with the block index taken out ("backbone.res4.*.conv2" for res4's).
  std::vector<std::pair<std::string, int>> groups;
  int weighed = 0;
  for (const WinogradLayer& l : layers) {
    if (l.out_pixels == 0 && !l.chosen) continue;  // not a 3x3 stride-1 fp32 layer
    ++weighed;
    if (!l.chosen) continue;
    std::string g;
    bool digits = false;
    for (size_t i = 0; i < l.name.size(); ++i) {
      const bool d = l.name[i] >= '0' && l.name[i] <= '9' && (i == 0 || l.name[i - 1] == '.' || digits);
      if (d) {
        if (!digits) g += '*';
        digits = true;
      } else {
        digits = false;
        g += l.name[i];
      }
    }
    if (l.strip_rows) g += " (strips of " + std::to_string(l.strip_rows) + " rows)";
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == g; });
    if (it == groups.end()) groups.push_back({g, 1});
    else ++it->second;
  }
  char head[160];
  std::snprintf(head, sizeof head, "%d of %d 3x3 layers, +%.0f MB of the %.0f MB budget", chosen, weighed,
                used_bytes / 1048576.0, budget_bytes / 1048576.0);
  std::string out = head;
  if (chosen == 0) {  // why not: the budget if it stopped one, else the first layer's reason
    for (const WinogradLayer& l : layers)
      if (l.why.find("budget") != std::string::npos) return out + " (" + l.why + ")";
    for (const WinogradLayer& l : layers)
      if (l.out_pixels > 0 && !l.why.empty()) return out + " (" + l.why + ")";
    return out;
  }
  out += ":";
  for (size_t i = 0; i < groups.size(); ++i)
    out += (i ? ", " : " ") + (groups[i].second > 1 ? std::to_string(groups[i].second) + " x " : std::string()) +
           groups[i].first;
  return out;
}

size_t Conv2d::weight_bytes() const {
  if (!impl_) return 0;
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->w.bytes();
}

int Conv2d::weights_rederived() const {
  if (!impl_) return 0;
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->w.rederived();
}

std::string Conv2d::algorithm_for(int64_t H, int64_t W) const {
  if (!impl_) return "";
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->algo.find({H, W});
  return it == impl_->algo.end() ? "" : it->second;
}

Tensor Conv2d::operator()(const Tensor& x, const Tensor* residual, bool relu, bool hwc_out) const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  if (x.shape.size() != 3 || x.shape[2] != p_.in_c)
    throw std::invalid_argument("Conv2d: expected [H, W, " + std::to_string(p_.in_c) + "], got " +
                                x.shape_str());
  // Asked for channels-last output: run in the layouts oneDNN prefers (fp32 out) and convert the
  // result (mixing a plain nhwc destination with a blocked source sends oneDNN 2.6 to its reference
  // implementation, ~100x slower).
  if (hwc_out) return to_hwc(run(x, residual, relu, true));
  return run(x, residual, relu, false);
}

Tensor Conv2d::accumulate(const Tensor& x, Tensor&& residual, bool relu) const {
  if (!impl_) throw std::logic_error("Conv2d used before init");
  if (x.shape.size() != 3 || x.shape[2] != p_.in_c)
    throw std::invalid_argument("Conv2d: expected [H, W, " + std::to_string(p_.in_c) + "], got " +
                                x.shape_str());
  const Tensor r = std::move(residual);
  return run(x, &r, relu, false, /*into_residual=*/true);
}

Tensor Conv2d::run(const Tensor& x, const Tensor* residual, bool relu, bool f32_out, bool into_residual) const {
  const int64_t H = x.shape[0], W = x.shape[1], Ho = p_.out_h(H), Wo = p_.out_w(W);
  auto e = impl_->get(H, W, residual != nullptr, relu, f32_out);
  if (e->strip_rows)  // fp32 Winograd in strips: no residual, channels-last out
    return run_in_strips(*e, x, p_, /*on_threads=*/impl_->prec == Precision::BF16);
  const std::vector<int64_t> out_shape{Ho, Wo, p_.out_c};
  if (residual && residual->shape != out_shape)
    throw std::invalid_argument("Conv2d: residual " + residual->shape_str() + " != output [" + std::to_string(Ho) +
                                ", " + std::to_string(Wo) + ", " + std::to_string(p_.out_c) + "]");
  // A residual added by a binary post-op or after the primitive is read where it is (converted first if
  // it is in another layout).
  const bool binary = residual && e->residual_md.get_size() > 0 && !e->add_after;
  const bool add_after = residual && e->add_after;
  // The sum post-op adds what the destination holds: a residual held nowhere else, already in the
  // destination's layout, is the destination (no copy).
  const bool in_place = !binary && !add_after && into_residual && residual && residual->buf.use_count() == 1 &&
                        residual->layout != Layout::Plain && md_of(*residual) == e->pd.dst_desc();
  Tensor y = in_place ? *residual : map_for(e->pd.dst_desc(), Ho, Wo, p_.out_c);
  Tensor converted_residual;
  const void* residual_ptr = nullptr;
  if (binary || add_after) {
    const dnnl::memory::desc rmd = md_of(*residual);
    residual_ptr = residual->data();
    if (!(rmd == e->residual_md)) {
      converted_residual = map_for(e->residual_md, Ho, Wo, p_.out_c);
      reorder(rmd, residual->data(), e->residual_md, converted_residual.data());
      residual_ptr = converted_residual.data();
    }
  } else if (residual && !in_place) {
    const dnnl::memory::desc rmd = md_of(*residual);
    if (rmd == e->pd.dst_desc()) std::memcpy(y.data(), residual->data(), y.bytes);
    else reorder(rmd, residual->data(), e->pd.dst_desc(), y.data());
  }
  // The input in the layout (and data type) the primitive wants.
  const dnnl::memory::desc xmd = md_of(x);
  const void* src_ptr = x.data();
  if (!(xmd == e->pd.src_desc())) {
    void* const converted = t_converted.get(e->pd.src_desc().get_size());
    if (x.layout == Layout::HWC && e->pd.src_desc() == hwc_md(H, W, p_.in_c, dt::bf16))  // plain fp32 -> bf16
      f32_to_bf16_rows(x.data(), p_.in_c, H * W, p_.in_c, static_cast<uint16_t*>(converted));
    else
      reorder(xmd, x.data(), e->pd.src_desc(), converted);
    src_ptr = converted;
  }
  e->execute(src_ptr, y.data(), binary ? residual_ptr : nullptr);
  if (add_after && !t_zero_run)
    kern::add_bf16(reinterpret_cast<uint16_t*>(y.data()), static_cast<const uint16_t*>(residual_ptr), Ho * Wo * p_.out_c,
                   e->relu_after);
  return y;
}

// ---- Linear (matmul) --------------------------------------------------------------------------
struct Linear::Impl {
  int in = 0, out = 0;
  Precision prec = Precision::F32;
  WeightStore w;            // PyTorch [out, in] = the matmul's [in, out] with strides (1, in)
  std::vector<float> bias;  // [out] or empty
  using Entry = PrimEntry<dnnl::matmul>;
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool>, std::shared_ptr<Entry>> cache;

  // lds: the source's row stride as the primitive reads it (BF16: the bf16 input's); y_bf16: a
  // bf16 destination (BF16 layers only).
  std::shared_ptr<Entry> get(int64_t M, int64_t lds, int64_t ldy, bool relu, bool y_bf16) {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_tuple(M, lds, ldy, relu, y_bf16);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    const dt act = prec == Precision::BF16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc src_md({M, in}, act, {lds, 1});
    dnnl::memory::desc w_md({in, out}, act, tag::any);
    dnnl::memory::desc b_md({1, out}, dt::f32, tag::ab);
    dnnl::memory::desc dst_md({M, out}, y_bf16 ? dt::bf16 : dt::f32, {ldy, 1});
    dnnl::post_ops po;
    if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    auto desc = bias.empty() ? dnnl::matmul::desc(src_md, w_md, dst_md)
                             : dnnl::matmul::desc(src_md, w_md, b_md, dst_md);
    auto e = std::make_shared<Entry>(desc, po, w, bias, b_md, "matmul");
    ++g_layer_primitives;
    cache[key] = e;
    return e;
  }
};

void Linear::init(int in, int out, const float* w, const float* bias, Precision prec) {
  in_ = in;
  out_ = out;
  impl_ = std::make_shared<Impl>();
  impl_->in = in;
  impl_->out = out;
  impl_->prec = prec;
  impl_->w.init({{in, out}, dt::f32, {1, in}}, w);
  if (bias) impl_->bias.assign(bias, bias + out);
}

Precision Linear::precision() const { return impl_ ? impl_->prec : Precision::F32; }

void Linear::run(const void* x, bool x_bf16, int64_t ldx, int64_t M, void* y, bool y_bf16, int64_t ldy,
                 bool relu) const {
  if (!impl_) throw std::logic_error("Linear used before init");
  if ((x_bf16 || y_bf16) && impl_->prec != Precision::BF16) throw std::logic_error("Linear: bf16 data for an F32 layer");
  if (M == 0) return;
  // BF16 inputs given in fp32 are converted into a dense [M, in] buffer, so their stride is `in`.
  const bool convert = impl_->prec == Precision::BF16 && !x_bf16;
  auto e = impl_->get(M, convert ? in_ : ldx, ldy, relu, y_bf16);
  const void* src = x;
  if (convert) {  // the input rounded to bf16, dense [M, in]
    void* const converted = t_converted.get(e->pd.src_desc().get_size());
    f32_to_bf16_rows(static_cast<const float*>(x), ldx, M, in_, static_cast<uint16_t*>(converted));
    src = converted;
  }
  e->execute(src, y);
}

void Linear::forward(const float* x, int64_t ldx, int64_t M, float* y, int64_t ldy, bool relu) const {
  run(x, false, ldx, M, y, false, ldy, relu);
}

void Linear::forward_bf16(const float* x, int64_t ldx, int64_t M, uint16_t* y, int64_t ldy) const {
  run(x, false, ldx, M, y, true, ldy, false);
}

void Linear::forward_from_bf16(const uint16_t* x, int64_t ldx, int64_t M, float* y, int64_t ldy) const {
  run(x, true, ldx, M, y, false, ldy, false);
}

void Linear::forward_bf16_from_bf16(const uint16_t* x, int64_t ldx, int64_t M, uint16_t* y, int64_t ldy) const {
  run(x, true, ldx, M, y, true, ldy, false);
}

void Linear::prepare(int64_t M, int64_t ldx, int64_t ldy, bool relu, bool y_bf16) const {
  if (!impl_) throw std::logic_error("Linear used before init");
  if (M > 0) impl_->get(M, impl_->prec == Precision::BF16 ? in_ : ldx, ldy, relu, y_bf16);
}

// ---- feed-forward block -----------------------------------------------------------------------
namespace {
bool ffn_in_bf16(const Linear& first, const Linear& second) {
  return first.precision() == Precision::BF16 && second.precision() == Precision::BF16;
}
void check_ffn(const Linear& first, const Linear& second, int64_t block_rows) {
  if (first.out() != second.in())
    throw std::invalid_argument("feed_forward: first gives " + std::to_string(first.out()) + " columns, second takes " +
                                std::to_string(second.in()));
  if (block_rows <= 0) throw std::invalid_argument("feed_forward: block_rows must be positive");
}
}  // namespace

void Linear::feed_forward_rows(const Linear& first, const Linear& second, const void* x, bool x_bf16, int64_t ldx,
                               int64_t M, float* y, int64_t ldy, int64_t block_rows) {
  check_ffn(first, second, block_rows);
  if (M == 0) return;
  const bool bf16 = ffn_in_bf16(first, second);
  const int64_t F = first.out(), rows_max = std::min(block_rows, M);
  const size_t x_size = x_bf16 ? sizeof(uint16_t) : sizeof(float);
  // The hidden layer [rows, F], dense: fp32, or bf16 in the first half of the same buffer.
  Tensor hidden = Tensor::empty({rows_max, F});
  for (int64_t r0 = 0; r0 < M; r0 += block_rows) {
    const int64_t rows = std::min(block_rows, M - r0);
    first.run(static_cast<const char*>(x) + r0 * ldx * x_size, x_bf16, ldx, rows, hidden.data(), bf16, F,
              /*relu=*/true);
    second.run(hidden.data(), bf16, F, rows, y + r0 * ldy, false, ldy, /*relu=*/false);
  }
}

void feed_forward(const Linear& first, const Linear& second, const float* x, int64_t ldx, int64_t M, float* y,
                  int64_t ldy, int64_t block_rows) {
  Linear::feed_forward_rows(first, second, x, false, ldx, M, y, ldy, block_rows);
}

void feed_forward_from_bf16(const Linear& first, const Linear& second, const uint16_t* x, int64_t ldx, int64_t M,
                            float* y, int64_t ldy, int64_t block_rows) {
  Linear::feed_forward_rows(first, second, x, true, ldx, M, y, ldy, block_rows);
}

void prepare_feed_forward(const Linear& first, const Linear& second, int64_t M, int64_t ldx, int64_t ldy,
                          int64_t block_rows) {
  check_ffn(first, second, block_rows);
  if (!first.impl_ || !second.impl_) throw std::logic_error("Linear used before init");
  if (M == 0) return;
  const bool bf16 = ffn_in_bf16(first, second);
  const int64_t F = first.out();
  for (int64_t rows : {std::min(block_rows, M), M % block_rows}) {  // full row blocks and the last one
    if (rows == 0) continue;
    first.impl_->get(rows, first.precision() == Precision::BF16 ? first.in() : ldx, F, true, bf16);
    second.impl_->get(rows, F, ldy, false, false);  // its input: the dense hidden layer
  }
}

Tensor Linear::operator()(const Tensor& x, bool relu) const {
  if (x.shape.size() != 2 || x.shape[1] != in_)
    throw std::invalid_argument("Linear: expected [M, " + std::to_string(in_) + "], got " + x.shape_str());
  Tensor y = Tensor::empty({x.shape[0], out_});
  forward(x.data(), in_, x.shape[0], y.data(), out_, relu);
  return y;
}

// ---- matmul of two activations ----------------------------------------------------------------
namespace {
struct ActMatmul {
  dnnl::matmul prim;
  dnnl::matmul::primitive_desc pd;
};

// The cached primitive for an M x N x K product of two activations (created on first use), of
// fp32 operands or (bf16) bfloat16 ones; the product is fp32 either way.
std::shared_ptr<ActMatmul> act_matmul(int64_t M, int64_t N, int64_t K, bool bt, bool bf16 = false) {
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool>, std::shared_ptr<ActMatmul>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[std::make_tuple(M, N, K, bt, bf16)];
  if (!slot) {
    auto e = std::make_shared<ActMatmul>();
    const dt in = bf16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc a_md({M, K}, in, tag::ab), b_md({K, N}, in, bt ? tag::ba : tag::ab),
        c_md({M, N}, dt::f32, tag::ab);
    e->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), make_attr(dnnl::post_ops()),
                                         cpu_engine());
    e->prim = dnnl::matmul(e->pd);
    slot = e;
  }
  return slot;
}

void matmul_act(const void* a, const void* b, float* c, int64_t M, int64_t N, int64_t K, bool bt,
                bool bf16 = false) {
  const std::shared_ptr<ActMatmul> e = act_matmul(M, N, K, bt, bf16);
  dnnl::stream s(cpu_engine());
  void* const scratch = t_scratchpad.get(e->pd.scratchpad_desc().get_size());
  if (t_zero_run) return zero_fill(c, e->pd.dst_desc().get_size(), e->pd.scratchpad_desc().get_size());
  dnnl::memory am(e->pd.src_desc(), cpu_engine(), const_cast<void*>(a)),
      bm(e->pd.weights_desc(), cpu_engine(), const_cast<void*>(b)), cm(e->pd.dst_desc(), cpu_engine(), c);
  e->prim.execute(s, {{DNNL_ARG_SRC, am},
                      {DNNL_ARG_WEIGHTS, bm},
                      {DNNL_ARG_DST, cm},
                      {DNNL_ARG_SCRATCHPAD, dnnl::memory(e->pd.scratchpad_desc(), cpu_engine(), scratch)}});
  s.wait();
}
}  // namespace

void matmul_abt(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K) {
  matmul_act(a, b, c, M, N, K, true);
}
void matmul_ab(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K) {
  matmul_act(a, b, c, M, N, K, false);
}
void prepare_matmul_abt(int64_t M, int64_t N, int64_t K) {
  if (M > 0 && N > 0 && K > 0) act_matmul(M, N, K, true);
}
void matmul_abt_bf16(const uint16_t* a, const uint16_t* b, float* c, int64_t M, int64_t N, int64_t K) {
  if (!bf16_available()) throw std::logic_error("matmul_abt_bf16: oneDNN has no bf16 matmul on this CPU");
  matmul_act(a, b, c, M, N, K, true, true);
}
void prepare_matmul_abt_bf16(int64_t M, int64_t N, int64_t K) {
  if (M > 0 && N > 0 && K > 0 && bf16_available()) act_matmul(M, N, K, true, true);
}

// ---- max-pool ---------------------------------------------------------------------------------
Tensor max_pool_3x3_s2(const Tensor& x) {
  const int64_t H = x.shape[0], W = x.shape[1], C = x.shape[2];
  const int64_t Ho = (H + 2 - 3) / 2 + 1, Wo = (W + 2 - 3) / 2 + 1;
  const dnnl::memory::desc src_md = md_of(x);
  dnnl::memory::desc dst_any({1, C, Ho, Wo}, src_md.data_type(), tag::any);
  dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                src_md, dst_any, {2, 2}, {3, 3}, {1, 1}, {1, 1});
  dnnl::pooling_forward::primitive_desc pd(d, cpu_engine());
  Tensor y = map_for(pd.dst_desc(), Ho, Wo, C);
  dnnl::stream s(cpu_engine());
  dnnl::memory src(src_md, cpu_engine(), const_cast<float*>(x.data())), dst(pd.dst_desc(), cpu_engine(), y.data());
  dnnl::pooling_forward(pd).execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  s.wait();
  return y;
}

}  // namespace m2fp::dnn
