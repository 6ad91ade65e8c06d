// tests/engine/test_buffer_pool.cpp: engine/buffer_pool.h, the allocator behind every Tensor.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/tensor.h"

using namespace m2fp;

namespace {

bool aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

TEST(BufferPool, BlocksAreAlignedAndWritable) {
  for (size_t bytes : {size_t(0), size_t(1), size_t(100), size_t(300) << 10, size_t(5) << 20}) {
    void* p = pool::allocate(bytes);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned64(p)) << bytes;
    std::memset(p, 0x5a, bytes);
    pool::release(p, bytes);
  }
  pool::release(nullptr, 1 << 20);  // a no-op, like free(nullptr)
}

TEST(BufferPool, FreedBlocksAreReusedSmallestFirst) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  pool::trim();
  const size_t mb = size_t(1) << 20;
  void* a = pool::allocate(mb);
  std::memset(a, 1, mb);
  pool::release(a, mb);
  EXPECT_EQ(pool::stats().cached_bytes, mb);
  const pool::Stats s0 = pool::stats();
  void* b = pool::allocate(mb - 1000);  // rounds to the same size: the cached block
  EXPECT_EQ(b, a);
  EXPECT_EQ(pool::stats().hits, s0.hits + 1);
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  pool::release(b, mb - 1000);
  void* c = pool::allocate(mb / 2);  // half the size: no block of its size, the 1 MB one (resident)
  EXPECT_EQ(c, a);
  EXPECT_EQ(pool::stats().misses, s0.misses);
  EXPECT_EQ(pool::stats().hits, s0.hits + 2);
  std::memset(c, 2, mb / 2);
  void* d = pool::allocate(mb / 2);  // nothing cached now: new memory
  EXPECT_NE(d, a);
  EXPECT_EQ(pool::stats().misses, s0.misses + 1);
  pool::release(c, mb / 2);  // back as the 1 MB block it is
  EXPECT_EQ(pool::stats().cached_bytes, mb);
  pool::release(d, mb / 2);
  EXPECT_EQ(pool::stats().cached_bytes, mb + mb / 2);
  void* e = pool::allocate(mb / 2 - 1000);  // the block of its size first, not the larger one
  EXPECT_EQ(e, d);
  void* f = pool::allocate(2 * mb);  // larger than any cached block: new memory
  EXPECT_NE(f, a);
  EXPECT_EQ(pool::stats().misses, s0.misses + 2);
  pool::release(e, mb / 2 - 1000);
  pool::release(f, 2 * mb);
  pool::trim();
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  EXPECT_EQ(pool::stats().cached_blocks, 0u);
}

TEST(BufferPool, CapAndSmallBlocks) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  pool::trim();
  const size_t old = pool::set_limit(0);  // off: every block goes back at once
  void* a = pool::allocate(size_t(2) << 20);
  pool::release(a, size_t(2) << 20);
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  pool::set_limit(pool::stats().reserved_bytes + (size_t(3) << 20));  // room for one 2 MB block, not two
  void* x = pool::allocate(size_t(2) << 20);
  void* y = pool::allocate(size_t(2) << 20);
  pool::release(x, size_t(2) << 20);
  pool::release(y, size_t(2) << 20);  // over the cap: the oldest (x) goes
  EXPECT_EQ(pool::stats().cached_bytes, size_t(2) << 20);
  EXPECT_EQ(pool::allocate(size_t(2) << 20), y);
  pool::release(y, size_t(2) << 20);
  void* s = pool::allocate(1000);  // small blocks are malloc's, never cached
  pool::release(s, 1000);
  EXPECT_EQ(pool::stats().cached_bytes, size_t(2) << 20);
  pool::set_limit(old);
  pool::trim();
}

// What is reserve()d elsewhere (engine/dnn's Winograd weights) comes off the cache's cap while it is.
TEST(BufferPool, ReservedBytesComeOffTheCap) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  pool::trim();
  const size_t mb2 = size_t(2) << 20, r0 = pool::stats().reserved_bytes;
  const size_t old = pool::set_limit(r0 + (size_t(5) << 20));  // room for two 2 MB blocks
  void* x = pool::allocate(mb2);
  void* y = pool::allocate(mb2);
  pool::release(x, mb2);
  pool::release(y, mb2);
  EXPECT_EQ(pool::stats().cached_bytes, 2 * mb2);
  pool::reserve(size_t(3) << 20);  // the cap is 2 MB now: the oldest block (x) goes
  EXPECT_EQ(pool::stats().reserved_bytes, r0 + (size_t(3) << 20));
  EXPECT_EQ(pool::stats().cached_bytes, mb2);
  void* z = pool::allocate(mb2);
  EXPECT_EQ(z, y);
  void* w = pool::allocate(mb2);
  pool::release(z, mb2);
  pool::release(w, mb2);  // over the reduced cap: z, freed first, goes
  EXPECT_EQ(pool::stats().cached_bytes, mb2);
  pool::reserve(-(ptrdiff_t)(size_t(3) << 20));  // given back: room for two again
  EXPECT_EQ(pool::stats().reserved_bytes, r0);
  void* v = pool::allocate(mb2);
  void* u = pool::allocate(mb2);
  pool::release(v, mb2);
  pool::release(u, mb2);
  EXPECT_EQ(pool::stats().cached_bytes, 2 * mb2);
  pool::set_limit(old);
  pool::trim();
}

