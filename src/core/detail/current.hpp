// Context switching for destructors: never throws, works at process end, and leaves the thread's
// current context as it found it.
#pragma once

#include <cuda.h>

#include "kiln/driver/cuda_api.hpp"

namespace kiln::core::detail {

class DestructorContext {
 public:
  explicit DestructorContext(CUcontext context) noexcept : api_(driver::driver_state().api) {
    if (!api_ || !context || api_->cuCtxGetCurrent(&previous_) != CUDA_SUCCESS) return;
    if (previous_ != context) changed_ = api_->cuCtxSetCurrent(context) == CUDA_SUCCESS;
  }
  ~DestructorContext() {
    if (changed_) api_->cuCtxSetCurrent(previous_);
  }
  DestructorContext(const DestructorContext&) = delete;
  DestructorContext& operator=(const DestructorContext&) = delete;

 private:
  const driver::CudaApi* api_;
  CUcontext previous_ = nullptr;
  bool changed_ = false;
};

}  // namespace kiln::core::detail
