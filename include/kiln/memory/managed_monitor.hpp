// What managed (unified) memory costs: page faults and migrations, counted by CUPTI's unified
// memory counters while a monitor runs. CUPTI is loaded at run time (libcupti from the toolkit);
// where the platform refuses the counters (some virtual machines, MIG, missing CUPTI), the monitor
// says so instead of failing.
//
// Thread safety: one monitor at a time per process (CUPTI's activity API is process-wide);
// start()/stop() from one thread.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::memory {

struct ManagedMemoryCounters {
  bool supported = false;
  std::string reason;  // why not, when unsupported
  std::uint64_t bytes_host_to_device = 0;
  std::uint64_t bytes_device_to_host = 0;
  std::uint64_t cpu_page_faults = 0;
  std::uint64_t gpu_page_fault_groups = 0;
  std::uint64_t thrashing_events = 0;
  std::uint64_t throttling_events = 0;
  std::uint64_t records = 0;
};

class ManagedMemoryMonitor {
 public:
  ManagedMemoryMonitor() = default;
  ~ManagedMemoryMonitor();
  ManagedMemoryMonitor(const ManagedMemoryMonitor&) = delete;
  ManagedMemoryMonitor& operator=(const ManagedMemoryMonitor&) = delete;

  // Starts counting. Returns false (and stop() reports why) when the platform does not allow it.
  bool start();
  // Flushes CUPTI's buffers and returns the totals since start().
  ManagedMemoryCounters stop();

 private:
  bool running_ = false;
  std::string failure_;
};

}  // namespace kiln::memory
