#include "kiln/memory/direct_resource.hpp"

#include "core/detail/current.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "memory/detail/counters.hpp"

namespace kiln::memory {

struct DirectResource::State {
  explicit State(const core::Device& d) : device(d), context(d.primary_context()) {}
  core::Device device;
  core::ContextRef context;
  detail::Counters counters;
};

DirectResource::DirectResource(const core::Device& device)
    : state_(std::make_shared<State>(device)) {}

CUdeviceptr DirectResource::allocate(std::size_t bytes, const core::StreamRef&, std::string_view tag,
                                     std::source_location where) {
  if (!state_) throw Error(Errc::invalid_handle, "allocate() on an empty DirectResource");
  if (bytes == 0) throw Error(Errc::invalid_argument, "DirectResource::allocate of 0 bytes");
  state_->context.make_current();
  CUdeviceptr p = 0;
  CUresult r = driver::cuda().cuMemAlloc(&p, bytes);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) throw OutOfMemoryError(picture_of(state_->device, bytes, 0), "cuMemAlloc", where);
  driver::check(r, "cuMemAlloc", where);
  state_->counters.on_allocate(bytes);
  core::AllocationTracker::instance().add(p, bytes, core::AllocationKind::device, state_->device.ordinal(), tag, where);
  return p;
}

void DirectResource::deallocate(CUdeviceptr ptr, std::size_t bytes, const core::StreamRef&) noexcept {
  if (!state_ || !ptr) return;
  core::AllocationTracker::instance().remove(ptr);
  core::detail::DestructorContext in_context(state_->context.handle());
  driver::driver_state().api->cuMemFree(ptr);
  state_->counters.on_deallocate(bytes);
}

int DirectResource::device_ordinal() const noexcept { return state_ ? state_->device.ordinal() : -1; }

ResourceStats DirectResource::stats() const {
  if (!state_) return {};
  ResourceStats s = state_->counters.snapshot();
  s.reserved = s.in_use;
  for (auto& t : core::AllocationTracker::instance().usage_by_tag(state_->device.ordinal()))
    if (t.tag != "(untagged)") s.by_tag.push_back(t);
  return s;
}

}  // namespace kiln::memory
