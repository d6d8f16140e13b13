// What the C ABI's opaque handles hold. Owners that other handles depend on are shared: a buffer
// keeps its stream alive (it is freed in order on it) and a kernel keeps its module alive, so any
// destruction order is safe.
#pragma once

#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "kiln/core/event.hpp"
#include "kiln/core/memory.hpp"
#include "kiln/core/module.hpp"
#include "kiln/core/stream.hpp"
#include "kiln/jit/artifact.hpp"
#include "kiln/jit/device_library.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/kiln.h"
#include "kiln/memory/pinned_pool.hpp"
#include "kiln/memory/pool_resource.hpp"

struct kiln_cache {
  kiln::jit::KernelCache cache;
};

struct kiln_image {
  kiln::jit::Artifact artifact;
};

struct kiln_device_library {
  kiln::jit::DeviceLibrary library;
};

struct kiln_diagnostics {
  std::vector<kiln::jit::Diagnostic> entries;
  std::vector<std::string> formatted;
  std::vector<kiln_diagnostic> views;  // point into entries and formatted
};

namespace kiln::c {
struct LoadedModule {
  core::Module module;
  int device = 0;
  std::map<std::string, std::string> lowered_names;  // of the image it was loaded from
};
}  // namespace kiln::c

struct kiln_module {
  std::shared_ptr<const kiln::c::LoadedModule> loaded;
};

struct kiln_kernel {
  std::shared_ptr<const kiln::c::LoadedModule> module;  // keeps the code loaded
  kiln::core::Kernel kernel;
  int device = 0;
};

struct kiln_stream {
  std::shared_ptr<kiln::core::Stream> owner;  // null for a borrowed stream (kiln_stream_borrow)
  kiln::core::StreamRef ref;
  int device = 0;
};

struct kiln_event {
  kiln::core::Event event;
  int device = 0;
};

struct kiln_cancel {
  std::stop_source source;
};

struct kiln_buffer {
  kiln::memory::PoolResource pool;
  CUdeviceptr address = 0;
  std::size_t bytes = 0;
  std::shared_ptr<kiln::core::Stream> stream_owner;  // keeps a stream kiln made alive
  kiln::core::StreamRef stream;                       // freed in order on it
  int device = 0;
};

struct kiln_pinned_pool {
  kiln::memory::PinnedPool pool;
};

struct kiln_pinned {
  kiln::memory::PinnedBlock block;
};

struct kiln_managed {
  kiln::core::ManagedBuffer buffer;
  int device = 0;
};

namespace kiln::c {
// The diagnostics as the C ABI hands them out.
kiln_diagnostics* make_diagnostics(std::vector<jit::Diagnostic> entries);
}  // namespace kiln::c
