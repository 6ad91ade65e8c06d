// engine/buffer_pool.h: where the engine's large buffers (tensors) come from.
//
// A forward pass allocates and frees the same few hundred feature maps every time (~1.6 GB for a
// 640x1056 input). Taken fresh from the kernel each time, every page is faulted in and zeroed again:
// 400k page faults and ~2.9 s of extra time per parse on the development machine. The pool cuts
// blocks of 256 KiB and more from one reserved address range (the region: 64 GB of addresses,
// no memory until used), each from the lowest free range that holds it, and joins a freed block with
// its free neighbours; freed pages stay resident, so from the second parse on feature maps reuse
// pages that are already mapped. The same sequence of blocks then lands at the same places every
// parse, and what is resident is about the most a parse has in use at once: for the 640x1056
// benchmark forward, 153 MB asked at once at most and the region's blocks reaching ~176 MB, where
// caching whole blocks (a small request taking the smallest cached block, however large) held
// ~300 MB (bench/pool_plan.py; bench/README.md, "What a forward asks of the buffer pool").
//
// Cap: M2FP_BUFFER_POOL_MB (default 704; 0 turns the cache off: every block's pages go back at
// once), less what reserve() holds (engine/dnn's Winograd weights and scratchpad: 337 MB of it on
// the benchmark input, leaving 367 MB for the ~190 MB a parse of the benchmark photo reaches and the
// ~350 MB a 12 MP photo's parse and outputs reach: with 576, its cap until 2026-12-07, the 12 MP
// outputs gave back and faulted in again 84 MB of huge pages every time, 16-300 ms of system time
// on the development VM; the peak resident set is the same either way). Past the cap,
// the pages of the highest free ranges go back to the system (MADV_DONTNEED) until the cache is
// within it; a block that then lands there faults fresh pages in (a miss). Thread-safe. Where no
// region can be reserved (RLIMIT_AS below 1 GB), or a block does not fit in it, the block is a
// mapping of its own, unmapped when given back. Built with AddressSanitizer, every block comes from
// aligned_alloc, so ASan sees each use after free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace m2fp::pool {

// A 64-byte aligned block of at least `bytes` bytes (content undefined). Throws std::bad_alloc.
void* allocate(size_t bytes);
// Returns a block from allocate(); `bytes` is the size asked for.
void release(void* p, size_t bytes) noexcept;

struct Stats {
  size_t cached_bytes = 0;   // resident pages of free ranges: held by the pool for reuse now
  size_t cached_blocks = 0;  // free ranges with resident pages
  size_t limit_bytes = 0;
  size_t hits = 0;           // allocations served from the pool
  size_t misses = 0;         // large allocations that found pages not resident (new memory)
  size_t reserved_bytes = 0; // reserve()d: the cache's cap is limit_bytes less this
  size_t in_use_bytes = 0;   // large blocks handed out now (their mapped sizes)
  size_t max_in_use_bytes = 0;  // the most ever handed out at once
  size_t region_bytes = 0;   // how far into the region blocks have ever reached
  size_t missed_bytes = 0;   // the misses' bytes that were not resident (new memory), in all
};
Stats stats();
// From now on, one line per large block handed out ("A <address> <bytes asked> <bytes mapped>") and
// given back ("R <address> <bytes asked> <bytes mapped>") is written to the file at `path`
// (overwritten), and trace_note(text) writes "# text"; trace_to("") or nullptr stops and closes it.
// Throws std::runtime_error when the file cannot be written. bench_e2e --pool-trace records one
// timed parse so, bench/pool_plan.py reads it (what a forward asks for at once against what the
// pool holds). Small blocks (below 256 KiB, malloc's) are not written, nor anything in
// AddressSanitizer builds (active() false: no pool).
void trace_to(const char* path);
void trace_note(const char* text);
// A block from allocate(bytes) cut to its first `keep` bytes (keep <= bytes): in place where both are
// large (the rest of its range free again, trace lines "R" then "A" at the same address), else those
// bytes copied into a block of `keep` and the old one released. Returns the block to use (and to
// release with `keep`). Throws std::bad_alloc (p then stays valid).
void* shrink(void* p, size_t bytes, size_t keep);
// False in AddressSanitizer builds (every block then comes from aligned_alloc and goes back at once).
bool active();
// Sets the cap (releasing what is over it); returns the old one.
size_t set_limit(size_t bytes);
// Memory held elsewhere that the cache makes room for (bytes > 0) or gives back (bytes < 0, the
// same amounts): the cache's cap is the limit less what is reserved. engine/dnn reserves each
// Winograd weight copy's bytes while it lives, so that Winograd's weights (4x a direct layer's) do
// not raise the peak resident set over what it is without them (issue 14's 800 MB).
void reserve(ptrdiff_t bytes);
// Gives the cached pages back to the system, those of the highest free ranges first, until at most
// `keep` bytes stay cached (0: every one).
void trim(size_t keep = 0);
// Makes the pages of the region's free ranges resident as far as its blocks have ever reached
// (within the cap): M2FP::map_buffers calls it after its blank forward, so that the first real
// forward, whose blocks may land in other places (the caller's own blocks take some), maps nothing.
void fill();

