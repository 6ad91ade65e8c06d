// engine/image.cpp: PNG/BMP decoding with stb_image (the common 8-bit PNGs with libdeflate and our
// own row filters, to the same pixels), JPEG with libjpeg-turbo, EXIF orientation, PIL-compatible RGB.
//
// libstb (Debian libstb-dev) already contains stb_image's implementation: only the header here.
// JPEG goes to libjpeg-turbo, the library Pillow decodes with (Debian's python3-pil links the same
// libjpeg62-turbo), so JPEG pixels are upstream's bit for bit; stb_image's own JPEG decoder is never
// reached (stb 2.27's has memory-safety bugs and undefined shifts on corrupt data: fuzz/README.md).
// Order of checks for untrusted bytes: magic bytes -> header dimensions (nothing decoded yet) ->
// container structure (JPEG markers and EXIF, PNG chunks, BMP size) -> pixels.
#include "engine/image.h"

#include <jpeglib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <libdeflate.h>
#include <omp.h>
#include <sys/mman.h>
#include <stb_image.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/buffer_pool.h"

namespace m2fp {
namespace {

std::string hex_prefix(const uint8_t* b, size_t n, size_t max_bytes = 8) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n && i < max_bytes; ++i) {
    std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", b[i]);
    s += buf;
  }
  return s;
}

// stb_image's failure reason ("outofdata", "bad zlib header", ...), never empty.
std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r && *r ? r : "corrupt or truncated data";
}

std::string pixel_count_str(uint64_t px) {
  char buf[64];
  if (px >= 1000000000ull)
    std::snprintf(buf, sizeof buf, "%.3g Gpx", (double)px / 1e9);
  else
    std::snprintf(buf, sizeof buf, "%.3g Mpx", (double)px / 1e6);
  return buf;
}

bool starts_with(const uint8_t* b, size_t n, const char* magic, size_t m, size_t at = 0) {
  return n >= at + m && std::memcmp(b + at, magic, m) == 0;
}

// ---- EXIF (TIFF structure) ----------------------------------------------------------------------
// All reads go through this bounds-checked view of the TIFF block.
struct TiffReader {
  const uint8_t* p;
  size_t n;
  bool le;
  uint16_t u16(size_t at) const {
    return le ? (uint16_t)(p[at] | p[at + 1] << 8) : (uint16_t)(p[at] << 8 | p[at + 1]);
  }
  uint32_t u32(size_t at) const {
    return le ? (uint32_t)p[at] | (uint32_t)p[at + 1] << 8 | (uint32_t)p[at + 2] << 16 |
                    (uint32_t)p[at + 3] << 24
              : (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 | (uint32_t)p[at + 2] << 8 |
                    (uint32_t)p[at + 3];
  }
};

[[noreturn]] void exif_fail(const std::string& what) { throw ImageError("malformed EXIF: " + what); }

// Checks that an IFD at `off` lies inside the block; returns its entry count.
uint32_t check_ifd(const TiffReader& r, uint64_t off, int index) {
  if (off < 8 || off + 2 > r.n)
    exif_fail("IFD" + std::to_string(index) + " offset " + std::to_string(off) + " outside the " +
              std::to_string(r.n) + "-byte TIFF block");
  const uint32_t count = r.u16((size_t)off);
  if (off + 2 + 12ull * count > r.n)
    exif_fail("IFD" + std::to_string(index) + " at offset " + std::to_string(off) + " has " +
              std::to_string(count) + " entries, more than the " + std::to_string(r.n) +
              "-byte TIFF block holds");
  return count;
}

uint32_t next_ifd(const TiffReader& r, uint64_t off, uint32_t count) {
  const uint64_t at = off + 2 + 12ull * count;
  return at + 4 <= r.n ? r.u32((size_t)at) : 0;  // some writers omit a final zero link
}

}  // namespace

int parse_exif_tiff_orientation(const uint8_t* tiff, size_t size) {
  if (size < 8) exif_fail("TIFF block of " + std::to_string(size) + " bytes (header needs 8)");
  TiffReader r{tiff, size, true};
  if (tiff[0] == 'I' && tiff[1] == 'I')
    r.le = true;
  else if (tiff[0] == 'M' && tiff[1] == 'M')
    r.le = false;
  else
    exif_fail("unknown byte order mark " + hex_prefix(tiff, 2));
  if (r.u16(2) != 42) exif_fail("TIFF magic " + std::to_string(r.u16(2)) + " (expected 42)");

  const uint32_t ifd0 = r.u32(4);
  const uint32_t count0 = check_ifd(r, ifd0, 0);
  int orientation = 1;
  for (uint32_t i = 0; i < count0; ++i) {
    const size_t e = (size_t)ifd0 + 2 + 12 * (size_t)i;
    if (r.u16(e) != 0x0112) continue;
    const uint16_t type = r.u16(e + 2);
    const uint32_t n = r.u32(e + 4);
    int tsize = 0;
    switch (type) {
      case 1: case 6: case 7: tsize = 1; break;  // BYTE, SBYTE, UNDEFINED
      case 3: case 8: tsize = 2; break;          // SHORT, SSHORT
      case 4: case 9: tsize = 4; break;          // LONG, SLONG
      default: exif_fail("orientation tag has type " + std::to_string(type));
    }
    if (n == 0) break;  // no value: nothing to apply
    const uint64_t bytes = (uint64_t)tsize * n;
    uint64_t at = e + 8;
    if (bytes > 4) {
      at = r.u32(e + 8);
      if (at + bytes > r.n)
        exif_fail("orientation value at offset " + std::to_string(at) + " (" +
                  std::to_string(bytes) + " bytes) outside the " + std::to_string(r.n) +
                  "-byte TIFF block");
    }
    orientation = tsize == 1 ? tiff[at] : tsize == 2 ? r.u16((size_t)at) : (int)r.u32((size_t)at);
    break;
  }

  // Walk the rest of the IFD chain (IFD1 = thumbnail, ...): every link must stay inside the
  // block and never come back to an IFD already seen.
  std::vector<uint32_t> seen{ifd0};
  uint32_t next = next_ifd(r, ifd0, count0);
  for (int index = 1; next != 0; ++index) {
    for (uint32_t s : seen)
      if (s == next)
        exif_fail("IFD chain loops: IFD" + std::to_string(index) + " points back to offset " +
                  std::to_string(next));
    if (index > 64) exif_fail("IFD chain longer than 64");
    const uint32_t count = check_ifd(r, next, index);
    seen.push_back(next);
    next = next_ifd(r, next, count);
  }
  return orientation;
}

