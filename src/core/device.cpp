#include "kiln/core/device.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {
namespace {

using driver::check;
using driver::cuda;

// Retains each device's primary context once, on first use, and releases it at process end.
// cuda-api-wrappers has had repeated reference-count bugs here: one retain, one release, per device.
class PrimaryContextRegistry {
 public:
  static PrimaryContextRegistry& instance() {
    static PrimaryContextRegistry registry;
    return registry;
  }

  CUcontext get(int ordinal, CUdevice device) {
    Slot& slot = slots_[static_cast<size_t>(ordinal)];
    if (CUcontext c = slot.context.load(std::memory_order_acquire)) return c;
    std::call_once(slot.once, [&] {
      CUcontext c = nullptr;
      check(cuda().cuDevicePrimaryCtxRetain(&c, device), "cuDevicePrimaryCtxRetain");
      slot.device = device;
      slot.context.store(c, std::memory_order_release);
    });
    return slot.context.load(std::memory_order_acquire);
  }

  ~PrimaryContextRegistry() {
    // At process end the driver may already be tearing down: errors are ignored.
    const auto* api = driver::driver_state().api;
    for (Slot& slot : slots_)
      if (slot.context.load() && api) api->cuDevicePrimaryCtxRelease(slot.device);
  }

 private:
  struct Slot {
    std::once_flag once;
    std::atomic<CUcontext> context{nullptr};
    CUdevice device = 0;
  };
  PrimaryContextRegistry() : slots_(static_cast<size_t>(Device::count())) {}
  std::vector<Slot> slots_;
};

}  // namespace

int Device::count() {
  int n = 0;
  check(cuda().cuDeviceGetCount(&n), "cuDeviceGetCount");
  return n;
}

Device Device::get(int ordinal) {
  CUdevice handle = 0;
  check(cuda().cuDeviceGet(&handle, ordinal), "cuDeviceGet");
  return Device(ordinal, handle);
}

Device Device::current() {
  CUdevice handle = 0;
  check(cuda().cuCtxGetDevice(&handle, nullptr), "cuCtxGetDevice");
  // CUdevice values are ordinals in every driver to date; look it up to be sure.
  for (int i = 0, n = count(); i < n; ++i) {
    Device d = get(i);
    if (d.handle_ == handle) return d;
  }
  throw Error(Errc::internal, "the current context's device is not among cuDeviceGet's devices");
}

std::string Device::name() const {
  char buf[256] = {};
  check(cuda().cuDeviceGetName(buf, sizeof buf, handle_), "cuDeviceGetName");
  return buf;
}

std::string Device::uuid() const {
  CUuuid u{};
  check(cuda().cuDeviceGetUuid(&u, handle_), "cuDeviceGetUuid");
  return driver::format_uuid(u);
}

std::string Device::pci_bus_id() const {
  char buf[32] = {};
  check(cuda().cuDeviceGetPCIBusId(buf, sizeof buf, handle_), "cuDeviceGetPCIBusId");
  return buf;
}

int Device::attribute(CUdevice_attribute attribute) const {
  int v = 0;
  check(cuda().cuDeviceGetAttribute(&v, attribute, handle_), "cuDeviceGetAttribute");
  return v;
}

int Device::compute_capability_major() const { return attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR); }
int Device::compute_capability_minor() const { return attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR); }
int Device::multiprocessor_count() const { return attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT); }
int Device::max_threads_per_block() const { return attribute(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK); }

std::size_t Device::total_memory() const {
  size_t bytes = 0;
  check(cuda().cuDeviceTotalMem(&bytes, handle_), "cuDeviceTotalMem");
  return bytes;
}

std::pair<std::size_t, std::size_t> Device::memory_info() const {
  CurrentContextGuard guard(primary_context());
  size_t free = 0, total = 0;
  check(cuda().cuMemGetInfo(&free, &total), "cuMemGetInfo");
  return {free, total};
}

bool Device::can_access_peer(const Device& peer) const {
  int can = 0;
  check(cuda().cuDeviceCanAccessPeer(&can, handle_, peer.handle_), "cuDeviceCanAccessPeer");
  return can != 0;
}

ContextRef Device::primary_context() const {
  return {PrimaryContextRegistry::instance().get(ordinal_, handle_), handle_};
}

}  // namespace kiln::core
