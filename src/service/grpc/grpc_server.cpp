#include "grpc_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "core/service_core.hpp"
#include "detail/log_budget.hpp"
#include "grpc_messages.hpp"
#include "grpc_status.hpp"
#include "http/request_id.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/service/requests.hpp"
#include "kiln/v1/kilnd.grpc.pb.h"

namespace kiln::service {

namespace {

namespace v1 = kiln::v1;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using grpc_front::refuse;
using grpc_front::to_proto;

// Download's chunks: 1 MiB unless asked, never above 2 MiB (a client's default receive limit is 4 MiB).
constexpr std::uint32_t kDefaultChunkBytes = 1u << 20;
constexpr std::uint32_t kMaxChunkBytes = 2u << 20;

std::string_view metadata(const ServerContext& context, std::string_view key) {
  const auto& all = context.client_metadata();
  const auto it = all.find(grpc::string_ref(key.data(), key.size()));
  if (it == all.end()) return {};
  return {it->second.data(), it->second.size()};
}

Status bad_request(ServerContext& context, const RequestError& e) {
  return refuse(context, StatusCode::INVALID_ARGUMENT, "bad_request", e.text(), e.field);
}

}  // namespace

struct GrpcServer::Impl final : v1::Kilnd::Service {
  Impl(core::ServiceCore& c, const TokenStore& t, GrpcOptions o, Log l)
      : core(c), tokens(t), options(std::move(o)), log(std::move(l)) {}

  core::ServiceCore& core;
  const TokenStore& tokens;
  GrpcOptions options;
  Log log;
  static constexpr unsigned kAuthLinesPerSecond = 10;
  detail::LogBudget auth_log_budget{kAuthLinesPerSecond};
  std::unique_ptr<grpc::Server> server;
  int bound_port = 0;
  std::mutex stop_mutex;
  bool stopped = false;
  // How long stop() gives Shutdown to send the replies of calls whose handlers have returned.
  static constexpr std::chrono::milliseconds kReplyFlush{1000};
  // Calls in a handler, so stop() waits for those only: gRPC's Shutdown(deadline) also waits out
  // idle connections (5 s with a client still connected).
  std::atomic<bool> stopping{false};
  std::mutex calls_mutex;
  std::condition_variable calls_done;
  std::size_t calls = 0;
  struct CallScope {
    Impl& impl;
    explicit CallScope(Impl& i) : impl(i) {
      std::lock_guard lock(impl.calls_mutex);
      ++impl.calls;
    }
    ~CallScope() {
      std::lock_guard lock(impl.calls_mutex);
      if (--impl.calls == 0) impl.calls_done.notify_all();
    }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;
  };

  // The caller's tenant, or the refusal: UNAUTHENTICATED for a missing or unknown token, UNAVAILABLE
  // while the service drains (as HTTP answers 503 to every tenant's request then).
  std::optional<std::string> authenticate(ServerContext& context, Status& refusal) {
    auto [tenant, why] = tokens.check_bearer(metadata(context, "authorization"), "authorization", "metadata");
    if (!tenant) {
      // The reason only, never the token; at most kAuthLinesPerSecond lines.
      if (const auto left_out = auth_log_budget.take()) {
        LogFields fields{{"protocol", "grpc"}};
        if (*left_out > 0) fields.emplace_back("suppressed", *left_out);
        log.warn("auth_refused", why, fields);
      }
      refusal = refuse(context, StatusCode::UNAUTHENTICATED, "unauthorized", why);
      return std::nullopt;
    }
    if (core.draining()) {
      refusal = refuse(context, StatusCode::UNAVAILABLE, "shutting_down", "the service is shutting down");
      return std::nullopt;
    }
    return tenant;
  }

  // Counts the call's answer in kilnd's metrics (kiln_grpc_requests_total{method,code}) before gRPC
  // sends it, so a client that has its answer finds it counted.
  Status counted(std::string_view method, Status status) noexcept {
    try {
      core.grpc_answered(method, grpc_front::status_code_name(status.error_code()));
    } catch (...) {
    }
    return status;
  }

