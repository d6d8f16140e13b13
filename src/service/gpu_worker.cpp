#include "kiln/service/gpu_worker.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kiln/core/device.hpp"
#include "kiln/core/launch.hpp"
#include "kiln/core/module.hpp"
#include "kiln/core/stream.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/core/shareable_buffer.hpp"

namespace kiln::service {

// ---- frames

std::string encode_launch(const LaunchSpec& s) {
  PayloadWriter w;
  w.u64(s.job_id).bytes(s.tenant).bytes(s.request_id).bytes(s.image_key);
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
  s.request_id = r.bytes();
  s.image_key = r.bytes();
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

std::string encode_load_image(std::string_view key, std::string_view image) {
  return PayloadWriter().bytes(key).bytes(image).take();
}

ImageFrame decode_load_image(std::string_view payload) {
  PayloadReader r(payload);
  ImageFrame f;
  f.key = r.bytes();
  f.image = r.bytes();
  if (!r.done()) throw Error(Errc::invalid_argument, "GPU worker protocol: trailing bytes after an image");
  if (f.key.empty() || f.image.empty())
    throw Error(Errc::invalid_argument, "GPU worker protocol: an image frame needs a key and bytes");
  return f;
}

std::string encode_forget_image(std::string_view key) { return PayloadWriter().bytes(key).take(); }

std::string decode_forget_image(std::string_view payload) {
  PayloadReader r(payload);
  std::string key = r.bytes();
  if (!r.done()) throw Error(Errc::invalid_argument, "GPU worker protocol: trailing bytes after an image key");
  return key;
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
  const auto status = r.u8();
  if (status > static_cast<std::uint8_t>(LaunchStatus::device_unavailable))
    throw Error(Errc::invalid_argument, "GPU worker protocol: unknown launch status " + std::to_string(status));
  o.status = static_cast<LaunchStatus>(status);
  o.error_name = r.bytes();
  o.message = r.bytes();
  o.sticky = r.u8() != 0;
  o.elapsed_ms = r.f64();
  return o;
}

// ---- the worker

namespace {

using Clock = std::chrono::steady_clock;

// The supervisor bounds the images a worker holds (WorkerPool's LoadedImages); this only stops a
// runaway (a dropped entry is sent again when the launch that needs it says so).
constexpr std::size_t kMaxImagesHeld = 4096;

struct Image {
  std::string bytes;                            // kept until its module is loaded, at its first launch
  std::shared_ptr<const core::Module> module;
};

struct WorkerState {
  int device = 0;
  core::ContextRef context;
  std::unordered_map<BufferId, std::shared_ptr<const core::ShareableBuffer>> buffers;
  std::unordered_map<std::string, Image> images;  // by key
};

// A launch with its module, kernel, buffers and argument values resolved by the reading thread:
// all a lane needs, holding the module and the buffers for as long as it runs.
struct ReadyLaunch {
  std::uint64_t job_id = 0;
  std::string request_id;  // the HTTP request's, named in a failure's message
  Clock::time_point received{};
  std::shared_ptr<const core::Module> module;
  core::Kernel kernel;
  std::vector<std::shared_ptr<const core::ShareableBuffer>> buffers;
  std::vector<std::uint64_t> values;
  std::vector<std::size_t> sizes;
  core::LaunchConfig config;
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The message names the request that made the launch, so one grep of its id finds the GPU's word.
LaunchOutcome failed(std::uint64_t job, std::string_view request_id, const Error& e, Clock::time_point received) {
  LaunchOutcome out;
  out.job_id = job;
  out.status = LaunchStatus::failed;
  out.error_name = std::string(e.name());
  out.message = e.what();
  if (!request_id.empty()) out.message.append(" [request ").append(request_id).append("]");
  out.sticky = e.sticky();
  out.elapsed_ms = ms_since(received);
  return out;
}

// Loads the image's module at its first launch. Throws kiln::Error for what fails the launch (an
// image that does not load, an unknown symbol, a bad argument).
ReadyLaunch resolve(WorkerState& w, Image& image, const LaunchSpec& spec, Clock::time_point received) {
  ReadyLaunch r;
  r.job_id = spec.job_id;
  r.request_id = spec.request_id;
  r.received = received;
  if (!image.module) {
    image.module = std::make_shared<const core::Module>(core::Module::load(w.context, image.bytes));
    std::string().swap(image.bytes);  // the module holds the code now
  }
  r.module = image.module;
  r.kernel = r.module->kernel(spec.kernel);
  r.values.resize(spec.arguments.size());
  r.sizes.resize(spec.arguments.size());
  for (std::size_t i = 0; i < spec.arguments.size(); ++i) {
    if (const auto* scalar = std::get_if<ScalarArgument>(&spec.arguments[i])) {
      r.values[i] = scalar->bits;
      r.sizes[i] = scalar->size();
    } else {
      const auto& b = std::get<BufferArgument>(spec.arguments[i]);
      auto buffer = w.buffers.find(b.buffer);
      if (buffer == w.buffers.end())
        throw Error(Errc::invalid_argument, "argument " + std::to_string(i) + ": buffer " + std::to_string(b.buffer) +
                                                " is not mapped in this worker");
      if (b.offset >= buffer->second->size())
        throw Error(Errc::invalid_argument, "argument " + std::to_string(i) + ": offset " + std::to_string(b.offset) +
                                                " is past the end of buffer " + std::to_string(b.buffer));
      r.values[i] = buffer->second->data() + b.offset;  // little-endian: a 4-byte parameter reads the low half
      r.sizes[i] = sizeof(CUdeviceptr);
      r.buffers.push_back(buffer->second);
    }
  }
  r.config = core::LaunchConfig::of({spec.grid[0], spec.grid[1], spec.grid[2]},
                                    {spec.block[0], spec.block[1], spec.block[2]}, spec.shared_bytes);
  return r;
}

LaunchOutcome run(ReadyLaunch& r, const core::Stream& stream) {
  LaunchOutcome out;
  out.job_id = r.job_id;
  try {
    std::vector<void*> pointers(r.values.size());
    for (std::size_t i = 0; i < pointers.size(); ++i) pointers[i] = &r.values[i];
    core::launch_packed(stream, r.kernel, r.config, pointers.data(), r.sizes.data(), pointers.size());
    stream.synchronize();
    out.status = LaunchStatus::completed;
  } catch (const Error& e) {
    return failed(r.job_id, r.request_id, e, r.received);
  }
  out.elapsed_ms = ms_since(r.received);
  return out;
}

// The worker's sending side: outcomes come from several lanes, so sends take turns, on a
// descriptor of their own (the reading thread's Channel is its own).
class Reporter {
 public:
  explicit Reporter(ipc::Channel channel) : channel_(std::move(channel)) {}
  void send(GpuWorkerFrame type, std::string_view payload) {
    std::lock_guard lock(mutex_);
    channel_.send(type, payload);
  }
  void error(const Error& e) { send(GpuWorkerFrame::error, PayloadWriter().bytes(e.name()).bytes(e.what()).take()); }

 private:
  std::mutex mutex_;
  ipc::Channel channel_;
};

// Concurrent mode: a thread and a non-blocking stream per lane, fed from one queue.
class Lanes {
 public:
  // `socket` is the reading thread's descriptor: after reporting a sticky error a lane shuts its
  // reading side, which wakes the reading thread (end-of-file) so the worker exits.
  Lanes(int count, core::ContextRef context, Reporter& reporter, int socket)
      : reporter_(reporter), socket_(socket) {
    for (int i = 0; i < count; ++i) streams_.push_back(core::Stream::create(context));
    for (int i = 0; i < count; ++i)
      threads_.emplace_back([this, context, i] { serve(context, streams_[static_cast<std::size_t>(i)]); });
  }
  ~Lanes() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    threads_.clear();  // joins: each lane ends the launch it runs first
  }
  Lanes(const Lanes&) = delete;
  Lanes& operator=(const Lanes&) = delete;

  void post(ReadyLaunch launch) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(launch));
    }
    wake_.notify_one();
  }

