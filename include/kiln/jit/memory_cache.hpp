// jit::MemoryCache: the in-process tier, bounded by bytes, least recently used evicted first.
//
// Thread safety: every member may be called from any thread; one mutex guards the table. It is
// held for a hash lookup and a list splice (tens of nanoseconds), and is not on the launch path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "kiln/jit/artifact.hpp"
#include "kiln/jit/cache_key.hpp"

namespace kiln::jit {

class MemoryCache {
 public:
  explicit MemoryCache(std::size_t capacity_bytes);
  MemoryCache(const MemoryCache&) = delete;
  MemoryCache& operator=(const MemoryCache&) = delete;

  // The artifact (origin: memory) and marks it most recently used; nullopt when absent.
  std::optional<Artifact> find(const CacheKey& key);
  // Stores (or replaces) the artifact under its key, then evicts least recently used entries
  // until the tier fits. An artifact larger than the whole capacity is not stored.
  void insert(const Artifact& artifact);
  void clear();

  std::size_t capacity_bytes() const noexcept { return capacity_; }
  std::size_t bytes() const;
  std::size_t entries() const;
  std::uint64_t evictions() const;

 private:
  struct Entry {
    CacheKey key;
    Artifact artifact;
    std::size_t bytes;
  };
  void evict_to_fit_locked();

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<CacheKey, std::list<Entry>::iterator> index_;
  std::size_t bytes_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace kiln::jit
