#include "kiln/topology/affinity.hpp"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "kiln/driver/error.hpp"

namespace kiln::topology {
namespace {

// A CPU set sized for `cpus` CPUs (glibc's cpu_set_t stops at 1024).
struct DynamicCpuSet {
  explicit DynamicCpuSet(int cpus) : count(cpus), size(CPU_ALLOC_SIZE(cpus)), set(CPU_ALLOC(cpus)) {
    if (!set) throw Error(Errc::internal, "CPU_ALLOC failed for " + std::to_string(cpus) + " CPUs");
    CPU_ZERO_S(size, set.get());
  }
  struct Free {
    void operator()(cpu_set_t* s) const noexcept { CPU_FREE(s); }
  };
  int count;
  std::size_t size;
  std::unique_ptr<cpu_set_t, Free> set;
};

}  // namespace

CpuList current_thread_cpus() {
  for (int cpus = 1024;; cpus *= 2) {
    DynamicCpuSet s(cpus);
    if (sched_getaffinity(0, s.size, s.set.get()) == 0) {
      std::vector<int> ids;
      for (int i = 0; i < cpus; ++i)
        if (CPU_ISSET_S(i, s.size, s.set.get())) ids.push_back(i);
      return CpuList(std::move(ids));
    }
    if (errno != EINVAL || cpus > (1 << 20))
      throw Error(Errc::internal, std::string("sched_getaffinity failed: ") + std::strerror(errno));
  }
}

CpuList bind_current_thread(const Gpu& gpu) {
  const CpuList allowed = current_thread_cpus();
  const CpuList target = gpu.cpus.intersection(allowed);
  if (target.empty())
    throw Error(Errc::invalid_argument, "cannot bind to GPU " + gpu.uuid + " (" + gpu.pci.to_string() +
                                            "): its local CPUs " + (gpu.cpus.empty() ? "(unknown)" : gpu.cpus.to_string()) +
                                            " share none with this thread's allowed CPUs " + allowed.to_string());
  DynamicCpuSet s(target.ids().back() + 1);
  for (int id : target.ids()) CPU_SET_S(id, s.size, s.set.get());
  if (sched_setaffinity(0, s.size, s.set.get()) != 0)
    throw Error(Errc::internal, "sched_setaffinity to CPUs " + target.to_string() + " for GPU " + gpu.uuid +
                                    " failed: " + std::strerror(errno));
  return target;
}

int host_numa_node(const Gpu& gpu) noexcept {
  if (gpu.numa_node >= 0) return gpu.numa_node;
  return gpu.numa_affinity.size() == 1 ? gpu.numa_affinity.ids().front() : -1;
}

}  // namespace kiln::topology
