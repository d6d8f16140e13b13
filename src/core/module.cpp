#include "kiln/core/module.hpp"

#include <cstdint>

#include "core/detail/current.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace {

constexpr std::size_t kLogBytes = 16 * 1024;

// JIT options that capture the driver's error and info logs while loading.
struct JitLogs {
  std::vector<char> info = std::vector<char>(kLogBytes, '\0');
  std::vector<char> error = std::vector<char>(kLogBytes, '\0');
  CUjit_option options[5] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_ERROR_LOG_BUFFER,
                             CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_LOG_VERBOSE};
  void* values[5] = {info.data(), reinterpret_cast<void*>(kLogBytes), error.data(),
                     reinterpret_cast<void*>(kLogBytes), reinterpret_cast<void*>(std::uintptr_t{1})};
  LoadLog collect() const { return {std::string(info.data()), std::string(error.data())}; }
};

std::string describe_log_failure(const LoadLog& log) {
  std::string d;
  if (!log.error.empty()) d.append("JIT error log:\n").append(log.error).append("\n");
  if (!log.info.empty()) d.append("JIT info log:\n").append(log.info);
  return d;
}

// Reads the parameter list: the driver answers CUDA_ERROR_INVALID_VALUE past the last one.
template <typename Query>
std::vector<std::size_t> read_parameters(Query&& query) {
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0;; ++i) {
    std::size_t offset = 0, size = 0;
    if (query(i, &offset, &size) != CUDA_SUCCESS) break;
    sizes.push_back(size);
  }
  return sizes;
}

}  // namespace

void Kernel::refuse_arguments(const std::size_t* sizes, std::size_t count) const {
  std::string detail = "kernel '" + name_ + "' takes " + std::to_string(sizes_.size()) + " parameter" +
                       (sizes_.size() == 1 ? "" : "s") + ", the launch passed " + std::to_string(count);
  if (count == sizes_.size()) {
    for (std::size_t i = 0; i < count; ++i)
      if (sizes[i] != sizes_[i]) {
        detail = "kernel '" + name_ + "': argument " + std::to_string(i) + " is " + std::to_string(sizes[i]) +
                 " bytes, the parameter is " + std::to_string(sizes_[i]) + " bytes";
        break;
      }
  }
  throw Error(Errc::invalid_argument, detail + ". Nothing was launched.");
}

KernelAttributes Kernel::attributes(CUdevice device) const {
  if (!function_) throw Error(Errc::invalid_handle, "attributes() on an empty Kernel");
  const auto& cu = cuda();
  auto get = [&](CUfunction_attribute a) {
    int v = 0;
    if (library_kernel_)
      check(cu.cuKernelGetAttribute(&v, a, reinterpret_cast<CUkernel>(function_), device), "cuKernelGetAttribute");
    else
      check(cu.cuFuncGetAttribute(&v, a, function_), "cuFuncGetAttribute");
    return v;
  };
  if (!library_kernel_) context_.make_current();
  return {get(CU_FUNC_ATTRIBUTE_NUM_REGS), get(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES),
          get(CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK), get(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES),
          get(CU_FUNC_ATTRIBUTE_PTX_VERSION), get(CU_FUNC_ATTRIBUTE_BINARY_VERSION)};
}

void Kernel::set_max_dynamic_shared_bytes(int bytes, CUdevice device) const {
  if (!function_) throw Error(Errc::invalid_handle, "set_max_dynamic_shared_bytes() on an empty Kernel");
  const auto a = CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
  if (library_kernel_) {
    check(cuda().cuKernelSetAttribute(a, bytes, reinterpret_cast<CUkernel>(function_), device), "cuKernelSetAttribute");
  } else {
    context_.make_current();
    check(cuda().cuFuncSetAttribute(function_, a, bytes), "cuFuncSetAttribute");
  }
}

