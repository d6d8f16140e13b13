#include "kiln/memory/managed_monitor.hpp"

#include <cupti_activity.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "driver/detail/dynamic_library.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::memory {
namespace {

struct Cupti {
  decltype(&::cuptiActivityConfigureUnifiedMemoryCounter) configure = nullptr;
  decltype(&::cuptiActivityEnable) enable = nullptr;
  decltype(&::cuptiActivityDisable) disable = nullptr;
  decltype(&::cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&::cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&::cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&::cuptiGetResultString) result_string = nullptr;
  std::string failure;
};

// libcupti from the toolkit NVRTC came from, then the loader's path.
const Cupti& cupti() {
  static const Cupti c = [] {
    Cupti c;
    std::vector<std::string> candidates;
    for (const std::string& root : driver::NvrtcSearch::from_environment().toolkit_roots)
      for (const char* sub : {"/lib64/", "/lib/", "/extras/CUPTI/lib64/", "/targets/x86_64-linux/lib/"})
        for (const char* name : {"libcupti.so.13", "libcupti.so.12"}) candidates.push_back(root + sub + name);
    candidates.push_back("libcupti.so.13");
    candidates.push_back("libcupti.so.12");
    void* handle = nullptr;
    for (const auto& candidate : candidates)
      if ((handle = driver::detail::open_library(candidate).handle)) break;
    if (!handle) {
      c.failure = "CUPTI (libcupti.so.13 or .12) was not found in the toolkit or on the loader's path";
      return c;
    }
    auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(driver::detail::find_symbol(handle, name));
      if (!fn && c.failure.empty()) c.failure = std::string("CUPTI lacks ") + name;
    };
    bind(c.configure, "cuptiActivityConfigureUnifiedMemoryCounter");
    bind(c.enable, "cuptiActivityEnable");
    bind(c.disable, "cuptiActivityDisable");
    bind(c.register_callbacks, "cuptiActivityRegisterCallbacks");
    bind(c.flush_all, "cuptiActivityFlushAll");
    bind(c.next_record, "cuptiActivityGetNextRecord");
    bind(c.result_string, "cuptiGetResultString");
    return c;
  }();
  return c;
}

std::string describe(CUptiResult r) {
  const char* s = nullptr;
  if (cupti().result_string) cupti().result_string(r, &s);
  return s ? s : "CUPTI error " + std::to_string(static_cast<int>(r));
}

// The unified memory counter record. CUDA 11.8's headers know it as version 2: its fields read
// here (kind, counterKind, value) are where version 3 has them, which the headers of CUDA 12 and
// later (where both are declared) check below.
#if CUDA_VERSION >= 12000
using UnifiedMemoryRecord = CUpti_ActivityUnifiedMemoryCounter3;
static_assert(offsetof(CUpti_ActivityUnifiedMemoryCounter3, counterKind) ==
              offsetof(CUpti_ActivityUnifiedMemoryCounter2, counterKind));
static_assert(offsetof(CUpti_ActivityUnifiedMemoryCounter3, value) == offsetof(CUpti_ActivityUnifiedMemoryCounter2, value));
#else
using UnifiedMemoryRecord = CUpti_ActivityUnifiedMemoryCounter2;
#endif

// CUPTI hands records over in buffers on its own threads; totals are kept here.
std::mutex g_mutex;
ManagedMemoryCounters g_totals;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  constexpr size_t kBytes = 1 << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBytes));
  *size = kBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::lock_guard lock(g_mutex);
  while (cupti().next_record(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_UNIFIED_MEMORY_COUNTER) continue;
    const auto* um = reinterpret_cast<const UnifiedMemoryRecord*>(record);
    ++g_totals.records;
    switch (um->counterKind) {
      case CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_BYTES_TRANSFER_HTOD: g_totals.bytes_host_to_device += um->value; break;
      case CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_BYTES_TRANSFER_DTOH: g_totals.bytes_device_to_host += um->value; break;
      // One record per CPU fault (its value is the faulting instruction's address); a GPU fault
      // record's value is the number of fault groups for its page.
      case CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_CPU_PAGE_FAULT_COUNT: ++g_totals.cpu_page_faults; break;
      case CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_GPU_PAGE_FAULT: g_totals.gpu_page_fault_groups += um->value; break;
      case CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_THRASHING: ++g_totals.thrashing_events; break;
      case CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_THROTTLING: ++g_totals.throttling_events; break;
      default: break;
    }
  }
  std::free(buffer);
}

}  // namespace

bool ManagedMemoryMonitor::start() {
  if (running_) return true;
  failure_.clear();
  const Cupti& c = cupti();
  if (!c.failure.empty()) {
    failure_ = c.failure;
    return false;
  }
  {
    std::lock_guard lock(g_mutex);
    g_totals = {};
  }
  CUpti_ActivityUnifiedMemoryCounterConfig config[5] = {};
  const CUpti_ActivityUnifiedMemoryCounterKind kinds[5] = {
      CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_BYTES_TRANSFER_HTOD,
      CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_BYTES_TRANSFER_DTOH,
      CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_CPU_PAGE_FAULT_COUNT,
      CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_GPU_PAGE_FAULT, CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_KIND_THRASHING};
  for (int i = 0; i < 5; ++i) {
    config[i].scope = CUPTI_ACTIVITY_UNIFIED_MEMORY_COUNTER_SCOPE_PROCESS_SINGLE_DEVICE;
    config[i].kind = kinds[i];
    config[i].deviceId = 0;
    config[i].enable = 1;
  }
  CUptiResult r = c.register_callbacks(&buffer_requested, &buffer_completed);
  if (r == CUPTI_SUCCESS) r = c.configure(config, 5);
  if (r == CUPTI_SUCCESS) r = c.enable(CUPTI_ACTIVITY_KIND_UNIFIED_MEMORY_COUNTER);
  if (r != CUPTI_SUCCESS) {
    failure_ = "CUPTI refused the unified memory counters here: " + describe(r);
    return false;
  }
  running_ = true;
  return true;
}

ManagedMemoryCounters ManagedMemoryMonitor::stop() {
  ManagedMemoryCounters out;
  if (!running_) {
    out.reason = failure_.empty() ? "the monitor was not started" : failure_;
    return out;
  }
  const Cupti& c = cupti();
  c.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  c.disable(CUPTI_ACTIVITY_KIND_UNIFIED_MEMORY_COUNTER);
  running_ = false;
  std::lock_guard lock(g_mutex);
  out = g_totals;
  out.supported = true;
  return out;
}

ManagedMemoryMonitor::~ManagedMemoryMonitor() {
  if (running_) stop();
}

}  // namespace kiln::memory
