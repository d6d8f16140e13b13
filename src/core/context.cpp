#include "kiln/core/context.hpp"

#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::core {

using driver::check;
using driver::cuda;

namespace detail {

void ensure_current(CUcontext context) {
  const auto& cu = cuda();
  CUcontext now = nullptr;
  check(cu.cuCtxGetCurrent(&now), "cuCtxGetCurrent");
  if (now != context) check(cu.cuCtxSetCurrent(context), "cuCtxSetCurrent");
}

}  // namespace detail

void ContextRef::make_current() const {
  if (!handle_) throw Error(Errc::invalid_handle, "make_current() on an empty ContextRef");
  detail::ensure_current(handle_);
}

void ContextRef::synchronize() const {
  make_current();
  check(cuda().cuCtxSynchronize(handle_), "cuCtxSynchronize");
}

ContextRef current_context() {
  const auto& cu = cuda();
  CUcontext now = nullptr;
  check(cu.cuCtxGetCurrent(&now), "cuCtxGetCurrent");
  if (!now) return {};
  CUdevice device = 0;
  check(cu.cuCtxGetDevice(&device, now), "cuCtxGetDevice");
  return {now, device};
}

CurrentContextGuard::CurrentContextGuard(ContextRef context) {
  const auto& cu = cuda();
  check(cu.cuCtxGetCurrent(&previous_), "cuCtxGetCurrent");
  if (previous_ != context.handle()) {
    check(cu.cuCtxSetCurrent(context.handle()), "cuCtxSetCurrent");
    changed_ = true;
  }
}

CurrentContextGuard::~CurrentContextGuard() {
  if (changed_) driver::driver_state().api->cuCtxSetCurrent(previous_);  // never throws
}

Context Context::create(CUdevice device, unsigned flags) {
  const auto& cu = cuda();
  CUcontext previous = nullptr;
  check(cu.cuCtxGetCurrent(&previous), "cuCtxGetCurrent");
  CUcontext created = nullptr;
  check(cu.cuCtxCreate(&created, nullptr, flags, device), "cuCtxCreate");
  // cuCtxCreate pushes the new context; leave the thread as it was.
  CUcontext popped = nullptr;
  check(cu.cuCtxPopCurrent(&popped), "cuCtxPopCurrent");
  if (previous) check(cu.cuCtxSetCurrent(previous), "cuCtxSetCurrent");
  return Context(ContextRef(created, device));
}

Context::~Context() {
  if (ref_) driver::driver_state().api->cuCtxDestroy(ref_.handle());
}

Context& Context::operator=(Context&& other) noexcept {
  if (this != &other) {
    Context dying(std::move(*this));
    ref_ = std::exchange(other.ref_, {});
  }
  return *this;
}

}  // namespace kiln::core
