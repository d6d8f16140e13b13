// Topology and placement, as JSON.
#include "c/detail/boundary.hpp"
#include "kiln/topology/placement.hpp"
#include "kiln/topology/topology.hpp"
#include "kiln/topology/topology_json.hpp"

using namespace kiln;

namespace {

topology::Topology discover(const char* fixture_dir) {
  return fixture_dir != nullptr && *fixture_dir != '\0' ? topology::discover_fixture(fixture_dir)
                                                        : topology::discover();
}

}  // namespace

extern "C" {

kiln_status kiln_topology_json(const char* fixture_dir, char** json, kiln_error* error) {
  return c::guarded(error, "kiln_topology_json", [&] {
    c::need_pointer(json, "kiln_topology_json", "json");
    *json = c::duplicate(topology::topology_to_json(discover(fixture_dir)));
  });
}

void kiln_placement_constraints_init(kiln_placement_constraints* constraints) {
  if (constraints == nullptr) return;
  *constraints = kiln_placement_constraints{};
  constraints->size = sizeof(kiln_placement_constraints);
  constraints->numa_node = -1;
}

kiln_status kiln_topology_choose(const char* fixture_dir, size_t k, const kiln_placement_constraints* constraints,
                                 char** json, kiln_error* error) {
  return c::guarded(error, "kiln_topology_choose", [&] {
    c::need_pointer(json, "kiln_topology_choose", "json");
    topology::PlacementConstraints wanted;
    if (constraints != nullptr) {
      const kiln_placement_constraints& in = *constraints;
      if (KILN_C_HAS(in, min_free_bytes)) wanted.min_free_memory = in.min_free_bytes;
      if (KILN_C_HAS(in, numa_node) && in.numa_node >= 0) wanted.numa_node = in.numa_node;
      if (KILN_C_HAS(in, exclude_count) && in.exclude_count > 0) {
        c::need_pointer(in.exclude, "kiln_topology_choose", "constraints->exclude");
        for (std::size_t i = 0; i < in.exclude_count; ++i)
          wanted.exclude.emplace_back(
              c::need_pointer(in.exclude[i], "kiln_topology_choose", "constraints->exclude[i]"));
      }
    }
    *json = c::duplicate(topology::placement_to_json(topology::choose(discover(fixture_dir), k, wanted)));
  });
}

}  // extern "C"
