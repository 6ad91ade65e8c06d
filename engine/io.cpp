// engine/io.cpp: .npy, PNG and base64 writers (see io.h). PNG: the rows filtered here (filter Up),
// compressed by png_deflate (engine/png_deflate.h), wrapped in PNG chunks (their CRC-32 and the
// zlib stream's Adler-32 from libdeflate, Debian libdeflate-dev); the large buffers (rows,
// compressed data) come from the buffer pool.
#include "engine/io.h"

#include <libdeflate.h>
#include <omp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include "engine/buffer_pool.h"
#include "engine/png_deflate.h"

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
  if (w <= 0 || h <= 0 || ch < 1 || ch > 4 || !px)
    throw IoError("encode_png: invalid image " + std::to_string(w) + "x" + std::to_string(h) + "x" + std::to_string(ch));
  PngWriter png(w, h, ch);
  png.set_rows(px);
  png.write(path);
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

namespace {

// CRC-32 of PNG chunks (the zlib/ISO-HDLC polynomial), libdeflate's (PCLMUL where available).
uint32_t png_crc(const uint8_t* p, size_t n) { return libdeflate_crc32(0, p, n); }

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// Appends one chunk (length, type, data, CRC of type + data).
void put_chunk(std::vector<uint8_t>& png, const char type[4], const uint8_t* data, size_t n) {
  const size_t at = png.size();
  png.resize(at + 12 + n);
  put_be32(png.data() + at, (uint32_t)n);
  std::memcpy(png.data() + at + 4, type, 4);
  if (n) std::memcpy(png.data() + at + 8, data, n);
  put_be32(png.data() + at + 8 + n, png_crc(png.data() + at + 4, 4 + n));
}

// Each row is filtered with Up (the difference to the row above: label maps and masks repeat rows, so
// most filtered rows are zeros; photos compress about as well as with the adaptive choice) and the
// whole image compressed as one zlib stream by png_deflate (matches one byte, one pixel and one row
// back).

void check_png_size(const char* who, int width, int height, size_t row_bytes) {
  if (width <= 0 || height <= 0)
    throw IoError(std::string(who) + ": invalid image " + std::to_string(width) + "x" + std::to_string(height));
  if (row_bytes > (size_t)std::numeric_limits<int32_t>::max() / 2)
    throw IoError(std::string(who) + ": rows of " + std::to_string(width) + " pixels are too wide");
}

}  // namespace

// The filtered rows (filter byte + row) in one block of the buffer pool: a 12-megapixel RGB picture
// is 36 MB, whose pages a fresh allocation would fault in again for every picture.
struct PngWriter::Rows {
  int width = 0, height = 0;
  size_t row_bytes = 0;
  uint8_t depth = 8, colour_type = 0;
  std::vector<uint8_t> plte;
  pool::Array<uint8_t> raw;  // [height, 1 + row_bytes]
  size_t stride() const { return row_bytes + 1; }
};

PngWriter::PngWriter(const char* who, int width, int height, size_t row_bytes, uint8_t depth, uint8_t colour_type,
                     std::vector<uint8_t> plte)
    : rows_(new Rows) {
  check_png_size(who, width, height, row_bytes);
  rows_->width = width, rows_->height = height, rows_->row_bytes = row_bytes;
  rows_->depth = depth, rows_->colour_type = colour_type, rows_->plte = std::move(plte);
  rows_->raw = pool::Array<uint8_t>(rows_->stride() * (size_t)height);
}

PngWriter::PngWriter(int width, int height, int channels)
    : PngWriter("PngWriter", width, height, (size_t)std::max(width, 0) * (size_t)std::clamp(channels, 1, 4), 8,
                std::array<uint8_t, 5>{0, 0, 4, 2, 6}[(size_t)std::clamp(channels, 0, 4)], {}) {
  if (channels < 1 || channels > 4) throw IoError("PngWriter: " + std::to_string(channels) + " channels (1..4)");
}

