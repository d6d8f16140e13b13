// Out-of-memory as its own error type, with the facts a service needs to decide and a person needs
// to understand (in the manner of PyTorch's message): requested, free, reserved and in-use bytes
// and the tags holding the most. And admission: refuse a job before it starts when it cannot fit.
//
// Thread safety: values; estimate_available() and admit() may be called from any thread.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

#include "kiln/core/allocation_tracker.hpp"
#include "kiln/core/device.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/memory/resource.hpp"

namespace kiln::memory {

struct MemoryPicture {
  int device = 0;
  std::string device_name;
  std::size_t requested = 0;
  std::size_t free = 0;      // cuMemGetInfo
  std::size_t total = 0;
  std::size_t reserved = 0;  // held by kiln's pools
  std::size_t in_use = 0;    // handed out by kiln (every kind, this device)
  std::vector<core::TagUsage> top_tags;
};

// A kiln::Error with code CUDA_ERROR_OUT_OF_MEMORY (so code that matches the driver's code still
// works) and the picture of the device's memory.
class OutOfMemoryError : public Error {
 public:
  OutOfMemoryError(MemoryPicture picture, std::string call,
                   std::source_location where = std::source_location::current());
  const MemoryPicture& picture() const noexcept { return picture_; }

 private:
  MemoryPicture picture_;
};

std::string describe(const MemoryPicture& picture);

// Free device memory plus what pools hold but do not use: what a new job could get.
struct AvailableMemory {
  std::size_t free = 0;
  std::size_t pool_slack = 0;  // reserved minus in use, summed over the pools given
  std::size_t total() const { return free + pool_slack; }
};

class PoolResource;
AvailableMemory estimate_available(const core::Device& device, std::initializer_list<const PoolResource*> pools = {});
// Throws OutOfMemoryError when `bytes` cannot fit.
void admit(const core::Device& device, std::size_t bytes, std::initializer_list<const PoolResource*> pools = {},
           std::source_location where = std::source_location::current());

// The picture of `device` now, for a request of `requested` bytes.
MemoryPicture picture_of(const core::Device& device, std::size_t requested, std::size_t pool_reserved);

}  // namespace kiln::memory
