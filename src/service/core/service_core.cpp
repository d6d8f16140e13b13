#include "core/service_core.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include "detail/kernel_build.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/ipc/pidfd.hpp"
#include "kiln/jit/policy_error.hpp"
#include "kiln/memory/out_of_memory.hpp"
#include "kiln/topology/svg.hpp"

namespace kiln::service::core {

namespace {

using nlohmann::json;

jit::KernelCacheOptions cache_options(const ServiceConfig& config) {
  jit::KernelCacheOptions o;
  o.memory_bytes = config.cache_memory_bytes;
  o.disk.directory = config.cache_dir;
  o.policy = config.source_policy;
  if (config.compile_workers > 0) {
    o.compile_worker = jit::CompileWorkerOptions{};
    try {
      o.compile_worker->executable = jit::CompileWorker::default_executable();
    } catch (const Error& e) {
      throw Error(Errc::invalid_argument, e.detail() + "; kilnd compiles in compile worker processes by default "
                                                       "(compile_workers), or set compile_workers, "
                                                       "source_policy.max_compile_time_ms and max_compile_memory_bytes "
                                                       "to 0 to compile in its own process");
    }
    o.compile_worker_processes = config.compile_workers;
  }
  return o;
}

detail::CompileGateLimits gate_limits(const ServiceConfig& config) {
  const unsigned slots = config.compile_workers > 0 ? config.compile_workers : std::max(1u, std::thread::hardware_concurrency());
  return {slots, compiles_per_tenant(config), config.max_queued_compiles_per_tenant};
}

InProcessQueueOptions queue_options(const ServiceConfig& config) {
  return {config.max_queued_jobs, config.max_queued_jobs_per_tenant, config.aging_step};
}

// A GPU in concurrent mode gets a dispatcher per stream, one in isolation dispatchers_per_device.
SchedulerOptions scheduler_options(const ServiceConfig& config, GpuBackend& backend) {
  SchedulerOptions o;
  o.dispatchers_per_device = config.dispatchers_per_device;
  o.lease_grace = std::chrono::milliseconds(5000);
  o.job_retention = config.job_retention;
  for (const DeviceStatus& d : backend.devices()) o.dispatchers_by_device[d.ordinal] = dispatchers_per_gpu(config, d.ordinal);
  return o;
}

bool uses_shared_queue(const ServiceConfig& config) { return !config.queue_url.empty() && config.queue_url != "memory"; }

std::unique_ptr<RedisStreamQueue> shared_queue_for(const ServiceConfig& config) {
  if (!uses_shared_queue(config)) return nullptr;
  // Without hiredis the queue's RedisClient refuses to connect, naming the address and the reason.
  StreamQueueOptions o;
  o.prefix = config.queue_prefix;
  o.lease = config.cluster_lease;
  o.retention = config.job_retention;
  return std::make_unique<RedisStreamQueue>(parse_redis_url(config.queue_url), o);
}

const ServiceConfig& validated(const ServiceConfig& c) {
  validate(c);
  return c;
}

ServiceError not_found(std::string_view noun, std::uint64_t id, const std::string& prefix = {}) {
  return error(ErrorKind::not_found, prefix + std::string(noun) + " " + std::to_string(id) + " not found");
}

std::size_t page_limit(const PageRequest& page) { return std::clamp<std::size_t>(page.limit, 1, kMaxPageSize); }

template <class T, class Id>
Page<T> make_page(std::vector<T> items, std::size_t limit, Id id_of) {
  Page<T> page;
  if (items.size() > limit) {
    items.resize(limit);
    page.next_after = id_of(items.back());
  }
  page.items = std::move(items);
  return page;
}

KernelInfo info_of(const detail::RegisteredKernel& k) {
  KernelInfo info;
  info.id = k.id;
  info.name = k.program.name;
  info.lowered_names = k.images.begin()->second.artifact.lowered_names();
  info.libraries = k.libraries;
  for (const auto& [arch, image] : k.images)
    info.targets.push_back({image.artifact.target().arch_name(), std::string(jit::to_string(image.artifact.kind()))});
  return info;
}

}  // namespace

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::invalid_argument: return "invalid_argument";
    case ErrorKind::too_large: return "too_large";
    case ErrorKind::policy: return "policy";
    case ErrorKind::compile_failed: return "compile_failed";
    case ErrorKind::too_many_kernels: return "too_many_kernels";
    case ErrorKind::too_many_regions: return "too_many_regions";
    case ErrorKind::too_many_compiles: return "too_many_compiles";
    case ErrorKind::compile_busy: return "compile_busy";
    case ErrorKind::compile_pending: return "compile_pending";
    case ErrorKind::queue_full: return "queue_full";
    case ErrorKind::shutting_down: return "shutting_down";
    case ErrorKind::out_of_memory: return "out_of_memory";
    case ErrorKind::out_of_host_memory: return "out_of_host_memory";
    case ErrorKind::unavailable: return "unavailable";
    case ErrorKind::forbidden: return "forbidden";
    case ErrorKind::library_unavailable: return "library_unavailable";
    case ErrorKind::not_serving: return "not_serving";
    case ErrorKind::package_refused: return "package_refused";
    case ErrorKind::internal: return "internal";
  }
  return "internal";
}

// The API's names are the kinds' own, but for four that predate the kinds.
nlohmann::json error_members(const ServiceError& e) {
  nlohmann::json extra = e.details.is_object() ? e.details : nlohmann::json::object();
  if (!e.rule.empty()) extra["rule"] = e.rule;
  if (!e.field.empty()) extra["field"] = e.field;
  if (!e.hint.empty()) extra["hint"] = e.hint;
  return extra;
}

std::string_view api_error_code(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_argument: return "bad_request";
    case ErrorKind::too_large: return "payload_too_large";
    case ErrorKind::policy: return "source_policy";
    case ErrorKind::unavailable: return "no_gpu";
    default: return to_string(kind);
  }
}

