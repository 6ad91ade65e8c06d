// tests/engine/test_util.h: helpers shared by the engine tests: .npy reading, synthetic photos,
// the reference dumps, error statistics.
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

namespace m2fp::test {

struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;  // converted to float whatever the stored dtype (<f4, <f8, |u1, <i4, <i8)
};

inline Npy read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h16;
    f.read(reinterpret_cast<char*>(&h16), 2);
    hlen = h16;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  f.read(&header[0], hlen);
  auto field = [&](const std::string& key) {
    size_t p = header.find("'" + key + "'");
    if (p == std::string::npos) throw std::runtime_error(path + ": header lacks " + key);
    return header.substr(header.find(':', p) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  if (field("fortran_order").find("True") < 8) throw std::runtime_error(path + ": fortran order");
  std::string sh = field("shape");
  sh = sh.substr(sh.find('(') + 1, sh.find(')') - sh.find('(') - 1);
  Npy n;
  int64_t count = 1;
  for (size_t i = 0; i < sh.size();) {
    while (i < sh.size() && (sh[i] == ' ' || sh[i] == ',')) ++i;
    if (i >= sh.size()) break;
    size_t j = i;
    while (j < sh.size() && isdigit((unsigned char)sh[j])) ++j;
    n.shape.push_back(std::stoll(sh.substr(i, j - i)));
    count *= n.shape.back();
    i = j;
  }
  n.data.resize((size_t)count);
  auto read_as = [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> raw((size_t)count);
    f.read(reinterpret_cast<char*>(raw.data()), (std::streamsize)(raw.size() * sizeof(T)));
    if (!f) throw std::runtime_error(path + ": truncated data");
    for (int64_t i = 0; i < count; ++i) n.data[i] = (float)raw[i];
  };
  if (descr == "<f4") read_as(float{});
  else if (descr == "<f8") read_as(double{});
  else if (descr == "|u1") read_as(uint8_t{});
  else if (descr == "<i4") read_as(int32_t{});
  else if (descr == "<i8") read_as(int64_t{});
  else throw std::runtime_error(path + ": unsupported dtype " + descr);
  return n;
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
