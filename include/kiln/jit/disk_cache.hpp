// jit::DiskCache: the persistent tier, shared by every process that names the same folder.
//
// Folder: DiskCacheOptions::directory, else $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else
// ~/.cache/kiln. When it cannot be written (read-only HOME), a private folder under the system's
// temporary folder is used instead and a warning says so (warnings()).
//
// Layout: <dir>/entries/<first two hex digits of the key>/<key>.kjit, and <dir>/pch/ for NVRTC's
// precompiled headers. An entry is a fixed header (magic, format version, key, payload length,
// SHA-256 of the payload) and the payload; every read checks all of it. A corrupt, truncated or
// foreign entry is counted, reported in warnings(), removed, and reported as a miss: never loaded.
//
// Writes go to a temporary file in the entry's own folder and are renamed into place, so
// a reader sees a whole entry or none, whatever other processes do. Size cap: least recently used
// files (entries and PCH files alike; a hit touches the entry's mtime) are removed until the folder
// fits; a file that vanishes meanwhile (another process pruned it) is simply skipped.
//
// Thread safety: every member may be called from any thread, and any number of processes may use
// one folder at once. Counters are atomics; the warnings list has its own mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kiln/jit/artifact.hpp"
#include "kiln/jit/cache_key.hpp"

namespace kiln::jit {

inline constexpr std::uint64_t kDefaultDiskCacheBytes = 4ull << 30;  // 4 GiB

struct DiskCacheOptions {
  std::filesystem::path directory;  // empty: default_directory()
  // Size cap; 0: $KILN_CACHE_MAX_BYTES if set, else kDefaultDiskCacheBytes.
  std::uint64_t max_bytes = 0;
};

struct DiskUsage {
  std::uint64_t entries = 0;
  std::uint64_t entry_bytes = 0;
  std::uint64_t pch_files = 0;
  std::uint64_t pch_bytes = 0;
  std::uint64_t total_bytes() const { return entry_bytes + pch_bytes; }
};

struct PruneResult {
  std::uint64_t removed_files = 0;
  std::uint64_t removed_bytes = 0;
  std::uint64_t corrupt_removed = 0;   // only when verify was asked for
  std::uint64_t stale_temp_removed = 0;
};

class DiskCache {
 public:
  explicit DiskCache(DiskCacheOptions options = {});
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln.
  static std::filesystem::path default_directory();

  const std::filesystem::path& directory() const noexcept { return directory_; }
  std::filesystem::path pch_directory() const { return directory_ / "pch"; }
  std::filesystem::path entry_path(const CacheKey& key) const;
  std::uint64_t max_bytes() const noexcept { return max_bytes_; }
  bool fell_back() const noexcept { return fell_back_; }

  // The verified artifact (origin: disk), or nullopt when absent or corrupt (then removed).
  std::optional<Artifact> load(const CacheKey& key);
  // Writes the artifact under its key atomically, then prunes if the folder outgrew its cap.
  // Failure to write (disk full) is recorded in warnings(), never thrown: the cache is an
  // optimisation, the compile already succeeded.
  void store(const Artifact& artifact);

  // Removes least recently used files until the folder holds at most `max_bytes` (default: the
  // cap), and temporary files older than an hour (left by crashed writers). With `verify`, every
  // entry is read and checked first, and corrupt ones removed.
  PruneResult prune(std::optional<std::uint64_t> max_bytes = std::nullopt, bool verify = false);
  // Removes every entry and PCH file. Returns how many files went.
  std::uint64_t clear();
  DiskUsage usage() const;

  std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t misses() const noexcept { return misses_.load(std::memory_order_relaxed); }
  std::uint64_t corrupt_entries() const noexcept { return corrupt_.load(std::memory_order_relaxed); }
  std::uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }
  std::vector<std::string> warnings() const;

 private:
  void warn(std::string text);
  void note_written(std::uint64_t bytes);

  std::filesystem::path directory_;
  std::uint64_t max_bytes_;
  bool fell_back_ = false;
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, corrupt_{0}, writes_{0}, evictions_{0};
  // Bytes written since the last scan; a full scan happens only when this could cross the cap.
  std::atomic<std::uint64_t> approx_bytes_{0};
  mutable std::mutex warnings_mutex_;
  std::vector<std::string> warnings_;
};

}  // namespace kiln::jit
