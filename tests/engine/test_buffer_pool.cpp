// tests/engine/test_buffer_pool.cpp: engine/buffer_pool.h, the allocator behind every Tensor.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/range_heap.h"
#include "engine/tensor.h"

using namespace m2fp;

namespace {

bool aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

// An empty cache over a region already usable for blocks of up to `bytes` in all (a block of that size
// taken and given back, then every page given back): the blocks a test then takes make the region
// grow no further, so that every cached byte is one the test's blocks left.
void empty_cache_with_room(size_t bytes) {
  pool::release(pool::allocate(bytes), bytes);
  pool::trim();
  ASSERT_EQ(pool::stats().cached_bytes, 0u);
}

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

// The region's placement (engine/range_heap.h), in offsets: the lowest free range that holds a block,
// cut from its start; freed blocks joined with free neighbours on both sides; the used part grows
// only when no free range holds the block, joining a free range at its end; nothing past capacity.
TEST(RangeHeap, LowestFreeRangeFirstAndJoinedOnRelease) {
  pool::RangeHeap h;
  const size_t K = 64 << 10, cap = 100 * K;
  EXPECT_EQ(h.take(4 * K, cap), 0u);
  EXPECT_EQ(h.take(2 * K, cap), 4 * K);
  EXPECT_EQ(h.take(8 * K, cap), 6 * K);
  EXPECT_EQ(h.take(K, cap), 14 * K);
  EXPECT_EQ(h.top(), 15 * K);
  h.give(0, 4 * K);  // free: [0, 4K)
  h.give(6 * K, 8 * K);  // free: [0, 4K) [6K, 14K)
  EXPECT_EQ(h.free_ranges().size(), 2u);
  EXPECT_EQ(h.take(3 * K, cap), 0u) << "the lowest range that holds it, from its start";
  EXPECT_EQ(h.take(2 * K, cap), 6 * K) << "[3K, 4K) is too small: the next range";
  EXPECT_EQ(h.take(K, cap), 3 * K) << "a block that fits the small rest takes it";
  h.give(4 * K, 2 * K);  // [4K, 6K) between two used blocks: joins nothing
  EXPECT_EQ(h.free_ranges().at(4 * K), 2 * K);
  h.give(6 * K, 2 * K);  // joins [4K, 6K) before it and [8K, 14K) after it
  ASSERT_EQ(h.free_ranges().size(), 1u);
  EXPECT_EQ(h.free_ranges().at(4 * K), 10 * K);
  h.give(14 * K, K);  // the last block: joins the range before it, up to the top
  EXPECT_EQ(h.free_ranges().at(4 * K), 11 * K);
  EXPECT_EQ(h.take(20 * K, cap), 4 * K) << "no range holds it: the used part grows from the free range at its end";
  EXPECT_EQ(h.top(), 24 * K);
  EXPECT_TRUE(h.free_ranges().empty());
  EXPECT_EQ(h.take(77 * K, cap), pool::RangeHeap::npos) << "past the capacity";
  EXPECT_EQ(h.top(), 24 * K) << "a refused block changes nothing";
  EXPECT_EQ(h.take(76 * K, cap), 24 * K);
  h.give(0, 3 * K);
  h.give(3 * K, K);
  h.give(24 * K, 76 * K);
  h.give(4 * K, 20 * K);
  ASSERT_EQ(h.free_ranges().size(), 1u) << "everything given back is one range again";
  EXPECT_EQ(h.free_ranges().at(0), 100 * K);
}

// A forward pass's blocks (sizes and lifetimes as feature maps have them), the same sequence parse
// after parse: once every block has been given back its ranges are joined again, so each parse
// places its blocks where the first did and the used part does not grow.
TEST(RangeHeap, RepeatedSequencesReachNoFurther) {
  pool::RangeHeap h;
  const size_t K = 64 << 10;
  uint32_t x = 12345;
  auto next = [&] { return x = x * 1103515245u + 12345u; };
  std::vector<std::pair<size_t, int>> seq;  // (size, how many later allocations it outlives)
  for (int i = 0; i < 200; ++i) seq.push_back({(1 + next() % 300) * K, (int)(next() % 6)});
  size_t top_after_first = 0;
  for (int parse = 0; parse < 5; ++parse) {
    std::vector<std::pair<size_t, size_t>> live;  // (offset, size), released in order of age when due
    std::vector<int> due;
    for (size_t i = 0; i < seq.size(); ++i) {
      for (size_t j = 0; j < live.size();) {
        if (due[j]-- == 0) {
          h.give(live[j].first, live[j].second);
          live.erase(live.begin() + (ptrdiff_t)j);
          due.erase(due.begin() + (ptrdiff_t)j);
        } else {
          ++j;
        }
      }
      const size_t off = h.take(seq[i].first, SIZE_MAX);
      ASSERT_NE(off, pool::RangeHeap::npos);
      live.push_back({off, seq[i].first});
      due.push_back(seq[i].second);
    }
    for (auto& [off, size] : live) h.give(off, size);
    ASSERT_EQ(h.free_ranges().size(), 1u) << "parse " << parse;
    if (parse == 0) top_after_first = h.top();
    EXPECT_EQ(h.top(), top_after_first) << "parse " << parse;
  }
}

TEST(BufferPool, FreedBlocksAreReusedAndCountedAsHits) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  empty_cache_with_room(size_t(16) << 20);
  const size_t mb = size_t(1) << 20;
  void* a = pool::allocate(mb);
  std::memset(a, 1, mb);
  pool::release(a, mb);
  EXPECT_EQ(pool::stats().cached_bytes, mb);
  const pool::Stats s0 = pool::stats();
  // a's range was the lowest that held 1 MB and nothing else was given back since: the same again
  void* b = pool::allocate(mb - 1000);
  EXPECT_EQ(b, a);
  EXPECT_EQ(pool::stats().hits, s0.hits + 1);
  EXPECT_EQ(pool::stats().misses, s0.misses);
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  pool::release(b, mb - 1000);
  void* c = pool::allocate(2 * mb);  // larger than what was cached: pages not resident yet
  EXPECT_EQ(pool::stats().misses, s0.misses + 1);
  std::memset(c, 2, 2 * mb);
  pool::release(c, 2 * mb);
  EXPECT_GE(pool::stats().cached_bytes, 2 * mb);
  EXPECT_GE(pool::stats().region_bytes, 2 * mb);
  pool::trim();
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  EXPECT_EQ(pool::stats().cached_blocks, 0u);
}

