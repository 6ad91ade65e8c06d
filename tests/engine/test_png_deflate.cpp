// tests/engine/test_png_deflate.cpp: png_deflate's zlib streams, inflated by another decoder
// (libdeflate's) at awkward sizes (around its 256 KiB blocks, 4 MiB pieces, 64 KiB stored blocks and
// the 258-byte longest match), on every kind of input a picture gives; the same bytes however many
// threads encode; never more than the bound, and incompressible input stored (barely larger).
#include <gtest/gtest.h>
#include <libdeflate.h>
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/png_deflate.h"

namespace m2fp {
namespace {

std::vector<uint8_t> deflate(const std::vector<uint8_t>& in, size_t bpp, size_t stride) {
  std::vector<uint8_t> z(png_deflate_bound(in.size()));
  const size_t n = png_deflate(in.data(), in.size(), bpp, stride, z.data());
  EXPECT_LE(n, z.size());
  z.resize(n);
  return z;
}

// Inflates with libdeflate (a decoder of its own, with its own checks of the Huffman codes); the
// stream must say where it ends exactly where it does (no bytes after the Adler-32).
std::vector<uint8_t> inflate(const std::vector<uint8_t>& z, size_t expect) {
  std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(libdeflate_alloc_decompressor(),
                                                                                libdeflate_free_decompressor);
  std::vector<uint8_t> out(expect + 1);
  size_t in_used = 0, out_n = 0;
  const libdeflate_result r = libdeflate_zlib_decompress_ex(d.get(), z.data(), z.size(), out.data(), out.size(),
                                                            &in_used, &out_n);
  EXPECT_EQ(r, LIBDEFLATE_SUCCESS);
  EXPECT_EQ(in_used, z.size());
  out.resize(r == LIBDEFLATE_SUCCESS ? out_n : 0);
  return out;
}

// Inputs like the filtered rows of pictures: 0 random bytes, 1 sparse (mostly zeros), 2 long runs,
// 3 rows that repeat the one `stride` before with a few changes, 4 one pixel (3 bytes) repeated.
std::vector<uint8_t> make_input(size_t n, int kind, size_t stride, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    switch (kind) {
      case 0: v[i] = (uint8_t)rng(); break;
      case 1: v[i] = rng() % 40 == 0 ? (uint8_t)rng() : 0; break;
      case 2: v[i] = (uint8_t)((i / 700) % 5); break;
      case 3: v[i] = i >= stride && rng() % 9 ? v[i - stride] : (uint8_t)(rng() % 4); break;
      default: v[i] = i >= 3 && rng() % 500 ? v[i - 3] : (uint8_t)rng(); break;
    }
  }
  return v;
}

TEST(PngDeflate, InflatesBackAtAwkwardSizes) {
  const size_t sizes[] = {0, 1, 2, 3, 8, 9, 258, 259, 1000, 65535, 65536, 65537, (256u << 10) + 257,
                          (4u << 20) - 1, 4u << 20, (4u << 20) + 1, (8u << 20) + 4099};
  int cases = 0;
  for (size_t n : sizes)
    for (int kind = 0; kind < 5; ++kind)
      for (const auto& [bpp, stride] : {std::pair<size_t, size_t>{1, 13}, {3, 12001}, {4, 40001}, {2, 2}}) {
        if (n > (1u << 20) && (bpp != 3 || kind == 2 || kind == 4)) continue;  // large: picture-like inputs, once
        const std::vector<uint8_t> in = make_input(n, kind, stride, (uint32_t)(n * 7 + kind));
        const std::vector<uint8_t> z = deflate(in, bpp, stride);
        ASSERT_EQ(inflate(z, n), in) << "n " << n << " kind " << kind << " bpp " << bpp << " stride " << stride;
        ++cases;
      }
  std::printf("  %d inputs inflated back exactly\n", cases);
}

// png_deflate decides 64 positions at a time from byte-equality masks; png_deflate_one_by_one each
// position on its own: the same tokens, so the same bytes. Inputs of every kind, a photo-like one
// (smooth rows with noise: short literal runs between short matches at all three distances) and
// matches that run past a window's end, at sizes around the window (72 bytes) and a block's end.
TEST(PngDeflate, WindowsGiveTheBytesOfOneByOne) {
  auto photo_like = [](size_t n, size_t stride, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t r = rng();
      if (i >= stride && r % 3 == 0) v[i] = v[i - stride];
      else if (i >= 3 && r % 3 == 1) v[i] = v[i - 3] + (uint8_t)(r % 7 == 0);
      else v[i] = (uint8_t)(r % 5);
      if (r % 997 == 0)  // now and then a long run: a match past the window
        for (size_t k = 0; k < 300 && i + 1 < n; ++k, ++i) v[i + 1] = v[i];
    }
    return v;
  };
  int cases = 0;
  for (size_t n : {size_t{71}, size_t{72}, size_t{73}, size_t{200}, size_t{5000}, (size_t{256} << 10) + 300,
                   size_t{(4u << 20) + 999}})
    for (int kind = 0; kind < 6; ++kind)
      for (const auto& [bpp, stride] : {std::pair<size_t, size_t>{1, 13}, {3, 12001}, {4, 401}, {3, 3}}) {
        if (n > (1u << 20) && (bpp != 3 || stride != 12001)) continue;
        const std::vector<uint8_t> in =
            kind < 5 ? make_input(n, kind, stride, (uint32_t)(n + kind)) : photo_like(n, stride, (uint32_t)n);
        std::vector<uint8_t> a(png_deflate_bound(n)), b(png_deflate_bound(n));
        a.resize(png_deflate(in.data(), n, bpp, stride, a.data()));
        b.resize(png_deflate_one_by_one(in.data(), n, bpp, stride, b.data()));
        ASSERT_EQ(a, b) << "n " << n << " kind " << kind << " bpp " << bpp << " stride " << stride;
        ASSERT_EQ(inflate(a, n), in);
        ++cases;
      }
  std::printf("  %d inputs: the same bytes both ways\n", cases);
}