  // Runs `body(tenant)` for an authenticated caller, inside the request's log context; whatever it
  // throws (the front end's own trouble, or a bug) is answered as the core would answer it. The
  // answer is counted under `method` (kilnd.proto's name).
  template <class F>
  Status serve(ServerContext* context, std::string_view method, F&& body) {
    return counted(method, serve_uncounted(context, std::forward<F>(body)));
  }
  template <class F>
  Status serve_uncounted(ServerContext* context, F&& body) {
    const CallScope scope(*this);
    try {
      if (stopping.load(std::memory_order_acquire))
        return refuse(*context, StatusCode::UNAVAILABLE, "shutting_down", "the service is shutting down");
      Status refusal;
      auto tenant = authenticate(*context, refusal);
      if (!tenant) return refusal;
      const std::string request_id = http::request_id_for(metadata(*context, "x-request-id"));
      context->AddInitialMetadata("x-request-id", request_id);
      const LogContext log_context(request_id, *tenant);
      return body(*tenant, request_id);
    } catch (...) {
      try {
        return refuse(*context, core::error_from_exception(std::current_exception()));
      } catch (...) {
        return Status(StatusCode::INTERNAL, "internal error");
      }
    }
  }

  Status Health(ServerContext* context, const v1::HealthRequest*, v1::HealthReply* reply) override {
    try {
      const core::Readiness r = core.readiness();
      reply->set_live(true);
      reply->set_ready(r.why_not.empty());
      reply->set_why_not_ready(r.why_not);
      reply->set_draining(core.draining());
      return counted("Health", Status::OK);
    } catch (...) {
      return counted("Health", refuse(*context, core::error_from_exception(std::current_exception())));
    }
  }

  Status RegisterKernel(ServerContext* context, const v1::KernelRequest* request, v1::Kernel* reply) override {
    return serve(context, "RegisterKernel", [&](const std::string& tenant, const std::string&) {
      const std::string body = grpc_front::kernel_body(*request);
      Parsed<KernelRequest> parsed = parse_kernel_request(body, core.request_limits());
      if (!parsed.ok()) return bad_request(*context, parsed.error());
      auto k = core.register_kernel(tenant, std::move(parsed.value()), body);
      if (!k) return refuse(*context, k.error());
      to_proto(k.value(), *reply);
      return Status::OK;
    });
  }

  Status GetKernel(ServerContext* context, const v1::Id* request, v1::Kernel* reply) override {
    return serve(context, "GetKernel", [&](const std::string& tenant, const std::string&) {
      auto k = core.kernel(tenant, request->id());
      if (!k) return refuse(*context, k.error());
      to_proto(k.value(), *reply);
      return Status::OK;
    });
  }

  Status DeleteKernel(ServerContext* context, const v1::Id* request, v1::Empty*) override {
    return serve(context, "DeleteKernel", [&](const std::string& tenant, const std::string&) {
      auto done = core.delete_kernel(tenant, request->id());
      return done ? Status::OK : refuse(*context, done.error());
    });
  }

  Status ListKernels(ServerContext* context, const v1::PageRequest* request, v1::KernelPage* reply) override {
    return serve(context, "ListKernels", [&](const std::string& tenant, const std::string&) {
      const core::Page<core::KernelInfo> page = core.list_kernels(tenant, grpc_front::page_of(*request));
      for (const core::KernelInfo& k : page.items) to_proto(k, *reply->add_kernels());
      if (page.next_after) reply->set_next_after(*page.next_after);
      return Status::OK;
    });
  }

  Status CreateBuffer(ServerContext* context, const v1::BufferRequest* request, v1::Buffer* reply) override {
    return serve(context, "CreateBuffer", [&](const std::string& tenant, const std::string&) {
      Parsed<BufferRequest> parsed = parse_buffer_request(grpc_front::buffer_body(*request), core.request_limits());
      if (!parsed.ok()) return bad_request(*context, parsed.error());
      auto b = core.create_buffer(tenant, parsed.value());
      if (!b) return refuse(*context, b.error());
      to_proto(b.value(), *reply);
      return Status::OK;
    });
  }

  Status GetBuffer(ServerContext* context, const v1::Id* request, v1::Buffer* reply) override {
    return serve(context, "GetBuffer", [&](const std::string& tenant, const std::string&) {
      auto b = core.buffer(tenant, request->id());
      if (!b) return refuse(*context, b.error());
      to_proto(b.value(), *reply);
      return Status::OK;
    });
  }

