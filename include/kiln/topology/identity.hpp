// Which GPU is CUDA device N? CUDA numbers devices "fastest first" unless
// CUDA_DEVICE_ORDER=PCI_BUS_ID, and only those CUDA_VISIBLE_DEVICES names, in its order; NVML
// and nvidia-smi number every GPU by PCI bus id. This maps CUDA ordinals to UUIDs and bus ids the
// way the CUDA driver does, so that the mapping can be computed for any environment.
//
// Thread safety: pure functions over values.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kiln/topology/facts.hpp"

namespace kiln::topology {

enum class DeviceOrder { fastest_first, pci_bus_id };

// CUDA_DEVICE_ORDER: "PCI_BUS_ID" selects bus order; unset or any other value is CUDA's default,
// FASTEST_FIRST.
DeviceOrder parse_device_order(const std::optional<std::string>& value) noexcept;

struct CudaDevice {
  int ordinal = 0;
  std::string gpu_uuid;                 // the physical GPU
  std::string pci_bus_id;               // canonical "0000:3b:00.0"
  std::optional<std::string> mig_uuid;  // when this CUDA device is a MIG instance
};

struct VisibleDevices {
  std::vector<CudaDevice> devices;  // by CUDA ordinal
  // Why fewer devices are visible than were named (an invalid entry truncates the list, as
  // CUDA does), or how the base order was guessed. Empty when there is nothing to say.
  std::vector<std::string> notes;
};

// CUDA_VISIBLE_DEVICES entries, separated by commas: an index into the order CUDA_DEVICE_ORDER
// selects; "GPU-<uuid>" or any unique prefix of it; "MIG-<uuid>" or the legacy
// "MIG-GPU-<uuid>/<gpu instance>/<compute instance>". The first invalid, ambiguous, unknown or
// repeated entry ends the list: only the devices before it are visible. Unset means every GPU;
// set but empty means none.
//
// The fastest-first order is what the facts recorded when the recording process ran with the
// default environment; otherwise PCI bus order is assumed (exact for identical GPUs), and a note
// says so.
VisibleDevices resolve_cuda_devices(const MachineFacts& facts, const CudaEnvironment& env);

// This process's CUDA_DEVICE_ORDER and CUDA_VISIBLE_DEVICES.
CudaEnvironment current_cuda_environment();

}  // namespace kiln::topology
