// tests/engine/test_image.cpp: decoding against PIL (convert('RGB'), exif_transpose) and hostile bytes.
//
// Reference files come from tests/engine/image_ref.py (run with M2FP_PYTHON = Debian's python3 with
// PIL/numpy) into a temporary folder once per suite.
#include <gtest/gtest.h>

#include <libdeflate.h>
#include <omp.h>
#include <stb_image.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/image.h"
#include "image_test_util.h"

namespace m2fp {
namespace {

using testutil::read_bytes;
using testutil::read_npy;

struct Diff {
  int max = 0;
  int64_t exact = 0, n = 0;
  double mean = 0;
};

Diff compare(const Image& img, const testutil::Npy& want) {
  Diff d;
  EXPECT_EQ(want.shape.size(), 3u);
  EXPECT_EQ(want.shape[0], img.height);
  EXPECT_EQ(want.shape[1], img.width);
  if (want.shape.size() != 3 || want.shape[0] != img.height || want.shape[1] != img.width) {
    d.max = 999;
    return d;
  }
  const uint8_t* w = want.u8();
  double sum = 0;
  for (size_t i = 0; i < img.rgb.size(); ++i) {
    const int e = std::abs((int)img.rgb[i] - (int)w[i]);
    d.max = std::max(d.max, e);
    d.exact += e == 0;
    sum += e;
  }
  d.n = (int64_t)img.rgb.size();
  d.mean = sum / std::max<int64_t>(1, d.n);
  return d;
}

Image decode_file(const std::string& path, const DecodeOptions& opt = {}) {
  const std::vector<uint8_t> b = read_bytes(path);
  return decode_image(b.data(), b.size(), opt);
}

// Expects ImageError whose message contains `needle`; returns the message.
std::string expect_image_error(const std::vector<uint8_t>& b, const std::string& needle,
                               const DecodeOptions& opt = {}) {
  try {
    decode_image(b.data(), b.size(), opt);
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' lacks '" << needle << "'";
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ImageError, got another exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected ImageError containing '" << needle << "', decode succeeded";
  return {};
}

class ImageDecode : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testutil::TempDir();
    testutil::run_image_ref("pngs " + testutil::shell_quote(dir_->path));
    testutil::run_image_ref("exif " + testutil::shell_quote(dir_->path));
    testutil::run_image_ref("jpegs " + testutil::shell_quote(dir_->path));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string file(const std::string& name) { return (*dir_) / name; }
  static testutil::TempDir* dir_;
};
testutil::TempDir* ImageDecode::dir_ = nullptr;

// ---- PIL parity ------------------------------------------------------------------------------

TEST_F(ImageDecode, PngAndBmpVariantsEqualPilConvertRgb) {
  // 16-bit grey: expectation is the high byte (PIL itself clips I;16 to 255 in convert('RGB')).
  const char* names[] = {"rgb.png",    "rgba.png",   "gray.png",       "la.png",
                         "palette.png", "palette_trns.png", "bit1.png", "gray4.png",
                         "rgb16.png",  "gray16.png", "rgb.bmp",        "gray.bmp"};
  for (const char* name : names) {
    const Image img = decode_file(file(name));
    const Diff d = compare(img, read_npy(file(std::string(name) + ".npy")));
    std::printf("  decode %-17s %dx%d  max |ours - PIL| = %d\n", name, img.width, img.height, d.max);
    EXPECT_EQ(d.max, 0) << name;
  }
}

TEST_F(ImageDecode, ExifOrientationOnPngIsExactlyPilExifTranspose) {
  for (int o = 1; o <= 8; ++o) {
    const std::string name = "exif_" + std::to_string(o) + ".png";
    const std::vector<uint8_t> b = read_bytes(file(name));
    EXPECT_EQ(read_exif_orientation(b.data(), b.size()), o) << name;
    const Image img = decode_image(b.data(), b.size());
    const Diff d = compare(img, read_npy(file(name + ".npy")));
    std::printf("  orientation %d (PNG eXIf)  %dx%d  max diff %d\n", o, img.width, img.height, d.max);
    EXPECT_EQ(d.max, 0) << name;
    EXPECT_EQ(img.width, o >= 5 ? 37 : 61);
    EXPECT_EQ(img.height, o >= 5 ? 61 : 37);
  }
}

TEST_F(ImageDecode, JpegExifOrientationIsExactlyPil) {
  // libjpeg-turbo with Pillow's settings: the same pixels as PIL, then exif_transpose's layout.
  for (const char* order : {"le", "be"}) {
    for (int o = 1; o <= 8; ++o) {
      const std::string name = std::string("exif_") + order + "_" + std::to_string(o) + ".jpg";
      const std::vector<uint8_t> b = read_bytes(file(name));
      EXPECT_EQ(read_exif_orientation(b.data(), b.size()), o) << name;
      const Image img = decode_image(b.data(), b.size());
      EXPECT_EQ(img.width, o >= 5 ? 37 : 61) << name;
      EXPECT_EQ(img.height, o >= 5 ? 61 : 37) << name;
      const Diff d = compare(img, read_npy(file(name + ".npy")));
      std::printf("  %-16s %dx%d  max diff %d\n", name.c_str(), img.width, img.height, d.max);
      EXPECT_EQ(d.max, 0) << name;
      // Without orientation: the stored layout.
      DecodeOptions raw;
      raw.apply_exif_orientation = false;
      const Image stored = decode_image(b.data(), b.size(), raw);
      EXPECT_EQ(stored.width, 61);
      EXPECT_EQ(stored.height, 37);
    }
  }
  const Image grey = decode_file(file("gray.jpg"));
  const Diff d = compare(grey, read_npy(file("gray.jpg.npy")));
  std::printf("  gray.jpg          max diff %d\n", d.max);
  EXPECT_EQ(d.max, 0);
  for (size_t i = 0; i < grey.rgb.size(); i += 3) {
    ASSERT_EQ(grey.rgb[i], grey.rgb[i + 1]);
    ASSERT_EQ(grey.rgb[i], grey.rgb[i + 2]);
  }
}

TEST_F(ImageDecode, JpegVariantsEqualPilConvertRgb) {
  // 4:2:0 / 4:2:2 / 4:4:4, progressive, optimised Huffman tables, restart markers, grey, Adobe CMYK,
  // a 1-pixel-wide image, 2053x1531 pictures (over 8 MB: stored in huge pages), one turned by its
  // EXIF orientation: every pixel equal to PIL's (no tolerance: the same libjpeg-turbo).
  // The large ones (over 2 Mpx) are decoded in two parts side by side (two OpenMP threads: ctest's
  // OMP_NUM_THREADS=2), and again on one thread here.
  const char* names[] = {"q90_420.jpg",   "q75_422.jpg",   "q95_444.jpg",       "progressive.jpg",
                         "optimized.jpg", "restart.jpg",   "grey.jpg",          "cmyk.jpg",
                         "tall_1x17.jpg", "large_420.jpg", "large_exif6.jpg",   "large_422.jpg",
                         "large_444.jpg", "large_restart.jpg", "large_progressive.jpg", "large_grey.jpg",
                         "large_cmyk.jpg"};
  for (const char* name : names) {
    const Image img = decode_file(file(name));
    const Diff d = compare(img, read_npy(file(std::string(name) + ".npy")));
    std::printf("  decode %-16s %dx%d  max |ours - PIL| = %d\n", name, img.width, img.height, d.max);
    EXPECT_EQ(d.max, 0) << name;
    if (std::string(name).rfind("large_", 0) == 0) {
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      const Image whole = decode_file(file(name));
      omp_set_num_threads(threads);
      EXPECT_EQ(whole.rgb, img.rgb) << name << ": one thread";
    }
  }
}

// A large JPEG with garbled entropy-coded data: libjpeg warns and decodes through; the split decode
// sees the warning and decodes the whole file again on one thread: the same pixels as a decode on
// one thread, wherever the damage is.
TEST_F(ImageDecode, LargeJpegWithCorruptDataDecodesAsOnOneThread) {
  const std::vector<uint8_t> full = read_bytes(file("large_420.jpg"));
  for (const double at : {0.3, 0.55, 0.7, 0.97}) {
    std::vector<uint8_t> bad = full;
    for (size_t i = (size_t)(bad.size() * at), k = 0; k < 64; ++k) bad[i + k] = (uint8_t)(0x35 + 7 * k % 150);
    const Image split = decode_image(bad.data(), bad.size());
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Image whole = decode_image(bad.data(), bad.size());
    omp_set_num_threads(threads);
    EXPECT_EQ(split.rgb, whole.rgb) << "garbled at " << at;
  }
}

TEST(ImageOrientation, TranspositionsOnA3x2Image) {
  // Pixel value = 10 * y + x in every channel; check the corner mapping of each orientation
  // (PIL: ROTATE_90 is counter-clockwise, ROTATE_270 clockwise).
  Image img = Image::blank(3, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) img.row(y)[3 * x + c] = (uint8_t)(10 * y + x);
  auto px = [](const Image& im, int x, int y) { return (int)im.row(y)[3 * x]; };
  const Image o2 = apply_exif_orientation(img, 2), o3 = apply_exif_orientation(img, 3),
              o4 = apply_exif_orientation(img, 4), o5 = apply_exif_orientation(img, 5),
              o6 = apply_exif_orientation(img, 6), o7 = apply_exif_orientation(img, 7),
              o8 = apply_exif_orientation(img, 8);
  EXPECT_EQ(px(o2, 0, 0), 2);   // mirror: top-right comes to top-left
  EXPECT_EQ(px(o3, 0, 0), 12);  // rotate 180
  EXPECT_EQ(px(o4, 0, 0), 10);  // mirror top-bottom
  ASSERT_EQ(o5.width, 2);
  ASSERT_EQ(o5.height, 3);
  EXPECT_EQ(px(o5, 1, 0), 10);  // transpose: (x, y) <- (y, x)
  EXPECT_EQ(px(o6, 0, 0), 10);  // 90 clockwise: bottom-left comes to top-left
  EXPECT_EQ(px(o6, 1, 0), 0);
  EXPECT_EQ(px(o7, 0, 0), 12);  // transverse
  EXPECT_EQ(px(o8, 0, 0), 2);   // 90 counter-clockwise: top-right comes to top-left
  EXPECT_EQ(px(o8, 0, 2), 0);
  const Image same = apply_exif_orientation(img, 9);
  EXPECT_EQ(same.rgb, img.rgb);
}

// ---- formats and limits ------------------------------------------------------------------------

TEST(ImageFormats, SniffingAndRefusals) {
  auto bytes = [](const char* s, size_t n) { return std::vector<uint8_t>(s, s + n); };
  EXPECT_EQ(sniff_image_format(bytes("\x89PNG\r\n\x1a\n", 8).data(), 8), ImageFormat::Png);
  EXPECT_EQ(sniff_image_format(bytes("\xff\xd8\xff\xe0", 4).data(), 4), ImageFormat::Jpeg);
  expect_image_error(bytes("GIF89a\x01\x00\x01\x00\x00\x00\x00", 13), "GIF");
  expect_image_error(bytes("RIFF\x10\x00\x00\x00WEBPVP8 ", 16), "WebP");
  expect_image_error(bytes("II*\x00\x08\x00\x00\x00", 8), "TIFF");
  expect_image_error(bytes("P6\n1 1\n255\n\x01\x02\x03", 14), "PNM");
  expect_image_error(bytes("<!DOCTYPE html>", 15), "not an image");
  expect_image_error({}, "empty");
  try {
    decode_image(nullptr, 0);
    ADD_FAILURE() << "null input decoded";
  } catch (const ImageError& e) {
    std::printf("  null input: %s\n", e.what());
  }
}

std::vector<uint8_t> png_header(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) b.push_back((uint8_t)(v >> s));
  for (uint8_t v : {8, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78}) b.push_back(v);  // depth, RGB, ..., CRC
  return b;
}

TEST(ImageLimits, HugeHeadersAreRefusedBeforeDecoding) {
  // No IDAT at all: if the decoder ran, the message would be about missing data instead.
  const std::string m = expect_image_error(png_header(100000, 100000), "100000x100000");
  std::printf("  %s\n", m.c_str());
  EXPECT_NE(m.find("10 Gpx"), std::string::npos) << m;
  EXPECT_NE(m.find("limit 50 Mpx"), std::string::npos) << m;
  expect_image_error(png_header(0, 10), "empty image");
  expect_image_error(png_header(70000, 2), "limit of 65535");
  expect_image_error(png_header(0xFFFFFFFFu, 0xFFFFFFFFu), "limit");
  DecodeOptions small;
  small.max_pixels = 1000;
  expect_image_error(png_header(100, 11), "limit 0.001 Mpx", small);
  // A JPEG frame header claiming 65535 x 65535.
  std::vector<uint8_t> j = {0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 0xFF, 0xFF, 0xFF, 0xFF, 3,
                            1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1};
  expect_image_error(j, "65535x65535");
}

class ImageHostile : public ImageDecode {};

std::vector<uint8_t> cut(const std::vector<uint8_t>& b, size_t n) {
  return std::vector<uint8_t>(b.begin(), b.begin() + (long)std::min(n, b.size()));
}

TEST_F(ImageHostile, TruncatedFilesThrow) {
  const std::vector<uint8_t> png = read_bytes(file("rgb.png"));
  const size_t n = png.size();
  for (size_t len : {size_t(8), size_t(16), size_t(33), size_t(60), n / 3, n / 2, 2 * n / 3, n - 12}) {
    const std::string m = expect_image_error(cut(png, len), "");
    std::printf("  PNG cut to %4zu/%zu bytes: %s\n", len, n, m.c_str());
  }
  const std::vector<uint8_t> jpg = read_bytes(file("plain.jpg"));
  const size_t nj = jpg.size();
  for (size_t len : {size_t(3), size_t(20), size_t(100), nj / 2, nj - 2}) {
    const std::string m = expect_image_error(cut(jpg, len), "JPEG");
    std::printf("  JPEG cut to %4zu/%zu bytes: %s\n", len, nj, m.c_str());
  }
  const std::vector<uint8_t> bmp = read_bytes(file("rgb.bmp"));
  const std::string m = expect_image_error(cut(bmp, bmp.size() - 10), "BMP is truncated");
  std::printf("  BMP cut by 10 bytes: %s\n", m.c_str());
}

TEST_F(ImageDecode, JunkBetweenJpegSegmentsIsSkippedLikePil) {
  // Some writers pad between segments; PIL's marker loop and stb_image skip non-0xff bytes.
  std::vector<uint8_t> jpg = read_bytes(file("exif_le_6.jpg"));
  const size_t app0_end = 4 + ((size_t)jpg[4] << 8 | jpg[5]);  // SOI, then APP0 (PIL writes JFIF)
  ASSERT_EQ(jpg[3], 0xE0);
  jpg.insert(jpg.begin() + (long)app0_end, {0x00, 0x12, 0x34});
  const Image img = decode_image(jpg.data(), jpg.size());
  EXPECT_EQ(img.width, 37);  // the EXIF block after the junk is still found
  const Diff d = compare(img, read_npy(file("exif_le_6.jpg.npy")));
  EXPECT_LE(d.max, 3);
}

TEST_F(ImageHostile, RandomBytesThrow) {
  std::mt19937 rng(42);
  for (int t = 0; t < 200; ++t) {
    std::vector<uint8_t> b((size_t)(1 + rng() % 2000));
    for (auto& v : b) v = (uint8_t)rng();
    // Random bytes with a real magic in front reach the container checks and stb.
    if (t % 3 == 1) std::memcpy(b.data(), "\x89PNG\r\n\x1a\n", std::min<size_t>(8, b.size()));
    if (t % 3 == 2) std::memcpy(b.data(), "\xff\xd8\xff", std::min<size_t>(3, b.size()));
    EXPECT_THROW(decode_image(b.data(), b.size()), ImageError) << "case " << t;
  }
}

// Inserts an APP1 Exif segment holding `tiff` right after the SOI marker.
std::vector<uint8_t> with_exif(const std::vector<uint8_t>& jpeg, const std::vector<uint8_t>& tiff) {
  std::vector<uint8_t> seg = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  const size_t len = seg.size() - 2;
  seg[2] = (uint8_t)(len >> 8);
  seg[3] = (uint8_t)len;
  std::vector<uint8_t> out(jpeg.size() + seg.size());
  std::copy(jpeg.begin(), jpeg.begin() + 2, out.begin());
  std::copy(seg.begin(), seg.end(), out.begin() + 2);
  std::copy(jpeg.begin() + 2, jpeg.end(), out.begin() + 2 + (long)seg.size());
  return out;
}

// A little-endian TIFF block builder.
struct Tiff {
  std::vector<uint8_t> b;
  void u16(uint32_t v) { b.push_back((uint8_t)v); b.push_back((uint8_t)(v >> 8)); }
  void u32(uint32_t v) { u16(v & 0xFFFF); u16(v >> 16); }
  static Tiff header(uint32_t ifd0) {
    Tiff t;
    t.b = {'I', 'I', 42, 0};
    t.u32(ifd0);
    return t;
  }
  void entry(uint16_t tag, uint16_t type, uint32_t count, uint32_t value) {
    u16(tag); u16(type); u32(count); u32(value);
  }
};

TEST_F(ImageHostile, MalformedExifThrowsAndLenientModeIgnoresIt) {
  const std::vector<uint8_t> plain = read_bytes(file("plain.jpg"));
  struct Case { const char* what; std::vector<uint8_t> tiff; const char* needle; };
  std::vector<Case> cases;
  {  // IFD0 offset far outside the block
    Tiff t = Tiff::header(0xFFFFFF00u);
    cases.push_back({"IFD0 offset outside", t.b, "IFD0 offset"});
  }
  {  // entry count larger than the block
    Tiff t = Tiff::header(8);
    t.u16(0xFFFF);
    t.entry(0x0112, 3, 1, 6);
    cases.push_back({"entry count", t.b, "entries"});
  }
  {  // orientation stored out of line, offset outside
    Tiff t = Tiff::header(8);
    t.u16(1);
    t.entry(0x0112, 4, 4, 0x7FFFFFF0u);
    t.u32(0);
    cases.push_back({"value offset outside", t.b, "orientation value"});
  }
  {  // IFD1 link outside
    Tiff t = Tiff::header(8);
    t.u16(1);
    t.entry(0x0112, 3, 1, 6);
    t.u32(5000);
    cases.push_back({"IFD1 outside", t.b, "IFD1 offset"});
  }
  {  // IFD0 links to itself
    Tiff t = Tiff::header(8);
    t.u16(1);
    t.entry(0x0112, 3, 1, 6);
    t.u32(8);
    cases.push_back({"IFD0 -> IFD0", t.b, "loops"});
  }
  {  // IFD0 -> IFD1 -> IFD1
    Tiff t = Tiff::header(8);
    t.u16(1);
    t.entry(0x0112, 3, 1, 6);
    t.u32(26);  // IFD1 right after IFD0 (8 + 2 + 12 + 4)
    t.u16(0);
    t.u32(26);
    cases.push_back({"IFD1 -> IFD1", t.b, "loops"});
  }
  {  // IFD1 -> IFD0
    Tiff t = Tiff::header(8);
    t.u16(1);
    t.entry(0x0112, 3, 1, 6);
    t.u32(26);
    t.u16(0);
    t.u32(8);
    cases.push_back({"IFD1 -> IFD0", t.b, "loops"});
  }
  cases.push_back({"bad byte order", {'X', 'X', 42, 0, 8, 0, 0, 0}, "byte order"});
  cases.push_back({"short block", {'I', 'I', 42, 0}, "TIFF block of 4 bytes"});
  {  // IFD0 offset pointing into the header
    Tiff t = Tiff::header(2);
    cases.push_back({"IFD0 inside header", t.b, "IFD0 offset"});
  }
  for (const Case& c : cases) {
    const std::vector<uint8_t> jpg = with_exif(plain, c.tiff);
    const std::string m = expect_image_error(jpg, c.needle);
    EXPECT_NE(m.find("malformed EXIF"), std::string::npos) << m;
    std::printf("  %-22s -> %s\n", c.what, m.c_str());
    DecodeOptions lenient;
    lenient.strict_exif = false;
    const Image img = decode_image(jpg.data(), jpg.size(), lenient);
    EXPECT_EQ(img.width, 61) << c.what;
    EXPECT_EQ(img.height, 37) << c.what;
  }
  // A well-formed chain (IFD0 -> IFD1 -> end) with orientation 6 is accepted and applied.
  Tiff t = Tiff::header(8);
  t.u16(1);
  t.entry(0x0112, 3, 1, 6);
  t.u32(26);
  t.u16(0);
  t.u32(0);
  const std::vector<uint8_t> ok = with_exif(plain, t.b);
  EXPECT_EQ(read_exif_orientation(ok.data(), ok.size()), 6);
  const Image img = decode_image(ok.data(), ok.size());
  EXPECT_EQ(img.width, 37);
  EXPECT_EQ(img.height, 61);
}

TEST_F(ImageHostile, FuzzedExifAndTruncationsNeverCrash) {
  // Mutations confined to the EXIF segment (stb_image skips it; only our parser reads it), and
  // every truncation of a small PNG and JPEG: each decode succeeds or throws ImageError.
  const std::vector<uint8_t> jpg = read_bytes(file("exif_le_6.jpg"));
  size_t a0 = 0, a1 = 0;
  for (size_t i = 2; i + 10 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xE1) {
      a0 = i + 10;  // after marker, length, "Exif\0\0"
      a1 = i + 2 + ((size_t)jpg[i + 2] << 8 | jpg[i + 3]);
      break;
    }
  ASSERT_GT(a1, a0) << "no APP1 in exif_le_6.jpg";
  std::mt19937 rng(7);
  int ok = 0, refused = 0;
  for (int t = 0; t < 3000; ++t) {
    std::vector<uint8_t> b = jpg;
    const int flips = 1 + (int)(rng() % 4);
    for (int k = 0; k < flips; ++k) b[a0 + rng() % (a1 - a0)] = (uint8_t)rng();
    try {
      decode_image(b.data(), b.size());
      ++ok;
    } catch (const ImageError&) {
      ++refused;
    }
  }
  std::printf("  EXIF fuzz: %d decoded, %d refused (ImageError)\n", ok, refused);
  for (const char* name : {"rgb.png", "plain.jpg", "gray.bmp"}) {
    const std::vector<uint8_t> b = read_bytes(file(name));
    int dec = 0, ref = 0;
    for (size_t len = 0; len < b.size(); ++len) {
      try {
        decode_image(b.data(), len);
        ++dec;
      } catch (const ImageError&) {
        ++ref;
      }
    }
    std::printf("  every truncation of %s (%zu bytes): %d decoded, %d refused\n", name, b.size(), dec, ref);
  }
}

// ---- PNG direct path (decode_png_direct) against stb_image -----------------------------------

// A PNG written here, so that every row filter and chunk layout is chosen: `filters` per row
// (cycled), the zlib stream split into IDAT chunks of `idat_chunk` bytes, a tEXt chunk before them.
struct PngSpec {
  int w = 7, h = 5, color = 2, depth = 8, interlace = 0;
  std::vector<int> filters = {0, 1, 2, 3, 4};
  size_t idat_chunk = 1 << 20;
  bool text_chunk = true, trns_chunk = false;
  int raw_extra = 0;       // bytes added to (> 0) or cut from (< 0) the inflated data
  bool bad_adler = false;  // the zlib stream's checksum flipped (stb_image ignores it)
};

int spec_paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back((uint8_t)(x >> s));
}

void chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put32(png, (uint32_t)data.size());
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  png.insert(png.end(), td.begin(), td.end());
  put32(png, libdeflate_crc32(0, td.data(), td.size()));
}

// Random pixels (smooth-ish, so that every filter's predictions matter), filtered per spec.filters.
std::vector<uint8_t> make_png(const PngSpec& spec, uint32_t seed) {
  const int n = spec.color == 0 ? 1 : spec.color == 2 ? 3 : spec.color == 4 ? 2 : 4;
  const size_t bpp = (size_t)n * spec.depth / 8, row = (size_t)spec.w * bpp;
  std::mt19937 rng(seed);
  std::vector<uint8_t> px((size_t)spec.h * row);
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = (uint8_t)(i >= bpp && rng() % 4 ? px[i - bpp] + (int)(rng() % 21) - 10 : rng());
  std::vector<uint8_t> raw;
  if (spec.interlace) {  // Adam7 passes, each row unfiltered (filter 0)
    const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p) {
      if (x0[p] >= spec.w || y0[p] >= spec.h) continue;
      for (int y = y0[p]; y < spec.h; y += dy[p]) {
        raw.push_back(0);
        for (int x = x0[p]; x < spec.w; x += dx[p])
          raw.insert(raw.end(), px.begin() + (long)(y * row + x * bpp), px.begin() + (long)(y * row + (x + 1) * bpp));
      }
    }
  }
  for (int y = 0; y < spec.h && !spec.interlace; ++y) {
    const int f = spec.filters[(size_t)y % spec.filters.size()];
    raw.push_back((uint8_t)f);
    for (size_t i = 0; i < row; ++i) {
      const int x = px[y * row + i], a = i >= bpp ? px[y * row + i - bpp] : 0, b = y ? px[(y - 1) * row + i] : 0,
                c = y && i >= bpp ? px[(y - 1) * row + i - bpp] : 0;
      const int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) >> 1 : f == 4 ? spec_paeth(a, b, c) : 0;
      raw.push_back((uint8_t)(x - pred));
    }
  }
  if (spec.raw_extra > 0) raw.insert(raw.end(), (size_t)spec.raw_extra, 0);
  if (spec.raw_extra < 0) raw.resize(raw.size() - (size_t)-spec.raw_extra);
  std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> comp(libdeflate_alloc_compressor(6),
                                                                                 libdeflate_free_compressor);
  std::vector<uint8_t> z(libdeflate_zlib_compress_bound(comp.get(), raw.size()));
  z.resize(libdeflate_zlib_compress(comp.get(), raw.data(), raw.size(), z.data(), z.size()));
  if (spec.bad_adler) z.back() ^= 0x5a;
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, (uint32_t)spec.w);
  put32(ihdr, (uint32_t)spec.h);
  ihdr.insert(ihdr.end(), {(uint8_t)spec.depth, (uint8_t)spec.color, 0, 0, (uint8_t)spec.interlace});
  chunk(png, "IHDR", ihdr);
  if (spec.text_chunk) chunk(png, "tEXt", {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 'h', 'i'});
  if (spec.trns_chunk) chunk(png, "tRNS", std::vector<uint8_t>((size_t)(spec.color == 0 ? 2 : 6), 0));
  for (size_t at = 0; at < z.size(); at += spec.idat_chunk)
    chunk(png, "IDAT", std::vector<uint8_t>(z.begin() + (long)at, z.begin() + (long)std::min(z.size(), at + spec.idat_chunk)));
  chunk(png, "IEND", {});
  return png;
}