  Status DeleteBuffer(ServerContext* context, const v1::Id* request, v1::Empty*) override {
    return serve(context, "DeleteBuffer", [&](const std::string& tenant, const std::string&) {
      auto done = core.delete_buffer(tenant, request->id());
      return done ? Status::OK : refuse(*context, done.error());
    });
  }

  Status ListBuffers(ServerContext* context, const v1::PageRequest* request, v1::BufferPage* reply) override {
    return serve(context, "ListBuffers", [&](const std::string& tenant, const std::string&) {
      const core::Page<core::BufferInfo> page = core.list_buffers(tenant, grpc_front::page_of(*request));
      for (const core::BufferInfo& b : page.items) to_proto(b, *reply->add_buffers());
      if (page.next_after) reply->set_next_after(*page.next_after);
      return Status::OK;
    });
  }

  // Each chunk is written when it arrives (one message at most max_message_bytes in memory); the
  // core checks each write's range. A chunk that names another buffer or offset is refused.
  Status Upload(ServerContext* context, grpc::ServerReader<v1::UploadChunk>* reader, v1::UploadReply* reply) override {
    return serve(context, "Upload", [&](const std::string& tenant, const std::string&) {
      v1::UploadChunk chunk;
      if (!reader->Read(&chunk))
        return refuse(*context, StatusCode::INVALID_ARGUMENT, "bad_request", "an upload needs at least one chunk", "buffer");
      const std::uint64_t id = chunk.buffer();
      if (auto b = core.buffer(tenant, id); !b) return refuse(*context, b.error());
      std::uint64_t offset = chunk.offset(), written = 0;
      bool first = true;
      do {
        if (!first && ((chunk.buffer() != 0 && chunk.buffer() != id) || (chunk.offset() != 0 && chunk.offset() != offset)))
          return refuse(*context, StatusCode::INVALID_ARGUMENT, "bad_request",
                        "a later chunk names another buffer or offset (leave them 0: chunks follow on)",
                        chunk.buffer() != 0 && chunk.buffer() != id ? "buffer" : "offset");
        const std::string& data = chunk.data();
        auto done = core.write_buffer(tenant, id, offset, std::as_bytes(std::span(data.data(), data.size())));
        if (!done) return refuse(*context, done.error());
        offset += data.size();
        written += data.size();
        first = false;
      } while (reader->Read(&chunk));
      reply->set_bytes(written);
      return Status::OK;
    });
  }

  // Read chunk by chunk, so a large buffer never sits whole in kilnd's memory.
  Status Download(ServerContext* context, const v1::DownloadRequest* request, grpc::ServerWriter<v1::DataChunk>* writer) override {
    return serve(context, "Download", [&](const std::string& tenant, const std::string&) {
      auto b = core.buffer(tenant, request->buffer());
      if (!b) return refuse(*context, b.error());
      const std::uint64_t size = b->bytes, offset = request->offset();
      const std::optional<std::uint64_t> bytes =
          request->has_bytes() ? std::optional<std::uint64_t>(request->bytes()) : std::nullopt;
      if (offset > size || (bytes && *bytes > size - offset)) {
        auto refused = core.read_buffer(tenant, request->buffer(), offset, bytes);  // the core's words for it
        if (!refused) return refuse(*context, refused.error());
      }
      const std::uint64_t end = bytes ? offset + *bytes : size;
      const std::uint32_t chunk_bytes =
          request->chunk_bytes() == 0 ? kDefaultChunkBytes : std::min(request->chunk_bytes(), kMaxChunkBytes);
      v1::DataChunk chunk;
      for (std::uint64_t at = offset; at < end; at += chunk_bytes) {
        if (context->IsCancelled()) return Status(StatusCode::CANCELLED, "the client went away");
        auto data = core.read_buffer(tenant, request->buffer(), at, std::min<std::uint64_t>(chunk_bytes, end - at));
        if (!data) return refuse(*context, data.error());
        *chunk.mutable_data() = std::move(data.value());
        if (!writer->Write(chunk)) return Status(StatusCode::CANCELLED, "the client went away");
      }
      return Status::OK;
    });
  }

