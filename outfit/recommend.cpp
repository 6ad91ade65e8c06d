// outfit/recommend.cpp: rules.json parsing and the scoring of catalogue items against an outfit.
#include "outfit/recommend.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace m2fp {

namespace {

using nlohmann::json;

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
  return s;
}

// Typed access to rules.json with errors that name the file and the key path.
struct Reader {
  std::string source;

  OutfitError error(const std::string& path, const std::string& what) const {
    return OutfitError(source + ": " + path + ": " + what);
  }
  const json& at(const json& j, const std::string& key, const std::string& path) const {
    if (!j.is_object() || !j.contains(key)) throw error(path, "missing key \"" + key + "\"");
    return j.at(key);
  }
  double number(const json& j, const std::string& path, double lo = -1e300, double hi = 1e300) const {
    if (!j.is_number()) throw error(path, "expected a number");
    const double v = j.get<double>();
    if (!(v >= lo && v <= hi)) throw error(path, "value " + std::to_string(v) + " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  std::string string(const json& j, const std::string& path) const {
    if (!j.is_string() || j.get<std::string>().empty()) throw error(path, "expected a non-empty string");
    return j.get<std::string>();
  }
  std::vector<std::string> strings(const json& j, const std::string& path) const {
    if (!j.is_array()) throw error(path, "expected an array of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < j.size(); ++i) out.push_back(string(j[i], path + "[" + std::to_string(i) + "]"));
    return out;
  }
};

}  // namespace

// ---- rules ------------------------------------------------------------------------------------

Rules Rules::parse(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw OutfitError(source + ": not valid JSON: " + e.what());
  }
  const Reader rd{source};
  if (!j.is_object()) throw rd.error("top level", "expected an object");
  Rules r;
  const auto& slots = garment_slots();
  auto check_slot = [&](const std::string& s, const std::string& path) {
    if (!contains(slots, s)) throw rd.error(path, "unknown slot \"" + s + "\"");
  };

  const json& w = rd.at(j, "weights", "weights");
  r.weights.complement = rd.number(rd.at(w, "complement", "weights"), "weights.complement", 0, 100);
  r.weights.colour = rd.number(rd.at(w, "colour", "weights"), "weights.colour", 0, 100);
  r.weights.style = rd.number(rd.at(w, "style", "weights"), "weights.style", 0, 100);
  r.weights.season = rd.number(rd.at(w, "season", "weights"), "weights.season", 0, 100);
  r.weights.popularity = rd.number(rd.at(w, "popularity", "weights"), "weights.popularity", 0, 100);
  if (r.weights.complement + r.weights.colour + r.weights.style + r.weights.season + r.weights.popularity <= 0)
    throw rd.error("weights", "all weights are zero");
  r.max_per_category = static_cast<int>(rd.number(rd.at(j, "max_per_category", ""), "max_per_category", 1, 1000));

  r.exclusive_slots = rd.strings(rd.at(j, "exclusive_slots", ""), "exclusive_slots");
  for (const auto& s : r.exclusive_slots) check_slot(s, "exclusive_slots");
  for (const auto& [slot, list] : rd.at(j, "slot_conflicts", "").items()) {
    check_slot(slot, "slot_conflicts");
    r.slot_conflicts[slot] = rd.strings(list, "slot_conflicts." + slot);
    for (const auto& s : r.slot_conflicts[slot]) check_slot(s, "slot_conflicts." + slot);
  }
  for (const auto& [slot, v] : rd.at(j, "open_slot_score", "").items()) {
    if (slot != "default") check_slot(slot, "open_slot_score");
    r.open_slot_score[slot] = rd.number(v, "open_slot_score." + slot, 0, 1);
  }
  if (!r.open_slot_score.count("default")) throw rd.error("open_slot_score", "missing key \"default\"");