// trim gives the pages back to the system (they are no longer resident: mincore) and the next block
// there counts as a miss and reads as fresh zero pages.
TEST(BufferPool, TrimGivesThePagesBack) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  empty_cache_with_room(size_t(16) << 20);
  const size_t n = size_t(4) << 20;
  uint8_t* a = static_cast<uint8_t*>(pool::allocate(n));
  std::memset(a, 7, n);
  pool::release(a, n);
  auto resident_pages = [&](const void* p) {
    std::vector<unsigned char> v(n / 4096);
    EXPECT_EQ(::mincore(const_cast<void*>(p), n, v.data()), 0);
    size_t r = 0;
    for (unsigned char c : v) r += c & 1;
    return r;
  };
  EXPECT_EQ(resident_pages(a), n / 4096) << "cached: still resident";
  pool::trim();
  EXPECT_EQ(resident_pages(a), 0u) << "trimmed: given back";
  const size_t misses = pool::stats().misses;
  uint8_t* b = static_cast<uint8_t*>(pool::allocate(n));
  EXPECT_EQ(b, a);
  EXPECT_EQ(pool::stats().misses, misses + 1);
  size_t nonzero = 0;
  for (size_t i = 0; i < n; i += 4096) nonzero += b[i] != 0;
  EXPECT_EQ(nonzero, 0u);
  pool::release(b, n);
  pool::trim();
}

