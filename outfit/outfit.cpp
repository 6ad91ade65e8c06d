// outfit/outfit.cpp: data directory lookup, the kit of tables, every person's advice.
#include "outfit/outfit.h"

#include <dlfcn.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "outfit/colour.h"
#include "outfit/outfit_json.h"

namespace m2fp {

namespace {

bool is_dir(const std::string& p) {
  struct stat sb;
  return ::stat(p.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode);
}

// <prefix>/share/m2fp/outfit for a binary or library installed in <prefix>/bin, <prefix>/lib or
// <prefix>/lib/<multiarch>; "" when `file` is in no such tree (a build folder).
std::string installed_data_dir(const std::string& file) {
  const size_t slash = file.rfind('/');
  if (file.empty() || file[0] != '/' || slash == std::string::npos) return "";
  const std::string dir = file.substr(0, slash);
  for (const char* up : {"/../share/m2fp/outfit", "/../../share/m2fp/outfit"}) {
    char real[PATH_MAX];
    if (is_dir(dir + up) && ::realpath((dir + up).c_str(), real)) return real;
  }
  return "";
}

}  // namespace

std::string outfit_data_dir() {
  if (const char* env = std::getenv("M2FP_OUTFIT_DATA"); env && *env) return env;
  // An installed tree: beside the shared library holding this code (libm2fp.so), else beside the
  // running program (bin/m2fp).
  Dl_info info{};
  if (::dladdr(reinterpret_cast<const void*>(&outfit_data_dir), &info) && info.dli_fname) {
    char real[PATH_MAX];
    if (::realpath(info.dli_fname, real))
      if (std::string d = installed_data_dir(real); !d.empty()) return d;
  }
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    if (std::string d = installed_data_dir(exe); !d.empty()) return d;
  }
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

CatalogVocabulary OutfitKit::catalog_vocabulary() const {
  CatalogVocabulary v;
  v.categories = rules.catalogue_categories;
  v.styles = rules.styles;
  v.occasions = rules.occasions;
  v.seasons = rules.seasons;
  v.colours = colour_vocabulary();
  return v;
}

nlohmann::json advise_outfits(const std::vector<PersonOutfit>& persons, const std::vector<CatalogItem>* items,
                              const RecommendOptions& opt, const Rules& rules) {
  nlohmann::json out = nlohmann::json::array();
  for (const PersonOutfit& p : persons)
    out.push_back(items ? outfit_advice_json(p, recommend(p, *items, opt, rules)) : to_json(p));
  return out;
}

}  // namespace m2fp