namespace {

// JPEG container walk: finds the frame size and the first APP1 Exif payload, and checks that an
// end-of-image marker follows the first scan (libjpeg decodes a truncated stream with a warning,
// padding it with grey).
struct JpegScan {
  int64_t width = 0, height = 0;  // from the first frame header (SOFn)
  bool has_frame = false;
  const uint8_t* exif = nullptr;  // TIFF block (after "Exif\0\0")
  size_t exif_size = 0;
  bool has_eoi = false;
  std::string error;  // structural problem found after the frame header (reported after the size check)
};

void scan_jpeg_segments(const uint8_t* b, size_t n, JpegScan& out);

JpegScan scan_jpeg(const uint8_t* b, size_t n) {
  JpegScan out;
  try {
    scan_jpeg_segments(b, n, out);
  } catch (const ImageError& e) {
    if (!out.has_frame) throw;
    out.error = e.what();
  }
  return out;
}

void scan_jpeg_segments(const uint8_t* b, size_t n, JpegScan& out) {
  size_t pos = 2;  // after SOI
  for (;;) {
    if (pos >= n) throw ImageError("JPEG is truncated: it ends before the first scan");
    if (b[pos] != 0xFF) {  // junk between segments: PIL and stb_image skip it, so do we
      ++pos;
      continue;
    }
    while (pos < n && b[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) throw ImageError("JPEG is truncated: it ends before the first scan");
    const uint8_t marker = b[pos++];
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (marker == 0xD9) throw ImageError("corrupt JPEG: end-of-image marker before any scan");
    if (marker == 0x00 || marker == 0xD8)
      throw ImageError("corrupt JPEG: unexpected marker ff " + hex_prefix(&marker, 1) +
                       " at byte " + std::to_string(pos - 2));
    if (pos + 2 > n) throw ImageError("JPEG is truncated: it ends inside a segment header");
    const size_t len = (size_t)b[pos] << 8 | b[pos + 1];
    if (len < 2) throw ImageError("corrupt JPEG: segment length " + std::to_string(len));
    if (pos + len > n)
      throw ImageError("JPEG is truncated: a " + std::to_string(len) + "-byte segment at byte " +
                       std::to_string(pos) + " runs past the end (" + std::to_string(n) +
                       " bytes)");
    const uint8_t* payload = b + pos + 2;
    const size_t plen = len - 2;
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                     marker != 0xCC;
    if (sof && !out.has_frame) {
      if (plen < 6) throw ImageError("corrupt JPEG: frame header of " + std::to_string(plen) + " bytes");
      out.height = (int64_t)payload[1] << 8 | payload[2];
      out.width = (int64_t)payload[3] << 8 | payload[4];
      out.has_frame = true;
    }
    if (marker == 0xE1 && !out.exif && plen >= 6 && std::memcmp(payload, "Exif\0\0", 6) == 0) {
      out.exif = payload + 6;  // PIL keeps the first Exif APP1
      out.exif_size = plen - 6;
    }
    pos += len;
    if (marker == 0xDA) break;  // start of scan: entropy-coded data follows
  }
  if (!out.has_frame) throw ImageError("corrupt JPEG: no frame header before the first scan");
  // Entropy-coded data never contains ff d9 (0xff bytes are stuffed as ff 00), so the first ff d9
  // after the first scan header is the end-of-image marker (progressive files have more scans
  // before it).
  for (size_t i = pos; i + 1 < n; ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xD9) {
      out.has_eoi = true;
      break;
    }
}

// PNG's big-endian 32-bit fields (chunk lengths, IHDR sizes).
uint32_t be32(const uint8_t* p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// PNG: the TIFF block of an eXIf chunk, if any (Pillow reads it wherever it is). The chunk walk
// stops quietly at anything odd: stb_image judges the pixel data.
void find_png_exif(const uint8_t* b, size_t n, const uint8_t** exif, size_t* size) {
  size_t pos = 8;
  while (pos + 12 <= n) {
    const uint64_t len = be32(b + pos);
    const uint8_t* type = b + pos + 4;
    if (pos + 12 + len > n) return;
    if (std::memcmp(type, "eXIf", 4) == 0) {
      const uint8_t* d = b + pos + 8;
      size_t dn = (size_t)len;
      if (dn >= 6 && std::memcmp(d, "Exif\0\0", 6) == 0) d += 6, dn -= 6;
      *exif = d;
      *size = dn;
      return;
    }
    if (std::memcmp(type, "IEND", 4) == 0) return;
    pos += 12 + (size_t)len;
  }
}

// PNG: the IHDR chunk must come first; its width and height are big-endian 32-bit.
void png_dims(const uint8_t* b, size_t n, int64_t* w, int64_t* h) {
  if (n < 24 || std::memcmp(b + 12, "IHDR", 4) != 0)
    throw ImageError("PNG is truncated or corrupt: no IHDR header chunk (" + std::to_string(n) +
                     " bytes)");
  *w = be32(b + 16);
  *h = be32(b + 20);
}

uint32_t le32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
uint16_t le16(const uint8_t* p) { return (uint16_t)(p[0] | p[1] << 8); }

// BMP: width and height from the info header (12-byte OS/2 header: 16-bit fields; else 32-bit,
// height negative for top-down files).
void bmp_dims(const uint8_t* b, size_t n, int64_t* w, int64_t* h) {
  if (n < 26) throw ImageError("BMP is truncated: " + std::to_string(n) + " bytes");
  if (le32(b + 14) == 12) {
    *w = le16(b + 18);
    *h = le16(b + 20);
  } else {
    *w = (int32_t)le32(b + 18);
    const int64_t hh = (int32_t)le32(b + 22);
    *h = hh < 0 ? -hh : hh;
  }
}

// BMP: stb_image reads zeros past the end of a short file; refuse files shorter than their
// uncompressed pixel array.
void check_bmp_size(const uint8_t* b, size_t n, int w, int h) {
  if (n < 30) throw ImageError("BMP is truncated: " + std::to_string(n) + " bytes");
  const uint32_t data_off = le32(b + 10);
  const uint32_t hsize = le32(b + 14);
  int bpp = 0;
  uint32_t compression = 0;
  if (hsize == 12) {
    bpp = le16(b + 24);
  } else {
    if (n < 34) throw ImageError("BMP is truncated: " + std::to_string(n) + " bytes");
    bpp = le16(b + 28);
    compression = le32(b + 30);
  }
  if (compression != 0 && compression != 3 && compression != 6) return;  // RLE: length varies
  const uint64_t row = ((uint64_t)bpp * (uint64_t)w + 31) / 32 * 4;
  const uint64_t need = (uint64_t)data_off + row * (uint64_t)h;
  if (need > n)
    throw ImageError("BMP is truncated: " + std::to_string(w) + "x" + std::to_string(h) + " at " +
                     std::to_string(bpp) + " bits needs " + std::to_string(need) + " bytes, file has " +
                     std::to_string(n));
}

// PNG: what stb_image would allocate for untrusted chunk lengths and compressed data, checked first.
//   - every chunk up to IEND lies inside the file (stb reallocates its IDAT buffer to a chunk's
//     declared length before reading it: 2 GB for a 100-byte file);
//   - the concatenated IDAT data inflate to at most the image's size (+ slack: stb accepts trailing
//     bytes): stb inflates into a buffer it doubles without bound (up to 4 GB), so a small
//     "compression bomb" would cost gigabytes (a 400 KB PNG took 400 MB and was accepted as a 16x16
//     image). The check inflates with stb's own inflater into a buffer of that bound, so it accepts
//     exactly what stb accepts, plus the size limit. Cost: PNG pixel data are inflated twice
//     (512x512 photo 3.3 -> 6.0 ms, 6 MB 1920x1080 PNG 46 -> 96 ms per decode); only the PNGs that
//     png_direct_into (below) leaves to stb_image pay it now.
// Anything else odd (bad IHDR fields, missing IDAT) is left to stb_image's messages.
void check_png_data(const uint8_t* b, size_t n, int64_t w, int64_t h) {
  size_t pos = 8;
  int depth = 0, color = -1, interlace = 0;
  bool iphone = false;  // CgBI: Apple's headerless zlib streams (stb reads them)
  std::vector<char> idat;
  idat.reserve(n);  // the IDAT chunks' data, concatenated, is smaller than the file
  for (;;) {
    if (pos + 12 > n)
      throw ImageError("PNG is truncated: it ends at byte " + std::to_string(n) + " before the IEND chunk");
    const uint64_t len = be32(b + pos);
    const uint8_t* type = b + pos + 4;
    if (len > n - pos - 12) {
      std::string t;
      for (int i = 0; i < 4; ++i) t += (type[i] >= 32 && type[i] < 127) ? (char)type[i] : '?';
      throw ImageError("PNG is truncated or corrupt: chunk '" + t + "' of " + std::to_string(len) +
                       " bytes at byte " + std::to_string(pos) + " runs past the end of the " +
                       std::to_string(n) + "-byte file");
    }
    const uint8_t* d = b + pos + 8;
    if (std::memcmp(type, "IHDR", 4) == 0 && len == 13) {
      depth = d[8];
      color = d[9];
      interlace = d[12];
    } else if (std::memcmp(type, "CgBI", 4) == 0) {
      iphone = true;
    } else if (std::memcmp(type, "IDAT", 4) == 0) {
      idat.insert(idat.end(), d, d + len);
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      break;
    }
    pos += 12 + (size_t)len;
  }
  const int img_n = color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 0;
  if (idat.empty() || img_n == 0 || (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16))
    return;  // stb_image refuses these with its own message
  // Bytes the filtered scanlines take: rows of (1 filter byte + packed pixels), per Adam7 pass.
  auto bytes_for = [&](int64_t pw, int64_t ph) -> uint64_t {
    if (pw <= 0 || ph <= 0) return 0;
    return (uint64_t)ph * (1 + ((uint64_t)pw * img_n * depth + 7) / 8);
  };
  uint64_t need = 0;
  if (interlace == 1) {
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p)
      need += bytes_for((w - x0[p] + dx[p] - 1) / dx[p], (h - y0[p] + dy[p] - 1) / dy[p]);
  } else {
    need = bytes_for(w, h);
  }
  const uint64_t bound = need + need / 4 + 65536;
  if (bound > (uint64_t)INT_MAX || idat.size() > (size_t)INT_MAX)
    return;  // stb_image refuses images this large itself
  // The inflated bytes are only counted: a buffer-pool block (pages an earlier photo mapped, no
  // zero-fill) instead of a fresh std::vector.
  const pool::Array<char> out((size_t)bound);
  const int got = iphone ? stbi_zlib_decode_noheader_buffer(out.data(), (int)bound, idat.data(), (int)idat.size())
                         : stbi_zlib_decode_buffer(out.data(), (int)bound, idat.data(), (int)idat.size());
  if (got < 0) {
    const std::string why = stb_reason();
    if (why == "output buffer limit")
      throw ImageError("corrupt PNG: its " + std::to_string(idat.size()) + " bytes of pixel data inflate to more than " +
                       std::to_string(bound) + " bytes, the " + std::to_string(need) + " a " + std::to_string(w) +
                       "x" + std::to_string(h) + " image needs and some slack (a compression bomb?)");
    throw ImageError("corrupt PNG pixel data: " + why + " (" + std::to_string(idat.size()) + " compressed bytes)");
  }
}

// ---- JPEG pixels: libjpeg-turbo, decoded as Pillow decodes them ---------------------------------
// Pillow's JpegDecode uses the library's defaults (islow IDCT, fancy upsampling) and asks for RGB
// (YCbCr and RGB files), L (grey files; convert('RGB') replicates it) or CMYK (4-component files, read
// with Adobe's inverted convention, "CMYK;I", then Pillow's cmyk2rgb). It silences warnings (corrupt
// entropy-coded data is decoded through); errors become ImageError here.
// libjpeg reports errors by longjmp out of its own C frames back to jpeg_decode_rows(), which holds
// only trivially destructible locals: nothing C++ is skipped.
constexpr int kMaxJpegScans = 1000;  // a progressive file has ~10; thousands of tiny scans only cost time

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErrorManager*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings are not printed but counted (corrupt entropy-coded data is decoded through: the split
// decode below then starts again on one thread).
void jpeg_count_warning(j_common_ptr c, int msg_level) {
  if (msg_level < 0) ++c->err->num_warnings;
}

void jpeg_limit_scans(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->is_decompressor && d->input_scan_number > kMaxJpegScans) {
    auto* e = reinterpret_cast<JpegErrorManager*>(c->err);
    std::snprintf(e->message, sizeof e->message, "more than %d scans", kMaxJpegScans);
    std::longjmp(e->jump, 1);
  }
}

// Pillow's cmyk2rgb (Convert.c) on inverted ("CMYK;I") samples: v = 255 - stored.
inline uint8_t pil_mul_div255(int a, int b) {
  const int t = a * b + 128;
  return (uint8_t)(((t >> 8) + t) >> 8);
}

// Rows [y0, y1) of a JPEG whose header walk gave w x h, decoded into rgb [h, w, 3] (the rows above y0
// skipped: jpeg_skip_scanlines entropy-decodes them only, no IDCT, upsampling or colour conversion;
// the output rows are those of a whole decode). 1: done, *warnings the corrupt-data warnings seen;
// 0: an error (`why`); -1: y0 > 0 but the file is progressive (skipping would decode every scan).
int jpeg_decode_rows(const uint8_t* bytes, size_t size, int w, int h, uint8_t* rgb, int y0, int y1, char* why,
                     size_t why_size, long* warnings) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  jpeg_progress_mgr progress;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.emit_message = jpeg_count_warning;
  err.message[0] = 0;
  if (setjmp(err.jump)) {
    std::snprintf(why, why_size, "%s", err.message);
    jpeg_destroy_decompress(&cinfo);
    return 0;
  }
  jpeg_create_decompress(&cinfo);
  progress.progress_monitor = jpeg_limit_scans;
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, bytes, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);
  if ((int64_t)cinfo.image_width != w || (int64_t)cinfo.image_height != h) {
    std::snprintf(why, why_size, "header sizes disagree (%dx%d vs %ux%u)", w, h, cinfo.image_width,
                  cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return 0;
  }
  if (y0 > 0 && cinfo.progressive_mode) {
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    case JCS_RGB:
    case JCS_YCbCr: cinfo.out_color_space = JCS_RGB; break;
    default:
      std::snprintf(why, why_size, "%d colour components (1, 3 or 4 are supported)", cinfo.num_components);
      jpeg_destroy_decompress(&cinfo);
      return 0;
  }
  jpeg_start_decompress(&cinfo);
  if (y0 > 0 && jpeg_skip_scanlines(&cinfo, (JDIMENSION)y0) != (JDIMENSION)y0) {
    std::snprintf(why, why_size, "cannot skip to row %d", y0);
    jpeg_destroy_decompress(&cinfo);
    return 0;
  }
  const int comps = cinfo.output_components;
  JSAMPARRAY row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE,
                                              (JDIMENSION)w * (JDIMENSION)comps, 1);
  while (cinfo.output_scanline < (JDIMENSION)y1) {
    uint8_t* d = rgb + (size_t)cinfo.output_scanline * (size_t)w * 3;
    if (comps == 3) {  // RGB rows straight into the picture
      JSAMPROW at = d;
      if (jpeg_read_scanlines(&cinfo, &at, 1) != 1) break;
      continue;
    }
    if (jpeg_read_scanlines(&cinfo, row, 1) != 1) break;  // suspension cannot happen with a memory source
    const uint8_t* s = row[0];
    if (comps == 1) {
      for (int x = 0; x < w; ++x) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[x];
    } else {
      for (int x = 0; x < w; ++x, s += 4) {
        const int nk = s[3];  // 255 - (255 - stored k)
        for (int c = 0; c < 3; ++c) {
          const int v = nk - pil_mul_div255(255 - s[c], nk);
          d[3 * x + c] = (uint8_t)(v < 0 ? 0 : v);
        }
      }
    }
  }
  if (y1 == h) jpeg_finish_decompress(&cinfo);  // the rest of the file read as a whole decode reads it
  *warnings = err.pub.num_warnings;
  jpeg_destroy_decompress(&cinfo);
  return 1;
}

