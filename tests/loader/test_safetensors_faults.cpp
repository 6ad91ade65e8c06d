// tests/loader/test_safetensors_faults.cpp: a model file that changes under the loader (truncated,
// rewritten in place, replaced by rename) and SafetensorsFile::from_bytes (the fuzzing entry
// point) against open(). A truncated mapping must give a LoadError, never SIGBUS.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>

#include "model_loader/safetensors.h"
#include "tests/loader/loader_test_util.h"

using m2fp::LoadError;
using m2fp::SafetensorsFile;
using m2fp::TensorView;
using namespace m2fp_test;

namespace {

class SafetensorsFaults : public TempFileTest {
 protected:
  // A file with one `mib` MiB F32 tensor "big" (value i % 251 + 1, never 0) after a small one.
  std::string big_file(const std::string& name, int mib) {
    const int64_t n = static_cast<int64_t>(mib) << 18;
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 251 + 1);
    ojson h;
    h["__metadata__"] = {{"format", "pt"}};
    h["small"] = entry("F32", {2}, 0, 8);
    h["big"] = entry("F32", {n}, 8, 8 + 4 * n);
    std::vector<float> s{1.f, 2.f};
    return put(name, st_bytes(h.dump(), raw(s) + raw(v)));
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const LoadError& e) {
    return e.what();
  }
  return "";
}

// Counts the zero floats of a tensor and touches every byte of it (reads past a truncation).
int64_t zero_floats(const TensorView& t) {
  int64_t zeros = 0;
  for (uint64_t off = 0; off + 4 <= t.nbytes(); off += 4) {
    float x;
    std::memcpy(&x, t.data + off, 4);
    zeros += x == 0.f;
  }
  return zeros;
}

// ---- from_bytes shares open()'s validation -----------------------------------------------------

TEST_F(SafetensorsFaults, FromBytesAgreesWithOpenOnValidAndMutatedFiles) {
  const std::string base = small_valid_file();
  const std::string path = tmp_.file("agree.safetensors");
  std::mt19937_64 rng(77);
  int same_ok = 0, same_error = 0;
  for (int it = 0; it < 600; ++it) {
    std::string m = base;
    if (it > 0) {
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !m.empty(); ++e) {
        const size_t pos = rng() % m.size();
        switch (rng() % 4) {
          case 0: m[pos] = static_cast<char>(m[pos] ^ (1 << (rng() % 8))); break;
          case 1: m[pos] = "{}[]\",:0123456789 -"[rng() % 19]; break;
          case 2: m.resize(rng() % (m.size() + 1)); break;
          case 3: m.erase(pos, 1 + rng() % 3); break;
        }
      }
    }
    ::unlink(path.c_str());
    write_bytes(path, m);
    std::unique_ptr<SafetensorsFile> a, b;
    const std::string ea = error_of([&] { a = SafetensorsFile::open(path); });
    const std::string eb = error_of([&] {
      b = SafetensorsFile::from_bytes(reinterpret_cast<const uint8_t*>(m.data()), m.size(), path);
    });
    ASSERT_EQ(ea, eb) << "iteration " << it << ": open() and from_bytes() disagree";
    if (!ea.empty()) {
      ++same_error;
      continue;
    }
    ++same_ok;
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->file_size(), b->file_size());
    EXPECT_EQ(a->header_size(), b->header_size());
    EXPECT_EQ(a->metadata(), b->metadata());
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (size_t i = 0; i < a->tensors().size(); ++i) {
      const TensorView &x = a->tensors()[i], &y = b->tensors()[i];
      EXPECT_EQ(x.name, y.name);
      EXPECT_EQ(x.dtype, y.dtype);
      EXPECT_EQ(x.shape, y.shape);
      EXPECT_EQ(x.begin, y.begin);
      EXPECT_EQ(x.end, y.end);
      EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes()), 0) << x.name;
      b->release(y);  // a no-op for bytes, but still checks the view
    }
  }
  std::printf("  600 inputs: %d opened by both, %d refused by both with the same message\n", same_ok, same_error);
  EXPECT_GT(same_ok, 1);
  EXPECT_GT(same_error, 100);
}

TEST_F(SafetensorsFaults, FromBytesOwnsACopy) {
  std::string bytes = small_valid_file();
  auto f = SafetensorsFile::from_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
  EXPECT_EQ(f->path(), "mem");
  std::fill(bytes.begin(), bytes.end(), '\0');
  const TensorView* m = f->find("mid");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data), 5), "\x01\x02\x03\x04\x05");
  EXPECT_NO_THROW(f->check_unchanged());
  const std::string e = error_of([] { SafetensorsFile::from_bytes(nullptr, 0, "nothing"); });
  EXPECT_EQ(e, "nothing: empty file (0 bytes), not a safetensors file");
}

// ---- the file changes while it is mapped --------------------------------------------------------