TEST(BufferPool, CapAndSmallBlocks) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  empty_cache_with_room(size_t(16) << 20);
  const size_t mb2 = size_t(2) << 20;
  const size_t old = pool::set_limit(0);  // off: every block's pages go back at once
  void* a = pool::allocate(mb2);
  std::memset(a, 1, mb2);
  pool::release(a, mb2);
  EXPECT_EQ(pool::stats().cached_bytes, 0u);
  const size_t cap = size_t(3) << 20;
  pool::set_limit(pool::stats().reserved_bytes + cap);  // room for one 2 MB block, not two
  void* x = pool::allocate(mb2);
  void* y = pool::allocate(mb2);
  pool::release(x, mb2);
  pool::release(y, mb2);  // over the cap: pages go back until the cache is within it
  EXPECT_EQ(pool::stats().cached_bytes, cap);
  void* s = pool::allocate(1000);  // small blocks are malloc's, never cached
  pool::release(s, 1000);
  EXPECT_EQ(pool::stats().cached_bytes, cap);
  pool::set_limit(old);
  pool::trim();
}

// What is reserve()d elsewhere (engine/dnn's Winograd weights) comes off the cache's cap while it is.
TEST(BufferPool, ReservedBytesComeOffTheCap) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  empty_cache_with_room(size_t(16) << 20);
  const size_t mb = size_t(1) << 20, r0 = pool::stats().reserved_bytes;
  const size_t old = pool::set_limit(r0 + 5 * mb);
  void* x = pool::allocate(2 * mb);
  void* y = pool::allocate(2 * mb);
  pool::release(x, 2 * mb);
  pool::release(y, 2 * mb);
  EXPECT_EQ(pool::stats().cached_bytes, 4 * mb);
  pool::reserve(3 * mb);  // the cap is 2 MB now
  EXPECT_EQ(pool::stats().reserved_bytes, r0 + 3 * mb);
  EXPECT_EQ(pool::stats().cached_bytes, 2 * mb);
  void* z = pool::allocate(2 * mb);
  void* w = pool::allocate(2 * mb);
  pool::release(z, 2 * mb);
  pool::release(w, 2 * mb);  // over the reduced cap
  EXPECT_EQ(pool::stats().cached_bytes, 2 * mb);
  pool::reserve(-(ptrdiff_t)(3 * mb));  // given back: the cap is 5 MB again
  EXPECT_EQ(pool::stats().reserved_bytes, r0);
  void* v = pool::allocate(2 * mb);
  void* u = pool::allocate(2 * mb);
  std::memset(v, 1, 2 * mb);
  std::memset(u, 1, 2 * mb);
  pool::release(v, 2 * mb);
  pool::release(u, 2 * mb);
  EXPECT_GE(pool::stats().cached_bytes, 4 * mb);  // both blocks' pages stay (with what else fits under the cap)
  EXPECT_LE(pool::stats().cached_bytes, 5 * mb);
  pool::set_limit(old);
  pool::trim();
}

