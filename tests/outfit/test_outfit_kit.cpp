// tests/outfit/test_outfit_kit.cpp: the front door (data folder, kit, one-call analysis) on a
// hand-built two-person parsing with shaded, textured pixels, and its JSON.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>

#include "outfit/outfit.h"
#include "outfit_test_util.h"

namespace m2fp {
namespace {

using test::Canvas;

TEST(OutfitKit, FindsTheDataFolder) {
  const char* old = std::getenv("M2FP_OUTFIT_DATA");
  const std::string saved = old ? old : "";
  unsetenv("M2FP_OUTFIT_DATA");
  EXPECT_EQ(outfit_data_dir(), test::data_dir());
  const OutfitKit kit = OutfitKit::load();
  EXPECT_NE(kit.garments.lookup("Pants"), nullptr);
  EXPECT_FALSE(kit.rules.pairings.empty());
  EXPECT_EQ(kit.seed_catalog(), test::data_file("seed_catalog.csv"));
  setenv("M2FP_OUTFIT_DATA", "/nonexistent/outfit/data", 1);
  EXPECT_EQ(outfit_data_dir(), "/nonexistent/outfit/data");
  try {
    OutfitKit::load();
    ADD_FAILURE() << "loaded from a missing folder";
  } catch (const OutfitError& e) {
    EXPECT_NE(std::string(e.what()).find("M2FP_OUTFIT_DATA"), std::string::npos) << e.what();
  }
  if (old) setenv("M2FP_OUTFIT_DATA", saved.c_str(), 1);
  else unsetenv("M2FP_OUTFIT_DATA");
}

// Paints a rectangle with a vertical light fall-off (folds and shade) and +-4 noise, as a photo would.
void shaded_rect(Canvas& cv, int x0, int y0, int x1, int y1, const std::string& cls, int person, RGB8 c) {
  cv.rect(x0, y0, x1, y1, cls, person, c);
  uint32_t s = 777u + x0 * 31u + y0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      // light between 0.86 and 1.0, folds every 7th row
      const double light = 0.93 + 0.07 * std::cos((x - x0) * 0.7) * ((y - y0) % 7 == 0 ? -1.0 : 1.0);
      uint8_t* p = &cv.image.rgb[3 * (static_cast<size_t>(y) * cv.parsing.width + x)];
      for (int ch = 0; ch < 3; ++ch) {
        s = s * 1664525u + 1013904223u;
        const int noise = static_cast<int>((s >> 24) % 9) - 4;
        p[ch] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(p[ch] * light)) + noise, 0, 255));
      }
    }
}

