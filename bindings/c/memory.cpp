// Device buffers from the stream-ordered pool, pinned host memory from the pinned pool, managed
// memory, copies and the allocation report.
#include <map>
#include <mutex>
#include <sstream>

#include "c/detail/boundary.hpp"
#include "c/detail/handles.hpp"
#include "kiln/core/allocation_tracker.hpp"
#include "kiln/core/device.hpp"
#include "kiln/memory/pageable_copy.hpp"

using namespace kiln;

namespace {

// One pool per device for the whole process, made on first use: every binding's buffers share it,
// as the C++ core's users share a PoolResource.
memory::PoolResource device_pool(int device) {
  static std::mutex mutex;
  static std::map<int, memory::PoolResource> pools;
  std::lock_guard lock(mutex);
  auto it = pools.find(device);
  if (it == pools.end()) it = pools.emplace(device, memory::PoolResource(core::Device::get(device))).first;
  return it->second;
}

void refuse_zero(std::size_t bytes, const char* call) {
  if (bytes == 0) throw Error(Errc::invalid_argument, std::string(call) + ": bytes is 0");
}

std::string_view tag_of(const char* tag) { return tag != nullptr ? std::string_view(tag) : std::string_view(); }

// Host memory the copy engine can read or write directly: pinned (ours or registered) or managed.
bool driver_visible(const void* host) {
  const core::PointerAttributes a = core::pointer_attributes(host);
  return a.pinned_host() || a.managed;
}

std::string pointer_text(const void* p) {
  std::ostringstream s;
  s << p;
  return s.str();
}

[[noreturn]] void refuse_pageable(const char* call, const void* host) {
  throw Error(Errc::invalid_argument, std::string(call) + ": the host memory at " + pointer_text(host) +
                                          " is pageable; an asynchronous copy needs pinned memory "
                                          "(kiln_pinned_create) or managed memory: use the synchronous copy, "
                                          "which stages pageable memory at close to pinned speed");
}

}  // namespace

