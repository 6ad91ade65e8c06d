// app/server/web_assets.h: the web page's files (web/), embedded in the binary at build time by
// cmake/embed_web_assets.cmake so `m2fp serve` needs no files beside it; and docs/openapi.json.
#pragma once

#include <cstddef>
#include <string>

namespace m2fp::app {

struct WebAsset {
  const char* name;          // file name in web/, e.g. "index.html"
  const char* content_type;  // e.g. "text/html; charset=utf-8"
  const unsigned char* data;
  size_t size;
};

// The embedded file called `name`, or nullptr.
const WebAsset* find_web_asset(const std::string& name);
// Every embedded file (for tests), terminated by an entry with name == nullptr.
const WebAsset* web_assets();
// The same for the files of docs/ the server serves (openapi.json: GET /openapi.json).
const WebAsset* find_doc_asset(const std::string& name);
const WebAsset* doc_assets();

}  // namespace m2fp::app
