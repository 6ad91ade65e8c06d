// engine/image.h: decoded images (8-bit RGB, interleaved) and the decoder front door.
//
// What the decoder promises (the upstream pipeline decodes with PIL: Image.open, ImageOps.exif_transpose,
// convert('RGB'); this file replicates that: JPEG with libjpeg-turbo, the library Pillow links, so JPEG
// pixels are PIL's bit for bit; BMP and PNG with stb_image, the common 8-bit PNGs read by our own
// code with libdeflate to the same pixels, see decode_png_direct):
//   - accepted formats: PNG, JPEG, BMP, recognised by their magic bytes; every other format stb_image
//     knows (GIF, PSD, HDR, PNM, PIC, TGA) and common ones it does not (WebP, TIFF, HEIF) are refused
//     with a message that names the format;
//   - the header dimensions are checked BEFORE anything is decoded: zero or absurd sides
//     and more than DecodeOptions::max_pixels are refused;
//   - RGB output like PIL's convert('RGB'): grey replicated, alpha dropped, palettes expanded,
//     1/2/4-bit grey scaled to 0..255. 16-bit PNGs keep the high byte (stb_image's conversion;
//     PIL does the same for 16-bit RGB, but CLIPS 16-bit grey (I;16 -> L) to 255, which we do not copy);
//   - the EXIF orientation (JPEG APP1 "Exif\0\0", PNG eXIf chunk; IFD0 tag 0x0112) is applied as
//     PIL's ImageOps.exif_transpose does. XMP-only orientation (no EXIF tag) is ignored.
//   - truncated files are refused: PNG by stb itself, JPEG when no end-of-image marker follows the
//     first scan, BMP when the file is shorter than its pixel array.
// Every failure throws ImageError with a message that says what is wrong; hostile bytes never read
// out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace m2fp {

// Bad or unsupported image bytes: the message says what is wrong (never a crash).
struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]
  const uint8_t* row(int y) const { return rgb.data() + (size_t)y * width * 3; }
  uint8_t* row(int y) { return rgb.data() + (size_t)y * width * 3; }
  static Image blank(int width, int height, uint8_t r = 0, uint8_t g = 0, uint8_t b = 0);
};

struct DecodeOptions {
  int64_t max_pixels = 50'000'000;   // refused before decoding (header dimensions)
  int max_side = 65535;              // longest accepted side (JPEG's own limit)
  bool apply_exif_orientation = true;
  // Malformed EXIF (offsets outside the block, IFD chains that loop): true = refuse the image with
  // ImageError; false = ignore the EXIF block (orientation 1) and decode the pixels.
  bool strict_exif = true;
};

enum class ImageFormat { Unknown, Png, Jpeg, Bmp, Gif, WebP, Tiff, Psd, Hdr, Pnm, Pic, Heif };
ImageFormat sniff_image_format(const uint8_t* bytes, size_t size);
const char* image_format_name(ImageFormat f);

// The format and the width and height its header claims, read without decoding any pixel (PNG: IHDR;
// JPEG: the marker walk to the first frame header; BMP: the info header). false when the bytes are
// no PNG/JPEG/BMP or the header cannot be read: decode_image then says what is wrong. The sizes are
// the ones decode_image checks against DecodeOptions (before EXIF rotation).
struct ImageHeader {
  ImageFormat format = ImageFormat::Unknown;
  int64_t width = 0, height = 0;
};
bool read_image_header(const uint8_t* bytes, size_t size, ImageHeader* out);

// Decodes PNG, JPEG or BMP bytes to RGB (grey replicated, alpha dropped as PIL's convert('RGB')),
// honouring the EXIF orientation as PIL's ImageOps.exif_transpose does. Throws ImageError.
Image decode_image(const uint8_t* bytes, size_t size, const DecodeOptions& opt = {});
// Reads the file (errors name the path) and decodes it.
Image load_image_file(const std::string& path, const DecodeOptions& opt = {});

// ---- building blocks (exposed for tests) ---------------------------------------------------
// EXIF orientation 1..8 of a PNG or JPEG file; 1 when there is no EXIF block or no 0x0112 tag
// (values outside 1..8 are returned as they are: exif_transpose ignores them). Throws ImageError
// on malformed EXIF structure.
int read_exif_orientation(const uint8_t* bytes, size_t size);
// Same, on a bare TIFF block ("II*\0" or "MM\0*" header, IFD0, ...), i.e. the APP1 payload after
// "Exif\0\0".
int parse_exif_tiff_orientation(const uint8_t* tiff, size_t size);
// The transposition PIL's exif_transpose applies for an orientation: 2 mirror left-right,
// 3 rotate 180, 4 mirror top-bottom, 5 transpose, 6 rotate 270 (90 clockwise), 7 transverse,
// 8 rotate 90 (counter-clockwise); anything else returns the image unchanged.
Image apply_exif_orientation(const Image& img, int orientation);
// decode_image's own PNG path alone: 8-bit grey, grey+alpha, RGB or RGBA, not interlaced, no
// palette, tRNS or CgBI chunk, a stream libdeflate inflates to exactly the image's bytes. true with
// *out its RGB pixels (no EXIF orientation applied); false when the file is not such a PNG, or
// claims more than max_pixels: decode_image then leaves it to stb_image. What it accepts, stb_image
// decodes to the same pixels (exposed so that tests and fuzz/fuzz_image.cpp compare the two).
bool decode_png_direct(const uint8_t* bytes, size_t size, Image* out, int64_t max_pixels = 50'000'000);

}  // namespace m2fp
