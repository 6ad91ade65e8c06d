// app/cmd_parse.cpp: `m2fp parse`: photos in, parsings out (SPEC section 8).
//
// For each IMAGE: DIR/<stem>/result.json, labels.png (class index per pixel), parsing.png (the
// labels over the photo with a legend), labels_color.png (the label map in palette colours) and,
// with --dump-tensors, tensors/<name>.npy for every named intermediate (docs/INTERMEDIATES.md).
// The model is loaded once; a photo that fails is reported and the others are still parsed; the
// exit status is 1 if any failed.
//
// result.json also holds the outfit analysis (outfit/): each entry of "persons" gets its "garments"
// (category, slot, dominant colours with names), and "outfits" lists per person the garments and the
// catalogue's recommendations with their reasons. The catalogue: --catalog FILE.db (created from the
// seed on first use); else the default one (service::default_catalog_path()) when it exists; else the
// seed catalogue in memory (no file is written). --no-outfits leaves all of this out.
//
// Each photo prints one line: size, persons, parts, labels, the kernel ISA, milliseconds, its folder.
//
// Faults (tests/cli/test_cli.py):
//   - every file is written to a temporary name and renamed (engine/io.h), result.json last, so a
//     folder with result.json holds a complete set. Before an image is parsed, the outputs a previous
//     run left in its folder are removed; if the image fails, what this run wrote for it is removed:
//     a failed image leaves nothing behind;
//   - an output that cannot be written (folder not writable, disk full) stops the run: the other
//     images would fail the same way after their forward pass. Exit status 1, the images not parsed
//     are named;
//   - SIGTERM, SIGINT or SIGHUP: the image being parsed is finished (outputs complete), the rest
//     are skipped and named, exit status 128 + signal. A second signal ends the process at once (the
//     default action): only temporary "*.tmp" files can be left then, never a truncated output.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "app/args.h"
#include "app/commands.h"
#include "engine/io.h"
#include "kernels/kernels.h"
#include "outfit/outfit.h"
#include "service/masks.h"
#include "service/outfits.h"
#include "service/refine.h"
#include "service/render.h"
#include "service/report.h"
#include "service/result_doc.h"
#include "service/session.h"

namespace fs = std::filesystem;

namespace m2fp::app {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// SIGTERM / SIGINT / SIGHUP handlers for the duration of a parse run: the first signal asks the loop
// to stop after the current image (SA_RESETHAND: a second one gets the default action).
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    for (int i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~StopSignals() {
    for (int i = 0; i < 3; ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static int pending() { return g_stop_signal; }

 private:
  static constexpr int kSignals[3] = {SIGTERM, SIGINT, SIGHUP};
  struct sigaction old_[3];
};

// The files of one image's folder: removed before it is parsed (a previous run's) and, if it
// fails, what this run wrote. Only names m2fp writes are touched.
struct ImageOutputs {
  std::string dir;
  bool dir_created = false;
  std::vector<std::string> written;

  // result.json first: from then on the folder no longer claims to be complete.
  void remove_previous() const {
    std::error_code ec;
    for (const char* f : {"result.json", "labels.png", "labels_color.png", "parsing.png", "persons.png"})
      fs::remove(dir + "/" + f, ec);
    const std::string m = dir + "/masks";
    if (fs::is_directory(m, ec)) {
      for (const auto& e : fs::directory_iterator(m, ec))
        if (e.path().extension() == ".png") fs::remove(e.path(), ec);
      fs::remove(m, ec);  // only if empty
    }
    const std::string t = dir + "/tensors";
    if (fs::is_directory(t, ec)) {
      for (const auto& e : fs::directory_iterator(t, ec))
        if (e.path().extension() == ".npy") fs::remove(e.path(), ec);
      fs::remove(t, ec);  // only if empty
    }
  }
  void remove_written() const {
    std::error_code ec;
    for (auto it = written.rbegin(); it != written.rend(); ++it) fs::remove(*it, ec);
    fs::remove(dir + "/tensors", ec);  // only if empty
    if (dir_created) fs::remove(dir, ec);
  }
};

// Writes every named intermediate as DIR/<name>.npy, feature maps as [C, H, W].
TensorSink npy_sink(const std::string& dir, std::vector<std::string>* written) {
  return [dir, written](const std::string& name, const Tensor& t) {
    const std::string path = dir + "/" + name + ".npy";
    written->push_back(path);
    if (t.layout == Layout::HWC && t.shape.size() == 3) {
      const int64_t H = t.shape[0], W = t.shape[1], C = t.shape[2];
      std::vector<float> chw((size_t)t.numel());
      for (int64_t p = 0; p < H * W; ++p)
        for (int64_t c = 0; c < C; ++c) chw[c * H * W + p] = t.data()[p * C + c];
      write_npy(path, chw.data(), {C, H, W});
    } else {
      write_npy(path, t.data(), t.shape);
    }
  };
}

// The outfit tables, the catalogue and the recommendation options for `m2fp parse` (see the file
// comment; service::load_outfit_setup chooses the catalogue).
service::OutfitSetup load_outfits(const Args& a) {
  RecommendOptions reco;
  reco.k = a.get_int("k", 5, 0, 50);
  reco.style = a.get("style");
  reco.occasion = a.get("occasion");
  reco.season = a.get("season");
  try {
    return service::load_outfit_setup(a.has("catalog") ? a.get("catalog") : std::string(), reco);
  } catch (const std::invalid_argument& e) {  // style / occasion / season
    throw UsageError(e.what());
  }
}

std::string unique_dir(const std::string& out, const std::string& stem, std::set<std::string>& used) {
  std::string name = stem.empty() ? "image" : stem;
  for (int k = 2; used.count(name); ++k) name = stem + "-" + std::to_string(k);
  used.insert(name);
  return out + "/" + name;
}

}  // namespace

int cmd_parse(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"model", "out", "short-edge", "max-size", "threads", "precision", "max-pixels", "catalog", "k", "style",
          "occasion", "season", "refine", "label-set", "masks", "mask-dilate"},
         {"dump-tensors", "verbose", "smooth-edges", "no-outfits", "help"});
  if (a.has("help")) return usage(false);
  const std::string model_path = a.require("model"), out_dir = a.require("out");
  const bool dump = a.has("dump-tensors"), verbose = a.has("verbose");
  if (verbose) dnn::set_verbose(true);  // each convolution's algorithm (Winograd or direct) as it is created
  const service::LabelSet label_set = a.get_parsed("label-set", "cihp", service::parse_label_set);
  const int mask_dilate = a.get_int("mask-dilate", 0, 0, 256);
  std::vector<std::string> union_names;
  try {
    union_names = service::parse_union_names(a.get("masks"), service::cihp_classes());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--masks: ") + e.what());
  }
  service::SessionOptions so;
  so.model_path = model_path;
  so.parse.short_edge = a.get_int("short-edge", 640, 32, 4096);
  so.parse.max_size = a.get_int("max-size", 1333, 32, 8192);
  so.parse.decode.max_pixels = (int64_t)a.get_int("max-pixels", 50, 1, 1000) * 1000000;
  so.parse.emit_semantic = dump;
  so.precision = a.get_parsed("precision", "fp32", service::parse_precision);
  service::set_threads(a.get_int("threads", 0, 0, 1024));
  // --refine dark,small: the service's refinements (service/refine.h), off by default
  const service::RefineRequest refine = a.get_parsed("refine", "", service::parse_refine);
  so.parse.keep_scores = refine.any();
  if (a.positional().empty()) throw UsageError("no IMAGE given");
  std::error_code ec;

