// jit::Artifact: the result of compiling a Program for a Target: the CUBIN or PTX image, the
// lowered names of the name expressions, NVRTC's log and its diagnostics, how long the compile
// took, where this copy came from, and the cache key.
//
// Thread safety: immutable. The contents live in one shared block, so copies are cheap (a
// reference count) and may be read from any number of threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/jit/cache_key.hpp"
#include "kiln/jit/diagnostics.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit {

enum class Origin : std::uint8_t { compiled, memory, disk };

std::string_view to_string(Origin origin) noexcept;  // "compiled", "memory", "disk"

struct ArtifactContents {
  ImageKind kind = ImageKind::cubin;
  int arch = 0;
  std::string program_name;
  std::string image;  // CUBIN bytes, or PTX text without its terminating NUL
  std::map<std::string, std::string> lowered_names;  // name expression -> mangled name
  std::string log;
  std::vector<Diagnostic> diagnostics;
  std::chrono::nanoseconds compile_time{0};  // of the NVRTC compile that produced the image
  CacheKey key;
};

class Artifact {
 public:
  Artifact() = default;  // empty: valid() is false
  Artifact(ArtifactContents contents, Origin origin);

  bool valid() const noexcept { return contents_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

  // The accessors below require valid(); they throw kiln::Error (Errc::invalid_handle) otherwise.
  ImageKind kind() const { return get().kind; }
  int arch() const { return get().arch; }
  Target target() const { return Target{get().kind, get().arch, {}}; }
  const std::string& program_name() const { return get().program_name; }
  // Bytes to hand to cuModuleLoadData / cuLibraryLoadData. PTX is NUL-terminated, as the driver
  // requires; size() does not count that NUL.
  const void* data() const { return get().image.data(); }
  std::size_t size() const { return get().image.size(); }
  std::string_view image() const { return get().image; }
  // The image, sharing this artifact's block (no copy): what a link input holds.
  std::shared_ptr<const std::string> shared_image() const;
  const std::map<std::string, std::string>& lowered_names() const { return get().lowered_names; }
  // Throws kiln::Error (Errc::invalid_argument) naming an expression that was not requested.
  const std::string& lowered_name(std::string_view name_expression) const;
  const std::string& log() const { return get().log; }
  const std::vector<Diagnostic>& diagnostics() const { return get().diagnostics; }
  std::chrono::nanoseconds compile_time() const { return get().compile_time; }
  const CacheKey& key() const { return get().key; }
  Origin origin() const noexcept { return origin_; }

  // The same contents, labelled with another origin (no copy of the image).
  Artifact with_origin(Origin origin) const;
  // Bytes this artifact holds (image, log, names): what a memory tier charges for it.
  std::size_t footprint() const;

 private:
  const ArtifactContents& get() const;

  std::shared_ptr<const ArtifactContents> contents_;
  Origin origin_ = Origin::compiled;
};

// The artifact as bytes that can travel (kilnd's shared queue carries compiled kernels between
// nodes): the disk cache's entry format, with the key and a SHA-256 of the payload in its header.
std::string serialize(const Artifact& artifact);
// The artifact back, labelled `origin`. Throws kiln::Error (Errc::invalid_argument) saying what is
// wrong with damaged bytes (truncated, wrong magic, checksum mismatch); nothing damaged is returned.
Artifact deserialize_artifact(std::string_view bytes, Origin origin);

}  // namespace kiln::jit