  const json& missing = rd.at(j, "missing", "");
  if (!missing.is_array()) throw rd.error("missing", "expected an array");
  for (size_t i = 0; i < missing.size(); ++i) {
    const std::string p = "missing[" + std::to_string(i) + "]";
    Missing m;
    m.id = rd.string(rd.at(missing[i], "id", p), p + ".id");
    m.slot = rd.string(rd.at(missing[i], "slot", p), p + ".slot");
    check_slot(m.slot, p + ".slot");
    m.unless_any = rd.strings(rd.at(missing[i], "unless_any", p), p + ".unless_any");
    for (const auto& s : m.unless_any) check_slot(s, p + ".unless_any");
    m.score = rd.number(rd.at(missing[i], "score", p), p + ".score", 0, 1);
    m.reason = rd.string(rd.at(missing[i], "reason", p), p + ".reason");
    r.missing.push_back(m);
  }

  const json& kinds = rd.at(j, "garment_kinds", "");
  if (!kinds.is_array()) throw rd.error("garment_kinds", "expected an array");
  for (size_t i = 0; i < kinds.size(); ++i) {
    const std::string p = "garment_kinds[" + std::to_string(i) + "]";
    Kind k;
    k.category = rd.string(rd.at(kinds[i], "category", p), p + ".category");
    k.kind = rd.string(rd.at(kinds[i], "kind", p), p + ".kind");
    k.colours = rd.strings(rd.at(kinds[i], "colours", p), p + ".colours");
    for (const auto& c : k.colours)
      if (!contains(colour_vocabulary(), c)) throw rd.error(p + ".colours", "unknown colour name \"" + c + "\"");
    r.garment_kinds.push_back(k);
  }

  const json& pairings = rd.at(j, "pairings", "");
  if (!pairings.is_array()) throw rd.error("pairings", "expected an array");
  std::set<std::string> ids;
  for (const auto& m : r.missing)
    if (!ids.insert(m.id).second) throw rd.error("missing", "duplicate rule id \"" + m.id + "\"");
  for (size_t i = 0; i < pairings.size(); ++i) {
    const std::string p = "pairings[" + std::to_string(i) + "]";
    Pairing pr;
    pr.id = rd.string(rd.at(pairings[i], "id", p), p + ".id");
    if (!ids.insert(pr.id).second) throw rd.error(p + ".id", "duplicate rule id \"" + pr.id + "\"");
    pr.when = rd.string(rd.at(pairings[i], "when", p), p + ".when");
    pr.suggest = rd.strings(rd.at(pairings[i], "suggest", p), p + ".suggest");
    if (pr.suggest.empty()) throw rd.error(p + ".suggest", "empty");
    pr.score = rd.number(rd.at(pairings[i], "score", p), p + ".score", 0, 1);
    pr.reason = rd.string(rd.at(pairings[i], "reason", p), p + ".reason");
    r.pairings.push_back(pr);
  }

  const json& harmony = rd.at(j, "harmony", "");
  if (!harmony.is_array() || harmony.empty()) throw rd.error("harmony", "expected a non-empty array");
  for (size_t i = 0; i < harmony.size(); ++i) {
    const std::string p = "harmony[" + std::to_string(i) + "]";
    Harmony h;
    h.id = rd.string(rd.at(harmony[i], "id", p), p + ".id");
    h.condition = rd.string(rd.at(harmony[i], "if", p), p + ".if");
    h.score = rd.number(rd.at(harmony[i], "score", p), p + ".score", 0, 1);
    h.label = rd.string(rd.at(harmony[i], "label", p), p + ".label");
    if (h.condition == "hue_within") {
      h.degrees = rd.number(rd.at(harmony[i], "degrees", p), p + ".degrees", 0, 180);
    } else if (h.condition == "hue_near") {
      h.degrees = rd.number(rd.at(harmony[i], "degrees", p), p + ".degrees", 0, 180);
      h.tolerance = rd.number(rd.at(harmony[i], "tolerance", p), p + ".tolerance", 0, 180);
    } else if (h.condition != "both_neutral" && h.condition != "one_neutral" && h.condition != "always") {
      throw rd.error(p + ".if", "unknown condition \"" + h.condition +
                                    "\" (expected both_neutral, one_neutral, hue_within, hue_near or always)");
    }
    r.harmony.push_back(h);
  }
  if (r.harmony.back().condition != "always")
    throw rd.error("harmony", "the last relation must have \"if\": \"always\" (the fallback)");
  r.neutral_colours = rd.strings(rd.at(j, "neutral_colours", ""), "neutral_colours");
  r.min_colour_share = rd.number(rd.at(j, "min_colour_share", ""), "min_colour_share", 0, 1);