ServiceError error_from_exception(std::exception_ptr ep) noexcept {
  try {
    try {
      std::rethrow_exception(ep);
    } catch (const memory::OutOfMemoryError& e) {
      const memory::MemoryPicture& p = e.picture();
      ServiceError s = error(ErrorKind::out_of_memory, e.detail());
      s.error_name = std::string(e.name());
      s.details = {{"device", p.device}, {"requested", p.requested}, {"free", p.free},
                   {"total", p.total},   {"in_use", p.in_use},       {"reserved", p.reserved}};
      return s;
    } catch (const jit::PolicyError& e) {
      ServiceError s = error(ErrorKind::policy, e.detail());
      s.rule = e.rule();
      return s;
    } catch (const Error& e) {
      ServiceError s;
      if (e.is(Errc::driver_not_found) || e.is(Errc::nvrtc_not_found))
        s = error(ErrorKind::unavailable, e.detail().empty() ? e.what() : e.detail());
      else if (e.is(Errc::nvjitlink_not_found)) {
        s = error(ErrorKind::library_unavailable, e.detail().empty() ? e.what() : e.detail());
        s.details = {{"name", std::string(e.name())}};
      } else if (e.is(Errc::invalid_argument))
        s = error(ErrorKind::invalid_argument, e.detail());
      // A kernel compiled at registration for the GPUs then present, and refused by NVRTC (or
      // nvJitLink) for a GPU of another architecture that came up since (ServiceCore::image_for).
      else if (e.is(Errc::compile_failed) || e.is(Errc::link_failed))
        s = error(ErrorKind::compile_failed, e.detail());
      else {
        s = error(ErrorKind::internal, e.what());
        s.details = {{"name", std::string(e.name())}};
      }
      s.error_name = std::string(e.name());
      return s;
    } catch (const std::bad_alloc&) {
      return error(ErrorKind::out_of_host_memory, "kilnd could not allocate host memory for this request; retry later");
    } catch (const std::exception& e) {
      return error(ErrorKind::internal, std::string("internal error: ") + e.what());
    } catch (...) {
      return error(ErrorKind::internal, "internal error: unknown exception");
    }
  } catch (...) {
    ServiceError s;
    return s;
  }
}

template <class T, class F>
Result<T> ServiceCore::guarded(F&& body) {
  try {
    return body();
  } catch (...) {
    return error_from_exception(std::current_exception());
  }
}

ServiceCore::ServiceCore(ServiceConfig config, GpuBackend& backend, std::shared_ptr<const topology::Topology> topology,
                         Log log)
    : config_(validated(config)),
      backend_(backend),
      log_(std::move(log)),
      topology_(topology),
      libraries_(config_.device_libraries),
      cache_(cache_options(config_)),
      compile_gate_(gate_limits(config_)),
      queue_(queue_options(config_)),
      scheduler_(backend_, queue_, metrics_,
                 scheduler_options(config_, backend_),
                 std::move(topology)),
      shared_queue_(shared_queue_for(config_)) {
  if (shared_queue_)
    cluster_ = std::make_unique<detail::ClusterCompiles>(
        *shared_queue_, config_.node_name.empty() ? detail::default_node_name() : config_.node_name,
        config_.cluster_compile_threads, config_.cluster_max_deliveries, cache_, libraries_, log_);
  topology_svg_ = topology_ ? topology::render_svg(*topology_) : topology::render_unavailable_svg(topology_reason());
  if (!config_.repository.path.empty()) {
    KernelRepository::Hooks hooks;
    hooks.architectures = [this] {
      std::vector<int> archs;
      for (const DeviceStatus& d : backend_.devices()) archs.push_back(d.arch);
      if (archs.empty()) archs.push_back(config_.fallback_arch);
      return archs;
    };
    hooks.compile = [this](const jit::Program& program, int arch) { return detail::build_image(cache_, program, arch); };
    hooks.log = log_;
    repository_ = std::make_unique<KernelRepository>(config_.repository, std::move(hooks));
  }
}

ServiceCore::~ServiceCore() { shutdown(); }

RequestLimits ServiceCore::request_limits() const noexcept {
  return {config_.max_launch_arguments, config_.max_json_depth, config_.max_json_values};
}

void ServiceCore::drain_jobs() noexcept {
  begin_drain();
  scheduler_.shutdown(config_.drain_timeout);
}

void ServiceCore::shutdown() noexcept {
  drain_jobs();
  shared_memory_.clear();  // unpinned and unmapped while the backend is still there
  {
    std::lock_guard lock(client_owners_mutex_);
    client_owners_.clear();
  }
  for (const detail::BufferRecord& b : buffers_.take_all()) {
    try {
      backend_.free_buffer(b.id);
    } catch (...) {
      // The backend is going away too (its worker died); nothing more can be freed from here.
    }
  }
}

std::string ServiceCore::why_not_ready(const std::vector<DeviceStatus>& devices) {
  if (devices.empty()) {
    const std::string reason = backend_.unavailable_reason();
    return "no GPU on this machine: " + (reason.empty() ? "the GPU backend reports no devices" : reason);
  }
  std::string why;
  for (const DeviceStatus& d : devices) {
    if (d.worker_up && !d.circuit_open) return {};
    why += (why.empty() ? "" : "; ") + std::string("GPU ") + std::to_string(d.ordinal) + ": " +
           (!d.worker_up ? "no worker" : "circuit breaker open") + (d.last_failure.empty() ? "" : " (" + d.last_failure + ")");
  }
  return "no GPU can take work: " + why;
}

Readiness ServiceCore::readiness() {
  Readiness r;
  r.devices = backend_.devices();
  r.why_not = draining() ? "the service is shutting down" : why_not_ready(r.devices);
  return r;
}

std::string ServiceCore::metrics_text() {
  MetricsInputs in;
  in.queue_depth = queue_.depth();
  in.jobs_running = scheduler_.running();
  in.devices = backend_.devices();
  in.buffer_bytes_by_device = buffers_.bytes_by_device();
  in.buffer_bytes_by_tenant = buffers_.bytes_by_tenant();
  in.kernels = kernels_.size();
  in.compiles_running = compile_gate_.running();
  in.compiles_waiting = compile_gate_.waiting();
  in.cache = cache_.stats();
  in.ready = !draining() && why_not_ready(in.devices).empty();
  if (cluster_) in.cluster = cluster_->counters();
  if (repository_) {
    const RepositoryCounters c = repository_->counters();
    auto count = [&](VersionState s) { return c.versions.contains(s) ? c.versions.at(s) : std::size_t{0}; };
    in.repository = RepositoryMetrics{c.loads, c.failures, c.swaps, c.rollbacks, count(VersionState::loading),
                                      count(VersionState::ready), count(VersionState::failed), count(VersionState::unloaded)};
  }
  return metrics_.render(in);
}

