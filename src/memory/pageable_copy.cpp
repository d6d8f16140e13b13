#include "kiln/memory/pageable_copy.hpp"

#include <algorithm>
#include <map>
#include <thread>
#include <mutex>

#include "kiln/core/event.hpp"
#include "kiln/core/memory.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/memory/detail/staging_engine.hpp"
#include "kiln/memory/detail/streaming_copy.hpp"

namespace kiln::memory {

using driver::check;
using driver::cuda;

namespace {

struct DriverBackend {
  core::ContextRef context;
  struct Slot {
    core::PinnedBuffer buffer;
    core::Event done;
  };
  Slot make_slot(std::size_t bytes) {
    return {core::PinnedBuffer::allocate(context, bytes, {.portable = true}, "kiln staging"), core::Event::create(context)};
  }
  void* staging(Slot& s) { return s.buffer.data(); }
  void bind_thread() { context.make_current(); }
  void to_device(CUstream stream, std::uint64_t dst, const void* src, std::size_t n) {
    check(cuda().cuMemcpyHtoDAsync(dst, src, n, stream), "cuMemcpyHtoDAsync");
  }
  void to_host(CUstream stream, void* dst, std::uint64_t src, std::size_t n) {
    check(cuda().cuMemcpyDtoHAsync(dst, src, n, stream), "cuMemcpyDtoHAsync");
  }
  void mark(Slot& s, CUstream stream) { check(cuda().cuEventRecord(s.done.handle(), stream), "cuEventRecord"); }
  void wait(Slot& s) {
    if (const auto* api = driver::driver_state().api) api->cuEventSynchronize(s.done.handle());
  }
};

}  // namespace

struct PageableCopier::Impl {
  core::ContextRef context;
  StagingOptions options;
  detail::StagingEngine<DriverBackend, CUstream> engine;
};

PageableCopier::PageableCopier(core::ContextRef context, StagingOptions options) {
  if (options.chunk_bytes == 0) throw Error(Errc::invalid_argument, "StagingOptions::chunk_bytes must be > 0");
  if (options.workers == 0) options.workers = std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u);
  auto copy_for = [](HostStores stores) -> detail::CopyFunction {
    switch (stores) {
      case HostStores::streaming: return detail::streaming_copy;
      case HostStores::cached: break;
    }
    return detail::plain_copy;
  };
  const detail::HostCopies copies{copy_for(options.to_device_stores), copy_for(options.to_host_stores)};
  impl_.reset(new Impl{context, options,
                       {DriverBackend{context}, options.workers, options.slots_per_worker,
                        options.chunk_bytes, copies, options.ramp}});
}

PageableCopier::~PageableCopier() = default;

const StagingOptions& PageableCopier::options() const noexcept { return impl_->options; }

void PageableCopier::to_device(CUdeviceptr dst, const void* src, std::size_t bytes, const core::StreamRef& stream) {
  if (bytes == 0) return;
  impl_->context.make_current();
  if (bytes < impl_->options.direct_below) {
    // The driver stages small pageable copies itself and returns once the source is read.
    check(cuda().cuMemcpyHtoDAsync(dst, src, bytes, stream.handle()), "cuMemcpyHtoDAsync");
    return;
  }
  impl_->engine.copy(detail::Direction::to_device, const_cast<void*>(src), dst, bytes, stream.handle());
}

void PageableCopier::to_host(void* dst, CUdeviceptr src, std::size_t bytes, const core::StreamRef& stream) {
  if (bytes == 0) return;
  impl_->context.make_current();
  if (bytes < impl_->options.direct_below) {
    check(cuda().cuMemcpyDtoHAsync(dst, src, bytes, stream.handle()), "cuMemcpyDtoHAsync");
    check(cuda().cuStreamSynchronize(stream.handle()), "cuStreamSynchronize");
    return;
  }
  impl_->engine.copy(detail::Direction::to_host, dst, src, bytes, stream.handle());
}

namespace {

PageableCopier& copier_for(const core::StreamRef& stream) {
  static std::mutex mutex;
  static std::map<CUcontext, std::unique_ptr<PageableCopier>> copiers;
  if (!stream.context()) throw Error(Errc::invalid_argument, "memory::copy needs a stream that names its context");
  std::lock_guard lock(mutex);
  auto& c = copiers[stream.context().handle()];
  if (!c) c = std::make_unique<PageableCopier>(stream.context());
  return *c;
}

}  // namespace

void copy(CUdeviceptr dst, const void* src, std::size_t bytes, const core::StreamRef& stream) {
  copier_for(stream).to_device(dst, src, bytes, stream);
}

void copy(void* dst, CUdeviceptr src, std::size_t bytes, const core::StreamRef& stream) {
  copier_for(stream).to_host(dst, src, bytes, stream);
}

}  // namespace kiln::memory
