// kilnd's kernel repository (docs/REPOSITORY.md): a folder of versioned kernel packages,
// <path>/<name>/<version>/ (jit::Package), loaded and verified in the background and served by name.
// A launch that names `name` gets the version in service, `name:version` that version; the switch
// to a new version is one pointer swap under a lock, and a launch holds the version it resolved
// (a shared_ptr), so launches in flight finish on the version they started with. A version that
// fails to load never replaces the one in service; the version served before stays loaded, so a
// rollback is a swap too.
//
// Not public API: the service core is its only user.
// Thread safety: every member may be called from any thread at once. Loads run on one loader
// thread; poll mode adds a poller thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/service_error.hpp"
#include "detail/kernel_registry.hpp"
#include "kiln/jit/package.hpp"
#include "kiln/service/config.hpp"
#include "kiln/service/log.hpp"

namespace kiln::service::core {

enum class VersionState : std::uint8_t {
  loading,   // being read, verified and prepared for this machine's GPUs
  ready,     // loaded: launches may name it
  failed,    // refused (problem and reason say why); poll mode tries again once its files change
  unloaded,  // on disk, not loaded (the version policy or an unload left it out)
};
std::string_view to_string(VersionState state) noexcept;  // "loading", "ready", "failed", "unloaded"

struct RepositoryVersion {
  std::uint64_t version = 0;
  VersionState state = VersionState::unloaded;
  bool serving = false;
  std::string problem;  // failed: jit::PackageProblem's name, or "compile_failed", "unreadable", ...
  std::string reason;   // failed: what is wrong, naming the file
  std::vector<std::string> entry_points;  // loaded or failed after the manifest was read
  std::vector<std::string> images;        // the image (or "source") each GPU architecture uses: "sm_90: sm_90.cubin"
  double load_ms = 0;                     // ready: how long reading, verifying and preparing took
  std::chrono::system_clock::time_point since{};  // when it entered this state
};

struct RepositoryPackage {
  std::string name;
  std::optional<std::uint64_t> serving;   // what a launch naming only the package gets
  std::optional<std::uint64_t> previous;  // what a rollback returns to
  bool held = false;  // after a rollback: newer versions already on disk are not served by themselves
  std::vector<RepositoryVersion> versions;  // by version, increasing
};

// What a launch that names a package resolves to.
struct RepositoryKernel {
  std::shared_ptr<const detail::RegisteredKernel> kernel;
  std::shared_ptr<const jit::PackageManifest> manifest;
  std::string package;
  std::uint64_t version = 0;
};

struct RepositoryCounters {
  std::uint64_t loads = 0;      // versions loaded
  std::uint64_t failures = 0;   // versions refused
  std::uint64_t swaps = 0;      // switches of the serving version (rollbacks included)
  std::uint64_t rollbacks = 0;
  std::map<VersionState, std::size_t> versions;  // now, by state
};

class KernelRepository {
 public:
  struct Hooks {
    // The architectures of the GPUs now (non-empty: the fallback architecture without a GPU).
    std::function<std::vector<int>()> architectures;
    // Compiles a package's source for a GPU no image fits (through the kernel cache).
    std::function<jit::Artifact(const jit::Program& program, int arch)> compile;
    Log log;
  };

  // Reads the folder and loads what the mode and version policy want before returning (so kilnd
  // serves them from its first request); in poll mode starts watching the folder. A version that
  // fails is reported, not thrown. Throws kiln::Error when the folder itself cannot be read.
  KernelRepository(RepositoryConfig config, Hooks hooks);
  ~KernelRepository();
  KernelRepository(const KernelRepository&) = delete;
  KernelRepository& operator=(const KernelRepository&) = delete;

  // `reference` is "name" or "name:version". not_found for a package the tenant may not see (as if
  // absent), for one with nothing in service, and for a version that is not ready (naming its state).
  Result<RepositoryKernel> find(const std::string& tenant, std::string_view reference) const;