// Decodes a JPEG whose header walk gave w x h into rgb [h, w, 3]. false with `why` on failure.
// A large baseline JPEG is decoded in two parts side by side when this thread has two OpenMP threads:
// the top rows [0, a) on one, the rest on the other after skipping to row a (jpeg_decode_rows). The
// skip still entropy-decodes the top rows (at 12 MP about 57% of their whole decode's time), so the
// top part is the larger: a = 11/16 of the rows (with 5/8, 12.7 ms for the top, 14.8 for the rest).
// The pixels are a whole decode's; a progressive file, an error or a warning of corrupt data in
// either part (whose decode-through might differ once split) decodes the whole file again on this
// thread, as before.
constexpr int64_t kSplitJpegPixels = int64_t{2} << 20;

bool jpeg_decode_rgb(const uint8_t* bytes, size_t size, int w, int h, uint8_t* rgb, char* why, size_t why_size) {
  long warnings = 0;
  if ((int64_t)w * h >= kSplitJpegPixels && h >= 16 && omp_get_max_threads() >= 2) {
    const int a = (int)((int64_t)h * 11 / 16);
    int done[2] = {0, 0};
    long warned[2] = {0, 0};
    char part_why[2][JMSG_LENGTH_MAX + 64];
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int t = 0; t < 2; ++t)
      done[t] = jpeg_decode_rows(bytes, size, w, h, rgb, t == 0 ? 0 : a, t == 0 ? a : h, part_why[t],
                                 sizeof part_why[t], &warned[t]);
    if (done[0] == 1 && done[1] == 1 && warned[0] == 0 && warned[1] == 0) return true;
  }
  return jpeg_decode_rows(bytes, size, w, h, rgb, 0, h, why, why_size, &warnings) == 1;
}