// ---- the status page

std::string ServiceCore::topology_reason() {
  if (topology_) return {};
  if (backend_.devices().empty()) {
    const std::string reason = backend_.unavailable_reason();
    return "no GPU on this machine: " + (reason.empty() ? "the GPU backend reports no devices" : reason);
  }
  return "kilnd places work without the machine's topology: its discovery failed at start (the no_topology log line says why)";
}

ServiceStatus ServiceCore::status(const std::string& tenant) {
  ServiceStatus s;
  s.node = config_.node_name.empty() ? detail::default_node_name() : config_.node_name;
  s.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.draining = draining();
  s.devices = backend_.devices();
  s.why_not_ready = s.draining ? "the service is shutting down" : why_not_ready(s.devices);
  s.ready = s.why_not_ready.empty();
  s.gpu_available = !s.devices.empty();
  if (!s.gpu_available) {
    const std::string reason = backend_.unavailable_reason();
    s.no_gpu_reason = reason.empty() ? "the GPU backend reports no devices" : reason;
  }
  s.buffer_bytes_by_device = buffers_.bytes_by_device();
  s.queue_depth = queue_.depth();
  s.jobs_running = scheduler_.running();
  for (std::size_t o = 0; o < kJobOutcomeCount; ++o) s.launches_total[o] = metrics_.jobs(static_cast<JobOutcome>(o));
  s.recent = metrics_.recent().launches();
  s.kernels = kernels_.size();
  s.compiles_running = compile_gate_.running();
  s.compiles_waiting = compile_gate_.waiting();
  s.cache = cache_.stats();
  if (cluster_) s.cluster = cluster_->counters();
  s.topology_known = topology_ != nullptr;
  s.topology_reason = topology_reason();
  for (RecentFailure& f : metrics_.recent().failures())
    if (f.tenant.empty() || f.tenant == tenant) s.failures.push_back(std::move(f));
  return s;
}

void ServiceCore::note_refusal(std::string_view source, const std::string& tenant, std::string_view request_id,
                               const ServiceError& e) noexcept {
  // A missing kernel, buffer or job is the caller's own business, not the service's failure.
  if (e.kind == ErrorKind::not_found) return;
  try {
    RecentFailure f;
    f.time = std::chrono::system_clock::now();
    f.source = std::string(source);
    f.tenant = tenant;
    f.request_id = std::string(request_id);
    f.error = e.error_name.empty() ? std::string(to_string(e.kind)) : e.error_name;
    f.message = e.message;
    if (!e.rule.empty()) f.message += " (rule " + e.rule + ")";
    f.hint = e.hint;
    if (e.details.is_object() && e.details.contains("device") && e.details["device"].is_number_integer())
      f.device = e.details["device"].get<int>();
    metrics_.recent().failure(std::move(f));
  } catch (...) {
  }
}

void ServiceCore::worker_event(const WorkerEvent& event) noexcept {
  using Kind = WorkerEvent::Kind;
  if (event.kind == Kind::worker_started || event.kind == Kind::circuit_closed) return;
  // A worker stopped by kilnd itself (shutdown) is no failure.
  if (event.kind == Kind::worker_exited && draining()) return;
  try {
    RecentFailure f;
    f.time = std::chrono::system_clock::now();
    f.source = "worker";
    f.request_id = event.request_id;
    f.device = event.device;
    f.job = event.job_id;
    f.error = event.error_name.empty() ? std::string(to_string(event.kind)) : event.error_name;
    f.message = std::string(to_string(event.kind)) + ": " + event.message;
    if (event.kind == Kind::circuit_open)
      f.hint = "the GPU is not scheduled until the cooldown ends; look at the worker exits before it";
    metrics_.recent().failure(std::move(f));
  } catch (...) {
  }
}

// ---- kernels

Result<KernelRegistration> ServiceCore::register_kernel(const std::string& tenant, KernelRequest request,
                                                         std::string_view request_body) {
  Result<KernelRegistration> result =
      guarded<KernelRegistration>([&] { return register_now(tenant, request, request_body); });
  if (!result) note_refusal("registration", tenant, LogContext::request_id(), result.error());
  return result;
}

