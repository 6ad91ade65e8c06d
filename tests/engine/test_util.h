// tests/engine/test_util.h: helpers shared by the engine tests: reference dumps read as float
// tensors (.npy parsing is image_test_util.h's), synthetic photos, error statistics.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/image.h"
#include "image_test_util.h"

namespace m2fp::test {

// A float tensor: a reference dump read back (any stored dtype converted), or an engine tensor.
struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline Npy read_npy(const std::string& path) {
  const testutil::Npy raw = testutil::read_npy(path);  // the engine tests' one .npy parser
  return Npy{raw.shape, raw.to_f32()};
}

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

struct Diff {
  double max_abs = 0, rel_l2 = 0, ref_rms = 0;
  int64_t argmax = -1;
};

// rel_l2 = ||a - b|| / max(||b||, tiny), over all elements.
inline Diff compare(const float* a, const float* b, int64_t n) {
  Diff d;
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = (double)a[i] - (double)b[i];
    if (std::fabs(e) > d.max_abs || std::isnan(e)) {
      d.max_abs = std::isnan(e) ? INFINITY : std::fabs(e);
      d.argmax = i;
    }
    num += e * e;
    den += (double)b[i] * b[i];
  }
  d.rel_l2 = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
  d.ref_rms = std::sqrt(den / std::max<int64_t>(1, n));
  return d;
}

// A deterministic photo-like test picture: a vertical gradient, a few overlapping ellipses and
// rectangles in saturated and neutral colours, and mild noise. Same bytes on every machine.
inline Image synthetic_photo(int w, int h, uint32_t seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize((size_t)w * h * 3);
  uint32_t s = seed * 2654435761u + 12345u;
  auto rnd = [&]() {
    s = s * 1664525u + 1013904223u;
    return (s >> 8) / 16777216.0;
  };
  struct Blob { double cx, cy, rx, ry; uint8_t c[3]; bool rect; };
  std::vector<Blob> blobs;
  for (int i = 0; i < 9; ++i) {
    Blob b{rnd() * w, rnd() * h, (0.08 + 0.25 * rnd()) * w, (0.1 + 0.35 * rnd()) * h,
           {(uint8_t)(rnd() * 255), (uint8_t)(rnd() * 255), (uint8_t)(rnd() * 255)}, rnd() < 0.4};
    blobs.push_back(b);
  }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double c[3] = {40 + 150.0 * y / h, 90 + 60.0 * x / w, 160 - 100.0 * y / h};
      for (const Blob& b : blobs) {
        const double dx = (x - b.cx) / b.rx, dy = (y - b.cy) / b.ry;
        const bool in = b.rect ? (std::fabs(dx) < 1 && std::fabs(dy) < 1) : (dx * dx + dy * dy < 1);
        if (in)
          for (int k = 0; k < 3; ++k) c[k] = b.c[k] * (0.85 + 0.15 * std::cos(0.07 * x + 0.05 * y));
      }
      for (int k = 0; k < 3; ++k) {
        const double v = c[k] + (rnd() - 0.5) * 12;
        img.rgb[((size_t)y * w + x) * 3 + k] = (uint8_t)std::max(0.0, std::min(255.0, v));
      }
    }
  return img;
}

}  // namespace m2fp::test
