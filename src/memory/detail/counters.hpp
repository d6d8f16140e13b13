// Lock-free allocation counters shared by the resources.
#pragma once

#include <atomic>
#include <cstddef>

#include "kiln/memory/resource.hpp"

namespace kiln::memory::detail {

struct Counters {
  std::atomic<std::size_t> in_use{0}, peak{0}, allocations{0}, deallocations{0};

  void on_allocate(std::size_t bytes) noexcept {
    const std::size_t now = in_use.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::size_t p = peak.load(std::memory_order_relaxed);
    while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
    }
    allocations.fetch_add(1, std::memory_order_relaxed);
  }
  void on_deallocate(std::size_t bytes) noexcept {
    in_use.fetch_sub(bytes, std::memory_order_relaxed);
    deallocations.fetch_add(1, std::memory_order_relaxed);
  }
  ResourceStats snapshot() const {
    ResourceStats s;
    s.in_use = in_use.load(std::memory_order_relaxed);
    s.peak = peak.load(std::memory_order_relaxed);
    s.allocations = allocations.load(std::memory_order_relaxed);
    s.deallocations = deallocations.load(std::memory_order_relaxed);
    return s;
  }
};

}  // namespace kiln::memory::detail