// Makes `v` n bytes long (zeros) with its storage asked to come in transparent huge pages where it
// spans whole 2 MB pages: a 12-megapixel picture's 36 MB are otherwise ~9000 page faults of 4 KiB
// (on the development VM ~20 us each: most of a 12 MP decode's time was these and the zeroing);
// glibc maps a block this large on its own, untouched until resize() writes it, so the advice
// comes before the first fault. Pixels are the same either way.
void size_picture(std::vector<uint8_t>& v, size_t n) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (n >= 4 * kHuge) {
    v.reserve(n);
    const uintptr_t a = (uintptr_t)v.data();
    const uintptr_t begin = (a + kHuge - 1) & ~(uintptr_t)(kHuge - 1), end = (a + n) & ~(uintptr_t)(kHuge - 1);
    if (end > begin) ::madvise((void*)begin, end - begin, MADV_HUGEPAGE);  // advice only: failure is harmless
  }
  v.resize(n);
}

// ---- PNG pixels: the common case read here ------------------------------------------------------
// 8-bit grey, grey+alpha, RGB and RGBA, not interlaced, whose only chunks stb_image interprets are
// IHDR, IDAT and IEND (ancillary chunks it skips may come between): the IDAT stream inflated once by
// libdeflate and the rows unfiltered here, grey replicated and alpha dropped as stb_image's req_comp=3
// conversion does. Before, the stream was inflated twice by stb's slower inflater (check_png_data,
// then stbi_load): the 548x342 benchmark photo's decode took ~8 ms, one thread, while the other waited.
// Anything else goes the stb_image way, as before: other depths and colour types, interlacing,
// palettes, tRNS, CgBI, unknown critical chunks, a zlib header stb would refuse, a stream libdeflate
// refuses (a wrong Adler-32, which stb ignores, included), one that inflates to more or fewer bytes
// than the image needs (stb accepts extra bytes; the bomb check bounds them) or a row filter over 4.
// What this path accepts, stb decodes to the same bytes (inflate and the five PNG filters are exact;
// tests/engine/test_image.cpp and fuzz/fuzz_image.cpp compare them).
// The PNG specification's predictor (stb's stbi__paeth): with p = a + b - c, a if |p - a| <= |p - b|
// and |p - a| <= |p - c|, else b if |p - b| <= |p - c|, else c.
inline int paeth(int a, int b, int c) {
  const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
  const int bc = pb <= pc ? b : c;
  return pa <= std::min(pb, pc) ? a : bc;
}

