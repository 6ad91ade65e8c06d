// outfit/outfit.h: the outfit library's front door for the CLI and the HTTP server.
//
//   OutfitKit kit = OutfitKit::load();                        // garments.json + rules.json
//   Catalog cat = Catalog::open_or_create(db, kit.seed_catalog());
//   std::vector<PersonOutfit> persons = extract_outfits(parsing, image, kit.garments, kit.garment_options);
//   nlohmann::json j = advise_outfits(persons, &items, {.k = 5}, kit.rules);  // -> result.json "outfits"
//
// Data files live in outfit/data/ of the source tree. outfit_data_dir() finds them: the environment
// variable M2FP_OUTFIT_DATA if set; else, in an installed tree, <prefix>/share/m2fp/outfit beside the
// library (libm2fp.so) or the program (bin/m2fp); else the data/ folder beside this library's sources
// (known at compile time), so a build tree works without installing anything.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "outfit/catalog.h"
#include "outfit/garments.h"
#include "outfit/recommend.h"
#include "outfit/refine_table.h"

namespace m2fp {

std::string outfit_data_dir();

struct OutfitKit {
  std::string data_dir;
  GarmentTable garments;
  Rules rules;
  GarmentOptions garment_options;
  RefineTable refine = RefineTable::defaults();  // data_dir/refine.json when present

  // Loads data_dir/garments.json, data_dir/rules.json and data_dir/refine.json (built-in values
  // when that file is absent). Throws OutfitError naming the file.
  static OutfitKit load(const std::string& data_dir = outfit_data_dir());
  std::string seed_catalog() const { return data_dir + "/seed_catalog.csv"; }
  // The names a catalogue import accepts: rules.json's catalogue_categories, styles, occasions and
  // seasons, and the colour names (colour_vocabulary()). allow_new is false.
  CatalogVocabulary catalog_vocabulary() const;
};

// Every person's garments, with recommendations from `items` when given:
// [{"person", "score", "bbox", "area", "garments": [...], "recommendations": [...]}, ...]
// (outfit_json.h documents the shapes). Throws std::invalid_argument for bad options (recommend()).
nlohmann::json advise_outfits(const std::vector<PersonOutfit>& persons, const std::vector<CatalogItem>* items,
                              const RecommendOptions& opt, const Rules& rules);

}  // namespace m2fp
