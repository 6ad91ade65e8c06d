// bench/outputs/bench_outputs.cpp: the output stage of `m2fp parse` alone, step by step (issue 14).
//
//   bench_outputs --model M.safetensors --image PHOTO [--runs 5] [--threads N] [--out DIR]
//
// Parses PHOTO once, then --runs times writes what `m2fp parse` writes by default (as bench_e2e's
// --big-photo `outputs` stage: the pictures, the outfit analysis and each mask's RLE side by side on
// the threads (service/side_by_side.h), then result.json), and --runs times each step alone: labels.png, persons.png,
// labels_color.png (colouring and encoding), parsing.png (the overlay and encoding), the masks' RLE
// (parsing_json), extract_outfits, the recommendations, result.json's text written. Prints per step the median wall milliseconds
// and the process's CPU milliseconds (user + system: other threads of the process count, the load of
// the machine does not), and the minor page faults per run. No forward pass is timed: the network
// runs once to have a parsing.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/io.h"
#include "service/masks.h"
#include "service/outfits.h"
#include "service/photo_folder.h"
#include "service/pictures.h"
#include "service/render.h"
#include "service/report.h"
#include "service/result_doc.h"
#include "service/session.h"

namespace {

struct Usage {
  double wall_ms, cpu_ms;
  long faults;
};
Usage now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  const double wall =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return {wall, cpu, ru.ru_minflt};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void usage_exit(const char* why) {
  std::fprintf(stderr, "bench_outputs: %s\nusage: bench_outputs --model M.safetensors --image PHOTO [--runs 5] [--threads N] [--out DIR]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, image, out;
  int runs = 5, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_exit(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--model") model = value();
    else if (a == "--image") image = value();
    else if (a == "--out") out = value();
    else if (a == "--runs") runs = std::atoi(value().c_str());
    else if (a == "--threads") threads = std::atoi(value().c_str());
    else usage_exit(("unknown argument " + a).c_str());
  }
  if (model.empty() || image.empty()) usage_exit("--model and --image are required");
  if (runs < 1 || runs > 1000 || threads < 0) usage_exit("--runs must be in 1..1000, --threads >= 0");
  try {
    namespace svc = m2fp::service;
    svc::set_threads(threads);
    svc::SessionOptions so;
    so.model_path = model;
    svc::Session session(so);
    const std::vector<uint8_t> bytes = svc::read_photo_file(image);
    const m2fp::ParseResult r = session.parse(bytes.data(), bytes.size());
    const m2fp::Parsing& p = r.parsing;
    const svc::OutfitSetup outfits = svc::load_outfit_setup(std::string(), {});
    std::string dir = out;
    if (dir.empty()) {
      char tmpl[] = "/tmp/bench_outputs_XXXXXX";
      if (!mkdtemp(tmpl)) throw std::runtime_error("cannot create a temporary folder");
      dir = tmpl;
    }
    std::filesystem::create_directories(dir);
    std::printf("bench_outputs: %s %dx%d, %zu persons, %zu instances, threads %d, %d runs%s\n", image.c_str(), p.width,
                p.height, p.persons.size(), p.instances.size(), svc::threads(), runs,
                session.synthetic() ? " (SYNTHETIC weights: every mask covers much of the photo)" : "");

    svc::PictureSet pictures;
    pictures.dir = dir;
    pictures.render.person_boxes = !p.persons.empty();
    std::vector<std::string> names = {"labels.png", "labels_color.png", "parsing.png"};
    if (!p.single_human) names.push_back("persons.png");
    struct Step {
      const char* name;
      std::function<void()> run;
    };
    std::vector<m2fp::PersonOutfit> po;
    std::vector<m2fp::CatalogItem> items;
    const nlohmann::json doc = svc::result_document(session, r, "photo", names, &outfits);
    const std::vector<Step> steps = {
        {"outputs (as m2fp parse)",
         [&] {
           const nlohmann::json j =
               svc::result_document(session, r, "photo", names, &outfits, svc::picture_tasks(r, pictures), nullptr);
           svc::write_json_file(dir + "/result.json", j);
         }},
        {"labels.png",
         [&] {
           const std::vector<uint8_t> png = svc::labels_png(p);
           m2fp::write_file_atomic(dir + "/labels.png", png.data(), png.size());
         }},
        {"persons.png",
         [&] {
           if (p.single_human) return;
           const std::vector<uint8_t> png = svc::persons_png(p);
           m2fp::write_file_atomic(dir + "/persons.png", png.data(), png.size());
         }},
        {"labels_color.png", [&] { svc::write_labels_color_png(dir + "/labels_color.png", p.labels.data(), p.width, p.height); }},
        {"parsing.png",
         [&] {
           svc::RenderOptions ro;
           ro.person_boxes = !p.persons.empty();
           svc::write_parsing_png(dir + "/parsing.png", r.image, p, ro);
         }},
        {"parsing_json (RLE)", [&] { (void)svc::parsing_json(p); }},
        {"extract_outfits",
         [&] { po = m2fp::extract_outfits(p, r.image, outfits.kit->garments, outfits.kit->garment_options); }},
        {"suggestions", [&] {
           items = outfits.catalog->items();
           (void)m2fp::advise_outfits(po, &items, outfits.reco, outfits.kit->rules);
         }},
        {"result.json (dump, write)", [&] { svc::write_json_file(dir + "/result.json", doc); }},
    };
    std::printf("%-26s %10s %10s %10s\n", "step", "wall ms", "cpu ms", "faults");
    for (const Step& s : steps) {
      std::vector<double> wall, cpu, faults;
      for (int i = 0; i < runs; ++i) {
        const Usage a = now();
        s.run();
        const Usage b = now();
        wall.push_back(b.wall_ms - a.wall_ms);
        cpu.push_back(b.cpu_ms - a.cpu_ms);
        faults.push_back((double)(b.faults - a.faults));
      }
      std::printf("%-26s %10.1f %10.1f %10.0f\n", s.name, median(wall), median(cpu), median(faults));
    }
    if (out.empty()) std::filesystem::remove_all(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_outputs: %s\n", e.what());
    return 1;
  }
  return 0;
}
