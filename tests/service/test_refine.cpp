// tests/service/test_refine.cpp: the optional refinements (service/refine.h) on hand-made parsings
// with known answers: label map + per-class scores + photo.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/io.h"
#include "outfit/outfit.h"
#include "service/refine.h"
#include "service/session.h"

namespace m2fp::service {
namespace {

const std::vector<std::string> kCihp = {"Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress",
                                        "Coat", "Socks", "Pants", "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm",
                                        "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe", "Human"};
enum { kBg = 0, kHat = 1, kHair = 2, kUpper = 5, kFace = 13 };

struct Case {
  Parsing p;
  Image photo;
  int W = 40, H = 40;
  Case() {
    p.width = W, p.height = H;
    p.class_names = kCihp;
    p.labels.assign((size_t)W * H, 0);
    p.person_map.assign((size_t)W * H, 0);
    p.score_classes = 20;
    p.scores.assign((size_t)20 * W * H, 0);
    p.persons.resize(1);
    photo = Image::blank(W, H, 200, 190, 180);  // bright everywhere
    fill_scores(kBg, 0, 0, W, H, 0.5);
  }
  size_t at(int x, int y) const { return (size_t)y * W + x; }
  void label(int c, int x0, int y0, int x1, int y1) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) p.labels[at(x, y)] = (uint8_t)c;
  }
  void person(int k, int x0, int y0, int x1, int y1) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) p.person_map[at(x, y)] = (uint8_t)k;
  }
  void fill_scores(int c, int x0, int y0, int x1, int y1, double s) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) p.scores[(size_t)c * W * H + at(x, y)] = (uint8_t)std::lround(s * 255);
  }
  void dark(int x0, int y0, int x1, int y1) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        uint8_t* px = photo.rgb.data() + at(x, y) * 3;
        px[0] = 20, px[1] = 25, px[2] = 30;
      }
  }
  int count(int c, int x0, int y0, int x1, int y1) const {
    int n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) n += p.labels[at(x, y)] == c;
    return n;
  }
};

// A person with a bright upper-clothes region and a dark sleeve beside it labelled Background,
// where the model's UpperClothes score (0.45) is within the margin (0.15) of Background's (0.5).
Case dark_sleeve() {
  Case c;
  c.person(1, 5, 5, 26, 35);
  c.label(kUpper, 8, 15, 20, 25);
  c.fill_scores(kUpper, 8, 15, 20, 25, 0.9);
  c.dark(20, 15, 24, 25);
  c.fill_scores(kUpper, 20, 15, 24, 25, 0.45);
  return c;
}

const RefineTable kTable = RefineTable::defaults();

TEST(Refine, DarkSleeveInsideThePersonIsRelabelled) {
  Case c = dark_sleeve();
  const std::vector<RefineChange> ch = refine_parsing(c.p, c.photo, parse_refine("dark"), kTable);
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].name, "dark");
  EXPECT_EQ(ch[0].pixels, 40);
  EXPECT_EQ(ch[0].per_class.at("UpperClothes"), 40);
  EXPECT_EQ(ch[0].per_person.at(0), 40);
  EXPECT_EQ(c.count(kUpper, 20, 15, 24, 25), 40);
  EXPECT_EQ(c.count(kBg, 24, 15, 26, 25), 20);  // bright background beside the sleeve stays
  EXPECT_NEAR(c.p.label_fractions[kUpper], (120.0 + 40) / 1600, 1e-12);
}

TEST(Refine, WithoutTheOptionNothingChanges) {
  Case c = dark_sleeve();
  const std::vector<uint8_t> before = c.p.labels;
  EXPECT_TRUE(refine_parsing(c.p, c.photo, parse_refine(""), kTable).empty());
  EXPECT_EQ(c.p.labels, before);
  // asking only for small items leaves the sleeve alone too
  refine_parsing(c.p, c.photo, parse_refine("small"), kTable);
  EXPECT_EQ(c.p.labels, before);
}

