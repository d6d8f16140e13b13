// `kiln doctor`: the GPU software stack of this machine, every problem found and its hint.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/environment_json.hpp"

namespace kiln::cli {
namespace {

using driver::EnvironmentReport;
using driver::LibraryReport;

std::string arch_name(int arch) { return "sm_" + std::to_string(arch); }

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

void print_library(std::ostream& out, const char* label, const LibraryReport& lib, const std::string& extra = {}) {
  out << label;
  if (lib.found)
    out << (lib.version.empty() ? "(version unknown)" : lib.version) << "  " << lib.path << extra << "\n";
  else
    out << "not found: " << lib.failure << "\n";
}

void print_text(std::ostream& out, const EnvironmentReport& r) {
  out << "kiln " << r.kiln_version << " (built for CUDA " << driver::format_cuda_version(r.built_cuda_version)
      << ") on " << r.os << " " << r.arch << "\n\n";
  print_library(out, "Driver   ", r.driver,
                r.driver_cuda_version ? "  (supports CUDA " + driver::format_cuda_version(r.driver_cuda_version) + ")"
                                      : std::string());
  print_library(out, "NVRTC    ", r.nvrtc);
  if (!r.nvrtc_archs.empty()) {
    out << "         architectures:";
    for (int a : r.nvrtc_archs) out << " " << arch_name(a);
    out << "\n";
  }
  print_library(out, "NVML     ", r.nvml);
  print_library(out, "nvJitLink", r.nvjitlink);
  out << "Toolkit  " << (r.toolkit_root.empty() ? "(none)" : r.toolkit_root)
      << "  include: " << (r.toolkit_include ? "yes" : "no") << "  include/cccl: " << (r.toolkit_cccl ? "yes" : "no")
      << "\n\n";
  out << "GPUs (" << r.gpus.size() << ")  CUDA_DEVICE_ORDER="
      << (r.cuda_device_order.empty() ? "FASTEST_FIRST (default)" : r.cuda_device_order)
      << "  CUDA_VISIBLE_DEVICES=" << (r.cuda_visible_devices_set ? r.cuda_visible_devices : "(unset)") << "\n";
  for (const auto& g : r.gpus)
    out << "  cuda " << g.ordinal << " / nvidia-smi "
        << (g.nvml_index >= 0 ? std::to_string(g.nvml_index) : std::string("?")) << "  " << g.name << "  sm_" << g.cc_major << g.cc_minor << "  " << g.uuid << "  "
        << g.pci_bus_id << "  " << g.multiprocessors << " SMs  " << gib(g.memory_total) << " total, "
        << gib(g.memory_free) << " free  NVRTC can compile for it: " << (g.nvrtc_can_compile ? "yes" : "no")
        << "\n";
  if (r.gpus.empty()) out << "  none\n";
  out << "\n";
  for (const auto& n : r.notes) {
    out << "Note [" << n.id << "] " << n.message << "\n";
    if (!n.hint.empty()) out << "    hint: " << n.hint << "\n";
  }
  if (!r.notes.empty()) out << "\n";
  if (r.problems.empty()) {
    out << "No problems found.\n";
    return;
  }
  out << "Problems (" << r.problems.size() << ")\n";
  for (const auto& p : r.problems) {
    out << "  [" << p.id << "] " << p.message << "\n";
    if (!p.hint.empty()) out << "    hint: " << p.hint << "\n";
  }
}

}  // namespace

void add_doctor_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("doctor", "Check the driver, NVRTC, NVML, the toolkit and every GPU");
  cmd->footer(
      "Exit codes: 0 healthy; 1 problems found (no driver or no GPU counts as a problem); 2 bad usage.");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print the report as JSON");
  cmd->callback([json, &exit_code] {
    const EnvironmentReport report = driver::probe_environment();
    if (*json)
      std::cout << driver::environment_to_json(report) << "\n";
    else
      print_text(std::cout, report);
    exit_code = report.healthy() ? kExitOk : kExitProblems;
  });
}

}  // namespace kiln::cli
