// jit::CacheKey: SHA-256 over a canonical serialisation of everything that changes NVRTC's output:
// source, every header's name and content, include folders, normalised options, target, name
// expressions, the NVRTC version, the toolkit's include folders and kiln's cache format version.
// Nothing that leaves the output unchanged (order of defines or name expressions) changes it.
//
// Files reached through include folders are identified by the folder's path, not their content:
// pass headers in Program::headers when their content changes between runs.
//
// Thread safety: CacheKey is a value; cache_key() may be called from any thread.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

// Bumped whenever the key's serialisation or the disk entry's layout changes.
inline constexpr std::uint32_t kCacheFormatVersion = 1;

struct CacheKey {
  std::array<std::uint8_t, 32> bytes{};

  std::string hex() const;  // 64 lowercase hex digits
  // Throws kiln::Error (Errc::invalid_argument) naming text that is not 64 hex digits.
  static CacheKey from_hex(std::string_view text);

  friend auto operator<=>(const CacheKey&, const CacheKey&) = default;
};

// What the key depends on besides the program and target. Defaults to this process's NVRTC and
// toolkit; tests pass their own to show each one matters.
struct KeyContext {
  int nvrtc_cuda_version = 0;            // 13000
  std::vector<std::string> toolkit_dirs; // automatic include folders

  // NVRTC's version from nvrtc_facts(cache_dir): read from the cache folder's record when NVRTC is
  // not loaded yet, so that a cache hit never loads it. Throws what nvrtc_library() throws.
  static KeyContext current(const std::filesystem::path& cache_dir);
  static KeyContext current();  // the default cache folder's record
};

CacheKey cache_key(const Program& program, const Target& target);
CacheKey cache_key(const Program& program, const Target& target, const KeyContext& context);

}  // namespace kiln::jit

template <>
struct std::hash<kiln::jit::CacheKey> {
  std::size_t operator()(const kiln::jit::CacheKey& key) const noexcept {
    std::size_t h;  // the key is already a uniform hash
    std::memcpy(&h, key.bytes.data(), sizeof h);
    return h;
  }
};