  r.styles = rd.strings(rd.at(j, "styles", ""), "styles");
  if (r.styles.empty()) throw rd.error("styles", "empty");
  const json& aff = rd.at(j, "style_affinity", "");
  for (const auto& s : r.styles) {
    const json& row = rd.at(aff, s, "style_affinity");
    for (const auto& t : r.styles)
      r.style_affinity[s][t] = rd.number(rd.at(row, t, "style_affinity." + s), "style_affinity." + s + "." + t, 0, 1);
  }
  for (const auto& [occ, list] : rd.at(j, "occasions", "").items()) {
    r.occasions[occ] = rd.strings(list, "occasions." + occ);
    for (const auto& s : r.occasions[occ])
      if (!contains(r.styles, s)) throw rd.error("occasions." + occ, "unknown style \"" + s + "\"");
  }
  for (const auto& [kind, list] : rd.at(j, "kind_styles", "").items()) {
    r.kind_styles[kind] = rd.strings(list, "kind_styles." + kind);
    for (const auto& s : r.kind_styles[kind])
      if (!contains(r.styles, s)) throw rd.error("kind_styles." + kind, "unknown style \"" + s + "\"");
  }
  r.seasons = rd.strings(rd.at(j, "seasons", ""), "seasons");

  // The catalogue's categories per slot (optional: without it, imports leave categories unchecked).
  // Every category a pairing suggests must be one of them, or that rule could never fire.
  if (j.contains("catalogue_categories")) {
    for (const auto& [slot, list] : rd.at(j, "catalogue_categories", "").items()) {
      check_slot(slot, "catalogue_categories");
      r.catalogue_categories[slot] = rd.strings(list, "catalogue_categories." + slot);
    }
    for (const auto& p : r.pairings)
      for (const auto& c : p.suggest) {
        bool found = false;
        for (const auto& [slot, cats] : r.catalogue_categories) found = found || contains(cats, c);
        if (!found)
          throw rd.error("pairings." + p.id, "suggests \"" + c + "\", which no slot of catalogue_categories lists");
      }
  }

  r.plural_categories = rd.strings(rd.at(j, "plural_categories", ""), "plural_categories");
  const json& phrases = rd.at(j, "phrases", "");
  for (const char* key : {"colour", "style_requested", "style_occasion", "style_inferred", "season", "popular"})
    r.phrases[key] = rd.string(rd.at(phrases, key, "phrases"), std::string("phrases.") + key);
  r.popular_threshold = rd.number(rd.at(j, "popular_threshold", ""), "popular_threshold", 0, 100);
  return r;
}

