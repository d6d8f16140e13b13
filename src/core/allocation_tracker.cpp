#include "kiln/core/allocation_tracker.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <unordered_map>

namespace kiln::core {
namespace {

struct Entry {
  std::size_t bytes;
  AllocationKind kind;
  int device;
  std::string tag;
  std::source_location where;
};

struct Shard {
  std::mutex mutex;
  std::unordered_map<std::uintptr_t, Entry> entries;
};

constexpr std::size_t kShards = 64;
std::array<Shard, kShards> g_shards;
std::atomic<bool> g_enabled{true};

Shard& shard_of(std::uintptr_t address) {
  // Allocations are aligned: drop the low bits before spreading over shards.
  return g_shards[(address >> 12 ^ address >> 20) % kShards];
}

template <typename F>
void for_each_entry(F&& f) {
  for (Shard& s : g_shards) {
    std::lock_guard lock(s.mutex);
    for (const auto& [address, e] : s.entries) f(address, e);
  }
}

}  // namespace

std::string_view to_string(AllocationKind kind) noexcept {
  switch (kind) {
    case AllocationKind::device: return "device";
    case AllocationKind::device_async: return "device (stream-ordered)";
    case AllocationKind::pooled: return "device pool";
    case AllocationKind::pinned: return "pinned host";
    case AllocationKind::registered: return "registered host";
    case AllocationKind::managed: return "managed";
  }
  return "unknown";
}

AllocationTracker& AllocationTracker::instance() {
  static AllocationTracker tracker;
  return tracker;
}

void AllocationTracker::set_enabled(bool enabled) noexcept { g_enabled.store(enabled, std::memory_order_relaxed); }
bool AllocationTracker::enabled() const noexcept { return g_enabled.load(std::memory_order_relaxed); }

void AllocationTracker::add(std::uintptr_t address, std::size_t bytes, AllocationKind kind, int device,
                            std::string_view tag, const std::source_location& where) {
  if (!enabled()) return;
  Shard& s = shard_of(address);
  std::lock_guard lock(s.mutex);
  s.entries.insert_or_assign(address, Entry{bytes, kind, device, std::string(tag), where});
}

void AllocationTracker::remove(std::uintptr_t address) noexcept {
  // Removal runs even when tracking was switched off later, so no stale entry survives.
  Shard& s = shard_of(address);
  std::lock_guard lock(s.mutex);
  s.entries.erase(address);
}

std::vector<AllocationRecord> AllocationTracker::live() const {
  std::vector<AllocationRecord> out;
  for_each_entry([&](std::uintptr_t a, const Entry& e) { out.push_back({a, e.bytes, e.kind, e.device, e.tag, e.where}); });
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.bytes > y.bytes; });
  return out;
}

std::size_t AllocationTracker::live_bytes() const {
  std::size_t total = 0;
  for_each_entry([&](std::uintptr_t, const Entry& e) { total += e.bytes; });
  return total;
}

std::vector<TagUsage> AllocationTracker::usage_by_tag(int device) const {
  std::map<std::string, TagUsage> by_tag;
  for_each_entry([&](std::uintptr_t, const Entry& e) {
    if (device >= 0 && e.device != device) return;
    TagUsage& u = by_tag[e.tag];
    u.tag = e.tag.empty() ? "(untagged)" : e.tag;
    u.bytes += e.bytes;
    ++u.allocations;
  });
  std::vector<TagUsage> out;
  for (auto& [_, u] : by_tag) out.push_back(u);
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.bytes > y.bytes; });
  return out;
}

std::size_t AllocationTracker::report(std::ostream& out) const {
  auto records = live();
  for (const auto& r : records) {
    out << "  " << r.bytes << " bytes of " << to_string(r.kind);
    if (r.device >= 0) out << " on device " << r.device;
    out << " at 0x" << std::hex << r.address << std::dec;
    if (!r.tag.empty()) out << " tag '" << r.tag << "'";
    out << " allocated at " << r.where.file_name() << ":" << r.where.line() << " (" << r.where.function_name()
        << ")\n";
  }
  return records.size();
}

AllocationTracker::~AllocationTracker() {
  const std::size_t leaks = live().size();
  if (leaks == 0) return;
  std::cerr << "kiln: " << leaks << " allocation(s) still live at process end:\n";
  report(std::cerr);
  const char* mode = std::getenv("KILN_LEAK_CHECK");
  if (mode && std::string_view(mode) == "fail") std::_Exit(3);
}

}  // namespace kiln::core
