// engine/buffer_pool.cpp: see buffer_pool.h.
#include "engine/buffer_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define M2FP_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define M2FP_POOL_ASAN 1
#endif
#endif

namespace m2fp::pool {
namespace {

constexpr size_t kLarge = 256 << 10;   // smaller blocks: malloc's own bins do well
constexpr size_t kGranule = 64 << 10;  // large sizes rounded up to this (a page multiple)

struct Block {
  void* p;
  size_t size;     // mapped size
  uint64_t freed;  // sequence number of its release (the oldest go first)
};

size_t default_limit() {
  const char* e = std::getenv("M2FP_BUFFER_POOL_MB");
  if (e && *e) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(e, &end, 10);
    if (end && *end == '\0' && mb <= (1ull << 20)) return (size_t)mb << 20;
  }
  return size_t(512) << 20;
}

struct Pool {
  std::mutex mu;
  std::vector<Block> cached;                  // free blocks kept for reuse
  std::unordered_map<void*, size_t> in_use;   // large blocks handed out -> mapped size
  size_t cached_bytes = 0, in_use_bytes = 0, max_in_use = 0;
  size_t limit = default_limit(), hits = 0, misses = 0;
  size_t reserved = 0;  // reserve(): held elsewhere, off the cache's cap
  std::FILE* trace = nullptr;  // trace_to()
  size_t cap() const { return limit > reserved ? limit - reserved : 0; }
  uint64_t seq = 0;

  void drop(size_t i) {
    ::munmap(cached[i].p, cached[i].size);
    cached_bytes -= cached[i].size;
    cached[i] = cached.back();
    cached.pop_back();
  }
  size_t oldest() const {
    size_t o = 0;
    for (size_t i = 1; i < cached.size(); ++i)
      if (cached[i].freed < cached[o].freed) o = i;
    return o;
  }
  // Drops the oldest blocks until the cache holds at most `cap` bytes.
  void shrink_to(size_t cap) {
    while (cached_bytes > cap && !cached.empty()) drop(oldest());
  }
};

Pool& the_pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may be freed during static destruction
  return *p;
}

size_t rounded(size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }

// Blocks of 2 MB and more start on a 2 MB boundary and ask for transparent huge pages
// (MADV_HUGEPAGE; /sys/kernel/mm/transparent_hugepage/enabled is "madvise" on most distributions),
// so that all but their last partial 2 MB come in huge pages: one fault per 2 MB instead of 512. On
// the development VM a 4 KiB fault costs ~22 us and a 2 MB one ~0.2 ms, so this is most of what
// a first parse paid over a warm one (docs: bench/README.md, cold start). A mapping the kernel
// places anywhere would often straddle boundaries and get no huge page at all.
constexpr size_t kHuge = size_t(2) << 20;

// A block below the pool's sizes (and every block in AddressSanitizer builds): 64-byte aligned
// from malloc. Throws std::bad_alloc.
void* small_block(size_t bytes) {
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}

void* map_block(size_t size) {
  if (size < kHuge) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  // Over-map by 2 MB, keep the aligned [size] inside, unmap the rest.
  void* raw = ::mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t r = (uintptr_t)raw, a = (r + kHuge - 1) & ~(uintptr_t)(kHuge - 1);
  if (a > r) ::munmap(raw, a - r);
  if (r + kHuge > a) ::munmap((void*)(a + size), r + kHuge - a);
  void* p = (void*)a;
  ::madvise(p, size, MADV_HUGEPAGE);
  return p;
}

}  // namespace

