// jit::NvrtcFacts: what a cache hit needs to know about NVRTC, without loading it. The cache key
// holds NVRTC's version and Target::for_device reads its architectures; loading NVRTC to ask
// (dlopen of a ~100 MB library, about 10 ms) would be most of what a disk hit in a new process
// spends beyond the driver's own start. So the answers are kept in a record in the cache folder,
//   <cache>/nvrtc-facts/<SHA-256 of the library file's identity>
// written (temporary file, then rename) by every process that loaded NVRTC, and read by later ones
// that have not. The identity is the real path, size, mtime, ctime, inode and device of the file
// NVRTC would be loaded from (driver::nvrtc_location()): another NVRTC (KILN_NVRTC_PATH,
// CUDA_HOME) or the same file rewritten names another record. A record that is missing, damaged
// (it ends with the SHA-256 of its text) or about another file is ignored and NVRTC is loaded.
//
// Thread safety: every function may be called from any thread, by any number of processes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::jit {

struct NvrtcFacts {
  int version_major = 0;              // 13
  int version_minor = 0;              // 0
  std::vector<int> supported_archs;   // nvrtcGetSupportedArchs: 75, 80, ... 120

  int cuda_version() const noexcept { return version_major * 1000 + version_minor * 10; }  // 13000
  friend bool operator==(const NvrtcFacts&, const NvrtcFacts&) = default;
};

// A file as the file system tells it apart: replaced or rewritten, it is another identity.
struct LibraryIdentity {
  std::string path;  // real path
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;  // changes on every write and cannot be set back, unlike mtime
  std::uint64_t inode = 0;
  std::uint64_t device = 0;

  // The identity of the file `path` names (links resolved); nullopt when it cannot be read.
  static std::optional<LibraryIdentity> of(const std::string& path);
  friend bool operator==(const LibraryIdentity&, const LibraryIdentity&) = default;
};

// Where the record for `library` lives under the cache folder `cache_dir`.
std::filesystem::path nvrtc_facts_path(const std::filesystem::path& cache_dir, const LibraryIdentity& library);

// The facts recorded for `library`; nullopt when there is no record, or it is damaged or describes
// another file. Never throws.
std::optional<NvrtcFacts> read_nvrtc_facts(const std::filesystem::path& cache_dir, const LibraryIdentity& library);

// Records `facts` for `library`, atomically. False when the folder cannot be written (the record
// only saves time). Never throws.
bool write_nvrtc_facts(const std::filesystem::path& cache_dir, const LibraryIdentity& library,
                       const NvrtcFacts& facts);

// This process's NVRTC facts. Once NVRTC is loaded here, its own answers (and cache_dir's record is
// written where it is missing or differs). Before that: facts this
// process already read from a record, else cache_dir's record for driver::nvrtc_location(), else
// NVRTC is loaded (and the record written). Throws what driver::nvrtc_library() throws.
NvrtcFacts nvrtc_facts(const std::filesystem::path& cache_dir);
// Same, with the default cache folder (DiskCache::default_directory()).
NvrtcFacts nvrtc_facts();

}  // namespace kiln::jit
