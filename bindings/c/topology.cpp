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

kiln_status kiln_topology_choose(const char* fixture_dir, size_t k, uint64_t min_free_bytes, char** json,
                                 kiln_error* error) {
  return c::guarded(error, "kiln_topology_choose", [&] {
    c::need_pointer(json, "kiln_topology_choose", "json");
    topology::PlacementConstraints constraints;
    constraints.min_free_memory = min_free_bytes;
    *json = c::duplicate(topology::placement_to_json(topology::choose(discover(fixture_dir), k, constraints)));
  });
}

}  // extern "C"