// stb_image's RGB pixels of `png` (empty when it refuses the file).
std::vector<uint8_t> stb_rgb(const std::vector<uint8_t>& png) {
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> p(stbi_load_from_memory(png.data(), (int)png.size(), &w, &h, &n, 3),
                                              stbi_image_free);
  return p ? std::vector<uint8_t>(p.get(), p.get() + (size_t)w * h * 3) : std::vector<uint8_t>{};
}

TEST(PngDirect, EveryFilterAndColourTypeDecodesAsStbImage) {
  int cases = 0;
  for (int color : {0, 2, 4, 6})
    for (auto [w, h] : {std::pair{1, 1}, {2, 3}, {7, 5}, {33, 17}, {257, 9}})
      for (const std::vector<int>& filters :
           {std::vector<int>{0}, {1}, {2}, {3}, {4}, {4, 3, 2, 1, 0}, {2, 4, 1, 3}}) {
        PngSpec spec;
        spec.w = w, spec.h = h, spec.color = color, spec.filters = filters;
        spec.idat_chunk = (size_t)(cases % 3 == 0 ? 7 : 1 << 20);  // several IDAT chunks, or one
        const std::vector<uint8_t> png = make_png(spec, (uint32_t)cases);
        const std::vector<uint8_t> want = stb_rgb(png);
        ASSERT_FALSE(want.empty()) << stbi_failure_reason();
        Image direct;
        ASSERT_TRUE(decode_png_direct(png.data(), png.size(), &direct)) << "colour " << color << " " << w << "x" << h;
        EXPECT_EQ(direct.width, w);
        EXPECT_EQ(direct.height, h);
        EXPECT_EQ(direct.rgb, want) << "colour " << color << " " << w << "x" << h << " filters " << filters[0];
        EXPECT_EQ(decode_image(png.data(), png.size()).rgb, want);
        ++cases;
      }
  std::printf("  %d PNGs (grey, grey+alpha, RGB, RGBA; every row filter): decode_png_direct == stb_image\n", cases);
}

