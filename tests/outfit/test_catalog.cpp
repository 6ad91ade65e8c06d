// tests/outfit/test_catalog.cpp: CSV parsing, the SQLite catalogue, seeding, validated imports.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

#include "outfit/catalog.h"
#include "outfit/colour.h"
#include "outfit/outfit.h"
#include "outfit_test_util.h"

namespace m2fp {
namespace {

std::string seed_csv() { return test::data_file("seed_catalog.csv"); }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scratch directory per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/m2fp_outfit_XXXXXX";
    const char* p = mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string file(const std::string& name, const std::string& text = "") const {
    const std::string f = path + "/" + name;
    if (!text.empty()) std::ofstream(f, std::ios::binary) << text;
    return f;
  }
};

const char* kHeader = "sku,name,category,slot,colour,hex,colours,styles,seasons,price,popularity\n";

TEST(Csv, QuotesCommasAndLineBreaks) {
  const std::string text =
      "\xEF\xBB\xBF"  // BOM
      "a,b,c\r\n"
      "1,\"x, y\",\"say \"\"hi\"\"\"\r\n"
      "\n"
      "2,\"two\nlines\",\r\n"
      "3,,\"\"\n"
      "4,last,no newline";
  const auto recs = parse_csv(text, "t.csv");
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[0].fields, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"1", "x, y", "say \"hi\""}));
  EXPECT_EQ(recs[1].line, 2);
  EXPECT_EQ(recs[2].fields, (std::vector<std::string>{"2", "two\nlines", ""}));
  EXPECT_EQ(recs[2].line, 4);  // line 3 is blank
  EXPECT_EQ(recs[3].fields, (std::vector<std::string>{"3", "", ""}));
  EXPECT_EQ(recs[3].line, 6);  // the quoted line break counted
  EXPECT_EQ(recs[4].fields, (std::vector<std::string>{"4", "last", "no newline"}));
  EXPECT_EQ(recs[4].line, 7);
  // escaping round trip
  for (const std::string f : {"plain", "a,b", "q\"q", "line\nbreak", ""}) {
    const auto r = parse_csv("x," + csv_escape(f) + ",y\n");
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].fields[1], f);
  }
}

TEST(Csv, MalformedQuotesNameTheLine) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      parse_csv(text, "bad.csv");
      ADD_FAILURE() << "no error for " << text;
    } catch (const CatalogError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("a,b\n1,\"open\n2,3\n", "bad.csv:2: unterminated quoted field");
  expect_error("a,b\n1,\"closed\"junk\n", "bad.csv:2: unexpected text after a closing quote in field 2");
  expect_error("a,b\nx,1 \"inch\"\n", "bad.csv:2: a quote inside an unquoted field 2");
}

TEST(Catalog, SeedingCreatesEveryItemOnce) {
  const auto rows = parse_csv(read_all(seed_csv()), "seed");
  const int64_t n = static_cast<int64_t>(rows.size()) - 1;
  EXPECT_GE(n, 300);
  TempDir dir;
  const std::string db = dir.file("catalog.sqlite");
  {
    Catalog c = Catalog::open_or_create(db, seed_csv());
    EXPECT_EQ(c.count(), n);
    std::printf("  seeded %lld items from %s\n", static_cast<long long>(c.count()), seed_csv().c_str());
  }
  {
    // Second open: no second seeding.
    Catalog c = Catalog::open_or_create(db, seed_csv());
    EXPECT_EQ(c.count(), n);
    const auto items = c.items();
    ASSERT_EQ(static_cast<int64_t>(items.size()), n);
    for (size_t i = 1; i < items.size(); ++i) EXPECT_LT(items[i - 1].id, items[i].id);
    std::set<std::string> categories, slots, styles;
    for (const auto& it : items) {
      categories.insert(it.category), slots.insert(it.slot);
      for (const auto& s : it.styles) styles.insert(s);
      EXPECT_FALSE(it.seasons.empty()) << it.sku;
      EXPECT_EQ(it.colours.at(0), it.colour_name) << it.sku;
      EXPECT_EQ(it.source, seed_csv());
    }
    EXPECT_GE(categories.size(), 25u);
    EXPECT_EQ(slots.size(), 6u);
    EXPECT_EQ(styles, (std::set<std::string>{"business", "casual", "formal", "sport", "street"}));
  }
  {
    Catalog c = Catalog::open(db);  // opening an existing one without a seed
    EXPECT_EQ(c.count(), n);
    const auto it = c.find_sku("SNK-001");
    ASSERT_TRUE(it.has_value());
    EXPECT_EQ(it->category, "sneakers");
    EXPECT_EQ(it->slot, "shoes");
    EXPECT_FALSE(c.find_sku("NOPE").has_value());
  }
}

