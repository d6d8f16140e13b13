// jit::KernelCache: the facade. compile(program, target) answers from the memory tier, else the
// disk tier, else NVRTC, and stores what it compiled in both. When several threads ask for the
// same key that is not cached yet, one compiles and all receive its result (or its exception).
// Across processes sharing a disk folder, the compiling thread holds the key's lock file
// (DiskCache::lock_key) from its disk miss until the entry is stored, and a process that waited
// for it looks at the disk again: a node's processes compile each kernel once.
//
// link(job, target) does the same for nvJitLink links (linker.hpp): the link key names every input
// and option, and the linked image lives in the same tiers, under the same checks and size caps.
//
// Thread safety: every member may be called from any thread. The memory tier has its own mutex;
// in-flight compiles are tracked under a second one, held only to find or register a flight.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/jit/artifact.hpp"
#include "kiln/jit/cache_key.hpp"
#include "kiln/jit/compile_worker_pool.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/disk_cache.hpp"
#include "kiln/jit/linker.hpp"
#include "kiln/jit/memory_cache.hpp"
#include "kiln/jit/source_policy.hpp"

namespace kiln::jit {

namespace detail {
class KeyMemo;
}  // namespace detail

struct KernelCacheOptions {
  std::size_t memory_bytes = 256u << 20;  // memory tier capacity
  bool use_disk = true;
  DiskCacheOptions disk;
  // NVRTC automatic precompiled headers, kept in pch_directory() (counted against the disk cap). A
  // PCH file speeds up later compiles in the process that made it (NVRTC deletes it when that
  // process exits). Only no-ASLR compile workers share them across processes: see docs/JIT.md.
  bool precompiled_headers = false;
  // When set, every program is checked before compiling and every compiled or disk-loaded image is
  // checked after (PTX; for a CUBIN target a PTX twin is compiled only to be checked). A policy
  // with max_compile_time needs compile_worker. Every refusal, max_compile_time and
  // max_compile_memory included, is a jit::PolicyError naming its rule.
  std::optional<SourcePolicy> policy;
  // When set, NVRTC runs in up to compile_worker_processes child processes instead of this one
  // (CompileWorkerPool): compiles can be killed, NVRTC's PCH heap lives as long as the worker and,
  // with disable_aslr, PCH files written by earlier workers load in new ones.
  std::optional<CompileWorkerOptions> compile_worker;
  unsigned compile_worker_processes = 1;
  // How long a disk miss waits for another process compiling the same key before compiling too
  // (with a warning). 0: the policy's max_compile_time plus 5 s when it has one, else 5 minutes.
  std::chrono::milliseconds disk_lock_wait{0};
};

struct CacheStats {
  std::uint64_t memory_hits = 0;
  std::uint64_t memory_misses = 0;
  std::uint64_t disk_hits = 0;
  std::uint64_t disk_misses = 0;
  std::uint64_t compiles = 0;          // NVRTC runs that produced an image
  std::uint64_t compile_failures = 0;  // NVRTC runs that rejected the program
  std::uint64_t links = 0;             // nvJitLink runs that produced an image
  std::uint64_t link_failures = 0;     // nvJitLink runs that rejected the inputs
  std::uint64_t shared_waits = 0;      // callers that waited for another thread's compile
  std::uint64_t corrupt_entries = 0;   // disk entries found damaged (removed, rebuilt)
  std::uint64_t disk_lock_waits = 0;     // misses that waited for another process's compile of the key
  std::uint64_t disk_lock_timeouts = 0;  // ... and gave up waiting (then compiled here too)
  std::uint64_t memory_bytes = 0;
  std::uint64_t memory_entries = 0;
  std::uint64_t memory_evictions = 0;
  std::uint64_t disk_writes = 0;
  std::uint64_t disk_evictions = 0;
  std::chrono::nanoseconds compile_time_spent{0};  // in NVRTC and nvJitLink, this process
  std::chrono::nanoseconds compile_time_saved{0};  // original compile time of every hit
  CompileWorkerPoolStats workers;                  // all zero without compile workers
  std::vector<std::string> warnings;               // disk fallback, corrupt entries, write failures
};

class KernelCache {
 public:
  explicit KernelCache(KernelCacheOptions options = {});
  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;
  ~KernelCache();