PngWriter::PngWriter(int width, int height, const std::vector<std::array<uint8_t, 3>>& palette)
    : PngWriter("PngWriter", width, height, (size_t)std::max(width, 0), 8, 3, {}) {
  if (palette.empty() || palette.size() > 256) throw IoError("encode_png_palette: 1 to 256 colours");
  rows_->plte.resize(3 * palette.size());
  for (size_t i = 0; i < palette.size(); ++i)
    for (int k = 0; k < 3; ++k) rows_->plte[3 * i + k] = palette[i][k];
}

PngWriter::PngWriter(PngWriter&&) noexcept = default;
PngWriter& PngWriter::operator=(PngWriter&&) noexcept = default;
PngWriter::~PngWriter() = default;

int PngWriter::width() const { return rows_->width; }
int PngWriter::height() const { return rows_->height; }
size_t PngWriter::stride() const { return rows_->stride(); }
uint8_t* PngWriter::row(int y) { return rows_->raw.data() + (size_t)y * rows_->stride() + 1; }

void PngWriter::set_rows(const uint8_t* px) {
  Rows& r = *rows_;
  const size_t stride = r.stride(), row_bytes = r.row_bytes;
  uint8_t* raw = r.raw.data();
#pragma omp parallel for schedule(static) if (stride * (size_t)r.height >= (1u << 22))
  for (int y = 0; y < r.height; ++y) {
    uint8_t* d = raw + (size_t)y * stride;
    const uint8_t* cur = px + (size_t)y * row_bytes;
    d[0] = y == 0 ? 0 : 2;  // None for the first row (Up would be the same), Up after
    if (y == 0) {
      std::memcpy(d + 1, cur, row_bytes);
    } else {
      const uint8_t* up = cur - row_bytes;
      for (size_t i = 0; i < row_bytes; ++i) d[1 + i] = (uint8_t)(cur[i] - up[i]);
    }
  }
  filtered_ = true;
}

void PngWriter::filter() {
  if (filtered_) return;
  Rows& r = *rows_;
  const size_t stride = r.stride(), row_bytes = r.row_bytes;
  uint8_t* raw = r.raw.data();
  // Row y becomes row y - row y-1, so rows are filtered bottom-up in strips; each strip's first row
  // needs the previous strip's last row as it was, kept aside before any strip starts.
  const int H = r.height;
  const int nstrips = stride * (size_t)H >= (1u << 22) ? std::min(H, 4 * std::max(1, omp_get_max_threads())) : 1;
  std::vector<uint8_t> above((size_t)nstrips * row_bytes);
  for (int s = 1; s < nstrips; ++s) {
    const int y0 = (int)((int64_t)H * s / nstrips);
    std::memcpy(above.data() + (size_t)s * row_bytes, raw + (size_t)(y0 - 1) * stride + 1, row_bytes);
  }
#pragma omp parallel for schedule(static) if (nstrips > 1)
  for (int s = 0; s < nstrips; ++s) {
    const int y0 = (int)((int64_t)H * s / nstrips), y1 = (int)((int64_t)H * (s + 1) / nstrips);
    for (int y = y1 - 1; y >= y0; --y) {
      uint8_t* d = raw + (size_t)y * stride;
      if (y == 0) {
        d[0] = 0;  // None for the first row (Up would be the same), Up after
        continue;
      }
      d[0] = 2;
      const uint8_t* up = y == y0 ? above.data() + (size_t)s * row_bytes : d - stride + 1;
      for (size_t i = 0; i < row_bytes; ++i) d[1 + i] = (uint8_t)(d[1 + i] - up[i]);
    }
  }
  filtered_ = true;
}

