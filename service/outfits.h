// service/outfits.h: the catalogue recommendations come from, for every front door: where it lives by
// default, and opening it (its folder created, seeded from the outfit tables on first use).
#pragma once

#include <memory>
#include <string>

#include "outfit/catalog.h"
#include "outfit/outfit.h"
#include "outfit/recommend.h"

namespace m2fp::service {

// $M2FP_CATALOG if set, else data/catalog.db under the current folder.
std::string default_catalog_path();

// Opens the catalogue at `path` (":memory:": a private in-memory database), creating its folder and
// seeding it from kit.seed_catalog() on first use. When that fails, a database this call began to
// create (e.g. the disk filled up while seeding) is removed, and the message adds what the folder
// tells (not a folder, no files can be created there). Throws std::runtime_error.
Catalog open_catalog(const std::string& path, const OutfitKit& kit);

// What result.json's outfit analysis needs (`m2fp parse`, the C API): the outfit tables, the catalogue
// and the recommendation options.
struct OutfitSetup {
  std::unique_ptr<OutfitKit> kit;
  std::unique_ptr<Catalog> catalog;
  std::string catalog_name;  // as reported in result.json's "catalog"
  RecommendOptions reco;
};

// Loads the outfit tables and checks `reco` against their rules (std::invalid_argument for an unknown
// style / occasion / season), then opens the catalogue: `catalog` when not empty (created from the seed
// on first use); else the default one (default_catalog_path()) when it exists; else the seed
// catalogue in memory (no file is written). Throws OutfitError / std::runtime_error otherwise.
OutfitSetup load_outfit_setup(const std::string& catalog, const RecommendOptions& reco);

}  // namespace m2fp::service
