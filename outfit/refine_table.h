// outfit/refine_table.h: the thresholds of the service's optional refinements of a parsing
// (service/refine.h), read from outfit/data/refine.json. docs/OUTPUTS.md explains each one.
#pragma once

#include <string>
#include <vector>

namespace m2fp {

struct RefineTable {
  // Dark garments: a Background pixel inside a person whose photo colour has HSV value (max of
  // R, G, B over 255) below value_max, connected to a garment region of that person through such
  // pixels, takes that garment's class when score(garment) >= score(winner) - margin and
  // score(garment) >= min_score (scores: the semantic map, 0..1).
  struct Dark {
    double value_max = 0.25;
    double margin = 0.15;
    double min_score = 0.05;
    std::vector<std::string> garments{"UpperClothes", "Dress", "Coat", "Pants", "Skirt", "Scarf"};
  } dark;

  // Small items: per person, windows sized from the face's box (face width fw, height fh); a
  // Background pixel in a window whose score for the window's class is >= min_score, in a 4-connected
  // blob of such pixels with min_area_face <= area / (fw * fh) <= max_area_face, takes that class.
  struct Window {
    std::string label;       // class name (CIHP)
    std::string anchor;      // "head" (Face + Hair box), "face", "arm_end", "shoe_top"
    // window = anchor box grown by these multiples of fw (x) and fh (y); negative shrinks
    double left = 0, right = 0, top = 0, bottom = 0;
    double min_score = 0.2;
    double min_area_face = 0.02, max_area_face = 1.5;
  };
  std::vector<Window> small;

  // Built-in values (the same as outfit/data/refine.json as shipped).
  static RefineTable defaults();
  // Reads a refine.json; throws OutfitError naming the file for a malformed one.
  static RefineTable load(const std::string& path);
};

}  // namespace m2fp
