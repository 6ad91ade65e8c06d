// engine/buffer_pool.cpp: see buffer_pool.h.
#include "engine/buffer_pool.h"

#include "engine/range_heap.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
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

size_t default_limit() {
  const char* e = std::getenv("M2FP_BUFFER_POOL_MB");
  if (e && *e) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(e, &end, 10);
    if (end && *end == '\0' && mb <= (1ull << 20)) return (size_t)mb << 20;
  }
  return size_t(704) << 20;  // buffer_pool.h, "Cap"
}

// Mappings of 2 MB and more (the region, map_pages' blocks) start on a 2 MB boundary and ask for
// transparent huge pages (MADV_HUGEPAGE; /sys/kernel/mm/transparent_hugepage/enabled is "madvise" on
// most distributions), so that all but their last partial 2 MB come in huge pages: one fault per
// 2 MB instead of 512. On the development VM a 4 KiB fault costs ~22 us and a 2 MB one ~0.2 ms, so
// this is most of what a first parse paid over a warm one (docs: bench/README.md, cold start). A
// mapping the kernel places anywhere would often straddle boundaries and get no huge page at all.
constexpr size_t kHuge = size_t(2) << 20;

// The address range the large blocks are cut from (see buffer_pool.h): reserved once, inaccessible
// (PROT_NONE: no memory, no commit charge), made readable and writable from its start as far as the
// blocks reach (`committed`), asking for transparent huge pages there.
struct Region {
  char* base = nullptr;
  size_t reserved = 0, committed = 0;
  bool tried = false;

  bool contains(const void* p) const {
    return base && (const char*)p >= base && (const char*)p < base + reserved;
  }
  // Reserves the range on first use: 64 GB of addresses, or less where the process may not have
  // that much (RLIMIT_AS), down to 1 GB; false when none could be had (blocks are then mapped one
  // by one, as the pool did before it had a region).
  bool ready() {
    if (base) return true;
    if (tried) return false;
    tried = true;
    for (size_t want = size_t(64) << 30; want >= (size_t(1) << 30); want /= 2) {
      void* raw = ::mmap(nullptr, want + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (raw == MAP_FAILED) continue;
      const uintptr_t r = (uintptr_t)raw, a = (r + kHuge - 1) & ~(uintptr_t)(kHuge - 1);
      if (a > r) ::munmap(raw, a - r);
      if (r + kHuge > a) ::munmap((void*)(a + want), r + kHuge - a);
      base = (char*)a;
      reserved = want;
      return true;
    }
    return false;
  }
  // Makes [0, end) usable (whole 2 MB pages); false when it cannot (the reservation's end, or the
  // system refuses the commit).
  bool commit(size_t end) {
    if (end <= committed) return true;
    const size_t to = std::min(reserved, (end + kHuge - 1) / kHuge * kHuge);
    if (to < end) return false;
    if (::mprotect(base + committed, to - committed, PROT_READ | PROT_WRITE) != 0) return false;
    ::madvise(base + committed, to - committed, MADV_HUGEPAGE);
    committed = to;
    return true;
  }
};

struct Pool {
  std::mutex mu;
  Region region;
  RangeHeap heap;                            // where in the region the blocks go (engine/range_heap.h)
  std::vector<uint8_t> resident;             // per granule of the region: its pages made resident (1) or not (0)
  std::unordered_map<void*, size_t> in_use;  // large blocks handed out -> their size
  size_t cached_bytes = 0, in_use_bytes = 0, max_in_use = 0;
  size_t limit = default_limit(), hits = 0, misses = 0, missed_bytes = 0;
  size_t reserved = 0;  // reserve(): held elsewhere, off the cache's cap
  std::FILE* trace = nullptr;  // trace_to()
  size_t cap() const { return limit > reserved ? limit - reserved : 0; }

