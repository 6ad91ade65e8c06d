// model_loader/safetensors.h: read-only, memory-mapped safetensors files (floor 2).
//
// Format (https://huggingface.co/docs/safetensors): 8-byte little-endian header length N, then N
// bytes of UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "string", ...}}, then the raw little-endian tensor bytes; offsets are
// relative to the first byte after the header.
//
//   file:  [ N : u64 LE ][ header : N bytes of JSON ][ data section : file_size - 8 - N bytes ]
//                                                     ^ data_ ; tensor t lives in data_[t.begin, t.end)
//
// open() validates everything before any tensor is touched: header length bounds
// (2 <= N <= min(file_size - 8, 100 MiB)), JSON syntax (duplicate keys refused, nesting depth
// bounded), types, dtype names, shapes (non-negative, no overflow), shape x dtype size == byte size,
// offsets inside the data section and not overlapping. Every error is a LoadError whose message
// names the file (and the key, if any), e.g.
//   "model.safetensors: tensor 'backbone.stem.conv1.weight': data_offsets [0, 100] do not match
//    shape [64, 3, 3, 3] x F32 = 6912 bytes".
// Extra fields inside a tensor entry are ignored (as the reference implementation does); holes
// between tensors and trailing bytes after the last one are allowed.
//
// The mapping is MAP_PRIVATE + PROT_READ: nothing is ever written back. A file truncated or
// rewritten in place by another process while it is mapped (e.g. `cp new.safetensors model.safetensors`
// during a load) is detected instead of crashing the process:
//   - touching a page past the new end of the file raises SIGBUS; a process-wide SIGBUS handler
//     (installed at the first open(), chaining to any previous handler for faults elsewhere)
//     replaces the lost pages of OUR mappings with zero pages and marks the file damaged, so the
//     reader continues with zeros instead of dying;
//   - check_unchanged() (called by release() and at the end of open()) throws LoadError when the
//     file was damaged that way or when its size or modification time differ from open()'s.
// So a loader that copies what it needs and then release()s every tensor (M2FP::load does) either
// gets the weights of one consistent file or a LoadError, never SIGBUS and never silently mixed
// weights. Trade-off against reading the file into memory: no second copy of the weights in memory
// and no read of tensors that are never used, for a signal handler and a change check. A same-size
// rewrite within one tick of the file-system clock (a few ms) keeps the same mtime and is missed.
// Replacing the file by rename (an atomic update) is harmless: the mapping keeps the old inode.
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
// Parses a safetensors dtype name ("F32", ...). Returns false for a name not in DType.
bool dtype_from_name(const std::string& name, DType* out);

// "[256, 128, 1, 1]"; "[]" for a scalar.
std::string shape_to_string(const std::vector<int64_t>& shape);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;      // byte offsets relative to the data section
  const uint8_t* data = nullptr;    // points into the mapping (data section + begin)
  int64_t numel() const;            // product of shape (1 for a scalar); checked at open()
  uint64_t nbytes() const { return end - begin; }
  std::string shape_str() const;    // "[256, 128, 1, 1]"
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header. Throws LoadError.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // The same validation on an in-memory copy of a file's bytes (fuzzing, uploads); `name` stands
  // for the path in messages. Nothing is mapped: release() only checks its argument.
  static std::unique_ptr<SafetensorsFile> from_bytes(const uint8_t* bytes, size_t size, const std::string& name);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB
  static constexpr int kMaxJsonDepth = 16;                    // a valid header nests 3 deep

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  uint64_t header_size() const { return header_size_; }     // N
  uint64_t data_size() const { return size_ - 8 - header_size_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in header order
  const TensorView* find(const std::string& name) const;               // null if absent
  // Tells the kernel the pages of a tensor are no longer needed (after the engine copied or
  // reordered it), so they stop counting towards the resident set: madvise(MADV_DONTNEED) on the
  // whole pages inside [data + begin, data + end). Reading the tensor again afterwards is still
  // valid (the pages are read back from the file). Throws LoadError if `t` is not from this file,
  // or (check_unchanged) if the file changed since open().
  void release(const TensorView& t) const;
  // Throws LoadError if the mapped file was truncated or rewritten since open() (a page could not
  // be read, or its size or modification time changed): the bytes read from it may be zeros or a
  // mix of two files. No-op for from_bytes().
  void check_unchanged() const;

 private:
  SafetensorsFile() = default;
  void parse_header();              // fills metadata_, tensors_, index_; throws LoadError
  std::string path_;
  uint64_t size_ = 0;
  uint64_t header_size_ = 0;
  const uint8_t* map_ = nullptr;
  bool mapped_ = false;             // map_ is an mmap of fd_ (else it points into owned_)
  int fd_ = -1;                     // kept open for check_unchanged() (fstat)
  int64_t mtime_ns_ = 0;            // modification time at open()
  int guard_slot_ = -1;             // SIGBUS guard registration (-1: none)
  std::vector<uint8_t> owned_;      // from_bytes(): the bytes
  const uint8_t* data_ = nullptr;   // first byte after the header
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace m2fp
