// The environment report as JSON, as `kiln doctor --json` prints it (and kiln_environment_json()
// returns): kiln, the system, driver, NVRTC, NVML, toolkit, every GPU, every problem with its hint.
//
// Thread safety: a pure function over a value.
#pragma once

#include <string>

#include "kiln/driver/environment.hpp"

namespace kiln::driver {

std::string environment_to_json(const EnvironmentReport& report, int indent = 2);

}  // namespace kiln::driver
