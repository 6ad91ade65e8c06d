// service/outfits.cpp: the default catalogue path and opening (or creating) a catalogue.
#include "service/outfits.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

namespace fs = std::filesystem;

namespace m2fp::service {
namespace {

// Why a catalogue could not be created or opened, as far as its folder tells: "" when nothing is
// visibly wrong with it.
std::string folder_problem(const std::string& path, bool existed) {
  const fs::path file(path);
  const fs::path parent = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    return "; '" + parent.string() + "' is not a folder" + (ec ? " (" + ec.message() + ")" : std::string());
  if (existed) return "";
  // Can a file be created there? (root ignores permission bits, so ask the file system.)
  const std::string probe =
      (parent / (".m2fp-write-test-" + std::to_string(std::random_device{}()) + "-" + std::to_string(::getpid())))
          .string();
  const int fd = ::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  if (fd < 0) return "; cannot create files in '" + parent.string() + "': " + std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}

}  // namespace

std::string default_catalog_path() {
  if (const char* env = std::getenv("M2FP_CATALOG"); env && *env) return env;
  return "data/catalog.db";
}

Catalog open_catalog(const std::string& path, const OutfitKit& kit) {
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);  // a failure shows in the reason below
  const bool existed = path == ":memory:" || fs::exists(path, ec);
  try {
    const CatalogVocabulary vocab = kit.catalog_vocabulary();  // the seed is held to the tables too
    return Catalog::open_or_create(path, kit.seed_catalog(), &vocab);
  } catch (const std::exception& e) {
    if (!existed)
      for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(path + suffix, ec);
    throw std::runtime_error(std::string(e.what()) + folder_problem(path, existed));
  }
}

OutfitSetup load_outfit_setup(const std::string& catalog, const RecommendOptions& reco) {
  OutfitSetup s;
  s.reco = reco;
  s.kit = std::make_unique<OutfitKit>(OutfitKit::load());
  check_recommend_options(s.reco, s.kit->rules);  // style / occasion / season, before any photo
  std::error_code ec;
  if (!catalog.empty()) {
    s.catalog_name = catalog;
    s.catalog = std::make_unique<Catalog>(open_catalog(s.catalog_name, *s.kit));
  } else if (fs::exists(default_catalog_path(), ec)) {
    s.catalog_name = default_catalog_path();
    s.catalog = std::make_unique<Catalog>(Catalog::open(s.catalog_name));
  } else {
    s.catalog_name = s.kit->seed_catalog() + " (in memory)";
    s.catalog = std::make_unique<Catalog>(open_catalog(":memory:", *s.kit));
  }
  return s;
}

}  // namespace m2fp::service
