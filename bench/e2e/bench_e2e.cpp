// bench/e2e/bench_e2e.cpp: end-to-end benchmark of one photo through the whole engine
// (decode -> pre-process -> backbone -> pixel decoder -> transformer decoder -> post-process),
// the same call the CLI makes (engine/pipeline.h parse_image_bytes()).
//
//   bench_e2e --model M.safetensors --image PHOTO [--threads N] [--precision fp32|bf16] [--runs 5]
//             [--warmup 1] [--isa scalar|avx2|avx512] [--short-edge 640] [--max-size 1333]
//             [--peak-gflops G] [--json OUT.json] [--quiet]
//
// Loads the model once, parses the photo --warmup times untimed (oneDNN creates and caches its
// primitives and weight reorders for the input shape on the first call; that cold run is printed
// separately), then --runs times, and prints per stage the median / min / mean +- std
// milliseconds, GFLOP and GFLOP/s (layer_costs() multiply-adds x 2 / median time), the targets of
// issue 4 beside the measured figures, peak RSS, and the run's context: threads, kernel ISA,
// oneDNN ISA, precision, CPU, commit, load average. --json writes the same (plus every run) for
// bench/compare_pytorch.py and for keeping results.
//
// Stage keys (the same as tests/reference/bench_reference.py where both have them):
//   decode, preprocess, backbone, pixel_decoder, transformer_decoder, postprocess   measured
//   pre_post = decode + preprocess + postprocess, network = the three network stages,
//   total_excl_decode = total - decode (what the PyTorch reference's "total" covers: it decodes
//   the photo once, outside its timed loop), total = decode to the last output.
// Medians of derived stages are medians of the per-run sums, not sums of medians.
#include <benchmark/benchmark.h>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/io.h"
#include "engine/m2fp.h"
#include "engine/pipeline.h"
#include "kernels/kernels.h"

#ifndef M2FP_SOURCE_DIR
#define M2FP_SOURCE_DIR ""
#endif

namespace {

using m2fp::StageTimings;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- options ----------------------------------------------------------------------------------
struct Options {
  std::string model, image, json, isa, precision = "fp32";
  int threads = 0;  // 0: OpenMP's default (OMP_NUM_THREADS or the core count)
  int runs = 5, warmup = 1, short_edge = 640, max_size = 1333;
  double peak_gflops = 0;  // > 0: also print % of this peak
  bool quiet = false;
};

const char* kUsage =
    "usage: bench_e2e --model M.safetensors --image PHOTO [--threads N] [--precision fp32|bf16]\n"
    "                 [--runs 5] [--warmup 1] [--isa scalar|avx2|avx512] [--short-edge 640]\n"
    "                 [--max-size 1333] [--peak-gflops G] [--json OUT.json] [--quiet]\n"
    "Parses PHOTO --warmup times untimed, then --runs times, and prints per-stage median\n"
    "milliseconds, GFLOP/s, peak RSS, threads, ISA, precision, CPU and commit.\n"
    "The reference photo of issue 4 (548x342 -> 640x1025, padded 640x1056): bench/make_bench_image.py.\n";

int to_int(const std::string& key, const std::string& v, int lo, int hi) {
  size_t used = 0;
  long n = 0;
  try {
    n = std::stol(v, &used);
  } catch (...) {
    used = 0;
  }
  if (v.empty() || used != v.size()) throw UsageError("--" + key + " expects an integer, got '" + v + "'");
  if (n < lo || n > hi)
    throw UsageError("--" + key + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
  return (int)n;
}

double to_double(const std::string& key, const std::string& v) {
  size_t used = 0;
  double d = 0;
  try {
    d = std::stod(v, &used);
  } catch (...) {
    used = 0;
  }
  if (v.empty() || used != v.size() || !(d >= 0) || !std::isfinite(d))
    throw UsageError("--" + key + " expects a non-negative number, got '" + v + "'");
  return d;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
    std::string key = a.substr(2), val;
    const size_t eq = key.find('=');
    const bool has_eq = eq != std::string::npos;
    if (has_eq) {
      val = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    if (key == "quiet") {
      if (has_eq) throw UsageError("option --quiet takes no value");
      o.quiet = true;
      continue;
    }
    static const char* valued[] = {"model", "image", "json", "isa", "precision", "threads", "runs",
                                   "warmup", "short-edge", "max-size", "peak-gflops"};
    if (std::find_if(std::begin(valued), std::end(valued), [&](const char* k) { return key == k; }) ==
        std::end(valued))
      throw UsageError("unknown option --" + key);
    if (!has_eq) {
      if (i + 1 >= argc) throw UsageError("option --" + key + " needs a value");
      val = argv[++i];
    }
    if (key == "model") o.model = val;
    else if (key == "image") o.image = val;
    else if (key == "json") o.json = val;
    else if (key == "isa") o.isa = val;
    else if (key == "precision") o.precision = val;
    else if (key == "threads") o.threads = to_int(key, val, 1, 1024);
    else if (key == "runs") o.runs = to_int(key, val, 1, 100000);
    else if (key == "warmup") o.warmup = to_int(key, val, 0, 100000);
    else if (key == "short-edge") o.short_edge = to_int(key, val, 32, 4096);
    else if (key == "max-size") o.max_size = to_int(key, val, 32, 8192);
    else if (key == "peak-gflops") o.peak_gflops = to_double(key, val);
  }
  if (o.model.empty()) throw UsageError("missing required option --model");
  if (o.image.empty()) throw UsageError("missing required option --image");
  if (!o.json.empty()) {
    // Checked before the runs, not after minutes of them.
    namespace fs = std::filesystem;
    const fs::path parent = fs::absolute(fs::path(o.json)).parent_path();
    std::error_code ec;
    if (!fs::is_directory(parent, ec) || access(parent.c_str(), W_OK) != 0)
      throw UsageError("--json " + o.json + ": folder " + parent.string() + " does not exist or is not writable");
    if (fs::is_directory(o.json, ec)) throw UsageError("--json " + o.json + ": is a folder");
  }
  return o;
}

// ---- machine and build facts --------------------------------------------------------------------
std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) {
        std::string s = line.substr(c + 1);
        s.erase(0, s.find_first_not_of(" \t"));
        return s;
      }
    }
  return "unknown";
}

