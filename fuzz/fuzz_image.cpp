// fuzz/fuzz_image.cpp: libFuzzer target for untrusted photo bytes: magic sniffing, header size
// checks (DecodeOptions::max_pixels, before any pixel is decoded), the JPEG/PNG container walks and
// EXIF orientation, stb_image's PNG/JPEG/BMP decoders, then both pre-processings at small sizes.
//
// Findings are crashes, sanitizer reports (ASan, UBSan), any exception other than ImageError, a
// broken invariant (__builtin_trap), allocations over -malloc_limit_mb and slow inputs (-timeout).
// Differential: a PNG that decode_image reads with its own code (decode_png_direct) must give
// stb_image's pixels whenever stb_image decodes it too.
#include <stb_image.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "engine/image.h"
#include "engine/preprocess.h"

namespace {

// 1 Mpx: a header announcing more is refused before decoding. With -malloc_limit_mb=16 (see
// fuzz/run_fuzzers.sh) a decoder allocating for an unchecked header size is reported.
constexpr int64_t kMaxPixels = 1 << 20;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_preprocessed(const m2fp::Preprocessed& p) {
  check(p.Hp % m2fp::kSizeDivisibility == 0 && p.Wp % m2fp::kSizeDivisibility == 0);
  check(p.nh >= 1 && p.nw >= 1 && p.nh <= p.Hp && p.nw <= p.Wp);
  check(p.input.shape == std::vector<int64_t>({3, p.nh, p.nw}));
  check(p.image.shape == std::vector<int64_t>({p.Hp, p.Wp, 3}));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  m2fp::DecodeOptions opt;
  opt.max_pixels = kMaxPixels;
  opt.strict_exif = size % 2 == 0;  // both ways of treating malformed EXIF
  try {
    (void)m2fp::read_exif_orientation(data, size);
  } catch (const m2fp::ImageError&) {
  }
  m2fp::Image img;
  try {
    img = m2fp::decode_image(data, size, opt);
  } catch (const m2fp::ImageError&) {
    return 0;
  }
  check(img.width >= 1 && img.height >= 1);
  if (m2fp::Image direct; m2fp::decode_png_direct(data, size, &direct, kMaxPixels)) {
    int w = 0, h = 0, n = 0;
    std::unique_ptr<stbi_uc, void (*)(void*)> ref(stbi_load_from_memory(data, (int)size, &w, &h, &n, 3),
                                                  stbi_image_free);
    if (ref) {
      check(w == direct.width && h == direct.height);
      check(std::memcmp(ref.get(), direct.rgb.data(), direct.rgb.size()) == 0);
    }
  }
  check((int64_t)img.width * img.height <= kMaxPixels);
  check(img.rgb.size() == (size_t)img.width * img.height * 3);
  try {
    check_preprocessed(m2fp::preprocess_multi_person(img, 64, 96));
  } catch (const m2fp::ImageError&) {  // so elongated that a resized side is 0 pixels
  }
  try {
    check_preprocessed(m2fp::preprocess_single_person(img, 48, 64));
  } catch (const m2fp::ImageError&) {
  }
  return 0;
}
