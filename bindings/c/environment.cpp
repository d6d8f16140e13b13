// The environment probe and device facts.
#include <cstring>

#include "c/detail/boundary.hpp"
#include "kiln/core/device.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/environment_json.hpp"
#include "kiln/jit/target.hpp"

using namespace kiln;

namespace {

template <std::size_t N>
void copy_text(char (&field)[N], const std::string& text) {
  const std::size_t n = std::min(text.size(), N - 1);
  std::memcpy(field, text.data(), n);
  field[n] = '\0';
}

kiln_target to_c(const jit::Target& t) {
  return kiln_target{t.kind == jit::ImageKind::ptx ? KILN_IMAGE_PTX : KILN_IMAGE_CUBIN, t.arch};
}

}  // namespace

extern "C" {

kiln_status kiln_environment_json(char** json, kiln_error* error) {
  return c::guarded(error, "kiln_environment_json", [&] {
    c::need_pointer(json, "kiln_environment_json", "json");
    *json = c::duplicate(driver::environment_to_json(driver::probe_environment()));
  });
}

kiln_status kiln_device_count(int* count, kiln_error* error) {
  return c::guarded(error, "kiln_device_count", [&] {
    *c::need_pointer(count, "kiln_device_count", "count") = core::Device::count();
  });
}

kiln_status kiln_device_get_info(int ordinal, kiln_device_info* info, kiln_error* error) {
  return c::guarded(error, "kiln_device_get_info", [&] {
    kiln_device_info& caller = *c::need_pointer(info, "kiln_device_get_info", "info");
    kiln_device_info out{};
    const core::Device d = core::Device::get(ordinal);
    out.ordinal = ordinal;
    copy_text(out.name, d.name());
    copy_text(out.uuid, d.uuid());
    copy_text(out.pci_bus_id, d.pci_bus_id());
    out.cc_major = d.compute_capability_major();
    out.cc_minor = d.compute_capability_minor();
    out.multiprocessors = d.multiprocessor_count();
    out.memory_total = d.total_memory();
    c::write_out(caller, out, "kiln_device_get_info");
  });
}

kiln_status kiln_device_memory(int ordinal, uint64_t* free_bytes, uint64_t* total_bytes, kiln_error* error) {
  return c::guarded(error, "kiln_device_memory", [&] {
    uint64_t& free_out = *c::need_pointer(free_bytes, "kiln_device_memory", "free_bytes");
    uint64_t& total_out = *c::need_pointer(total_bytes, "kiln_device_memory", "total_bytes");
    const auto [free, total] = core::Device::get(ordinal).memory_info();
    free_out = free;
    total_out = total;
  });
}

kiln_status kiln_target_parse(const char* text, kiln_target* target, kiln_error* error) {
  return c::guarded(error, "kiln_target_parse", [&] {
    c::need_pointer(text, "kiln_target_parse", "text");
    *c::need_pointer(target, "kiln_target_parse", "target") = to_c(jit::Target::parse(text));
  });
}

kiln_status kiln_target_for_device(int ordinal, kiln_target* target, kiln_error* error) {
  return c::guarded(error, "kiln_target_for_device", [&] {
    *c::need_pointer(target, "kiln_target_for_device", "target") = to_c(jit::Target::for_device(ordinal));
  });
}

}  // extern "C"
