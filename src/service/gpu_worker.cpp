#include "kiln/service/gpu_worker.hpp"

#include <chrono>
#include <map>
#include <unordered_map>

#include "kiln/core/launch.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/shareable_buffer.hpp"
#include "kiln/core/module.hpp"
#include "kiln/core/stream.hpp"
#include "kiln/driver/error.hpp"

namespace kiln::service {

// ---- frames

std::string encode_launch(const LaunchSpec& s) {
  PayloadWriter w;
  w.u64(s.job_id).bytes(s.tenant).bytes(s.image_key).bytes(s.image ? std::string_view(*s.image) : std::string_view());
  w.bytes(s.kernel);
  for (unsigned v : s.grid) w.u32(v);
  for (unsigned v : s.block) w.u32(v);
  w.u32(s.shared_bytes).u32(static_cast<std::uint32_t>(s.device)).u32(static_cast<std::uint32_t>(s.arguments.size()));
  for (const KernelArgument& a : s.arguments) {
    if (const auto* scalar = std::get_if<ScalarArgument>(&a)) {
      w.u8(0).u8(static_cast<std::uint8_t>(scalar->type)).u64(scalar->bits);
    } else {
      const auto& b = std::get<BufferArgument>(a);
      w.u8(1).u64(b.buffer).u64(b.offset);
    }
  }
  return w.take();
}

LaunchSpec decode_launch(std::string_view payload) {
  PayloadReader r(payload);
  LaunchSpec s;
  s.job_id = r.u64();
  s.tenant = r.bytes();
  s.image_key = r.bytes();
  s.image = std::make_shared<const std::string>(r.bytes());
  s.kernel = r.bytes();
  for (unsigned& v : s.grid) v = r.u32();
  for (unsigned& v : s.block) v = r.u32();
  s.shared_bytes = r.u32();
  s.device = static_cast<int>(r.u32());
  const std::uint32_t n = r.u32();
  if (n > 4096) throw Error(Errc::invalid_argument, "GPU worker protocol: " + std::to_string(n) + " arguments");
  for (std::uint32_t i = 0; i < n; ++i) {
    if (r.u8() == 0) {
      const auto type = r.u8();
      if (type > static_cast<std::uint8_t>(ScalarArgument::Type::f64))
        throw Error(Errc::invalid_argument, "GPU worker protocol: unknown scalar type " + std::to_string(type));
      s.arguments.emplace_back(ScalarArgument{static_cast<ScalarArgument::Type>(type), r.u64()});
    } else {
      BufferArgument b;
      b.buffer = r.u64();
      b.offset = r.u64();
      s.arguments.emplace_back(b);
    }
  }
  if (!r.done()) throw Error(Errc::invalid_argument, "GPU worker protocol: trailing bytes after a launch");
  return s;
}

std::string encode_outcome(const LaunchOutcome& o) {
  PayloadWriter w;
  w.u64(o.job_id).u8(static_cast<std::uint8_t>(o.status)).bytes(o.error_name).bytes(o.message).u8(o.sticky).f64(o.elapsed_ms);
  return w.take();
}

LaunchOutcome decode_outcome(std::string_view payload) {
  PayloadReader r(payload);
  LaunchOutcome o;
  o.job_id = r.u64();
  o.status = static_cast<LaunchStatus>(r.u8());
  o.error_name = r.bytes();
  o.message = r.bytes();
  o.sticky = r.u8() != 0;
  o.elapsed_ms = r.f64();
  return o;
}

// ---- the worker loop

namespace {

struct WorkerState {
  int device;
  core::ContextRef context;
  core::Stream stream;
  std::unordered_map<BufferId, core::ShareableBuffer> buffers;
  std::map<std::string, core::Module> modules;  // by image key
};

LaunchOutcome run_launch(WorkerState& w, const LaunchSpec& spec) {
  LaunchOutcome out;
  out.job_id = spec.job_id;
  const auto start = std::chrono::steady_clock::now();
  try {
    auto it = w.modules.find(spec.image_key);
    if (it == w.modules.end()) {
      if (!spec.image || spec.image->empty()) throw Error(Errc::invalid_argument, "the launch carries no image");
      if (w.modules.size() >= 256) w.modules.erase(w.modules.begin());  // a bound, not a policy
      it = w.modules.emplace(spec.image_key, core::Module::load(w.context, *spec.image)).first;
    }
    core::Kernel kernel = it->second.kernel(spec.kernel);
    std::vector<std::uint64_t> values(spec.arguments.size());
    std::vector<void*> pointers(spec.arguments.size());
    std::vector<std::size_t> sizes(spec.arguments.size());
    for (std::size_t i = 0; i < spec.arguments.size(); ++i) {
      if (const auto* scalar = std::get_if<ScalarArgument>(&spec.arguments[i])) {
        values[i] = scalar->bits;
        sizes[i] = scalar->size();
      } else {
        const auto& b = std::get<BufferArgument>(spec.arguments[i]);
        auto buffer = w.buffers.find(b.buffer);
        if (buffer == w.buffers.end())
          throw Error(Errc::invalid_argument, "argument " + std::to_string(i) + ": buffer " + std::to_string(b.buffer) +
                                                  " is not mapped in this worker");
        if (b.offset >= buffer->second.size())
          throw Error(Errc::invalid_argument, "argument " + std::to_string(i) + ": offset " + std::to_string(b.offset) +
                                                  " is past the end of buffer " + std::to_string(b.buffer));
        values[i] = buffer->second.data() + b.offset;
        sizes[i] = sizeof(CUdeviceptr);
      }
      pointers[i] = &values[i];  // little-endian: a 4-byte parameter reads the low half
    }
    core::LaunchConfig config = core::LaunchConfig::of({spec.grid[0], spec.grid[1], spec.grid[2]},
                                                       {spec.block[0], spec.block[1], spec.block[2]}, spec.shared_bytes);
    core::launch_packed(w.stream, kernel, config, pointers.data(), sizes.data(), pointers.size());
    w.stream.synchronize();
    out.status = LaunchStatus::completed;
  } catch (const Error& e) {
    out.status = LaunchStatus::failed;
    out.error_name = std::string(e.name());
    out.message = e.what();
    out.sticky = e.sticky();
  }
  out.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace

int serve_gpu_worker(ipc::Channel channel, int device) {
  WorkerState w;
  w.device = device;
  auto report = [&](const Error& e) {
    channel.send(GpuWorkerFrame::error, PayloadWriter().bytes(e.name()).bytes(e.what()).take());
  };
  try {
    try {
      core::Device dev = core::Device::get(device);
      w.context = dev.primary_context();
      w.context.make_current();
      w.stream = core::Stream::create(w.context);
      channel.send(GpuWorkerFrame::ready, PayloadWriter().bytes(dev.name()).take());
    } catch (const ipc::ChannelError&) {
      throw;
    } catch (const Error& e) {
      report(e);
      return 1;
    }
    for (;;) {
      ipc::Received r = channel.receive();
      if (!r) return 0;  // the supervisor went away: nothing left to serve
      ipc::Frame& f = r.frame;
      try {
        switch (f.type_as<GpuWorkerFrame>()) {
          case GpuWorkerFrame::import_buffer: {
            PayloadReader p(f.payload);
            const BufferId id = p.u64();
            const std::size_t size = p.u64();
            if (f.fds.size() != 1)
              throw Error(Errc::invalid_argument, "import of buffer " + std::to_string(id) + " came with " +
                                                      std::to_string(f.fds.size()) + " descriptors, not 1");
            w.buffers.insert_or_assign(id, core::ShareableBuffer::import(w.context, f.fds[0].release(), size));
            break;
          }
          case GpuWorkerFrame::release_buffer: w.buffers.erase(PayloadReader(f.payload).u64()); break;
          case GpuWorkerFrame::launch: {
            LaunchOutcome o = run_launch(w, decode_launch(f.payload));
            channel.send(GpuWorkerFrame::launch_done, encode_outcome(o));
            if (o.sticky) return 3;  // the context is poisoned: only a new process recovers
            break;
          }
          case GpuWorkerFrame::shutdown: return 0;
          default:
            throw Error(Errc::invalid_argument, "GPU worker protocol: unexpected frame type " + std::to_string(f.type));
        }
      } catch (const ipc::ChannelError&) {
        throw;
      } catch (const Error& e) {
        report(e);  // the frame's descriptors (if any) close with it
        if (e.sticky()) return 3;
      }
    }
  } catch (const ipc::ChannelError& e) {
    return e.failure() == ipc::ChannelError::Failure::closed ? 0 : 2;
  }
}

}  // namespace kiln::service
