// tests/outfit/test_recommend.cpp: rules.json, scoring and reasons of the recommender, JSON output.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "outfit/catalog.h"
#include "outfit/outfit_json.h"
#include "outfit/recommend.h"
#include "outfit_test_util.h"

namespace m2fp {
namespace {

const Rules& rules() {
  static const Rules r = Rules::load(test::data_file("rules.json"));
  return r;
}
const std::vector<CatalogItem>& seed_items() {
  static const std::vector<CatalogItem> items = Catalog::open_or_create(":memory:", test::data_file("seed_catalog.csv")).items();
  return items;
}

Garment garment(const std::string& category, const std::string& slot, const std::string& hex, int64_t pixels) {
  Garment g;
  g.category = category;
  g.slot = slot;
  g.pixels = pixels;
  g.share_of_person = pixels / 10000.0;
  ColourShare c = describe_colour(hex_to_rgb(hex));
  c.pixels = pixels;
  g.colours.push_back(c);
  return g;
}

PersonOutfit outfit(std::vector<Garment> gs) {
  PersonOutfit p;
  p.person = 0;
  p.score = 0.95f;
  p.area = 10000;
  p.bbox = {10, 5, 90, 200};
  p.garments = std::move(gs);
  return p;
}

// A white top with blue jeans, nothing on the feet.
PersonOutfit top_and_jeans() {
  return outfit({garment("top", "top", "#F8F8F8", 2400), garment("pants", "bottom", "#2F5DA8", 2600)});
}

CatalogItem item(int64_t id, const std::string& category, const std::string& slot, const std::string& colour,
                 const std::string& hex, std::vector<std::string> styles = {"casual"}, double popularity = 50) {
  CatalogItem it;
  it.id = id;
  it.sku = "T-" + std::to_string(id);
  it.name = colour + " " + category;
  it.category = category;
  it.slot = slot;
  it.colour_name = colour;
  it.colour_hex = hex;
  it.colours = {colour};
  it.styles = std::move(styles);
  it.seasons = {"all"};
  it.price = 50;
  it.popularity = popularity;
  return it;
}

void print(const std::vector<Recommendation>& recs, const char* label) {
  std::printf("  %s:\n", label);
  for (const auto& r : recs)
    std::printf("    %.4f %-8s %-10s %s\n", r.score, r.item.sku.c_str(), r.item.category.c_str(), r.reason.c_str());
}

TEST(Rules, ShippedRulesLoad) {
  const Rules& r = rules();
  EXPECT_FALSE(r.missing.empty());
  EXPECT_FALSE(r.pairings.empty());
  EXPECT_EQ(r.harmony.back().condition, "always");
  EXPECT_EQ(r.styles, (std::vector<std::string>{"casual", "business", "street", "sport", "formal"}));
  EXPECT_TRUE(r.is_neutral("navy"));
  EXPECT_FALSE(r.is_neutral("red"));
  EXPECT_EQ(r.kind_of(garment("pants", "bottom", "#2F5DA8", 10)), "jeans");
  EXPECT_EQ(r.kind_of(garment("pants", "bottom", "#36454F", 10)), "trousers");
  EXPECT_EQ(r.kind_of(garment("pants", "bottom", "#D8C3A5", 10)), "chinos");
  EXPECT_EQ(r.kind_of(garment("pants", "bottom", "#C8102E", 10)), "pants");
  EXPECT_EQ(r.kind_of(garment("dress", "one_piece", "#C8102E", 10)), "dress");
  EXPECT_EQ(describe_garment(garment("pants", "bottom", "#2F5DA8", 10), r), "your blue jeans");
  // Every category the pairing rules suggest exists in the seed catalogue.
  std::set<std::string> cats;
  for (const auto& it : seed_items()) cats.insert(it.category);
  for (const auto& p : r.pairings)
    for (const auto& c : p.suggest) EXPECT_TRUE(cats.count(c)) << p.id << " suggests unknown category " << c;
}

TEST(Rules, BrokenRulesNameTheKey) {
  nlohmann::json j = nlohmann::json::parse(R"({"x": 1})");
  std::ifstream in(test::data_file("rules.json"));
  const nlohmann::json good = nlohmann::json::parse(in);
  auto expect_error = [&](nlohmann::json bad, const std::string& needle) {
    try {
      Rules::parse(bad.dump(), "r.json");
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const OutfitError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto bad = good;
  bad["weights"].erase("colour");
  expect_error(bad, "r.json: weights: missing key \"colour\"");
  bad = good;
  bad["pairings"][1]["score"] = 3;
  expect_error(bad, "r.json: pairings[1].score: value 3");
  bad = good;
  bad["missing"][0]["slot"] = "feet";
  expect_error(bad, "missing[0].slot: unknown slot \"feet\"");
  bad = good;
  bad["harmony"].erase(bad["harmony"].size() - 1);
  expect_error(bad, "the last relation must have \"if\": \"always\"");
  bad = good;
  bad["harmony"][0]["if"] = "sometimes";
  expect_error(bad, "harmony[0].if: unknown condition \"sometimes\"");
  bad = good;
  bad["occasions"]["office"] = {"boardroom"};
  expect_error(bad, "occasions.office: unknown style \"boardroom\"");
  bad = good;
  bad["garment_kinds"][0]["colours"] = {"denim"};
  expect_error(bad, "unknown colour name \"denim\"");
  bad = good;
  bad["pairings"][2]["id"] = bad["pairings"][0]["id"];
  expect_error(bad, "duplicate rule id");
  expect_error(nlohmann::json::array(), "top level");
  EXPECT_THROW(Rules::parse("{", "r.json"), OutfitError);
  EXPECT_THROW(Rules::load("/nonexistent/rules.json"), OutfitError);
}

TEST(Recommend, MissingShoesComeFirstWithAReason) {
  RecommendOptions opt;
  opt.k = 6;
  const auto recs = recommend(top_and_jeans(), seed_items(), opt, rules());
  print(recs, "white top + blue jeans, no shoes");
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs[0].item.slot, "shoes");
  EXPECT_NE(recs[0].reason.find("you have no shoes visible"), std::string::npos) << recs[0].reason;
  EXPECT_GT(recs[0].factors.at("complement"), 0.95);  // missing slot + "jeans -> sneakers/boots"
  EXPECT_TRUE(std::find(recs[0].rules.begin(), recs[0].rules.end(), "no_shoes") != recs[0].rules.end());
  // "pants -> shoes" is for pants of no finer kind: jeans have their own rule.
  for (const auto& r : recs)
    EXPECT_TRUE(std::find(r.rules.begin(), r.rules.end(), "pants_shoes") == r.rules.end()) << r.item.sku;
  // Sneakers and boots are what jeans call for: the shoes at the top are among them.
  EXPECT_TRUE(recs[0].item.category == "sneakers" || recs[0].item.category == "boots") << recs[0].item.category;
  EXPECT_NE(recs[0].reason.find("your blue jeans"), std::string::npos) << recs[0].reason;
  for (const auto& r : recs) {
    EXPECT_NE(r.item.slot, "top") << "the top slot is filled";
    EXPECT_NE(r.item.slot, "bottom") << "the bottom slot is filled";
    EXPECT_NE(r.item.slot, "one_piece") << "a one-piece conflicts with top + bottom";
    EXPECT_GE(r.score, 0.0);
    EXPECT_LE(r.score, 1.0);
    EXPECT_EQ(r.reason.back(), '.');
    EXPECT_TRUE(std::isupper(static_cast<unsigned char>(r.reason[0]))) << r.reason;
  }
  // Scores descend.
  for (size_t i = 1; i < recs.size(); ++i) EXPECT_GE(recs[i - 1].score, recs[i].score);
}

TEST(Recommend, KAndPerCategoryLimitsAreRespected) {
  for (int k : {0, 1, 3, 7, 20}) {
    RecommendOptions opt;
    opt.k = k;
    const auto recs = recommend(top_and_jeans(), seed_items(), opt, rules());
    EXPECT_EQ(static_cast<int>(recs.size()), k);
    std::map<std::string, int> per;
    for (const auto& r : recs) ++per[r.item.category];
    for (const auto& [c, n] : per) EXPECT_LE(n, rules().max_per_category) << c;
  }
  RecommendOptions unlimited;
  unlimited.k = 10;
  unlimited.max_per_category = 0;
  const auto recs = recommend(top_and_jeans(), seed_items(), unlimited, rules());
  ASSERT_EQ(recs.size(), 10u);
  std::map<std::string, int> per;
  for (const auto& r : recs) ++per[r.item.category];
  int most = 0;
  for (const auto& [c, n] : per) most = std::max(most, n);
  EXPECT_GT(most, 2);  // without the limit one category takes more than two places
  RecommendOptions neg;
  neg.k = -1;
  EXPECT_THROW(recommend(top_and_jeans(), seed_items(), neg, rules()), std::invalid_argument);
}

TEST(Recommend, ColourHarmonyPrefersNeutralsAndAnalogousHues) {
  // A red top and a red skirt; candidate sneakers that differ only in colour.
  const PersonOutfit o = outfit({garment("top", "top", "#C8102E", 3000), garment("skirt", "bottom", "#C8102E", 2000)});
  const std::vector<CatalogItem> items = {
      item(1, "sneakers", "shoes", "yellow", "#F2D04B"),   // ~63° from red: clash
      item(2, "sneakers", "shoes", "white", "#F8F8F8"),    // neutral
      item(3, "sneakers", "shoes", "orange", "#E8541C"),   // ~20° from red: analogous
      item(4, "sneakers", "shoes", "teal", "#008080"),     // ~168°: complementary
      item(5, "sneakers", "shoes", "purple", "#6A3D9A"),   // ~77°: clash
  };
  RecommendOptions opt;
  opt.k = 5;
  opt.max_per_category = 0;
  const auto recs = recommend(o, items, opt, rules());
  print(recs, "red top + red skirt: sneakers by colour");
  ASSERT_EQ(recs.size(), 5u);
  std::map<std::string, double> colour;
  std::map<std::string, std::vector<std::string>> fired;
  for (const auto& r : recs) colour[r.item.colour_name] = r.factors.at("colour"), fired[r.item.colour_name] = r.rules;
  EXPECT_GT(colour["white"], colour["yellow"]);
  EXPECT_GT(colour["orange"], colour["yellow"]);
  EXPECT_GT(colour["orange"], colour["purple"]);
  EXPECT_GT(colour["teal"], colour["yellow"]);
  auto has = [](const std::vector<std::string>& v, const char* s) { return std::find(v.begin(), v.end(), s) != v.end(); };
  EXPECT_TRUE(has(fired["white"], "neutral"));
  EXPECT_TRUE(has(fired["orange"], "analogous"));
  EXPECT_TRUE(has(fired["teal"], "complementary"));
  EXPECT_TRUE(has(fired["yellow"], "clash"));
  // Ranking follows: the clashing colours come last.
  EXPECT_EQ(recs[3].item.colour_name == "yellow" || recs[3].item.colour_name == "purple", true);
  EXPECT_EQ(recs[4].item.colour_name == "yellow" || recs[4].item.colour_name == "purple", true);
  // The neutral's reason names the garment it pairs with.
  for (const auto& r : recs)
    if (r.item.colour_name == "white") {
      EXPECT_NE(r.reason.find("pair with your red top (neutral)"), std::string::npos) << r.reason;
    }
}

TEST(Recommend, DeterministicWithTiesBrokenById) {
  const auto a = recommend(top_and_jeans(), seed_items(), {"", "", "", 12}, rules());
  const auto b = recommend(top_and_jeans(), seed_items(), {"", "", "", 12}, rules());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].item.id, b[i].item.id);
    EXPECT_EQ(a[i].score, b[i].score);
    EXPECT_EQ(a[i].reason, b[i].reason);
  }
  // Identical items but their ids: lower id first, whatever the input order.
  std::vector<CatalogItem> items = {item(9, "sneakers", "shoes", "white", "#F8F8F8"),
                                    item(4, "sneakers", "shoes", "white", "#F8F8F8"),
                                    item(7, "sneakers", "shoes", "white", "#F8F8F8")};
  RecommendOptions opt;
  opt.k = 3;
  opt.max_per_category = 0;
  const auto recs = recommend(top_and_jeans(), items, opt, rules());
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].item.id, 4);
  EXPECT_EQ(recs[1].item.id, 7);
  EXPECT_EQ(recs[2].item.id, 9);
  EXPECT_EQ(recs[0].score, recs[2].score);
}

