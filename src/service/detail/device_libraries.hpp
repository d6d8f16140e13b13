// The device libraries kilnd was configured with (ServiceConfig::device_libraries), loaded once at
// start: each library's LTO-IR and source read and checked, its headers read. A kernel registration
// names libraries; find() answers only for a tenant the library admits (another tenant reads
// "absent", as for another tenant's kernel). for_arch() picks what links into one architecture: the
// prebuilt LTO-IR for its own, the source (compiled to LTO-IR through the kernel cache) for others.
//
// Thread safety: immutable after construction; every member may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/jit/cache_key.hpp"
#include "kiln/jit/device_library.hpp"
#include "kiln/service/config.hpp"

namespace kiln::service::detail {

class DeviceLibraryEntry {
 public:
  const std::string& name() const noexcept { return name_; }
  bool admits(std::string_view tenant) const;
  // SHA-256 over the library's name and content (LTO-IR bytes, source, options, headers): equal on
  // every node configured with the same files. The shared compile queue compares it.
  const std::string& digest() const noexcept { return digest_; }
  // What links into sm_<arch>: the prebuilt LTO-IR when it is for `arch`, else the source. Throws
  // kiln::Error (Errc::invalid_argument) when neither can (LTO-IR of another architecture only).
  const jit::DeviceLibrary& for_arch(int arch) const;

  std::optional<int> prebuilt_arch() const { return prebuilt_ ? std::optional<int>(prebuilt_arch_) : std::nullopt; }
  std::uint64_t ltoir_bytes() const noexcept { return ltoir_bytes_; }
  std::uint64_t source_bytes() const noexcept { return source_bytes_; }
  std::vector<std::string> header_names() const;

 private:
  friend class DeviceLibraries;
  std::string name_;
  std::optional<std::vector<std::string>> tenants_;
  std::optional<jit::DeviceLibrary> prebuilt_;
  int prebuilt_arch_ = 0;
  std::optional<jit::DeviceLibrary> source_;
  std::map<std::string, std::string> headers_;
  std::uint64_t ltoir_bytes_ = 0, source_bytes_ = 0;
  std::string digest_;
};

class DeviceLibraries {
 public:
  DeviceLibraries() = default;
  // Reads every library's files. Throws kiln::Error (Errc::invalid_argument) naming the setting
  // (device_libraries.<name>.ltoir, ...) and the file: unreadable, empty, or not LTO-IR.
  explicit DeviceLibraries(const std::map<std::string, DeviceLibraryConfig>& config);

  // The library `name` when `tenant` may link it; null otherwise.
  const DeviceLibraryEntry* find(std::string_view name, std::string_view tenant) const;
  // Those `tenant` may link, by name.
  std::vector<const DeviceLibraryEntry*> visible_to(std::string_view tenant) const;
  bool empty() const noexcept { return libraries_.empty(); }

 private:
  std::map<std::string, DeviceLibraryEntry, std::less<>> libraries_;
};

// The architecture of LTO-IR bytes from their header (NVVM's wrapper: magic 0x7F4E43ED, the
// architecture times ten at byte 26), or nullopt when the bytes are not LTO-IR.
bool looks_like_ltoir(std::string_view bytes) noexcept;
std::optional<int> ltoir_arch(std::string_view bytes) noexcept;

}  // namespace kiln::service::detail