TEST(Catalog, SeedColoursNameBackToTheirNames) {
  // Every seed item's hex is named by name_colour() as the item's colour.
  Catalog c = Catalog::open_or_create(":memory:", seed_csv());
  int wrong = 0;
  for (const auto& it : c.items()) {
    const std::string got = name_colour(rgb_to_lab(hex_to_rgb(it.colour_hex)));
    if (got != it.colour_name) ++wrong;
    EXPECT_EQ(got, it.colour_name) << it.sku << " " << it.colour_hex;
  }
  EXPECT_EQ(wrong, 0);
}

TEST(Catalog, SeedFileIsWhatTheGeneratorWrites) {
  const std::string cmd = std::string(M2FP_PYTHON) + " " + test::data_file("make_seed_catalog.py") + " --check -o " +
                          seed_csv() + " > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "re-run outfit/data/make_seed_catalog.py: " << cmd;
}

TEST(Catalog, ImportGoodFileThenUpdate) {
  TempDir dir;
  Catalog c = Catalog::open_or_create(dir.file("c.sqlite"), "");
  EXPECT_EQ(c.count(), 0);
  // Columns in another order, quoted names with commas, fall -> autumn, a list with spaces.
  const std::string good = dir.file("shop.csv",
      "name,sku,category,slot,colour,hex,colours,styles,seasons,price,popularity\n"
      "\"Shirt, Oxford \"\"Classic\"\"\",S-1,shirt,top,white,#f8f8f8,white; navy,business;casual,all,49.5,70\n"
      "Desert Boots,S-2,boots,shoes,beige,#D8C3A5,,casual,fall;winter,120,55.5\n"
      "Silk Tie,S-3,tie,accessory,burgundy,#800020,burgundy,formal,all,0,0\n");
  const ImportResult r = c.import_csv(good);
  EXPECT_EQ(r.rows, 3);
  EXPECT_EQ(r.inserted, 3);
  EXPECT_EQ(r.updated, 0);
  auto shirt = c.find_sku("S-1");
  ASSERT_TRUE(shirt);
  EXPECT_EQ(shirt->name, "Shirt, Oxford \"Classic\"");
  EXPECT_EQ(shirt->colour_hex, "#F8F8F8");
  EXPECT_EQ(shirt->colours, (std::vector<std::string>{"white", "navy"}));
  EXPECT_EQ(shirt->styles, (std::vector<std::string>{"business", "casual"}));
  EXPECT_DOUBLE_EQ(shirt->price, 49.5);
  auto boots = c.find_sku("S-2");
  EXPECT_EQ(boots->seasons, (std::vector<std::string>{"autumn", "winter"}));
  EXPECT_EQ(boots->colours, (std::vector<std::string>{"beige"}));
  EXPECT_TRUE(boots->fits_season("winter"));
  EXPECT_FALSE(boots->fits_season("summer"));
  EXPECT_TRUE(shirt->fits_season("summer"));

  // Same skus again with a new price: updated, not duplicated.
  const std::string again = dir.file("again.csv", std::string(kHeader) +
      "S-1,Oxford Shirt,shirt,top,white,#F8F8F8,white,business,all,39,70\n"
      "S-4,Navy Chinos,chinos,bottom,navy,#1F2A44,navy,casual,all,59,60\n");
  const ImportResult r2 = c.import_csv(again);
  EXPECT_EQ(r2.inserted, 1);
  EXPECT_EQ(r2.updated, 1);
  EXPECT_EQ(c.count(), 4);
  EXPECT_DOUBLE_EQ(c.find_sku("S-1")->price, 39);
  EXPECT_EQ(c.find_sku("S-1")->source, again);
}

