// model_loader/safetensors.h: read-only, memory-mapped safetensors files (floor 2).
//
// Format (https://huggingface.co/docs/safetensors): 8-byte little-endian header length N, then N
// bytes of UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "string", ...}}, then the raw little-endian tensor bytes; offsets are
// relative to the first byte after the header.
//
// open() validates everything before any tensor is touched: header length bounds, JSON syntax and
// types, dtype names, shape x dtype size == byte size, offsets inside the data section and not
// overlapping. Every error is a LoadError whose message names the file (and the key, if any).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace m2fp {

struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };
const char* dtype_name(DType d);   // safetensors spelling: "F32", "I64", ...
size_t dtype_size(DType d);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;      // byte offsets relative to the data section
  const uint8_t* data = nullptr;    // points into the mapping
  int64_t numel() const;
  std::string shape_str() const;    // "[256, 128, 1, 1]"
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header. Throws LoadError.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in file order
  const TensorView* find(const std::string& name) const;               // null if absent
  // Tells the kernel the pages of a tensor are no longer needed (after the engine copied or
  // reordered it), so they stop counting towards the resident set.
  void release(const TensorView& t) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  uint64_t size_ = 0;
  const uint8_t* map_ = nullptr;
  const uint8_t* data_ = nullptr;   // first byte after the header
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace m2fp
