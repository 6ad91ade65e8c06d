// service/outfits.h: the catalogue recommendations come from, for every front door: where it lives by
// default, and opening it (its folder created, seeded from the outfit tables on first use).
#pragma once

#include <string>

#include "outfit/catalog.h"
#include "outfit/outfit.h"

namespace m2fp::service {

// $M2FP_CATALOG if set, else data/catalog.db under the current folder.
std::string default_catalog_path();

// Opens the catalogue at `path` (":memory:": a private in-memory database), creating its folder and
// seeding it from kit.seed_catalog() on first use. When that fails, a database this call began to
// create (e.g. the disk filled up while seeding) is removed, and the message adds what the folder
// tells (not a folder, no files can be created there). Throws std::runtime_error.
Catalog open_catalog(const std::string& path, const OutfitKit& kit);

}  // namespace m2fp::service