  // Client shared memory: the HTTP API's parsers and the core's rules (allow_client_shm, the
  // tenant's regions only, bounds); the owner pid is the request's, as over HTTP.
  Status RegisterSharedMemory(ServerContext* context, const v1::SharedMemoryRequest* request, v1::SharedMemory* reply) override {
    return serve(context, "RegisterSharedMemory", [&](const std::string& tenant, const std::string&) {
      Parsed<SharedMemoryRequest> parsed =
          parse_shared_memory_request(grpc_front::shared_memory_body(*request), core.request_limits());
      if (!parsed.ok()) return bad_request(*context, parsed.error());
      auto r = core.register_shared_memory(tenant, parsed.value());
      if (!r) return refuse(*context, r.error());
      to_proto(r.value(), *reply);
      return Status::OK;
    });
  }

  Status GetSharedMemory(ServerContext* context, const v1::Id* request, v1::SharedMemory* reply) override {
    return serve(context, "GetSharedMemory", [&](const std::string& tenant, const std::string&) {
      auto r = core.shared_memory(tenant, request->id());
      if (!r) return refuse(*context, r.error());
      to_proto(r.value(), *reply);
      return Status::OK;
    });
  }

  Status UnregisterSharedMemory(ServerContext* context, const v1::Id* request, v1::Empty*) override {
    return serve(context, "UnregisterSharedMemory", [&](const std::string& tenant, const std::string&) {
      auto done = core.unregister_shared_memory(tenant, request->id());
      return done ? Status::OK : refuse(*context, done.error());
    });
  }

  Status ListSharedMemory(ServerContext* context, const v1::PageRequest* request, v1::SharedMemoryPage* reply) override {
    return serve(context, "ListSharedMemory", [&](const std::string& tenant, const std::string&) {
      const core::Page<core::SharedMemoryInfo> page = core.list_shared_memory(tenant, grpc_front::page_of(*request));
      for (const core::SharedMemoryInfo& r : page.items) to_proto(r, *reply->add_regions());
      if (page.next_after) reply->set_next_after(*page.next_after);
      return Status::OK;
    });
  }

  Status CopySharedMemory(ServerContext* context, const v1::SharedMemoryCopyRequest* request,
                          v1::SharedMemoryCopyReply* reply) override {
    return serve(context, "CopySharedMemory", [&](const std::string& tenant, const std::string&) {
      Parsed<SharedMemoryCopyRequest> parsed =
          parse_shared_memory_copy_request(grpc_front::shared_memory_copy_body(*request), core.request_limits());
      if (!parsed.ok()) return bad_request(*context, parsed.error());
      auto copied = core.copy_shared_memory(tenant, request->buffer(), parsed.value());
      if (!copied) return refuse(*context, copied.error());
      reply->set_bytes(copied.value());
      reply->set_direction(parsed.value().upload ? "upload" : "download");
      return Status::OK;
    });
  }

  // A LaunchRequest's tag is the client's, echoed in its Job; bounded, as every other field is.
  static constexpr std::size_t kMaxTagBytes = 256;
  // LaunchStream: launches with wait in flight on one stream at most (the next request is read when
  // one is answered), so one stream cannot fill the scheduler's queue faster than it drains.
  static constexpr std::size_t kStreamInFlight = 64;
  // How long a stream's waiter waits on its oldest launch before looking at the others again: a
  // launch that finishes behind a longer one is answered at most this much later.
  static constexpr std::chrono::milliseconds kStreamSweep{10};

  // The request as the core takes it (the HTTP API's parser), or the refusal.
  Status parse_launch(ServerContext& context, const v1::LaunchRequest& request, std::optional<LaunchRequest>& out) {
    if (request.tag().size() > kMaxTagBytes) {
      std::string message = "tag: ";
      message += std::to_string(request.tag().size());
      message += " bytes, at most ";
      message += std::to_string(kMaxTagBytes);
      return refuse(context, StatusCode::INVALID_ARGUMENT, "bad_request", message, "tag");
    }
    Parsed<LaunchRequest> parsed = parse_launch_request(grpc_front::launch_body(request), core.request_limits());
    if (!parsed.ok()) return bad_request(context, parsed.error());
    out = std::move(parsed.value());
    return Status::OK;
  }

  Status Launch(ServerContext* context, const v1::LaunchRequest* request, v1::Job* reply) override {
    return serve(context, "Launch", [&](const std::string& tenant, const std::string& request_id) {
      std::optional<LaunchRequest> launch;
      if (Status s = parse_launch(*context, *request, launch); !s.ok()) return s;
      auto launched = core.launch(tenant, std::move(*launch), request_id);
      if (!launched) return refuse(*context, launched.error());
      to_proto(launched->job, *reply);
      reply->set_tag(request->tag());
      return Status::OK;
    });
  }

