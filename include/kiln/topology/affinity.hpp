// Keeping host work next to its GPU: bind a thread to the CPUs local to the GPU, and tell the
// pinned host pool which NUMA node to allocate from.
//
// Thread safety: bind_current_thread affects only the calling thread.
#pragma once

#include "kiln/topology/cpu_list.hpp"
#include "kiln/topology/topology.hpp"

namespace kiln::topology {

// Restricts the calling thread to the GPU's local CPUs that the thread may run on now (cgroups,
// taskset). Returns the CPUs it is bound to. Throws kiln::Error (invalid_argument) naming the GPU
// and both CPU lists when they share none, or the errno of sched_setaffinity.
CpuList bind_current_thread(const Gpu& gpu);

// The NUMA node host memory for this GPU should come from, or -1 when there is no single one
// (no NUMA information, or the GPU is local to several nodes).
int host_numa_node(const Gpu& gpu) noexcept;

// The calling thread's current CPU affinity.
CpuList current_thread_cpus();

}  // namespace kiln::topology