Module Module::load(ContextRef context, std::span<const std::byte> image) {
  if (image.empty()) throw Error(Errc::invalid_argument, "Module::load: the image is empty");
  context.make_current();
  JitLogs logs;
  Module m;
  CUresult r = cuda().cuModuleLoadDataEx(&m.handle_, image.data(), 5, logs.options, logs.values);
  m.log_ = logs.collect();
  if (r != CUDA_SUCCESS) throw Error(Domain::driver, r, "cuModuleLoadDataEx", describe_log_failure(m.log_));
  m.context_ = context;
  return m;
}

Module::~Module() {
  if (handle_) {
    detail::DestructorContext in_context(context_.handle());
    driver::driver_state().api->cuModuleUnload(handle_);
  }
}

Module& Module::operator=(Module&& other) noexcept {
  if (this != &other) {
    Module dying(std::move(*this));
    handle_ = std::exchange(other.handle_, nullptr);
    context_ = std::exchange(other.context_, {});
    log_ = std::move(other.log_);
  }
  return *this;
}

Kernel Module::kernel(const std::string& name) const {
  if (!handle_) throw Error(Errc::invalid_handle, "kernel() on an empty or moved-from Module");
  const auto& cu = cuda();
  context_.make_current();
  CUfunction f = nullptr;
  CUresult r = cu.cuModuleGetFunction(&f, handle_, name.c_str());
  if (r != CUDA_SUCCESS)
    throw Error(Domain::driver, r, "cuModuleGetFunction",
                "no kernel named '" + name + "' in the module (a C++ kernel needs extern \"C\" or its lowered name)");
  auto sizes = read_parameters([&](std::size_t i, std::size_t* o, std::size_t* s) { return cu.cuFuncGetParamInfo(f, i, o, s); });
  return Kernel(f, name, std::move(sizes), context_, false);
}

std::pair<CUdeviceptr, std::size_t> Module::global(const std::string& name) const {
  if (!handle_) throw Error(Errc::invalid_handle, "global() on an empty or moved-from Module");
  context_.make_current();
  CUdeviceptr p = 0;
  std::size_t size = 0;
  CUresult r = cuda().cuModuleGetGlobal(&p, &size, handle_, name.c_str());
  if (r != CUDA_SUCCESS) throw Error(Domain::driver, r, "cuModuleGetGlobal", "no __device__ variable named '" + name + "'");
  return {p, size};
}

Library Library::load(std::span<const std::byte> image) {
  if (image.empty()) throw Error(Errc::invalid_argument, "Library::load: the image is empty");
  JitLogs logs;
  Library l;
  CUresult r = cuda().cuLibraryLoadData(&l.handle_, image.data(), logs.options, logs.values, 5, nullptr, nullptr, 0);
  l.log_ = logs.collect();
  if (r != CUDA_SUCCESS) throw Error(Domain::driver, r, "cuLibraryLoadData", describe_log_failure(l.log_));
  return l;
}

Library::~Library() {
  if (handle_) driver::driver_state().api->cuLibraryUnload(handle_);
}

Library& Library::operator=(Library&& other) noexcept {
  if (this != &other) {
    Library dying(std::move(*this));
    handle_ = std::exchange(other.handle_, nullptr);
    log_ = std::move(other.log_);
  }
  return *this;
}

Kernel Library::kernel(const std::string& name) const {
  if (!handle_) throw Error(Errc::invalid_handle, "kernel() on an empty or moved-from Library");
  const auto& cu = cuda();
  CUkernel k = nullptr;
  CUresult r = cu.cuLibraryGetKernel(&k, handle_, name.c_str());
  if (r != CUDA_SUCCESS)
    throw Error(Domain::driver, r, "cuLibraryGetKernel",
                "no kernel named '" + name + "' in the library (a C++ kernel needs extern \"C\" or its lowered name)");
  auto sizes = read_parameters([&](std::size_t i, std::size_t* o, std::size_t* s) { return cu.cuKernelGetParamInfo(k, i, o, s); });
  // A CUkernel may be passed wherever the driver takes a CUfunction; it runs in the current context.
  return Kernel(reinterpret_cast<CUfunction>(k), name, std::move(sizes), {}, true);
}

}  // namespace kiln::core
