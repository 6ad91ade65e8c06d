// tests/outfit/test_garments.cpp: the label -> garment table and per-person garment extraction on
// hand-built parsings (CIHP two persons, LIP single person).
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
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

// A photo-sized canvas (over a megapixel: the threaded paths) with three overlapping persons,
// garment pixels outside every person mask, ragged garment edges and noisy colours drawn from a
// few hundred values (so the colour conversions repeat, as in photos).
Canvas big_canvas() {
  Canvas cv(1283, 1031, test::cihp_classes());
  uint32_t r = 12345;
  auto next = [&]() { return r = r * 1664525u + 1013904223u; };
  cv.add_person({10, 20, 600, 1000}, 0.9f);
  cv.add_person({500, 0, 1100, 900}, 0.8f);
  cv.add_person({900, 100, 1283, 1031}, 0.7f);
  cv.person(10, 20, 600, 1000, 1);
  cv.person(520, 10, 1100, 880, 2);
  cv.person(900, 120, 1283, 1031, 3);
  const char* cls[] = {"UpperClothes", "Pants", "Coat", "Dress", "Face", "Hat", "Left-shoe", "Right-shoe", "Skirt"};
  for (int k = 0; k < 40; ++k) {
    const int x0 = (int)(next() % 1200), y0 = (int)(next() % 950);
    const int x1 = std::min(1283, x0 + 20 + (int)(next() % 400)), y1 = std::min(1031, y0 + 20 + (int)(next() % 400));
    const RGB8 base{(uint8_t)(next() >> 24), (uint8_t)(next() >> 24), (uint8_t)(next() >> 24)};
    cv.rect(x0, y0, x1, y1, cls[next() % 9], -1, base);
    for (int y = y0; y < y1; ++y)  // noise, and ragged edges that leave some pixels to the background
      for (int x = x0; x < x1; ++x) {
        const size_t i = static_cast<size_t>(y) * cv.parsing.width + x;
        const uint32_t v = next();
        if ((x == x0 || y == y1 - 1) && (v & 1)) cv.parsing.labels[i] = 0;
        cv.image.rgb[3 * i] = (uint8_t)(base.r + ((v >> 8) % 9)), cv.image.rgb[3 * i + 1] = (uint8_t)(base.g + ((v >> 12) % 5));
        cv.image.rgb[3 * i + 2] = (uint8_t)(base.b + ((v >> 16) % 7));
      }
  }
  return cv;
}

// The garments by definition, pixel by pixel in raster order (as extract_outfits computed them
// before it was split over threads): owner person (person map, else the box holding the pixel with
// the nearest centre), pixels, box, classes, and the colours of the same pixel lists.
std::vector<PersonOutfit> reference_outfits(const Parsing& pa, const Image& im, const GarmentTable& t,
                                            const GarmentOptions& opt) {
  const int W = pa.width, H = pa.height, np = (int)pa.persons.size();
  std::vector<std::string> cats;
  std::vector<int> cat_of(pa.class_names.size(), -1);
  for (size_t c = 0; c < pa.class_names.size(); ++c)
    if (const GarmentClass* g = t.lookup(pa.class_names[c])) {
      auto it = std::find(cats.begin(), cats.end(), g->category);
      if (it == cats.end()) cats.push_back(g->category), it = cats.end() - 1;
      cat_of[c] = (int)(it - cats.begin());
    }
  std::vector<int64_t> area(np, 0);
  for (uint8_t pm : pa.person_map)
    if (pm) ++area[pm - 1];
  std::vector<int> owner((size_t)W * H, -1);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const size_t i = (size_t)y * W + x;
      if (cat_of[pa.labels[i]] < 0) continue;
      int p = pa.person_map[i] - 1;
      double best = 1e300;
      for (int k = 0; p < 0 && k < np; ++k) {  // no mask: the nearest box centre among the boxes holding it
        const BBox& b = pa.persons[k].bbox;
        if (x < b.x0 || x >= b.x1 || y < b.y0 || y >= b.y1) continue;
        const double dx = x + 0.5 - 0.5 * (b.x0 + b.x1), dy = y + 0.5 - 0.5 * (b.y0 + b.y1);
        if (dx * dx + dy * dy < best) best = dx * dx + dy * dy, owner[i] = k;
      }
      if (p >= 0) owner[i] = p;
    }
  auto same = [&](size_t i, int x, int y) {
    if (x < 0 || y < 0 || x >= W || y >= H) return true;
    const size_t j = (size_t)y * W + x;
    return owner[j] == owner[i] && cat_of[pa.labels[j]] == cat_of[pa.labels[i]];
  };
  std::vector<PersonOutfit> out(np);
  for (int p = 0; p < np; ++p)
    for (int c = 0; c < (int)cats.size(); ++c) {
      Garment g;
      std::vector<RGB8> all, interior;
      std::vector<bool> seen(pa.class_names.size(), false);
      BBox b{W, H, 0, 0};
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          const size_t i = (size_t)y * W + x;
          if (owner[i] != p || cat_of[pa.labels[i]] != c) continue;
          b = {std::min(b.x0, x), std::min(b.y0, y), std::max(b.x1, x + 1), std::max(b.y1, y + 1)};
          const RGB8 col{im.rgb[3 * i], im.rgb[3 * i + 1], im.rgb[3 * i + 2]};
          all.push_back(col);
          if (same(i, x - 1, y) && same(i, x + 1, y) && same(i, x, y - 1) && same(i, x, y + 1)) interior.push_back(col);
          seen[pa.labels[i]] = true;
        }
      const int64_t n = (int64_t)all.size();
      if (n == 0 || n < opt.min_pixels || (double)n / area[p] < opt.min_share_of_person) continue;
      g.category = cats[c], g.pixels = n, g.bbox = b, g.person = p;
      g.colours = dominant_colours(interior.size() >= 16 && interior.size() * 4 >= all.size() ? interior : all, opt.colour);
      for (size_t k = 0; k < seen.size(); ++k)
        if (seen[k]) g.labels.push_back(pa.class_names[k]);
      out[p].garments.push_back(g);
    }
  return out;
}