  service::OutfitSetup outfits;
  if (!a.has("no-outfits")) outfits = load_outfits(a);
  RefineTable refine_table = RefineTable::defaults();
  if (refine.any()) {
    if (outfits.kit) {
      refine_table = outfits.kit->refine;
    } else if (fs::exists(outfit_data_dir() + "/refine.json", ec)) {
      refine_table = RefineTable::load(outfit_data_dir() + "/refine.json");
    }
  }

  fs::create_directories(out_dir, ec);
  if (ec) throw IoError(out_dir + ": cannot create the output folder: " + ec.message());
  if (!fs::is_directory(out_dir, ec)) throw IoError(out_dir + ": not a folder (--out)");
  if (::access(out_dir.c_str(), W_OK | X_OK) != 0)
    throw IoError(out_dir + ": the output folder is not writable: " + std::strerror(errno));
  StopSignals stop_signals;  // from here on, SIGTERM finishes the current image first

  std::unique_ptr<service::Session> session;
  try {
    session = std::make_unique<service::Session>(so);
  } catch (const service::PrecisionUnavailable& e) {
    throw UsageError(std::string("--precision bf16: ") + e.what());
  }
  if (session->synthetic()) std::fprintf(stderr, "m2fp: WARNING: %s\n", service::kSyntheticWarning);
  const char* isa = kern::isa_name(kern::active_isa());
  if (verbose)
    std::fprintf(stderr, "m2fp: model %s (%s), loaded in %.0f ms; isa %s, precision %s, threads %d\n",
                 model_path.c_str(), session->summary().c_str(), session->load_ms(), isa,
                 dnn::precision_name(session->precision()), service::threads());

