// tests/loader/test_safetensors.cpp: SafetensorsFile on valid files and on hostile ones written by
// the test itself. Every hostile file must give a LoadError naming the file (and the key).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "model_loader/safetensors.h"
#include "tests/loader/loader_test_util.h"

using m2fp::DType;
using m2fp::LoadError;
using m2fp::SafetensorsFile;
using m2fp::TensorView;
using namespace m2fp_test;

namespace {

class Safetensors : public TempFileTest {};

// ---- valid files ------------------------------------------------------------------------------

TEST_F(Safetensors, SmallValidFile) {
  const std::string path = put("small.safetensors", small_valid_file());
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->file_size(), small_valid_file().size());
  EXPECT_EQ(f->header_size() % 8, 0u);
  EXPECT_EQ(f->data_size(), 37u);

  ASSERT_EQ(f->tensors().size(), 4u);
  const char* order[] = {"zeta", "alpha", "empty", "mid"};  // header order, not sorted
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(f->tensors()[i].name, order[i]);

  EXPECT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "small");

  const TensorView* z = f->find("zeta");
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(z->dtype, DType::F32);
  EXPECT_EQ(z->shape_str(), "[2, 3]");
  EXPECT_EQ(z->numel(), 6);
  EXPECT_EQ(z->nbytes(), 24u);
  float zv[6];
  std::memcpy(zv, z->data, sizeof zv);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(zv[i], 0.5f * i);

  const TensorView* a = f->find("alpha");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::I64);
  EXPECT_EQ(a->shape_str(), "[]");
  EXPECT_EQ(a->numel(), 1);
  int64_t av;
  std::memcpy(&av, a->data, 8);
  EXPECT_EQ(av, 42);

  const TensorView* e = f->find("empty");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->numel(), 0);
  EXPECT_EQ(e->nbytes(), 0u);

  const TensorView* m = f->find("mid");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->dtype, DType::U8);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data), 5), "\x01\x02\x03\x04\x05");

  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_EQ(f->find("__metadata__"), nullptr);
}

TEST_F(Safetensors, EmptyHeaderObjectIsValid) {
  auto f = SafetensorsFile::open(put("empty_obj.safetensors", st_bytes("{}", "", false)));
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_EQ(f->data_size(), 0u);
}

TEST_F(Safetensors, DTypeNamesRoundTrip) {
  const DType all[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
                       DType::I32, DType::I16, DType::I8,   DType::U8,  DType::BOOL};
  const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
  for (size_t i = 0; i < 10; ++i) {
    DType back;
    ASSERT_TRUE(m2fp::dtype_from_name(m2fp::dtype_name(all[i]), &back)) << m2fp::dtype_name(all[i]);
    EXPECT_EQ(back, all[i]);
    EXPECT_EQ(m2fp::dtype_size(all[i]), sizes[i]) << m2fp::dtype_name(all[i]);
  }
  DType d;
  EXPECT_FALSE(m2fp::dtype_from_name("f32", &d));
  EXPECT_FALSE(m2fp::dtype_from_name("F8_E4M3", &d));
}

// ---- hostile files ----------------------------------------------------------------------------

