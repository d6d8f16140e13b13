// Synchronous device allocation (cuMemAlloc / cuMemFree) as a memory resource: no caching, the
// stream argument is ignored. The baseline, and right for large, long-lived buffers.
#pragma once

#include <memory>

#include "kiln/core/device.hpp"
#include "kiln/memory/resource.hpp"

namespace kiln::memory {

class DirectResource {
 public:
  explicit DirectResource(const core::Device& device);
  DirectResource() = default;

  CUdeviceptr allocate(std::size_t bytes, const core::StreamRef& stream, std::string_view tag = {},
                       std::source_location where = std::source_location::current());
  void deallocate(CUdeviceptr ptr, std::size_t bytes, const core::StreamRef& stream) noexcept;
  int device_ordinal() const noexcept;
  ResourceStats stats() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

static_assert(DeviceMemoryResource<DirectResource>);

}  // namespace kiln::memory