#if defined(__SSE2__)
// A Paeth row of 3- or 4-byte pixels (photos' usual filter), one pixel a step in 16-bit lanes with
// masks for the selects: the scalar loop's branches mispredict on photo rows (predictions are close
// to random) and took ~7 ns a byte, ~4 ms of the benchmark photo's decode. Same bytes as paeth().
// Reads 4 bytes a pixel: r and q need one readable byte after the row (png_direct_into's buffers
// have it: the next row's filter byte, or a spare byte at the end).
template <int BPP>
void unpaeth_row_sse2(uint8_t* r, const uint8_t* q, size_t len) {
  static_assert(BPP == 3 || BPP == 4);
  auto load = [](const uint8_t* p) {  // 4 bytes (for 3-byte pixels one past the pixel: see the caller)
    uint32_t v;
    std::memcpy(&v, p, 4);
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)v), _mm_setzero_si128());
  };
  auto abs16 = [](__m128i v) { return _mm_max_epi16(v, _mm_sub_epi16(_mm_setzero_si128(), v)); };
  auto select = [](__m128i m, __m128i yes, __m128i no) {
    return _mm_or_si128(_mm_and_si128(m, yes), _mm_andnot_si128(m, no));
  };
  __m128i a = _mm_setzero_si128(), c = _mm_setzero_si128();  // left and upper-left (zero: first pixel)
  for (size_t i = 0; i < len; i += BPP) {
    const __m128i b = load(q + i);
    const __m128i db = _mm_sub_epi16(b, c), da = _mm_sub_epi16(a, c);
    const __m128i pa = abs16(db), pb = abs16(da), pc = abs16(_mm_add_epi16(db, da));
    const __m128i bc = select(_mm_cmpgt_epi16(pb, pc), c, b);
    const __m128i pred = select(_mm_cmpgt_epi16(pa, _mm_min_epi16(pb, pc)), bc, a);
    a = _mm_and_si128(_mm_add_epi16(load(r + i), pred), _mm_set1_epi16(0xff));
    const uint32_t v = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(a, a));
    if constexpr (BPP == 4) {
      std::memcpy(r + i, &v, 4);
    } else {  // 2 + 1 bytes: the next pixel's bytes are still to be read
      const uint16_t lo = (uint16_t)v;
      std::memcpy(r + i, &lo, 2);
      r[i + 2] = (uint8_t)(v >> 16);
    }
    c = b;
  }
}
#endif

