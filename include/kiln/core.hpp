// Everything in kiln's core layer.
#pragma once

#include "kiln/core/allocation_tracker.hpp"
#include "kiln/core/context.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/event.hpp"
#include "kiln/core/graph.hpp"
#include "kiln/core/launch.hpp"
#include "kiln/core/memory.hpp"
#include "kiln/core/module.hpp"
#include "kiln/core/shareable_buffer.hpp"
#include "kiln/core/stream.hpp"
#include "kiln/core/wait.hpp"