TEST(PngDirect, WhatItLeavesToStbImageDecodesAsBefore) {
  auto with = [](auto edit) {
    PngSpec s;
    s.w = 19, s.h = 11;
    edit(s);
    return s;
  };
  const std::pair<const char*, PngSpec> decoded[] = {
      {"a wrong Adler-32 (stb ignores it)", with([](PngSpec& s) { s.bad_adler = true; })},
      {"inflating to extra bytes", with([](PngSpec& s) { s.raw_extra = 5; })},
      {"16 bits", with([](PngSpec& s) { s.depth = 16; })},
      {"interlaced", with([](PngSpec& s) { s.interlace = 1; })},
      {"a tRNS chunk", with([](PngSpec& s) { s.trns_chunk = true; })},
  };
  for (const auto& [what, spec] : decoded) {
    const std::vector<uint8_t> png = make_png(spec, 7);
    Image direct;
    EXPECT_FALSE(decode_png_direct(png.data(), png.size(), &direct)) << what;
    const std::vector<uint8_t> want = stb_rgb(png);
    ASSERT_FALSE(want.empty()) << what << ": " << stbi_failure_reason();
    EXPECT_EQ(decode_image(png.data(), png.size()).rgb, want) << what;
    std::printf("  %-36s left to stb_image, same pixels\n", what);
  }
  const std::pair<const char*, PngSpec> refused[] = {
      {"a row filter of 5", with([](PngSpec& s) { s.filters = {1, 5}; })},
      {"too few inflated bytes", with([](PngSpec& s) { s.raw_extra = -3; })},
  };
  for (const auto& [what, spec] : refused) {
    const std::vector<uint8_t> png = make_png(spec, 7);
    Image direct;
    EXPECT_FALSE(decode_png_direct(png.data(), png.size(), &direct)) << what;
    EXPECT_TRUE(stb_rgb(png).empty()) << what;
    const std::string m = expect_image_error(png, "");
    std::printf("  %-36s refused: %s\n", what, m.c_str());
  }
  // Larger than max_pixels: not read.
  const std::vector<uint8_t> png = make_png(with([](PngSpec&) {}), 3);
  Image direct;
  EXPECT_FALSE(decode_png_direct(png.data(), png.size(), &direct, 19 * 11 - 1));
  EXPECT_TRUE(decode_png_direct(png.data(), png.size(), &direct, 19 * 11));
}

TEST(ImageFiles, MissingFileNamesThePath) {
  try {
    load_image_file("/nonexistent/dir/photo.jpg");
    ADD_FAILURE() << "no error";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/photo.jpg"), std::string::npos) << e.what();
    std::printf("  %s\n", e.what());
  }
}

}  // namespace
}  // namespace m2fp
