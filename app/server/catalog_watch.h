// app/server/catalog_watch.h: the catalogue's items, read again when its database file changes (an
// `m2fp catalog import` while the server runs).
#pragma once

#include <sys/stat.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "outfit/catalog.h"
#include "outfit/outfit.h"

namespace m2fp::app {

class CatalogWatch {
 public:
  // Opens the catalogue (service::open_catalog: created and seeded on first use). Throws.
  CatalogWatch(const std::string& path, const OutfitKit& kit, bool log_changes);
  // The items now: re-read when the file's size or modification time changed; when that fails the
  // items read before are kept (and the failure logged).
  std::shared_ptr<const std::vector<CatalogItem>> items();
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const bool log_changes_;
  std::mutex mu_;
  std::shared_ptr<const std::vector<CatalogItem>> items_;
  struct timespec mtime_ {};
  off_t size_ = -1;
};

}  // namespace m2fp::app