  int failed = 0;
  size_t done = 0;  // images handled (parsed or failed)
  std::string stop_reason;
  std::set<std::string> used;
  const std::vector<std::string>& images = a.positional();
  for (; done < images.size(); ++done) {
    if (const int sig = StopSignals::pending()) {
      stop_reason = std::string("interrupted by ") + (sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP");
      break;
    }
    const std::string& path = images[done];
    ImageOutputs outs;
    outs.dir = unique_dir(out_dir, fs::path(path).stem().string(), used);
    const std::string& dir = outs.dir;
    try {
      std::vector<uint8_t> bytes = service::read_photo_file(path);
      outs.dir_created = !fs::exists(dir, ec);
      fs::create_directories(dir, ec);
      if (ec) throw IoError(dir + ": cannot create folder: " + ec.message());
      outs.remove_previous();
      TensorSink sink;
      if (dump) {
        fs::create_directories(dir + "/tensors", ec);
        if (ec) throw IoError(dir + "/tensors: cannot create folder: " + ec.message());
        sink = npy_sink(dir + "/tensors", &outs.written);
      }
      ParseResult r = session->parse(bytes.data(), bytes.size(), dump ? &sink : nullptr);
      nlohmann::json refinements;
      if (refine.any()) {  // before every output: labels, pictures, garments and advice see the refined map
        refinements = service::refinements_json(refine, service::refine_parsing(r.parsing, r.image, refine, refine_table));
        r.parsing.scores = std::vector<uint8_t>();
      }
      const Parsing& p = r.parsing;

      outs.written.push_back(dir + "/labels.png");
      const std::vector<uint8_t> labels_png = service::labels_png(p, label_set);
      write_file_atomic(dir + "/labels.png", labels_png.data(), labels_png.size());
      if (!p.single_human) {
        outs.written.push_back(dir + "/persons.png");
        const std::vector<uint8_t> persons_png = service::persons_png(p);
        write_file_atomic(dir + "/persons.png", persons_png.data(), persons_png.size());
      }
      std::vector<std::string> mask_files;
      if (!union_names.empty()) {
        fs::create_directories(dir + "/masks", ec);
        if (ec) throw IoError(dir + "/masks: cannot create folder: " + ec.message());
        for (const std::string& n : union_names) {
          const std::vector<uint8_t> m = service::union_mask(p, n, mask_dilate);
          const std::string f = "masks/" + n + ".png";
          outs.written.push_back(dir + "/" + f);
          write_png_gray8(dir + "/" + f, m.data(), p.width, p.height);
          mask_files.push_back(f);
        }
      }
      outs.written.push_back(dir + "/labels_color.png");
      write_png_rgb(dir + "/labels_color.png", service::colorize_labels(p.labels, p.width, p.height));
      service::RenderOptions ro;
      ro.smooth_edges = a.has("smooth-edges");
      ro.person_boxes = !p.persons.empty();
      outs.written.push_back(dir + "/parsing.png");
      write_png_rgb(dir + "/parsing.png", service::render_parsing(r.image, p, ro));

      std::vector<std::string> outputs = {"labels.png", "labels_color.png", "parsing.png"};
      if (!p.single_human) outputs.push_back("persons.png");
      outputs.insert(outputs.end(), mask_files.begin(), mask_files.end());
      nlohmann::json j = service::result_document(*session, r, path, outputs, outfits.kit ? &outfits : nullptr);
      if (refine.any()) j["refinements"] = refinements;
      j["label_set"] = {{"name", service::label_set_name(label_set)},
                        {"classes", service::label_set_classes(label_set, p.class_names)}};
      if (label_set != service::LabelSet::Cihp)
        for (auto& e : j["instances"]) {
          const int id = e["kind"] == "human" ? -1 : service::map_label(label_set, e["category_id"].get<int>());
          e["set_category_id"] = id;
          e["set_label"] = id > 0 ? nlohmann::json(service::label_set_classes(label_set, p.class_names)[(size_t)id])
                                  : nlohmann::json(nullptr);
        }
      if (!mask_files.empty()) j["masks"] = {{"names", union_names}, {"dilate", mask_dilate}, {"files", mask_files}};
      outs.written.push_back(dir + "/result.json");
      write_file_atomic(dir + "/result.json", j.dump(2) + "\n");

      int parts = 0;
      for (const Instance& in : p.instances) parts += in.kind == Instance::Kind::Part;
      std::printf("%s: %dx%d, %d persons, %d parts, %zu labels, isa %s, %.0f ms -> %s\n", path.c_str(), p.width,
                  p.height, (int)p.persons.size(), parts, j["labels_present"].size(), isa, r.timings.total_ms,
                  dir.c_str());
      std::fflush(stdout);
    } catch (const IoError& e) {  // the output side: the next images would fail the same way
      ++failed;
      outs.remove_written();
      std::fprintf(stderr, "m2fp: %s: %s (nothing written for it)\n", path.c_str(), e.what());
      stop_reason = "stopped: the outputs cannot be written";
      ++done;
      break;
    } catch (const std::exception& e) {
      ++failed;
      outs.remove_written();
      std::fprintf(stderr, "m2fp: %s: %s\n", path.c_str(), e.what());
    }
  }
  if (done < images.size()) {
    std::string rest;
    for (size_t i = done; i < images.size(); ++i) rest += (i > done ? ", " : "") + images[i];
    std::fprintf(stderr, "m2fp: %s after %zu of %zu images; not parsed: %s\n", stop_reason.c_str(), done,
                 images.size(), rest.c_str());
  }
  if (failed) std::fprintf(stderr, "m2fp: %d of %zu images failed\n", failed, images.size());
  if (done < images.size() && StopSignals::pending()) return 128 + StopSignals::pending();
  return failed || done < images.size() ? 1 : 0;
}

}  // namespace m2fp::app