Result<KernelRegistration> ServiceCore::register_now(const std::string& tenant, KernelRequest& request,
                                                     std::string_view request_body) {
  // Every architecture of the GPUs present now, so no launch waits for a compile (image_for).
  std::set<int> archs;
  for (const DeviceStatus& d : backend_.devices()) archs.insert(d.arch);
  if (archs.empty()) archs.insert(config_.fallback_arch);

  // A library another tenant may link reads as absent, like one that does not exist.
  std::vector<const detail::DeviceLibraryEntry*> libraries;
  for (std::size_t i = 0; i < request.libraries.size(); ++i) {
    const detail::DeviceLibraryEntry* lib = libraries_.find(request.libraries[i], tenant);
    if (!lib) {
      std::string field = "libraries[";
      field.append(std::to_string(i)).append("]");
      return error(ErrorKind::not_found, field + ": device library '" + request.libraries[i] + "' not found", field);
    }
    libraries.push_back(lib);
  }

  detail::KernelBuild build;
  std::string compiled_by;
  if (cluster_) {
    // Any node may compile it; this one waits.
    detail::ClusterCompiles::Outcome outcome =
        cluster_->compile(tenant, std::string(request_body), archs, config_.max_wait, libraries);
    if (!outcome.build) {
      ServiceError e = error(ErrorKind::compile_pending,
                             "compile job " + std::to_string(outcome.job) + " did not finish within max_wait_ms (" +
                                 std::to_string(config_.max_wait.count()) + "); the shared queue still holds it");
      e.details = {{"job", outcome.job}};
      return e;
    }
    build = std::move(*outcome.build);
    compiled_by = outcome.compiled_by;
  } else {
    // A kernel every architecture of which is in the memory tier needs no compile slot.
    // (One that links libraries always takes a slot: its link key needs its inputs compiled.)
    bool cached = libraries.empty();
    for (int arch : archs)
      cached = cached && cache_.memory().find(cache_.key_for(request.program, detail::target_for_arch(arch))).has_value();
    std::optional<detail::CompileGate::Admission> admission;
    if (!cached) {
      admission.emplace(compile_gate_.enter(tenant, Clock::now() + config_.max_wait));
      if (!admission->ticket) {
        const detail::CompileGateLimits& limits = compile_gate_.limits();
        if (admission->refusal == detail::CompileGate::Refusal::tenant_queue_full)
          return error(ErrorKind::too_many_compiles,
                       "tenant '" + tenant + "' has " + std::to_string(limits.per_tenant) + " compile(s) running and " +
                           std::to_string(limits.queued_per_tenant) +
                           " waiting (max_compiles_per_tenant, max_queued_compiles_per_tenant); retry when one ends");
        ServiceError e = error(ErrorKind::compile_busy, "no compile slot came free within max_wait_ms (" +
                                                            std::to_string(config_.max_wait.count()) +
                                                            "); every compile worker is busy");
        e.hint = "retry in a second";
        return e;
      }
    }  // the admission's ticket holds the slot until the build is done
    build = detail::build_kernel(cache_, request.program, archs, libraries);
  }
  if (!build.ok()) {
    json details = build.error;
    const std::string code = details.value("code", "compile_failed");
    ErrorKind kind = ErrorKind::compile_failed;
    if (code == "source_policy") kind = ErrorKind::policy;
    else if (code == "library_unavailable") kind = ErrorKind::library_unavailable;
    else if (code == "not_found") kind = ErrorKind::not_found;
    else if (code == "bad_request" && details.contains("field")) kind = ErrorKind::invalid_argument;
    ServiceError e = error(kind, details.value("message", ""));
    if (e.kind == ErrorKind::policy) e.rule = details.value("rule", "");
    else if (e.kind == ErrorKind::compile_failed)
      e.error_name = details.value("stage", "") == "link" ? "KILN_ERROR_LINK_FAILED" : "KILN_ERROR_COMPILE_FAILED";
    if (details.contains("field") && details["field"].is_string()) e.field = details["field"].get<std::string>();
    details.erase("code");
    details.erase("message");
    details.erase("rule");
    details.erase("field");
    if (!compiled_by.empty()) details["compiled_by"] = compiled_by;
    e.details = std::move(details);
    return e;
  }
  detail::RegisteredKernel kernel;
  kernel.tenant = tenant;
  kernel.program = std::move(request.program);
  kernel.libraries = request.libraries;
  for (auto& [arch, artifact] : build.images) {
    std::string bytes(artifact.image());
    if (artifact.kind() == jit::ImageKind::ptx) bytes.push_back('\0');
    kernel.images[arch] = detail::CompiledImage{artifact, std::make_shared<const std::string>(std::move(bytes))};
  }
  KernelRegistration out;
  out.lowered_names = kernel.images.begin()->second.artifact.lowered_names();
  out.name = kernel.program.name;
  out.libraries = kernel.libraries;
  auto added = kernels_.add(std::move(kernel), config_.max_kernels_per_tenant);
  if (!added)
    return error(ErrorKind::too_many_kernels, "tenant '" + tenant + "' holds " + std::to_string(config_.max_kernels_per_tenant) +
                                                  " kernels (max_kernels_per_tenant); delete some first");
  out.id = added->id;
  out.targets = std::move(build.targets);
  out.warnings = std::move(build.warnings);
  out.compiled_by = std::move(compiled_by);
  return out;
}

std::vector<LibraryInfo> ServiceCore::libraries(const std::string& tenant) const {
  std::vector<LibraryInfo> out;
  for (const detail::DeviceLibraryEntry* lib : libraries_.visible_to(tenant))
    out.push_back({lib->name(), lib->prebuilt_arch(), lib->ltoir_bytes(), lib->source_bytes(), lib->header_names()});
  return out;
}

Result<KernelInfo> ServiceCore::kernel(const std::string& tenant, std::uint64_t id) const {
  auto k = kernels_.find(id, tenant);
  if (!k) return not_found("kernel", id);
  return info_of(*k);
}

Result<Done> ServiceCore::delete_kernel(const std::string& tenant, std::uint64_t id) {
  if (!kernels_.remove(id, tenant)) return not_found("kernel", id);
  return Done{};
}

Page<KernelInfo> ServiceCore::list_kernels(const std::string& tenant, PageRequest page) const {
  const std::size_t limit = page_limit(page);
  std::vector<KernelInfo> items;
  for (const auto& k : kernels_.list(tenant, page.after, limit + 1)) items.push_back(info_of(*k));
  return make_page(std::move(items), limit, [](const KernelInfo& k) { return k.id; });
}

// ---- buffers

Result<BufferInfo> ServiceCore::create_buffer(const std::string& tenant, const BufferRequest& r) {
  return guarded<BufferInfo>([&]() -> Result<BufferInfo> {
    if (r.bytes > config_.max_buffer_bytes)
      return error(ErrorKind::too_large, "bytes: " + std::to_string(r.bytes) +
                                             " exceeds the largest buffer allowed (max_buffer_bytes = " +
                                             std::to_string(config_.max_buffer_bytes) + ")");
    Result<DeviceStatus> device = buffer_device(r.device);
    if (!device) return device.error();
    admit_buffer(device.value(), r.bytes, buffers_.bytes_on(r.device));
    const BufferId id = backend_.create_buffer(r.device, r.bytes, tenant + (r.tag.empty() ? "" : ":" + r.tag));
    BufferInfo record{id, tenant, r.device, r.bytes, r.tag};
    buffers_.add(record);
    return record;
  });
}

Result<DeviceStatus> ServiceCore::buffer_device(int ordinal) {
  const std::vector<DeviceStatus> devices = backend_.devices();
  if (devices.empty()) {
    ServiceError e = error(ErrorKind::unavailable, why_not_ready(devices) + "; buffers need a GPU");
    e.error_name = "KILN_ERROR_DRIVER_NOT_FOUND";
    return e;
  }
  auto device = std::find_if(devices.begin(), devices.end(), [&](const DeviceStatus& d) { return d.ordinal == ordinal; });
  if (device == devices.end())
    return error(ErrorKind::invalid_argument,
                 "device: " + std::to_string(ordinal) + " does not exist (this machine has " +
                     std::to_string(devices.size()) + " GPU(s))",
                 "device");
  return *device;
}

Result<BufferInfo> ServiceCore::buffer(const std::string& tenant, std::uint64_t id) const {
  auto b = buffers_.find(id, tenant);
  if (!b) return not_found("buffer", id);
  return *b;
}