TEST(Recommend, DressCallsForHeelsAndNoSeparates) {
  const PersonOutfit o = outfit({garment("dress", "one_piece", "#1F2A44", 5000)});
  RecommendOptions opt;
  opt.k = 8;
  const auto recs = recommend(o, seed_items(), opt, rules());
  print(recs, "navy dress, no shoes");
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs[0].item.slot, "shoes");
  EXPECT_TRUE(recs[0].item.category == "heels" || recs[0].item.category == "sandals" || recs[0].item.category == "flats")
      << recs[0].item.category;
  for (const auto& r : recs) {
    EXPECT_NE(r.item.slot, "top");
    EXPECT_NE(r.item.slot, "bottom");
    EXPECT_NE(r.item.slot, "one_piece");
  }
}

TEST(Recommend, RequestedStyleAndSeasonSteerTheChoice) {
  // Charcoal trousers and a white top, shoes on: business style asked.
  const PersonOutfit o = outfit({garment("top", "top", "#F8F8F8", 2400), garment("pants", "bottom", "#36454F", 2600),
                                 garment("shoes", "shoes", "#111111", 300)});
  RecommendOptions opt;
  opt.k = 5;
  opt.style = "business";
  const auto recs = recommend(o, seed_items(), opt, rules());
  print(recs, "white top + charcoal trousers + black shoes, style business");
  ASSERT_EQ(recs.size(), 5u);
  for (const auto& r : recs) {
    EXPECT_NE(r.item.slot, "shoes");
    EXPECT_TRUE(r.item.has_style("business") || r.item.has_style("formal")) << r.item.name;
  }
  EXPECT_EQ(recs[0].item.category, "blazer");  // "trousers -> blazer" + business
  EXPECT_NE(recs[0].reason.find("fits the business style you asked for"), std::string::npos) << recs[0].reason;

  // Occasion: gym -> sport items first among shoes.
  RecommendOptions gym;
  gym.k = 3;
  gym.occasion = "gym";
  const auto g = recommend(top_and_jeans(), seed_items(), gym, rules());
  print(g, "white top + blue jeans, occasion gym");
  for (const auto& r : g) EXPECT_TRUE(r.item.has_style("sport")) << r.item.name;

  // Season: only items made for winter (or all seasons) are suggested.
  RecommendOptions winter;
  winter.k = 10;
  winter.season = "winter";
  const auto w = recommend(top_and_jeans(), seed_items(), winter, rules());
  EXPECT_EQ(w.size(), 10u);
  for (const auto& r : w) {
    EXPECT_TRUE(r.item.fits_season("winter")) << r.item.name;
    EXPECT_EQ(r.factors.at("season"), 1.0);
  }

  // Unknown values are errors.
  RecommendOptions bad;
  bad.style = "boho";
  EXPECT_THROW(recommend(o, seed_items(), bad, rules()), std::invalid_argument);
  bad = {};
  bad.occasion = "funeral";
  EXPECT_THROW(recommend(o, seed_items(), bad, rules()), std::invalid_argument);
  bad = {};
  bad.season = "monsoon";
  EXPECT_THROW(recommend(o, seed_items(), bad, rules()), std::invalid_argument);
}

