// tests/outfit/test_garments.cpp: the label -> garment table and per-person garment extraction on
// hand-built parsings (CIHP two persons, LIP single person).
#include <gtest/gtest.h>

#include <cstdio>

#include "outfit/garments.h"
#include "outfit/outfit_json.h"
#include "outfit_test_util.h"

namespace m2fp {
namespace {

using test::Canvas;

GarmentTable table() { return GarmentTable::load(test::data_file("garments.json")); }

// The canvases are tiny: accept garments from 8 pixels (the default, 64, suits photos).
GarmentOptions small_opts() {
  GarmentOptions o;
  o.min_pixels = 8;
  return o;
}

const Garment* find(const PersonOutfit& p, const std::string& category) {
  for (const auto& g : p.garments)
    if (g.category == category) return &g;
  return nullptr;
}

TEST(GarmentTable, KnowsEveryCihpAndLipClass) {
  const GarmentTable t = table();
  for (const auto& n : test::cihp_classes()) EXPECT_TRUE(t.known(n)) << "CIHP " << n;
  for (const auto& n : test::lip_classes()) EXPECT_TRUE(t.known(n)) << "LIP " << n;
  ASSERT_NE(t.lookup("UpperClothes"), nullptr);
  ASSERT_NE(t.lookup("Upper-clothes"), nullptr);
  EXPECT_EQ(t.lookup("UpperClothes")->category, "top");
  EXPECT_EQ(t.lookup("upper clothes")->slot, "top");
  EXPECT_EQ(t.lookup("Coat")->slot, "outerwear");
  EXPECT_EQ(t.lookup("Dress")->slot, "one_piece");
  EXPECT_EQ(t.lookup("Jumpsuits")->slot, "one_piece");
  EXPECT_EQ(t.lookup("Pants")->slot, "bottom");
  EXPECT_EQ(t.lookup("Skirt")->slot, "bottom");
  EXPECT_EQ(t.lookup("Left-shoe")->category, "shoes");
  EXPECT_EQ(t.lookup("Right-shoe")->category, "shoes");
  for (const char* acc : {"Hat", "Glove", "Sunglasses", "Scarf", "Socks"}) EXPECT_EQ(t.lookup(acc)->slot, "accessory") << acc;
  for (const char* body : {"Background", "Hair", "Face", "Torso-skin", "Left-arm", "Right-leg", "Human"}) {
    EXPECT_EQ(t.lookup(body), nullptr) << body;
    EXPECT_TRUE(t.known(body)) << body;
  }
  EXPECT_FALSE(t.known("Tail"));
  EXPECT_EQ(t.slot_of("shoes"), "shoes");
  EXPECT_EQ(t.slot_of("cape"), "");
}

TEST(GarmentTable, BadTablesGiveClearErrors) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      GarmentTable::parse(text, "g.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const OutfitError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("g.json"), std::string::npos) << e.what();
    }
  };
  expect_error("{", "not valid JSON");
  expect_error("[]", "\"garments\" array");
  expect_error(R"({"garments": [{"labels": ["Hat"], "category": "hat", "slot": "head"}]})", "unknown slot \"head\"");
  expect_error(R"({"garments": [{"labels": [], "category": "hat", "slot": "accessory"}]})", "garments[0]");
  expect_error(R"({"garments": [{"labels": ["Hat"], "category": "hat", "slot": "accessory"},
                                {"labels": ["hat"], "category": "cap", "slot": "accessory"}]})", "listed twice");
  expect_error(R"({"garments": [{"labels": ["Pants"], "category": "x", "slot": "bottom"},
                                {"labels": ["Skirt"], "category": "x", "slot": "top"}]})", "already has slot");
  EXPECT_THROW(GarmentTable::load("/nonexistent/garments.json"), OutfitError);
}

// Two persons side by side on a 41 x 33 canvas (odd sizes on purpose):
//   person 1 (x 0..19): red top rows 4..13, blue pants rows 14..25, black left/right shoes rows 26..29,
//                       face and arms (not garments)
//   person 2 (x 21..40): green dress rows 6..25, beige hat rows 2..5, no shoes
Canvas two_persons() {
  Canvas cv(41, 33, test::cihp_classes());
  cv.add_person({0, 0, 20, 30}, 0.97f);
  cv.add_person({21, 2, 41, 26}, 0.88f);
  cv.person(0, 0, 20, 30, 1);
  cv.person(21, 2, 41, 26, 2);
  cv.rect(6, 0, 14, 4, "Face", 1, {224, 172, 150});
  cv.rect(2, 4, 18, 14, "UpperClothes", 1, {200, 16, 46});
  cv.rect(0, 4, 2, 12, "Left-arm", 1, {224, 172, 150});
  cv.rect(3, 14, 17, 26, "Pants", 1, {47, 93, 168});
  cv.rect(3, 26, 9, 30, "Left-shoe", 1, {17, 17, 17});
  cv.rect(11, 26, 17, 30, "Right-shoe", 1, {17, 17, 17});
  cv.rect(25, 2, 37, 6, "Hat", 2, {216, 195, 165});
  cv.rect(23, 6, 39, 26, "Dress", 2, {46, 125, 50});
  return cv;
}