TEST_F(SafetensorsFaults, TruncatedWhileMappedIsALoadErrorNotSigbus) {
  const std::string path = big_file("trunc.safetensors", 3);
  auto f = SafetensorsFile::open(path);
  const TensorView* big = f->find("big");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(zero_floats(*big), 0);  // pages resident and intact
  const uint64_t keep = 8 + f->header_size() + 8 + 100000;  // 100000 bytes of "big" survive
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(keep)), 0);

  // Reading past the new end would raise SIGBUS; the guard turns the lost pages into zeros.
  const int64_t zeros = zero_floats(*big);
  std::printf("  %lld of %lld floats read back as 0 after the truncation\n", (long long)zeros,
              (long long)big->numel());
  EXPECT_GE(zeros, big->numel() - 100000 / 4 - 1024);  // all but the surviving bytes (+ one page)
  EXPECT_LT(zeros, big->numel());

  const std::string e = error_of([&] { f->check_unchanged(); });
  std::printf("  %s\n", e.c_str());
  EXPECT_EQ(e.rfind(path + ": the file was truncated while it was being read", 0), 0u) << e;
  EXPECT_NE(e.find("load it again"), std::string::npos) << e;
  // release() refuses as well (M2FP::load releases every tensor after copying it)
  EXPECT_EQ(error_of([&] { f->release(*big); }), e);
  EXPECT_EQ(error_of([&] { f->release(*f->find("small")); }), e);
}

TEST_F(SafetensorsFaults, TruncationBeforeAnyReadIsSeenBySize) {
  const std::string path = big_file("trunc2.safetensors", 1);
  auto f = SafetensorsFile::open(path);
  const uint64_t size = f->file_size();
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size / 2)), 0);
  const std::string e = error_of([&] { f->release(*f->find("small")); });
  EXPECT_EQ(e, path + ": the file changed while it was being read (" + std::to_string(size) + " bytes at open, " +
                   std::to_string(size / 2) + " now): wait until it is completely written and load it again");
}

TEST_F(SafetensorsFaults, RewrittenInPlaceIsDetected) {
  const std::string path = big_file("rewrite.safetensors", 1);
  auto f = SafetensorsFile::open(path);
  // Overwrite some bytes of "big" with the same file size (cp onto an existing file ends so).
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const char junk[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  ASSERT_EQ(::pwrite(fd, junk, sizeof junk, static_cast<off_t>(8 + f->header_size() + 4096)), 16);
  // The write updates mtime unless it lands in the same file-system clock tick as the file's
  // creation; make the difference certain.
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ASSERT_EQ(::futimens(fd, ts), 0);
  ::close(fd);
  const std::string e = error_of([&] { f->check_unchanged(); });
  EXPECT_NE(e.find("the file changed while it was being read"), std::string::npos) << e;
  EXPECT_NE(e.find("modified in place"), std::string::npos) << e;
}

TEST_F(SafetensorsFaults, ReplacedByRenameIsHarmless) {
  const std::string path = big_file("renamed.safetensors", 1);
  auto f = SafetensorsFile::open(path);
  const std::string other = put("other.safetensors", small_valid_file());
  ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);  // an atomic update of the model file
  const TensorView* big = f->find("big");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(zero_floats(*big), 0);  // still the old inode's bytes
  float x;
  std::memcpy(&x, big->data + 4 * 1000, 4);
  EXPECT_EQ(x, static_cast<float>(1000 % 251 + 1));
  EXPECT_NO_THROW(f->check_unchanged());
  EXPECT_NO_THROW(f->release(*big));
}

TEST_F(SafetensorsFaults, GuardSlotsAreReusedAndManyFilesCanBeOpen) {
  const std::string path = big_file("many.safetensors", 1);
  for (int i = 0; i < 600; ++i) SafetensorsFile::open(path);  // opened and closed: slots freed
  std::vector<std::unique_ptr<SafetensorsFile>> open_now;
  for (int i = 0; i < 300; ++i) open_now.push_back(SafetensorsFile::open(path));  // more than the slots
  for (auto& f : open_now) EXPECT_EQ(zero_floats(*f->find("big")), 0);
  open_now.clear();
  // Still guarded after all that.
  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  EXPECT_GT(zero_floats(*f->find("big")), 0);
  EXPECT_NE(error_of([&] { f->check_unchanged(); }).find("truncated while it was being read"), std::string::npos);
}

// A SIGBUS outside the loader's mappings still ends the process (the guard chains to the previous
// disposition: default = killed by SIGBUS; under AddressSanitizer its report and a non-zero exit).
bool died_abnormally(int status) {
  return WIFSIGNALED(status) ? WTERMSIG(status) == SIGBUS || WTERMSIG(status) == SIGABRT
                             : WIFEXITED(status) && WEXITSTATUS(status) != 0;
}

TEST_F(SafetensorsFaults, ForeignSigbusIsNotSwallowed) {
  const std::string model = big_file("guarded.safetensors", 1);
  const std::string foreign = put("foreign.bin", std::string(3 * 4096, 'x'));
  auto guard_installed = SafetensorsFile::open(model);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);  // the child's sanitizer report is expected
    if (null >= 0) ::dup2(null, 2);
    const int fd = ::open(foreign.c_str(), O_RDONLY);
    void* m = ::mmap(nullptr, 3 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED || ::truncate(foreign.c_str(), 100) != 0) ::_exit(0);  // counts as a failure
    volatile char c = static_cast<const char*>(m)[2 * 4096];  // past the end: SIGBUS
    (void)c;
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(died_abnormally(status)) << "status " << status;
  if (WIFSIGNALED(status)) std::printf("  child killed by signal %d\n", WTERMSIG(status));
  if (WIFEXITED(status)) std::printf("  child exited with %d\n", WEXITSTATUS(status));
}

}  // namespace
