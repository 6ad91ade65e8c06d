// engine/io.cpp: .npy, PNG and base64 writers (see io.h). stb_image_write's implementation is in
// libstb (Debian libstb-dev): only the header here.
#include "engine/io.h"

#include <stb_image_write.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace m2fp {
namespace {

static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "npy '<f4' needs IEEE float");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy writer assumes a little-endian host"
#endif

std::string errno_text(int e) { return std::strerror(e); }

// Writes the chunks to path + ".tmp", then renames. Removes the temporary on any failure.
struct AtomicFile {
  std::string path, tmp;
  FILE* f = nullptr;
  explicit AtomicFile(const std::string& p) : path(p), tmp(p + ".tmp") {
    if (path.empty()) throw IoError("cannot write a file with an empty path");
    f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw IoError("cannot create '" + tmp + "': " + errno_text(errno));
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (f) {
      std::fclose(f);
      std::remove(tmp.c_str());
    }
  }
  void write(const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, f) != n) {
      const int e = errno;
      throw IoError("cannot write " + std::to_string(n) + " bytes to '" + tmp +
                    "': " + errno_text(e));
    }
  }
  void commit() {
    if (std::fflush(f) != 0) {
      const int e = errno;
      throw IoError("cannot write '" + tmp + "': " + errno_text(e));
    }
    FILE* g = f;
    f = nullptr;
    if (std::fclose(g) != 0) {
      const int e = errno;
      std::remove(tmp.c_str());
      throw IoError("cannot write '" + tmp + "': " + errno_text(e));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      std::remove(tmp.c_str());
      throw IoError("cannot rename '" + tmp + "' to '" + path + "': " + errno_text(e));
    }
  }
};

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& path) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw IoError("write_npy '" + path + "': negative dimension in shape");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw IoError("write_npy '" + path + "': shape overflows");
    n *= d;
  }
  return n;
}

void write_npy_raw(const std::string& path, const char* descr, const void* data, size_t elem,
                   const std::vector<int64_t>& shape) {
  const int64_t n = checked_numel(shape, path);
  if (n > 0 && !data) throw IoError("write_npy '" + path + "': null data for " + std::to_string(n) + " elements");
  const std::string header = npy_header(descr, shape);
  AtomicFile f(path);
  f.write(header.data(), header.size());
  f.write(data, (size_t)n * elem);
  f.commit();
}

void write_png_file(const std::string& path, const uint8_t* px, int w, int h, int ch) {
  const std::vector<uint8_t> bytes = encode_png(px, w, h, ch);
  write_file_atomic(path, bytes.data(), bytes.size());
}

// stb_image_write's output callback: C code calls it, so no exception may escape.
struct PngSink {
  std::vector<uint8_t> bytes;
  bool failed = false;
};
void append_bytes(void* ctx, void* data, int size) {
  auto* sink = static_cast<PngSink*>(ctx);
  if (sink->failed) return;
  try {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    sink->bytes.insert(sink->bytes.end(), p, p + size);
  } catch (...) {
    sink->failed = true;
  }
}

}  // namespace

std::string npy_header(const char* descr, const std::vector<int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // magic(6) + version(2) + length(2) + dict + padding + '\n' = multiple of 64
  const size_t prefix = 10;
  size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  if (total - prefix > 65535) throw IoError("npy header too long for format 1.0");
  dict.append(total - prefix - 1 - dict.size(), ' ');
  dict += '\n';
  const uint16_t hlen = (uint16_t)dict.size();
  std::string out("\x93NUMPY\x01\x00", 8);
  out += (char)(hlen & 0xFF);
  out += (char)(hlen >> 8);
  return out + dict;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  write_npy_raw(path, "<f4", data, 4, shape);
}
void write_npy(const std::string& path, const uint8_t* data, const std::vector<int64_t>& shape) {
  write_npy_raw(path, "|u1", data, 1, shape);
}
void write_npy(const std::string& path, const int32_t* data, const std::vector<int64_t>& shape) {
  write_npy_raw(path, "<i4", data, 4, shape);
}

std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || !pixels)
    throw IoError("encode_png: invalid image " + std::to_string(width) + "x" +
                  std::to_string(height) + "x" + std::to_string(channels));
  if ((int64_t)width * channels > std::numeric_limits<int>::max() / 2)
    throw IoError("encode_png: rows of " + std::to_string(width) + " pixels are too wide");
  PngSink sink;
  if (!stbi_write_png_to_func(append_bytes, &sink, width, height, channels, pixels,
                              width * channels) ||
      sink.failed)
    throw IoError("encode_png: stb_image_write failed on a " + std::to_string(width) + "x" +
                  std::to_string(height) + " image (out of memory?)");
  return std::move(sink.bytes);
}

namespace {
uint32_t png_crc(const uint8_t* p, size_t n, uint32_t c = 0xffffffffu) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c;
}
void put_be32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
// stb writes the signature then IHDR (13 bytes of data) at byte 8; rewrite its bit depth and
// colour type (bytes 24, 25 of the file) and its CRC. The filtered bytes stay valid when the bytes
// per pixel do not change (gray8 -> palette8, gray+alpha 8 -> gray16).
void patch_ihdr(std::vector<uint8_t>& png, uint8_t depth, uint8_t colour_type) {
  png[24] = depth;
  png[25] = colour_type;
  put_be32(png.data() + 29, png_crc(png.data() + 12, 17) ^ 0xffffffffu);
}
}  // namespace

std::vector<uint8_t> encode_png_palette(const uint8_t* indices, int width, int height,
                                        const std::vector<std::array<uint8_t, 3>>& palette) {
  if (palette.empty() || palette.size() > 256) throw IoError("encode_png_palette: 1 to 256 colours");
  std::vector<uint8_t> png = encode_png(indices, width, height, 1);
  patch_ihdr(png, 8, 3);
  std::vector<uint8_t> chunk(12 + 3 * palette.size());
  put_be32(chunk.data(), (uint32_t)(3 * palette.size()));
  std::memcpy(chunk.data() + 4, "PLTE", 4);
  for (size_t i = 0; i < palette.size(); ++i)
    for (int k = 0; k < 3; ++k) chunk[8 + 3 * i + k] = palette[i][k];
  put_be32(chunk.data() + 8 + 3 * palette.size(), png_crc(chunk.data() + 4, 4 + 3 * palette.size()) ^ 0xffffffffu);
  png.insert(png.begin() + 33, chunk.begin(), chunk.end());  // right after IHDR
  return png;
}

std::vector<uint8_t> encode_png_gray16(const uint16_t* values, int width, int height) {
  if (width <= 0 || height <= 0 || !values) throw IoError("encode_png_gray16: invalid image");
  std::vector<uint8_t> be((size_t)width * height * 2);
  for (size_t i = 0; i < (size_t)width * height; ++i) be[2 * i] = (uint8_t)(values[i] >> 8), be[2 * i + 1] = (uint8_t)values[i];
  std::vector<uint8_t> png = encode_png(be.data(), width, height, 2);
  patch_ihdr(png, 16, 0);
  return png;
}

void write_png_gray8(const std::string& path, const uint8_t* pixels, int width, int height) {
  write_png_file(path, pixels, width, height, 1);
}
void write_png_rgb(const std::string& path, const uint8_t* rgb, int width, int height) {
  write_png_file(path, rgb, width, height, 3);
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

std::string base64_encode(const uint8_t* data, size_t size) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < size) {
    uint32_t v = (uint32_t)data[i] << 16;
    if (i + 1 < size) v |= (uint32_t)data[i + 1] << 8;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < size ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace m2fp
