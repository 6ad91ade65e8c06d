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

namespace {
// The label map in colour as a base64 PNG (smoothed by smooth_label_edges when asked).
std::string colored_mask_base64(const Parsing& p, bool smooth) {
  const std::vector<uint8_t> smoothed = smooth ? smooth_label_edges(p.labels.data(), p.width, p.height)
                                               : std::vector<uint8_t>();
  return base64_encode(encode_png(colorize_labels(smooth ? smoothed : p.labels, p.width, p.height)));
}
}  // namespace

std::shared_ptr<Analysis> analyse_photo(const Session& session, const OutfitKit& kit, const std::string& bytes,
                                        const std::string& sha, const AnalysisOptions& opt) {
  using Clock = std::chrono::steady_clock;
  auto ms_between = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  ParseResult r = session.parse_resized(data, bytes.size(), opt.short_edge, opt.max_size, opt.refine.any());
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

  nlohmann::json labelled = parsing_json(p);
  add_person_garments(labelled, a->outfits);
  // labels present (Background left out)
  nlohmann::json labels = nlohmann::json::array();
  for (size_t c = 1; c < p.label_fractions.size(); ++c)
    if (p.label_fractions[c] > 0) labels.push_back(c < p.class_names.size() ? p.class_names[c] : std::to_string(c));
  a->modelscope_text = modelscope_answer(p, MaskFormat::Png).dump();
  a->smooth_edges = opt.smooth_edges;
  labelled["colored_mask"] = colored_mask_base64(p, opt.smooth_edges);
  labelled["labels_png"] = base64_encode(labels_png(p));  // the palette labels.png (docs/OUTPUTS.md)
  labelled["legend"] = legend_json(p);
  const auto t2 = Clock::now();

  nlohmann::json j = nlohmann::json::object();
  if (opt.refine.any()) j["refinements"] = std::move(refinements);
  if (opt.smooth_edges) j["smooth_edges"] = true;
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
  a->meta = {{"labels", labels}, {"legend", labelled["legend"]}, {"image", j["image"]}};
  a->predict_text = j.dump();
  a->labelled_text = labelled.dump();
  size_t parsing_bytes = p.labels.size() + p.person_map.size();
  for (const Instance& in : p.instances) parsing_bytes += in.mask_bits.size() + sizeof(Instance);
  a->parsing = std::make_shared<const Parsing>(std::move(r.parsing));
  a->cost = a->predict_text.size() + a->modelscope_text.size() + a->labelled_text.size() + parsing_bytes +
            a->meta.dump().size() + 1024 * (a->outfits.size() + 4);
  return a;
}

std::string predict_masks_text(const Analysis& a, const PredictForm& form) {
  // two JSON objects' texts as one object's
  auto joined = [](const std::string& x, const std::string& y) {
    if (x.size() <= 2) return y;
    if (y.size() <= 2) return x;
    std::string out;
    out.reserve(x.size() + y.size());
    out.append(x, 0, x.size() - 1);
    out += ',';
    out.append(y, 1, std::string::npos);
    return out;
  };
  if (form.is_default() || !a.parsing) return joined(a.modelscope_text, a.labelled_text);
  const Parsing& p = *a.parsing;
  nlohmann::json j = modelscope_answer(p, form.format, form.label_set);
  if (form.label_set != LabelSet::Cihp) j["label_set"] = label_set_name(form.label_set);
  if (!form.masks_union.empty()) {
    nlohmann::json u = nlohmann::json::object();
    for (const std::string& n : form.masks_union) {
      const std::vector<uint8_t> m = union_mask(p, n, form.dilate);
      u[n] = base64_encode(encode_png(m.data(), p.width, p.height, 1));
    }
    j["masks_union"] = std::move(u);
  }
  if (form.label_set == LabelSet::Cihp) return joined(j.dump(), a.labelled_text);
  // the label-bearing keys in the set's ids (analyse_photo's labelled keys, remapped)
  const Parsing q = in_label_set(p, form.label_set);
  nlohmann::json labelled = parsing_json(p);
  add_person_garments(labelled, a.outfits);
  add_label_set_keys(labelled, p, form.label_set);
  labelled["colored_mask"] = colored_mask_base64(q, a.smooth_edges);
  labelled["labels_png"] = base64_encode(labels_png(p, form.label_set));
  labelled["legend"] = legend_json(q);
  for (auto& [k, v] : labelled.items()) j[k] = std::move(v);
  return j.dump();
}

}  // namespace m2fp::service