// Undoes one row's filter in place: `r` the row's bytes after its filter byte, `q` the previous row's
// unfiltered bytes (zeros above the first row), bpp bytes per pixel. false for a filter type over 4.
bool unfilter_row(int filter, uint8_t* r, const uint8_t* q, size_t len, size_t bpp) {
  switch (filter) {
    case 0: return true;
    case 1:
      for (size_t i = bpp; i < len; ++i) r[i] = (uint8_t)(r[i] + r[i - bpp]);
      return true;
    case 2:
      for (size_t i = 0; i < len; ++i) r[i] = (uint8_t)(r[i] + q[i]);
      return true;
    case 3:
      for (size_t i = 0; i < bpp && i < len; ++i) r[i] = (uint8_t)(r[i] + (q[i] >> 1));
      for (size_t i = bpp; i < len; ++i) r[i] = (uint8_t)(r[i] + ((r[i - bpp] + q[i]) >> 1));
      return true;
    case 4:
#if defined(__SSE2__)
      if (bpp == 3) return unpaeth_row_sse2<3>(r, q, len), true;
      if (bpp == 4) return unpaeth_row_sse2<4>(r, q, len), true;
#endif
      for (size_t i = 0; i < bpp && i < len; ++i) r[i] = (uint8_t)(r[i] + q[i]);
      for (size_t i = bpp; i < len; ++i) r[i] = (uint8_t)(r[i] + paeth(r[i - bpp], q[i], q[i - bpp]));
      return true;
    default: return false;
  }
}

bool png_direct_into(const uint8_t* b, size_t n, Image* out) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n < 8 + 12 + 13 || std::memcmp(b, kSignature, 8) != 0) return false;
  uint32_t w = 0, h = 0;
  int img_n = 0;
  std::vector<std::pair<const uint8_t*, size_t>> idat;
  size_t idat_bytes = 0;
  for (size_t pos = 8;;) {
    if (pos + 12 > n) return false;
    const uint32_t len = be32(b + pos);
    const uint8_t* type = b + pos + 4;
    if (len > n - pos - 12) return false;
    const uint8_t* d = b + pos + 8;
    if (pos == 8) {  // stb: "first not IHDR"
      if (std::memcmp(type, "IHDR", 4) != 0 || len != 13) return false;
      w = be32(d);
      h = be32(d + 4);
      const int depth = d[8], color = d[9];
      img_n = color == 0 ? 1 : color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 0;
      if (depth != 8 || img_n == 0 || d[10] != 0 || d[11] != 0 || d[12] != 0) return false;
    } else if (std::memcmp(type, "IDAT", 4) == 0) {
      idat.emplace_back(d, len);
      idat_bytes += len;
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      break;
    } else if ((type[0] & 0x20) == 0 || std::memcmp(type, "tRNS", 4) == 0) {
      return false;  // a critical chunk (a second IHDR, PLTE, CgBI, unknown) or one stb interprets
    }
    pos += 12 + (size_t)len;
  }
  if (w == 0 || h == 0 || idat_bytes < 2 || (uint64_t)w * h * (uint64_t)img_n > (uint64_t{1} << 30))
    return false;  // stb's own refusals ("0-pixel image", "too large") and messages
  // Buffers from the buffer pool (pages an earlier photo mapped, no zero-fill).
  const uint8_t* z = idat[0].first;
  pool::Array<uint8_t> joined;
  if (idat.size() > 1) {  // the chunks' data, concatenated
    joined = pool::Array<uint8_t>(idat_bytes);
    size_t at = 0;
    for (const auto& c : idat) {
      std::memcpy(joined.data() + at, c.first, c.second);
      at += c.second;
    }
    z = joined.data();
  }
  const int cmf = z[0], flg = z[1];  // stb_image's zlib header checks
  if ((cmf * 256 + flg) % 31 != 0 || (flg & 32) != 0 || (cmf & 15) != 8) return false;
  const size_t row = (size_t)w * img_n, need = (1 + row) * h;
  const pool::Array<uint8_t> raw(need + 1);  // + 1: unpaeth_row_sse2 reads a byte past the last row
  libdeflate_decompressor* dec = libdeflate_alloc_decompressor();
  if (!dec) return false;
  size_t in_used = 0, got = 0;
  const libdeflate_result r = libdeflate_zlib_decompress_ex(dec, z, idat_bytes, raw.data(), need, &in_used, &got);
  libdeflate_free_decompressor(dec);
  if (r != LIBDEFLATE_SUCCESS || got != need) return false;
  const std::vector<uint8_t> zeros(row + 1, 0);  // the row above the first (+ 1: unpaeth_row_sse2)
  const size_t bpp = (size_t)img_n;
  for (uint32_t y = 0; y < h; ++y) {
    uint8_t* f = raw.data() + (size_t)y * (1 + row);
    if (!unfilter_row(f[0], f + 1, y ? f + 1 - (1 + row) : zeros.data(), row, bpp)) return false;
  }
  Image img;
  img.width = (int)w;
  img.height = (int)h;
  size_picture(img.rgb, (size_t)w * h * 3);
  for (uint32_t y = 0; y < h; ++y) {
    const uint8_t* s = raw.data() + (size_t)y * (1 + row) + 1;
    uint8_t* o = img.rgb.data() + (size_t)y * w * 3;
    if (img_n == 3) {
      std::memcpy(o, s, row);
    } else if (img_n == 4) {
      for (uint32_t x = 0; x < w; ++x) o[3 * x] = s[4 * x], o[3 * x + 1] = s[4 * x + 1], o[3 * x + 2] = s[4 * x + 2];
    } else {
      for (uint32_t x = 0; x < w; ++x) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = s[(size_t)img_n * x];
    }
  }
  *out = std::move(img);
  return true;
}

// PNG and BMP: stb_image's own header check must agree with the sizes read above.
void check_stb_header(const uint8_t* bytes, size_t size, ImageFormat fmt, int w, int h) {
  const char* fname = image_format_name(fmt);
  int iw = 0, ih = 0, icomp = 0;
  if (!stbi_info_from_memory(bytes, (int)size, &iw, &ih, &icomp))
    throw ImageError(std::string("cannot read the ") + fname + " header: " + stb_reason() + " (" +
                     std::to_string(size) + " bytes)");
  // stb_image reports a top-down BMP's height as stored: negative (it decodes it the right way up).
  if (fmt == ImageFormat::Bmp && ih < 0) ih = -ih;
  if (iw != w || ih != h)
    throw ImageError(std::string("corrupt ") + fname + ": header sizes disagree (" + std::to_string(w) + "x" +
                     std::to_string(h) + " vs " + std::to_string(iw) + "x" + std::to_string(ih) + ")");
}