Result<Done> ServiceCore::delete_buffer(const std::string& tenant, std::uint64_t id) {
  return guarded<Done>([&]() -> Result<Done> {
    auto b = buffers_.remove(id, tenant);
    if (!b) return not_found("buffer", id);
    if (b->imported) {
      std::lock_guard lock(client_owners_mutex_);
      client_owners_.erase(b->id);
    }
    backend_.free_buffer(b->id);
    return Done{};
  });
}

Page<BufferInfo> ServiceCore::list_buffers(const std::string& tenant, PageRequest page) const {
  const std::size_t limit = page_limit(page);
  return make_page(buffers_.list(tenant, page.after, limit + 1), limit, [](const BufferInfo& b) { return b.id; });
}

Result<Done> ServiceCore::write_buffer(const std::string& tenant, std::uint64_t id, std::uint64_t offset,
                                       std::span<const std::byte> data) {
  return guarded<Done>([&]() -> Result<Done> {
    auto b = buffers_.find(id, tenant);
    if (!b) return not_found("buffer", id);
    if (offset > b->bytes || data.size() > b->bytes - offset)
      return error(ErrorKind::invalid_argument, "writing " + std::to_string(data.size()) + " bytes at offset " +
                                                    std::to_string(offset) + " overruns buffer " + std::to_string(b->id) +
                                                    " of " + std::to_string(b->bytes) + " bytes");
    backend_.write_buffer(b->id, offset, data);
    return Done{};
  });
}

Result<std::string> ServiceCore::read_buffer(const std::string& tenant, std::uint64_t id, std::uint64_t offset,
                                             std::optional<std::uint64_t> wanted) {
  return guarded<std::string>([&]() -> Result<std::string> {
    auto b = buffers_.find(id, tenant);
    if (!b) return not_found("buffer", id);
    if (offset > b->bytes)
      return error(ErrorKind::invalid_argument, "offset " + std::to_string(offset) + " is past the end of buffer " +
                                                    std::to_string(b->id) + " (" + std::to_string(b->bytes) + " bytes)");
    const std::uint64_t bytes = wanted.value_or(b->bytes - offset);
    if (bytes > b->bytes - offset)
      return error(ErrorKind::invalid_argument, "reading " + std::to_string(bytes) + " bytes at offset " +
                                                    std::to_string(offset) + " overruns buffer " + std::to_string(b->id) +
                                                    " of " + std::to_string(b->bytes) + " bytes");
    if (bytes > config_.max_body_bytes)
      return error(ErrorKind::too_large, "reading " + std::to_string(bytes) + " bytes exceeds max_body_bytes (" +
                                             std::to_string(config_.max_body_bytes) + "); read in ranges with offset and bytes");
    // Read straight into what becomes the answer's body: no second copy of a large download.
    std::string data(static_cast<std::size_t>(bytes), '\0');
    backend_.read_buffer_into(b->id, offset, std::as_writable_bytes(std::span(data.data(), data.size())));
    return data;
  });
}

// ---- CUDA IPC with co-located clients

Result<Done> ServiceCore::allow_ipc() const {
  if (config_.allow_client_ipc) return Done{};
  ServiceError e = error(ErrorKind::forbidden, "this kilnd does not share device memory with other processes (allow_client_ipc is off)");
  e.hint = "set \"allow_client_ipc\": true in kilnd's configuration, or copy the data through requests or shared memory";
  return e;
}

Result<ExportedBuffer> ServiceCore::export_buffer(const std::string& tenant, std::uint64_t id) {
  return guarded<ExportedBuffer>([&]() -> Result<ExportedBuffer> {
    if (Result<Done> allowed = allow_ipc(); !allowed) return allowed.error();
    sweep_client_buffers();
    auto b = buffers_.find(id, tenant);
    if (!b) return not_found("buffer", id);
    GpuBackend::ExportedMemory memory = backend_.export_buffer(b->id);
    ExportedBuffer out;
    out.buffer = *b;
    out.fd = std::move(memory.fd);
    out.mapped_bytes = memory.mapped_bytes;
    for (const DeviceStatus& d : backend_.devices())
      if (d.ordinal == b->device) out.device_uuid = d.uuid;
    return out;
  });
}

Result<BufferInfo> ServiceCore::import_buffer(const std::string& tenant, BufferImport r) {
  return guarded<BufferInfo>([&]() -> Result<BufferInfo> {
    if (Result<Done> allowed = allow_ipc(); !allowed) return allowed.error();
    sweep_client_buffers();
    if (!r.fd) return error(ErrorKind::invalid_argument, "fd: importing device memory needs its file descriptor with the request", "fd");
    if (r.bytes == 0) return error(ErrorKind::invalid_argument, "bytes: the allocation's size, above 0", "bytes");
    if (r.bytes > config_.max_buffer_bytes)
      return error(ErrorKind::too_large, "bytes: " + std::to_string(r.bytes) +
                                             " exceeds the largest buffer allowed (max_buffer_bytes = " +
                                             std::to_string(config_.max_buffer_bytes) + ")",
                   "bytes");
    Result<DeviceStatus> device = buffer_device(r.device);
    if (!device) return device.error();
    ipc::UniqueFd owner;
    if (r.owner_pid != 0) {
      owner = ipc::open_pidfd(r.owner_pid);
      if (!owner) return error(ErrorKind::invalid_argument, "the registering process " + std::to_string(r.owner_pid) + " has ended");
    }
    BufferId id = 0;
    try {
      id = backend_.import_buffer(r.device, std::move(r.fd), r.bytes, tenant + (r.tag.empty() ? "" : ":" + r.tag));
    } catch (const Error& e) {
      if (!e.is(Errc::invalid_argument)) throw;
      return error(ErrorKind::invalid_argument, std::string("fd: ") + e.what(), "fd");
    }
    BufferInfo record{id, tenant, r.device, r.bytes, r.tag, true, r.owner_pid};
    buffers_.add(record);
    if (owner) {
      std::lock_guard lock(client_owners_mutex_);
      client_owners_.emplace(id, ClientBufferOwner{tenant, std::move(owner)});
    }
    return record;
  });
}

