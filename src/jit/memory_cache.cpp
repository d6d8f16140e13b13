#include "kiln/jit/memory_cache.hpp"

namespace kiln::jit {

MemoryCache::MemoryCache(std::size_t capacity_bytes) : capacity_(capacity_bytes) {}

std::optional<Artifact> MemoryCache::find(const CacheKey& key) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->artifact.with_origin(Origin::memory);
}

void MemoryCache::insert(const Artifact& artifact) {
  const std::size_t bytes = artifact.footprint();
  const CacheKey& key = artifact.key();
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) {
    bytes_ -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  if (bytes > capacity_) return;
  lru_.push_front(Entry{key, artifact, bytes});
  index_.emplace(key, lru_.begin());
  bytes_ += bytes;
  evict_to_fit_locked();
}

void MemoryCache::evict_to_fit_locked() {
  while (bytes_ > capacity_ && !lru_.empty()) {
    const Entry& victim = lru_.back();
    bytes_ -= victim.bytes;
    index_.erase(victim.key);
    lru_.pop_back();
    ++evictions_;
  }
}

void MemoryCache::clear() {
  std::lock_guard lock(mutex_);
  index_.clear();
  lru_.clear();
  bytes_ = 0;
}

std::size_t MemoryCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::size_t MemoryCache::entries() const {
  std::lock_guard lock(mutex_);
  return index_.size();
}

std::uint64_t MemoryCache::evictions() const {
  std::lock_guard lock(mutex_);
  return evictions_;
}

}  // namespace kiln::jit