// PNG and BMP pixels, converted to 3 channels by stb (grey replicated, alpha dropped, 16 -> 8 bits).
Image decode_stb_pixels(const uint8_t* bytes, size_t size, ImageFormat fmt, int w, int h) {
  const char* fname = image_format_name(fmt);
  int dw = 0, dh = 0, dcomp = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pix(stbi_load_from_memory(bytes, (int)size, &dw, &dh, &dcomp, 3),
                                                stbi_image_free);
  if (!pix)
    throw ImageError(std::string("cannot decode the ") + std::to_string(w) + "x" + std::to_string(h) + " " + fname +
                     ": " + stb_reason() + " (the " + std::to_string(size) + "-byte file is truncated or corrupt)");
  if (dw != w || dh != h)
    throw ImageError(std::string(fname) + " decoded to " + std::to_string(dw) + "x" + std::to_string(dh) +
                     " but its header says " + std::to_string(w) + "x" + std::to_string(h));
  Image img;
  img.width = w;
  img.height = h;
  size_picture(img.rgb, (size_t)w * h * 3);
  std::memcpy(img.rgb.data(), pix.get(), img.rgb.size());
  return img;
}

Image decode_jpeg_pixels(const uint8_t* bytes, size_t size, int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  size_picture(img.rgb, (size_t)w * h * 3);
  char why[JMSG_LENGTH_MAX + 64];
  if (!jpeg_decode_rgb(bytes, size, w, h, img.rgb.data(), why, sizeof why))
    throw ImageError("cannot decode the " + std::to_string(w) + "x" + std::to_string(h) + " JPEG: " + why +
                     " (the " + std::to_string(size) + "-byte file is corrupt or unsupported)");
  return img;
}

}  // namespace

ImageFormat sniff_image_format(const uint8_t* b, size_t n) {
  if (!b) return ImageFormat::Unknown;
  if (starts_with(b, n, "\x89PNG\r\n\x1a\n", 8)) return ImageFormat::Png;
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::Jpeg;
  if (starts_with(b, n, "BM", 2) && n >= 18) return ImageFormat::Bmp;
  if (starts_with(b, n, "GIF87a", 6) || starts_with(b, n, "GIF89a", 6)) return ImageFormat::Gif;
  if (starts_with(b, n, "RIFF", 4) && starts_with(b, n, "WEBP", 4, 8)) return ImageFormat::WebP;
  if (starts_with(b, n, "II*\0", 4) || starts_with(b, n, "MM\0*", 4)) return ImageFormat::Tiff;
  if (starts_with(b, n, "8BPS", 4)) return ImageFormat::Psd;
  if (starts_with(b, n, "#?RADIANCE", 10) || starts_with(b, n, "#?RGBE", 6)) return ImageFormat::Hdr;
  if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7') return ImageFormat::Pnm;
  if (starts_with(b, n, "\x53\x80\xf6\x34", 4)) return ImageFormat::Pic;
  if (starts_with(b, n, "ftyp", 4, 4) &&
      (starts_with(b, n, "heic", 4, 8) || starts_with(b, n, "heix", 4, 8) ||
       starts_with(b, n, "mif1", 4, 8) || starts_with(b, n, "avif", 4, 8)))
    return ImageFormat::Heif;
  return ImageFormat::Unknown;
}

const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Gif: return "GIF";
    case ImageFormat::WebP: return "WebP";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Psd: return "PSD";
    case ImageFormat::Hdr: return "Radiance HDR";
    case ImageFormat::Pnm: return "PNM";
    case ImageFormat::Pic: return "Softimage PIC";
    case ImageFormat::Heif: return "HEIF/AVIF";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

Image Image::blank(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  if (width < 0 || height < 0)
    throw std::invalid_argument("Image::blank: negative size " + std::to_string(width) + "x" +
                                std::to_string(height));
  Image im;
  im.width = width;
  im.height = height;
  im.rgb.resize((size_t)width * height * 3);
  for (size_t i = 0; i < im.rgb.size(); i += 3) {
    im.rgb[i] = r;
    im.rgb[i + 1] = g;
    im.rgb[i + 2] = b;
  }
  return im;
}

int read_exif_orientation(const uint8_t* bytes, size_t size) {
  const ImageFormat f = sniff_image_format(bytes, size);
  const uint8_t* exif = nullptr;
  size_t exif_size = 0;
  if (f == ImageFormat::Jpeg) {
    const JpegScan s = scan_jpeg(bytes, size);
    if (!s.error.empty()) throw ImageError(s.error);
    exif = s.exif;
    exif_size = s.exif_size;
  } else if (f == ImageFormat::Png) {
    find_png_exif(bytes, size, &exif, &exif_size);
  }
  return exif ? parse_exif_tiff_orientation(exif, exif_size) : 1;
}

Image apply_exif_orientation(const Image& img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int W = img.width, H = img.height;
  const bool swap = orientation >= 5;  // 5..8 exchange width and height
  Image out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  size_picture(out.rgb, img.rgb.size());
  // For each output pixel (x, y), the source pixel (sx, sy) (PIL's Image.transpose methods).
  for (int y = 0; y < out.height; ++y) {
    uint8_t* d = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = W - 1 - x; sy = y; break;          // FLIP_LEFT_RIGHT
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;  // ROTATE_180
        case 4: sx = x; sy = H - 1 - y; break;          // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                  // TRANSPOSE
        case 6: sx = y; sy = H - 1 - x; break;          // ROTATE_270 (90 clockwise)
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;  // TRANSVERSE
        case 8: sx = W - 1 - y; sy = x; break;          // ROTATE_90 (counter-clockwise)
      }
      const uint8_t* s = img.row(sy) + (size_t)sx * 3;
      d[3 * x] = s[0];
      d[3 * x + 1] = s[1];
      d[3 * x + 2] = s[2];
    }
  }
  return out;
}

bool decode_png_direct(const uint8_t* bytes, size_t size, Image* out, int64_t max_pixels) {
  int64_t w = 0, h = 0;
  try {
    png_dims(bytes, size, &w, &h);
  } catch (const ImageError&) {
    return false;
  }
  if (w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > (uint64_t)std::max<int64_t>(0, max_pixels)) return false;
  return png_direct_into(bytes, size, out);
}

