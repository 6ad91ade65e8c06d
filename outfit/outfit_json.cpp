// outfit/outfit_json.cpp: JSON serialisation of the outfit types (see outfit_json.h for the shapes).
#include "outfit/outfit_json.h"

#include <cmath>

namespace m2fp {

namespace {
double round_to(double v, int decimals) {
  const double f = std::pow(10.0, decimals);
  return std::round(v * f) / f + 0.0;  // + 0.0: no "-0.0" in the files
}
nlohmann::json bbox_json(const BBox& b) { return nlohmann::json::array({b.x0, b.y0, b.x1, b.y1}); }
}  // namespace

nlohmann::json to_json(const ColourShare& c) {
  return {{"name", c.name},
          {"hex", c.hex},
          {"share", round_to(c.share, 4)},
          {"lab", {round_to(c.lab.L, 2), round_to(c.lab.a, 2), round_to(c.lab.b, 2)}},
          {"chroma", round_to(c.chroma, 2)},
          {"hue", round_to(c.hue, 1)},
          {"neutral", c.neutral}};
}

nlohmann::json to_json(const Garment& g) {
  nlohmann::json colours = nlohmann::json::array();
  for (const auto& c : g.colours) colours.push_back(to_json(c));
  return {{"category", g.category},
          {"slot", g.slot},
          {"person", g.person},
          {"pixels", g.pixels},
          {"share_of_person", round_to(g.share_of_person, 4)},
          {"bbox", bbox_json(g.bbox)},
          {"labels", g.labels},
          {"colours", colours}};
}

nlohmann::json to_json(const PersonOutfit& p) {
  nlohmann::json garments = nlohmann::json::array();
  for (const auto& g : p.garments) garments.push_back(to_json(g));
  return {{"person", p.person},
          {"score", round_to(p.score, 4)},
          {"bbox", bbox_json(p.bbox)},
          {"area", p.area},
          {"garments", garments}};
}

nlohmann::json to_json(const CatalogItem& it) {
  return {{"id", it.id},          {"sku", it.sku},         {"name", it.name},
          {"category", it.category}, {"slot", it.slot},    {"colour", it.colour_name},
          {"hex", it.colour_hex}, {"colours", it.colours}, {"styles", it.styles},
          {"seasons", it.seasons}, {"price", round_to(it.price, 2)}, {"popularity", round_to(it.popularity, 1)}};
}

nlohmann::json to_json(const Recommendation& r) {
  nlohmann::json factors = nlohmann::json::object();
  for (const auto& [k, v] : r.factors) factors[k] = round_to(v, 4);
  return {{"item", to_json(r.item)},
          {"score", round_to(r.score, 4)},
          {"reason", r.reason},
          {"factors", factors},
          {"rules", r.rules}};
}

nlohmann::json to_json(const std::vector<PersonOutfit>& outfits) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : outfits) a.push_back(to_json(p));
  return a;
}

nlohmann::json to_json(const std::vector<Recommendation>& recs) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : recs) a.push_back(to_json(r));
  return a;
}

nlohmann::json outfit_advice_json(const PersonOutfit& p, const std::vector<Recommendation>& recs) {
  nlohmann::json j = to_json(p);
  j["recommendations"] = to_json(recs);
  return j;
}

}  // namespace m2fp