  // The artifact, or kiln::Error (Errc::compile_failed with compiler-style diagnostics, a
  // jit::PolicyError, or what NVRTC threw).
  Artifact compile(const Program& program, const Target& target);
  // Same, but a program NVRTC rejects is returned (with its diagnostics) instead of thrown.
  CompileResult try_compile(const Program& program, const Target& target);

  // The linked image, from the memory tier, the disk tier or nvJitLink (stored in both), one link
  // per key however many threads and processes ask; or kiln::Error (Errc::link_failed naming each
  // symbol and input, or what jit::link threw). nvJitLink is loaded by the first call.
  Artifact link(const LinkJob& job, const Target& target);
  // Same, but a link nvJitLink rejects is returned (with its diagnostics) instead of thrown.
  LinkResult try_link(const LinkJob& job, const Target& target);
  CacheKey link_key_for(const LinkJob& job, const Target& target);

  // The memory tier alone, for callers that computed the key once: the fastest lookup.
  std::optional<Artifact> find(const CacheKey& key);
  CacheKey key_for(const Program& program, const Target& target) const;

  CacheStats stats() const;
  MemoryCache& memory() noexcept { return memory_; }
  DiskCache* disk() noexcept { return disk_.get(); }  // null when use_disk is false
  // Where NVRTC keeps precompiled headers for this cache: <disk>/pch, or <disk>/pch/fixed-address
  // for no-ASLR compile workers (whose files other processes cannot use). Empty without a disk tier.
  std::filesystem::path pch_directory() const;

 private:
  CompileResult produce(const Program& program, const Target& target, const CacheKey& key);
  LinkResult produce_link(const LinkJob& job, const Target& target, const CacheKey& key);
  // Single flight: the first caller for `key` runs `make`; the others wait for its result (or its
  // exception). `flights` is flights_ or link_flights_, both under flights_mutex_.
  template <typename Result, typename Make>
  Result single_flight(std::unordered_map<CacheKey, std::shared_future<Result>>& flights, const CacheKey& key,
                       Make&& make);
  std::chrono::milliseconds disk_lock_wait() const;
  // The disk tier's entry for `key`, or none, with `lock` then held (or timed out) for the caller
  // that will produce it: another process missing the same key waits for it, then finds the entry.
  std::optional<Artifact> load_or_lock(const CacheKey& key, KeyLock& lock);
  // One NVRTC run, in this process or in a compile worker under the policy's time limit.
  CompileResult run_nvrtc(const Program& program, const Target& target, const CompileSettings& settings) const;
  void check_artifact(const Artifact& artifact, const Program& program) const;
  // After an in-process compile: whether the NVRTC that ran is the version key_context_ names.
  bool nvrtc_agrees_with_key();

  const KernelCacheOptions options_;
  MemoryCache memory_;
  std::unique_ptr<DiskCache> disk_;
  // From the disk folder's NVRTC facts record (nvrtc_facts.hpp), so that a hit never loads NVRTC.
  // Written only by the constructor.
  KeyContext key_context_;
  // Keys of programs seen before, so a memory-tier hit skips the SHA-256 (16 MiB of key bytes).
  std::unique_ptr<detail::KeyMemo> key_memo_;
  std::unique_ptr<CompileWorkerPool> workers_;  // null: compile in this process
  std::vector<std::string> startup_warnings_;  // written only by the constructor

  std::mutex flights_mutex_;
  std::unordered_map<CacheKey, std::shared_future<CompileResult>> flights_;
  std::unordered_map<CacheKey, std::shared_future<LinkResult>> link_flights_;  // under flights_mutex_
  std::once_flag link_context_once_;
  LinkKeyContext link_context_;  // written once, under link_context_once_

  std::atomic<std::uint64_t> memory_hits_{0}, memory_misses_{0}, compiles_{0}, compile_failures_{0},
      shared_waits_{0}, links_{0}, link_failures_{0};
  std::atomic<std::int64_t> spent_ns_{0}, saved_ns_{0};
  std::atomic<bool> key_mismatch_{false};
};

}  // namespace kiln::jit