// Memory outside the pool for long-lived buffers (the layers' weights), 64-byte aligned: from 2 MB
// on mapped 2 MB aligned with transparent huge pages asked for, smaller from malloc; given back by
// unmap_pages(p, bytes) with the same `bytes`. Throws std::bad_alloc. Filling
// 250 MB of weights this way faults ~500 huge pages instead of ~64k 4 KiB pages.
void* map_pages(size_t bytes);
void unmap_pages(void* p, size_t bytes) noexcept;
// Makes the pages of [p, p + bytes) resident in one call, as reads (for_write false:
// MADV_POPULATE_READ, e.g. a mapped file about to be read) or writes (MADV_POPULATE_WRITE: memory
// about to be written in full, its pages made as the writes would make them, huge pages where the
// mapping asks for them) would fault them in one by one: on the development VM each fault is an
// exception costing 10-20 us for a 4 KiB page. A hint: where it fails (Linux before 5.14, other
// systems) the accesses fault as before.
void populate(const void* p, size_t bytes, bool for_write);

// v = n zero bytes (its old content dropped), in transparent huge pages where the system gives
// them: first touches of fresh 4 KiB pages are what large outputs cost on a virtual machine (~10-20
// us each on the development VM, where a 2 MB huge page costs ~0.3 ms), and a 12-megapixel photo's
// outputs are ~170 MB with synthetic weights. From 1 MB on, v's capacity is made such that glibc
// maps its block (block header included) in a whole number of 2 MB pages, which the kernel places
// on a 2 MB boundary (Linux 6.7 on); such a block asks for huge pages (MADV_HUGEPAGE) and has its
// first 2 MB, where glibc wrote the header, made one huge page at once (MADV_COLLAPSE, Linux 6.1);
// the rest fault in as huge pages when written. The resident set then counts whole 2 MB pages, so
// only vectors that fill them to within 1/8 take them (a 12 MP photo's 12 MB maps do, its 1.5 MB
// instance bit masks do not: 99 of them in 2 MB pages took the 12 MP parse over its 1 GB bound).
// Wherever a step is not available (other placement, older kernel, AddressSanitizer builds, n under
// 1 MB or not filling its pages) v is the same n zero bytes in ordinary pages.
void huge_zeroed(std::vector<uint8_t>& v, size_t n);

// n elements of T (trivially copyable) in a block from allocate(), released when it goes out of scope;
// content undefined until written. For the large scratch buffers of one call (a picture's rows):
// from the second call on they reuse mapped pages instead of faulting fresh ones in.
template <class T>
class Array {
 public:
  Array() = default;
  explicit Array(size_t n) : p_(n ? static_cast<T*>(allocate(n * sizeof(T))) : nullptr), n_(n) {}
  Array(Array&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Array& operator=(Array&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  ~Array() { reset(); }
  void reset() noexcept {
    if (p_) release(p_, n_ * sizeof(T));
    p_ = nullptr;
    n_ = 0;
  }
  T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace m2fp::pool
