// outfit/outfit.cpp: data directory lookup, the kit of tables, every person's advice.
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
  if (::stat((data_dir + "/refine.json").c_str(), &sb) == 0) kit.refine = RefineTable::load(data_dir + "/refine.json");
  return kit;
}

nlohmann::json advise_outfits(const std::vector<PersonOutfit>& persons, const std::vector<CatalogItem>* items,
                              const RecommendOptions& opt, const Rules& rules) {
  nlohmann::json out = nlohmann::json::array();
  for (const PersonOutfit& p : persons)
    out.push_back(items ? outfit_advice_json(p, recommend(p, *items, opt, rules)) : to_json(p));
  return out;
}

}  // namespace m2fp
