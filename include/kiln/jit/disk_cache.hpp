// jit::DiskCache: the persistent tier, shared by every process that names the same folder.
//
// Folder: DiskCacheOptions::directory, else $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else
// ~/.cache/kiln. A folder is used only when it can be written and trusted: a real folder (a link is
// resolved once, and then must be ours and lead to an empty folder or a kiln cache), owned by this
// user or root, not writable by group or others (unless sticky, like /tmp), and its entries/, pch/,
// locks/ and nvrtc-facts/ real folders owned by this user or root, writable by nobody else.
// Otherwise a private folder (fallback_directory(), 0700, ours) is used instead and a warning says
// why (warnings()).
//
// Layout: <dir>/entries/<first two hex digits of the key>/<key>.kjit, <dir>/pch/ for NVRTC's
// precompiled headers, <dir>/locks/ for per-key compile locks, <dir>/usage (the folder-wide lock and
// the shared byte count). An entry is a fixed header (magic, format version, key, payload length,
// SHA-256 of the payload) and the payload; every read checks all of it. A corrupt, truncated or
// foreign entry, or anything at an entry's name that is not a regular file (link, FIFO, folder), is
// counted, reported in warnings(), removed, and reported as a miss: never loaded.
//
// Link safety: every operation is relative to the folder's descriptor, opened once; no operation
// follows a link inside the folder (detail/cache_files.hpp), so clear, prune and eviction can only
// remove names inside it.
//
// Writes go to a temporary file in the entry's own folder and are renamed into place, so a reader
// sees a whole entry or none, whatever other processes do. Size cap: under the folder-wide lock a
// writer counts its entry, evicts least recently used files (entries and PCH files alike; a hit
// touches the entry's mtime) until it fits, and only then writes and renames it into place. So the
// folder never holds more than the cap, with any number of writers (PCH files NVRTC wrote since the
// last rescan aside). An entry larger than the cap is not written.
//
// Thread safety: every member may be called from any thread, and any number of processes may use
// one folder at once. Counters are atomics; the warnings list has its own mutex.
#pragma once

#include <atomic>
#include <chrono>
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

// How a per-key compile lock (DiskCache::lock_key) ended.
enum class KeyLockState {
  acquired,     // at once: no other process was compiling the key
  waited,       // after another process released it (it may have stored the entry meanwhile)
  timed_out,    // another process held it past the wait: not held, compile anyway
  unavailable,  // no lock possible here (read-only folder, no locks/ folder): not held
};

// A held per-key lock file, <dir>/locks/<key>.lock (flock; the kernel releases it when the holder
// dies). Released and unlinked by the destructor.
class KeyLock {
 public:
  KeyLock() = default;
  KeyLock(KeyLock&& other) noexcept;
  KeyLock& operator=(KeyLock&& other) noexcept;
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;
  ~KeyLock();

  KeyLockState state() const noexcept { return state_; }
  bool held() const noexcept { return fd_ >= 0; }
  void release() noexcept;

 private:
  friend class DiskCache;
  int folder_fd_ = -1, fd_ = -1;
  std::string name_;
  KeyLockState state_ = KeyLockState::unavailable;
};

class DiskCache {
 public:
  explicit DiskCache(DiskCacheOptions options = {});
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  ~DiskCache();

  // $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln, else fallback_directory().
  static std::filesystem::path default_directory();
  // The private folder used when the asked one is not usable: kiln-cache-<uid> under $TMPDIR when
  // that is an absolute path, else under /tmp. Never relative.
  static std::filesystem::path fallback_directory();

  const std::filesystem::path& directory() const noexcept { return directory_; }
  std::filesystem::path pch_directory() const { return directory_ / "pch"; }
  std::filesystem::path entry_path(const CacheKey& key) const;
  std::uint64_t max_bytes() const noexcept { return max_bytes_; }
  bool fell_back() const noexcept { return fell_back_; }

  // The verified artifact (origin: disk), or nullopt when absent or corrupt (then removed).
  std::optional<Artifact> load(const CacheKey& key);
  // load() for a second look (after lock_key): a miss is not counted again.
  std::optional<Artifact> recheck(const CacheKey& key);
  // Writes the artifact under its key atomically, evicting first if the folder would outgrow its
  // cap. Failure to write (disk full), and an entry larger than the cap, are recorded in
  // warnings(), never thrown: the cache is an optimisation, the compile already succeeded.
  void store(const Artifact& artifact);

  // Cross-process single flight: the key's lock file, waited for up to `max_wait` (then not held,
  // with a warning). Another process compiling the key holds it until it stored the entry.
  KeyLock lock_key(const CacheKey& key, std::chrono::milliseconds max_wait);
  // Creates a folder under pch/ (link-safe); false with `why` when it cannot.
  bool make_pch_folder(const std::string& name, std::string& why);

  // Removes least recently used files until the folder holds at most `max_bytes` (default: the
  // cap), and temporary files older than an hour (left by crashed writers). With `verify`, every
  // entry is read and checked first, and corrupt ones removed.
  PruneResult prune(std::optional<std::uint64_t> max_bytes = std::nullopt, bool verify = false);
  // Removes every entry and PCH file (and whatever else sits under entries/ and pch/, links
  // removed as names). Returns how many files went.
  std::uint64_t clear();
  // Counted under the folder lock, so it is one moment of the folder even while others write.
  DiskUsage usage() const;

  std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t misses() const noexcept { return misses_.load(std::memory_order_relaxed); }
  std::uint64_t corrupt_entries() const noexcept { return corrupt_.load(std::memory_order_relaxed); }
  std::uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }
  std::uint64_t oversized() const noexcept { return oversized_.load(std::memory_order_relaxed); }
  std::uint64_t lock_waits() const noexcept { return lock_waits_.load(std::memory_order_relaxed); }
  std::uint64_t lock_timeouts() const noexcept { return lock_timeouts_.load(std::memory_order_relaxed); }
  std::vector<std::string> warnings() const;

 private:
  std::optional<Artifact> load(const CacheKey& key, bool count_miss);
  void bad_entry(int folder_fd, const std::string& name, const std::string& where, const std::string& why);
  void evict_to(std::uint64_t limit, bool verify, PruneResult& result, std::uint64_t& total,
                std::uint64_t only_if_over);
  void sweep_locks();
  void warn(std::string text);

  std::filesystem::path directory_;
  int fd_ = -1;  // the folder, opened once: every operation is relative to it
  std::uint64_t max_bytes_;
  bool fell_back_ = false;
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, corrupt_{0}, writes_{0}, evictions_{0}, oversized_{0},
      lock_waits_{0}, lock_timeouts_{0};
  mutable std::mutex warnings_mutex_;
  std::vector<std::string> warnings_;
};

}  // namespace kiln::jit