TEST(Catalog, BadRowsRejectTheWholeFileWithLineNumbers) {
  Catalog c = Catalog::open_or_create(":memory:", "");
  c.import_csv_text(std::string(kHeader) + "K-1,Keep,shirt,top,white,#FFFFFF,white,casual,all,10,10\n", "first.csv");
  const std::string bad = std::string(kHeader) +
      "A-1,Good Row,shirt,top,white,#FFFFFF,white,casual,all,10,10\n"      // line 2: fine
      "A-2,Bad Price,shirt,top,white,#FFFFFF,white,casual,all,ten,10\n"    // line 3
      "A-3,Bad Slot,shirt,torso,white,#FFFFFF,white,casual,all,10,10\n"    // line 4
      "A-4,\"Multi\nLine Name\",shirt,top,white,#FFF,white,casual,all,10,10\n"  // line 5 (hex)
      "A-1,Duplicate,shirt,top,white,#FFFFFF,white,casual,all,10,10\n"     // line 7
      "A-6,Short Row,shirt,top\n"                                           // line 8
      "A-7,Popular,shirt,top,white,#FFFFFF,white,casual,monsoon,10,101\n"  // line 9: season + popularity
      "A-8,No Style,shirt,top,white,#FFFFFF,white,,all,-1,10\n"            // line 10: styles + price
      "A-9,Fine Again,shirt,top,white,#FFFFFF,white,casual,all,10,10\n";   // line 11: fine
  try {
    c.import_csv_text(bad, "bad.csv");
    FAIL() << "bad file imported";
  } catch (const CatalogImportError& e) {
    const std::string msg = e.what();
    std::printf("  %s\n", msg.c_str());
    for (const char* needle : {"bad.csv:3: column 'price': 'ten' is not a non-negative number",
                               "bad.csv:4: column 'slot': 'torso' is not one of",
                               "bad.csv:5: column 'hex': '#FFF' is not a colour of the form #RRGGBB",
                               "bad.csv:7: column 'sku': 'A-1' appears twice in the file",
                               "bad.csv:8: expected 11 fields, found 4",
                               "bad.csv:9: column 'seasons': 'monsoon' is not one of",
                               "bad.csv:9: column 'popularity': '101' is not a number in [0, 100]",
                               "bad.csv:10: column 'styles': empty",
                               "bad.csv:10: column 'price': '-1' is not a non-negative number",
                               "nothing was written"})
      EXPECT_NE(msg.find(needle), std::string::npos) << "missing: " << needle;
    EXPECT_EQ(e.errors().size(), 9u);
  }
  // Nothing half-imported: neither the good rows of the bad file nor anything else.
  EXPECT_EQ(c.count(), 1);
  EXPECT_FALSE(c.find_sku("A-1"));
  EXPECT_FALSE(c.find_sku("A-9"));
}