  // Pipelined. This thread reads and submits: each launch goes to the core without wait, so the next
  // request is read while it runs; one without wait is answered at once (queued), as Launch answers
  // it. One with wait joins `waiting`, at most kStreamInFlight of them (the reader waits for room).
  // A waiter thread answers those as they finish (or when max_wait has passed, with the job as it
  // is then, as Launch does): it waits on the oldest for up to kStreamSweep, then answers every one
  // finished. Writes are serialized; the first refusal stops the reading, and the stream ends with
  // it once the launches accepted before it are answered. A client gone ends both threads.
  Status LaunchStream(ServerContext* context, grpc::ServerReaderWriter<v1::Job, v1::LaunchRequest>* stream) override {
    return serve(context, "LaunchStream", [&](const std::string& tenant, const std::string& request_id) {
      struct Waiting {
        std::uint64_t id = 0;
        std::string tag;
        std::chrono::steady_clock::time_point until;
      };
      std::mutex mutex;  // before write_mutex, when both are held
      std::condition_variable changed;
      std::vector<Waiting> waiting;  // submitted with wait, not answered; oldest first
      bool reading = true;
      Status ended = Status::OK;  // the first refusal, or the client gone
      std::mutex write_mutex;

      auto write = [&](const JobSnapshot& snapshot, const std::string& tag) {
        v1::Job job;
        to_proto(snapshot, job);
        job.set_tag(tag);
        std::lock_guard lock(write_mutex);
        return stream->Write(job);
      };
      // The stream's end, once: `make` adds its trailers to the context, so it runs for the first only.
      auto end_with = [&](auto make) {
        std::lock_guard lock(mutex);
        if (ended.ok()) {
          std::lock_guard write_lock(write_mutex);
          ended = make();
        }
        changed.notify_all();
      };
      auto client_gone = [&] {
        end_with([] { return Status(StatusCode::CANCELLED, "the client went away"); });
        std::lock_guard lock(mutex);
        waiting.clear();  // nobody to answer: the reader stops waiting for room
        changed.notify_all();
      };

      auto wait_loop = [&]() noexcept {
        try {
          for (;;) {
            Waiting oldest;
            {
              std::unique_lock lock(mutex);
              changed.wait(lock, [&] { return !waiting.empty() || !reading; });
              if (waiting.empty()) return;  // the reader is done, and every launch answered
              oldest = waiting.front();
            }
            if (context->IsCancelled()) return client_gone();
            const auto left = oldest.until - std::chrono::steady_clock::now();
            if (left > std::chrono::steady_clock::duration::zero())
              (void)core.job(tenant, oldest.id,
                             std::min(kStreamSweep, std::chrono::ceil<std::chrono::milliseconds>(left)));
            std::vector<Waiting> now;
            {
              std::lock_guard lock(mutex);
              now = waiting;
            }
            for (const Waiting& w : now) {
              auto job = core.job(tenant, w.id, std::chrono::milliseconds(0));
              if (job && job->state != JobState::finished && std::chrono::steady_clock::now() < w.until) continue;
              if (!job) end_with([&] { return refuse(*context, job.error()); });  // gone from the records
              else if (!write(job.value(), w.tag)) return client_gone();
              std::lock_guard lock(mutex);
              std::erase_if(waiting, [&](const Waiting& x) { return x.id == w.id; });
              changed.notify_all();
            }
          }
        } catch (...) {
          end_with([&] { return refuse(*context, core::error_from_exception(std::current_exception())); });
          std::lock_guard lock(mutex);
          waiting.clear();
          changed.notify_all();
        }
      };

      std::thread waiter;  // started with the first launch it waits for
      // However the reading ends: the waiter answers what is left, then is joined. Idempotent.
      auto stop_reading = [&] {
        {
          std::lock_guard lock(mutex);
          reading = false;
          changed.notify_all();
        }
        if (waiter.joinable()) waiter.join();
      };
      struct OnExit {
        decltype(stop_reading)& run;
        ~OnExit() { run(); }
      } on_exit{stop_reading};

      const std::chrono::milliseconds max_wait = core.config().max_wait;
      v1::LaunchRequest request;
      for (;;) {
        {
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return waiting.size() < kStreamInFlight || !ended.ok(); });
          if (!ended.ok()) break;
        }
        if (!stream->Read(&request)) break;
        std::optional<LaunchRequest> launch;
        Status refused;
        {
          std::lock_guard write_lock(write_mutex);  // a refusal's trailers, not beside a write
          refused = parse_launch(*context, request, launch);
        }
        if (!refused.ok()) {
          end_with([&] { return refused; });
          break;
        }
        const bool wait = launch->wait;
        launch->wait = false;  // submitted here, waited for by the waiter
        auto launched = core.launch(tenant, std::move(*launch), request_id);
        if (!launched) {
          end_with([&] { return refuse(*context, launched.error()); });
          break;
        }
        if (!wait) {
          if (!write(launched->job, request.tag())) {
            client_gone();
            break;
          }
          continue;
        }
        std::lock_guard lock(mutex);
        waiting.push_back({launched->job.id, request.tag(), std::chrono::steady_clock::now() + max_wait});
        changed.notify_all();
        if (!waiter.joinable()) waiter = std::thread(wait_loop);
      }
      stop_reading();
      std::lock_guard lock(mutex);
      return ended;
    });
  }

  Status GetJob(ServerContext* context, const v1::JobRequest* request, v1::Job* reply) override {
    return serve(context, "GetJob", [&](const std::string& tenant, const std::string&) {
      auto job = core.job(tenant, request->id(), std::chrono::milliseconds(std::min<std::uint32_t>(request->wait_ms(), 1u << 30)));
      if (!job) return refuse(*context, job.error());
      to_proto(job.value(), *reply);
      return Status::OK;
    });
  }

  Status ListJobs(ServerContext* context, const v1::PageRequest* request, v1::JobPage* reply) override {
    return serve(context, "ListJobs", [&](const std::string& tenant, const std::string&) {
      const core::Page<JobSnapshot> page = core.list_jobs(tenant, grpc_front::page_of(*request));
      for (const JobSnapshot& j : page.items) to_proto(j, *reply->add_jobs());
      if (page.next_after) reply->set_next_after(*page.next_after);
      return Status::OK;
    });
  }

  Status ListLibraries(ServerContext* context, const v1::Empty*, v1::LibraryList* reply) override {
    return serve(context, "ListLibraries", [&](const std::string& tenant, const std::string&) {
      for (const core::LibraryInfo& l : core.libraries(tenant)) to_proto(l, *reply->add_libraries());
      return Status::OK;
    });
  }

  Status RepositoryIndex(ServerContext* context, const v1::Empty*, v1::RepositoryList* reply) override {
    return serve(context, "RepositoryIndex", [&](const std::string& tenant, const std::string&) {
      for (const core::RepositoryPackage& p : core.repository_index(tenant)) to_proto(p, *reply->add_packages());
      const core::KernelRepository* repository = core.repository();
      reply->set_enabled(repository != nullptr);
      reply->set_mode(repository ? std::string(to_string(repository->config().mode)) : "none");
      return Status::OK;
    });
  }

  Status GetPackage(ServerContext* context, const v1::PackageRequest* request, v1::Package* reply) override {
    return serve(context, "GetPackage", [&](const std::string& tenant, const std::string&) {
      auto p = core.repository_package(tenant, request->name());
      if (!p) return refuse(*context, p.error());
      to_proto(p.value(), *reply);
      return Status::OK;
    });
  }

  // Load and unload: the version through the HTTP API's parser (its rules: at least 1).
  template <class Call>
  Status package_control(ServerContext* context, std::string_view method, const v1::PackageRequest* request,
                         v1::Package* reply, Call call) {
    return serve(context, method, [&](const std::string& tenant, const std::string&) {
      Parsed<PackageVersionRequest> parsed =
          parse_package_version_request(grpc_front::package_version_body(*request), core.request_limits());
      if (!parsed.ok()) return bad_request(*context, parsed.error());
      auto p = call(tenant, parsed.value().version);
      if (!p) return refuse(*context, p.error());
      to_proto(p.value(), *reply);
      return Status::OK;
    });
  }

  Status LoadPackage(ServerContext* context, const v1::PackageRequest* request, v1::Package* reply) override {
    return package_control(context, "LoadPackage", request, reply,
                           [&](const std::string& tenant, std::optional<std::uint64_t> version) {
      return core.load_package(tenant, request->name(), version);
    });
  }

  Status UnloadPackage(ServerContext* context, const v1::PackageRequest* request, v1::Package* reply) override {
    return package_control(context, "UnloadPackage", request, reply,
                           [&](const std::string& tenant, std::optional<std::uint64_t> version) {
      return core.unload_package(tenant, request->name(), version);
    });
  }

  Status RollbackPackage(ServerContext* context, const v1::PackageRequest* request, v1::Package* reply) override {
    return serve(context, "RollbackPackage", [&](const std::string& tenant, const std::string&) {
      if (request->has_version())
        return refuse(*context, StatusCode::INVALID_ARGUMENT, "bad_request",
                      "version: a rollback returns to the previous version; LoadPackage with a version serves any other",
                      "version");
      auto p = core.rollback_package(tenant, request->name());
      if (!p) return refuse(*context, p.error());
      to_proto(p.value(), *reply);
      return Status::OK;
    });
  }
};