extern "C" {

kiln_status kiln_buffer_create(kiln_stream* stream, size_t bytes, const char* tag, kiln_buffer** buffer,
                               uint64_t* address, kiln_error* error) {
  return c::guarded(error, "kiln_buffer_create", [&] {
    const kiln_stream& s = c::need(stream, "kiln_buffer_create", "stream");
    c::need_pointer(buffer, "kiln_buffer_create", "buffer");
    *buffer = nullptr;
    refuse_zero(bytes, "kiln_buffer_create");
    auto out = std::make_unique<kiln_buffer>();
    out->pool = device_pool(s.device);
    out->address = out->pool.allocate(bytes, s.ref, tag_of(tag));
    out->bytes = bytes;
    out->stream_owner = s.owner;
    out->stream = s.ref;
    out->device = s.device;
    if (address != nullptr) *address = out->address;
    *buffer = out.release();
  });
}

void kiln_buffer_destroy(kiln_buffer* buffer) {
  if (buffer == nullptr) return;
  buffer->pool.deallocate(buffer->address, buffer->bytes, buffer->stream);
  delete buffer;
}

int kiln_buffer_device(const kiln_buffer* buffer) { return buffer != nullptr ? buffer->device : -1; }

kiln_status kiln_device_pool_stats(int device, kiln_pool_stats* stats, kiln_error* error) {
  return c::guarded(error, "kiln_device_pool_stats", [&] {
    kiln_pool_stats& caller = *c::need_pointer(stats, "kiln_device_pool_stats", "stats");
    kiln_pool_stats out{};
    const memory::ResourceStats s = device_pool(device).stats();
    out.in_use = s.in_use;
    out.peak = s.peak;
    out.reserved = s.reserved;
    out.allocations = s.allocations;
    out.deallocations = s.deallocations;
    c::write_out(caller, out, "kiln_device_pool_stats");
  });
}

kiln_status kiln_pinned_pool_create(int device, kiln_host_memory memory, uint64_t max_cached_bytes,
                                    kiln_pinned_pool** pool, kiln_error* error) {
  return c::guarded(error, "kiln_pinned_pool_create", [&] {
    c::need_pointer(pool, "kiln_pinned_pool_create", "pool");
    *pool = nullptr;
    memory::HostAllocator allocator;
    const auto kind = c::raw(memory);
    if (kind == KILN_HOST_PINNED)
      allocator = memory::HostAllocator::pinned(core::Device::get(device).primary_context());
    else if (kind == KILN_HOST_PLAIN)
      allocator = memory::HostAllocator::plain();
    else
      throw Error(Errc::invalid_argument, "kiln_pinned_pool_create: memory " + std::to_string(kind) +
                                              " is neither KILN_HOST_PINNED nor KILN_HOST_PLAIN");
    memory::PinnedPoolOptions options;
    if (max_cached_bytes != 0) options.max_cached_bytes = max_cached_bytes;
    *pool = new kiln_pinned_pool{memory::PinnedPool(std::move(allocator), options)};
  });
}

void kiln_pinned_pool_destroy(kiln_pinned_pool* pool) { delete pool; }

kiln_status kiln_pinned_create(kiln_pinned_pool* pool, size_t bytes, const char* tag, kiln_pinned** block,
                               void** data, kiln_error* error) {
  return c::guarded(error, "kiln_pinned_create", [&] {
    kiln_pinned_pool& p = c::need(pool, "kiln_pinned_create", "pool");
    c::need_pointer(block, "kiln_pinned_create", "block");
    *block = nullptr;
    refuse_zero(bytes, "kiln_pinned_create");
    auto out = std::make_unique<kiln_pinned>(kiln_pinned{p.pool.allocate(bytes, tag_of(tag))});
    if (data != nullptr) *data = out->block.data();
    *block = out.release();
  });
}

void kiln_pinned_destroy(kiln_pinned* block) { delete block; }

kiln_status kiln_pinned_pool_get_stats(kiln_pinned_pool* pool, kiln_pinned_pool_stats* stats, kiln_error* error) {
  return c::guarded(error, "kiln_pinned_pool_get_stats", [&] {
    kiln_pinned_pool& p = c::need(pool, "kiln_pinned_pool_get_stats", "pool");
    kiln_pinned_pool_stats& caller = *c::need_pointer(stats, "kiln_pinned_pool_get_stats", "stats");
    kiln_pinned_pool_stats out{};
    const memory::PinnedPoolStats s = p.pool.stats();
    out.in_use = s.in_use;
    out.cached = s.cached;
    out.hits = s.hits;
    out.misses = s.misses;
    out.allocator_bytes = s.allocator_bytes;
    c::write_out(caller, out, "kiln_pinned_pool_get_stats");
  });
}

kiln_status kiln_managed_create(int device, size_t bytes, const char* tag, kiln_managed** buffer, uint64_t* address,
                                kiln_error* error) {
  return c::guarded(error, "kiln_managed_create", [&] {
    c::need_pointer(buffer, "kiln_managed_create", "buffer");
    *buffer = nullptr;
    refuse_zero(bytes, "kiln_managed_create");
    auto out = std::make_unique<kiln_managed>(kiln_managed{
        core::ManagedBuffer::allocate(core::Device::get(device).primary_context(), bytes, true, tag_of(tag)), device});
    if (address != nullptr) *address = out->buffer.data();
    *buffer = out.release();
  });
}

void kiln_managed_destroy(kiln_managed* buffer) { delete buffer; }

kiln_status kiln_managed_prefetch(kiln_managed* buffer, int to_host, kiln_stream* stream, kiln_error* error) {
  return c::guarded(error, "kiln_managed_prefetch", [&] {
    const kiln_managed& m = c::need(buffer, "kiln_managed_prefetch", "buffer");
    const kiln_stream& s = c::need(stream, "kiln_managed_prefetch", "stream");
    const core::Location to =
        to_host != 0 ? core::Location::host() : core::Location::device(core::Device::get(s.device).handle());
    m.buffer.prefetch(to, s.ref);
  });
}

kiln_status kiln_copy_to_device(kiln_stream* stream, uint64_t dst, const void* src, size_t bytes, kiln_error* error) {
  return c::guarded(error, "kiln_copy_to_device", [&] {
    const kiln_stream& s = c::need(stream, "kiln_copy_to_device", "stream");
    if (bytes == 0) return;
    c::need_pointer(src, "kiln_copy_to_device", "src");
    if (driver_visible(src)) {
      core::copy_async(static_cast<CUdeviceptr>(dst), src, bytes, s.ref);
      s.ref.synchronize();
    } else {
      memory::copy(static_cast<CUdeviceptr>(dst), src, bytes, s.ref);
    }
  });
}

kiln_status kiln_copy_to_host(kiln_stream* stream, void* dst, uint64_t src, size_t bytes, kiln_error* error) {
  return c::guarded(error, "kiln_copy_to_host", [&] {
    const kiln_stream& s = c::need(stream, "kiln_copy_to_host", "stream");
    if (bytes == 0) return;
    c::need_pointer(dst, "kiln_copy_to_host", "dst");
    if (driver_visible(dst)) {
      core::copy_async(dst, static_cast<CUdeviceptr>(src), bytes, s.ref);
      s.ref.synchronize();
    } else {
      memory::copy(dst, static_cast<CUdeviceptr>(src), bytes, s.ref);
    }
  });
}

kiln_status kiln_copy_to_device_async(kiln_stream* stream, uint64_t dst, const void* src, size_t bytes,
                                      kiln_error* error) {
  return c::guarded(error, "kiln_copy_to_device_async", [&] {
    const kiln_stream& s = c::need(stream, "kiln_copy_to_device_async", "stream");
    if (bytes == 0) return;
    c::need_pointer(src, "kiln_copy_to_device_async", "src");
    if (!driver_visible(src)) refuse_pageable("kiln_copy_to_device_async", src);
    core::copy_async(static_cast<CUdeviceptr>(dst), src, bytes, s.ref);
  });
}

kiln_status kiln_copy_to_host_async(kiln_stream* stream, void* dst, uint64_t src, size_t bytes, kiln_error* error) {
  return c::guarded(error, "kiln_copy_to_host_async", [&] {
    const kiln_stream& s = c::need(stream, "kiln_copy_to_host_async", "stream");
    if (bytes == 0) return;
    c::need_pointer(dst, "kiln_copy_to_host_async", "dst");
    if (!driver_visible(dst)) refuse_pageable("kiln_copy_to_host_async", dst);
    core::copy_async(dst, static_cast<CUdeviceptr>(src), bytes, s.ref);
  });
}

kiln_status kiln_memset_async(kiln_stream* stream, uint64_t dst, unsigned char value, size_t bytes,
                              kiln_error* error) {
  return c::guarded(error, "kiln_memset_async", [&] {
    const kiln_stream& s = c::need(stream, "kiln_memset_async", "stream");
    if (bytes == 0) return;
    core::memset8_async(static_cast<CUdeviceptr>(dst), value, bytes, s.ref);
  });
}

kiln_status kiln_allocation_report(char** text, uint64_t* live_bytes, kiln_error* error) {
  return c::guarded(error, "kiln_allocation_report", [&] {
    const auto& tracker = core::AllocationTracker::instance();
    if (text != nullptr) {
      std::ostringstream out;
      tracker.report(out);
      *text = c::duplicate(out.str());
    }
    if (live_bytes != nullptr) *live_bytes = tracker.live_bytes();
  });
}

}  // extern "C"