void* allocate(size_t bytes) {
#ifndef M2FP_POOL_ASAN
  if (bytes >= kLarge) {
    const size_t size = rounded(bytes);
    Pool& P = the_pool();
    std::lock_guard<std::mutex> l(P.mu);
    // The smallest cached block of this size or larger (its pages resident already) rather than new
    // memory. Blocks are
    // never split: split blocks fragment, and the resident set grew parse after parse when they were.
    // Taking larger blocks only up to 1/8 over the size, the cache of a 640x1056 parse held 452 MB
    // for at most 167 MB in use at once (the stem's and 1/4-scale maps' blocks sat idle while the
    // smaller maps of res3-res5 and the decoders took new ones); with any larger block it holds
    // ~290 MB, still with no misses from the second parse on (peak RSS 754 -> 594 MB, bench_e2e
    // 2026-12-06), and engine/dnn's Winograd weights use the difference.
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < P.cached.size(); ++i)
      if (P.cached[i].size >= size && (best == SIZE_MAX || P.cached[i].size < P.cached[best].size)) best = i;
    void* p = nullptr;
    size_t got = size;
    if (best != SIZE_MAX) {
      p = P.cached[best].p;
      got = P.cached[best].size;
      P.cached_bytes -= got;
      P.cached[best] = P.cached.back();
      P.cached.pop_back();
      ++P.hits;
    } else {
      ++P.misses;
      // Mapped memory (in use + cached) stays within 4x the most ever in use: cached blocks
      // that do not fit what is asked now make room, the oldest first.
      P.max_in_use = std::max(P.max_in_use, P.in_use_bytes + size);
      const size_t budget = 4 * P.max_in_use;
      while (!P.cached.empty() && P.cached_bytes + P.in_use_bytes + size > budget) P.drop(P.oldest());
      p = map_block(size);
      if (!p) {  // the cache may hold what is missing
        P.shrink_to(0);
        p = map_block(size);
        if (!p) throw std::bad_alloc();
      }
    }
    try {
      P.in_use.emplace(p, got);
    } catch (...) {
      ::munmap(p, got);
      throw;
    }
    P.in_use_bytes += got;
    P.max_in_use = std::max(P.max_in_use, P.in_use_bytes);
    if (P.trace) std::fprintf(P.trace, "A %p %zu %zu\n", p, bytes, got);
    return p;
  }
#endif
  return small_block(bytes);
}

void release(void* p, size_t bytes) noexcept {
  if (!p) return;
#ifndef M2FP_POOL_ASAN
  if (bytes >= kLarge) {
    Pool& P = the_pool();
    std::lock_guard<std::mutex> l(P.mu);
    auto it = P.in_use.find(p);
    const size_t size = it != P.in_use.end() ? it->second : rounded(bytes);
    if (it != P.in_use.end()) P.in_use.erase(it);
    P.in_use_bytes -= std::min(P.in_use_bytes, size);
    if (P.trace) std::fprintf(P.trace, "R %p %zu %zu\n", p, bytes, size);
    if (size > P.cap()) {
      ::munmap(p, size);
      return;
    }
    try {
      P.cached.push_back(Block{p, size, ++P.seq});
    } catch (...) {
      ::munmap(p, size);
      return;
    }
    P.cached_bytes += size;
    P.shrink_to(P.cap());
    return;
  }
#endif
  (void)bytes;
  std::free(p);
}

bool active() {
#ifdef M2FP_POOL_ASAN
  return false;
#else
  return true;
#endif
}

void trace_to(const char* path) {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  if (P.trace) std::fclose(P.trace);
  P.trace = nullptr;
  if (path && *path) {
    P.trace = std::fopen(path, "w");
    if (!P.trace) throw std::runtime_error(std::string("pool::trace_to: cannot write '") + path + "'");
  }
}

void trace_note(const char* text) {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  if (P.trace) std::fprintf(P.trace, "# %s\n", text);
}

Stats stats() {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  return Stats{P.cached_bytes, P.cached.size(), P.limit, P.hits, P.misses, P.reserved, P.in_use_bytes, P.max_in_use};
}

size_t set_limit(size_t bytes) {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  const size_t old = P.limit;
  P.limit = bytes;
  P.shrink_to(P.cap());
  return old;
}

