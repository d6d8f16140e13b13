#include "kiln/jit/kernel_cache.hpp"

#include <filesystem>
#include <utility>

#include "jit/detail/key_bytes.hpp"
#include "jit/detail/key_memo.hpp"

#include "kiln/jit/nvrtc_facts.hpp"
#include "kiln/jit/policy_error.hpp"

namespace kiln::jit {
namespace {

std::int64_t ns(std::chrono::nanoseconds d) { return d.count(); }

}  // namespace

KernelCache::KernelCache(KernelCacheOptions options)
    : options_(std::move(options)), memory_(options_.memory_bytes) {
  if (options_.policy && options_.policy->max_compile_time.count() < 0)
    throw Error(Errc::invalid_argument, "source policy rule 'max_compile_time': the limit is negative (" +
                                            std::to_string(options_.policy->max_compile_time.count()) + " ms)");
  if (options_.policy && options_.policy->max_compile_time.count() > 0 && !options_.compile_worker)
    throw Error(Errc::invalid_argument,
                "source policy rule 'max_compile_time' (" + std::to_string(options_.policy->max_compile_time.count()) +
                    " ms) needs KernelCacheOptions::compile_worker: NVRTC cannot be cancelled in this process");
  const std::uint64_t memory_limit = options_.policy ? options_.policy->max_compile_memory : 0;
  if (memory_limit > 0 && !options_.compile_worker)
    throw Error(Errc::invalid_argument, "source policy rule 'max_compile_memory' (" + std::to_string(memory_limit >> 20) +
                                            " MiB) needs KernelCacheOptions::compile_worker: a limit on this process's "
                                            "memory would limit everything else in it");
  if (options_.compile_worker) {
    CompileWorkerOptions worker = *options_.compile_worker;
    if (memory_limit > 0) worker.memory_limit_bytes = memory_limit;
    workers_ = std::make_unique<CompileWorkerPool>(std::move(worker), options_.compile_worker_processes);
  }
  if (options_.use_disk) {
    try {
      disk_ = std::make_unique<DiskCache>(options_.disk);
      // NVRTC writes no PCH file, silently, into a folder that does not exist.
      std::string why;
      if (options_.precompiled_headers && pch_directory() != disk_->pch_directory() &&
          !disk_->make_pch_folder(pch_directory().filename().string(), why))
        startup_warnings_.push_back("precompiled headers: cannot create '" + pch_directory().string() + "': " + why);
    } catch (const Error& e) {
      // The cache is an optimisation: without a usable folder, compile on with the memory tier.
      startup_warnings_.push_back("disk tier disabled: " + e.detail());
    }
  }
  key_context_ = disk_ ? KeyContext::current(disk_->directory()) : KeyContext::current();
  key_memo_ = std::make_unique<detail::KeyMemo>(std::size_t{16} << 20);
}

KernelCache::~KernelCache() = default;

CacheKey KernelCache::key_for(const Program& program, const Target& target) const {
  return key_memo_->key(detail::key_bytes(program, target, key_context_));
}

std::optional<Artifact> KernelCache::find(const CacheKey& key) {
  auto hit = memory_.find(key);
  if (hit) {
    memory_hits_.fetch_add(1, std::memory_order_relaxed);
    saved_ns_.fetch_add(ns(hit->compile_time()), std::memory_order_relaxed);
  } else {
    memory_misses_.fetch_add(1, std::memory_order_relaxed);
  }
  return hit;
}

Artifact KernelCache::compile(const Program& program, const Target& target) {
  CompileResult result = try_compile(program, target);
  if (!result.ok()) throw result.error();
  return std::move(*result.artifact);
}

CompileResult KernelCache::try_compile(const Program& program, const Target& target) {
  if (options_.policy) options_.policy->check(program);
  const CacheKey key = key_for(program, target);
  if (auto hit = find(key)) return CompileResult{std::move(*hit), {}, {}, program.name, target};
  return single_flight(flights_, key, [&] { return produce(program, target, key); });
}

template <typename Result, typename Make>
Result KernelCache::single_flight(std::unordered_map<CacheKey, std::shared_future<Result>>& flights,
                                  const CacheKey& key, Make&& make) {
  std::promise<Result> promise;
  std::shared_future<Result> flight;
  bool leader = false;
  {
    std::lock_guard lock(flights_mutex_);
    auto [it, inserted] = flights.try_emplace(key);
    if (inserted) {
      it->second = promise.get_future().share();
      leader = true;
    }
    flight = it->second;
  }
  if (!leader) {
    shared_waits_.fetch_add(1, std::memory_order_relaxed);
    return flight.get();  // rethrows the leader's exception
  }
  try {
    promise.set_value(make());
  } catch (...) {
    promise.set_exception(std::current_exception());
  }
  {
    std::lock_guard lock(flights_mutex_);
    flights.erase(key);
  }
  return flight.get();
}

CacheKey KernelCache::link_key_for(const LinkJob& job, const Target& target) {
  std::call_once(link_context_once_, [this] { link_context_ = LinkKeyContext::current(); });
  return link_key(job, target, link_context_);
}

Artifact KernelCache::link(const LinkJob& job, const Target& target) {
  LinkResult result = try_link(job, target);
  if (!result.ok()) throw result.error();
  return std::move(*result.artifact);
}

LinkResult KernelCache::try_link(const LinkJob& job, const Target& target) {
  const CacheKey key = link_key_for(job, target);
  if (auto hit = find(key)) return LinkResult{std::move(*hit), {}, {}, job.name, target, 0};
  return single_flight(link_flights_, key, [&] { return produce_link(job, target, key); });
}

LinkResult KernelCache::produce_link(const LinkJob& job, const Target& target, const CacheKey& key) {
  if (auto hit = memory_.find(key)) return LinkResult{std::move(*hit), {}, {}, job.name, target, 0};
  auto disk_hit = [&](Artifact& hit) {
    saved_ns_.fetch_add(ns(hit.compile_time()), std::memory_order_relaxed);
    memory_.insert(hit);
    return LinkResult{std::move(hit), {}, {}, job.name, target, 0};
  };
  KeyLock lock;
  if (auto hit = load_or_lock(key, lock)) return disk_hit(*hit);
  LinkSettings settings;
  settings.key = key;
  LinkResult result = jit::link(job, target, settings);
  if (!result.ok()) {
    link_failures_.fetch_add(1, std::memory_order_relaxed);
    return result;
  }
  links_.fetch_add(1, std::memory_order_relaxed);
  spent_ns_.fetch_add(ns(result.artifact->compile_time()), std::memory_order_relaxed);
  memory_.insert(*result.artifact);
  if (disk_) disk_->store(*result.artifact);  // the key names the nvJitLink that just ran
  return result;
}

std::chrono::milliseconds KernelCache::disk_lock_wait() const {
  if (options_.disk_lock_wait.count() > 0) return options_.disk_lock_wait;
  // A holder under the same policy is killed at max_compile_time: waiting longer is pointless.
  if (options_.policy && options_.policy->max_compile_time.count() > 0)
    return options_.policy->max_compile_time + std::chrono::seconds(5);
  return std::chrono::minutes(5);
}

std::optional<Artifact> KernelCache::load_or_lock(const CacheKey& key, KeyLock& lock) {
  if (!disk_) return std::nullopt;
  if (auto hit = disk_->load(key)) return hit;
  lock = disk_->lock_key(key, disk_lock_wait());
  // Also when the lock came at once (the holder may have stored and released it since our miss)
  // and when the wait ran out (the holder may have finished meanwhile).
  if (lock.held() || lock.state() == KeyLockState::timed_out) return disk_->recheck(key);
  return std::nullopt;
}

CompileResult KernelCache::produce(const Program& program, const Target& target, const CacheKey& key) {
  // A flight that finished between our memory miss and registering this one left its result here.
  if (auto hit = memory_.find(key)) return CompileResult{std::move(*hit), {}, {}, program.name, target};
  auto disk_hit = [&](Artifact& hit) {
    check_artifact(hit, program);  // written by another process, perhaps under another policy
    saved_ns_.fetch_add(ns(hit.compile_time()), std::memory_order_relaxed);
    memory_.insert(hit);
    return CompileResult{std::move(hit), {}, {}, program.name, target};
  };
  // Held from here until the entry is stored (or the compile failed). Only this flight's leader takes it.
  KeyLock lock;
  if (auto hit = load_or_lock(key, lock)) return disk_hit(*hit);
  CompileSettings settings;
  settings.key = key;
  if (options_.precompiled_headers && disk_) settings.pch_dir = pch_directory().string();
  CompileResult result = run_nvrtc(program, target, settings);
  if (!result.ok()) {
    compile_failures_.fetch_add(1, std::memory_order_relaxed);
    return result;
  }
  compiles_.fetch_add(1, std::memory_order_relaxed);
  spent_ns_.fetch_add(ns(result.artifact->compile_time()), std::memory_order_relaxed);
  check_artifact(*result.artifact, program);
  memory_.insert(*result.artifact);
  if (disk_ && nvrtc_agrees_with_key()) disk_->store(*result.artifact);
  return result;
}

bool KernelCache::nvrtc_agrees_with_key() {
  if (workers_) return true;  // NVRTC ran in a worker, not here
  // NVRTC is loaded now: its own facts, and the folder gets a record if it had none.
  const int compiled_with = nvrtc_facts(disk_->directory()).cuda_version();
  if (compiled_with == key_context_.nvrtc_cuda_version) return true;
  // Only a record about another file than the one the dynamic loader opened can do this: an entry
  // under this key would claim another NVRTC made it.
  key_mismatch_.store(true, std::memory_order_relaxed);
  return false;
}

void KernelCache::check_artifact(const Artifact& artifact, const Program& program) const {
  if (!options_.policy || options_.policy->forbidden_ptx_instructions.empty()) return;
  if (artifact.kind() == ImageKind::ptx) {
    options_.policy->check_ptx(artifact.image(), program.name);
    return;
  }
  // NVRTC keeps no PTX when it builds a CUBIN: compile the PTX twin only to inspect it.
  CompileResult twin = run_nvrtc(program, Target::for_arch(artifact.arch(), ImageKind::ptx), {});
  options_.policy->check_ptx(twin.value().image(), program.name);
}

CompileResult KernelCache::run_nvrtc(const Program& program, const Target& target,
                                     const CompileSettings& settings) const {
  if (!workers_) return jit::compile(program, target, settings);
  std::optional<std::chrono::milliseconds> limit;
  if (options_.policy && options_.policy->max_compile_time.count() > 0) limit = options_.policy->max_compile_time;
  try {
    CompileResult result = workers_->compile(program, target, settings, limit);
    const std::uint64_t memory_limit = options_.policy ? options_.policy->max_compile_memory : 0;
    if (memory_limit > 0 && !result.ok())
      for (const Diagnostic& d : result.diagnostics)
        if (d.severity == Severity::fatal && d.message.find("out of memory") != std::string::npos)
          throw PolicyError("max_compile_memory", std::to_string(memory_limit >> 20) + " MiB",
                            "program '" + program.name + "' for " + target.arch_name() + " ran out of memory at " +
                                d.file + ":" + std::to_string(d.line) +
                                " (a compile worker's limit; raise max_compile_memory for it)");
    return result;
  } catch (const Error& e) {
    if (!limit || !e.is(Errc::timeout)) throw;
    throw PolicyError("max_compile_time", std::to_string(limit->count()) + " ms", e.detail(), Errc::timeout);
  }
}

std::filesystem::path KernelCache::pch_directory() const {
  if (!disk_) return {};
  // A process with a randomised heap refuses a no-ASLR worker's PCH file and overwrites it with
  // its own, useless to the next worker: the two kinds never share a folder.
  const bool fixed_address = options_.compile_worker && options_.compile_worker->disable_aslr;
  return fixed_address ? disk_->pch_directory() / "fixed-address" : disk_->pch_directory();
}

CacheStats KernelCache::stats() const {
  CacheStats s;
  s.memory_hits = memory_hits_.load(std::memory_order_relaxed);
  s.memory_misses = memory_misses_.load(std::memory_order_relaxed);
  s.compiles = compiles_.load(std::memory_order_relaxed);
  s.compile_failures = compile_failures_.load(std::memory_order_relaxed);
  s.links = links_.load(std::memory_order_relaxed);
  s.link_failures = link_failures_.load(std::memory_order_relaxed);
  s.shared_waits = shared_waits_.load(std::memory_order_relaxed);
  s.memory_bytes = memory_.bytes();
  s.memory_entries = memory_.entries();
  s.memory_evictions = memory_.evictions();
  s.compile_time_spent = std::chrono::nanoseconds(spent_ns_.load(std::memory_order_relaxed));
  s.compile_time_saved = std::chrono::nanoseconds(saved_ns_.load(std::memory_order_relaxed));
  if (workers_) s.workers = workers_->stats();
  if (disk_) {
    s.disk_hits = disk_->hits();
    s.disk_misses = disk_->misses();
    s.corrupt_entries = disk_->corrupt_entries();
    s.disk_lock_waits = disk_->lock_waits();
    s.disk_lock_timeouts = disk_->lock_timeouts();
    s.disk_writes = disk_->writes();
    s.disk_evictions = disk_->evictions();
    s.warnings = disk_->warnings();
  }
  s.warnings.insert(s.warnings.begin(), startup_warnings_.begin(), startup_warnings_.end());
  if (key_mismatch_.load(std::memory_order_relaxed))
    s.warnings.push_back("the NVRTC that compiled is not the version the cache key was made with (the NVRTC "
                         "facts record named another file): its images were kept in memory only");
  return s;
}

}  // namespace kiln::jit