// Blocks handed out at once never overlap, whatever the threads ask in whatever order: each thread
// fills its blocks with its own pattern and finds it intact when it gives them back.
TEST(BufferPool, ThreadsGetBlocksThatDoNotOverlap) {
  const int kThreads = 4, kRounds = 300;
  std::vector<std::thread> threads;
  std::vector<size_t> damaged(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &damaged] {
      uint32_t x = 77u + (uint32_t)t;
      std::vector<std::pair<uint8_t*, size_t>> held;
      for (int r = 0; r < kRounds; ++r) {
        x = x * 1103515245u + 12345u;
        if (held.size() < 6 && (x >> 8) % 3 != 0) {
          const size_t n = (size_t(256) << 10) + (x >> 4) % (size_t(3) << 20);
          uint8_t* p = static_cast<uint8_t*>(pool::allocate(n));
          std::memset(p, (int)(t * 50 + held.size()), n);
          held.push_back({p, n});
        } else if (!held.empty()) {
          const size_t k = (x >> 12) % held.size();
          auto [p, n] = held[k];
          const uint8_t want = (uint8_t)(t * 50 + k);
          for (size_t i = 0; i < n; i += 4093) damaged[(size_t)t] += p[i] != want;
          damaged[(size_t)t] += p[n - 1] != want;
          pool::release(p, n);
          held[k] = held.back();
          held.pop_back();
          // the block moved to k keeps its pattern (its old index): rewrite it with k's
          if (k < held.size()) std::memset(held[k].first, (int)(t * 50 + k), held[k].second);
        }
      }
      for (auto [p, n] : held) pool::release(p, n);
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(damaged[(size_t)t], 0u) << "thread " << t;
}

// fill() makes the free ranges below the most the region reached resident: blocks that land there
// afterwards count as hits, even where no block had been before.
TEST(BufferPool, FillMakesTheRegionResidentBelowItsTop) {
  if (!pool::active()) GTEST_SKIP() << "AddressSanitizer build: the pool is off";
  empty_cache_with_room(size_t(16) << 20);
  const size_t before = pool::stats().misses;
  pool::fill();
  EXPECT_GE(pool::stats().cached_bytes, size_t(16) << 20);
  void* a = pool::allocate(size_t(8) << 20);
  void* b = pool::allocate(size_t(8) << 20);
  EXPECT_EQ(pool::stats().misses, before) << "both within the region's filled part";
  pool::release(a, size_t(8) << 20);
  pool::release(b, size_t(8) << 20);
  pool::trim();
}

// shrink keeps a pool block's first bytes: in place when both sizes are large (the rest free again:
// what is in use drops by it), else in a new block; either way the block it returns holds the same
// bytes and goes back with release(p, keep).
TEST(BufferPool, ShrinkKeepsTheFirstBytes) {
  struct Case {
    size_t bytes, keep;
  };
  for (const Case c : {Case{size_t(4) << 20, (size_t(1) << 20) + 5}, Case{size_t(4) << 20, 1000},
                       Case{size_t(300) << 10, size_t(290) << 10}, Case{5000, 100}}) {
    uint8_t* p = static_cast<uint8_t*>(pool::allocate(c.bytes));
    for (size_t i = 0; i < c.bytes; ++i) p[i] = (uint8_t)(i * 7 + (i >> 12));
    const size_t in_use = pool::stats().in_use_bytes;
    uint8_t* q = static_cast<uint8_t*>(pool::shrink(p, c.bytes, c.keep));
    ASSERT_NE(q, nullptr);
    if (pool::active() && c.keep >= (size_t(256) << 10)) {
      EXPECT_EQ(q, p) << "in place";
      auto granules = [](size_t n) { return (n + 65535) / 65536 * 65536; };  // the pool's 64 KiB
      EXPECT_EQ(pool::stats().in_use_bytes, in_use - (granules(c.bytes) - granules(c.keep)));
    }
    size_t bad = 0;
    for (size_t i = 0; i < c.keep; ++i) bad += q[i] != (uint8_t)(i * 7 + (i >> 12));
    EXPECT_EQ(bad, 0u) << c.bytes << " -> " << c.keep;
    pool::release(q, c.keep);
  }
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
  void* c = pool::allocate((size_t)512 << 10);
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
    EXPECT_EQ(std::stoull(field(l, 3)), (asked[i] + 65535) / 65536 * 65536) << l;  // the block: rounded up to 64 KiB
  }
  std::remove(path.c_str());
  EXPECT_THROW(pool::trace_to("/nonexistent-dir/trace.txt"), std::runtime_error);
}

}  // namespace
