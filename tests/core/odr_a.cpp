// Every public header in two translation units of one program: an inline or template defined
// twice differently, or a non-inline definition in a header, fails to link here.
#include "kiln/core.hpp"
#include "kiln/driver/check.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/driver/environment.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/driver/nvml_api.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::testing {
std::size_t odr_a() { return sizeof(core::LaunchConfig) + sizeof(core::DeviceSpan<float>) + sizeof(core::Kernel); }
}  // namespace kiln::testing
