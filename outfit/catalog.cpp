// outfit/catalog.cpp: SQLite product catalogue, CSV parsing and validated, transactional import.
#include "outfit/catalog.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "outfit/colour.h"

namespace m2fp {

namespace {

constexpr int kSchemaVersion = 1;

const std::vector<std::string>& kSlots() {
  static const std::vector<std::string> s = {"top", "bottom", "one_piece", "outerwear", "shoes", "accessory"};
  return s;
}
const std::vector<std::string>& kSeasons() {
  static const std::vector<std::string> s = {"spring", "summer", "autumn", "winter", "all"};
  return s;
}

// One prepared statement, finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw CatalogError(std::string("catalogue: cannot prepare SQL (") + sqlite3_errmsg(db) + "): " + sql);
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void bind(int i, const std::string& v) { check(sqlite3_bind_text(st_, i, v.c_str(), -1, SQLITE_TRANSIENT)); }
  void bind(int i, double v) { check(sqlite3_bind_double(st_, i, v)); }
  void bind(int i, int64_t v) { check(sqlite3_bind_int64(st_, i, v)); }
  // true: a row is ready; false: done. Throws on error.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw CatalogError(std::string("catalogue: SQL step failed: ") + sqlite3_errmsg(db_));
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  std::string text(int col) const {
    const unsigned char* t = sqlite3_column_text(st_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  double real(int col) const { return sqlite3_column_double(st_, col); }
  int64_t integer(int col) const { return sqlite3_column_int64(st_, col); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw CatalogError(std::string("catalogue: SQL bind failed: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw CatalogError("catalogue: SQL failed (" + msg + "): " + sql);
  }
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ';') {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(trim(cur));
  // drop empty entries (trailing ';', or an empty field)
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

bool is_token(const std::string& s) {  // [a-z][a-z0-9_ -]*
  if (s.empty() || !std::islower(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_' ||
           c == '-' || c == ' ';
  });
}

bool parse_number(const std::string& s, double& out) {
  const std::string t = trim(s);
  if (t.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(t.c_str(), &end);
  return errno == 0 && end == t.c_str() + t.size() && std::isfinite(out);
}

std::string json_list(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

std::vector<std::string> parse_json_list(const std::string& text, const std::string& what, int64_t id) {
  try {
    auto j = nlohmann::json::parse(text);
    return j.get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw CatalogError("catalogue: item " + std::to_string(id) + " has a bad " + what + " list: " + e.what());
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CatalogError("catalogue: cannot open CSV file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// ---- items ------------------------------------------------------------------------------------

bool CatalogItem::has_style(const std::string& s) const {
  return std::find(styles.begin(), styles.end(), s) != styles.end();
}

bool CatalogItem::fits_season(const std::string& s) const {
  return std::find(seasons.begin(), seasons.end(), s) != seasons.end() ||
         std::find(seasons.begin(), seasons.end(), "all") != seasons.end();
}

// ---- CSV --------------------------------------------------------------------------------------

const std::vector<std::string>& catalog_csv_columns() {
  static const std::vector<std::string> cols = {"sku",     "name",    "category", "slot",  "colour",    "hex",
                                                "colours", "styles",  "seasons",  "price", "popularity"};
  return cols;
}

std::vector<CsvRecord> parse_csv(const std::string& text_in, const std::string& source) {
  std::string_view text(text_in);
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  std::vector<CsvRecord> records;
  size_t i = 0;
  int line = 1;
  while (i < text.size()) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool any_quote = false;
    for (;;) {
      if (i < text.size() && text[i] == '"') {
        // quoted field
        any_quote = true;
        const int start_line = line;
        ++i;
        for (;;) {
          if (i >= text.size())
            throw CatalogError(source + ":" + std::to_string(start_line) + ": unterminated quoted field");
          const char c = text[i];
          if (c == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++i;
        }
        if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          throw CatalogError(source + ":" + std::to_string(line) + ": unexpected text after a closing quote in field " +
                             std::to_string(rec.fields.size() + 1));
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"')
            throw CatalogError(source + ":" + std::to_string(line) + ": a quote inside an unquoted field " +
                               std::to_string(rec.fields.size() + 1) + " (quote the whole field and double the quote)");
          field += text[i++];
        }
      }
      rec.fields.push_back(std::move(field));
      field.clear();
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      // end of record: CRLF, LF, lone CR, or end of text
      if (i < text.size() && text[i] == '\r') ++i;
      if (i < text.size() && text[i] == '\n') ++i;
      ++line;
      break;
    }
    const bool blank = rec.fields.size() == 1 && rec.fields[0].empty() && !any_quote;
    if (!blank) records.push_back(std::move(rec));
  }
  return records;
}

std::string csv_escape(const std::string& f) {
  if (f.find_first_of(",\"\r\n") == std::string::npos) return f;
  std::string out = "\"";
  for (char c : f) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// ---- the database -----------------------------------------------------------------------------

void Catalog::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Catalog::Catalog(Catalog&&) noexcept = default;
Catalog& Catalog::operator=(Catalog&&) noexcept = default;
Catalog::~Catalog() = default;

void Catalog::create_schema() {
  exec(db_.get(),
       "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
       "CREATE TABLE IF NOT EXISTS items("
       "  id INTEGER PRIMARY KEY,"
       "  sku TEXT NOT NULL UNIQUE,"
       "  name TEXT NOT NULL,"
       "  category TEXT NOT NULL,"
       "  slot TEXT NOT NULL CHECK (slot IN ('top','bottom','one_piece','outerwear','shoes','accessory')),"
       "  colour_name TEXT NOT NULL,"
       "  colour_hex TEXT NOT NULL,"
       "  colours TEXT NOT NULL,"
       "  styles TEXT NOT NULL,"
       "  seasons TEXT NOT NULL,"
       "  price REAL NOT NULL CHECK (price >= 0),"
       "  popularity REAL NOT NULL CHECK (popularity >= 0 AND popularity <= 100),"
       "  source TEXT NOT NULL);"
       "CREATE INDEX IF NOT EXISTS items_category ON items(category);");
  const std::string v = meta("schema_version");
  if (v.empty()) {
    set_meta("schema_version", std::to_string(kSchemaVersion));
  } else if (v != std::to_string(kSchemaVersion)) {
    throw CatalogError("catalogue '" + path_ + "' has schema version " + v + ", this build reads version " +
                       std::to_string(kSchemaVersion));
  }
}

std::string Catalog::meta(const std::string& key) const {
  Stmt st(db_.get(), "SELECT value FROM meta WHERE key = ?1");
  st.bind(1, key);
  return st.step() ? st.text(0) : "";
}

void Catalog::set_meta(const std::string& key, const std::string& value) {
  Stmt st(db_.get(), "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2");
  st.bind(1, key);
  st.bind(2, value);
  st.step();
}

static std::unique_ptr<sqlite3, void (*)(sqlite3*)> open_db(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<sqlite3, void (*)(sqlite3*)> db(raw, [](sqlite3* d) { sqlite3_close_v2(d); });
  if (rc != SQLITE_OK)
    throw CatalogError("cannot open catalogue '" + path + "': " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  sqlite3_busy_timeout(raw, 5000);
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

Catalog Catalog::open_or_create(const std::string& db_path, const std::string& seed_csv,
                                const CatalogVocabulary* vocab) {
  Catalog c;
  c.path_ = db_path;
  auto db = open_db(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  c.db_.reset(db.release());
  c.create_schema();
  if (c.meta("seeded_from").empty() && c.count() == 0 && !seed_csv.empty()) {
    c.import_csv(seed_csv, vocab);
    c.set_meta("seeded_from", seed_csv);
  }
  return c;
}

Catalog Catalog::open(const std::string& db_path) {
  struct stat sb;
  if (db_path != ":memory:" && ::stat(db_path.c_str(), &sb) != 0)
    throw CatalogError("catalogue '" + db_path + "' does not exist");
  Catalog c;
  c.path_ = db_path;
  auto db = open_db(db_path, SQLITE_OPEN_READWRITE);
  c.db_.reset(db.release());
  {
    Stmt st(c.db_.get(), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'items')");
    bool ok = false;
    try {
      ok = st.step() && st.integer(0) == 2;
    } catch (const CatalogError&) {
      ok = false;
    }
    if (!ok) throw CatalogError("'" + db_path + "' is not an m2fp catalogue (no meta/items tables)");
  }
  c.create_schema();  // checks the version
  return c;
}

int64_t Catalog::count() const {
  Stmt st(db_.get(), "SELECT count(*) FROM items");
  st.step();
  return st.integer(0);
}

namespace {
constexpr const char* kSelectItems =
    "SELECT id, sku, name, category, slot, colour_name, colour_hex, colours, styles, seasons, price, popularity, "
    "source FROM items";

CatalogItem read_item(const Stmt& st) {
  CatalogItem it;
  it.id = st.integer(0);
  it.sku = st.text(1);
  it.name = st.text(2);
  it.category = st.text(3);
  it.slot = st.text(4);
  it.colour_name = st.text(5);
  it.colour_hex = st.text(6);
  it.colours = parse_json_list(st.text(7), "colours", it.id);
  it.styles = parse_json_list(st.text(8), "styles", it.id);
  it.seasons = parse_json_list(st.text(9), "seasons", it.id);
  it.price = st.real(10);
  it.popularity = st.real(11);
  it.source = st.text(12);
  return it;
}
}  // namespace

std::vector<CatalogItem> Catalog::items() const {
  Stmt st(db_.get(), (std::string(kSelectItems) + " ORDER BY id").c_str());
  std::vector<CatalogItem> out;
  while (st.step()) out.push_back(read_item(st));
  return out;
}

std::optional<CatalogItem> Catalog::find_sku(const std::string& sku) const {
  Stmt st(db_.get(), (std::string(kSelectItems) + " WHERE sku = ?1").c_str());
  st.bind(1, sku);
  if (!st.step()) return std::nullopt;
  return read_item(st);
}

ImportResult Catalog::import_csv(const std::string& csv_path, const CatalogVocabulary* vocab) {
  return import_csv_text(read_file(csv_path), csv_path, vocab);
}

namespace {

bool listed(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Checks names against a CatalogVocabulary, extended by the names the catalogue already holds.
class NameCheck {
 public:
  NameCheck(const CatalogVocabulary* vocab, const std::vector<CatalogItem>& held) : v_(vocab) {
    if (!v_) return;
    for (const CatalogItem& it : held) {
      held_categories_[it.slot].insert(it.category);
      held_styles_.insert(it.styles.begin(), it.styles.end());
      held_colours_.insert(it.colours.begin(), it.colours.end());
    }
  }
  // "" if fine (or new and allowed: noted), else the problem.
  std::string category(const std::string& cat, const std::string& slot) {
    if (!v_ || v_->categories.empty() || cat.empty()) return "";
    auto in_slot = v_->categories.find(slot);
    if ((in_slot != v_->categories.end() && listed(in_slot->second, cat)) || held_categories_[slot].count(cat))
      return "";
    for (const auto& [other, cats] : v_->categories)
      if (listed(cats, cat)) return "'" + cat + "' is a " + other + " category, not " + slot;
    const std::vector<std::string> known = in_slot != v_->categories.end() ? in_slot->second : std::vector<std::string>{};
    return unknown("category", cat, " for slot " + slot + " (known: " + joined(known) + ")");
  }
  std::string style(const std::string& s) {
    if (!v_ || v_->styles.empty() || listed(v_->styles, s) || held_styles_.count(s)) return "";
    auto occ = v_->occasions.find(s);
    if (occ != v_->occasions.end())
      return "'" + s + "' is an occasion, not a style (occasion " + s + " matches the styles " + joined(occ->second) +
             "; list those)";
    return unknown("style", s, " (known: " + joined(v_->styles) + ")");
  }
  std::string colour(const std::string& c) {
    if (!v_ || v_->colours.empty() || listed(v_->colours, c) || held_colours_.count(c)) return "";
    return unknown("colour", c, " (known: " + joined(v_->colours) + ")");
  }
  bool season_known(const std::string& s) const {
    if (!v_ || v_->seasons.empty()) return listed(kSeasons(), s);
    return s == "all" || listed(v_->seasons, s);
  }
  std::string seasons_text() const {
    if (!v_ || v_->seasons.empty()) return "spring, summer, autumn, winter, all";
    return joined(v_->seasons) + ", all";
  }
  std::vector<std::string> new_names;

 private:
  std::string unknown(const std::string& what, const std::string& name, const std::string& known) {
    if (v_->allow_new) {
      const std::string n = what + " '" + name + "'";
      if (!listed(new_names, n)) new_names.push_back(n);
      return "";
    }
    return "'" + name + "' is not a known " + what + known;
  }
  const CatalogVocabulary* v_;
  std::map<std::string, std::set<std::string>> held_categories_;
  std::set<std::string> held_styles_, held_colours_;
};

}  // namespace

ImportResult Catalog::import_csv_text(const std::string& text, const std::string& source, const CatalogVocabulary* vocab) {
  const std::vector<CsvRecord> records = parse_csv(text, source);
  if (records.empty()) throw CatalogImportError(source + ": empty file (expected a header row)", {source + ": empty file"});

  // Header: exactly the known columns, any order.
  const auto& cols = catalog_csv_columns();
  std::map<std::string, size_t> at;  // column name -> field index
  std::vector<std::string> errors;
  const CsvRecord& header = records[0];
  for (size_t f = 0; f < header.fields.size(); ++f) {
    const std::string name = lower(trim(header.fields[f]));
    if (std::find(cols.begin(), cols.end(), name) == cols.end())
      errors.push_back(source + ":" + std::to_string(header.line) + ": unknown column '" + header.fields[f] +
                       "' in the header");
    else if (!at.emplace(name, f).second)
      errors.push_back(source + ":" + std::to_string(header.line) + ": column '" + name + "' appears twice");
  }
  for (const auto& c : cols)
    if (!at.count(c)) errors.push_back(source + ":" + std::to_string(header.line) + ": missing column '" + c + "'");
  if (!errors.empty()) {
    std::string msg = source + ": bad header (expected columns ";
    for (size_t i = 0; i < cols.size(); ++i) msg += (i ? "," : "") + cols[i];
    msg += "):";
    for (const auto& e : errors) msg += "\n  " + e;
    throw CatalogImportError(msg, errors);
  }

  // Rows: validate everything first, write nothing until all rows are good.
  NameCheck names(vocab, vocab ? items() : std::vector<CatalogItem>{});
  std::vector<CatalogItem> rows;
  std::set<std::string> skus;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    const std::string where = source + ":" + std::to_string(rec.line) + ": ";
    if (rec.fields.size() != header.fields.size()) {
      errors.push_back(where + "expected " + std::to_string(header.fields.size()) + " fields, found " +
                       std::to_string(rec.fields.size()));
      continue;
    }
    auto field = [&](const char* c) { return trim(rec.fields[at.at(c)]); };
    auto bad = [&](const char* c, const std::string& what) {
      errors.push_back(where + "column '" + c + "': " + what);
    };
    CatalogItem it;
    it.sku = field("sku");
    if (it.sku.empty()) bad("sku", "empty");
    else if (std::any_of(it.sku.begin(), it.sku.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }))
      bad("sku", "'" + it.sku + "' contains white space");
    else if (!skus.insert(it.sku).second) bad("sku", "'" + it.sku + "' appears twice in the file");
    it.name = field("name");
    if (it.name.empty()) bad("name", "empty");
    it.category = lower(field("category"));
    if (!is_token(it.category)) bad("category", "'" + field("category") + "' is not a category name (letters, digits, _ -)");
    it.slot = lower(field("slot"));
    if (std::find(kSlots().begin(), kSlots().end(), it.slot) == kSlots().end())
      bad("slot", "'" + field("slot") + "' is not one of top, bottom, one_piece, outerwear, shoes, accessory");
    if (is_token(it.category) && std::find(kSlots().begin(), kSlots().end(), it.slot) != kSlots().end())
      if (const std::string why = names.category(it.category, it.slot); !why.empty()) bad("category", why);
    it.colour_name = lower(field("colour"));
    if (!is_token(it.colour_name)) bad("colour", "'" + field("colour") + "' is not a colour name");
    else if (const std::string why = names.colour(it.colour_name); !why.empty()) bad("colour", why);
    try {
      it.colour_hex = rgb_to_hex(hex_to_rgb(field("hex")));
    } catch (const std::invalid_argument&) {
      bad("hex", "'" + field("hex") + "' is not a colour of the form #RRGGBB");
    }
    for (const auto& c : split_list(lower(field("colours")))) {
      if (!is_token(c)) bad("colours", "'" + c + "' is not a colour name");
      else if (c != it.colour_name)
        if (const std::string why = names.colour(c); !why.empty()) bad("colours", why);
      if (std::find(it.colours.begin(), it.colours.end(), c) == it.colours.end()) it.colours.push_back(c);
    }
    if (!it.colour_name.empty()) {
      it.colours.erase(std::remove(it.colours.begin(), it.colours.end(), it.colour_name), it.colours.end());
      it.colours.insert(it.colours.begin(), it.colour_name);
    }
    it.styles = split_list(lower(field("styles")));
    if (it.styles.empty()) bad("styles", "empty (at least one style such as casual, business, street, sport, formal)");
    for (const auto& s : it.styles)
      if (!is_token(s)) bad("styles", "'" + s + "' is not a style name");
      else if (const std::string why = names.style(s); !why.empty()) bad("styles", why);
    if (split_list(field("seasons")).empty()) bad("seasons", "empty (use 'all' for all seasons)");
    for (auto s : split_list(lower(field("seasons")))) {
      if (s == "fall") s = "autumn";
      if (!names.season_known(s))
        bad("seasons", "'" + s + "' is not one of " + names.seasons_text());
      else if (std::find(it.seasons.begin(), it.seasons.end(), s) == it.seasons.end())
        it.seasons.push_back(s);
    }
    if (!parse_number(field("price"), it.price) || it.price < 0)
      bad("price", "'" + field("price") + "' is not a non-negative number");
    if (!parse_number(field("popularity"), it.popularity) || it.popularity < 0 || it.popularity > 100)
      bad("popularity", "'" + field("popularity") + "' is not a number in [0, 100]");
    it.source = source;
    rows.push_back(std::move(it));
  }
  if (!errors.empty()) {
    std::string msg = source + ": import rejected, nothing was written (" + std::to_string(errors.size()) +
                      (errors.size() == 1 ? " problem" : " problems") + "):";
    for (size_t i = 0; i < errors.size() && i < 20; ++i) msg += "\n  " + errors[i];
    if (errors.size() > 20) msg += "\n  ... and " + std::to_string(errors.size() - 20) + " more";
    throw CatalogImportError(msg, errors);
  }

  ImportResult result;
  result.rows = static_cast<int64_t>(rows.size());
  result.new_names = names.new_names;
  exec(db_.get(), "BEGIN IMMEDIATE");
  try {
    Stmt exists(db_.get(), "SELECT 1 FROM items WHERE sku = ?1");
    Stmt upsert(db_.get(),
                "INSERT INTO items(sku, name, category, slot, colour_name, colour_hex, colours, styles, seasons, price, "
                "popularity, source) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                "ON CONFLICT(sku) DO UPDATE SET name = ?2, category = ?3, slot = ?4, colour_name = ?5, "
                "colour_hex = ?6, colours = ?7, styles = ?8, seasons = ?9, price = ?10, popularity = ?11, source = ?12");
    for (const CatalogItem& it : rows) {
      exists.bind(1, it.sku);
      const bool had = exists.step();
      exists.reset();
      upsert.bind(1, it.sku);
      upsert.bind(2, it.name);
      upsert.bind(3, it.category);
      upsert.bind(4, it.slot);
      upsert.bind(5, it.colour_name);
      upsert.bind(6, it.colour_hex);
      upsert.bind(7, json_list(it.colours));
      upsert.bind(8, json_list(it.styles));
      upsert.bind(9, json_list(it.seasons));
      upsert.bind(10, it.price);
      upsert.bind(11, it.popularity);
      upsert.bind(12, it.source);
      upsert.step();
      upsert.reset();
      ++(had ? result.updated : result.inserted);
    }
  } catch (...) {
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  exec(db_.get(), "COMMIT");
  return result;
}

}  // namespace m2fp
