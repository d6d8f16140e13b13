// Loaded GPU code: Module (one context, cuModuleLoadDataEx) and Library (context-independent,
// cuLibraryLoadData: one load serves every context), and the Kernel handles they give out.
//
// Thread safety: Module and Library are immutable after loading; kernel() and global() may be
// called from any thread. A Kernel is a value, valid while its Module/Library lives; launching
// the same Kernel from many threads at once is safe.
#pragma once

#include <cuda.h>

#include "kiln/driver/cuda_compat.hpp"  // CUlibrary, CUkernel with headers older than CUDA 12

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/core/context.hpp"

namespace kiln::core {

struct KernelAttributes {
  int registers = 0;               // per thread
  int static_shared_bytes = 0;
  int max_threads_per_block = 0;   // for this kernel, given its register use
  int local_bytes = 0;             // per thread (spills)
  int ptx_version = 0;
  int binary_version = 0;
};

// A kernel ready to launch: a CUfunction (from a Module) or a CUkernel (from a Library), with its
// parameter list read from the driver once, so each launch checks its arguments without a driver
// call.
class Kernel {
 public:
  Kernel() = default;

  CUfunction handle() const noexcept { return function_; }
  const std::string& name() const noexcept { return name_; }
  // Sizes in bytes of each parameter, in order (cuFuncGetParamInfo / cuKernelGetParamInfo).
  std::span<const std::size_t> parameter_sizes() const noexcept { return sizes_; }
  // For a Library kernel: the context the launch must run in is the stream's; for a Module
  // kernel: its module's context.
  ContextRef context() const noexcept { return context_; }
  bool context_independent() const noexcept { return library_kernel_; }

  KernelAttributes attributes(CUdevice device) const;
  // Raises the dynamic shared memory limit (needed above 48 KiB).
  void set_max_dynamic_shared_bytes(int bytes, CUdevice device) const;

  // Refuses (kiln::Error, Errc::invalid_argument) an argument list whose count or sizes differ from
  // the kernel's parameters, naming the index and both sizes. Cheap: no driver call.
  void check_arguments(const std::size_t* sizes, std::size_t count) const {
    if (count != sizes_.size()) [[unlikely]]
      refuse_arguments(sizes, count);
    for (std::size_t i = 0; i < count; ++i)
      if (sizes[i] != sizes_[i]) [[unlikely]]
        refuse_arguments(sizes, count);
  }

 private:
  friend class Module;
  friend class Library;
  Kernel(CUfunction function, std::string name, std::vector<std::size_t> sizes, ContextRef context,
         bool library_kernel)
      : function_(function), name_(std::move(name)), sizes_(std::move(sizes)), context_(context),
        library_kernel_(library_kernel) {}
  [[noreturn]] void refuse_arguments(const std::size_t* sizes, std::size_t count) const;

  CUfunction function_ = nullptr;
  std::string name_;
  std::vector<std::size_t> sizes_;
  ContextRef context_;
  bool library_kernel_ = false;
};

// Logs the driver's JIT wrote while loading (PTX is compiled at load time).
struct LoadLog {
  std::string info;
  std::string error;
};

class Module {
 public:
  Module() = default;
  // `image`: CUBIN, PTX (NUL-terminated text) or fatbin bytes. On failure the kiln::Error's detail
  // carries the JIT's error and info logs.
  static Module load(ContextRef context, std::span<const std::byte> image);
  static Module load(ContextRef context, std::string_view image) {
    return load(context, std::as_bytes(std::span(image.data(), image.size())));
  }
  ~Module();
  Module(Module&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), context_(std::exchange(other.context_, {})),
        log_(std::move(other.log_)) {}
  Module& operator=(Module&& other) noexcept;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CUmodule handle() const noexcept { return handle_; }
  ContextRef context() const noexcept { return context_; }
  const LoadLog& log() const noexcept { return log_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

  // Throws kiln::Error (CUDA_ERROR_NOT_FOUND) naming the kernel when it is not in the module.
  Kernel kernel(const std::string& name) const;
  // Address and size of a __device__ variable.
  std::pair<CUdeviceptr, std::size_t> global(const std::string& name) const;

 private:
  CUmodule handle_ = nullptr;
  ContextRef context_;
  LoadLog log_;
};

class Library {
 public:
  Library() = default;
  static Library load(std::span<const std::byte> image);
  static Library load(std::string_view image) { return load(std::as_bytes(std::span(image.data(), image.size()))); }
  ~Library();
  Library(Library&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)), log_(std::move(other.log_)) {}
  Library& operator=(Library&& other) noexcept;
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  CUlibrary handle() const noexcept { return handle_; }
  const LoadLog& log() const noexcept { return log_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

  // A kernel usable in every context: a launch runs it in its stream's context.
  Kernel kernel(const std::string& name) const;

 private:
  CUlibrary handle_ = nullptr;
  LoadLog log_;
};

}  // namespace kiln::core
