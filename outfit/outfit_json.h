// outfit/outfit_json.h: JSON for garments, outfits, catalogue items and recommendations (nlohmann),
// shared by the CLI (`result.json`, key "outfits") and the HTTP server so both print the same shapes.
//
//   colour:          {"name", "hex", "share", "lab": [L, a, b], "chroma", "hue", "neutral"}
//   garment:         {"category", "slot", "person", "pixels", "share_of_person", "bbox": [x0, y0, x1, y1],
//                     "labels": [...], "colours": [colour...]}
//   person outfit:   {"person", "score", "bbox", "area", "garments": [garment...]}
//   catalogue item:  {"id", "sku", "name", "category", "slot", "colour", "hex", "colours", "styles",
//                     "seasons", "price", "popularity"}
//   recommendation:  {"item": item, "score", "reason", "factors": {...}, "rules": [...]}
// Floating-point values are rounded (4 decimals for shares and scores, 2 for Lab) so files are stable.
#pragma once

#include <nlohmann/json.hpp>

#include "outfit/catalog.h"
#include "outfit/colour.h"
#include "outfit/garments.h"
#include "outfit/recommend.h"

namespace m2fp {

nlohmann::json to_json(const ColourShare& c);
nlohmann::json to_json(const Garment& g);
nlohmann::json to_json(const PersonOutfit& p);
nlohmann::json to_json(const CatalogItem& it);
nlohmann::json to_json(const Recommendation& r);
nlohmann::json to_json(const std::vector<PersonOutfit>& outfits);         // array of person outfits
nlohmann::json to_json(const std::vector<Recommendation>& recs);          // array of recommendations

// {"person", ..., "garments": [...], "recommendations": [...]}: one person's advice.
nlohmann::json outfit_advice_json(const PersonOutfit& p, const std::vector<Recommendation>& recs);

}  // namespace m2fp