TEST(Refine, DarkRegionOutsideEveryPersonIsUntouched) {
  Case c = dark_sleeve();
  c.person(0, 20, 5, 26, 35);  // the sleeve's columns belong to no person
  const std::vector<uint8_t> before = c.p.labels;
  const auto ch = refine_parsing(c.p, c.photo, parse_refine("dark"), kTable);
  EXPECT_EQ(ch[0].pixels, 0);
  EXPECT_EQ(c.p.labels, before);
}

TEST(Refine, DarkPixelsOfAnotherPersonAreNotGivenThisPersonsGarment) {
  Case c = dark_sleeve();
  c.person(2, 22, 5, 26, 35);  // the sleeve's right half belongs to a second person with no garment
  const auto ch = refine_parsing(c.p, c.photo, parse_refine("dark"), kTable);
  EXPECT_EQ(ch[0].pixels, 20);
  EXPECT_EQ(ch[0].per_person.at(0), 20);
  EXPECT_EQ(ch[0].per_person.count(1), 0u);
  EXPECT_EQ(c.count(kUpper, 20, 15, 22, 25), 20);
  EXPECT_EQ(c.count(kBg, 22, 15, 24, 25), 20);
}

Case hat_blob(double hat);

TEST(Refine, ScarfUnderTheChin) {
  Case c = hat_blob(0.0);
  const int kScarf = 11;
  c.fill_scores(kScarf, 14, 25, 26, 29, 0.25);  // 48 pixels under the face, Background's 0.5 wins there
  const auto ch = refine_parsing(c.p, c.photo, parse_refine("small"), kTable);
  EXPECT_EQ(ch[0].per_class.at("Scarf"), 48);
  EXPECT_EQ(c.count(kScarf, 14, 25, 26, 29), 48);
}

TEST(Refine, DarkSleeveWithAScoreBeyondTheMarginIsUntouched) {
  Case c = dark_sleeve();
  c.fill_scores(kUpper, 20, 15, 24, 25, 0.3);  // 0.5 - 0.3 > 0.15
  const std::vector<uint8_t> before = c.p.labels;
  EXPECT_EQ(refine_parsing(c.p, c.photo, parse_refine("dark"), kTable)[0].pixels, 0);
  EXPECT_EQ(c.p.labels, before);
}

// A face (10 x 10) with hair above it, and a background blob above the hair whose Hat score is
// `hat` (Background's is 0.5: the argmax there is Background).
Case hat_blob(double hat) {
  Case c;
  c.person(1, 10, 12, 30, 40);
  c.label(kFace, 15, 15, 25, 25);
  c.label(kHair, 15, 12, 25, 15);
  c.fill_scores(kHat, 16, 6, 24, 12, hat);
  return c;
}

TEST(Refine, HatAboveTheFaceUnderTheArgmaxButOverTheLoweredThresholdIsFound) {
  Case c = hat_blob(0.3);
  const auto ch = refine_parsing(c.p, c.photo, parse_refine("small"), kTable);
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].name, "small");
  EXPECT_EQ(ch[0].pixels, 48);
  EXPECT_EQ(ch[0].per_class.at("Hat"), 48);
  EXPECT_EQ(ch[0].per_person.at(0), 48);
  EXPECT_EQ(c.count(kHat, 16, 6, 24, 12), 48);
}

TEST(Refine, HatBlobWithLowScoresIsNotFound) {
  Case c = hat_blob(0.1);
  const std::vector<uint8_t> before = c.p.labels;
  EXPECT_EQ(refine_parsing(c.p, c.photo, parse_refine("small"), kTable)[0].pixels, 0);
  EXPECT_EQ(c.p.labels, before);
}

TEST(Refine, HatBlobTooSmallForTheFaceIsNotFound) {
  Case c = hat_blob(0.0);
  c.fill_scores(kHat, 18, 8, 20, 10, 0.3);  // 4 pixels, under 0.05 x the face area (100) = 5
  EXPECT_EQ(refine_parsing(c.p, c.photo, parse_refine("small"), kTable)[0].pixels, 0);
}

TEST(Refine, NeedsTheScores) {
  Case c = dark_sleeve();
  c.p.scores.clear();
  EXPECT_THROW(refine_parsing(c.p, c.photo, parse_refine("dark"), kTable), std::invalid_argument);
}

