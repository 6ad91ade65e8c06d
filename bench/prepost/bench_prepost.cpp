// bench/prepost/bench_prepost.cpp: decode, pre-processing and post-processing of photos alone, the
// network run once per photo (issue 14's targets 1 and 4 without the network's minutes).
//
//   bench_prepost --model FILE [--runs N] [--cache DIR] PHOTO...
//
// Per photo: the median (and fastest) of N decodes, N pre-processings and N post-processings of the
// same network outputs, and a digest of the Parsing (labels, person map, instances with their masks,
// persons, label fractions), which a change of the post-processing that is meant to keep its
// results must keep. --cache DIR keeps each photo's network outputs (raw floats, keyed by the
// photo's name and input size) so that later runs skip the network; the digest is only comparable
// between runs with the same model. With synthetic weights the timings hold for the real
// checkpoint's shapes, not its masks (every synthetic mask's box covers the whole photo).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sys/resource.h>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/image.h"
#include "engine/m2fp.h"
#include "engine/pipeline.h"
#include "engine/postprocess.h"
#include "engine/preprocess.h"
#include "kernels/kernels.h"

using namespace m2fp;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// CPU time of the process (every thread, user + system), ms: less sensitive than the wall clock to
// other processes on a shared machine (with OpenMP threads it includes their spin-waits).
double cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-3;
}

struct Times {
  std::vector<double> v;
  double median() const {
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : (s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]));
  }
  double min() const { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
};

struct Digest {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const uint8_t* b = (const uint8_t*)p;
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  template <class T> void val(const T& v) { bytes(&v, sizeof v); }
  template <class T> void vec(const std::vector<T>& v) {
    val(v.size());
    if (!v.empty()) bytes(v.data(), v.size() * sizeof(T));
  }
  void box(const BBox& b) { val(b.x0), val(b.y0), val(b.x1), val(b.y1); }
};

uint64_t digest(const Parsing& p) {
  Digest d;
  d.val(p.width), d.val(p.height);
  d.vec(p.labels);
  d.vec(p.person_map);
  d.vec(p.label_fractions);
  d.vec(p.semantic_scores);
  d.vec(p.scores);
  for (const Instance& in : p.instances) {
    d.val((int)in.kind), d.val(in.category_id), d.val(in.score), d.val(in.area), d.val(in.query), d.val(in.person);
    d.box(in.bbox);
    d.val(in.mask_bits.size());  // as vec() hashed the std::vector it was
    if (!in.mask_bits.empty()) d.bytes(in.mask_bits.data(), in.mask_bits.size());
  }
  for (const Person& ps : p.persons) {
    d.val(ps.instance), d.val(ps.score), d.val(ps.area);
    d.box(ps.bbox);
    d.vec(ps.parts);
  }
  return d.h;
}

void write_tensor(std::ofstream& f, const Tensor& t) {
  const int64_t nd = (int64_t)t.shape.size();
  f.write((const char*)&nd, sizeof nd);
  f.write((const char*)t.shape.data(), nd * sizeof(int64_t));
  f.write((const char*)t.data(), t.numel() * sizeof(float));
}