bool cpu_has_flag(const std::string& flag) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

// First line of a shell command's stdout ("" when it fails).
std::string command_line_output(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  char buf[256] = {0};
  std::string s = std::fgets(buf, sizeof buf, p) ? buf : "";
  const int rc = pclose(p);
  if (rc != 0) return "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The source tree's commit at run time, "+dirty" when tracked files differ from it.
std::string source_commit() {
  const std::string src = M2FP_SOURCE_DIR;
  if (src.empty()) return "unknown";
  const std::string git = "git -C '" + src + "' ";
  std::string c = command_line_output(git + "rev-parse --short HEAD 2>/dev/null");
  if (c.empty()) return "unknown";
  if (!command_line_output(git + "status --porcelain --untracked-files=no 2>/dev/null").empty()) c += "+dirty";
  return c;
}

// "L1d 32 KiB, L2 1024 KiB, L3 32768 KiB (shared by 2)" from Google Benchmark's CPU probe.
std::string cache_summary() {
  std::string s;
  for (const auto& c : benchmark::CPUInfo::Get().caches) {
    if (c.type == "Instruction") continue;
    if (!s.empty()) s += ", ";
    s += "L" + std::to_string(c.level) + (c.type == "Data" ? "d " : " ") + std::to_string(c.size / 1024) + " KiB";
    if (c.num_sharing > 1) s += " (shared by " + std::to_string(c.num_sharing) + ")";
  }
  return s.empty() ? "unknown" : s;
}

const char* dnnl_isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
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

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

double load_average() {
  double l[3] = {-1, -1, -1};
  return getloadavg(l, 3) >= 1 ? l[0] : -1;
}

// /proc/self/status "VmHWM" / "VmRSS" in MB (-1 when unavailable).
double proc_status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::atof(line.c_str() + k.size()) / 1024.0;  // kB
  return -1;
}

double ru_maxrss_mb() {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (double)ru.ru_maxrss / 1024.0;  // kB on Linux
}

// Environment variables that change threading or code paths, as set for this run.
const char* kEnvVars[] = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_PROC_BIND", "OMP_PLACES", "GOMP_SPINCOUNT",
                          "M2FP_ISA",        "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_VERBOSE", "ONEDNN_VERBOSE"};

std::string env_summary() {
  std::string s;
  for (const char* k : kEnvVars)
    if (const char* v = std::getenv(k)) s += (s.empty() ? "" : " ") + std::string(k) + "=" + v;
  return s.empty() ? "(none of OMP_*, GOMP_SPINCOUNT, M2FP_ISA, DNNL_* set)" : s;
}