TEST(Catalog, BadHeadersAndFiles) {
  Catalog c = Catalog::open_or_create(":memory:", "");
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    try {
      c.import_csv_text(text, "h.csv");
      ADD_FAILURE() << "no error for " << text;
    } catch (const CatalogError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("", "h.csv: empty file");
  expect_error("sku,name,category,slot,colour,hex,colours,styles,seasons,price\n", "h.csv:1: missing column 'popularity'");
  expect_error("sku,name,category,slot,colour,hex,colours,styles,seasons,price,popularity,brand\n",
               "h.csv:1: unknown column 'brand'");
  expect_error("sku,sku,category,slot,colour,hex,colours,styles,seasons,price,popularity\n", "column 'sku' appears twice");
  expect_error(std::string(kHeader) + "X,\"open,shirt\n", "h.csv:2: unterminated quoted field");
  EXPECT_EQ(c.count(), 0);
  EXPECT_THROW(c.import_csv("/nonexistent/shop.csv"), CatalogError);
  // A header-only file imports nothing, successfully.
  EXPECT_EQ(c.import_csv_text(kHeader, "empty.csv").rows, 0);
}

// Issue 12 point 9: names the outfit tables do not know can never match a rule; an import checks
// them against the tables (OutfitKit::catalog_vocabulary()) and lists the allowed values.
const CatalogVocabulary& vocabulary() {
  static const CatalogVocabulary v = OutfitKit::load(test::data_dir()).catalog_vocabulary();
  return v;
}

TEST(CatalogNames, TheSeedCatalogueUsesOnlyKnownNames) {
  const CatalogVocabulary& v = vocabulary();
  ASSERT_EQ(v.categories.size(), 6u);  // one list per slot
  Catalog c = Catalog::open_or_create(":memory:", "");
  const ImportResult r = c.import_csv(seed_csv(), &v);
  EXPECT_GT(r.rows, 300);
  EXPECT_TRUE(r.new_names.empty());
}

TEST(CatalogNames, UnknownNamesAreRejectedWithTheAllowedList) {
  Catalog c = Catalog::open_or_create(":memory:", "");
  const std::string bad = std::string(kHeader) +
      "N-1,Kimono,kimono,one_piece,red,#C8102E,red,casual,all,10,10\n"          // line 2: category
      "N-2,Blue Jeans,jeans,top,blue,#0000FF,blue,casual,all,10,10\n"           // line 3: jeans are bottoms
      "N-3,Gold Belt,belt,accessory,gold,#D4AF37,gold;copper,casual,all,10,10\n" // line 4: colours
      "N-4,Boho Skirt,skirt,bottom,red,#C8102E,red,boho,all,10,10\n"            // line 5: style
      "N-5,Office Shirt,shirt,top,white,#FFFFFF,white,office,all,10,10\n"       // line 6: an occasion
      "N-6,Rain Boots,boots,shoes,black,#000000,black,casual,monsoon,10,10\n"   // line 7: season
      "N-7,Fine,boots,shoes,black,#000000,black;navy,casual,fall;winter,10,10\n";// line 8: fine
  try {
    c.import_csv_text(bad, "names.csv", &vocabulary());
    FAIL() << "unknown names imported";
  } catch (const CatalogImportError& e) {
    const std::string msg = e.what();
    std::printf("  %s\n", msg.c_str());
    for (const char* needle :
         {"names.csv:2: column 'category': 'kimono' is not a known category for slot one_piece (known: dress, jumpsuit)",
          "names.csv:3: column 'category': 'jeans' is a bottom category, not top",
          "names.csv:4: column 'colour': 'gold' is not a known colour (known: black, charcoal, grey",
          "names.csv:4: column 'colours': 'copper' is not a known colour",
          "names.csv:5: column 'styles': 'boho' is not a known style (known: casual, business, street, sport, formal)",
          "names.csv:6: column 'styles': 'office' is an occasion, not a style (occasion office matches the styles business",
          "names.csv:7: column 'seasons': 'monsoon' is not one of spring, summer, autumn, winter, all"})
      EXPECT_NE(msg.find(needle), std::string::npos) << "missing: " << needle;
    EXPECT_EQ(e.errors().size(), 7u);  // the primary colour once (not again in colours); line 8 has none
  }
  EXPECT_EQ(c.count(), 0);
  // Without a vocabulary (the library's plain import) the same names are only checked for form.
  EXPECT_EQ(c.import_csv_text(bad.substr(0, bad.find("N-6")), "free.csv").rows, 5);
}

TEST(CatalogNames, AllowNewAcceptsAndListsThemAndTheyStayKnown) {
  Catalog c = Catalog::open_or_create(":memory:", "");
  CatalogVocabulary v = vocabulary();
  v.allow_new = true;
  const std::string text = std::string(kHeader) +
      "K-1,Kimono,kimono,one_piece,gold,#D4AF37,gold;red,boho,winter,80,40\n"
      "K-2,Kimono Two,kimono,one_piece,gold,#D4AF37,gold,boho,all,80,40\n";
  const ImportResult r = c.import_csv_text(text, "new.csv", &v);
  EXPECT_EQ(r.inserted, 2);
  EXPECT_EQ(r.new_names, (std::vector<std::string>{"category 'kimono'", "colour 'gold'", "style 'boho'"}));
  // A known category in the wrong slot is a mistake, not a new name: still refused.
  EXPECT_THROW(c.import_csv_text(std::string(kHeader) + "K-3,Jeans,jeans,top,blue,#0000FF,blue,casual,all,1,1\n",
                                 "slot.csv", &v),
               CatalogImportError);
  // Once in the catalogue, the names are known to it: updating those items needs no --allow-new.
  const ImportResult again = c.import_csv_text(text, "again.csv", &vocabulary());
  EXPECT_EQ(again.updated, 2);
  EXPECT_TRUE(again.new_names.empty());
}

TEST(CatalogNames, APairingSuggestingAnUnlistedCategoryIsARulesError) {
  std::ifstream in(test::data_file("rules.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const std::string from = "\"suggest\": [\"clutch\"]", to = "\"suggest\": [\"purse\"]";
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, from.size(), to);
  try {
    Rules::parse(text, "rules.json");
    FAIL() << "accepted";
  } catch (const OutfitError& e) {
    EXPECT_NE(std::string(e.what()).find("suggests \"purse\", which no slot of catalogue_categories lists"),
              std::string::npos)
        << e.what();
  }
}

TEST(Catalog, OpenRefusesMissingOrForeignFiles) {
  TempDir dir;
  EXPECT_THROW(Catalog::open(dir.file("missing.sqlite")), CatalogError);
  const std::string foreign = dir.file("foreign.sqlite");
  std::system(("sqlite3 '" + foreign + "' 'CREATE TABLE t(x);' 2>/dev/null").c_str());
  if (access(foreign.c_str(), F_OK) == 0) {
    try {
      Catalog::open(foreign);
      ADD_FAILURE() << "opened a foreign database";
    } catch (const CatalogError& e) {
      EXPECT_NE(std::string(e.what()).find("not an m2fp catalogue"), std::string::npos) << e.what();
    }
  }
  const std::string junk = dir.file("junk.sqlite", "this is not a database at all, just text............");
  EXPECT_THROW(Catalog::open(junk), CatalogError);
  EXPECT_THROW(Catalog::open_or_create(dir.path + "/no/such/dir/c.sqlite", ""), CatalogError);
  EXPECT_THROW(Catalog::open_or_create(":memory:", dir.file("missing_seed.csv")), CatalogError);
}

}  // namespace
}  // namespace m2fp