TEST(OutfitKit, AnalysesTwoPersonsIntoAdvice) {
  // 161 x 203: person 1 wears a white shirt with navy stripes and blue jeans (no shoes); person 2 a
  // burgundy dress and black shoes.
  Canvas cv(161, 203, test::cihp_classes(), {90, 140, 60});
  cv.add_person({4, 4, 78, 200}, 0.96f);
  cv.add_person({84, 10, 158, 200}, 0.91f);
  cv.person(4, 4, 78, 200, 1);
  cv.person(84, 10, 158, 200, 2);
  cv.rect(28, 4, 54, 30, "Face", 1, {225, 180, 160});
  shaded_rect(cv, 10, 30, 72, 100, "UpperClothes", 1, {245, 245, 245});
  for (int y = 32; y < 100; y += 8) cv.rect(10, y, 72, y + 3, "UpperClothes", 1, {31, 42, 68});  // stripes
  shaded_rect(cv, 14, 100, 68, 190, "Pants", 1, {60, 95, 160});
  shaded_rect(cv, 92, 40, 150, 170, "Dress", 2, {128, 0, 32});
  shaded_rect(cv, 96, 180, 118, 196, "Left-shoe", 2, {20, 20, 20});
  shaded_rect(cv, 124, 180, 146, 196, "Right-shoe", 2, {20, 20, 20});

  const OutfitKit kit = OutfitKit::load(test::data_dir());
  Catalog cat = Catalog::open_or_create(":memory:", kit.seed_catalog());
  RecommendOptions opt;
  opt.k = 4;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<PersonOutfit> persons = extract_outfits(cv.parsing, cv.image, kit.garments, kit.garment_options);
  const std::vector<CatalogItem> items = cat.items();
  const nlohmann::json j = advise_outfits(persons, &items, opt, kit.rules);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  extract_outfits + advise_outfits (161x203, 2 persons, %lld catalogue items): %.1f ms\n",
              static_cast<long long>(cat.count()), ms);
  std::printf("%s\n", j.dump(2).c_str());

  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  const auto& a = j[0];
  ASSERT_EQ(a["garments"].size(), 2u);
  EXPECT_EQ(a["garments"][0]["category"], "top");
  // the striped shirt: white first, navy second (stripes 3 of every 8 rows)
  const auto& shirt = a["garments"][0]["colours"];
  ASSERT_GE(shirt.size(), 2u);
  EXPECT_EQ(shirt[0]["name"], "white");
  EXPECT_EQ(shirt[1]["name"], "navy");
  EXPECT_GT(shirt[1]["share"].get<double>(), 0.2);
  EXPECT_EQ(a["garments"][1]["colours"][0]["name"], "blue");
  ASSERT_EQ(a["recommendations"].size(), 4u);
  EXPECT_EQ(a["recommendations"][0]["item"]["slot"], "shoes");
  EXPECT_NE(a["recommendations"][0]["reason"].get<std::string>().find("no shoes"), std::string::npos);

  const auto& b = j[1];
  ASSERT_EQ(b["garments"].size(), 2u);
  EXPECT_EQ(b["garments"][0]["category"], "dress");
  EXPECT_EQ(b["garments"][0]["colours"][0]["name"], "burgundy");
  EXPECT_EQ(b["garments"][1]["category"], "shoes");
  EXPECT_EQ(b["garments"][1]["labels"], (nlohmann::json{"Left-shoe", "Right-shoe"}));
  for (const auto& r : b["recommendations"]) {
    EXPECT_NE(r["item"]["slot"], "shoes");
    EXPECT_NE(r["item"]["slot"], "one_piece");
  }
  // Without a catalogue: garments only.
  const nlohmann::json g = advise_outfits(persons, nullptr, opt, kit.rules);
  EXPECT_FALSE(g[0].contains("recommendations"));
  EXPECT_EQ(g[0]["garments"], a["garments"]);
}

TEST(OutfitKit, PhotoSizedParsingIsFast) {
  // 1333 x 1000, two persons, most pixels garments: extraction + colours must take well under a second.
  Canvas cv(1333, 1000, test::cihp_classes());
  cv.add_person({0, 0, 660, 1000}, 0.9f);
  cv.add_person({670, 0, 1333, 1000}, 0.9f);
  cv.person(0, 0, 660, 1000, 1);
  cv.person(670, 0, 1333, 1000, 2);
  shaded_rect(cv, 20, 50, 640, 500, "UpperClothes", 1, {200, 16, 46});
  shaded_rect(cv, 40, 500, 620, 950, "Pants", 1, {47, 93, 168});
  shaded_rect(cv, 690, 50, 1310, 950, "Dress", 2, {46, 125, 50});
  const OutfitKit kit = OutfitKit::load(test::data_dir());
  const auto t0 = std::chrono::steady_clock::now();
  const auto outfits = extract_outfits(cv.parsing, cv.image, kit.garments);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  extract_outfits 1333x1000 (%.2f M garment pixels): %.1f ms\n",
              (620.0 * 450 + 580 * 450 + 620 * 900) / 1e6, ms);
  ASSERT_EQ(outfits.size(), 2u);
  EXPECT_EQ(outfits[0].garments[0].colours[0].name, "red");
  EXPECT_EQ(outfits[1].garments[0].colours[0].name, "green");
  EXPECT_LT(ms, 5000.0);  // generous: shared 2-core machine, sanitizer builds
}

}  // namespace
}  // namespace m2fp