// Issue 12 point 9: a navy dress without shoes asked for winter was offered summer sandals first
// (the season weighed 5 %). Out-of-season items are now left out; the same request without a
// season still ranks sandals, so the test shows the season is what removes them.
TEST(Recommend, AnOutOfSeasonItemIsNeverSuggested) {
  const PersonOutfit dress = outfit({garment("dress", "one_piece", "#1F2A44", 5000)});
  RecommendOptions any;
  any.k = 8;
  const auto all_year = recommend(dress, seed_items(), any, rules());
  bool summer_only = false;
  for (const auto& r : all_year) summer_only = summer_only || !r.item.fits_season("winter");
  EXPECT_TRUE(summer_only) << "the seed catalogue should offer summer-only shoes without a season";

  for (const char* season : {"winter", "summer", "spring", "autumn"}) {
    RecommendOptions opt = any;
    opt.season = season;
    const auto recs = recommend(dress, seed_items(), opt, rules());
    print(recs, (std::string("navy dress, no shoes, season ") + season).c_str());
    ASSERT_FALSE(recs.empty()) << season;
    for (const auto& r : recs) {
      EXPECT_TRUE(r.item.fits_season(season)) << season << ": " << r.item.name;
      EXPECT_NE(r.reason.find(std::string("made for ") + season), std::string::npos) << r.reason;
    }
    if (std::string(season) == "winter") EXPECT_NE(recs[0].item.category, "sandals") << recs[0].item.name;
  }
}