  size_t granule(size_t off) const { return off / kGranule; }
  // Resident granules of [off, off + bytes), in bytes.
  size_t resident_in(size_t off, size_t bytes) const {
    size_t n = 0;
    for (size_t g = granule(off), e = granule(off + bytes); g < e && g < resident.size(); ++g) n += resident[g];
    return n * kGranule;
  }
  // The region's offset for a block of `size` bytes (RangeHeap::take; the region made usable as
  // far as it reaches), SIZE_MAX when the region cannot hold it.
  size_t take(size_t size) {
    const size_t off = heap.take(size, region.reserved);
    if (off == RangeHeap::npos) return SIZE_MAX;
    try {
      if (!region.commit(off + size)) {
        heap.give(off, size);
        return SIZE_MAX;
      }
      resident.resize(granule(region.committed), 0);
    } catch (...) {  // (no memory for the flags: the block goes back, the pages stay committed)
      heap.give(off, size);
      throw;
    }
    return off;
  }
  // Makes the pages of granules [g, e) that are not resident so (populate: one call per run instead
  // of a fault per page; also pages a block's user never touches, which a later block there would
  // otherwise fault in one by one) and flags them, at most `budget` bytes of them; returns their bytes.
  size_t make_resident(size_t g, size_t e, size_t budget = SIZE_MAX) {
    size_t added = 0;
    while (g < e && added < budget) {
      if (resident[g]) {
        ++g;
        continue;
      }
      size_t b = g;
      while (b < e && !resident[b] && added < budget) {
        resident[b++] = 1;
        added += kGranule;
      }
      populate(region.base + g * kGranule, (b - g) * kGranule, true);
      g = b;
    }
    return added;
  }
  // Makes the pages of free ranges below the heap's top resident, as long as the cache stays within
  // `keep`: a forward whose blocks land elsewhere than an earlier one's then finds pages there too.
  void fill_to(size_t keep) {
    for (const auto& [off, size] : heap.free_ranges())
      if (cached_bytes < keep)
        cached_bytes += make_resident(granule(off), granule(std::min(off + size, heap.top())), keep - cached_bytes);
  }
  size_t offset_of(const void* p) const { return (size_t)((const char*)p - region.base); }
  // Gives the pages of free ranges back to the system (MADV_DONTNEED: the range stays free, its next
  // use faults fresh zero pages in), the highest first, granule by granule from the top down, until
  // the cache holds at most `keep` bytes.
  void shrink_to(size_t keep) {
    const std::map<size_t, size_t>& free = heap.free_ranges();
    for (auto it = free.rbegin(); it != free.rend() && cached_bytes > keep; ++it) {
      size_t g = granule(it->first + it->second);
      const size_t g0 = granule(it->first);
      while (g > g0 && cached_bytes > keep) {
        if (!resident[g - 1]) {
          --g;
          continue;
        }
        size_t a = g;  // a resident run [a, g), as long as what is over `keep` asks
        while (a > g0 && resident[a - 1] && cached_bytes > keep) {
          resident[--a] = 0;
          cached_bytes -= kGranule;
        }
        ::madvise(region.base + a * kGranule, (g - a) * kGranule, MADV_DONTNEED);
        g = a;
      }
    }
  }
  size_t cached_ranges() const {
    size_t n = 0;
    for (const auto& [off, size] : heap.free_ranges()) n += resident_in(off, size) > 0;
    return n;
  }
};

Pool& the_pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may be freed during static destruction
  return *p;
}

size_t rounded(size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }

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
    void* p = nullptr;
    const size_t off = P.region.ready() ? P.take(size) : SIZE_MAX;
    if (off != SIZE_MAX) {
      p = P.region.base + off;
      P.cached_bytes -= P.resident_in(off, size);
      if (const size_t added = P.make_resident(P.granule(off), P.granule(off + size))) {
        ++P.misses;
        P.missed_bytes += added;
      } else {
        ++P.hits;
      }
    } else {  // no region, or it is full: a mapping of its own, unmapped when given back
      ++P.misses;
      P.missed_bytes += size;
      p = map_block(size);
      if (!p) throw std::bad_alloc();
    }
    try {
      P.in_use.emplace(p, size);
    } catch (...) {
      if (off != SIZE_MAX) {
        P.heap.give(off, size);
        P.cached_bytes += size;  // (made resident above)
      } else {
        ::munmap(p, size);
      }
      throw;
    }
    P.in_use_bytes += size;
    P.max_in_use = std::max(P.max_in_use, P.in_use_bytes);
    if (P.trace) std::fprintf(P.trace, "A %p %zu %zu\n", p, bytes, size);
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
    if (!P.region.contains(p)) {
      ::munmap(p, size);
      return;
    }
    const size_t off = P.offset_of(p);
    try {
      P.heap.give(off, size);
    } catch (...) {  // no memory for the free list's entry: the range's pages go back, the addresses stay lost
      ::madvise(p, size, MADV_DONTNEED);
      std::memset(P.resident.data() + P.granule(off), 0, size / kGranule);
      return;
    }
    P.cached_bytes += P.resident_in(off, size);
    P.shrink_to(P.cap());
    return;
  }
#endif
  (void)bytes;
  std::free(p);
}

void* shrink(void* p, size_t bytes, size_t keep) {
  if (!p || keep >= bytes) return p;
#ifndef M2FP_POOL_ASAN
  if (bytes >= kLarge && keep >= kLarge) {
    Pool& P = the_pool();
    std::lock_guard<std::mutex> l(P.mu);
    auto it = P.in_use.find(p);
    if (it != P.in_use.end()) {
      const size_t size = it->second, now = rounded(keep);
      if (now < size) {
        if (P.region.contains(p)) {
          const size_t off = P.offset_of(p);
          try {
            P.heap.give(off + now, size - now);
          } catch (...) {
            return p;  // no memory for the free list's entry: the block stays whole
          }
          P.cached_bytes += P.resident_in(off + now, size - now);
        } else {
          ::munmap((char*)p + now, size - now);
        }
        if (P.trace) std::fprintf(P.trace, "R %p %zu %zu\nA %p %zu %zu\n", p, bytes, size, p, keep, now);
        it->second = now;
        P.in_use_bytes -= size - now;
        P.shrink_to(P.cap());
      }
      return p;
    }
  }
#endif
  void* q = allocate(keep);
  if (keep) std::memcpy(q, p, keep);
  release(p, bytes);
  return q;
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
  return Stats{P.cached_bytes, P.cached_ranges(), P.limit, P.hits, P.misses, P.reserved, P.in_use_bytes, P.max_in_use, P.heap.top(), P.missed_bytes};
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

void fill() {
  Pool& P = the_pool();
  std::lock_guard<std::mutex> l(P.mu);
  P.fill_to(P.cap());
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
