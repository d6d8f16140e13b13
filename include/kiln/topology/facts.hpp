// What the CUDA driver and NVML say about a machine's GPUs: identities, memory, NVLinks, peer
// access and MIG instances. Discovery joins these facts with the PCIe tree read from sysfs.
//
// The facts come either from the live driver (record_live_facts) or from a JSON file in the
// format "kiln-topology-facts/1" (docs/TOPOLOGY.md), so that a machine recorded once with
// `kiln topo --record DIR` serves as a test fixture anywhere.
//
// Thread safety: value types. record_live_facts() may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::topology {

inline constexpr std::string_view kFactsFormat = "kiln-topology-facts/1";

// What is at the far end of one NVLink (nvmlIntNvLinkDeviceType_t).
enum class NvLinkPeerType { gpu, switch_, ibm_npu, unknown };

std::string_view to_string(NvLinkPeerType type) noexcept;

struct NvLinkFacts {
  int link = 0;                  // the link's index on this GPU
  std::string remote_pci_bus_id; // canonical "0000:3b:00.0": a GPU's or an NVSwitch's
  NvLinkPeerType remote_type = NvLinkPeerType::unknown;
};

struct MigInstance {
  std::string uuid;  // "MIG-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  int gpu_instance = 0;
  int compute_instance = 0;
  std::string name;  // "1g.10gb", when known
  std::uint64_t memory_total = 0;
};

struct GpuFacts {
  std::string uuid;        // "GPU-xxxxxxxx-...", as nvidia-smi prints it
  std::string pci_bus_id;  // canonical "0000:3b:00.0"
  std::string name;        // "NVIDIA H100 80GB HBM3"
  std::string compute_capability;  // "9.0"
  std::uint64_t memory_total = 0;  // bytes
  std::optional<std::uint64_t> memory_free;  // bytes, when it was measured
  std::optional<int> nvml_index;             // NVML's (and nvidia-smi's) index
  // The ordinal CUDA gave this GPU in the recording process, whose CUDA_DEVICE_ORDER and
  // CUDA_VISIBLE_DEVICES are MachineFacts::cuda_env. Empty when it was not visible to CUDA.
  std::optional<int> cuda_ordinal;
  std::vector<NvLinkFacts> nvlinks;  // active links only
  bool mig_enabled = false;
  std::vector<MigInstance> mig_instances;
};

// cuDeviceGetP2PAttribute between two GPUs (from `a` to `b`).
struct P2pFacts {
  std::string a;  // UUIDs
  std::string b;
  bool access_supported = false;
  int performance_rank = 0;  // lower is faster
  bool native_atomics = false;
  bool cuda_array_access = false;
};

struct CudaEnvironment {
  std::optional<std::string> device_order;     // CUDA_DEVICE_ORDER, when set
  std::optional<std::string> visible_devices;  // CUDA_VISIBLE_DEVICES, when set
  bool is_default() const noexcept { return !device_order && !visible_devices; }
};

struct MachineFacts {
  std::string source;          // "recorded by kiln 0.1.0 on host ...", or how it was built
  std::string driver_version;  // "580.159.04"; empty when unknown
  int cuda_driver_version = 0; // 13000; 0 when unknown
  CudaEnvironment cuda_env;    // the recording process's environment
  std::vector<GpuFacts> gpus;
  std::vector<P2pFacts> p2p;

  const GpuFacts* find_by_uuid(std::string_view uuid) const noexcept;
  const P2pFacts* find_p2p(std::string_view a, std::string_view b) const noexcept;
};

// JSON text ⇄ facts. Parsing throws kiln::Error (invalid_argument) naming `origin` (a file name)
// and the field that is missing or wrong.
MachineFacts parse_facts(std::string_view json_text, std::string_view origin = "facts");
std::string facts_to_json(const MachineFacts& facts);
MachineFacts load_facts(const std::string& path);  // throws naming `path` when it cannot be read

// Asks the live driver (identities, memory, P2P attributes) and NVML when present (NVML index,
// NVLinks, MIG, free memory). Throws kiln::Error when there is no driver or no GPU. Makes no
// CUDA context: nothing here costs GPU memory.
MachineFacts record_live_facts();

}  // namespace kiln::topology
