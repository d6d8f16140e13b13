#include "jit/detail/key_memo.hpp"

#include <mutex>

#include "jit/detail/sha256.hpp"

namespace kiln::jit::detail {

CacheKey KeyMemo::key(std::string_view key_bytes) {
  {
    std::shared_lock lock(mutex_);
    if (auto it = keys_.find(key_bytes); it != keys_.end()) return it->second;
  }
  const CacheKey key{sha256(key_bytes)};
  if (key_bytes.size() > max_bytes_) return key;  // too large to keep
  std::lock_guard lock(mutex_);
  if (bytes_ + key_bytes.size() > max_bytes_) {
    keys_.clear();
    bytes_ = 0;
  }
  if (keys_.emplace(std::string(key_bytes), key).second) bytes_ += key_bytes.size();
  return key;
}

}  // namespace kiln::jit::detail