// Checks extract_outfits' garments against reference_outfits' on 1, 2 and 3 threads (the colours bit
// for bit); returns the number of garments compared a run.
size_t expect_matches_definition(const Canvas& cv, const GarmentOptions& opt) {
  const GarmentTable t = table();
  const std::vector<PersonOutfit> ref = reference_outfits(cv.parsing, cv.image, t, opt);
  size_t garments = 0;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    const std::vector<PersonOutfit> got = extract_outfits(cv.parsing, cv.image, t, opt);
    EXPECT_EQ(got.size(), ref.size());
    garments = 0;
    for (size_t p = 0; p < ref.size() && p < got.size(); ++p) {
      EXPECT_EQ(got[p].garments.size(), ref[p].garments.size()) << "person " << p << ", " << threads << " threads";
      for (const Garment& r : ref[p].garments) {  // got is sorted by slot, ref by category order
        const Garment* g = find(got[p], r.category);
        EXPECT_NE(g, nullptr) << r.category;
        if (!g) continue;
        EXPECT_EQ(g->pixels, r.pixels) << r.category;
        EXPECT_EQ(std::vector<int>({g->bbox.x0, g->bbox.y0, g->bbox.x1, g->bbox.y1}),
                  std::vector<int>({r.bbox.x0, r.bbox.y0, r.bbox.x1, r.bbox.y1}));
        EXPECT_EQ(g->labels, r.labels);
        EXPECT_EQ(g->colours.size(), r.colours.size()) << r.category;
        for (size_t k = 0; k < r.colours.size() && k < g->colours.size(); ++k) {  // bit for bit
          EXPECT_EQ(g->colours[k].pixels, r.colours[k].pixels);
          EXPECT_EQ(g->colours[k].lab.L, r.colours[k].lab.L);
          EXPECT_EQ(g->colours[k].lab.a, r.colours[k].lab.a);
          EXPECT_EQ(g->colours[k].lab.b, r.colours[k].lab.b);
          EXPECT_EQ(g->colours[k].hex, r.colours[k].hex);
        }
        ++garments;
      }
    }
  }
  omp_set_num_threads(omp_get_num_procs());
  return garments;
}

TEST(Garments, PhotoSizedParsingMatchesTheDefinitionOnAnyThreadCount) {
  EXPECT_GE(expect_matches_definition(big_canvas(), GarmentOptions{}), 10u);
}

// Garments with no person mark at all, on rows that cross many boxes: extract_outfits gives such a
// run's pixels to their persons in spans (cut where a box starts or ends, then halved until both ends
// of a span fall back to one person). Boxes here start and end inside the runs, a box nearer than the
// one around it wins a stretch in the middle of it (the outer one wins on both sides), and boxes with
// one centre tie (the lower index wins): a span filled from its ends alone would get these wrong.
TEST(Garments, PixelsOfNobodyGoToTheNearestBoxAlongLongRuns) {
  Canvas cv(1500, 700, test::cihp_classes());
  cv.add_person({0, 0, 1500, 700}, 0.9f);       // around everything, centre (750, 350)
  cv.add_person({300, 100, 500, 600}, 0.8f);    // nearer than 0 around x = 400
  cv.add_person({1000, 200, 1400, 500}, 0.7f);  // centre (1200, 350)
  cv.add_person({1100, 250, 1300, 450}, 0.6f);  // the same centre: 2 wins the ties
  cv.add_person({650, 300, 851, 401}, 0.5f);    // centre (750.5, 350.5): near 0's
  cv.add_person({700, 0, 800, 700}, 0.4f);      // 0's centre: 0 wins
  uint32_t r = 777;
  auto next = [&]() { return r = r * 1664525u + 1013904223u; };
  const char* cls[] = {"UpperClothes", "Pants", "Coat", "Dress", "Skirt"};
  for (int band = 0; band < 7; ++band) {  // bands of rows across the photo, each one garment class
    const RGB8 base{(uint8_t)(next() >> 24), (uint8_t)(next() >> 24), (uint8_t)(next() >> 24)};
    cv.rect(band == 3 ? 5 : 0, 100 * band, 1500, 100 * band + 100, cls[band % 5], -1, base);
    for (int y = 100 * band; y < 100 * band + 100; ++y)
      for (int x = 0; x < 1500; ++x) {
        const size_t i = static_cast<size_t>(y) * 1500 + x;
        cv.image.rgb[3 * i] = (uint8_t)(base.r + (next() >> 29));
      }
  }
  cv.person(0, 0, 1500, 700, 0);  // no pixel has a person mark
  GarmentOptions opt;
  opt.min_pixels = 1;
  opt.min_share_of_person = 0;
  EXPECT_GE(expect_matches_definition(cv, opt), 15u);
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
