// tests/engine/test_buffer_pool.cpp: engine/buffer_pool.h, the allocator behind every Tensor.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
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

TEST(BufferPool, FreedBlocksAreReusedForTheSameSizeOrResized) {
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
  std::memset(b, 3, mb - 1000);
  pool::release(b, mb - 1000);
  // Half the size: the 1 MB block would waste more than 1/8, so it is shrunk in place (its tail
  // goes back to the system) rather than new memory mapped beside it; the head keeps its bytes.
  void* c = pool::allocate(mb / 2);
  EXPECT_EQ(c, a);
  EXPECT_EQ(static_cast<unsigned char*>(c)[mb / 2 - 1], 3);
  EXPECT_EQ(pool::stats().misses, s0.misses);
  EXPECT_EQ(pool::stats().resized, s0.resized + 1);
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  std::memset(c, 2, mb / 2);
  pool::release(c, mb / 2);
  EXPECT_EQ(pool::stats().cached_bytes, mb / 2);
  // Three times the size with only that block cached: it grows (possibly moving), keeping its bytes.
  void* d = pool::allocate(3 * mb);
  EXPECT_EQ(static_cast<unsigned char*>(d)[0], 2);
  EXPECT_EQ(static_cast<unsigned char*>(d)[mb / 2 - 1], 2);
  std::memset(d, 4, 3 * mb);  // the new part is writable
  EXPECT_EQ(pool::stats().misses, s0.misses);
  EXPECT_EQ(pool::stats().resized, s0.resized + 2);
  // Nothing cached: new memory.
  void* e = pool::allocate(mb);
  EXPECT_EQ(pool::stats().misses, s0.misses + 1);
  pool::release(e, mb);
  pool::release(d, 3 * mb);
  EXPECT_EQ(pool::stats().cached_bytes, 4 * mb);
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
  pool::set_limit(size_t(3) << 20);  // room for one 2 MB block, not two
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

}  // namespace
