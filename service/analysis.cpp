// service/analysis.cpp: parse -> garments -> per-label masks, coloured mask and JSON, timed.
#include "service/analysis.h"

#include <chrono>

#include "engine/io.h"
#include "service/render.h"
#include "service/report.h"

namespace m2fp::service {

std::string AnalysisOptions::key() const {
  std::string k;
  if (refine.any()) k += "|refine=" + refine.spelled();
  if (smooth_edges) k += "|smooth_edges=1";
  return k;
}

std::shared_ptr<Analysis> analyse_photo(const Session& session, const OutfitKit& kit, const std::string& bytes,
                                        const std::string& sha, const AnalysisOptions& opt) {
  using Clock = std::chrono::steady_clock;
  auto ms_between = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  ParseResult r = session.parse(data, bytes.size(), nullptr, opt.refine.any());
  const Parsing& p = r.parsing;

  auto a = std::make_shared<Analysis>();
  const auto t0 = Clock::now();
  nlohmann::json refinements;
  if (opt.refine.any()) {
    refinements = refinements_json(opt.refine, refine_parsing(r.parsing, r.image, opt.refine, kit.refine));
    r.parsing.scores = std::vector<uint8_t>();  // not needed any further
  }
  a->outfits = extract_outfits(p, r.image, kit.garments, kit.garment_options);
  const auto t1 = Clock::now();

  nlohmann::json j = parsing_json(p);
  add_person_garments(j, a->outfits);
  // labels present (Background left out) and one black/white PNG mask per label
  nlohmann::json labels = nlohmann::json::array(), masks = nlohmann::json::object();
  std::vector<uint8_t> mask((size_t)p.width * p.height);
  for (size_t c = 1; c < p.label_fractions.size(); ++c) {
    if (!(p.label_fractions[c] > 0)) continue;
    const std::string name = c < p.class_names.size() ? p.class_names[c] : std::to_string(c);
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = p.labels[i] == c ? 255 : 0;
    std::string b64 = base64_encode(encode_png(mask.data(), p.width, p.height, 1));
    labels.push_back(name);
    masks[name] = std::move(b64);
  }
  const std::vector<uint8_t> smoothed =
      opt.smooth_edges ? smooth_label_edges(p.labels.data(), p.width, p.height) : std::vector<uint8_t>();
  std::string colored =
      base64_encode(encode_png(colorize_labels(opt.smooth_edges ? smoothed : p.labels, p.width, p.height)));
  const auto t2 = Clock::now();

  j["labels"] = labels;
  j["masks"] = std::move(masks);
  j["colored_mask"] = std::move(colored);
  if (opt.refine.any()) j["refinements"] = std::move(refinements);
  if (opt.smooth_edges) j["smooth_edges"] = true;
  j["legend"] = legend_json(p);
  j["image"] = {{"width", p.width},
                {"height", p.height},
                {"sha256", sha},
                {"bytes", bytes.size()},
                {"format", image_format_name(sniff_image_format(data, bytes.size()))},
                {"network_input", {{"height", r.geometry.nh}, {"width", r.geometry.nw}}}};
  nlohmann::json t = timings_json(r.timings);
  t["outfits"] = ms_between(t0, t1);
  t["encode"] = ms_between(t1, t2);
  t["engine"] = r.timings.total_ms + ms_between(t0, t2);
  a->timings = t;
  a->meta = {{"labels", j["labels"]}, {"legend", j["legend"]}, {"image", j["image"]}};
  a->predict_text = j.dump();
  a->cost = a->predict_text.size() + a->meta.dump().size() + 1024 * (a->outfits.size() + 4);
  return a;
}

}  // namespace m2fp::service
