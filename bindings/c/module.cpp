// Loading images and getting their kernels.
#include "c/detail/boundary.hpp"
#include "c/detail/handles.hpp"
#include "kiln/core/device.hpp"

using namespace kiln;

extern "C" {

kiln_status kiln_module_load(const kiln_image* image, int device, kiln_module** module, kiln_error* error) {
  return c::guarded(error, "kiln_module_load", [&] {
    const kiln_image& im = c::need(image, "kiln_module_load", "image");
    c::need_pointer(module, "kiln_module_load", "module");
    *module = nullptr;
    auto loaded = std::make_shared<c::LoadedModule>();
    loaded->module = core::Module::load(core::Device::get(device).primary_context(), im.artifact.image());
    loaded->device = device;
    loaded->lowered_names = im.artifact.lowered_names();
    *module = new kiln_module{std::move(loaded)};
  });
}

void kiln_module_destroy(kiln_module* module) { delete module; }

kiln_status kiln_module_get_kernel(const kiln_module* module, const char* name, kiln_kernel** kernel,
                                   kiln_error* error) {
  return c::guarded(error, "kiln_module_get_kernel", [&] {
    const kiln_module& m = c::need(module, "kiln_module_get_kernel", "module");
    c::need_pointer(name, "kiln_module_get_kernel", "name");
    c::need_pointer(kernel, "kiln_module_get_kernel", "kernel");
    *kernel = nullptr;
    // A name expression of the program ("scale<float>") stands for its lowered name.
    const auto lowered = m.loaded->lowered_names.find(name);
    const std::string symbol = lowered != m.loaded->lowered_names.end() ? lowered->second : std::string(name);
    *kernel = new kiln_kernel{m.loaded, m.loaded->module.kernel(symbol), m.loaded->device};
  });
}

void kiln_kernel_destroy(kiln_kernel* kernel) { delete kernel; }

int kiln_kernel_device(const kiln_kernel* kernel) { return kernel != nullptr ? kernel->device : -1; }

kiln_status kiln_kernel_params(const kiln_kernel* kernel, size_t* sizes, size_t capacity, size_t* count,
                               kiln_error* error) {
  return c::guarded(error, "kiln_kernel_params", [&] {
    const kiln_kernel& k = c::need(kernel, "kiln_kernel_params", "kernel");
    const auto params = k.kernel.parameter_sizes();
    *c::need_pointer(count, "kiln_kernel_params", "count") = params.size();
    if (capacity > 0) c::need_pointer(sizes, "kiln_kernel_params", "sizes");
    for (std::size_t i = 0; i < params.size() && i < capacity; ++i) sizes[i] = params[i];
  });
}

}  // extern "C"
