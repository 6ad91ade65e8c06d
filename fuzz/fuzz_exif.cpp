// fuzz/fuzz_exif.cpp: libFuzzer target for a bare EXIF (TIFF) block, the APP1 / eXIf payload:
// byte order, IFD0 walk, the orientation entry (type, count, out-of-line value) and the IFD chain
// (loops, offsets outside the block); then the orientation is applied to a small image.
#include <cstddef>
#include <cstdint>

#include "engine/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int orientation = 1;
  try {
    orientation = m2fp::parse_exif_tiff_orientation(data, size);
  } catch (const m2fp::ImageError&) {
    return 0;
  }
  m2fp::Image img = m2fp::Image::blank(3, 2, 10, 20, 30);
  img.rgb[0] = 200;  // one marked pixel: where it goes depends on the orientation
  const m2fp::Image out = m2fp::apply_exif_orientation(img, orientation);
  const bool swap = orientation >= 5 && orientation <= 8;
  if (out.width != (swap ? 2 : 3) || out.height != (swap ? 3 : 2) || out.rgb.size() != 18) __builtin_trap();
  int marked = 0;
  for (size_t i = 0; i < out.rgb.size(); i += 3) marked += out.rgb[i] == 200;
  if (marked != 1) __builtin_trap();
  return 0;
}