void reserve(ptrdiff_t bytes) {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  if (bytes < 0) P.reserved -= std::min(P.reserved, (size_t)-bytes);
  else P.reserved += (size_t)bytes;
  P.shrink_to(P.cap());
}

void trim(size_t keep) {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  P.shrink_to(keep);
}

// Below 2 MB no huge page would fit: malloc's (its heap below M_MMAP_THRESHOLD, where the forward
// pass's small allocations reuse what the load freed; mapping those separately made the heap grow
// and shrink again each parse, 2k more page faults per parse).
void* map_pages(size_t bytes) {
#ifndef M2FP_POOL_ASAN
  if (bytes >= kHuge) {
    void* p = map_block(rounded(bytes));
    if (!p) throw std::bad_alloc();
    return p;
  }
#endif
  return small_block(bytes);
}

#if defined(__linux__) && !defined(MADV_COLLAPSE)
#define MADV_COLLAPSE 25  // Linux 6.1 (asm-generic/mman-common.h); glibc 2.36's <sys/mman.h> lacks it
#endif

void huge_zeroed(std::vector<uint8_t>& v, size_t n) {
  std::vector<uint8_t>().swap(v);
#if !defined(M2FP_POOL_ASAN) && defined(MADV_HUGEPAGE) && defined(MADV_COLLAPSE)
  const size_t whole = (n + kHuge - 1) / kHuge * kHuge;  // the 2 MB pages it would occupy
  if (n >= (size_t(1) << 20) && whole - n <= n / 8) {  // at most 1/8 more resident than asked for
    // glibc maps a large block as its 16-byte header and the bytes asked for, rounded up to whole
    // pages: asking for a 2 MB multiple less one page maps exactly that 2 MB multiple.
    const size_t page = 4096, cap = (n + page + kHuge - 1) / kHuge * kHuge - page;
    v.reserve(cap);
    const uintptr_t d = (uintptr_t)v.data(), base = d & ~(uintptr_t)(kHuge - 1);
    if (d - base < page) {  // the block starts a 2 MB aligned mapping (the header before d)
      const size_t len = (d - base + n + kHuge - 1) / kHuge * kHuge;
      if (::madvise((void*)base, len, MADV_HUGEPAGE) == 0) ::madvise((void*)base, kHuge, MADV_COLLAPSE);
    }
  }
#endif
  v.resize(n);
}

#if defined(__linux__) && !defined(MADV_POPULATE_READ)
#define MADV_POPULATE_READ 22  // Linux 5.14 (asm-generic/mman-common.h)
#define MADV_POPULATE_WRITE 23
#endif

void populate(const void* p, size_t bytes, bool for_write) {
#if defined(__linux__)
  if (!bytes) return;
  const uintptr_t page = 4096, a = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) / page * page;
  (void)::madvise(reinterpret_cast<void*>(a), b - a, for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
#else
  (void)p;
  (void)bytes;
  (void)for_write;
#endif
}

void* shrink_pages(void* p, size_t bytes, size_t keep) {
  if (keep >= bytes) return p;
#ifndef M2FP_POOL_ASAN
  if (bytes >= kHuge && keep >= kHuge) {  // both mappings (map_pages): unmap the whole granules past keep
    if (rounded(keep) < rounded(bytes)) ::munmap((char*)p + rounded(keep), rounded(bytes) - rounded(keep));
    return p;
  }
#endif
  void* q = map_pages(keep);
  if (keep) std::memcpy(q, p, keep);
  unmap_pages(p, bytes);
  return q;
}

void unmap_pages(void* p, size_t bytes) noexcept {
  if (!p) return;
#ifndef M2FP_POOL_ASAN
  if (bytes >= kHuge) {
    ::munmap(p, rounded(bytes));
    return;
  }
#endif
  (void)bytes;
  std::free(p);
}

}  // namespace m2fp::pool
