#include "kiln/memory/out_of_memory.hpp"

#include <cstdio>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/memory/pool_resource.hpp"

namespace kiln::memory {
namespace {

std::string human(std::size_t bytes) {
  char buf[32];
  const double b = double(bytes);
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.2f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  return buf;
}

}  // namespace

std::string describe(const MemoryPicture& p) {
  std::string m = "Tried to allocate " + human(p.requested) + " on device " + std::to_string(p.device);
  if (!p.device_name.empty()) m += " (" + p.device_name + ")";
  m += ": " + human(p.free) + " free of " + human(p.total) + "; kiln's pools reserve " + human(p.reserved) +
       ", kiln has " + human(p.in_use) + " in use.";
  if (!p.top_tags.empty()) {
    m += " Largest tags:";
    for (std::size_t i = 0; i < p.top_tags.size() && i < 5; ++i)
      m += std::string(i ? "," : "") + " " + p.top_tags[i].tag + " " + human(p.top_tags[i].bytes);
    m += ".";
  }
  m += " If reserved is much larger than in use, trim the pools (PoolResource::trim) or lower their "
       "release threshold.";
  return m;
}

OutOfMemoryError::OutOfMemoryError(MemoryPicture picture, std::string call, std::source_location where)
    : Error(Domain::driver, CUDA_ERROR_OUT_OF_MEMORY, std::move(call), describe(picture), where),
      picture_(std::move(picture)) {}

MemoryPicture picture_of(const core::Device& device, std::size_t requested, std::size_t pool_reserved) {
  MemoryPicture p;
  p.device = device.ordinal();
  p.requested = requested;
  try {
    p.device_name = device.name();
    std::tie(p.free, p.total) = device.memory_info();
  } catch (const Error&) {
    // The picture is best effort: the error it explains matters more.
  }
  p.reserved = pool_reserved;
  auto& tracker = core::AllocationTracker::instance();
  for (const auto& t : tracker.usage_by_tag(device.ordinal())) p.in_use += t.bytes;
  p.top_tags = tracker.usage_by_tag(device.ordinal());
  if (p.top_tags.size() > 5) p.top_tags.resize(5);
  return p;
}

AvailableMemory estimate_available(const core::Device& device, std::initializer_list<const PoolResource*> pools) {
  AvailableMemory a;
  a.free = device.memory_info().first;
  for (const PoolResource* pool : pools) {
    if (!pool) continue;
    ResourceStats s = pool->stats();
    if (s.reserved > s.in_use) a.pool_slack += s.reserved - s.in_use;
  }
  return a;
}

void admit(const core::Device& device, std::size_t bytes, std::initializer_list<const PoolResource*> pools,
           std::source_location where) {
  AvailableMemory a = estimate_available(device, pools);
  if (bytes <= a.total()) return;
  std::size_t reserved = 0;
  for (const PoolResource* pool : pools)
    if (pool) reserved += pool->stats().reserved;
  throw OutOfMemoryError(picture_of(device, bytes, reserved), "admit", where);
}

}  // namespace kiln::memory
