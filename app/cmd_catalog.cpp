// app/cmd_catalog.cpp: `m2fp catalog`: a shop's own catalogue in the SQLite database the server and
// `m2fp parse` recommend from.
//
//   m2fp catalog import FILE.csv [--catalog FILE.db]   add / update items (all or nothing)
//   m2fp catalog list [--catalog FILE.db] [--json]      the items
//   m2fp catalog info [--catalog FILE.db]               path, item count, counts per slot and source
//
// The database is created on first use and seeded from outfit/data/seed_catalog.csv
// (service::open_catalog); service::default_catalog_path() says where it lives without --catalog.
#include <cstdio>
#include <filesystem>
#include <map>

#include "app/args.h"
#include "app/commands.h"
#include "outfit/catalog.h"
#include "outfit/outfit.h"
#include "outfit/outfit_json.h"
#include "service/outfits.h"

namespace fs = std::filesystem;

namespace m2fp::app {

namespace {

const CommandSpec& catalog_spec() {
  static const CommandSpec spec = {
      "m2fp catalog import FILE.csv | list | info [options]",
      "The product catalogue recommendations come from (SQLite; created from outfit/data/seed_catalog.csv on first\n"
      "use).\n"
      "  import FILE.csv  add or update items by sku, all or nothing (the CSV format: outfit/README.md); category,\n"
      "                   colours, styles and seasons must be names the outfit tables know (outfit/data/rules.json)\n"
      "  list             the items, one per line (or --json)\n"
      "  info             the catalogue's path, item count, counts per slot and per source file",
      {
          {"catalog", "FILE.db", "", "the catalogue; without it $M2FP_CATALOG, else data/catalog.db in the current folder"},
          {"allow-new", "", "", "import: accept categories, styles and colours the outfit tables do not know (they are listed; such items match no pairing rule)"},
          {"json", "", "", "list: the items as a JSON array"},
      },
      ""};
  return spec;
}

Catalog open_catalog(const std::string& path, const OutfitKit& kit) { return service::open_catalog(path, kit); }

}  // namespace

int cmd_catalog(int argc, char** argv) {
  if (argc < 3) throw UsageError("catalog needs a sub-command: import FILE.csv | list | info");
  const std::string sub = argv[2];
  if (sub == "-h" || sub == "--help") return print_help(catalog_spec());
  Args a(argc, argv, 3, catalog_spec());
  if (a.has("help")) return print_help(catalog_spec());
  const std::string path = a.has("catalog") ? a.get("catalog") : service::default_catalog_path();
  if (sub != "import" && a.has("allow-new")) throw UsageError("--allow-new is an option of catalog import");
  if (sub != "list" && a.has("json")) throw UsageError("--json is an option of catalog list");

  if (sub == "import") {
    if (a.positional().size() != 1) throw UsageError("catalog import takes exactly one FILE.csv");
    const std::string csv = a.positional()[0];
    std::error_code ec;
    if (!fs::is_regular_file(csv, ec)) throw std::runtime_error(csv + ": no such file");
    const OutfitKit kit = OutfitKit::load();
    Catalog cat = open_catalog(path, kit);
    const int64_t before = cat.count();
    CatalogVocabulary vocab = kit.catalog_vocabulary();
    vocab.allow_new = a.has("allow-new");
    try {
      const ImportResult r = cat.import_csv(csv, &vocab);
      std::printf("%s: %lld %s: %lld new, %lld updated; %s now holds %lld %s (was %lld)\n", csv.c_str(),
                  (long long)r.rows, r.rows == 1 ? "row" : "rows", (long long)r.inserted, (long long)r.updated,
                  path.c_str(), (long long)cat.count(), cat.count() == 1 ? "item" : "items", (long long)before);
      for (const std::string& n : r.new_names)
        std::printf("  new %s, accepted by --allow-new (the outfit rules do not know it)\n", n.c_str());
    } catch (const CatalogImportError& e) {
      std::fprintf(stderr, "m2fp catalog import: %s rejected, the catalogue is unchanged (%lld %s):\n", csv.c_str(),
                   (long long)before, before == 1 ? "item" : "items");
      bool unknown = false;
      for (const std::string& err : e.errors()) {
        std::fprintf(stderr, "  %s\n", err.c_str());
        unknown = unknown || err.find("is not a known") != std::string::npos;
      }
      if (unknown)
        std::fprintf(stderr, "m2fp catalog import: names unknown to the outfit tables (outfit/data/rules.json) "
                             "match no rule; --allow-new accepts them on purpose\n");
      return 1;
    }
    return 0;
  }
  if (!a.positional().empty()) throw UsageError("catalog " + sub + " takes no positional arguments");
  if (sub == "list") {
    Catalog cat = open_catalog(path, OutfitKit::load());
    const std::vector<CatalogItem> items = cat.items();
    if (a.has("json")) {
      nlohmann::json j = nlohmann::json::array();
      for (const CatalogItem& it : items) j.push_back(to_json(it));
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("%-5s %-14s %-10s %-10s %-10s %8s  %s\n", "id", "sku", "slot", "category", "colour", "price", "name");
    for (const CatalogItem& it : items)
      std::printf("%-5lld %-14s %-10s %-10s %-10s %8.2f  %s\n", (long long)it.id, it.sku.c_str(), it.slot.c_str(),
                  it.category.c_str(), it.colour_name.c_str(), it.price, it.name.c_str());
    return 0;
  }
  if (sub == "info") {
    Catalog cat = open_catalog(path, OutfitKit::load());
    const std::vector<CatalogItem> items = cat.items();
    std::map<std::string, int> slots, sources;
    for (const CatalogItem& it : items) ++slots[it.slot], ++sources[it.source];
    std::printf("catalogue: %s\nitems:     %zu\n", fs::absolute(path).string().c_str(), items.size());
    for (const auto& [s, n] : slots) std::printf("  slot %-10s %d\n", s.c_str(), n);
    for (const auto& [s, n] : sources) std::printf("  from %s: %d\n", s.c_str(), n);
    return 0;
  }
  throw UsageError("unknown catalog sub-command '" + sub + "' (import FILE.csv | list | info)");
}

}  // namespace m2fp::app