bool read_image_header(const uint8_t* bytes, size_t size, ImageHeader* out) {
  ImageHeader h;
  h.format = sniff_image_format(bytes, size);
  try {
    if (h.format == ImageFormat::Png) {
      png_dims(bytes, size, &h.width, &h.height);
    } else if (h.format == ImageFormat::Jpeg) {
      const JpegScan s = scan_jpeg(bytes, size);
      h.width = s.width;
      h.height = s.height;
    } else if (h.format == ImageFormat::Bmp) {
      bmp_dims(bytes, size, &h.width, &h.height);
    } else {
      return false;
    }
  } catch (const ImageError&) {
    return false;
  }
  *out = h;
  return true;
}

Image decode_image(const uint8_t* bytes, size_t size, const DecodeOptions& opt) {
  if (!bytes || size == 0) throw ImageError("empty input: 0 bytes, not an image");
  const ImageFormat fmt = sniff_image_format(bytes, size);
  if (fmt == ImageFormat::Unknown)
    throw ImageError("not an image: unrecognised leading bytes " + hex_prefix(bytes, size) + " (" +
                     std::to_string(size) + " bytes); accepted formats: PNG, JPEG, BMP");
  if (fmt != ImageFormat::Png && fmt != ImageFormat::Jpeg && fmt != ImageFormat::Bmp)
    throw ImageError(std::string("unsupported image format ") + image_format_name(fmt) +
                     "; accepted formats: PNG, JPEG, BMP");
  const char* fname = image_format_name(fmt);
  if (size > (size_t)INT_MAX)
    throw ImageError(std::string(fname) + " input of " + std::to_string(size) +
                     " bytes is larger than the decoder accepts (2 GiB)");

  // 1. Header dimensions, read here (stb_image refuses big images with a vaguer message), before
  //    any pixel is decoded; the JPEG walk also finds the EXIF block and checks the stream's end.
  int64_t hw = 0, hh = 0;
  JpegScan jpeg;
  const uint8_t* exif = nullptr;
  size_t exif_size = 0;
  if (fmt == ImageFormat::Png) {
    png_dims(bytes, size, &hw, &hh);
  } else if (fmt == ImageFormat::Jpeg) {
    jpeg = scan_jpeg(bytes, size);
    hw = jpeg.width;
    hh = jpeg.height;
  } else {
    bmp_dims(bytes, size, &hw, &hh);
  }
  if (hw <= 0 || hh <= 0)
    throw ImageError(std::string(fname) + " header gives an empty image " + std::to_string(hw) +
                     "x" + std::to_string(hh));
  const uint64_t px = (uint64_t)hw * (uint64_t)hh;  // sides < 2^32: no overflow
  if (opt.max_pixels < 0 || px > (uint64_t)opt.max_pixels)
    throw ImageError("image is " + std::to_string(hw) + "x" + std::to_string(hh) + " = " +
                     pixel_count_str(px) + ", limit " + pixel_count_str((uint64_t)std::max<int64_t>(0, opt.max_pixels)));
  if (hw > opt.max_side || hh > opt.max_side)
    throw ImageError(std::string(fname) + " image is " + std::to_string(hw) + "x" +
                     std::to_string(hh) + ": a side is longer than the limit of " +
                     std::to_string(opt.max_side));
  const int w = (int)hw, h = (int)hh;

  // 2. Container structure, then stb_image's own header check.
  if (fmt == ImageFormat::Jpeg) {
    if (!jpeg.error.empty()) throw ImageError(jpeg.error);
    if (!jpeg.has_eoi) throw ImageError("JPEG is truncated: no end-of-image marker after the image data");
    exif = jpeg.exif;
    exif_size = jpeg.exif_size;
  } else if (fmt == ImageFormat::Png) {
    find_png_exif(bytes, size, &exif, &exif_size);
  } else {
    check_bmp_size(bytes, size, w, h);
  }
  if (fmt != ImageFormat::Jpeg) check_stb_header(bytes, size, fmt, w, h);
  Image img;  // PNG: the common case decoded here already (png_direct_into), else checked for stb
  const bool png_direct = fmt == ImageFormat::Png && png_direct_into(bytes, size, &img);
  if (fmt == ImageFormat::Png && !png_direct) check_png_data(bytes, size, w, h);
  int orientation = 1;
  if (exif && opt.apply_exif_orientation) {
    try {
      orientation = parse_exif_tiff_orientation(exif, exif_size);
    } catch (const ImageError&) {
      if (opt.strict_exif) throw;
      orientation = 1;
    }
  }

  // 3. Pixels: JPEG by libjpeg-turbo; PNG and BMP by stb (grey replicated, alpha dropped, 16 -> 8
  //    bits) unless the PNG was read above.
  if (!png_direct)
    img = fmt == ImageFormat::Jpeg ? decode_jpeg_pixels(bytes, size, w, h) : decode_stb_pixels(bytes, size, fmt, w, h);
  // Returned as it is (moved): `orientation == 1 ? img : ...` would copy it (36 MB at 12 MP, into
  // freshly faulted pages).
  if (orientation == 1) return img;
  return apply_exif_orientation(img, orientation);
}

Image load_image_file(const std::string& path, const DecodeOptions& opt) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw ImageError("cannot open image '" + path + "': " + std::strerror(errno));
  const std::streamoff n = f.tellg();
  if (n < 0) throw ImageError("cannot read image '" + path + "': size unknown");
  if (n > (std::streamoff)INT_MAX)
    throw ImageError("image file '" + path + "' is " + std::to_string(n) +
                     " bytes, larger than the decoder accepts (2 GiB)");
  std::vector<uint8_t> bytes((size_t)n);
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n))
    throw ImageError("cannot read image '" + path + "': " + std::strerror(errno));
  try {
    return decode_image(bytes.data(), bytes.size(), opt);
  } catch (const ImageError& e) {
    throw ImageError(path + ": " + e.what());
  }
}

}  // namespace m2fp
