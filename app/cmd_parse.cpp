// app/cmd_parse.cpp: `m2fp parse`: photos in, parsings out (SPEC section 8).
//
// IMAGE arguments are files or folders. A folder stands for the photos in it (service/photo_folder.h:
// sorted, sub-folders with --recursive; what is skipped is noted on stderr, not counted as a failure);
// a photo found in DIR as DIR/a/b.jpg writes to OUT/a/b/, a file named directly to OUT/<stem>/. A
// folder without any photo is an error (exit status 1) after the other arguments are parsed.
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
#include <exception>
#include <filesystem>
#include <optional>
#include <set>

#include "app/args.h"
#include "app/commands.h"
#include "engine/io.h"
#include "kernels/kernels.h"
#include "outfit/outfit.h"
#include "service/masks.h"
#include "service/outfits.h"
#include "service/photo_folder.h"
#include "service/pictures.h"
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
  std::vector<std::string> created;  // folders this run created for it, the deepest first
  std::vector<std::string> written;

  // Creates dir and the parents it lacks (a photo found as DIR/a/b.jpg writes to OUT/a/b), noting
  // which were new so that a failure removes them again.
  void create(const std::string& out_dir) {
    std::error_code ec;
    for (fs::path p = dir; !p.empty() && p != fs::path(out_dir) && !fs::exists(p, ec); p = p.parent_path())
      created.push_back(p.string());
    fs::create_directories(dir, ec);
    if (ec) throw IoError(dir + ": cannot create folder: " + ec.message());
  }

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
    fs::remove(dir + "/masks", ec);    // only if empty
    for (const std::string& d : created) fs::remove(d, ec);  // only if empty
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
  const std::string base = stem.empty() ? "image" : stem;
  std::string name = base;
  for (int k = 2; used.count(name); ++k) name = base + "-" + std::to_string(k);
  used.insert(name);
  return out + "/" + name;
}

const char* plural(size_t n, const char* one, const char* many) { return n == 1 ? one : many; }

// A photo to parse: its path and its output folder's name under --out ("walk", or "a/b" for a
// photo found in a folder as a/b.jpg).
struct Photo {
  std::string path, name;
};

// `m2fp parse --help`. The defaults are those the getters below use (Args checks them).
const CommandSpec& parse_spec() {
  static const CommandSpec spec = {
      "m2fp parse --model FILE --out DIR [options] IMAGE|FOLDER...",
      "Parses photos (JPEG, PNG, BMP) and writes, per photo, OUT/<name>/result.json (instances, persons with their\n"
      "garments and colours, outfit suggestions), labels.png (palette, class id per pixel), persons.png,\n"
      "parsing.png, labels_color.png and the requested masks (docs/OUTPUTS.md, docs/LABELS.md). A FOLDER\n"
      "stands for the photos in it, sorted by name (OUT/<relative path without extension>/); files that are\n"
      "not photos are skipped and named on stderr. The model is loaded once; a photo that fails is reported\n"
      "and the others are still parsed; the exit status is 1 if any failed, 2 for a usage error.",
      {
          {"model", "FILE", "", "the converted model (.safetensors); a PyTorch checkpoint (pytorch_model.pt) must be converted with tools/convert_weights.py first; required"},
          {"out", "DIR", "", "the output folder, created if needed; one sub-folder per photo; required"},
          {"recursive", "", "", "parse the photos in the sub-folders of a FOLDER too (OUT/<sub-folder>/<name>/)"},
          {"short-edge", "PX", "640", "multi-person models: the photo is resized so its short edge has this many pixels, 32..4096"},
          {"max-size", "PX", "1333", "multi-person models: ... unless its long edge would exceed this many pixels, 32..8192"},
          {"max-pixels", "MPX", "50", "the largest photo in megapixels (millions of pixels), 1..1000, checked on the header before decoding"},
          {"threads", "N", "0", "OpenMP threads, 0..1024; 0: OMP_NUM_THREADS, else every core"},
          {"precision", "fp32|bf16", "fp32", "the convolutions' arithmetic; bf16 needs AVX512-BF16 (see m2fp --version)"},
          {"refine", "LIST", "", "comma-separated refinements on top of the model's answer: dark (dark clothes taken for background), small (small items missed) (docs/OUTPUTS.md)"},
          {"label-set", "cihp|lip|atr", "cihp", "the class ids of labels.png and result.json's set_category_id (docs/LABELS.md)"},
          {"masks", "NAME[,NAME...]", "", "also write masks/<NAME>.png (0/255), the union of a group of classes: upper_body, lower_body, dresses, agnostic, clothes, hair, face, skin, or label:Name+Name (docs/LABELS.md)"},
          {"mask-dilate", "PX", "0", "grow each mask by this many pixels, 0..256"},
          {"smooth-edges", "", "", "parsing.png only: a 3x3 majority filter on the label edges before colouring (removes isolated pixels and one-pixel spurs; labels.png stays exact)"},
          {"dump-tensors", "", "", "also write every named intermediate as tensors/<name>.npy (docs/INTERMEDIATES.md)"},
          {"catalog", "FILE.db", "", "the SQLite catalogue suggestions come from (created from the seed catalogue on first use); without it $M2FP_CATALOG or data/catalog.db when it exists, else the seed catalogue in memory"},
          {"k", "N", "5", "suggestions per person, 0..50"},
          {"style", "NAME", "", "suggest for this style: casual, business, street, sport, formal (outfit/data/rules.json)"},
          {"occasion", "NAME", "", "suggest for this occasion: office, interview, wedding, party, date, weekend, travel, gym"},
          {"season", "NAME", "", "suggest only items made for this season: spring, summer, autumn, winter"},
          {"no-outfits", "", "", "leave the garments and suggestions out of result.json"},
          {"no-prepare", "", "", "do not prepare the network for the photos' sizes right after the model load (by default the distinct sizes of the first 8 photos, read from their headers, are prepared in parallel on the threads: the first parse then creates no oneDNN primitive; and the buffer pool's blocks for the first photo's size are faulted in, so its parse does not fault its activations in)"},
          {"verbose", "", "", "print the model, ISA, precision and threads before parsing"},
      },
      "Each photo prints one line: size, persons, parts, labels, the kernel ISA, milliseconds, its folder.\n"
      "environment: M2FP_ISA=scalar|avx2|avx512 forces a kernel path; OMP_NUM_THREADS as --threads;\n"
      "M2FP_CATALOG the catalogue without --catalog; M2FP_OUTFIT_DATA the outfit tables."};
  return spec;
}

