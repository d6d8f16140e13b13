// `kiln topo`: the GPU topology of this machine (or of a recorded one) as nvidia-smi's matrix,
// JSON or an SVG picture; `--record DIR` captures this machine as a fixture; `--choose K` shows
// which GPUs placement would pick.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/topology/facts.hpp"
#include "kiln/topology/matrix.hpp"
#include "kiln/topology/placement.hpp"
#include "kiln/topology/svg.hpp"
#include "kiln/topology/topology.hpp"
#include "kiln/topology/topology_json.hpp"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

// No driver, or a driver without a GPU: nothing live to show (documented in --help and docs).
constexpr int kExitNoGpu = 3;

struct TopoOptions {
  bool json = false;
  std::string svg_file;
  std::string fixture;
  std::string sysfs_root;
  std::string facts_file;
  std::string record_dir;
  std::size_t choose = 0;
  double min_free_gib = 0;
};

// Why there is no GPU to look at, or empty when the driver found one.
std::string why_no_gpu() {
  const auto& state = driver::driver_state();
  if (!state.api) return "no NVIDIA driver (" + state.library.failure + ")";
  if (state.init_result != CUDA_SUCCESS) {
    const ErrorInfo* e = find_error(Domain::driver, state.init_result);
    return "cuInit failed with " + std::string(e ? e->name : "an unknown error");
  }
  int count = 0;
  if (state.api->cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) return "the driver reports no GPU";
  return {};
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw Error(Errc::invalid_argument, "cannot write " + path.string());
}

// Copies the sysfs files discovery reads into DIR/sysfs, as scripts/capture-topology does: the
// device symlink becomes "<bdf>.link" holding its target.
void mirror_sysfs(const topology::Topology& t, const fs::path& dir) {
  const fs::path root = t.sysfs_root();
  auto copy = [&](const std::string& live) {
    std::ifstream in(root / fs::path(live).relative_path(), std::ios::binary);
    if (!in) return;
    const fs::path dest = dir / "sysfs" / fs::path(live).relative_path();
    fs::create_directories(dest.parent_path());
    std::ofstream out(dest, std::ios::binary);
    out << in.rdbuf();
  };
  const char* files[] = {"vendor", "device", "class", "subsystem_vendor", "subsystem_device", "numa_node",
                         "local_cpulist", "local_cpus", "current_link_speed", "current_link_width",
                         "max_link_speed", "max_link_width"};
  for (const auto& g : t.gpus()) {
    std::string path = "/sys/devices/" + g.host_bridge;
    std::vector<std::string> dirs;
    for (auto it = g.upstream.rbegin(); it != g.upstream.rend(); ++it)
      dirs.push_back(path.append("/").append(it->address.to_string()));
    dirs.push_back(path.append("/").append(g.pci.to_string()));
    for (const auto& d : dirs)
      for (const char* f : files) copy(d + "/" + f);
    fs::create_directories(dir / "sysfs/sys/bus/pci/devices");
    write_file(dir / "sysfs/sys/bus/pci/devices" / (g.pci.to_string() + ".link"), path + "\n");
  }
  for (const auto& n : t.numa_nodes()) {
    copy("/sys/devices/system/node/node" + std::to_string(n.id) + "/cpulist");
    copy("/sys/devices/system/node/node" + std::to_string(n.id) + "/distance");
  }
  copy("/sys/devices/system/cpu/online");
}

int run(const TopoOptions& o) {
  topology::DiscoveryOptions discovery;
  if (!o.fixture.empty()) {
    discovery.sysfs_root = o.fixture + "/sysfs";
    discovery.facts = topology::load_facts(o.fixture + "/facts.json");
  }
  if (!o.sysfs_root.empty()) discovery.sysfs_root = o.sysfs_root;
  if (!o.facts_file.empty()) discovery.facts = topology::load_facts(o.facts_file);
  if (!discovery.facts) {
    if (const std::string why = why_no_gpu(); !why.empty()) {
      std::cerr << "kiln topo: no GPU to show: " << why
                << ".\nRun it on a machine with an NVIDIA GPU, or show a recorded one with --fixture DIR "
                   "(or --facts FILE with KILN_SYSFS_ROOT).\n";
      return kExitNoGpu;
    }
  }
  const topology::Topology t = topology::discover(std::move(discovery));

  if (!o.record_dir.empty()) {
    const fs::path dir = o.record_dir;
    fs::create_directories(dir);
    write_file(dir / "facts.json", topology::facts_to_json(t.facts()));
    mirror_sysfs(t, dir);
    std::cerr << "kiln topo: recorded " << t.gpus().size() << " GPUs into " << dir.string()
              << " (facts.json and sysfs/)\n";
  }
  if (!o.svg_file.empty()) write_file(o.svg_file, topology::render_svg(t));

  if (o.choose > 0) {
    topology::PlacementConstraints c;
    c.min_free_memory = static_cast<std::uint64_t>(o.min_free_gib * 1024.0 * 1024 * 1024);
    const topology::Placement p = topology::choose(t, o.choose, c);
    if (o.json) {
      std::cout << "{\"placement\": " << topology::placement_to_json(p) << "}\n";
    } else {
      for (const auto& g : p.gpus)
        std::cout << g.uuid << "  " << g.pci_bus_id << "  CUDA "
                  << (g.cuda_ordinal ? std::to_string(*g.cuda_ordinal) : std::string("-")) << "\n";
      std::cout << "why: " << p.reason << "\n";
    }
    return kExitOk;
  }
  if (o.json)
    std::cout << topology::topology_to_json(t) << "\n";
  else
    std::cout << topology::format_matrix(t);
  return kExitOk;
}

}  // namespace

void add_topo_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("topo", "Show the GPU topology: nvidia-smi's matrix, identities, JSON or a picture");
  cmd->footer(
      "Without --fixture or --facts it asks the live driver and NVML, and reads sysfs under KILN_SYSFS_ROOT "
      "(default /).\nExit codes: 0 success; 1 failed (bad fixture or sysfs tree, placement impossible); 2 bad usage; "
      "3 no GPU (no driver, or the driver sees none).");
  auto o = std::make_shared<TopoOptions>();
  cmd->add_flag("--json", o->json, "print the topology (or the placement) as JSON");
  cmd->add_option("--svg", o->svg_file, "also draw the machine into this SVG file");
  cmd->add_option("--fixture", o->fixture, "a recorded machine: DIR/sysfs and DIR/facts.json")->check(CLI::ExistingDirectory);
  cmd->add_option("--sysfs-root", o->sysfs_root, "the folder holding sys/ (overrides KILN_SYSFS_ROOT)");
  cmd->add_option("--facts", o->facts_file, "driver and NVML facts recorded as JSON, instead of the live driver");
  cmd->add_option("--record", o->record_dir, "write this machine's facts.json and sysfs mirror into DIR (a fixture)");
  cmd->add_option("--choose", o->choose, "print the K GPUs placement picks, and why")->check(CLI::PositiveNumber);
  cmd->add_option("--min-free-gib", o->min_free_gib, "with --choose: GiB each GPU must have free")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, &exit_code] {
    try {
      exit_code = run(*o);
    } catch (const Error& e) {
      std::cerr << "kiln topo: " << e.what() << "\n";
      exit_code = kExitProblems;
    } catch (const std::exception& e) {
      std::cerr << "kiln topo: " << e.what() << "\n";
      exit_code = kExitProblems;
    }
  });
}

}  // namespace kiln::cli
