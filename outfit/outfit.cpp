// outfit/outfit.cpp: data directory lookup, the kit of tables, one-call analysis.
#include "outfit/outfit.h"

#include <cstdlib>
#include <sys/stat.h>

#include "outfit/outfit_json.h"

namespace m2fp {

std::string outfit_data_dir() {
  if (const char* env = std::getenv("M2FP_OUTFIT_DATA"); env && *env) return env;
  return M2FP_OUTFIT_DATA_DIR;  // the source tree's outfit/data, set by CMakeLists.txt
}

OutfitKit OutfitKit::load(const std::string& data_dir) {
  struct stat sb;
  if (::stat(data_dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))
    throw OutfitError("outfit data folder '" + data_dir + "' not found (set M2FP_OUTFIT_DATA to the outfit/data folder)");
  OutfitKit kit;
  kit.data_dir = data_dir;
  kit.garments = GarmentTable::load(data_dir + "/garments.json");
  kit.rules = Rules::load(data_dir + "/rules.json");
  return kit;
}

nlohmann::json analyse_outfits(const Parsing& parsing, const Image& image, const OutfitKit& kit, const Catalog* catalog,
                               const RecommendOptions& opt) {
  const std::vector<PersonOutfit> outfits = extract_outfits(parsing, image, kit.garments, kit.garment_options);
  std::vector<CatalogItem> items;
  if (catalog) items = catalog->items();
  nlohmann::json out = nlohmann::json::array();
  for (const PersonOutfit& p : outfits) {
    if (catalog)
      out.push_back(outfit_advice_json(p, recommend(p, items, opt, kit.rules)));
    else
      out.push_back(to_json(p));
  }
  return out;
}

}  // namespace m2fp