TEST_F(Safetensors, PathErrors) {
  const std::string missing = tmp_.file("does_not_exist.safetensors");
  expect_load_error(missing, {"cannot open", "No such file"});
  expect_load_error(tmp_.path().string(), {"is a directory"});
  expect_load_error(put("zero.safetensors", ""), {"empty file (0 bytes)"});
  const std::string fifo = tmp_.file("fifo.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_load_error(fifo, {"not a regular file"});  // and does not block waiting for a writer
  expect_load_error("/dev/null", {"not a regular file"});
  expect_load_error(put("seven.safetensors", std::string(7, '\0')), {"file too small (7 bytes)"});
}

TEST_F(Safetensors, HeaderLengthBounds) {
  // N larger than the file
  expect_load_error(put("big_n.safetensors", u64le(1000) + "{}" + std::string(10, ' ')),
                    {"header length 1000", "exceeds the file"});
  // N = 2^63
  expect_load_error(put("huge_n.safetensors", u64le(1ull << 63) + "{}"),
                    {"header length 9223372036854775808", "exceeds the file"});
  // N = 2^64 - 1
  expect_load_error(put("max_n.safetensors", u64le(~0ull) + "{}"), {"header length 18446744073709551615"});
  // N below 2
  expect_load_error(put("one_n.safetensors", u64le(1) + "{}"), {"header length 1 is too small"});
  expect_load_error(put("zero_n.safetensors", u64le(0) + "{}"), {"header length 0 is too small"});
  // exactly 8 bytes: N = 0 and nothing else
  expect_load_error(put("eight.safetensors", u64le(0)), {"too small"});
}

TEST_F(Safetensors, HeaderLengthOver100MiB) {
  // A sparse 101 MiB file whose N claims all of it: refused by the 100 MiB cap, not by the file size.
  const std::string path = tmp_.file("sparse.safetensors");
  const uint64_t n = (101ull << 20);
  write_bytes(path, u64le(n) + "{");
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(8 + n)), 0);
  expect_load_error(path, {"exceeds the 100 MiB limit"});
}

TEST_F(Safetensors, JsonErrors) {
  expect_load_error(put("notjson.safetensors", st_bytes("hello world!", "")), {"header is not valid JSON"});
  expect_load_error(put("trailing.safetensors", st_bytes("{} x", "")), {"header is not valid JSON"});
  expect_load_error(put("nul.safetensors", st_bytes(std::string("{}\0\0\0\0\0\0", 8), "", false)),
                    {"header contains a NUL byte at offset 2"});
  expect_load_error(put("nul_hidden.safetensors", st_bytes(std::string("{}\0{\"x\": 1}", 10), "")),
                    {"header contains a NUL byte at offset 2"});
  expect_load_error(put("badutf8.safetensors", st_bytes("{\"\xff\xfe\": 1}", "")), {"header is not valid JSON"});
  expect_load_error(put("array.safetensors", st_bytes("[1, 2, 3]", "")), {"header must be a JSON object, got array"});
  expect_load_error(put("string.safetensors", st_bytes("\"abc\"", "")), {"header must be a JSON object, got string"});
  std::string deep = "{\"a\":" + std::string(40, '[') + std::string(40, ']') + "}";
  expect_load_error(put("deep.safetensors", st_bytes(deep, "")), {"nests deeper than"});
  // 100k nested arrays: refused by depth, quickly, without recursion trouble
  std::string deeper = std::string(100000, '[') + std::string(100000, ']');
  expect_load_error(put("deeper.safetensors", st_bytes(deeper, "")), {"nests deeper than"});
}

TEST_F(Safetensors, DuplicateKeys) {
  const std::string e = R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  expect_load_error(put("dup_tensor.safetensors", st_bytes("{\"w\": " + e + ", \"w\": " + e + "}", std::string(8, '\0'))),
                    {"duplicate key 'w'"});
  expect_load_error(
      put("dup_field.safetensors",
          st_bytes(R"({"w": {"dtype": "F32", "dtype": "I32", "shape": [1], "data_offsets": [0, 4]}})", std::string(4, '\0'))),
      {"duplicate key 'dtype' in 'w'"});
  expect_load_error(put("dup_meta.safetensors", st_bytes(R"({"__metadata__": {"a": "1", "a": "2"}})", "")),
                    {"duplicate key 'a' in '__metadata__'"});
}

TEST_F(Safetensors, MetadataErrors) {
  expect_load_error(put("meta_num.safetensors", st_bytes(R"({"__metadata__": {"version": 3}})", "")),
                    {"metadata 'version': value must be a string, got number"});
  expect_load_error(put("meta_null.safetensors", st_bytes(R"({"__metadata__": {"x": null}})", "")),
                    {"metadata 'x'", "must be a string"});
  expect_load_error(put("meta_arr.safetensors", st_bytes(R"({"__metadata__": ["a"]})", "")),
                    {"'__metadata__' must be an object, got array"});
}