nlohmann::json env_json() {
  nlohmann::json j = nlohmann::json::object();
  for (const char* k : kEnvVars)
    if (const char* v = std::getenv(k)) j[k] = v;
  return j;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error(path + ": read error");
  if (b.empty()) throw std::runtime_error(path + ": empty file");
  return b;
}

// ---- statistics ---------------------------------------------------------------------------------
struct Stats {
  double median = 0, min = 0, mean = 0, std = 0;
};

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / (double)n;
  if (n > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / (double)(n - 1));  // sample std, as Python's statistics.stdev
  }
  return s;
}

// Per-run stage values, measured and derived (see the header comment).
const char* kStages[] = {"decode",   "preprocess",        "backbone", "pixel_decoder", "transformer_decoder",
                         "postprocess", "pre_post",       "network",  "total_excl_decode", "total"};

std::map<std::string, double> stage_values(const StageTimings& t) {
  std::map<std::string, double> m;
  m["decode"] = t.decode_ms;
  m["preprocess"] = t.preprocess_ms;
  m["backbone"] = t.backbone_ms;
  m["pixel_decoder"] = t.pixel_decoder_ms;
  m["transformer_decoder"] = t.transformer_decoder_ms;
  m["postprocess"] = t.postprocess_ms;
  m["pre_post"] = t.decode_ms + t.preprocess_ms + t.postprocess_ms;
  m["network"] = t.backbone_ms + t.pixel_decoder_ms + t.transformer_decoder_ms;
  m["total_excl_decode"] = t.total_ms - t.decode_ms;
  m["total"] = t.total_ms;
  return m;
}

// Targets of issue 4 for the 640-short-edge reference photo (640x1056 padded input), ms.
double target_ms(const std::string& stage, m2fp::dnn::Precision p) {
  if (p == m2fp::dnn::Precision::BF16) return stage == "total" ? 1400 : 0;
  if (stage == "total") return 2500;
  if (stage == "backbone") return 1200;
  if (stage == "pixel_decoder") return 1000;
  if (stage == "transformer_decoder") return 250;
  if (stage == "pre_post") return 100;
  return 0;
}
constexpr double kTargetPeakRssMb = 800;

