// Copies between ordinary (pageable) host memory and the device at close to pinned speed. The
// driver copies pageable memory at 5.9 GB/s host-to-device and 10.2 GB/s device-to-host on the H100
// machine, against 53 GB/s from pinned memory: kiln stages the data through a ring of pinned
// buffers filled by several threads while the copy engine drains the previous chunks.
//
// Semantics match a normal copy on the stream: to_device() is ordered after earlier work on
// `stream` and later work sees the data; it returns once the host memory has been read, so the
// caller may free or reuse it at once. to_host() returns once the data is in host memory. Copies
// smaller than `direct_below` go straight to the driver, which is as fast for them.
//
// Thread safety: any number of threads may call a PageableCopier; large copies take turns (the
// staging engine runs one at a time, with all its threads).
#pragma once

#include <cuda.h>

#include <cstddef>
#include <memory>

#include "kiln/core/context.hpp"
#include "kiln/core/stream.hpp"

namespace kiln::memory {

// Defaults chosen by a sweep on the H200 machine (16 cores; bench_memory prints the sweep, and
// docs/PERF.md keeps it). The staging memory is workers x slots x chunk of pinned memory per context.
enum class HostStores {
  cached,     // memcpy
  streaming,  // non-temporal stores, past the caches
};

struct StagingOptions {
  std::size_t chunk_bytes = 4u << 20;
  unsigned workers = 0;  // 0: half the hardware threads, 1 to 8
  unsigned slots_per_worker = 2;
  std::size_t direct_below = 1u << 20;
  // How the host copies store: into the caller's memory (device-to-host) streaming stores win (no
  // read of the destination first); into a staging buffer they lose (the copy engine then reads
  // it from DRAM, not from cache).
  HostStores to_host_stores = HostStores::streaming;
  HostStores to_device_stores = HostStores::cached;
  // Smaller chunks at both ends of a copy (detail::plan_chunks): the copy engine and the host
  // copies overlap sooner and longer.
  bool ramp = true;
};

class PageableCopier {
 public:
  explicit PageableCopier(core::ContextRef context, StagingOptions options = {});
  ~PageableCopier();
  PageableCopier(const PageableCopier&) = delete;
  PageableCopier& operator=(const PageableCopier&) = delete;

  void to_device(CUdeviceptr dst, const void* src, std::size_t bytes, const core::StreamRef& stream);
  void to_host(void* dst, CUdeviceptr src, std::size_t bytes, const core::StreamRef& stream);

  const StagingOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The same, with the copier of the stream's context made on first use (one per context, shared).
void copy(CUdeviceptr dst, const void* src, std::size_t bytes, const core::StreamRef& stream);
void copy(void* dst, CUdeviceptr src, std::size_t bytes, const core::StreamRef& stream);

}  // namespace kiln::memory