TEST(PngDeflate, SameBytesWhateverTheThreads) {
  // 3 pieces of 4 MiB and a bit: encoded by 1 thread, then by 2.
  const std::vector<uint8_t> in = make_input((12u << 20) + 333, 3, 12001, 5);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<uint8_t> one = deflate(in, 3, 12001);
  omp_set_num_threads(2);
  const std::vector<uint8_t> two = deflate(in, 3, 12001);
  omp_set_num_threads(before);
  EXPECT_EQ(one, two);
  EXPECT_EQ(inflate(two, in.size()), in);
}

TEST(PngDeflate, IncompressibleInputIsStored) {
  // Random bytes: stored blocks (5 bytes per 64 KiB), not codes longer than the bytes.
  const std::vector<uint8_t> in = make_input((5u << 20) + 17, 0, 1, 9);
  const std::vector<uint8_t> z = deflate(in, 1, 1);
  EXPECT_LE(z.size(), in.size() + in.size() / 10000 + 64);
  EXPECT_EQ(inflate(z, in.size()), in);
}

TEST(PngDeflate, LabelMapsCompressToRuns) {
  // A 2000x1500 label map of rectangles, filtered with Up as the PNG writer does: a few hundred
  // bytes per edge row at most, nothing like its 3 MB.
  const int w = 2000, h = 1500;
  std::vector<uint8_t> labels((size_t)w * h), filtered((size_t)(w + 1) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) labels[(size_t)y * w + x] = (uint8_t)((x / 97 + y / 113) % 7);
  for (int y = 0; y < h; ++y) {
    filtered[(size_t)y * (w + 1)] = y ? 2 : 0;
    for (int x = 0; x < w; ++x)
      filtered[(size_t)y * (w + 1) + 1 + x] =
          (uint8_t)(labels[(size_t)y * w + x] - (y ? labels[(size_t)(y - 1) * w + x] : 0));
  }
  const std::vector<uint8_t> z = deflate(filtered, 1, w + 1);
  EXPECT_LT(z.size(), filtered.size() / 200) << z.size() << " bytes";
  EXPECT_EQ(inflate(z, filtered.size()), filtered);
}

}  // namespace
}  // namespace m2fp
