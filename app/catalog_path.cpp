// app/catalog_path.cpp: where the product catalogue lives by default (commands.h).
#include <cstdlib>

#include "app/commands.h"

namespace m2fp::app {

std::string default_catalog_path() {
  if (const char* env = std::getenv("M2FP_CATALOG"); env && *env) return env;
  return "data/catalog.db";
}

}  // namespace m2fp::app
