// Every allocation kiln makes is registered here with its size, kind, tag and call site, so a
// report can list what is live and teardown can name what leaked. Registration is a sharded hash
// insert (one uncontended lock of 64), cheap enough to stay on in production; it can be switched
// off process-wide.
//
// Thread safety: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::core {

enum class AllocationKind : std::uint8_t { device, device_async, pooled, pinned, registered, managed };
std::string_view to_string(AllocationKind kind) noexcept;

struct AllocationRecord {
  std::uintptr_t address = 0;
  std::size_t bytes = 0;
  AllocationKind kind = AllocationKind::device;
  int device = -1;  // ordinal, -1 for host memory
  std::string tag;  // caller's label ("weights", "tenant-a"); empty when untagged
  std::source_location where;
};

struct TagUsage {
  std::string tag;
  std::size_t bytes = 0;
  std::size_t allocations = 0;
};

class AllocationTracker {
 public:
  static AllocationTracker& instance();

  void set_enabled(bool enabled) noexcept;
  bool enabled() const noexcept;

  void add(std::uintptr_t address, std::size_t bytes, AllocationKind kind, int device, std::string_view tag,
           const std::source_location& where);
  void remove(std::uintptr_t address) noexcept;

  std::vector<AllocationRecord> live() const;
  std::size_t live_bytes() const;
  // Live bytes per tag, largest first (device < 0 means every device).
  std::vector<TagUsage> usage_by_tag(int device = -1) const;
  // Writes one line per live allocation; returns how many there were.
  std::size_t report(std::ostream& out) const;

 private:
  AllocationTracker() = default;
  ~AllocationTracker();  // reports leaks at process end; KILN_LEAK_CHECK=fail exits non-zero
};

}  // namespace kiln::core
