// The keys of programs seen before, by their key bytes, so a memory-tier hit does not hash the
// program again: the SHA-256 was most of a hit's time (on the H200, ~0.4 of 1.6 us). The bytes are
// compared in full, so a memo hit is exactly the key the digest would give.
//
// Bounded: when the bytes held pass max_bytes the memo starts over (programs seen again are hashed
// once more). Thread safety: every member may be called from any thread.
#pragma once

#include <cstddef>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kiln/jit/cache_key.hpp"

namespace kiln::jit::detail {

class KeyMemo {
 public:
  explicit KeyMemo(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  CacheKey key(std::string_view key_bytes);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  const std::size_t max_bytes_;
  std::shared_mutex mutex_;
  std::unordered_map<std::string, CacheKey, Hash, std::equal_to<>> keys_;
  std::size_t bytes_ = 0;
};

}  // namespace kiln::jit::detail
