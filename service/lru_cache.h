// service/lru_cache.h: a thread-safe least-recently-used cache bounded by total bytes and entries.
//
// The server keeps one parse per (photo SHA-256, parse options) here. Values are shared_ptr<const V>
// so a reader keeps its value alive after an eviction. Each entry's cost in bytes is given by the
// caller when it is put; a value larger than the whole budget is not stored. A budget of 0 bytes
// disables the cache (every get misses, nothing is stored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace m2fp::service {

template <class V>
class LruCache {
 public:
  using Ptr = std::shared_ptr<const V>;

  LruCache(size_t max_bytes, size_t max_entries) : max_bytes_(max_bytes), max_entries_(max_entries) {}

  // The value for `key` (now the most recently used), or nullptr. Counts a hit or a miss.
  Ptr get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    order_.splice(order_.begin(), order_, it->second);
    ++hits_;
    return it->second->value;
  }

  // Stores (or replaces) `key`, then evicts least recently used entries until within both bounds.
  // Returns false when the value was not stored (cache disabled, or cost > max_bytes).
  bool put(const std::string& key, Ptr value, size_t cost) {
    std::lock_guard<std::mutex> lock(mu_);
    if (max_bytes_ == 0 || max_entries_ == 0 || cost > max_bytes_ || !value) return false;
    auto it = index_.find(key);
    if (it != index_.end()) {
      bytes_ -= it->second->cost;
      order_.erase(it->second);
      index_.erase(it);
    }
    order_.push_front(Entry{key, std::move(value), cost});
    index_[key] = order_.begin();
    bytes_ += cost;
    while (bytes_ > max_bytes_ || order_.size() > max_entries_) {
      const Entry& last = order_.back();
      bytes_ -= last.cost;
      index_.erase(last.key);
      order_.pop_back();
      ++evictions_;
    }
    return true;
  }

  struct Stats {
    size_t entries = 0, bytes = 0, max_bytes = 0, max_entries = 0;
    uint64_t hits = 0, misses = 0, evictions = 0;
  };
  Stats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {order_.size(), bytes_, max_bytes_, max_entries_, hits_, misses_, evictions_};
  }

 private:
  struct Entry {
    std::string key;
    Ptr value;
    size_t cost;
  };
  mutable std::mutex mu_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
  size_t bytes_ = 0;
  const size_t max_bytes_, max_entries_;
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace m2fp::service
