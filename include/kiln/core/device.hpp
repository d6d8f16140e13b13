// A GPU as CUDA numbers it, with its attributes and its primary context.
//
// Thread safety: Device is a value; every member may be called from any thread. The primary
// context is retained once per device per process by a registry (first use, thread-safe) and
// released when the process ends.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <string>

#include "kiln/core/context.hpp"

namespace kiln::core {

class Device {
 public:
  static int count();
  // Throws kiln::Error (CUDA_ERROR_INVALID_DEVICE) for an ordinal outside [0, count()).
  static Device get(int ordinal);
  // The device of the context current on this thread.
  static Device current();

  int ordinal() const noexcept { return ordinal_; }
  CUdevice handle() const noexcept { return handle_; }

  std::string name() const;
  std::string uuid() const;        // "GPU-xxxxxxxx-...", as nvidia-smi prints it
  std::string pci_bus_id() const;  // "0000:00:06.0"
  int attribute(CUdevice_attribute attribute) const;
  int compute_capability_major() const;
  int compute_capability_minor() const;
  int multiprocessor_count() const;
  int max_threads_per_block() const;
  std::size_t total_memory() const;
  // Free and total bytes as the primary context sees them (cuMemGetInfo).
  std::pair<std::size_t, std::size_t> memory_info() const;
  bool can_access_peer(const Device& peer) const;

  // Retained once per process; valid until the process ends.
  ContextRef primary_context() const;

  friend bool operator==(const Device& a, const Device& b) noexcept { return a.handle_ == b.handle_; }

 private:
  Device(int ordinal, CUdevice handle) : ordinal_(ordinal), handle_(handle) {}
  int ordinal_ = 0;
  CUdevice handle_ = 0;
};

}  // namespace kiln::core