void PngWriter::encode_to(const std::function<void(const uint8_t*, size_t)>& out) {
  filter();
  Rows& r = *rows_;
  const size_t raw_size = r.stride() * (size_t)r.height;
  // Bytes per pixel: 1 for grey and palette indices, 2 for 16-bit grey or grey + alpha, 3 RGB, 4 RGBA.
  const size_t bpp = std::max<size_t>(1, r.row_bytes / (size_t)r.width);
  pool::Array<uint8_t> z(png_deflate_bound(raw_size));
  const size_t zn = png_deflate(r.raw.data(), raw_size, bpp, r.stride(), z.data());
  r.raw.reset();

  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  out(kSignature, 8);
  uint8_t ihdr[13];
  put_be32(ihdr, (uint32_t)r.width);
  put_be32(ihdr + 4, (uint32_t)r.height);
  ihdr[8] = r.depth;
  ihdr[9] = r.colour_type;
  ihdr[10] = ihdr[11] = ihdr[12] = 0;  // deflate, adaptive filtering, no interlace
  std::vector<uint8_t> head;
  put_chunk(head, "IHDR", ihdr, 13);
  if (!r.plte.empty()) put_chunk(head, "PLTE", r.plte.data(), r.plte.size());
  out(head.data(), head.size());
  // One IDAT chunk (at most 2^31 - 1 bytes, far above any photo here), written from the
  // compressor's buffer: its length and type, the data, the CRC of type + data.
  uint8_t idat[8];
  put_be32(idat, (uint32_t)zn);
  std::memcpy(idat + 4, "IDAT", 4);
  out(idat, 8);
  out(z.data(), zn);
  uint8_t crc[4];
  put_be32(crc, libdeflate_crc32(libdeflate_crc32(0, idat + 4, 4), z.data(), zn));
  out(crc, 4);
  std::vector<uint8_t> tail;
  put_chunk(tail, "IEND", nullptr, 0);
  out(tail.data(), tail.size());
}

std::vector<uint8_t> PngWriter::encode() {
  std::vector<uint8_t> png;
  encode_to([&](const uint8_t* p, size_t n) { png.insert(png.end(), p, p + n); });
  return png;
}

void PngWriter::write(const std::string& path) {
  AtomicFile f(path);
  encode_to([&](const uint8_t* p, size_t n) { f.write(p, n); });
  f.commit();
}

namespace {

std::vector<uint8_t> png_from_rows(const char* who, const uint8_t* px, int width, int height, size_t row_bytes,
                                   uint8_t depth, uint8_t colour_type, std::vector<uint8_t> plte) {
  if (!px && width > 0 && height > 0) throw IoError(std::string(who) + ": invalid image (no pixels)");
  PngWriter w(who, width, height, row_bytes, depth, colour_type, std::move(plte));
  w.set_rows(px);
  return w.encode();
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || !pixels)
    throw IoError("encode_png: invalid image " + std::to_string(width) + "x" +
                  std::to_string(height) + "x" + std::to_string(channels));
  static const uint8_t kColourType[5] = {0, 0, 4, 2, 6};  // grey, grey + alpha, RGB, RGBA
  return png_from_rows("encode_png", pixels, width, height, (size_t)width * channels, 8, kColourType[channels], {});
}

std::vector<uint8_t> encode_png_palette(const uint8_t* indices, int width, int height,
                                        const std::vector<std::array<uint8_t, 3>>& palette) {
  if (!indices) throw IoError("encode_png_palette: invalid image (no pixels)");
  PngWriter w(width, height, palette);
  w.set_rows(indices);
  return w.encode();
}

std::vector<uint8_t> encode_png_gray16(const uint16_t* values, int width, int height) {
  if (width <= 0 || height <= 0 || !values) throw IoError("encode_png_gray16: invalid image");
  std::vector<uint8_t> be((size_t)width * height * 2);
  for (size_t i = 0; i < (size_t)width * height; ++i) be[2 * i] = (uint8_t)(values[i] >> 8), be[2 * i + 1] = (uint8_t)values[i];
  return png_from_rows("encode_png_gray16", be.data(), width, height, (size_t)width * 2, 16, 0, {});
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

void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(const void*, size_t)>&)>& produce) {
  AtomicFile f(path);
  produce([&](const void* data, size_t size) { f.write(data, size); });
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