GrpcOptions grpc_options(const ServiceConfig& config) {
  GrpcOptions o;
  o.address = config.listen_address;
  o.port = config.grpc_port;
  o.max_message_bytes = config.max_json_bytes;
  o.threads = config.grpc_threads;
  return o;
}

GrpcServer::GrpcServer(core::ServiceCore& core, const TokenStore& tokens, GrpcOptions options, Log log)
    : impl_(std::make_unique<Impl>(core, tokens, std::move(options), std::move(log))) {}

GrpcServer::~GrpcServer() { stop(); }

void GrpcServer::start() {
  Impl& s = *impl_;
  if (s.server) return;
  const std::string address = (s.options.address.find(':') != std::string::npos ? "[" + s.options.address + "]"
                                                                                 : s.options.address) +
                              ":" + std::to_string(s.options.port);
  grpc::ServerBuilder builder;
  // kilnd's tokens are bearer tokens, as over HTTP: TLS, where wanted, is a proxy's (docs/SERVICE.md).
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s.bound_port);
  builder.RegisterService(&s);
  const int max_message = static_cast<int>(std::min<std::size_t>(s.options.max_message_bytes, 1u << 30));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(std::max(max_message, static_cast<int>(kMaxChunkBytes) + 1024));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, s.options.max_concurrent_streams);
  grpc::ResourceQuota quota("kilnd");
  quota.SetMaxThreads(std::max(s.options.threads, 2) + 2);  // the pollers take threads from the same quota
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  s.server = builder.BuildAndStart();
  if (!s.server || s.bound_port == 0) {
    s.server.reset();
    throw Error(Errc::unavailable, "cannot serve gRPC on " + address + " (in use, or not an address of this machine)");
  }
  s.log.info("listening", "serving gRPC on " + s.options.address + ":" + std::to_string(s.bound_port),
             {{"address", s.options.address}, {"port", s.bound_port}, {"protocol", "grpc"}});
}

