// tests/engine/image_test_util.h: helpers shared by the engine tests (test_image.cpp,
// test_preprocess.cpp, test_render.cpp, test_io.cpp; test_util.h builds on it): temporary folders,
// running tests/engine/image_ref.py with M2FP_PYTHON, file I/O and the engine tests' one .npy reader.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace m2fp::testutil {

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A fresh folder under the system temp dir, removed when the object dies.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "m2fp_image_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Runs `M2FP_PYTHON tests/engine/image_ref.py ARGS`; returns stdout, throws with the output on failure.
inline std::string run_image_ref(const std::string& args) {
  const std::string cmd = std::string("PYTHONDONTWRITEBYTECODE=1 ") + shell_quote(M2FP_PYTHON) + " " +
                          shell_quote(std::string(M2FP_SOURCE_DIR) + "/tests/engine/image_ref.py") +
                          " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) throw std::runtime_error("image_ref.py failed (status " + std::to_string(rc) + "): " + cmd + "\n" + out);
  return out;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), (std::streamsize)b.size());
  if (!f) throw std::runtime_error("cannot write " + path);
}

// A .npy file as numpy wrote it (C order, little endian): descr "<f4", "<f8", "|u1", "<i4" or
// "<i8"; data holds the raw element bytes.
struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  const float* f32() const {
    if (descr != "<f4") throw std::runtime_error("npy is " + descr + ", not <f4");
    return reinterpret_cast<const float*>(data.data());
  }
  const uint8_t* u8() const {
    if (descr != "|u1") throw std::runtime_error("npy is " + descr + ", not |u1");
    return data.data();
  }
  // Every element converted to float, whatever the stored dtype.
  std::vector<float> to_f32() const {
    std::vector<float> out((size_t)numel());
    auto conv = [&](auto tag) {
      using T = decltype(tag);
      for (size_t i = 0; i < out.size(); ++i) {
        T v;
        std::memcpy(&v, data.data() + i * sizeof(T), sizeof(T));
        out[i] = (float)v;
      }
    };
    if (descr == "<f4") conv(float{});
    else if (descr == "<f8") conv(double{});
    else if (descr == "|u1") conv(uint8_t{});
    else if (descr == "<i4") conv(int32_t{});
    else if (descr == "<i8") conv(int64_t{});
    else throw std::runtime_error("npy dtype " + descr + " cannot be converted");
    return out;
  }
  std::string shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

inline Npy read_npy(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy");
  size_t hlen, off;
  if (b[6] == 1) {
    hlen = b[8] | b[9] << 8;
    off = 10;
  } else {
    hlen = b[8] | b[9] << 8 | b[10] << 16 | (size_t)b[11] << 24;
    off = 12;
  }
  const std::string h(reinterpret_cast<const char*>(b.data() + off), hlen);
  Npy a;
  auto field = [&](const std::string& key) {
    const size_t k = h.find("'" + key + "':");
    if (k == std::string::npos) throw std::runtime_error(path + ": header lacks " + key);
    return k + key.size() + 3;
  };
  size_t d = h.find('\'', field("descr")) + 1;
  a.descr = h.substr(d, h.find('\'', d) - d);
  if (h.find("True", field("fortran_order")) == field("fortran_order") + 1)
    throw std::runtime_error(path + ": fortran order");
  size_t s = h.find('(', field("shape")) + 1;
  const size_t e = h.find(')', s);
  while (s < e) {
    while (s < e && (h[s] == ' ' || h[s] == ',')) ++s;
    if (s >= e) break;
    size_t t = s;
    while (t < e && h[t] >= '0' && h[t] <= '9') ++t;
    a.shape.push_back(std::stoll(h.substr(s, t - s)));
    s = t;
  }
  if (a.descr == "<u1") a.descr = "|u1";
  const size_t elem = a.descr == "|u1" ? 1 : a.descr == "<f4" || a.descr == "<i4" ? 4
                    : a.descr == "<f8" || a.descr == "<i8" ? 8 : 0;
  if (elem == 0) throw std::runtime_error(path + ": unsupported dtype " + a.descr);
  a.data.assign(b.begin() + (long)(off + hlen), b.end());
  if (a.data.size() != (size_t)a.numel() * elem)
    throw std::runtime_error(path + ": " + std::to_string(a.data.size()) + " data bytes for shape " + a.shape_str());
  return a;
}

}  // namespace m2fp::testutil
