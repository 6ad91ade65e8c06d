// tests/loader/loader_test_util.h: helpers shared by the loader tests: a temporary directory (and a
// fixture base writing files into it), safetensors byte builders, and an "expect LoadError naming
// the file" check.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model_loader/safetensors.h"

namespace m2fp_test {

using ojson = nlohmann::ordered_json;  // keeps the header order we write

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/m2fp_loader_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    dir_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// Fixture base of the loader tests: a fresh temporary directory per test.
class TempFileTest : public ::testing::Test {
 protected:
  // Writes `bytes` to the file `name` in the temp dir and returns its path.
  std::string put(const std::string& name, const std::string& bytes) {
    std::string p = tmp_.file(name);
    write_bytes(p, bytes);
    return p;
  }
  TempDir tmp_;
};

inline std::string u64le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// [N][header][data] with N = header size; the header is padded with spaces to a multiple of 8
// when `pad` (as writers do, so F32 data stays aligned).
inline std::string st_bytes(std::string header, const std::string& data, bool pad = true) {
  if (pad) {
    while (header.size() % 8) header += ' ';
  }
  return u64le(header.size()) + header + data;
}

inline ojson entry(const char* dtype, std::vector<int64_t> shape, uint64_t begin, uint64_t end) {
  return ojson{{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A small valid file: tensors in a deliberately non-alphabetical header order.
//   zeta  F32 [2, 3]  = 0.5 * i         bytes [0, 24)
//   alpha I64 []      = 42              bytes [24, 32)
//   empty F16 [0, 4]                    bytes [32, 32)
//   mid   U8  [5]     = 1..5            bytes [32, 37)
inline std::string small_valid_file() {
  ojson h;
  h["__metadata__"] = {{"format", "pt"}, {"note", "small"}};
  h["zeta"] = entry("F32", {2, 3}, 0, 24);
  h["alpha"] = entry("I64", {}, 24, 32);
  h["empty"] = entry("F16", {0, 4}, 32, 32);
  h["mid"] = entry("U8", {5}, 32, 37);
  std::vector<float> z{0.f, 0.5f, 1.f, 1.5f, 2.f, 2.5f};
  std::vector<int64_t> a{42};
  std::string data = raw(z) + raw(a) + std::string("\x01\x02\x03\x04\x05", 5);
  return st_bytes(h.dump(), data);
}

// Expects open(path) to throw m2fp::LoadError whose message starts with "<path>: " and contains
// every one of `parts`. Returns the message (for printing).
inline std::string expect_load_error(const std::string& path, std::initializer_list<std::string> parts) {
  try {
    auto f = m2fp::SafetensorsFile::open(path);
    ADD_FAILURE() << path << ": opened without error, expected a LoadError containing '" << *parts.begin() << "'";
    return {};
  } catch (const m2fp::LoadError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "message does not start with the path: " << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": threw a non-LoadError exception: " << e.what();
    return {};
  }
}

// Directory with the test checkpoints: $M2FP_TESTDATA if set, else the build tree's testdata.
inline std::string testdata_dir() {
  const char* env = getenv("M2FP_TESTDATA");
  return env && *env ? std::string(env) : std::string(M2FP_TESTDATA);
}

}  // namespace m2fp_test
