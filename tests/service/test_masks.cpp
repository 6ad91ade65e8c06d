// tests/service/test_masks.cpp: union masks on hand-made label maps, the label set tables, COCO RLE
// strings, the ModelScope answer's selection, palette and 16-bit PNG headers (service/masks.h).
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "engine/io.h"
#include "service/masks.h"
#include "service/report.h"

namespace m2fp::service {
namespace {

int id(const std::string& n) {
  const auto& c = cihp_classes();
  return (int)(std::find(c.begin(), c.end(), n) - c.begin());
}

// A 1-row label map with every CIHP class 0..19 once.
Parsing every_class() {
  Parsing p;
  p.width = 20;
  p.height = 1;
  p.class_names = cihp_classes();
  for (int c = 0; c < 20; ++c) p.labels.push_back((uint8_t)c);
  return p;
}

std::set<int> set_of(const Parsing& p, const std::vector<uint8_t>& m) {
  std::set<int> s;
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i] == 255) s.insert(p.labels[i]);
    else EXPECT_EQ(m[i], 0);
  return s;
}

std::set<int> ids(std::initializer_list<const char*> names) {
  std::set<int> s;
  for (const char* n : names) s.insert(id(n));
  return s;
}

TEST(UnionMask, EveryNamedMaskUnionsItsDocumentedClasses) {
  const Parsing p = every_class();
  EXPECT_EQ(set_of(p, union_mask(p, "upper_body")), ids({"UpperClothes", "Coat"}));
  EXPECT_EQ(set_of(p, union_mask(p, "lower_body")), ids({"Pants", "Skirt"}));
  EXPECT_EQ(set_of(p, union_mask(p, "dresses")), ids({"Dress", "UpperClothes", "Coat", "Pants", "Skirt"}));
  EXPECT_EQ(set_of(p, union_mask(p, "agnostic")),
            ids({"UpperClothes", "Coat", "Dress", "Torso-skin", "Left-arm", "Right-arm", "Scarf", "Glove"}));
  EXPECT_EQ(set_of(p, union_mask(p, "clothes")),
            ids({"Hat", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants", "Scarf", "Skirt",
                 "Left-shoe", "Right-shoe"}));
  EXPECT_EQ(set_of(p, union_mask(p, "hair")), ids({"Hair"}));
  EXPECT_EQ(set_of(p, union_mask(p, "face")), ids({"Face"}));
  EXPECT_EQ(set_of(p, union_mask(p, "skin")),
            ids({"Torso-skin", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg"}));
  EXPECT_EQ(set_of(p, union_mask(p, "label:Hat+Right-shoe")), ids({"Hat", "Right-shoe"}));
  EXPECT_THROW(union_mask(p, "label:Hat+Nope"), std::invalid_argument);
  EXPECT_THROW(union_mask(p, "label:"), std::invalid_argument);
  EXPECT_THROW(union_mask(p, "shirt"), std::invalid_argument);
  for (const std::string& n : union_mask_names()) EXPECT_NO_THROW(union_mask(p, n)) << n;
}

// in_label_set and add_label_set_keys (service/masks.h, service/report.h) on a hand-made parsing: the
// label map, names and shares in the set's ids; instances, persons' parts and garments get the set's.
TEST(LabelSets, ParsingAndDocumentFollowTheSet) {
  Parsing p = every_class();
  p.label_fractions.assign(21, 1.0 / 20);
  p.label_fractions[20] = 0;
  const Parsing a = in_label_set(p, LabelSet::Atr);
  EXPECT_EQ(a.labels, map_labels(p.labels, LabelSet::Atr));
  EXPECT_EQ(a.class_names, label_set_classes(LabelSet::Atr, {}));
  ASSERT_EQ(a.label_fractions.size(), 18u);
  // Background: itself, Glove, Socks and Torso-skin; Upper-clothes: UpperClothes and Coat
  EXPECT_DOUBLE_EQ(a.label_fractions[0], 4.0 / 20);
  EXPECT_DOUBLE_EQ(a.label_fractions[4], 2.0 / 20);
  EXPECT_DOUBLE_EQ(a.label_fractions[8], 0.0);  // Belt: no CIHP source
  EXPECT_EQ(in_label_set(p, LabelSet::Cihp).labels, p.labels);

  nlohmann::json doc = {
      {"instances", {{{"kind", "part"}, {"category_id", id("Coat")}}, {{"kind", "part"}, {"category_id", id("Glove")}},
                     {{"kind", "human"}, {"category_id", 20}}}},
      {"persons", {{{"parts", {{{"category_id", id("Coat")}}}},
                    {"garments", {{{"labels", {"UpperClothes", "Coat", "Socks"}}}}}}}}};
  const nlohmann::json before = doc;
  add_label_set_keys(doc, p, LabelSet::Cihp);
  EXPECT_EQ(doc, before) << "CIHP adds nothing";
  add_label_set_keys(doc, p, LabelSet::Atr);
  EXPECT_EQ(doc["instances"][0]["set_category_id"], 4);
  EXPECT_EQ(doc["instances"][0]["set_label"], "Upper-clothes");
  EXPECT_EQ(doc["instances"][1]["set_category_id"], 0);
  EXPECT_TRUE(doc["instances"][1]["set_label"].is_null());
  EXPECT_EQ(doc["instances"][2]["set_category_id"], -1);
  EXPECT_EQ(doc["instances"][0]["category_id"], id("Coat")) << "the model's id stays";
  EXPECT_EQ(doc["persons"][0]["parts"][0]["set_label"], "Upper-clothes");
  EXPECT_EQ(doc["persons"][0]["garments"][0]["set_labels"], nlohmann::json({"Upper-clothes"}));
  EXPECT_EQ(doc["labels_present"].size(), 16u);  // the 18 ATR classes but Belt and Bag
  EXPECT_DOUBLE_EQ(doc["label_fractions"]["Upper-clothes"].get<double>(), 2.0 / 20);
  EXPECT_FALSE(doc["label_fractions"].contains("Coat"));
}

TEST(UnionMask, DilationIsASquareOfTheGivenRadius) {
  Parsing p;
  p.width = 7;
  p.height = 5;
  p.class_names = cihp_classes();
  p.labels.assign(35, 0);
  p.labels[2 * 7 + 3] = (uint8_t)id("Hair");
  const std::vector<uint8_t> m = union_mask(p, "hair", 1);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x)
      EXPECT_EQ(m[(size_t)y * 7 + x], (std::abs(x - 3) <= 1 && std::abs(y - 2) <= 1) ? 255 : 0) << x << "," << y;
  const std::vector<uint8_t> big = union_mask(p, "hair", 10);
  for (uint8_t v : big) EXPECT_EQ(v, 255);
}

TEST(LabelSets, ALipModelKeepsItsIdsAndMapsJumpsuitsToAtrDress) {
  const std::vector<std::string> lip = label_set_classes(LabelSet::Lip, {});  // the LIP model's classes
  for (int c = 0; c < 20; ++c) {
    EXPECT_EQ(map_label(LabelSet::Cihp, c, lip), c);
    EXPECT_EQ(map_label(LabelSet::Lip, c, lip), c) << "LIP ids stay LIP ids, Jumpsuits included";
    EXPECT_EQ(map_label(LabelSet::Atr, c, lip), c == 10 ? 7 : map_label(LabelSet::Atr, c)) << c;
  }
  const std::vector<uint8_t> labels = {0, 10, 5, 19};
  EXPECT_EQ(map_labels(labels, LabelSet::Lip, lip), labels);
  EXPECT_EQ(map_labels(labels, LabelSet::Atr, lip), (std::vector<uint8_t>{0, 7, 4, 10}));
  // A CIHP model: the CIHP tables (Torso-skin, 10, has no LIP class).
  EXPECT_EQ(map_labels(labels, LabelSet::Lip, cihp_classes()), (std::vector<uint8_t>{0, 0, 5, 19}));
}

TEST(LabelSets, TablesAreTotalAndMapIntoTheirClasses) {
  for (LabelSet s : {LabelSet::Cihp, LabelSet::Lip, LabelSet::Atr}) {
    const auto names = label_set_classes(s, cihp_classes());
    for (int c = 0; c < 256; ++c) {
      const int m = map_label(s, c);
      EXPECT_GE(m, 0);
      if (c < 20) EXPECT_LT(m, (int)names.size()) << c;
    }
    EXPECT_EQ(map_label(s, 0), 0);
  }
  EXPECT_EQ(label_set_classes(LabelSet::Lip, {}).size(), 20u);
  EXPECT_EQ(label_set_classes(LabelSet::Atr, {}).size(), 18u);
  // LIP: the same ids but Torso-skin, which has no LIP class.
  for (int c = 0; c < 20; ++c) EXPECT_EQ(map_label(LabelSet::Lip, c), c == 10 ? 0 : c);
  // ATR: docs/LABELS.md's table, by name.
  const auto atr = label_set_classes(LabelSet::Atr, {});
  auto atr_name = [&](const char* cihp) { return atr[(size_t)map_label(LabelSet::Atr, id(cihp))]; };
  EXPECT_EQ(atr_name("UpperClothes"), "Upper-clothes");
  EXPECT_EQ(atr_name("Coat"), "Upper-clothes");
  EXPECT_EQ(atr_name("Dress"), "Dress");
  EXPECT_EQ(atr_name("Skirt"), "Skirt");
  EXPECT_EQ(atr_name("Pants"), "Pants");
  EXPECT_EQ(atr_name("Face"), "Face");
  EXPECT_EQ(atr_name("Left-leg"), "Left-leg");
  EXPECT_EQ(atr_name("Right-shoe"), "Right-shoe");
  EXPECT_EQ(atr_name("Scarf"), "Scarf");
  EXPECT_EQ(atr_name("Sunglasses"), "Sunglasses");
  for (const char* none : {"Glove", "Socks", "Torso-skin"}) EXPECT_EQ(map_label(LabelSet::Atr, id(none)), 0) << none;
  EXPECT_THROW(parse_label_set("pascal"), std::invalid_argument);
}

Instance with_mask(int x0, int y0, const std::vector<std::string>& rows) {
  Instance in;
  in.bbox = {x0, y0, x0 + (int)rows[0].size(), y0 + (int)rows.size()};
  const int stride = ((int)rows[0].size() + 7) / 8;
  in.mask_bits.assign((size_t)stride * rows.size(), 0);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x)
      if (rows[y][x] == '#') {
        in.mask_bits[y * stride + x / 8] |= (uint8_t)(1u << (x % 8)), ++in.area;
      }
  return in;
}

TEST(CocoRle, RunsAreColumnMajorFromZeros) {
  // 3x4 image, mask at (1,0),(1,1),(2,1): columns 0: 0000, 1: 1100, 2: 0100
  for (RunsBy how : {RunsBy::Choose, RunsBy::Transitions, RunsBy::Transpose}) {
    const Instance in = with_mask(1, 0, {"#.", "##"});
    EXPECT_EQ(instance_runs(in, 3, 4, how), (std::vector<uint32_t>{4, 2, 3, 1, 2}));
    const Instance full = with_mask(0, 0, {"##", "##"});
    EXPECT_EQ(instance_runs(full, 2, 2, how), (std::vector<uint32_t>{0, 4}));
    // Columns ending in a set pixel at the last row run on into the next column's first row.
    const Instance spans = with_mask(1, 0, {".##", "##."});  // columns 00 01 11 10
    EXPECT_EQ(instance_runs(spans, 4, 2, how), (std::vector<uint32_t>{3, 4, 1}));
    Instance none;
    EXPECT_EQ(instance_runs(none, 2, 3, how), (std::vector<uint32_t>{6}));
  }
}

// The runs by definition: every pixel of the image, column by column, from the bit mask.
std::vector<uint32_t> runs_pixel_by_pixel(const Instance& in, int width, int height) {
  std::vector<uint32_t> runs;
  uint32_t run = 0;
  bool cur = false;
  for (int x = 0; x < width; ++x)
    for (int y = 0; y < height; ++y) {
      const bool v = in.mask_at(x, y);
      if (v != cur) {
        runs.push_back(run);
        run = 0;
        cur = v;
      }
      ++run;
    }
  runs.push_back(run);
  return runs;
}

TEST(CocoRle, RunsOfRandomMasksInRandomBoxesMatchTheDefinition) {
  std::mt19937 g(14);
  for (int t = 0; t < 200; ++t) {
    const int W = 1 + (int)(g() % 40), H = 1 + (int)(g() % 30);
    const int x0 = (int)(g() % W), y0 = (int)(g() % H);
    const int bw = 1 + (int)(g() % (W - x0)), bh = 1 + (int)(g() % (H - y0));
    const int density = (int)(g() % 4);  // 0: empty rows likely, 3: mostly set
    std::vector<std::string> rows((size_t)bh, std::string((size_t)bw, '.'));
    for (auto& r : rows)
      for (char& c : r) c = (int)(g() % 4) < density ? '#' : '.';
    const Instance in = with_mask(x0, y0, rows);
    const std::vector<uint32_t> want = runs_pixel_by_pixel(in, W, H);
    for (RunsBy how : {RunsBy::Choose, RunsBy::Transitions, RunsBy::Transpose})
      ASSERT_EQ(instance_runs(in, W, H, how), want) << "case " << t << ": " << W << "x" << H << " box at " << x0
                                                    << "," << y0 << " way " << (int)how;
  }
}

TEST(CocoRle, RunsOfLargeBlobbyMasksMatchTheDefinition) {
  // Boxes taller than a 64-row word and wider than a byte, at odd offsets; masks of long runs
  // (rows of a few blobs), full columns and empty ones, so runs cross words and byte columns.
  std::mt19937 g(1414);
  for (int t = 0; t < 60; ++t) {
    const int W = 1 + (int)(g() % 90), H = 1 + (int)(g() % 300);
    const int x0 = (int)(g() % W), y0 = (int)(g() % H);
    const int bw = 1 + (int)(g() % (W - x0)), bh = 1 + (int)(g() % (H - y0));
    const int cx = (int)(g() % bw), cy = (int)(g() % bh), r = 1 + (int)(g() % 80), mode = (int)(g() % 4);
    std::vector<std::string> rows((size_t)bh, std::string((size_t)bw, '.'));
    for (int y = 0; y < bh; ++y)
      for (int x = 0; x < bw; ++x) {
        const bool disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
        const bool on = mode == 0 ? disc : mode == 1 ? !disc : mode == 2 ? ((y / 7 + x / 3) % 5 == 0) : true;
        rows[(size_t)y][(size_t)x] = on ? '#' : '.';
      }
    const Instance in = with_mask(x0, y0, rows);
    const std::vector<uint32_t> want = runs_pixel_by_pixel(in, W, H);
    for (RunsBy how : {RunsBy::Choose, RunsBy::Transitions, RunsBy::Transpose})
      ASSERT_EQ(instance_runs(in, W, H, how), want) << "case " << t << ": " << W << "x" << H << " box " << bw << "x"
                                                    << bh << " at " << x0 << "," << y0 << " mode " << mode << " way "
                                                    << (int)how;
  }
}

TEST(CocoRle, StringsAsPycocotoolsWritesThem) {
  // Worked by hand from COCO's rleToString: 5-bit groups, +48, deltas from the third count on.
  // 1 - 2 = -1: the group 0x1f (sign bit set, nothing more) -> 'O'; 2 - 3 = -1 again.
  EXPECT_EQ(rle_counts_string({4, 2, 3, 1, 2}), "423OO");
  EXPECT_EQ(rle_counts_string({0, 4}), "04");
  // 100 = 3*32 + 4: groups 4 | 0x20 (more), 3 -> "T3"; 17 has the sign bit: 17 | 0x20, 0 -> "a0".
  EXPECT_EQ(rle_counts_string({100}), "T3");
  EXPECT_EQ(rle_counts_string({17}), "a0");
}

TEST(CocoRle, StringsOfRandomCountsMatchRleToString) {
  // COCO's rleToString written out plainly, against counts of every size (deltas of either sign
  // from 1 to 7 groups of 5 bits).
  auto reference = [](const std::vector<uint32_t>& runs) {
    std::string s;
    for (size_t i = 0; i < runs.size(); ++i) {
      long long x = runs[i];
      if (i > 2) x -= (long long)runs[i - 2];
      bool more = true;
      while (more) {
        char c = (char)(x & 0x1f);
        x >>= 5;
        more = (c & 0x10) ? x != -1 : x != 0;
        if (more) c |= 0x20;
        s.push_back((char)(c + 48));
      }
    }
    return s;
  };
  std::mt19937 g(77);
  for (int t = 0; t < 300; ++t) {
    std::vector<uint32_t> runs((size_t)(g() % 40));
    for (uint32_t& r : runs) r = (uint32_t)(g() >> (g() % 32));
    ASSERT_EQ(rle_counts_string(runs), reference(runs)) << "case " << t;
  }
  EXPECT_EQ(rle_counts_string({}), "");
  EXPECT_EQ(rle_counts_string({0xffffffffu, 0, 0, 0xffffffffu}), reference({0xffffffffu, 0, 0, 0xffffffffu}));
}

TEST(ModelScopeAnswer, PartsThenHumansScoreAboveZeroAlignedLists) {
  Parsing p;
  p.width = 3;
  p.height = 4;
  p.class_names = cihp_classes();
  p.labels.assign(12, 0);
  Instance a = with_mask(1, 0, {"#.", "##"});
  a.category_id = id("Hair"), a.label = "Hair", a.score = 0.7f;
  Instance z = a;
  z.score = 0.f;  // score 0: left out, as upstream's score > 0
  Instance h = with_mask(0, 0, {"###", "###"});
  h.kind = Instance::Kind::Human, h.category_id = 20, h.label = "Human", h.score = 0.9f;
  p.instances = {a, z, h};
  const nlohmann::json png = modelscope_answer(p, MaskFormat::Png);
  EXPECT_EQ(png["labels"], nlohmann::json({"Hair", "Human"}));
  ASSERT_EQ(png["masks"].size(), 2u);
  EXPECT_NEAR(png["scores"][0].get<double>(), 0.7, 1e-6);
  const nlohmann::json rle = modelscope_answer(p, MaskFormat::Rle);
  EXPECT_EQ(rle["masks"][0]["counts"], "423OO");
  EXPECT_EQ(rle["masks"][0]["size"], nlohmann::json({4, 3}));
  EXPECT_FALSE(modelscope_answer(p, MaskFormat::None).contains("masks"));
  // ATR: Hair stays Hair; a Glove instance (no ATR class) is left out.
  p.instances[1].category_id = id("Glove"), p.instances[1].score = 0.5f;
  EXPECT_EQ(modelscope_answer(p, MaskFormat::None, LabelSet::Atr)["labels"], nlohmann::json({"Hair", "Human"}));
  EXPECT_THROW(parse_mask_format("jpeg"), std::invalid_argument);
}

TEST(Pngs, LabelsPngIsAPaletteImageOfTheIds) {
  const Parsing p = every_class();
  const std::vector<uint8_t> png = labels_png(p);
  ASSERT_GT(png.size(), 60u);
  EXPECT_EQ(png[24], 8);  // bit depth
  EXPECT_EQ(png[25], 3);  // colour type: palette
  EXPECT_EQ(std::string(png.begin() + 37, png.begin() + 41), "PLTE");
}

}  // namespace
}  // namespace m2fp::service