int GrpcServer::port() const noexcept { return impl_->bound_port; }

void GrpcServer::stop(std::chrono::milliseconds grace) noexcept {
  Impl& s = *impl_;
  std::lock_guard lock(s.stop_mutex);
  if (s.stopped || !s.server) return;
  s.log.info("shutdown", "gRPC: new calls refused; calls in progress get " + std::to_string(grace.count()) + " ms",
             {{"phase", "grpc"}});
  s.stopped = true;
  try {
    s.stopping.store(true, std::memory_order_release);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    {
      std::unique_lock calls_lock(s.calls_mutex);
      s.calls_done.wait_until(calls_lock, deadline, [&s] { return s.calls == 0; });
    }
    // A call counts as done once its handler returns, before gRPC has sent the reply, so Shutdown gets a
    // moment to send it; not the whole grace, since Shutdown(deadline) also waits out idle connections.
    const auto left = std::max(std::chrono::steady_clock::duration{}, deadline - std::chrono::steady_clock::now());
    const auto flush = std::min<std::chrono::steady_clock::duration>(left, Impl::kReplyFlush);
    s.server->Shutdown(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(flush));
    s.server->Wait();
    s.server.reset();
    s.log.info("shutdown", "gRPC stopped", {{"phase", "grpc"}});
  } catch (...) {
  }
}

std::span<const std::string_view> GrpcServer::unimplemented_methods() noexcept { return {}; }

}  // namespace kiln::service
