// Versions, the environment report, devices, topology and targets.
#include <pybind11/stl.h>

#include <memory>
#include <vector>

#include "native.hpp"

namespace kiln_python {
namespace {

// A string kiln allocated, as a Python str.
std::string take(char* s) {
  std::unique_ptr<char, decltype(&kiln_free)> owner(s, &kiln_free);
  return s != nullptr ? std::string(s) : std::string();
}

py::tuple target_tuple(const kiln_target& t) { return py::make_tuple(static_cast<int>(t.kind), t.arch); }

}  // namespace

void register_environment(py::module_& m) {
  m.def("version", [] { return std::string(kiln_version()); });
  m.def("abi_version", [] { return kiln_abi_version(); });
  m.def("environment_json", [] {
    char* json = nullptr;
    checked_nogil([&](kiln_error* e) { return kiln_environment_json(&json, e); });
    return take(json);
  });
  m.def("device_count", [] {
    int count = 0;
    checked([&](kiln_error* e) { return kiln_device_count(&count, e); });
    return count;
  });
  m.def("device_info", [](int ordinal) {
    kiln_device_info info{};
    info.size = sizeof info;
    checked([&](kiln_error* e) { return kiln_device_get_info(ordinal, &info, e); });
    py::dict d;
    d["ordinal"] = info.ordinal;
    d["name"] = std::string(info.name);
    d["uuid"] = std::string(info.uuid);
    d["pci_bus_id"] = std::string(info.pci_bus_id);
    d["compute_capability"] = py::make_tuple(info.cc_major, info.cc_minor);
    d["multiprocessors"] = info.multiprocessors;
    d["memory_total"] = info.memory_total;
    return d;
  });
  m.def("device_memory", [](int ordinal) {
    uint64_t free = 0, total = 0;
    checked([&](kiln_error* e) { return kiln_device_memory(ordinal, &free, &total, e); });
    return py::make_tuple(free, total);
  });
  m.def("target_parse", [](const std::string& text) {
    kiln_target t{};
    checked([&](kiln_error* e) { return kiln_target_parse(text.c_str(), &t, e); });
    return target_tuple(t);
  });
  m.def("target_for_device", [](int ordinal) {
    kiln_target t{};
    checked([&](kiln_error* e) { return kiln_target_for_device(ordinal, &t, e); });
    return target_tuple(t);
  });
  m.def("topology_json", [](const std::string& fixture) {
    char* json = nullptr;
    checked_nogil([&](kiln_error* e) {
      return kiln_topology_json(fixture.empty() ? nullptr : fixture.c_str(), &json, e);
    });
    return take(json);
  });
  m.def("topology_choose", [](const std::string& fixture, std::size_t k, uint64_t min_free_bytes, int numa_node,
                              const std::vector<std::string>& exclude) {
    kiln_placement_constraints c{};
    kiln_placement_constraints_init(&c);
    c.min_free_bytes = min_free_bytes;
    c.numa_node = numa_node;
    std::vector<const char*> excluded;
    for (const auto& x : exclude) excluded.push_back(x.c_str());
    c.exclude = excluded.data();
    c.exclude_count = excluded.size();
    char* json = nullptr;
    checked_nogil([&](kiln_error* e) {
      return kiln_topology_choose(fixture.empty() ? nullptr : fixture.c_str(), k, &c, &json, e);
    });
    return take(json);
  });
  m.def("allocation_report", [] {
    char* text = nullptr;
    uint64_t live = 0;
    checked([&](kiln_error* e) { return kiln_allocation_report(&text, &live, e); });
    return py::make_tuple(take(text), live);
  });
}

}  // namespace kiln_python
