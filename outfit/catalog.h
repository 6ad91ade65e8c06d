// outfit/catalog.h: the product catalogue, an SQLite database.
//
// Schema (version 1):
//   meta(key TEXT PRIMARY KEY, value TEXT)          schema_version, seeded_from
//   items(id INTEGER PRIMARY KEY, sku TEXT UNIQUE, name, category, slot, colour_name, colour_hex,
//         colours (JSON array of names, primary first), styles (JSON array), seasons (JSON array),
//         price REAL, popularity REAL (0..100), source (the CSV file it came from))
//
// CSV files (the seed catalogue outfit/data/seed_catalog.csv and a shop's own, `m2fp catalog import`):
// RFC 4180 (quoted fields may hold commas, doubled quotes and line breaks; CRLF or LF; UTF-8 BOM
// skipped), a header row naming exactly these columns in any order:
//   sku, name, category, slot, colour, hex, colours, styles, seasons, price, popularity
// List fields (colours, styles, seasons) are separated by ';'. slot is one of top, bottom, one_piece,
// outerwear, shoes, accessory; seasons are spring, summer, autumn (or fall), winter, all; price >= 0;
// popularity in [0, 100]. With a CatalogVocabulary (what `m2fp catalog import` and the seeding pass:
// OutfitKit::catalog_vocabulary(), from the outfit tables), category, colour, colours, styles and
// seasons must also be names the tables know (an item with an unknown one could never match a rule),
// and the category must belong to the row's slot; names the catalogue already holds count as known.
// allow_new accepts unknown names on purpose (ImportResult::new_names lists them); a known category
// in another slot stays an error. An import is all or nothing: any bad row throws CatalogImportError listing
// every problem as "FILE:LINE: column 'NAME': ..." and leaves the database untouched. Rows whose sku
// is already in the catalogue update that item.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;

namespace m2fp {

struct CatalogError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A rejected import: what() lists the problems (at most 20, then a count); errors() has them all.
struct CatalogImportError : CatalogError {
  CatalogImportError(const std::string& what, std::vector<std::string> errors)
      : CatalogError(what), errors_(std::move(errors)) {}
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

struct CatalogItem {
  int64_t id = 0;
  std::string sku, name, category, slot;
  std::string colour_name;               // primary colour, e.g. "navy"
  std::string colour_hex;                // "#RRGGBB"
  std::vector<std::string> colours;      // all colour names, primary first
  std::vector<std::string> styles;       // e.g. {"casual", "street"}
  std::vector<std::string> seasons;      // e.g. {"spring", "summer"} or {"all"}
  double price = 0;
  double popularity = 0;                 // 0..100
  std::string source;                    // CSV file it was imported from

  bool has_style(const std::string& s) const;
  bool fits_season(const std::string& s) const;  // listed, or "all"
};

struct CsvRecord {
  int line = 0;                          // 1-based line where the record starts
  std::vector<std::string> fields;
};

// RFC 4180 parsing. Blank lines are skipped. Throws CatalogError "SOURCE:LINE: ..." on an unterminated
// quoted field or text after a closing quote.
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source = "<csv>");
// Quotes a field when it holds a comma, quote or line break (for writing CSV).
std::string csv_escape(const std::string& field);
// The header columns, in the order the seed file uses.
const std::vector<std::string>& catalog_csv_columns();

struct ImportResult {
  int64_t rows = 0;       // data rows read
  int64_t inserted = 0;   // new skus
  int64_t updated = 0;    // skus already present, overwritten
  std::vector<std::string> new_names;  // with allow_new: "category 'kimono'" etc., each once
};

// The names an import accepts. An empty list (or map) leaves that column unchecked.
struct CatalogVocabulary {
  std::map<std::string, std::vector<std::string>> categories;  // slot -> the categories it holds
  std::vector<std::string> styles;                             // item styles
  std::map<std::string, std::vector<std::string>> occasions;   // occasion -> its styles (for hints)
  std::vector<std::string> seasons;                            // besides "all" (and "fall" = autumn)
  std::vector<std::string> colours;                            // colour and colours
  bool allow_new = false;
};

class Catalog {
 public:
  // Opens the database at `db_path` (":memory:" for a private in-memory one), creating the file and
  // schema if needed. When the catalogue has never been seeded and holds no items, imports `seed_csv`
  // (skipped if seed_csv is empty). Throws CatalogError / CatalogImportError.
  static Catalog open_or_create(const std::string& db_path, const std::string& seed_csv,
                                const CatalogVocabulary* vocab = nullptr);
  // Opens an existing catalogue; throws CatalogError if the file does not exist or is not one.
  static Catalog open(const std::string& db_path);

  Catalog(Catalog&&) noexcept;
  Catalog& operator=(Catalog&&) noexcept;
  ~Catalog();

  // `vocab`: the names accepted (see the file comment); null: any well-formed name.
  ImportResult import_csv(const std::string& csv_path, const CatalogVocabulary* vocab = nullptr);
  // Same from text; `source` names it in errors and in items.source.
  ImportResult import_csv_text(const std::string& text, const std::string& source,
                               const CatalogVocabulary* vocab = nullptr);

  int64_t count() const;
  std::vector<CatalogItem> items() const;                        // by id
  std::optional<CatalogItem> find_sku(const std::string& sku) const;
  const std::string& path() const { return path_; }

 private:
  Catalog() = default;
  void create_schema();
  std::string meta(const std::string& key) const;
  void set_meta(const std::string& key, const std::string& value);

  struct Closer {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Closer> db_;
  std::string path_;
};

}  // namespace m2fp