  // The first caller reports the sticky error; later ones (its neighbours, failing with it) do not.
  bool claim_sticky() noexcept { return !sticky_.exchange(true); }
  bool sticky() const noexcept { return sticky_.load(); }

  // After the sticky report: the reading thread sees end-of-file and the worker exits.
  void end_reading() noexcept { ::shutdown(socket_, SHUT_RD); }

 private:
  void serve(core::ContextRef context, const core::Stream& stream) {
    try {
      context.make_current();
    } catch (const Error&) {
      // A launch on this lane fails with the reason (launch_packed sets the context itself).
    }
    for (;;) {
      ReadyLaunch launch;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;  // the worker is exiting: what is still queued is reported by the supervisor
        launch = std::move(queue_.front());
        queue_.pop_front();
      }
      LaunchOutcome o = run(launch, stream);
      launch = ReadyLaunch{};  // the module and buffers may go now
      if (o.sticky ? !claim_sticky() : sticky()) continue;  // after a sticky error the supervisor reports the rest
      try {
        reporter_.send(GpuWorkerFrame::launch_done, encode_outcome(o));
      } catch (const Error&) {
        // The supervisor is gone; the reading thread sees it too and ends the worker.
      }
      if (o.sticky) end_reading();
    }
  }

  Reporter& reporter_;
  int socket_;
  std::vector<core::Stream> streams_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<ReadyLaunch> queue_;
  bool stopping_ = false;
  std::atomic<bool> sticky_{false};
  std::vector<std::jthread> threads_;  // last: joined before the rest goes
};