TEST_F(Safetensors, TensorEntryErrors) {
  const std::string d4(4, '\0');
  struct Case {
    const char* file;
    std::string header;
    std::string data;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"entry_num", R"({"w": 5})", "", {"tensor 'w'", "entry must be an object, got number"}},
      {"entry_arr", R"({"w": [1, 2]})", "", {"tensor 'w'", "entry must be an object, got array"}},
      {"no_dtype", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", d4, {"tensor 'w'", "missing 'dtype'"}},
      {"dtype_num", R"({"w": {"dtype": 1, "shape": [1], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "'dtype' must be a string"}},
      {"unknown_dtype", R"({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "unknown dtype 'Q4'", "known: F32"}},
      {"no_shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", d4, {"tensor 'w'", "missing 'shape'"}},
      {"shape_obj", R"({"w": {"dtype": "F32", "shape": {"a": 1}, "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "'shape' must be an array"}},
      {"neg_dim", R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "negative dimension -1"}},
      {"float_dim", R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "is not an integer"}},
      {"str_dim", R"({"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "is not an integer"}},
      {"dim_2p64", R"({"w": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "is not an integer in [0, 2^63)"}},
      {"numel_overflow", R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 4]}})",
       d4, {"tensor 'w'", "element count overflows"}},
      {"bytes_overflow", R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "byte size overflows"}},
      {"no_offsets", R"({"w": {"dtype": "F32", "shape": [1]}})", d4, {"tensor 'w'", "missing 'data_offsets'"}},
      {"offsets_3", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", d4,
       {"tensor 'w'", "'data_offsets' must be [begin, end]"}},
      {"offsets_neg", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", d4,
       {"tensor 'w'", "'data_offsets' must be [begin, end]"}},
      {"offsets_past_end", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", d4,
       {"tensor 'w'", "data_offsets [0, 8] run past the end of the data section (4 bytes"}},
      {"offsets_far", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [9223372036854775800, 9223372036854775804]}})",
       d4, {"tensor 'w'", "run past the end"}},
      {"begin_gt_end", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", d4,
       {"tensor 'w'", "data_offsets [4, 0]: begin > end"}},
      {"size_mismatch", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}})", d4,
       {"tensor 'w'", "data_offsets [0, 4] do not match shape [3] x F32 = 12 bytes"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    std::vector<std::string> parts = c.parts;
    const std::string path = put(std::string(c.file) + ".safetensors", st_bytes(c.header, c.data));
    try {
      auto f = SafetensorsFile::open(path);
      ADD_FAILURE() << c.file << ": opened without error";
    } catch (const LoadError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
}

TEST_F(Safetensors, SizeMismatchMessageNamesShapeAndBytes) {
  // The message the brief gives as an example, reproduced exactly.
  const std::string h = R"({"backbone.stem.conv1.weight": {"dtype": "F32", "shape": [64, 3, 3, 3], "data_offsets": [0, 100]}})";
  const std::string path = put("model.safetensors", st_bytes(h, std::string(100, '\0')));
  const std::string msg = expect_load_error(path, {});
  EXPECT_EQ(msg, path + ": tensor 'backbone.stem.conv1.weight': data_offsets [0, 100] do not match shape "
                        "[64, 3, 3, 3] x F32 = 6912 bytes");
  std::printf("  example message: %s\n", msg.c_str());
}

TEST_F(Safetensors, OverlappingTensors) {
  ojson h;
  h["a"] = entry("F32", {4}, 0, 16);
  h["b"] = entry("F32", {4}, 12, 28);
  expect_load_error(put("overlap.safetensors", st_bytes(h.dump(), std::string(28, '\0'))),
                    {"tensors 'a' [0, 16] and 'b' [12, 28] overlap"});
  // identical ranges
  ojson h2;
  h2["x"] = entry("F32", {1}, 0, 4);
  h2["y"] = entry("I32", {1}, 0, 4);
  expect_load_error(put("same.safetensors", st_bytes(h2.dump(), std::string(4, '\0'))), {"overlap", "'x'", "'y'"});
  // one contained in a long one that comes first in offset order, after a short one in between
  ojson h3;
  h3["long"] = entry("U8", {100}, 0, 100);
  h3["short"] = entry("U8", {10}, 10, 20);
  expect_load_error(put("contained.safetensors", st_bytes(h3.dump(), std::string(100, '\0'))),
                    {"'long' [0, 100] and 'short' [10, 20] overlap"});
  // empty tensors anywhere (even inside another) overlap nothing; adjacent tensors are fine
  ojson ok;
  ok["a"] = entry("U8", {4}, 0, 4);
  ok["e"] = entry("U8", {0}, 2, 2);
  ok["b"] = entry("U8", {4}, 4, 8);
  auto f = SafetensorsFile::open(put("adjacent.safetensors", st_bytes(ok.dump(), std::string(8, '\0'))));
  EXPECT_EQ(f->tensors().size(), 3u);
}

TEST_F(Safetensors, TruncatedDataSection) {
  const std::string good = small_valid_file();
  // cut into the last tensor 'mid' (bytes [32, 37))
  const std::string path = put("truncated.safetensors", good.substr(0, good.size() - 3));
  expect_load_error(path, {"tensor 'mid'", "run past the end of the data section (34 bytes; file truncated?)"});
  // cut inside the header
  expect_load_error(put("truncated_header.safetensors", good.substr(0, 20)), {"exceeds the file"});
}

TEST_F(Safetensors, KeysWithOddBytesAreQuotedSafely) {
  // A name with a newline and a quote: the message escapes it rather than breaking lines.
  const std::string h = "{\"a\\nb\\\"c\": {\"dtype\": \"Q\", \"shape\": [], \"data_offsets\": [0, 0]}}";
  const std::string msg = expect_load_error(put("odd_key.safetensors", st_bytes(h, "")), {"tensor 'a\\nb\\\"c'"});
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// ---- release ------------------------------------------------------------------------------------

// Resident kB of the mapping that contains `addr` (from /proc/self/smaps), or -1 if unknown.
long resident_kb(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return -1;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {  // "lo-hi perms offset dev inode path"
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("Rss:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

TEST_F(Safetensors, ReleaseDropsResidentPagesAndDataStaysReadable) {
  const int64_t n = 1 << 20;  // 4 MiB of F32
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 1000) * 0.25f;
  ojson h;
  h["__metadata__"] = {{"format", "pt"}};
  h["small"] = entry("F32", {3}, 0, 12);  // makes the big tensor start off a page boundary
  h["big"] = entry("F32", {n}, 12, 12 + 4 * n);
  const std::string path = put("big.safetensors", st_bytes(h.dump(), std::string(12, '\0') + raw(v)));
  auto f = SafetensorsFile::open(path);
  const TensorView* big = f->find("big");
  ASSERT_NE(big, nullptr);

  auto checksum = [&]() {
    double s = 0;
    for (int64_t i = 0; i < n; i += 97) {
      float x;
      std::memcpy(&x, big->data + 4 * i, 4);
      s += x;
    }
    volatile uint8_t sink = 0;  // touch every page
    for (uint64_t off = 0; off < big->nbytes(); off += 4096) sink = sink + big->data[off];
    (void)sink;
    return s;
  };
  double want = 0;
  for (int64_t i = 0; i < n; i += 97) want += v[i];

  EXPECT_EQ(checksum(), want);
  const long before = resident_kb(big->data);
  f->release(*big);
  const long after = resident_kb(big->data);
  std::printf("  mapping resident before release: %ld kB, after: %ld kB (tensor %llu kB)\n", before, after,
              static_cast<unsigned long long>(big->nbytes() / 1024));
  if (before >= 0 && after >= 0) {
    EXPECT_GE(before - after, 4096 - 16) << "release should drop the tensor's whole pages (4 MiB)";
  } else {
    std::printf("  /proc/self/smaps unavailable: resident-set check skipped\n");
  }
  EXPECT_EQ(checksum(), want) << "data must read back after release";
  // releasing tiny / empty / sub-page tensors is a no-op, not an error
  f->release(*f->find("small"));

  // a view that does not belong to this file
  TensorView foreign = *big;
  std::vector<uint8_t> other(64);
  foreign.data = other.data();
  foreign.begin = 0;
  foreign.end = 64;
  try {
    f->release(foreign);
    ADD_FAILURE() << "release of a foreign view did not throw";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": release: tensor 'big' does not lie in this file"), std::string::npos)
        << e.what();
  }
}

// ---- randomized mutations -----------------------------------------------------------------------

TEST_F(Safetensors, RandomMutationsNeverCrash) {
  const std::string base = small_valid_file();
  const uint64_t header_end = 8 + (static_cast<uint8_t>(base[0]) | (static_cast<uint8_t>(base[1]) << 8));
  const std::string path = tmp_.file("mutant.safetensors");
  std::mt19937_64 rng(20240601);
  const char interesting[] = "{}[]\",:-0123456789eE.+ \\tfnu";
  int opened = 0, refused = 0;
  const int kIterations = 3000;
  for (int it = 0; it < kIterations; ++it) {
    std::string m = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !m.empty(); ++e) {
      const uint64_t pos_any = rng() % m.size();
      const uint64_t pos_hdr = 8 + rng() % std::max<uint64_t>(1, std::min<uint64_t>(header_end, m.size()) - 8);
      const uint64_t pos = (rng() % 4 == 0) ? pos_any : std::min<uint64_t>(pos_hdr, m.size() - 1);
      switch (rng() % 7) {
        case 0: m[pos] = static_cast<char>(m[pos] ^ (1 << (rng() % 8))); break;         // bit flip
        case 1: m[pos] = static_cast<char>(rng()); break;                               // random byte
        case 2: m[pos] = interesting[rng() % (sizeof interesting - 1)]; break;         // JSON-ish byte
        case 3: m.resize(rng() % (m.size() + 1)); break;                               // truncate
        case 4: m.erase(pos, 1 + rng() % 4); break;                                    // delete bytes
        case 5: m.insert(pos, 1, interesting[rng() % (sizeof interesting - 1)]); break; // insert a byte
        case 6: {                                                                      // header length field
          const uint64_t n = (rng() % 2) ? rng() : header_end - 8 + (rng() % 17) - 8;
          const std::string le = u64le(n);
          m.replace(0, std::min<size_t>(8, m.size()), le.substr(0, std::min<size_t>(8, m.size())));
          break;
        }
      }
    }
    // a fresh inode each time: rewriting a truncated file makes ext4 flush it to disk on close
    ::unlink(path.c_str());
    write_bytes(path, m);
    try {
      auto f = SafetensorsFile::open(path);
      ++opened;
      // Everything exposed must be readable: touch every byte of every tensor (ASan checks bounds).
      unsigned sum = 0;
      for (const TensorView& t : f->tensors()) {
        ASSERT_LE(t.begin, t.end);
        ASSERT_LE(t.end, f->data_size());
        for (uint64_t i = 0; i < t.nbytes(); ++i) sum += t.data[i];
        ASSERT_EQ(f->find(t.name), &t);
        EXPECT_EQ(static_cast<uint64_t>(t.numel()) * m2fp::dtype_size(t.dtype), t.nbytes());
        f->release(t);
      }
      (void)sum;
    } catch (const LoadError& e) {
      ++refused;
      EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << it << ": non-LoadError exception: " << e.what();
    }
  }
  std::printf("  %d mutants: %d opened, %d refused with LoadError\n", kIterations, opened, refused);
  EXPECT_EQ(opened + refused, kIterations);
  EXPECT_GT(refused, kIterations / 2);  // most mutations break the file
  EXPECT_GT(opened, 0);                 // some (e.g. data-byte flips, whitespace) keep it valid
}

}  // namespace