TEST(Refine, OptionSpelling) {
  EXPECT_FALSE(parse_refine("").any());
  EXPECT_FALSE(parse_refine("none").any());
  EXPECT_EQ(parse_refine("small, dark").spelled(), "dark,small");
  EXPECT_EQ(parse_refine("all").spelled(), "dark,small");
  EXPECT_EQ(parse_refine("dark").spelled(), "dark");
  EXPECT_THROW(parse_refine("dark,hats"), OptionError);
}

TEST(Refine, ShippedTableIsTheBuiltInOne) {
  const RefineTable t = RefineTable::load(std::string(M2FP_SOURCE_DIR) + "/outfit/data/refine.json");
  const RefineTable d = RefineTable::defaults();
  EXPECT_EQ(t.dark.value_max, d.dark.value_max);
  EXPECT_EQ(t.dark.margin, d.dark.margin);
  EXPECT_EQ(t.dark.min_score, d.dark.min_score);
  EXPECT_EQ(t.dark.garments, d.dark.garments);
  ASSERT_EQ(t.small.size(), d.small.size());
  for (size_t i = 0; i < t.small.size(); ++i) {
    EXPECT_EQ(t.small[i].label, d.small[i].label);
    EXPECT_EQ(t.small[i].anchor, d.small[i].anchor);
    EXPECT_EQ(t.small[i].top, d.small[i].top);
    EXPECT_EQ(t.small[i].bottom, d.small[i].bottom);
    EXPECT_EQ(t.small[i].min_score, d.small[i].min_score);
    EXPECT_EQ(t.small[i].max_area_face, d.small[i].max_area_face);
  }
}

// The engine keeps the per-class scores only when asked, and asking changes nothing else: same
// labels, persons, instances and fractions; each pixel's label has the highest (quantised) score.
TEST(Refine, KeepingScoresLeavesTheParsingAsItWas) {
  // A photo drawn here (the test depends on no other test's files): two figures on a gradient.
  Image img = Image::blank(150, 110, 40, 90, 180);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      uint8_t* px = img.row(y) + 3 * x;
      const bool figure = (x / 30) % 2 == 1 && y > 20;
      px[0] = (uint8_t)(figure ? 200 : 40 + x), px[1] = (uint8_t)(figure ? 60 + y : 90), px[2] = (uint8_t)(180 - x / 2);
    }
  const std::vector<uint8_t> bytes = encode_png(img);
  for (const char* variant : {"cihp", "lip"}) {
    // The synthetic checkpoints come from the CTest fixtures this binary requires.
    const std::string model = std::string(M2FP_TESTDATA) + "/" + variant + "_synth.safetensors";
    ASSERT_TRUE(std::filesystem::exists(model)) << model << " missing (ctest fixture_synthetic_" << variant << ")";
    SessionOptions so;
    so.model_path = model;
    so.parse.short_edge = 96;
    so.parse.max_size = 160;
    Session s(so);
    const ParseResult a = s.parse(bytes.data(), bytes.size());
    const ParseResult b = s.parse(bytes.data(), bytes.size(), nullptr, true);
    EXPECT_TRUE(a.parsing.scores.empty());
    EXPECT_EQ(a.parsing.score_classes, 0);
    EXPECT_EQ(a.parsing.labels, b.parsing.labels) << variant;
    EXPECT_EQ(a.parsing.person_map, b.parsing.person_map) << variant;
    EXPECT_EQ(a.parsing.label_fractions, b.parsing.label_fractions) << variant;
    ASSERT_EQ(a.parsing.instances.size(), b.parsing.instances.size());
    for (size_t i = 0; i < a.parsing.instances.size(); ++i) EXPECT_EQ(a.parsing.instances[i].score, b.parsing.instances[i].score);
    const Parsing& p = b.parsing;
    ASSERT_GT(p.score_classes, 0);
    ASSERT_EQ(p.scores.size(), (size_t)p.score_classes * p.width * p.height);
    int64_t worse = 0;
    for (int64_t i = 0; i < (int64_t)p.width * p.height; ++i)
      for (int c = 0; c < p.score_classes; ++c) worse += p.score_at(c, i) > p.score_at(p.labels[i], i);
    EXPECT_EQ(worse, 0) << variant;
  }
}

}  // namespace
}  // namespace m2fp::service
