// engine/io.h: output writers: numpy .npy tensors, PNG pictures (file or memory), base64.
//
// Every file write goes to `path + ".tmp"` first and is renamed over `path` only once it is
// complete, so a failure (disk full, killed process) never leaves a half-written file under the
// final name. Errors throw IoError naming the path and the system's reason (errno text).
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/image.h"

namespace m2fp {

struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// numpy .npy format 1.0: magic "\x93NUMPY", version 1.0, little-endian uint16 header length, a
// Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (...), } padded with
// spaces to a multiple of 64 bytes and ended by '\n', then the data in C order, little endian.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const uint8_t* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const int32_t* data, const std::vector<int64_t>& shape);
// The header alone (exposed for tests): descr is a numpy dtype string such as "<f4", "|u1", "<i4".
std::string npy_header(const char* descr, const std::vector<int64_t>& shape);

// PNG encoding (8-bit; channels 1 = grey, 2 = grey + alpha, 3 = RGB, 4 = RGBA): every row filtered
// with Up, compressed by png_deflate (engine/png_deflate.h: matches one byte, one pixel and one row
// back, Huffman codes per block; several times faster than libdeflate's level 1 on label maps).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels);
inline std::vector<uint8_t> encode_png(const Image& img) {
  return encode_png(img.rgb.data(), img.width, img.height, 3);
}
// An 8-bit palette ('P') PNG: pixel values are palette indices (kept as written), `palette` RGB
// triples (at most 256) in a PLTE chunk.
std::vector<uint8_t> encode_png_palette(const uint8_t* indices, int width, int height,
                                        const std::vector<std::array<uint8_t, 3>>& palette);
// A 16-bit greyscale PNG of `values` [height * width].
std::vector<uint8_t> encode_png_gray16(const uint16_t* values, int width, int height);
void write_png_gray8(const std::string& path, const uint8_t* pixels, int width, int height);
void write_png_rgb(const std::string& path, const uint8_t* rgb, int width, int height);
inline void write_png_rgb(const std::string& path, const Image& img) {
  write_png_rgb(path, img.rgb.data(), img.width, img.height);
}

// A PNG whose rows are written in place (no picture buffer of its own, no copy): an 8-bit picture of
// 1..4 channels (grey, grey + alpha, RGB, RGBA) or of palette indices. row(y) is row y's
// width * channels bytes, which the caller fills (every byte), then encode() or write(path) filters
// (Up), compresses and gives or writes the PNG, the bytes encode_png gives for the same pixels.
// One encode() or write() per writer. The rows live in a block of the buffer pool (engine/buffer_pool.h).
class PngWriter {
 public:
  PngWriter(int width, int height, int channels);
  PngWriter(int width, int height, const std::vector<std::array<uint8_t, 3>>& palette);
  PngWriter(PngWriter&&) noexcept;
  PngWriter& operator=(PngWriter&&) noexcept;
  ~PngWriter();
  int width() const;
  int height() const;
  uint8_t* row(int y);
  size_t stride() const;  // bytes from row(y) to row(y + 1)
  // Any PNG without interlacing: rows of `row_bytes` bytes as PNG stores them (big-endian samples),
  // IHDR's bit depth and colour type as given, a PLTE chunk when `plte` is not empty. `who` names
  // the caller in errors.
  PngWriter(const char* who, int width, int height, size_t row_bytes, uint8_t depth, uint8_t colour_type,
            std::vector<uint8_t> plte);
  // All rows from `px` (height rows, back to back), filtered as they are copied.
  void set_rows(const uint8_t* px);
  std::vector<uint8_t> encode();
  void write(const std::string& path);  // atomically, as write_file_atomic

 private:
  void filter();
  void encode_to(const std::function<void(const uint8_t*, size_t)>& out);
  struct Rows;
  std::unique_ptr<Rows> rows_;
  bool filtered_ = false;
};

// Writes bytes atomically (tmp + rename): JSON, PNG bytes, anything.
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

// Writes, atomically as above, the bytes `produce` hands to the function it is given, piece by
// piece (a large document need not be held whole in memory).
void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(const void*, size_t)>&)>& produce);

// Standard base64 (RFC 4648 alphabet, '=' padding, no line breaks).
std::string base64_encode(const uint8_t* data, size_t size);
inline std::string base64_encode(const std::vector<uint8_t>& v) {
  return base64_encode(v.data(), v.size());
}

}  // namespace m2fp