int run(const Options& o) {
  // ---- context: threads, kernel ISA, precision
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (!o.isa.empty()) {
    m2fp::kern::Isa isa;
    if (!m2fp::kern::parse_isa(o.isa.c_str(), &isa))
      throw UsageError("--isa must be scalar, avx2 or avx512, got '" + o.isa + "'");
    if (!m2fp::kern::isa_supported(isa))
      throw std::runtime_error(std::string("--isa ") + o.isa + ": not supported on this CPU/OS (best: " +
                               m2fp::kern::isa_name(m2fp::kern::best_isa()) + ")");
    setenv("M2FP_ISA", o.isa.c_str(), 1);
    m2fp::kern::set_active_isa(isa);
  }
  m2fp::LoadOptions lo;
  if (!m2fp::dnn::parse_precision(o.precision, &lo.precision))
    throw UsageError("--precision must be fp32 or bf16, got '" + o.precision + "'");

  const std::vector<uint8_t> bytes = read_bytes(o.image);
  const double rss_start = proc_status_mb("VmRSS");

  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto model = m2fp::M2FP::load(o.model, lo);
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const double hwm_after_load = proc_status_mb("VmHWM"), anon_after_load = proc_status_mb("RssAnon"),
               file_after_load = proc_status_mb("RssFile");
  const m2fp::ModelConfig& cfg = model->config();

  m2fp::ParseOptions po;
  po.short_edge = o.short_edge;
  po.max_size = o.max_size;

  // ---- warm-up (the first call is the cold one), then the timed runs
  const double load_avg_start = load_average();
  std::vector<StageTimings> warm, runs;
  m2fp::PostprocessGeometry geo;
  int img_w = 0, img_h = 0;
  size_t n_instances = 0, n_persons = 0;
  for (int i = 0; i < o.warmup + o.runs; ++i) {
    m2fp::ParseResult r = m2fp::parse_image_bytes(*model, bytes.data(), bytes.size(), po);
    benchmark::DoNotOptimize(r.parsing.labels.data());
    (i < o.warmup ? warm : runs).push_back(r.timings);
    geo = r.geometry;
    img_w = r.image.width;
    img_h = r.image.height;
    n_instances = r.parsing.instances.size();
    n_persons = r.parsing.persons.size();
    if (!o.quiet) {
      std::fprintf(stderr, "bench_e2e: %s %d/%d: %.1f ms\n", i < o.warmup ? "warm-up" : "run",
                   i < o.warmup ? i + 1 : i - o.warmup + 1, i < o.warmup ? o.warmup : o.runs, r.timings.total_ms);
    }
  }
  const double load_avg_end = load_average();
  const double peak_rss = ru_maxrss_mb(), hwm = proc_status_mb("VmHWM"), rss_now = proc_status_mb("VmRSS"),
               anon_now = proc_status_mb("RssAnon"), file_now = proc_status_mb("RssFile");

  // ---- GFLOP per stage for this input size
  std::map<std::string, double> gflop;
  double gflop_total = 0;
  for (const m2fp::LayerCost& c : m2fp::layer_costs(cfg, geo.Hp, geo.Wp)) {
    gflop[c.stage] += 2 * c.macs / 1e9;
    gflop_total += 2 * c.macs / 1e9;
  }
  gflop["network"] = gflop_total;
  gflop["total_excl_decode"] = gflop_total;
  gflop["total"] = gflop_total;

  // ---- per-stage statistics
  std::map<std::string, std::vector<double>> per_stage;
  for (const StageTimings& t : runs)
    for (auto& [k, v] : stage_values(t)) per_stage[k].push_back(v);
  std::map<std::string, Stats> st;
  for (const char* s : kStages) st[s] = stats_of(per_stage[s]);

  const std::string cpu = cpu_model(), commit = source_commit();
  const int threads = omp_get_max_threads();
  const char* kisa = m2fp::kern::isa_name(m2fp::kern::active_isa());
  const char* disa = dnnl_isa_name(dnnl::get_effective_cpu_isa());
  const char* prec = m2fp::dnn::precision_name(model->precision());
  const bool has_bf16 = cpu_has_flag("avx512_bf16");
  const bool reference_size = geo.Hp == 640 && geo.Wp == 1056;

  // ---- report
  std::printf("m2fp.cpp end-to-end benchmark (commit %s, %s UTC)\n", commit.c_str(), utc_now().c_str());
  std::printf("cpu:        %s, %ld online CPUs; caches %s\n", cpu.c_str(), sysconf(_SC_NPROCESSORS_ONLN),
              cache_summary().c_str());
  std::printf("threads:    %d (OpenMP, shared by oneDNN and the kernels)\n", threads);
  std::printf("env:        %s\n", env_summary().c_str());
  std::printf("isa:        kernels %s, oneDNN %s %s\n", kisa, onednn_version().c_str(), disa);
  std::printf("precision:  %s%s\n", prec,
              model->precision() == m2fp::dnn::Precision::BF16 && !has_bf16
                  ? " (this CPU has no AVX512-BF16: oneDNN runs bf16 without native support)"
                  : "");
  std::printf("model:      %s (%s)%s, loaded in %.0f ms\n", o.model.c_str(), cfg.summary().c_str(),
              cfg.synthetic ? " [synthetic weights]" : "", load_ms);
  std::printf("image:      %s %dx%d (w x h) -> input %lldx%lld, padded %lldx%lld (h x w); %zu instances, %zu persons\n",
              o.image.c_str(), img_w, img_h, (long long)geo.nh, (long long)geo.nw, (long long)geo.Hp,
              (long long)geo.Wp, n_instances, n_persons);
  std::printf("runs:       %d after %d warm-up; load average %.2f -> %.2f", o.runs, o.warmup, load_avg_start,
              load_avg_end);
  if (!warm.empty()) std::printf("; first (cold) run %.1f ms", warm.front().total_ms);
  std::printf("\n\n");

  std::printf("%-20s %10s %10s %18s %8s %9s", "stage", "median ms", "min ms", "mean +- std ms", "GFLOP", "GFLOP/s");
  if (o.peak_gflops > 0) std::printf(" %7s", "% peak");
  std::printf(" %11s\n", "target ms");
  for (const char* s : kStages) {
    const Stats& x = st[s];
    std::printf("%-20s %10.1f %10.1f %10.1f +- %5.1f", s, x.median, x.min, x.mean, x.std);
    auto g = gflop.find(s);
    if (g != gflop.end() && x.median > 0) {
      const double rate = g->second / (x.median / 1e3);
      std::printf(" %8.1f %9.1f", g->second, rate);
      if (o.peak_gflops > 0) std::printf(" %6.1f%%", 100 * rate / o.peak_gflops);
    } else {
      std::printf(" %8s %9s", "", "");
      if (o.peak_gflops > 0) std::printf(" %7s", "");
    }
    const double tgt = target_ms(s, model->precision());
    if (tgt > 0) std::printf(" %6.0f %4s", tgt, x.median <= tgt ? "ok" : "MISS");
    std::printf("\n");
  }
  std::printf("\npeak RSS:   %.0f MB (getrusage ru_maxrss, whole process incl. model load)  target <= %.0f MB %s\n",
              peak_rss, kTargetPeakRssMb, peak_rss <= kTargetPeakRssMb ? "ok" : "MISS");
  std::printf("memory:     at start %.0f MB; after model load VmHWM %.0f MB (anonymous %.0f + file-backed %.0f now);"
              " after the runs VmRSS %.0f MB (anonymous %.0f + file-backed %.0f)\n",
              rss_start, hwm_after_load, anon_after_load, file_after_load, rss_now, anon_now, file_now);
  if (!reference_size)
    std::printf("note:       the targets are for the issue-4 photo (548x342 -> padded 640x1056); this input is %lldx%lld\n",
                (long long)geo.Hp, (long long)geo.Wp);
  if (cfg.synthetic)
    std::printf("note:       synthetic weights: the timings hold for the real checkpoint (same shapes), the parsing does not\n");
  std::printf("note:       pre_post = decode + preprocess + postprocess; network = backbone + pixel_decoder + "
              "transformer_decoder; total_excl_decode = total - decode\n");
  std::fflush(stdout);

  // ---- JSON
  if (!o.json.empty()) {
    nlohmann::json j;
    j["engine"] = "m2fp.cpp";
    j["commit"] = commit;
    j["date_utc"] = utc_now();
    j["cpu"] = cpu;
    j["online_cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
    j["threads"] = threads;
    j["isa"] = kisa;
    j["onednn"] = {{"version", onednn_version()}, {"isa", disa}};
    j["precision"] = prec;
    j["cpu_has_avx512_bf16"] = has_bf16;
    j["model"] = {{"path", o.model}, {"summary", cfg.summary()}, {"synthetic", cfg.synthetic}, {"load_ms", load_ms}};
    j["image"] = o.image;
    j["height"] = img_h;
    j["width"] = img_w;
    j["input_size"] = {geo.nh, geo.nw};
    j["padded_size"] = {geo.Hp, geo.Wp};
    j["short_edge"] = o.short_edge;
    j["max_size"] = o.max_size;
    j["runs"] = o.runs;
    j["warmup"] = o.warmup;
    j["load_average"] = {load_avg_start, load_avg_end};
    j["instances"] = n_instances;
    j["persons"] = n_persons;
    nlohmann::json stages = nlohmann::json::object();
    for (const char* s : kStages) {
      const Stats& x = st[s];
      nlohmann::json e = {{"median_ms", x.median}, {"min_ms", x.min}, {"mean_ms", x.mean}, {"std_ms", x.std}};
      auto g = gflop.find(s);
      if (g != gflop.end()) {
        e["gflop"] = g->second;
        e["gflops"] = x.median > 0 ? g->second / (x.median / 1e3) : 0.0;
      }
      const double tgt = target_ms(s, model->precision());
      if (tgt > 0) e["target_ms"] = tgt;
      stages[s] = e;
    }
    j["stages"] = stages;
    auto runs_json = [](const std::vector<StageTimings>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (const StageTimings& t : v) a.push_back(stage_values(t));
      return a;
    };
    j["per_run_ms"] = runs_json(runs);
    j["warmup_ms"] = runs_json(warm);
    j["memory_mb"] = {{"peak_rss", peak_rss},
                      {"vm_hwm", hwm},
                      {"rss_start", rss_start},
                      {"hwm_after_load", hwm_after_load},
                      {"rss_anon_after_load", anon_after_load},
                      {"rss_file_after_load", file_after_load},
                      {"rss_end", rss_now},
                      {"rss_anon_end", anon_now},
                      {"rss_file_end", file_now},
                      {"target_peak_rss", kTargetPeakRssMb}};
    j["environment"] = env_json();
    if (o.peak_gflops > 0) j["peak_gflops"] = o.peak_gflops;
    m2fp::write_file_atomic(o.json, j.dump(1) + "\n");
    if (!o.quiet) std::fprintf(stderr, "bench_e2e: wrote %s\n", o.json.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "bench_e2e: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_e2e: error: %s\n", e.what());
    return 1;
  }
}