// The network prepared (M2FP::prepare: oneDNN's primitives and weight layouts, the layers in
// parallel over the threads) for the distinct input sizes of the first photos, read from their
// headers: the first parse of each size would otherwise create them one by one; and the buffer
// pool's blocks for the first photo's size mapped (M2FP::map_buffers). A photo whose
// header cannot be read (or whose size no parse accepts) is left to its parse to report.
void prepare_for_photos(const service::Session& session, const std::vector<Photo>& images, bool verbose) {
  constexpr size_t kMaxPhotos = 8;
  const auto t0 = std::chrono::steady_clock::now();
  std::set<std::pair<int64_t, int64_t>> done;
  int first_w = 0, first_h = 0;  // the first photo prepared
  for (size_t i = 0; i < images.size() && i < kMaxPhotos; ++i) {
    int w = 0, h = 0;
    if (!service::photo_file_size(images[i].path, &w, &h)) continue;
    try {
      const std::pair<int64_t, int64_t> size = session.input_size(w, h);
      if (done.count(size)) continue;
      session.prepare(w, h);
      done.insert(size);
      if (done.size() == 1) {
        first_w = w;
        first_h = h;
      }
    } catch (const std::exception&) {
      // the parse says what is wrong with this photo
    }
  }
  // And the buffer pool's blocks for the first photo's size, faulted in now rather than by its parse
  // (M2FP::map_buffers; once: the pool keeps them for the photos after it).
  if (!done.empty()) session.map_buffers(first_w, first_h);
  if (verbose && !done.empty())
    std::fprintf(stderr, "m2fp: prepared %zu input %s in %.0f ms\n", done.size(), plural(done.size(), "size", "sizes"),
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

int cmd_parse(int argc, char** argv) {
  Args a(argc, argv, 2, parse_spec());
  if (a.has("help")) return print_help(parse_spec());
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

  // The photos: files as given, folders expanded (before the model is loaded: a folder that cannot
  // be listed costs no load). Skipped files are noted now; a folder without photos fails at the end.
  std::vector<Photo> images;
  std::vector<std::string> empty_folders;
  size_t skipped = 0;
  for (const std::string& arg : a.positional()) {
    if (!fs::is_directory(arg, ec)) {
      images.push_back({arg, fs::path(arg).stem().string()});
      continue;
    }
    const service::PhotoFolder folder = service::list_photo_folder(arg, a.has("recursive"), out_dir);
    for (const service::SkippedFile& f : folder.skipped)
      std::fprintf(stderr, "m2fp: skipped %s: %s\n", f.path.c_str(), f.reason.c_str());
    skipped += folder.skipped.size();
    if (folder.photos.empty()) empty_folders.push_back(arg);
    for (const service::FolderPhoto& p : folder.photos)
      images.push_back({p.path, (fs::path(p.rel).parent_path() / fs::path(p.rel).stem()).string()});
  }
  if (images.empty()) {
    std::string which;
    for (const std::string& d : empty_folders) which += (which.empty() ? "" : ", ") + d;
    throw std::runtime_error("no photos to parse: none in " + which);
  }

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
  if (!a.has("no-prepare")) prepare_for_photos(*session, images, verbose);

  int failed = 0;
  size_t done = 0;  // images handled (parsed or failed)
  std::string stop_reason;
  std::set<std::string> used;
  for (; done < images.size(); ++done) {
    if (const int sig = StopSignals::pending()) {
      stop_reason = std::string("interrupted by ") + (sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP");
      break;
    }
    const std::string& path = images[done].path;
    ImageOutputs outs;
    outs.dir = unique_dir(out_dir, images[done].name, used);
    const std::string& dir = outs.dir;
    try {
      std::vector<uint8_t> bytes = service::read_photo_file(path);
      outs.create(out_dir);
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

      // The pictures and result.json's costly parts (the outfit analysis, each mask's RLE) are made
      // side by side on the threads, each on one (service::result_document with the picture tasks
      // beside): they share nothing but the parsing, which all only read. timings_ms.write: from their
      // start to the last picture written (result.json itself, written last, cannot hold its own time).
      // The pictures in the label set's ids and names, as labels.png (CIHP: the parsing itself; a
      // copy would double the memory of a large photo's masks).
      std::optional<Parsing> remapped;
      if (label_set != service::LabelSet::Cihp) remapped = service::in_label_set(p, label_set);
      std::vector<std::string> mask_files;
      if (!union_names.empty()) {
        fs::create_directories(dir + "/masks", ec);
        if (ec) throw IoError(dir + "/masks: cannot create folder: " + ec.message());
        for (const std::string& n : union_names) mask_files.push_back("masks/" + n + ".png");
      }
      service::PictureSet pictures;
      pictures.dir = dir;
      pictures.label_set = label_set;
      pictures.in_set = remapped ? &*remapped : nullptr;
      pictures.union_names = union_names;
      pictures.mask_dilate = mask_dilate;
      pictures.render.smooth_edges = a.has("smooth-edges");
      pictures.render.person_boxes = !p.persons.empty();
      const std::vector<std::string> picture_files = service::picture_files(r, pictures);
      outs.written.insert(outs.written.end(), picture_files.begin(), picture_files.end());
      std::vector<std::string> outputs = {"labels.png", "labels_color.png", "parsing.png"};
      if (!p.single_human) outputs.push_back("persons.png");
      outputs.insert(outputs.end(), mask_files.begin(), mask_files.end());
      double write_ms = 0;
      nlohmann::json j = service::result_document(*session, r, path, outputs, outfits.kit ? &outfits : nullptr,
                                                  service::picture_tasks(r, pictures), &write_ms);
      j["timings_ms"]["write"] = write_ms;
      if (refine.any()) j["refinements"] = refinements;
      j["label_set"] = {{"name", service::label_set_name(label_set)},
                        {"classes", service::label_set_classes(label_set, p.class_names)}};
      service::add_label_set_keys(j, p, label_set);
      if (!mask_files.empty()) j["masks"] = {{"names", union_names}, {"dilate", mask_dilate}, {"files", mask_files}};
      outs.written.push_back(dir + "/result.json");
      service::write_json_file(dir + "/result.json", j);

      int parts = 0;
      for (const Instance& in : p.instances) parts += in.kind == Instance::Kind::Part;
      const size_t labels = j["labels_present"].size();
      std::printf("%s: %dx%d, %zu %s, %d %s, %zu %s, isa %s, %.0f ms -> %s\n", path.c_str(), p.width, p.height,
                  p.persons.size(), plural(p.persons.size(), "person", "persons"), parts,
                  plural((size_t)parts, "part", "parts"), labels, plural(labels, "label", "labels"), isa,
                  r.timings.total_ms, dir.c_str());
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
    for (size_t i = done; i < images.size(); ++i) rest += (i > done ? ", " : "") + images[i].path;
    std::fprintf(stderr, "m2fp: %s after %zu of %zu %s; not parsed: %s\n", stop_reason.c_str(), done,
                 images.size(), plural(images.size(), "image", "images"), rest.c_str());
  }
  if (failed)
    std::fprintf(stderr, "m2fp: %d of %zu %s failed\n", failed, images.size(), plural(images.size(), "image", "images"));
  if (skipped)
    std::fprintf(stderr, "m2fp: %zu %s of the folders skipped, not photos (named above)\n", skipped,
                 plural(skipped, "entry", "entries"));
  for (const std::string& d : empty_folders) std::fprintf(stderr, "m2fp: %s: no photos in this folder\n", d.c_str());
  if (done < images.size() && StopSignals::pending()) return 128 + StopSignals::pending();
  return failed || done < images.size() || !empty_folders.empty() ? 1 : 0;
}

}  // namespace m2fp::app