Rules Rules::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw OutfitError("cannot open rules file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

bool Rules::is_neutral(const std::string& colour_name) const { return contains(neutral_colours, colour_name); }

std::string Rules::kind_of(const Garment& g) const {
  if (!g.colours.empty())
    for (const Kind& k : garment_kinds)
      if (k.category == g.category && contains(k.colours, g.colours[0].name)) return k.kind;
  return g.category;
}

std::string describe_garment(const Garment& g, const Rules& rules) {
  std::string s = "your ";
  if (!g.colours.empty()) s += g.colours[0].name + " ";
  return s + rules.kind_of(g);
}

// ---- scoring ----------------------------------------------------------------------------------

namespace {

struct OutfitColour {
  const Garment* garment;
  const ColourShare* colour;
  double weight;  // garment pixels x colour share
};

const Rules::Harmony& relation(const Rules& rules, bool neutral_a, double hue_a, bool neutral_b, double hue_b) {
  const double d = hue_distance(hue_a, hue_b);
  for (const auto& h : rules.harmony) {
    if (h.condition == "always") return h;
    if (h.condition == "both_neutral" && neutral_a && neutral_b) return h;
    if (h.condition == "one_neutral" && (neutral_a || neutral_b)) return h;
    if (neutral_a || neutral_b) continue;  // hue relations need two chromatic colours
    if (h.condition == "hue_within" && d <= h.degrees) return h;
    if (h.condition == "hue_near" && std::fabs(d - h.degrees) <= h.tolerance) return h;
  }
  return rules.harmony.back();
}

std::string capitalise(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

void check_recommend_options(const RecommendOptions& opt, const Rules& rules) {
  if (opt.k < 0) throw std::invalid_argument("k must be >= 0, got " + std::to_string(opt.k));
  if (!opt.style.empty() && !contains(rules.styles, opt.style))
    throw std::invalid_argument("unknown style '" + opt.style + "' (known: " + join(rules.styles, ", ") + ")");
  if (!opt.occasion.empty() && !rules.occasions.count(opt.occasion)) {
    std::vector<std::string> known;
    for (const auto& [o, s] : rules.occasions) known.push_back(o);
    throw std::invalid_argument("unknown occasion '" + opt.occasion + "' (known: " + join(known, ", ") + ")");
  }
  if (!opt.season.empty() && !contains(rules.seasons, opt.season))
    throw std::invalid_argument("unknown season '" + opt.season + "' (known: " + join(rules.seasons, ", ") + ")");
}

std::vector<Recommendation> recommend(const PersonOutfit& outfit, const std::vector<CatalogItem>& items,
                                      const RecommendOptions& opt, const Rules& rules) {
  try {
    check_recommend_options(opt, rules);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("recommend: ") + e.what());
  }
  if (opt.k == 0) return {};
  const int per_category = opt.max_per_category >= 0 ? opt.max_per_category : rules.max_per_category;

  // What the outfit has.
  std::set<std::string> slots, categories;
  for (const Garment& g : outfit.garments) slots.insert(g.slot), categories.insert(g.category);

  // Fired missing-slot rules.
  std::vector<const Rules::Missing*> missing;
  for (const auto& m : rules.missing) {
    if (slots.count(m.slot)) continue;
    if (std::any_of(m.unless_any.begin(), m.unless_any.end(), [&](const std::string& s) { return slots.count(s) > 0; }))
      continue;
    missing.push_back(&m);
  }
  // Fired pairing rules, with the garment that fired each (the largest matching one).
  struct Fired {
    const Rules::Pairing* rule;
    const Garment* garment;
  };
  std::vector<Fired> pairings;
  for (const auto& p : rules.pairings) {
    const Garment* best = nullptr;
    for (const Garment& g : outfit.garments) {
      // A rule for a category ("pants") applies only when no finer kind ("jeans") was recognised.
      const std::string kind = rules.kind_of(g);
      const bool match = kind == p.when || g.slot == p.when || (g.category == p.when && kind == g.category);
      if (match && (!best || g.pixels > best->pixels)) best = &g;
    }
    if (best) pairings.push_back({&p, best});
  }

  // Outfit colours that count for harmony.
  std::vector<OutfitColour> colours;
  for (const Garment& g : outfit.garments)
    for (const ColourShare& c : g.colours)
      if (c.share >= rules.min_colour_share)
        colours.push_back({&g, &c, static_cast<double>(g.pixels) * c.share});

  // Style target: requested style, else the occasion's styles, else the styles the garments suggest.
  std::vector<std::string> target;
  std::string style_phrase;
  if (!opt.style.empty()) {
    target = {opt.style};
    style_phrase = replace_all(rules.phrases.at("style_requested"), "{style}", opt.style);
  } else if (!opt.occasion.empty()) {
    target = rules.occasions.at(opt.occasion);
    style_phrase = replace_all(rules.phrases.at("style_occasion"), "{occasion}", opt.occasion);
  } else {
    // Styles suggested by the garments, most frequent first (ties in rules order).
    std::map<std::string, int> votes;
    for (const Garment& g : outfit.garments) {
      auto it = rules.kind_styles.find(rules.kind_of(g));
      if (it != rules.kind_styles.end())
        for (const auto& s : it->second) ++votes[s];
    }
    for (const auto& s : rules.styles)
      if (votes.count(s)) target.push_back(s);
    std::stable_sort(target.begin(), target.end(), [&](const std::string& a, const std::string& b) { return votes[a] > votes[b]; });
    if (!target.empty()) style_phrase = rules.phrases.at("style_inferred");
  }

  std::vector<Recommendation> scored;
  for (const CatalogItem& item : items) {
    // Slots already filled, conflicting slots, accessories already worn, price.
    if (contains(rules.exclusive_slots, item.slot) && slots.count(item.slot)) continue;
    auto conflict = rules.slot_conflicts.find(item.slot);
    if (conflict != rules.slot_conflicts.end() &&
        std::any_of(conflict->second.begin(), conflict->second.end(), [&](const std::string& s) { return slots.count(s) > 0; }))
      continue;
    if (item.slot == "accessory" && categories.count(item.category)) continue;
    if (opt.max_price > 0 && item.price > opt.max_price) continue;
    // A season asked for: items not made for it (nor for all seasons) are not suggested at all (a
    // 5 % factor let summer sandals lead a winter request).
    if (!opt.season.empty() && !item.fits_season(opt.season)) continue;

    Recommendation rec;
    rec.item = item;
    // complement: the best of the fired rules that apply to this item, else the open-slot score
    struct Clause {
      double score;
      std::string text;
    };
    std::vector<Clause> complement;
    for (const auto* m : missing)
      if (m->slot == item.slot) {
        complement.push_back({m->score, m->reason});
        rec.rules.push_back(m->id);
      }
    for (const auto& f : pairings)
      if (contains(f.rule->suggest, item.category)) {
        complement.push_back({f.rule->score, replace_all(f.rule->reason, "{garment}", describe_garment(*f.garment, rules))});
        rec.rules.push_back(f.rule->id);
      }
    std::stable_sort(complement.begin(), complement.end(), [](const Clause& a, const Clause& b) { return a.score > b.score; });
    // Rules that agree reinforce each other (a missing slot the garments also call for beats either
    // alone): noisy-OR, 1 - prod(1 - score).
    double miss = 1.0;
    for (const Clause& c : complement) miss *= 1.0 - c.score;
    double comp = 1.0 - miss;
    if (complement.empty()) {
      auto it = rules.open_slot_score.find(item.slot);
      comp = it != rules.open_slot_score.end() ? it->second : rules.open_slot_score.at("default");
    }
    rec.factors["complement"] = comp;

    // colour harmony of the item's primary colour with the outfit's colours
    std::string colour_clause;
    if (!colours.empty()) {
      RGB8 rgb;
      try {
        rgb = hex_to_rgb(item.colour_hex);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("recommend: catalogue item " + item.sku + ": " + e.what());
      }
      const ColourShare ic = describe_colour(rgb);
      const bool item_neutral = rules.is_neutral(ic.name) || rules.is_neutral(item.colour_name);
      double sum = 0, wsum = 0, best_key = -1;
      const Rules::Harmony* best_rel = nullptr;
      const OutfitColour* best_oc = nullptr;
      for (const OutfitColour& oc : colours) {
        const Rules::Harmony& rel = relation(rules, item_neutral, ic.hue, rules.is_neutral(oc.colour->name), oc.colour->hue);
        sum += rel.score * oc.weight;
        wsum += oc.weight;
        // the garment colour the reason names: the largest weight x harmony, clashes never named
        const double key = rel.condition == "always" ? -1 : rel.score * oc.weight;
        if (key > best_key) best_key = key, best_rel = &rel, best_oc = &oc;
      }
      rec.factors["colour"] = wsum > 0 ? sum / wsum : 0.0;
      if (best_rel && best_rel->condition != "always") {
        rec.rules.push_back(best_rel->id);
        const bool plural = contains(rules.plural_categories, item.category);
        const std::string garment = "your " + best_oc->colour->name + " " + rules.kind_of(*best_oc->garment);
        colour_clause = rules.phrases.at("colour");
        colour_clause = replace_all(colour_clause, "{item}", item.name);
        colour_clause = replace_all(colour_clause, "{pair}", plural ? "pair" : "pairs");
        colour_clause = replace_all(colour_clause, "{garment}", garment);
        colour_clause = replace_all(colour_clause, "{label}", best_rel->label);
      } else {
        rec.rules.push_back(rules.harmony.back().id);
      }
    }

    // style
    std::string style_clause;
    if (!target.empty()) {
      double best = 0;
      std::string best_style = target[0];
      for (const auto& t : target)
        for (const auto& s : item.styles) {
          auto row = rules.style_affinity.find(t);
          if (row == rules.style_affinity.end()) continue;
          auto v = row->second.find(s);
          const double a = v != row->second.end() ? v->second : 0.0;
          if (a > best) best = a, best_style = t;
        }
      rec.factors["style"] = best;
      if (best >= 0.999) style_clause = replace_all(style_phrase, "{style}", best_style);
    }

    // season
    std::string season_clause;
    if (!opt.season.empty()) {  // the item fits (others were left out above)
      rec.factors["season"] = 1.0;
      season_clause = replace_all(rules.phrases.at("season"), "{season}", opt.season);
    }

    rec.factors["popularity"] = std::clamp(item.popularity / 100.0, 0.0, 1.0);

    // weighted mean over the factors that apply
    const std::map<std::string, double> weight = {{"complement", rules.weights.complement},
                                                  {"colour", rules.weights.colour},
                                                  {"style", rules.weights.style},
                                                  {"season", rules.weights.season},
                                                  {"popularity", rules.weights.popularity}};
    double num = 0, den = 0;
    for (const auto& [f, v] : rec.factors) num += weight.at(f) * v, den += weight.at(f);
    rec.score = den > 0 ? num / den : 0.0;

    // the sentence
    std::vector<std::string> clauses;
    if (!colour_clause.empty()) clauses.push_back(colour_clause);
    for (size_t i = 0; i < complement.size() && i < 2; ++i)
      if (std::find(clauses.begin(), clauses.end(), complement[i].text) == clauses.end())
        clauses.push_back(complement[i].text);
    if (!style_clause.empty()) clauses.push_back(style_clause);
    if (!season_clause.empty()) clauses.push_back(season_clause);
    if (item.popularity >= rules.popular_threshold) clauses.push_back(rules.phrases.at("popular"));
    std::string sentence;
    if (colour_clause.empty()) sentence = item.name + (clauses.empty() ? "" : ": ");
    sentence += join(clauses, "; ");
    rec.reason = capitalise(sentence) + ".";
    scored.push_back(std::move(rec));
  }

  std::stable_sort(scored.begin(), scored.end(), [](const Recommendation& a, const Recommendation& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.item.id < b.item.id;
  });
  std::vector<Recommendation> out;
  std::map<std::string, int> taken;
  for (auto& rec : scored) {
    if (static_cast<int>(out.size()) >= opt.k) break;
    if (per_category > 0 && taken[rec.item.category] >= per_category) continue;
    ++taken[rec.item.category];
    out.push_back(std::move(rec));
  }
  return out;
}

std::vector<Recommendation> recommend(const PersonOutfit& outfit, const Catalog& catalog, const RecommendOptions& opt,
                                      const Rules& rules) {
  return recommend(outfit, catalog.items(), opt, rules);
}

}  // namespace m2fp