TEST(Recommend, AnEmptyOutfitGetsTheBasicsAndPriceLimitsHold) {
  RecommendOptions opt;
  opt.k = 6;
  opt.max_price = 40;
  const auto recs = recommend(outfit({}), seed_items(), opt, rules());
  print(recs, "nothing detected, max price 40");
  ASSERT_EQ(recs.size(), 6u);
  std::set<std::string> slots;
  for (const auto& r : recs) {
    slots.insert(r.item.slot);
    EXPECT_LE(r.item.price, 40);
    EXPECT_EQ(r.factors.count("colour"), 0u);  // no colours detected: factor left out
    EXPECT_EQ(r.reason.rfind(r.item.name + ": ", 0), 0u) << r.reason;
  }
  EXPECT_TRUE(slots.count("shoes") || slots.count("top") || slots.count("bottom"));
  EXPECT_FALSE(slots.count("accessory"));
}

TEST(Recommend, CatalogOverloadAndJson) {
  Catalog cat = Catalog::open_or_create(":memory:", test::data_file("seed_catalog.csv"));
  const PersonOutfit o = top_and_jeans();
  RecommendOptions opt;
  opt.k = 3;
  const auto recs = recommend(o, cat, opt, rules());
  const auto direct = recommend(o, seed_items(), opt, rules());
  ASSERT_EQ(recs.size(), 3u);
  for (size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(recs[i].item.sku, direct[i].item.sku);
  const nlohmann::json j = outfit_advice_json(o, recs);
  std::printf("  sample advice JSON:\n%s\n", j.dump(2).c_str());
  ASSERT_EQ(j["garments"].size(), 2u);
  EXPECT_EQ(j["garments"][0]["category"], "top");
  EXPECT_EQ(j["garments"][0]["colours"][0]["name"], "white");
  EXPECT_EQ(j["garments"][1]["colours"][0]["hex"], "#2F5DA8");
  ASSERT_EQ(j["recommendations"].size(), 3u);
  EXPECT_EQ(j["recommendations"][0]["item"]["sku"], recs[0].item.sku);
  EXPECT_EQ(j["recommendations"][0]["reason"], recs[0].reason);
  EXPECT_TRUE(j["recommendations"][0]["factors"].contains("complement"));
  EXPECT_TRUE(j["recommendations"][0]["rules"].is_array());
  // JSON round trip through text is stable.
  EXPECT_EQ(nlohmann::json::parse(j.dump()), j);
}

}  // namespace
}  // namespace m2fp