ipc::Channel sending_channel(const ipc::Channel& channel) {
  const int fd = ::fcntl(channel.fd(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw Error(Errc::internal, "GPU worker: cannot duplicate its socket for sending");
  return ipc::Channel(ipc::UniqueFd(fd), channel.options());
}

}  // namespace

int serve_gpu_worker(ipc::Channel channel, int device, int lanes) {
  WorkerState w;
  w.device = device;
  std::optional<Reporter> reporter;
  core::Stream stream;           // one lane: launches run on the reading thread
  std::optional<Lanes> parallel;  // several lanes
  try {
    try {
      reporter.emplace(sending_channel(channel));
      core::Device dev = core::Device::get(device);
      w.context = dev.primary_context();
      w.context.make_current();
      if (lanes > 1) parallel.emplace(lanes, w.context, *reporter, channel.fd());
      else stream = core::Stream::create(w.context);
      reporter->send(GpuWorkerFrame::ready, PayloadWriter().bytes(dev.name()).take());
    } catch (const ipc::ChannelError&) {
      throw;
    } catch (const Error& e) {
      if (reporter) reporter->error(e);
      else channel.send(GpuWorkerFrame::error, PayloadWriter().bytes(e.name()).bytes(e.what()).take());
      return 1;
    }
    // A sticky outcome: reported once (the first to see it), then the process must end.
    auto report_outcome = [&](const LaunchOutcome& o) {
      if (o.sticky && parallel && !parallel->claim_sticky()) return;
      reporter->send(GpuWorkerFrame::launch_done, encode_outcome(o));
    };
    for (;;) {
      if (parallel && parallel->sticky()) return 3;
      ipc::Received r = channel.receive();
      if (!r) return parallel && parallel->sticky() ? 3 : 0;  // the supervisor went away, or a lane saw a sticky error
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
            w.buffers.insert_or_assign(
                id, std::make_shared<const core::ShareableBuffer>(core::ShareableBuffer::import(w.context, f.fds[0].release(), size)));
            break;
          }
          // A launch still running keeps its own reference: the buffer is unmapped when it ends.
          case GpuWorkerFrame::release_buffer: w.buffers.erase(PayloadReader(f.payload).u64()); break;
          case GpuWorkerFrame::load_image: {
            ImageFrame image = decode_load_image(f.payload);
            if (w.images.size() >= kMaxImagesHeld && !w.images.count(image.key)) w.images.erase(w.images.begin());
            w.images.insert_or_assign(std::move(image.key), Image{std::move(image.image), nullptr});
            break;
          }
          case GpuWorkerFrame::forget_image: w.images.erase(decode_forget_image(f.payload)); break;
          case GpuWorkerFrame::launch: {
            const auto received = Clock::now();
            const LaunchSpec spec = decode_launch(f.payload);
            auto image = w.images.find(spec.image_key);
            if (image == w.images.end()) {
              LaunchOutcome o;
              o.job_id = spec.job_id;
              o.status = LaunchStatus::failed;
              o.error_name = kImageNotLoaded;
              o.message = "this GPU worker holds no image with key " + spec.image_key;
              report_outcome(o);
              break;
            }
            std::optional<ReadyLaunch> ready;
            try {
              ready = resolve(w, image->second, spec, received);
            } catch (const Error& e) {
              const LaunchOutcome o = failed(spec.job_id, spec.request_id, e, received);
              report_outcome(o);
              if (o.sticky) return 3;  // the context is poisoned: only a new process recovers
              break;
            }
            if (parallel) {
              parallel->post(std::move(*ready));
              break;
            }
            const LaunchOutcome o = run(*ready, stream);
            report_outcome(o);
            if (o.sticky) return 3;
            break;
          }
          case GpuWorkerFrame::shutdown: return 0;
          default:
            throw Error(Errc::invalid_argument, "GPU worker protocol: unexpected frame type " + std::to_string(f.type));
        }
      } catch (const ipc::ChannelError&) {
        throw;
      } catch (const Error& e) {
        reporter->error(e);  // the frame's descriptors (if any) close with it
        if (e.sticky()) return 3;
      }
    }
  } catch (const ipc::ChannelError& e) {
    if (parallel && parallel->sticky()) return 3;
    return e.failure() == ipc::ChannelError::Failure::closed ? 0 : 2;
  }
}

}  // namespace kiln::service