TEST(Garments, TwoPersonsHandBuilt) {
  Canvas cv = two_persons();
  const auto outfits = extract_outfits(cv.parsing, cv.image, table(), small_opts());
  ASSERT_EQ(outfits.size(), 2u);

  const PersonOutfit& a = outfits[0];
  EXPECT_EQ(a.person, 0);
  EXPECT_FLOAT_EQ(a.score, 0.97f);
  EXPECT_EQ(a.area, 20 * 30);
  ASSERT_EQ(a.garments.size(), 3u);
  EXPECT_EQ(a.garments[0].category, "top");  // slot order: top, bottom, ..., shoes
  EXPECT_EQ(a.garments[1].category, "pants");
  EXPECT_EQ(a.garments[2].category, "shoes");
  const Garment* top = find(a, "top");
  EXPECT_EQ(top->pixels, 16 * 10);
  EXPECT_DOUBLE_EQ(top->share_of_person, 160.0 / 600.0);
  EXPECT_EQ(top->bbox.x0, 2);
  EXPECT_EQ(top->bbox.y0, 4);
  EXPECT_EQ(top->bbox.x1, 18);
  EXPECT_EQ(top->bbox.y1, 14);
  ASSERT_EQ(top->colours.size(), 1u);
  EXPECT_EQ(top->colours[0].name, "red");
  EXPECT_EQ(top->colours[0].hex, "#C8102E");
  EXPECT_DOUBLE_EQ(top->colours[0].share, 1.0);
  EXPECT_EQ(find(a, "pants")->colours[0].name, "blue");
  const Garment* shoes = find(a, "shoes");
  EXPECT_EQ(shoes->pixels, 2 * 6 * 4);  // left + right merged
  EXPECT_EQ(shoes->slot, "shoes");
  EXPECT_EQ(shoes->labels, (std::vector<std::string>{"Left-shoe", "Right-shoe"}));
  EXPECT_EQ(shoes->bbox.x0, 3);
  EXPECT_EQ(shoes->bbox.x1, 17);
  EXPECT_EQ(shoes->colours[0].name, "black");
  EXPECT_TRUE(a.has_slot("bottom"));
  EXPECT_FALSE(a.has_slot("one_piece"));

  const PersonOutfit& b = outfits[1];
  EXPECT_EQ(b.person, 1);
  EXPECT_EQ(b.area, 20 * 24);
  ASSERT_EQ(b.garments.size(), 2u);
  EXPECT_EQ(b.garments[0].category, "dress");
  EXPECT_EQ(b.garments[0].slot, "one_piece");
  EXPECT_EQ(b.garments[0].colours[0].name, "green");
  EXPECT_EQ(b.garments[1].category, "hat");
  EXPECT_EQ(b.garments[1].colours[0].name, "beige");
  EXPECT_FALSE(b.has_slot("shoes"));
  for (const auto& g : b.garments) EXPECT_EQ(g.person, 1);

  std::printf("  person 0 as JSON: %s\n", to_json(a).dump().c_str());
}

TEST(Garments, PixelsOutsidePersonMasksGoToTheBoxThatHoldsThem) {
  Canvas cv = two_persons();
  // A strip of person 1's pants loses its person mark (inside person 1's box only), and a stray top
  // patch lies outside every box: the first is kept for person 0, the second is dropped.
  cv.person(3, 20, 17, 26, 0);
  cv.rect(19, 28, 21, 33, "UpperClothes", 0, {255, 255, 0});
  cv.parsing.persons[0].bbox = {0, 0, 20, 27};
  const auto outfits = extract_outfits(cv.parsing, cv.image, table(), small_opts());
  EXPECT_EQ(find(outfits[0], "pants")->pixels, 14 * 12);
  EXPECT_EQ(find(outfits[0], "top")->pixels, 160);  // the stray yellow patch is nobody's
  EXPECT_EQ(find(outfits[0], "top")->colours.size(), 1u);
  EXPECT_EQ(find(outfits[1], "top"), nullptr);
}