  std::vector<RepositoryPackage> index(const std::string& tenant) const;
  Result<RepositoryPackage> package(const std::string& tenant, std::string_view name) const;
  // Operators only (forbidden otherwise), and not in mode none. load reads the package's folder
  // again and loads `version` (or what the version policy wants), waiting up to `wait`; a version
  // named is served once ready. unload takes `version` (or every version) out of service.
  Result<RepositoryPackage> load(const std::string& tenant, std::string_view name, std::optional<std::uint64_t> version,
                                 std::chrono::milliseconds wait);
  Result<RepositoryPackage> unload(const std::string& tenant, std::string_view name, std::optional<std::uint64_t> version);
  // Operators only, in every mode: serves the previous version at once (it stays loaded), and holds
  // the package there until a newer version appears or a load names one.
  Result<RepositoryPackage> rollback(const std::string& tenant, std::string_view name);

  // Poll mode's scan, run now (tests; the poller calls it every poll_interval).
  void poll();
  // Waits until no load is queued or running, up to `timeout`; true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);
  RepositoryCounters counters() const;
  const RepositoryConfig& config() const noexcept { return config_; }

 private:
  struct Version {
    VersionState state = VersionState::unloaded;
    std::string problem, reason;
    std::shared_ptr<const detail::RegisteredKernel> kernel;
    std::shared_ptr<const jit::PackageManifest> manifest;
    std::vector<std::string> images;
    std::uint64_t signature = 0;  // of the folder's files when it was read
    double load_ms = 0;
    std::chrono::system_clock::time_point since = std::chrono::system_clock::now();
    bool warned_changed = false;
    bool excluded = false;          // an unload named it: the policy leaves it out until a load names it
    bool serve_when_ready = false;  // a load named it while it was loading
  };
  struct Package {
    std::map<std::uint64_t, Version> versions;
    std::optional<std::uint64_t> serving, previous;
    std::uint64_t held_through = 0;  // a rollback: versions up to this are not served by themselves
  };
  struct Task {
    std::string name;
    std::uint64_t version = 0;
    bool serve = false;  // serve it once ready (a load that named it)
  };

  bool may_see(const std::string& tenant, const Package& package) const;
  bool may_launch(const std::string& tenant, const jit::PackageManifest& manifest) const;
  bool is_operator(const std::string& tenant) const;
  std::optional<ServiceError> control_refusal(const std::string& tenant, std::string_view name, bool in_mode_none) const;
  RepositoryPackage describe(const std::string& name, const Package& package) const;

  // Reads <path>/<name>: records its versions, forgets those gone from disk (`unload_missing`), and
  // with `load` queues what the policy wants. Caller holds mutex_ uniquely.
  void plan(const std::string& name, bool unload_missing, std::vector<Task>& tasks, bool load = true);
  // Holds the package at what it serves: versions up to the newest known are not served by themselves.
  static void hold(Package& package);
  void enqueue(std::vector<Task> tasks);
  void loader_loop();
  void poller_loop();
  void load_version(const Task& task);  // runs on the loader thread, no lock held while it reads
  // Serving choices after a version became ready, failed or left. Caller holds mutex_ uniquely.
  void settle(const std::string& name, Package& package);
  void serve(const std::string& name, Package& package, std::uint64_t version, std::string_view why);
  void apply_policy(const std::string& name, Package& package);
  bool wanted_by_pin(const std::string& name, std::uint64_t version) const;

  RepositoryConfig config_;
  Hooks hooks_;

  mutable std::shared_mutex mutex_;
  std::map<std::string, Package> packages_;
  RepositoryCounters counters_;

  std::mutex tasks_mutex_;
  std::condition_variable tasks_changed_;  // a task queued, one finished, or stopping
  std::deque<Task> tasks_;
  std::size_t running_ = 0;
  bool stopping_ = false;
  std::condition_variable_any state_changed_;  // with mutex_: a version left loading
  std::thread loader_;
  std::thread poller_;
};

// The folder signature poll mode compares: every file's relative path, size and modification time.
std::uint64_t folder_signature(const std::filesystem::path& folder);

}  // namespace kiln::service::core
