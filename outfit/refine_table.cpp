// outfit/refine_table.cpp: refine.json -> RefineTable.
#include "outfit/refine_table.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "outfit/garments.h"

namespace m2fp {

RefineTable RefineTable::defaults() {
  RefineTable t;
  auto w = [](const char* label, const char* anchor, double l, double r, double top, double bottom, double s,
              double amin, double amax) {
    Window x;
    x.label = label;
    x.anchor = anchor;
    x.left = l, x.right = r, x.top = top, x.bottom = bottom;
    x.min_score = s, x.min_area_face = amin, x.max_area_face = amax;
    return x;
  };
  t.small = {w("Hat", "head", 0.5, 0.5, 1.0, -0.6, 0.2, 0.05, 2.0),
             w("Sunglasses", "face", 0.0, 0.0, -0.15, -0.45, 0.2, 0.02, 0.6),
             w("Scarf", "face", 0.6, 0.6, -0.8, 0.9, 0.2, 0.05, 2.0),
             w("Glove", "arm_end", 0.4, 0.4, 0.4, 0.4, 0.2, 0.02, 1.0),
             w("Socks", "shoe_top", 0.1, 0.1, 0.6, 0.2, 0.2, 0.02, 1.0)};
  return t;
}

RefineTable RefineTable::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw OutfitError(path + ": cannot open the refinement table");
  std::stringstream ss;
  ss << f.rdbuf();
  RefineTable t = defaults();
  try {
    const nlohmann::json j = nlohmann::json::parse(ss.str());
    if (j.contains("dark")) {
      const auto& d = j.at("dark");
      t.dark.value_max = d.value("value_max", t.dark.value_max);
      t.dark.margin = d.value("margin", t.dark.margin);
      t.dark.min_score = d.value("min_score", t.dark.min_score);
      if (d.contains("garments")) t.dark.garments = d.at("garments").get<std::vector<std::string>>();
    }
    if (j.contains("small")) {
      t.small.clear();
      for (const auto& s : j.at("small")) {
        Window w;
        w.label = s.at("label").get<std::string>();
        w.anchor = s.at("anchor").get<std::string>();
        if (w.anchor != "head" && w.anchor != "face" && w.anchor != "arm_end" && w.anchor != "shoe_top")
          throw OutfitError(path + ": unknown anchor '" + w.anchor + "'");
        const auto& g = s.at("grow");
        w.left = g.at("left"), w.right = g.at("right"), w.top = g.at("top"), w.bottom = g.at("bottom");
        w.min_score = s.at("min_score");
        w.min_area_face = s.at("min_area_face");
        w.max_area_face = s.at("max_area_face");
        t.small.push_back(w);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw OutfitError(path + ": bad refinement table: " + e.what());
  }
  return t;
}

}  // namespace m2fp
