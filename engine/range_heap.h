// engine/range_heap.h: the placement policy of the buffer pool's region (engine/buffer_pool.h), in
// offsets only (no memory): blocks cut from the lowest free range that holds them, freed blocks
// joined with their free neighbours, the region's used part growing only when no free range holds a
// block. Not thread-safe (the pool calls it under its lock). Tests: tests/engine/test_buffer_pool.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <utility>

namespace m2fp::pool {

class RangeHeap {
 public:
  static constexpr size_t npos = SIZE_MAX;

  // A block of `size` bytes at most `capacity` bytes into the region: the start of the lowest free
  // range that holds it, else the end of the used part (joining a free range that ends there);
  // npos when it would reach past `capacity` (nothing changes then).
  size_t take(size_t size, size_t capacity) {
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < size) continue;
      const size_t off = it->first, rest = it->second - size;
      free_.erase(it);
      if (rest) free_.emplace(off + size, rest);
      return off;
    }
    size_t off = top_;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == top_) off = last->first;
    }
    if (size > capacity || off > capacity - size) return npos;
    if (off < top_) free_.erase(std::prev(free_.end()));
    top_ = off + size;
    return off;
  }
  // [off, off + size) free again, joined with the free ranges it touches. May throw std::bad_alloc
  // (a new entry); the heap is unchanged then.
  void give(size_t off, size_t size) {
    auto next = free_.lower_bound(off);
    const bool join_next = next != free_.end() && off + size == next->first;
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == off) {
        prev->second += size + (join_next ? next->second : 0);
        if (join_next) free_.erase(next);
        return;
      }
    }
    if (join_next) {  // the next range's entry moved to start at off (no allocation)
      auto node = free_.extract(next);
      node.key() = off;
      node.mapped() += size;
      free_.insert(std::move(node));
      return;
    }
    free_.emplace(off, size);
  }
  // The free ranges, offset -> bytes, ascending; none touches another.
  const std::map<size_t, size_t>& free_ranges() const { return free_; }
  // How far into the region blocks have ever reached.
  size_t top() const { return top_; }

 private:
  std::map<size_t, size_t> free_;
  size_t top_ = 0;
};

}  // namespace m2fp::pool
