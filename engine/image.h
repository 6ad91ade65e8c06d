// engine/image.h: decoded images (8-bit RGB, interleaved) and the decoder front door.
#pragma once

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
};

struct DecodeOptions {
  int64_t max_pixels = 50'000'000;   // refused before decoding (header dimensions)
  bool apply_exif_orientation = true;
};

// Decodes PNG, JPEG or BMP bytes to RGB (grey replicated, alpha dropped as PIL's convert('RGB')),
// honouring the JPEG EXIF orientation as PIL's ImageOps.exif_transpose does. Throws ImageError.
Image decode_image(const uint8_t* bytes, size_t size, const DecodeOptions& opt = {});
Image load_image_file(const std::string& path, const DecodeOptions& opt = {});

}  // namespace m2fp
