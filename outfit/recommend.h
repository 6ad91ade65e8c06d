// outfit/recommend.h: catalogue suggestions for one person's outfit.
//
// The rules are data (outfit/data/rules.json, parsed into Rules): which slots an outfit misses, which
// categories a garment calls for (jeans -> sneakers, dress -> heels), colour harmony relations (neutral,
// tone on tone, analogous, complementary, triadic, clash: by LCh hue distance), style affinities,
// occasions, seasons, the factor weights and the phrases of the reasons. recommend() scores every
// catalogue item on five factors in [0, 1]:
//   complement  the fired rules (missing slot, pairing) combined as 1 - prod(1 - score), else the
//               slot's open score
//   colour      weighted mean harmony of the item's colour with the detected garment colours
//   style       best affinity of the item's styles with the target styles (requested style, occasion's
//               styles, or the styles the outfit's garments suggest)
//   season      1 when a season is requested: items not made for it (nor for "all") are left out
//               altogether, so an out-of-season item is never suggested
//   popularity  catalogue popularity / 100
// and ranks by the weighted mean of the factors that apply (no colours detected, no style target or
// no season requested: that factor is left out). Items for slots the person already fills are skipped.
// Ties are broken by item id, so the order is deterministic. Every suggestion carries a sentence
// built from the rules that fired.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "outfit/catalog.h"
#include "outfit/garments.h"

namespace m2fp {

struct Rules {
  struct Weights {
    double complement = 0.4, colour = 0.25, style = 0.2, season = 0.05, popularity = 0.1;
  } weights;
  int max_per_category = 2;
  std::vector<std::string> exclusive_slots;
  std::map<std::string, std::vector<std::string>> slot_conflicts;
  std::map<std::string, double> open_slot_score;  // slot -> score, "default" for the rest

  struct Missing {
    std::string id, slot;
    std::vector<std::string> unless_any;  // fires only if none of these slots is present either
    double score = 1.0;
    std::string reason;
  };
  std::vector<Missing> missing;

  struct Kind {
    std::string category, kind;
    std::vector<std::string> colours;     // dominant colour names that make the garment this kind
  };
  std::vector<Kind> garment_kinds;

  struct Pairing {
    std::string id, when;                 // a garment kind, category or slot
    std::vector<std::string> suggest;     // catalogue categories
    double score = 0.5;
    std::string reason;                   // "{garment}" -> "your blue jeans"
  };
  std::vector<Pairing> pairings;

  struct Harmony {
    std::string id, condition;            // both_neutral | one_neutral | hue_within | hue_near | always
    double degrees = 0, tolerance = 0, score = 0;
    std::string label;
  };
  std::vector<Harmony> harmony;           // first match wins; the last one is "always"
  std::vector<std::string> neutral_colours;
  double min_colour_share = 0.15;

  std::vector<std::string> styles;
  std::map<std::string, std::map<std::string, double>> style_affinity;
  std::map<std::string, std::vector<std::string>> occasions;
  std::map<std::string, std::vector<std::string>> kind_styles;
  std::vector<std::string> seasons;
  // slot -> the catalogue categories it holds ("catalogue_categories"; empty when the file has none):
  // what a catalogue import accepts (OutfitKit::catalog_vocabulary()).
  std::map<std::string, std::vector<std::string>> catalogue_categories;

  std::vector<std::string> plural_categories;
  std::map<std::string, std::string> phrases;
  double popular_threshold = 80;

  // Parses rules.json text; `source` names it in errors. Throws OutfitError naming the key at fault.
  static Rules parse(const std::string& json_text, const std::string& source = "rules.json");
  static Rules load(const std::string& path);

  bool is_neutral(const std::string& colour_name) const;
  // The garment's kind: the first garment_kinds entry matching its category and dominant colour,
  // else its category ("pants" in blue -> "jeans").
  std::string kind_of(const Garment& g) const;
};

struct RecommendOptions {
  std::string style;              // one of Rules::styles, or empty
  std::string occasion;           // one of Rules::occasions, or empty (style wins when both are given)
  std::string season;             // one of Rules::seasons, or empty
  int k = 5;                      // how many suggestions (>= 0)
  double max_price = 0;           // > 0: items above this price are left out
  int max_per_category = -1;      // < 0: the rules' value; 0: no limit
};

struct Recommendation {
  CatalogItem item;
  double score = 0;               // weighted mean of the applicable factors, in [0, 1]
  std::string reason;             // one human-readable sentence
  std::map<std::string, double> factors;  // complement, colour, style, season, popularity (those that apply)
  std::vector<std::string> rules;         // ids of the rules that fired (missing, pairing, harmony)
};

// Throws std::invalid_argument for an unknown style / occasion / season or a negative k, with a
// message for the person who chose them ("unknown style 'x' (known: casual, ...)").
void check_recommend_options(const RecommendOptions& opt, const Rules& rules);

// Throws std::invalid_argument as check_recommend_options(), its message prefixed "recommend: ".
std::vector<Recommendation> recommend(const PersonOutfit& outfit, const std::vector<CatalogItem>& items,
                                      const RecommendOptions& opt, const Rules& rules);
std::vector<Recommendation> recommend(const PersonOutfit& outfit, const Catalog& catalog,
                                      const RecommendOptions& opt, const Rules& rules);

// "your white top", "your blue jeans": how reasons refer to a garment.
std::string describe_garment(const Garment& g, const Rules& rules);

}  // namespace m2fp
