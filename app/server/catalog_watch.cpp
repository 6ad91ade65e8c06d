// app/server/catalog_watch.cpp: the catalogue read at start and again after each change of its file.
#include "app/server/catalog_watch.h"

#include <cstdio>

#include "service/outfits.h"

namespace m2fp::app {

CatalogWatch::CatalogWatch(const std::string& path, const OutfitKit& kit, bool log_changes)
    : path_(path), log_changes_(log_changes) {
  try {
    items_ = std::make_shared<const std::vector<CatalogItem>>(service::open_catalog(path_, kit).items());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + " (--catalog FILE.db chooses where the catalogue lives)");
  }
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0) mtime_ = st.st_mtim, size_ = st.st_size;
}

std::shared_ptr<const std::vector<CatalogItem>> CatalogWatch::items() {
  std::lock_guard<std::mutex> lock(mu_);
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 &&
      (st.st_mtim.tv_sec != mtime_.tv_sec || st.st_mtim.tv_nsec != mtime_.tv_nsec || st.st_size != size_)) {
    try {
      items_ = std::make_shared<const std::vector<CatalogItem>>(Catalog::open(path_).items());
      mtime_ = st.st_mtim;
      size_ = st.st_size;
      if (log_changes_)
        std::fprintf(stderr, "m2fp serve: catalogue %s changed, %zu items\n", path_.c_str(), items_->size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "m2fp serve: catalogue %s: %s (keeping the %zu items read before)\n", path_.c_str(),
                   e.what(), items_->size());
    }
  }
  return items_;
}

}  // namespace m2fp::app
