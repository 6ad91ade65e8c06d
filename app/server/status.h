// app/server/status.h: the model file as loaded versus now on disk, for GET /health.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <string>

#include <nlohmann/json.hpp>

namespace m2fp::app {

// The server keeps serving the weights it loaded (they are in memory: a file truncated, rewritten or
// replaced underneath cannot hurt it) and says here, once in the log too, when the file has changed,
// so that an operator knows a restart is needed to use the new file.
class ModelFileWatch {
 public:
  // Call just before loading the model from `path` (stub: no model file is read).
  ModelFileWatch(const std::string& path, bool stub);
  // {"path", "state": unchanged | changed | missing | unknown | stub, "loaded_bytes", "note"?}
  nlohmann::json status();

 private:
  const std::string path_;
  const bool stub_;
  struct stat loaded_ {};
  bool loaded_ok_ = false;
  std::atomic<bool> change_logged_{false};
};

}  // namespace m2fp::app