std::size_t ServiceCore::sweep_client_buffers() noexcept {
  std::vector<std::pair<BufferId, std::string>> ended;
  {
    std::lock_guard lock(client_owners_mutex_);
    for (auto it = client_owners_.begin(); it != client_owners_.end();) {
      if (ipc::process_ended(it->second.pidfd)) {
        ended.emplace_back(it->first, std::move(it->second.tenant));
        it = client_owners_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::size_t freed = 0;
  for (const auto& [id, tenant] : ended) {
    auto b = buffers_.remove(id, tenant);
    if (!b) continue;  // the tenant deleted it first
    try {
      backend_.free_buffer(b->id);
      ++freed;
      log_.info("client_buffer_dropped", "buffer " + std::to_string(id) + " of process " + std::to_string(b->owner_pid) +
                                             " freed: the process ended",
                {{"buffer", static_cast<std::int64_t>(id)}, {"owner_pid", static_cast<std::int64_t>(b->owner_pid)}});
    } catch (...) {
    }
  }
  return freed;
}

// ---- client shared memory

namespace {

SharedMemoryInfo info_of(const detail::SharedMemoryRegion& r) {
  return {r.id, r.name, r.offset, r.bytes, r.owner_pid, r.mapping && r.mapping->pinned != nullptr};
}

}  // namespace

Result<SharedMemoryInfo> ServiceCore::register_shared_memory(const std::string& tenant, const SharedMemoryRequest& r) {
  return guarded<SharedMemoryInfo>([&]() -> Result<SharedMemoryInfo> {
    if (!config_.allow_client_shm) {
      ServiceError e = error(ErrorKind::forbidden, "this kilnd does not take client shared memory (allow_client_shm is off)");
      e.hint = "set \"allow_client_shm\": true in kilnd's configuration, or send the data in request bodies";
      return e;
    }
    if (shared_memory_.count(tenant) >= config_.max_shm_regions_per_tenant)
      return error(ErrorKind::too_many_regions, "the tenant holds " + std::to_string(config_.max_shm_regions_per_tenant) +
                                                    " shared memory regions (max_shm_regions_per_tenant); unregister one first");
    // open() checks the name too; checked here first so that a bad name is reported before owner_pid.
    if (const std::string problem = detail::shared_memory_name_problem(r.name); !problem.empty())
      return error(ErrorKind::invalid_argument, "name: '" + r.name + "' " + problem, "name");
    ipc::UniqueFd owner;
    if (r.owner_pid != 0) {
      owner = ipc::open_pidfd(r.owner_pid);
      if (!owner)
        return error(ErrorKind::invalid_argument, "owner_pid: no process " + std::to_string(r.owner_pid) + " is running",
                     "owner_pid");
    }
    detail::SharedMemoryRegion region;
    region.tenant = tenant;
    region.name = r.name;
    region.offset = r.offset;
    region.bytes = r.bytes;
    region.owner_pid = r.owner_pid;
    try {
      region.mapping = detail::SharedMemoryMapping::open(r.name, r.offset, r.bytes);
    } catch (const detail::SharedMemoryRefusal& refusal) {
      return error(ErrorKind::invalid_argument, refusal.message, refusal.field);
    }
    // Pinned once here, so every copy runs at pinned speed; a GPU that cannot pin it (or none)
    // leaves the copies pageable, which still work.
    try {
      region.mapping->pinned = backend_.pin_host_memory(region.mapping->mapped(), region.mapping->mapped_size());
    } catch (const Error& e) {
      log_.warn("shm_not_pinned", "shared memory region '" + r.name + "' stays pageable: " + e.what());
    }
    region.id = shared_memory_.add(region, std::move(owner));
    return info_of(region);
  });
}

Result<SharedMemoryInfo> ServiceCore::shared_memory(const std::string& tenant, std::uint64_t id) {
  auto r = shared_memory_.find(id, tenant);
  if (!r) return not_found("shared memory region", id);
  return info_of(*r);
}

Result<Done> ServiceCore::unregister_shared_memory(const std::string& tenant, std::uint64_t id) {
  if (!shared_memory_.remove(id, tenant)) return not_found("shared memory region", id);
  return Done{};
}

Page<SharedMemoryInfo> ServiceCore::list_shared_memory(const std::string& tenant, PageRequest page) {
  const std::size_t limit = page_limit(page);
  std::vector<SharedMemoryInfo> items;
  for (const auto& r : shared_memory_.list(tenant, page.after, limit + 1)) items.push_back(info_of(r));
  return make_page(std::move(items), limit, [](const SharedMemoryInfo& i) { return i.id; });
}

Result<std::uint64_t> ServiceCore::copy_shared_memory(const std::string& tenant, std::uint64_t id,
                                                      const SharedMemoryCopyRequest& r) {
  return guarded<std::uint64_t>([&]() -> Result<std::uint64_t> {
    auto b = buffers_.find(id, tenant);
    if (!b) return not_found("buffer", id);
    auto region = shared_memory_.find(r.region, tenant);
    if (!region) {
      ServiceError e = not_found("shared memory region", r.region, "region: ");
      e.field = "region";
      return e;
    }
    if (r.region_offset > region->bytes)
      return error(ErrorKind::invalid_argument,
                   "region_offset: " + std::to_string(r.region_offset) + " is past the end of region " +
                       std::to_string(region->id) + " (" + std::to_string(region->bytes) + " bytes)",
                   "region_offset");
    const std::uint64_t bytes = r.bytes.value_or(region->bytes - r.region_offset);
    if (bytes > region->bytes - r.region_offset)
      return error(ErrorKind::invalid_argument,
                   "bytes: " + std::to_string(bytes) + " at region_offset " + std::to_string(r.region_offset) +
                       " overrun region " + std::to_string(region->id) + " (" + std::to_string(region->bytes) + " bytes)",
                   "bytes");
    if (r.offset > b->bytes || bytes > b->bytes - r.offset)
      return error(ErrorKind::invalid_argument,
                   "bytes: " + std::to_string(bytes) + " at offset " + std::to_string(r.offset) + " overrun buffer " +
                       std::to_string(b->id) + " (" + std::to_string(b->bytes) + " bytes)",
                   "bytes");
    if (!region->mapping->intact())
      return error(ErrorKind::invalid_argument,
                   "region: the shared memory object '" + region->name + "' no longer holds the " +
                       std::to_string(region->bytes) + " bytes registered (it was truncated); unregister it",
                   "region");
    std::byte* at = region->mapping->data() + r.region_offset;
    if (r.upload) backend_.write_buffer(b->id, r.offset, std::span<const std::byte>(at, bytes));
    else backend_.read_buffer_into(b->id, r.offset, std::span<std::byte>(at, bytes));
    return bytes;
  });
}

// ---- launches and jobs

namespace {

ServiceError no_repository() {
  ServiceError e = error(ErrorKind::not_found, "kilnd has no kernel repository");
  e.hint = "start kilnd with --repository DIR (or repository.path in its config)";
  return e;
}

// A repository kernel's arguments against its manifest's declared parameters, so a mismatch is
// refused with names before the GPU sees it.
std::optional<ServiceError> check_arguments(const jit::EntryPoint& entry, const std::vector<KernelArgument>& args) {
  auto list = [&] {
    std::string text;
    for (jit::ParameterType p : entry.parameters) text += (text.empty() ? "" : ", ") + std::string(jit::to_string(p));
    return "(" + text + ")";
  };
  if (args.size() != entry.parameters.size())
    return error(ErrorKind::invalid_argument,
                 "arguments: " + entry.name + " takes " + std::to_string(entry.parameters.size()) + " " + list() + ", got " +
                     std::to_string(args.size()),
                 "arguments");
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string field = "arguments[" + std::to_string(i) + "]";
    const jit::ParameterType want = entry.parameters[i];
    const auto* scalar = std::get_if<ScalarArgument>(&args[i]);
    std::string got = scalar ? std::string(to_string(scalar->type)) : "a buffer";
    bool fits = false;
    if (want == jit::ParameterType::pointer) fits = !scalar;
    else if (scalar) fits = jit::to_string(want) == to_string(scalar->type);
    if (!fits)
      return error(ErrorKind::invalid_argument,
                   field + ": parameter " + std::to_string(i) + " of " + entry.name + " " + list() + " is " +
                       (want == jit::ParameterType::pointer ? "a pointer (pass a buffer)" : std::string(jit::to_string(want))) +
                       ", got " + got,
                   field);
  }
  return std::nullopt;
}

}  // namespace

std::vector<RepositoryPackage> ServiceCore::repository_index(const std::string& tenant) const {
  return repository_ ? repository_->index(tenant) : std::vector<RepositoryPackage>{};
}

Result<RepositoryPackage> ServiceCore::repository_package(const std::string& tenant, std::string_view name) const {
  if (!repository_) return no_repository();
  return repository_->package(tenant, name);
}

Result<RepositoryPackage> ServiceCore::load_package(const std::string& tenant, std::string_view name,
                                                    std::optional<std::uint64_t> version) {
  if (!repository_) return no_repository();
  return guarded<RepositoryPackage>([&] { return repository_->load(tenant, name, version, config_.max_wait); });
}

Result<RepositoryPackage> ServiceCore::unload_package(const std::string& tenant, std::string_view name,
                                                      std::optional<std::uint64_t> version) {
  if (!repository_) return no_repository();
  return guarded<RepositoryPackage>([&] { return repository_->unload(tenant, name, version); });
}

Result<RepositoryPackage> ServiceCore::rollback_package(const std::string& tenant, std::string_view name) {
  if (!repository_) return no_repository();
  return guarded<RepositoryPackage>([&] { return repository_->rollback(tenant, name); });
}

const detail::CompiledImage* ServiceCore::image_for(std::shared_ptr<const detail::RegisteredKernel>& kernel, int arch) {
  if (auto it = kernel->images.find(arch); it != kernel->images.end()) return &it->second;
  // Registration compiled for every architecture the backend reported then (register_now), so a
  // compile here is only the fallback for a GPU of a new architecture that appeared since: it
  // happens once, on this launch's path, and the kernel keeps the image for later launches.
  std::vector<const detail::DeviceLibraryEntry*> libraries;
  for (const std::string& name : kernel->libraries) {
    const detail::DeviceLibraryEntry* lib = libraries_.find(name, kernel->tenant);
    if (!lib) throw Error(Errc::internal, "kernel " + std::to_string(kernel->id) + " links device library '" + name +
                                              "', which this node does not have");
    libraries.push_back(lib);
  }
  jit::Artifact artifact = detail::build_image(cache_, kernel->program, arch, libraries);
  std::string bytes(artifact.image());
  if (artifact.kind() == jit::ImageKind::ptx) bytes.push_back('\0');
  auto updated = std::make_shared<detail::RegisteredKernel>(*kernel);
  updated->images[arch] = detail::CompiledImage{artifact, std::make_shared<const std::string>(std::move(bytes))};
  if (kernel->id != 0) kernels_.update(updated);  // a repository kernel (id 0) compiles again next time
  kernel = updated;
  return &kernel->images.at(arch);
}

Result<LaunchOutcome> ServiceCore::launch(const std::string& tenant, LaunchRequest r, std::string_view request_id) {
  Result<LaunchOutcome> result = guarded<LaunchOutcome>([&]() -> Result<LaunchOutcome> {
    std::shared_ptr<const detail::RegisteredKernel> kernel;
    std::optional<RepositoryKernel> packaged;
    if (!r.package.empty()) {
      if (!repository_) {
        ServiceError e = no_repository();
        e.message = "kernel: '" + r.package + "' names a repository package, and " + e.message;
        e.field = "kernel";
        return e;
      }
      auto found = repository_->find(tenant, r.package);
      if (!found) return found.error();
      packaged = std::move(found.value());
      kernel = packaged->kernel;
      const auto& entries = packaged->manifest->entry_points;
      std::string names;
      for (const jit::EntryPoint& e : entries) names += (names.empty() ? "" : ", ") + e.name;
      if (r.function.empty() && entries.size() != 1)
        return error(ErrorKind::invalid_argument,
                     "function: package '" + packaged->package + "' has " + std::to_string(entries.size()) +
                         " entry points (" + names + "): name one",
                     "function");
      if (r.function.empty()) r.function = entries.front().name;
      auto entry = std::find_if(entries.begin(), entries.end(),
                                [&](const jit::EntryPoint& e) { return e.name == r.function || e.symbol == r.function; });
      if (entry == entries.end())
        return error(ErrorKind::invalid_argument,
                     "function: package '" + packaged->package + "' version " + std::to_string(packaged->version) +
                         " has no entry point '" + r.function + "' (its entry points: " + names + ")",
                     "function");
      if (auto refused = check_arguments(*entry, r.arguments)) return *refused;
    } else {
      kernel = kernels_.find(r.kernel, tenant);
      if (!kernel) return not_found("kernel", r.kernel);
    }

    // A name expression maps to its lowered name; anything else must be a symbol of the image.
    const auto& lowered = kernel->images.begin()->second.artifact.lowered_names();
    std::string symbol = r.function;
    if (auto it = lowered.find(r.function); it != lowered.end()) symbol = it->second;
    if (!kernel->has_symbol(symbol)) {
      std::string known;
      for (const auto& [expr, name] : lowered) known += (known.empty() ? "" : ", ") + expr;
      return error(ErrorKind::invalid_argument,
                   "function: kernel " + std::to_string(r.kernel) + " has no function '" + r.function + "'" +
                       (known.empty() ? "" : " (its name expressions: " + known + ")"),
                   "function");
    }

    // Buffers: the tenant's own, offsets inside them, all on one GPU, which is the launch's GPU.
    std::optional<int> device = r.device;
    std::optional<std::string> device_field;  // the request field that chose `device`
    if (device) device_field = "device";
    for (std::size_t i = 0; i < r.arguments.size(); ++i) {
      const auto* arg = std::get_if<BufferArgument>(&r.arguments[i]);
      if (!arg) continue;
      const std::string field = "arguments[" + std::to_string(i) + "]";
      auto b = buffers_.find(arg->buffer, tenant);
      if (!b) {
        ServiceError e = not_found("buffer", arg->buffer, field + ": ");
        e.field = field;
        return e;
      }
      if (arg->offset >= b->bytes)
        return error(ErrorKind::invalid_argument,
                     field + ": offset " + std::to_string(arg->offset) + " is outside buffer " + std::to_string(b->id) +
                         " (" + std::to_string(b->bytes) + " bytes)",
                     field);
      if (device && *device != b->device)
        return error(ErrorKind::invalid_argument,
                     field + ": buffer " + std::to_string(b->id) + " is on device " + std::to_string(b->device) +
                         ", the launch is on device " + std::to_string(*device),
                     field);
      device = b->device;
      if (!device_field) device_field = field;
    }
    if (r.deadline && *r.deadline > config_.max_deadline)
      return error(ErrorKind::invalid_argument,
                   "deadline_ms: " + std::to_string(r.deadline->count()) + " exceeds the service's max_deadline_ms (" +
                       std::to_string(config_.max_deadline.count()) + ")",
                   "deadline_ms");

    LaunchSpec spec;
    const std::vector<DeviceStatus> devices = backend_.devices();
    if (devices.empty()) {
      ServiceError e = error(ErrorKind::unavailable, why_not_ready(devices) + "; launches need a GPU");
      e.error_name = "KILN_ERROR_DRIVER_NOT_FOUND";
      return e;
    }
    if (device && std::none_of(devices.begin(), devices.end(), [&](const DeviceStatus& d) { return d.ordinal == *device; }))
      return error(ErrorKind::invalid_argument,
                   (*device_field == "device" ? "device: " : *device_field + ": its buffer's device ") +
                       std::to_string(*device) + " does not exist (this machine has " + std::to_string(devices.size()) +
                       " GPU(s))",
                   *device_field);
    try {
      spec.device = scheduler_.place(device, devices);
    } catch (const Error& e) {
      // The device exists (checked above): what is left is a GPU without a worker or with its
      // circuit breaker open, which a new worker or the breaker's timeout ends.
      if (!e.is(Errc::driver_not_found)) throw;
      ServiceError s = error(ErrorKind::unavailable, e.detail());
      s.hint = "retry later: a GPU whose worker died gets a new one at once, an open circuit breaker closes by itself";
      return s;
    }
    int arch = config_.fallback_arch;
    for (const DeviceStatus& d : devices)
      if (d.ordinal == spec.device) arch = d.arch;
    if (packaged && !kernel->images.contains(arch) && kernel->program.source.empty())
      return error(ErrorKind::not_serving,
                   "kernel: package '" + packaged->package + "' version " + std::to_string(packaged->version) +
                       " carries no image for GPU " + std::to_string(spec.device) + " (sm_" + std::to_string(arch) +
                       ") and no source to compile; it was loaded for the GPUs present then",
                   "kernel");
    if (packaged) {
      spec.package = packaged->package;
      spec.package_version = packaged->version;
    }
    const detail::CompiledImage* image = image_for(kernel, arch);
    spec.tenant = tenant;
    spec.request_id = request_id;
    spec.image = image->bytes;
    spec.image_key = image->artifact.key().hex();
    spec.kernel = symbol;
    spec.grid = r.grid;
    spec.block = r.block;
    spec.shared_bytes = r.shared_bytes;
    spec.arguments = std::move(r.arguments);
    spec.deadline = Clock::now() + r.deadline.value_or(config_.default_deadline);

    LaunchOutcome out;
    out.checked = Clock::now();
    out.waited = r.wait;
    const SubmitResult submitted = scheduler_.submit(std::move(spec), r.priority, /*run_here=*/r.wait);
    switch (submitted.status) {
      case SubmitStatus::accepted: break;
      case SubmitStatus::queue_full:
      case SubmitStatus::tenant_full: {
        ServiceError e = error(ErrorKind::queue_full, submitted.message);
        e.hint = "retry later, when queued launches have run";
        return e;
      }
      case SubmitStatus::shutting_down: return error(ErrorKind::shutting_down, submitted.message);
    }
    auto snapshot = scheduler_.wait(submitted.id, tenant, r.wait ? config_.max_wait : std::chrono::milliseconds(0));
    if (!snapshot) return error(ErrorKind::internal, "job " + std::to_string(submitted.id) + " vanished after submission");
    out.job = std::move(*snapshot);
    return out;
  });
  if (!result) note_refusal("refusal", tenant, request_id, result.error());
  return result;
}

Result<JobSnapshot> ServiceCore::job(const std::string& tenant, std::uint64_t id, std::chrono::milliseconds wait) {
  auto snapshot = scheduler_.wait(id, tenant, std::min(wait, config_.max_wait));
  if (!snapshot) return not_found("job", id);
  return std::move(*snapshot);
}

Page<JobSnapshot> ServiceCore::list_jobs(const std::string& tenant, PageRequest page) {
  const std::size_t limit = page_limit(page);
  return make_page(scheduler_.list(tenant, page.after, limit + 1), limit, [](const JobSnapshot& j) { return j.id; });
}

}  // namespace kiln::service::core
