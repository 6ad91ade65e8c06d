// outfit/garments.h: from a Parsing (label map + person map) and the photo to garments per person.
//
// The label -> garment mapping is data (outfit/data/garments.json): each CIHP / LIP class name maps to a
// garment category and a slot (top | bottom | one_piece | outerwear | shoes | accessory), or is listed as a
// body / background label. Names are matched after normalisation (lower case, letters and digits only),
// so "UpperClothes" (CIHP) and "Upper-clothes" (LIP) are one entry. Several labels may share a category
// (Left-shoe + Right-shoe -> shoes): their pixels are merged per person.
//
// Persons: multi-person parsings use Parsing::person_map (k = persons[k - 1]); a garment pixel outside
// every person mask goes to the person whose box contains it (nearest box centre when several) or is
// left out. Single-person parsings (single_human, or no persons) are one person covering the image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/parsing.h"
#include "outfit/colour.h"

namespace m2fp {

// Bad garment table, or a Parsing / Image that do not fit together. what() says which and where.
struct OutfitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The garment slots, in display order.
const std::vector<std::string>& garment_slots();

struct GarmentClass {
  std::string category;  // e.g. "top", "pants", "shoes"
  std::string slot;      // one of garment_slots()
};

class GarmentTable {
 public:
  // Parses the JSON text of garments.json; `source` names it in error messages.
  static GarmentTable parse(const std::string& json_text, const std::string& source = "garments.json");
  static GarmentTable load(const std::string& path);

  // The garment a class name maps to, or nullptr for body / background / unknown labels.
  const GarmentClass* lookup(const std::string& class_name) const;
  // True when the name is in the table at all (as a garment or as a body label).
  bool known(const std::string& class_name) const;
  // The slot of a garment category ("" if the category is not in the table).
  std::string slot_of(const std::string& category) const;

  static std::string normalise(const std::string& class_name);  // "Upper-clothes" -> "upperclothes"

 private:
  std::vector<std::pair<std::string, GarmentClass>> garments_;  // normalised name -> garment
  std::vector<std::string> body_;                               // normalised body labels
};

struct Garment {
  std::string category;                 // "top", "coat", "dress", "pants", "shoes", "hat", ...
  std::string slot;                     // "top" | "bottom" | "one_piece" | "outerwear" | "shoes" | "accessory"
  int person = 0;                       // index into Parsing::persons (0 in single-person mode)
  int64_t pixels = 0;                   // pixels of this garment at the original size
  double share_of_person = 0;           // pixels / the person's area
  std::vector<ColourShare> colours;     // dominant colours, by share
  BBox bbox;                            // half-open pixel box
  std::vector<std::string> labels;      // the class names merged into it, e.g. {"Left-shoe", "Right-shoe"}
};

struct PersonOutfit {
  int person = 0;                       // index into Parsing::persons (0 in single-person mode)
  float score = 0.f;                    // the human instance's score (1 in single-person mode)
  BBox bbox;
  int64_t area = 0;                     // pixels of the person (single-person: non-background pixels)
  std::vector<Garment> garments;        // by slot order, then pixels (descending)

  bool has_slot(const std::string& slot) const;
  bool has_category(const std::string& category) const;
  const Garment* largest_in_slot(const std::string& slot) const;
};

struct GarmentOptions {
  int64_t min_pixels = 64;              // garments smaller than this are noise and dropped
  double min_share_of_person = 0.002;   // ... or smaller than this share of the person's area
  bool interior_pixels_only = true;     // colours from pixels whose 4 neighbours share the label
                                        // (edges mix with the background), when enough remain
  DominantColourOptions colour;
};

// One PersonOutfit per person (by person index), garments filled in. The image must have the parsing's
// size. Throws OutfitError when sizes or maps do not fit.
std::vector<PersonOutfit> extract_outfits(const Parsing& parsing, const Image& image,
                                          const GarmentTable& table, const GarmentOptions& opt = {});

}  // namespace m2fp