// huge_zeroed gives n zero bytes whatever v held before and whichever path it takes (under 1 MB;
// from 1 MB on, where glibc maps the block: huge pages where the kernel gives them), and the
// vector works as any other afterwards (written, copied, grown, shrunk).
TEST(BufferPool, HugeZeroedVectorsAreZeroFilled) {
  for (size_t n : {size_t(0), size_t(1), size_t(4096), (size_t(1) << 20) - 1, size_t(1) << 20, size_t(1512000),
                   (size_t(2) << 20) - 4096, size_t(2) << 20, size_t(12000000)}) {
    std::vector<uint8_t> v(n + 100, 0xab);
    pool::huge_zeroed(v, n);
    ASSERT_EQ(v.size(), n);
    EXPECT_GE(v.capacity(), n);
    size_t nonzero = 0;
    for (uint8_t b : v) nonzero += b != 0;
    EXPECT_EQ(nonzero, 0u) << n;
    if (n) std::memset(v.data(), 0x5a, n);  // data() may be null when n is 0
    std::vector<uint8_t> copy = v;
    EXPECT_EQ(copy, v);
    v.push_back(7);
    EXPECT_EQ(v.size(), n + 1);
    EXPECT_EQ(v.back(), 7);
    v.resize(n / 2);
    v.shrink_to_fit();
    EXPECT_EQ(v.size(), n / 2);
  }
}

TEST(BufferPool, TensorsReleaseIntoThePool) {
  pool::trim();
  const pool::Stats s0 = pool::stats();
  float* first = nullptr;
  {
    Tensor t = Tensor::zeros({256, 1024});  // 1 MB
    first = t.data();
    EXPECT_TRUE(aligned64(first));
    EXPECT_EQ(t.data()[256 * 1024 - 1], 0.f);
  }
  Tensor u = Tensor::zeros({256, 1024});
  EXPECT_EQ(u.data()[0], 0.f);  // zeros() clears a reused block
  if (pool::active()) {
    EXPECT_EQ(u.data(), first);
    EXPECT_EQ(pool::stats().hits, s0.hits + 1);
  }
}

TEST(BufferPool, TraceWritesEachLargeBlockAndItsRelease) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  const std::string path = ::testing::TempDir() + "pool_trace_test.txt";
  pool::trim();
  pool::trace_to(path.c_str());
  pool::trace_note("two blocks");
  void* a = pool::allocate((size_t)1 << 20);
  void* small = pool::allocate(1000);  // below 256 KiB: malloc's, not written
  void* b = pool::allocate(((size_t)3 << 20) + 5);
  pool::release(a, (size_t)1 << 20);
  pool::release(small, 1000);
  void* c = pool::allocate((size_t)512 << 10);  // takes a's block: the smallest cached one that fits
  pool::release(b, ((size_t)3 << 20) + 5);
  pool::release(c, (size_t)512 << 10);
  pool::trace_to("");
  void* after = pool::allocate((size_t)1 << 20);  // not written: the trace is closed
  pool::release(after, (size_t)1 << 20);

  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0], "# two blocks");
  auto field = [](const std::string& l, int k) {
    std::istringstream ss(l);
    std::string f;
    for (int i = 0; i <= k; ++i) ss >> f;
    return f;
  };
  auto addr = [](const void* p) {
    char s[32];
    std::snprintf(s, sizeof s, "%p", p);
    return std::string(s);
  };
  const std::vector<std::pair<char, const void*>> want = {{'A', a}, {'A', b}, {'R', a}, {'A', c}, {'R', b}, {'R', c}};
  const std::vector<size_t> asked = {1u << 20, (3u << 20) + 5, 1u << 20, 512u << 10, (3u << 20) + 5, 512u << 10};
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string& l = lines[i + 1];
    EXPECT_EQ(l[0], want[i].first) << l;
    EXPECT_EQ(field(l, 1), addr(want[i].second)) << l;
    EXPECT_EQ(std::stoull(field(l, 2)), asked[i]) << l;
    EXPECT_GE(std::stoull(field(l, 3)), asked[i]) << l;  // mapped: rounded up, or a larger cached block
  }
  EXPECT_EQ(field(lines[4], 3), field(lines[3], 3)) << "c took a's block";
  std::remove(path.c_str());
  EXPECT_THROW(pool::trace_to("/nonexistent-dir/trace.txt"), std::runtime_error);
}

// shrink_pages keeps a block's first bytes: in place for a large mapping cut to 2 MB or more (the
// pages past them given back), else in a new block; either way the block it returns holds the same
// bytes and goes back with unmap_pages(p, keep).
TEST(BufferPool, ShrinkPagesKeepsTheFirstBytes) {
  struct Case {
    size_t bytes, keep;
  };
  for (const Case c : {Case{size_t(9) << 20, size_t(3) << 20}, Case{size_t(9) << 20, (size_t(5) << 20) + 123},
                       Case{size_t(9) << 20, 1000}, Case{size_t(300) << 10, size_t(40) << 10}, Case{4096, 4096}}) {
    uint8_t* p = static_cast<uint8_t*>(pool::map_pages(c.bytes));
    for (size_t i = 0; i < c.bytes; ++i) p[i] = (uint8_t)(i * 7 + (i >> 12));
    uint8_t* q = static_cast<uint8_t*>(pool::shrink_pages(p, c.bytes, c.keep));
    ASSERT_NE(q, nullptr);
    if (pool::active() && c.bytes >= (size_t(2) << 20) && c.keep >= (size_t(2) << 20)) EXPECT_EQ(q, p) << "in place";
    if (c.keep == c.bytes) EXPECT_EQ(q, p);
    size_t bad = 0;
    for (size_t i = 0; i < c.keep; ++i) bad += q[i] != (uint8_t)(i * 7 + (i >> 12));
    EXPECT_EQ(bad, 0u) << c.bytes << " -> " << c.keep;
    pool::unmap_pages(q, c.keep);
  }
}

}  // namespace