TEST(Garments, SmallGarmentsAreDroppedAndEdgesDoNotTintColours) {
  Canvas cv = two_persons();
  // 6 pixels of sunglasses: noise.
  cv.rect(8, 1, 11, 3, "Sunglasses", 1, {0, 0, 0});
  // A one-pixel anti-aliased rim of grey around the pants: interior pixels only for colour.
  cv.rect(2, 14, 3, 26, "Pants", 1, {110, 110, 110});
  cv.rect(17, 14, 18, 26, "Pants", 1, {110, 110, 110});
  GarmentOptions opt = small_opts();
  opt.colour.min_share = 0.01;
  auto outfits = extract_outfits(cv.parsing, cv.image, table(), opt);
  EXPECT_EQ(find(outfits[0], "sunglasses"), nullptr);
  ASSERT_EQ(find(outfits[0], "pants")->colours.size(), 1u);
  EXPECT_EQ(find(outfits[0], "pants")->colours[0].name, "blue");
  EXPECT_EQ(find(outfits[0], "pants")->pixels, 16 * 12);
  // With all pixels, the grey rim shows up as a second colour.
  opt.interior_pixels_only = false;
  outfits = extract_outfits(cv.parsing, cv.image, table(), opt);
  ASSERT_EQ(find(outfits[0], "pants")->colours.size(), 2u);
  EXPECT_EQ(find(outfits[0], "pants")->colours[1].name, "grey");
  // Lower the size limit: the sunglasses appear.
  opt.min_pixels = 4;
  opt.min_share_of_person = 0;
  outfits = extract_outfits(cv.parsing, cv.image, table(), opt);
  ASSERT_NE(find(outfits[0], "sunglasses"), nullptr);
  EXPECT_EQ(find(outfits[0], "sunglasses")->pixels, 6);
}

TEST(Garments, SinglePersonLip) {
  Canvas cv(23, 37, test::lip_classes());
  cv.parsing.single_human = true;
  cv.parsing.person_map.clear();
  cv.rect(4, 2, 19, 14, "Upper-clothes", -1, {248, 248, 248});
  cv.rect(5, 14, 18, 30, "Jumpsuits", -1, {31, 42, 68});
  cv.rect(5, 31, 10, 35, "Left-shoe", -1, {111, 78, 55});
  cv.rect(12, 31, 18, 35, "Right-shoe", -1, {111, 78, 55});
  auto outfits = extract_outfits(cv.parsing, cv.image, table(), small_opts());
  ASSERT_EQ(outfits.size(), 1u);
  const PersonOutfit& p = outfits[0];
  EXPECT_EQ(p.area, 15 * 12 + 13 * 16 + 5 * 4 + 6 * 4);
  EXPECT_EQ(p.bbox.x0, 4);
  EXPECT_EQ(p.bbox.y0, 2);
  EXPECT_EQ(p.bbox.x1, 19);
  EXPECT_EQ(p.bbox.y1, 35);
  ASSERT_EQ(p.garments.size(), 3u);
  EXPECT_EQ(p.garments[0].category, "top");
  EXPECT_EQ(p.garments[0].colours[0].name, "white");
  EXPECT_EQ(p.garments[1].category, "jumpsuit");
  EXPECT_EQ(p.garments[1].colours[0].name, "navy");
  EXPECT_EQ(p.garments[2].category, "shoes");
  EXPECT_EQ(p.garments[2].pixels, 44);
  EXPECT_EQ(p.garments[2].colours[0].name, "brown");
  // With the photo-sized default limit (64 pixels) the 44-pixel shoes are noise.
  outfits = extract_outfits(cv.parsing, cv.image, table());
  EXPECT_EQ(outfits[0].garments.size(), 2u);
  EXPECT_FALSE(outfits[0].has_slot("shoes"));
}

TEST(Garments, MismatchedInputsAreErrorsNotCrashes) {
  auto expect_error = [](const Parsing& p, const Image& im, const std::string& needle) {
    try {
      extract_outfits(p, im, table());
      ADD_FAILURE() << "no error, expected: " << needle;
    } catch (const OutfitError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Canvas cv = two_persons();
  Image small = cv.image;
  small.width = 40;
  expect_error(cv.parsing, small, "image is 40x33");
  Image short_buf = cv.image;
  short_buf.rgb.resize(10);
  expect_error(cv.parsing, short_buf, "image buffer");
  Parsing p = cv.parsing;
  p.person_map.resize(5);
  expect_error(p, cv.image, "person map has 5 entries");
  p = cv.parsing;
  p.person_map[7] = 9;
  expect_error(p, cv.image, "person map value 9");
  p = cv.parsing;
  p.labels[100] = 77;
  expect_error(p, cv.image, "label 77 at pixel (18, 2)");
  p = cv.parsing;
  p.labels.pop_back();
  expect_error(p, cv.image, "label map has");
  p = cv.parsing;
  p.width = 0;
  expect_error(p, cv.image, "no size");
  p = cv.parsing;
  p.class_names.clear();
  expect_error(p, cv.image, "no class names");
}

}  // namespace
}  // namespace m2fp