bool read_tensor(std::ifstream& f, Tensor& t) {
  int64_t nd = 0;
  if (!f.read((char*)&nd, sizeof nd) || nd < 1 || nd > 4) return false;
  std::vector<int64_t> shape((size_t)nd);
  if (!f.read((char*)shape.data(), nd * sizeof(int64_t))) return false;
  for (int64_t s : shape)
    if (s < 1 || s > (1 << 20)) return false;
  t = Tensor::empty(shape);
  return (bool)f.read((char*)t.data(), t.numel() * sizeof(float));
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int usage() {
  std::fprintf(stderr, "usage: bench_prepost --model FILE [--runs N] [--cache DIR] PHOTO...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, cache;
  int runs = 5;
  std::vector<std::string> photos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model_path = argv[++i];
    else if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (a == "--cache" && i + 1 < argc) cache = argv[++i];
    else if (!a.empty() && a[0] == '-') return usage();
    else photos.push_back(a);
  }
  if (model_path.empty() || photos.empty() || runs < 1 || runs > 1000) return usage();
  try {
    const auto model = M2FP::load(model_path);
    const ModelConfig& cfg = model->config();
    std::printf("bench_prepost: %s, ISA %s, %d runs per stage (synthetic weights: timings only)\n",
                model_path.c_str(), kern::isa_name(kern::active_isa()), runs);
    std::printf("%-20s %9s %8s %13s %13s %13s %8s %16s %16s\n", "photo", "size", "pre_post", "decode", "preprocess",
                "postprocess", "post_cpu", "input digest", "parsing digest");
    for (const std::string& path : photos) {
      const std::vector<uint8_t> bytes = read_file(path);
      Times dec, pre, post, post_cpu;
      Image img;
      for (int r = 0; r < runs; ++r) {
        auto t0 = Clock::now();
        img = decode_image(bytes.data(), bytes.size());
        dec.v.push_back(ms_since(t0));
      }
      Preprocessed p;
      for (int r = 0; r < runs; ++r) {
        p = Preprocessed();
        auto t0 = Clock::now();
        p = cfg.single_human ? preprocess_single_person(img, cfg.single_human_size[0], cfg.single_human_size[1], false)
                             : preprocess_multi_person(img, 640, 1333, false);
        pre.v.push_back(ms_since(t0));
      }
      Digest pre_digest;  // the network input
      pre_digest.bytes(p.image.data(), (size_t)p.image.numel() * sizeof(float));
      PostprocessGeometry g;
      g.Hp = p.Hp, g.Wp = p.Wp, g.nh = p.nh, g.nw = p.nw, g.H0 = img.height, g.W0 = img.width;
      g.crop_box = p.crop_box;
      ForwardOutputs out;
      const std::string key = cache.empty() ? "" : (fs::path(cache) / (fs::path(path).filename().string() + "." +
                                                                       std::to_string(p.Hp) + "x" + std::to_string(p.Wp) + ".out")).string();
      bool cached = false;
      if (!key.empty()) {
        std::ifstream f(key, std::ios::binary);
        cached = f && read_tensor(f, out.pred_logits) && read_tensor(f, out.pred_masks);
      }
      if (!cached) {
        out = model->forward(p.image);
        if (!key.empty()) {
          fs::create_directories(cache);
          std::ofstream f(key, std::ios::binary);
          write_tensor(f, out.pred_logits);
          write_tensor(f, out.pred_masks);
        }
      }
      p = Preprocessed();
      uint64_t dg = 0;
      for (int r = 0; r < runs; ++r) {
        const double c0 = cpu_ms();
        auto t0 = Clock::now();
        const Parsing res = postprocess(cfg, out, g);
        post.v.push_back(ms_since(t0));
        post_cpu.v.push_back(cpu_ms() - c0);
        const uint64_t d = digest(res);
        if (r > 0 && d != dg) throw std::runtime_error(path + ": post-processing gave different results in two runs");
        dg = d;
      }
      char size[32];
      std::snprintf(size, sizeof size, "%dx%d", img.width, img.height);
      std::printf("%-20s %9s %8.1f %6.1f/%-6.1f %6.1f/%-6.1f %6.1f/%-6.1f %8.1f %016llx %016llx\n",
                  fs::path(path).filename().string().c_str(), size, dec.median() + pre.median() + post.median(),
                  dec.median(), dec.min(), pre.median(), pre.min(), post.median(), post.min(), post_cpu.median(),
                  (unsigned long long)pre_digest.h, (unsigned long long)dg);
      std::fflush(stdout);
    }
    std::printf("columns: median/fastest ms; pre_post = the medians' sum; post_cpu = median CPU ms of the\n"
                "         post-processing, all threads (user + system)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_prepost: %s\n", e.what());
    return 1;
  }
  return 0;
}
