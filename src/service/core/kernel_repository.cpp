#include "core/kernel_repository.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "kiln/driver/error.hpp"
#include "kiln/jit/artifact.hpp"

namespace kiln::service::core {
namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

// "123" -> 123; anything else (leading zeros included, so one version has one folder name) -> nullopt.
std::optional<std::uint64_t> version_number(std::string_view text) {
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  const std::uint64_t v = std::stoull(std::string(text));
  if (v == 0) return std::nullopt;
  return v;
}

bool valid_package_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// FNV-1a over bytes, for the folder signature (a change detector, not an integrity check: the
// manifest's SHA-256 sums are that).
void mix(std::uint64_t& h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
}

// The versions on disk of one package, with their folder signatures.
struct DiskVersions {
  bool exists = false;
  std::map<std::uint64_t, std::uint64_t> signatures;
};

DiskVersions read_versions(const fs::path& folder) {
  DiskVersions out;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return out;
  out.exists = true;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
    const auto version = version_number(entry.path().filename().string());
    std::error_code type_ec;
    if (!version || !entry.is_directory(type_ec)) continue;  // temporary folders (".x.tmp"), notes, files
    out.signatures[*version] = folder_signature(entry.path());
  }
  return out;
}

std::string arch_name(int arch) { return "sm_" + std::to_string(arch); }

}  // namespace

std::string_view to_string(VersionState state) noexcept {
  switch (state) {
    case VersionState::loading: return "loading";
    case VersionState::ready: return "ready";
    case VersionState::failed: return "failed";
    case VersionState::unloaded: return "unloaded";
  }
  return "unloaded";
}

std::uint64_t folder_signature(const fs::path& folder) {
  std::uint64_t h = 1469598103934665603ull;
  std::error_code ec;
  std::vector<std::pair<std::string, std::pair<std::uintmax_t, std::int64_t>>> files;
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    const std::int64_t mtime = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    files.push_back({it->path().lexically_relative(folder).string(), {static_cast<std::uintmax_t>(st.st_size), mtime}});
  }
  std::sort(files.begin(), files.end());
  for (const auto& [name, facts] : files) {
    mix(h, name.data(), name.size() + 1);
    mix(h, &facts.first, sizeof facts.first);
    mix(h, &facts.second, sizeof facts.second);
  }
  return h;
}

KernelRepository::KernelRepository(RepositoryConfig config, Hooks hooks) : config_(std::move(config)), hooks_(std::move(hooks)) {
  std::error_code ec;
  if (!fs::is_directory(config_.path, ec))
    throw Error(Errc::invalid_argument, "repository.path: '" + config_.path.string() + "' is not a folder" +
                                            (ec ? " (" + ec.message() + ")" : std::string()));
  config_.path = fs::canonical(config_.path);
  loader_ = std::thread([this] { loader_loop(); });

  std::vector<Task> tasks;
  {
    std::unique_lock lock(mutex_);
    // Every package is listed; explicit mode loads only those repository.load names.
    const bool explicit_mode = config_.mode == RepositoryMode::explicit_;
    for (const std::string& name : config_.load)
      if (!valid_package_name(name) || !fs::is_directory(config_.path / name, ec))
        hooks_.log.warn("repository_missing", "repository.load names a package the folder does not have",
                        {{"package", name}});
    for (const fs::directory_entry& entry : fs::directory_iterator(config_.path, ec)) {
      const std::string name = entry.path().filename().string();
      std::error_code type_ec;
      if (valid_package_name(name) && entry.is_directory(type_ec))
        plan(name, false, tasks, !explicit_mode || contains(config_.load, name));
    }
  }
  enqueue(std::move(tasks));
  wait_idle(std::chrono::milliseconds::max());
  if (config_.mode == RepositoryMode::poll) poller_ = std::thread([this] { poller_loop(); });
}

KernelRepository::~KernelRepository() {
  {
    std::lock_guard lock(tasks_mutex_);
    stopping_ = true;
  }
  tasks_changed_.notify_all();
  if (poller_.joinable()) poller_.join();
  if (loader_.joinable()) loader_.join();
}

// --- the folder -------------------------------------------------------------------------------------

void KernelRepository::hold(Package& package) {
  if (!package.versions.empty()) package.held_through = std::max(package.held_through, package.versions.rbegin()->first);
}

void KernelRepository::plan(const std::string& name, bool unload_missing, std::vector<Task>& tasks, bool load) {
  const DiskVersions disk = read_versions(config_.path / name);
  Package& package = packages_[name];
  for (auto it = package.versions.begin(); it != package.versions.end();) {
    if (disk.signatures.contains(it->first) || !unload_missing || it->second.state == VersionState::loading) {
      ++it;
      continue;
    }
    hooks_.log.info("repository_removed", "version left the repository folder: unloaded",
                    {{"package", name}, {"version", it->first}});
    it = package.versions.erase(it);
  }
  for (const auto& [version, signature] : disk.signatures) {
    auto [it, added] = package.versions.try_emplace(version);
    Version& v = it->second;
    if (added) v.signature = signature;
    if (v.state == VersionState::ready && v.signature != signature && !v.warned_changed) {
      v.warned_changed = true;
      hooks_.log.warn("repository_changed",
                      "a loaded version's files changed on disk; kilnd keeps serving what it loaded (publish a new "
                      "version instead of editing one)",
                      {{"package", name}, {"version", version}});
    }
  }

  if (!load) {
    settle(name, package);
    return;
  }
  // What the policy wants: the pinned versions, or the newest `latest` that load (a version that
  // failed, and has not changed since, is passed over for the next older one).
  auto want = [&](std::uint64_t version, Version& v) {
    const std::uint64_t signature = disk.signatures.at(version);
    if (v.state == VersionState::unloaded || (v.state == VersionState::failed && v.signature != signature)) {
      v.state = VersionState::loading;
      v.since = std::chrono::system_clock::now();
      tasks.push_back(Task{name, version, false});
    }
  };
  if (auto pin = config_.pinned.find(name); pin != config_.pinned.end()) {
    for (std::uint64_t version : pin->second)
      if (auto it = package.versions.find(version); it != package.versions.end() && disk.signatures.contains(version))
        want(version, it->second);
  } else {
    std::size_t counted = 0;
    for (auto it = package.versions.rbegin(); it != package.versions.rend(); ++it) {
      if (config_.latest != 0 && counted >= config_.latest) break;
      if (!disk.signatures.contains(it->first) || it->second.excluded) continue;
      want(it->first, it->second);
      if (it->second.state != VersionState::failed) ++counted;
    }
  }
  settle(name, package);
  if (package.versions.empty() && !disk.exists) packages_.erase(name);
}

void KernelRepository::poll() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(config_.path, ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code type_ec;
    if (valid_package_name(name) && entry.is_directory(type_ec)) names.push_back(name);
  }
  std::vector<Task> tasks;
  {
    std::unique_lock lock(mutex_);
    for (const std::string& name : names) plan(name, true, tasks);
    for (auto it = packages_.begin(); it != packages_.end();) {
      if (std::find(names.begin(), names.end(), it->first) != names.end()) {
        ++it;
        continue;
      }
      hooks_.log.info("repository_removed", "package left the repository folder: unloaded", {{"package", it->first}});
      it = packages_.erase(it);
    }
  }
  state_changed_.notify_all();
  enqueue(std::move(tasks));
}

void KernelRepository::poller_loop() {
  std::unique_lock lock(tasks_mutex_);
  while (!stopping_) {
    if (tasks_changed_.wait_for(lock, config_.poll_interval, [&] { return stopping_; })) break;
    lock.unlock();
    try {
      poll();
    } catch (const std::exception& e) {
      hooks_.log.error("repository_poll_failed", e.what());
    }
    lock.lock();
  }
}

// --- loading -----------------------------------------------------------------------------------------

void KernelRepository::enqueue(std::vector<Task> tasks) {
  if (tasks.empty()) return;
  {
    std::lock_guard lock(tasks_mutex_);
    for (Task& t : tasks) tasks_.push_back(std::move(t));
  }
  tasks_changed_.notify_all();
}

bool KernelRepository::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(tasks_mutex_);
  auto idle = [&] { return tasks_.empty() && running_ == 0; };
  if (timeout == std::chrono::milliseconds::max()) {
    tasks_changed_.wait(lock, idle);
    return true;
  }
  return tasks_changed_.wait_for(lock, timeout, idle);
}

void KernelRepository::loader_loop() {
  std::unique_lock lock(tasks_mutex_);
  for (;;) {
    tasks_changed_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (stopping_) return;
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    ++running_;
    lock.unlock();
    try {
      load_version(task);
    } catch (const std::exception& e) {  // load_version reports failures itself; this is a bug's last stop
      hooks_.log.error("repository_load_failed", e.what(), {{"package", task.name}, {"version", task.version}});
    }
    lock.lock();
    --running_;
    tasks_changed_.notify_all();
  }
}

void KernelRepository::load_version(const Task& task) {
  const auto started = SteadyClock::now();
  const fs::path folder = config_.path / task.name / std::to_string(task.version);
  Version result;
  result.state = VersionState::failed;
  auto fail = [&](std::string problem, std::string reason) {
    result.problem = std::move(problem);
    result.reason = std::move(reason);
  };

  const std::uint64_t signature = folder_signature(folder);
  result.signature = signature;
  try {
    // A version folder that is a symbolic link (or has one above it) out of the repository.
    const fs::path real = fs::canonical(folder);
    const auto [end, _] = std::mismatch(config_.path.begin(), config_.path.end(), real.begin(), real.end());
    if (end != config_.path.end())
      throw jit::PackageError(jit::PackageProblem::path_outside, "",
                              "the version folder leads outside the repository, to " + real.string());

    const jit::Package pkg = jit::Package::open(folder);
    const jit::PackageManifest& manifest = pkg.manifest();
    result.manifest = std::make_shared<const jit::PackageManifest>(manifest);
    if (manifest.name != task.name || manifest.version != task.version)
      throw jit::PackageError(jit::PackageProblem::manifest_invalid, "manifest.json",
                              "the manifest is " + manifest.name + " version " + std::to_string(manifest.version) +
                                  ", but its folder is " + task.name + "/" + std::to_string(task.version));

    auto kernel = std::make_shared<detail::RegisteredKernel>();
    kernel->tenant = {};  // repository kernels are found by name, never by id
    std::map<std::string, std::string> lowered;
    for (const jit::EntryPoint& e : manifest.entry_points) lowered[e.name] = e.symbol;
    if (auto program = pkg.program()) kernel->program = std::move(*program);

    std::vector<int> archs = hooks_.architectures();
    std::sort(archs.begin(), archs.end());
    archs.erase(std::unique(archs.begin(), archs.end()), archs.end());
    for (int arch : archs) {
      std::string why;
      if (const jit::PackageImage* image = pkg.image_for(arch, &why)) {
        jit::ArtifactContents contents;
        contents.kind = image->kind;
        contents.arch = image->arch;
        contents.program_name = manifest.name;
        contents.image = *pkg.image_bytes(*image);
        contents.lowered_names = lowered;
        contents.key = jit::CacheKey::from_hex(manifest.files.at(image->file));
        std::string bytes = contents.image;
        if (image->kind == jit::ImageKind::ptx) bytes.push_back('\0');
        kernel->images[arch] = detail::CompiledImage{jit::Artifact(std::move(contents), jit::Origin::disk),
                                                     std::make_shared<const std::string>(std::move(bytes))};
        result.images.push_back(arch_name(arch) + ": " + image->file +
                                (image->kind == jit::ImageKind::ptx ? " (PTX, compiled by the driver)" : ""));
      } else if (!kernel->program.source.empty()) {
        jit::Artifact artifact = hooks_.compile(kernel->program, arch);
        std::string bytes(artifact.image());
        if (artifact.kind() == jit::ImageKind::ptx) bytes.push_back('\0');
        kernel->images[arch] = detail::CompiledImage{artifact, std::make_shared<const std::string>(std::move(bytes))};
        result.images.push_back(arch_name(arch) + ": source, compiled for it (" + why + ")");
      } else {
        throw jit::PackageError(jit::PackageProblem::no_image, "", "no image for " + arch_name(arch) + ": " + why);
      }
    }
    // Files replaced while they were read (a copy in progress): try again once they settle.
    if (folder_signature(folder) != signature)
      throw jit::PackageError(jit::PackageProblem::incomplete, "", "the files changed while kilnd read them");
    result.kernel = std::move(kernel);
    result.state = VersionState::ready;
  } catch (const jit::PackageError& e) {
    fail(std::string(jit::to_string(e.problem())), e.detail());
  } catch (const Error& e) {
    fail(e.is(Errc::compile_failed) ? "compile_failed" : std::string(e.name()), e.detail().empty() ? e.what() : e.detail());
  } catch (const fs::filesystem_error& e) {
    fail("unreadable", e.what());
  } catch (const std::bad_alloc&) {
    fail("out_of_host_memory", "kilnd could not allocate host memory for the package");
  }
  result.load_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count();
  result.since = std::chrono::system_clock::now();

  std::vector<Task> next;
  {
    std::unique_lock lock(mutex_);
    auto pit = packages_.find(task.name);
    if (pit == packages_.end()) return;  // removed meanwhile
    auto vit = pit->second.versions.find(task.version);
    if (vit == pit->second.versions.end() || vit->second.state != VersionState::loading) return;
    const bool serve_when_ready = task.serve || vit->second.serve_when_ready;
    result.excluded = false;
    vit->second = std::move(result);
    Version& v = vit->second;
    if (v.state == VersionState::ready) {
      ++counters_.loads;
      hooks_.log.info("repository_loaded", "version loaded",
                      {{"package", task.name}, {"version", task.version}, {"load_ms", v.load_ms}});
      if (serve_when_ready) {
        serve(task.name, pit->second, task.version, "a load named it");
        hold(pit->second);
      }
      settle(task.name, pit->second);
    } else {
      ++counters_.failures;
      hooks_.log.warn("repository_refused", v.reason,
                      {{"package", task.name}, {"version", task.version}, {"problem", v.problem}});
      // The policy passes over a refused version: the next older one may be wanted now.
      if (!task.serve) plan(task.name, config_.mode == RepositoryMode::poll, next);
      else settle(task.name, pit->second);
    }
  }
  state_changed_.notify_all();
  enqueue(std::move(next));
}

// --- serving ----------------------------------------------------------------------------------------

void KernelRepository::serve(const std::string& name, Package& package, std::uint64_t version, std::string_view why) {
  if (package.serving == version) return;
  if (package.serving) package.previous = package.serving;
  package.serving = version;
  ++counters_.swaps;
  LogFields fields{{"package", name}, {"version", version}, {"why", why}};
  if (package.previous) fields.emplace_back("previous", *package.previous);
  hooks_.log.info("repository_serving", "version in service", fields);
}

bool KernelRepository::wanted_by_pin(const std::string& name, std::uint64_t version) const {
  auto pin = config_.pinned.find(name);
  return pin == config_.pinned.end() || std::find(pin->second.begin(), pin->second.end(), version) != pin->second.end();
}

void KernelRepository::settle(const std::string& name, Package& package) {
  auto ready = [&](std::optional<std::uint64_t> v) {
    if (!v) return false;
    auto it = package.versions.find(*v);
    return it != package.versions.end() && it->second.state == VersionState::ready;
  };
  if (!ready(package.previous) || package.previous == package.serving) package.previous.reset();
  if (!ready(package.serving)) {
    package.serving.reset();
    if (package.previous) {
      package.serving = package.previous;
      package.previous.reset();
      ++counters_.swaps;
      hooks_.log.info("repository_serving", "the version in service left; the previous one serves",
                      {{"package", name}, {"version", *package.serving}});
    }
  }
  // The newest ready version serves, unless a rollback holds the package below it.
  std::optional<std::uint64_t> newest;
  for (const auto& [version, v] : package.versions)
    if (v.state == VersionState::ready && !v.excluded && wanted_by_pin(name, version) &&
        (version > package.held_through || !package.serving))
      newest = version;
  if (newest && (!package.serving || *newest > *package.serving)) {
    if (*newest > package.held_through) package.held_through = 0;  // a newer version ends a hold
    serve(name, package, *newest, "newest ready version");
  }
  apply_policy(name, package);
}

void KernelRepository::apply_policy(const std::string& name, Package& package) {
  // Ready versions beyond the policy are unloaded; the serving and the previous one always stay.
  std::size_t kept = 0;
  for (auto it = package.versions.rbegin(); it != package.versions.rend(); ++it) {
    Version& v = it->second;
    if (v.state != VersionState::ready) continue;
    const bool pinned_out = !wanted_by_pin(name, it->first);
    const bool beyond_latest = !config_.pinned.contains(name) && config_.latest != 0 && kept >= config_.latest;
    if (it->first == package.serving || it->first == package.previous || (!pinned_out && !beyond_latest)) {
      ++kept;
      continue;
    }
    v.state = VersionState::unloaded;
    v.kernel.reset();
    v.since = std::chrono::system_clock::now();
    hooks_.log.info("repository_unloaded", "version unloaded by the version policy", {{"package", name}, {"version", it->first}});
  }
}

// --- requests ---------------------------------------------------------------------------------------

bool KernelRepository::is_operator(const std::string& tenant) const { return contains(config_.operators, tenant); }

bool KernelRepository::may_launch(const std::string& tenant, const jit::PackageManifest& manifest) const {
  if (!manifest.tenants.empty()) return contains(manifest.tenants, tenant);
  return !config_.tenants || contains(*config_.tenants, tenant);
}

bool KernelRepository::may_see(const std::string& tenant, const Package& package) const {
  if (is_operator(tenant)) return true;
  bool any_manifest = false;
  for (const auto& [version, v] : package.versions) {
    if (!v.manifest) continue;
    any_manifest = true;
    if (may_launch(tenant, *v.manifest)) return true;
  }
  return !any_manifest && (!config_.tenants || contains(*config_.tenants, tenant));
}

RepositoryPackage KernelRepository::describe(const std::string& name, const Package& package) const {
  RepositoryPackage out;
  out.name = name;
  out.serving = package.serving;
  out.previous = package.previous;
  out.held = package.held_through != 0;
  for (const auto& [version, v] : package.versions) {
    RepositoryVersion r;
    r.version = version;
    r.state = v.state;
    r.serving = package.serving == version;
    r.problem = v.problem;
    r.reason = v.reason;
    if (v.manifest)
      for (const jit::EntryPoint& e : v.manifest->entry_points) r.entry_points.push_back(e.name);
    r.images = v.images;
    r.load_ms = v.load_ms;
    r.since = v.since;
    out.versions.push_back(std::move(r));
  }
  return out;
}

Result<RepositoryKernel> KernelRepository::find(const std::string& tenant, std::string_view reference) const {
  std::string_view name = reference;
  std::optional<std::uint64_t> version;
  if (auto colon = reference.rfind(':'); colon != std::string_view::npos) {
    name = reference.substr(0, colon);
    version = version_number(reference.substr(colon + 1));
    if (!version)
      return error(ErrorKind::invalid_argument,
                     "kernel: '" + std::string(reference) + "' is not name or name:version (a version is a number from 1)",
                     "kernel");
  }
  std::shared_lock lock(mutex_);
  auto pit = packages_.find(std::string(name));
  if (pit == packages_.end() || !may_see(tenant, pit->second))
    return error(ErrorKind::not_found, "kernel: no package '" + std::string(name) + "' in the repository", "kernel");
  const Package& package = pit->second;
  const std::uint64_t chosen = version ? *version : package.serving.value_or(0);
  if (chosen == 0)
    return error(ErrorKind::not_serving, "kernel: package '" + std::string(name) + "' has no version in service",
                   "kernel");
  auto vit = package.versions.find(chosen);
  if (vit == package.versions.end())
    return error(ErrorKind::not_found,
                   "kernel: package '" + std::string(name) + "' has no version " + std::to_string(chosen), "kernel");
  const Version& v = vit->second;
  if (v.state != VersionState::ready) {
    ServiceError e = error(v.state == VersionState::loading ? ErrorKind::not_serving : ErrorKind::not_found,
                             "kernel: version " + std::to_string(chosen) + " of package '" + std::string(name) + "' is " +
                                 std::string(to_string(v.state)) + (v.reason.empty() ? "" : ": " + v.reason),
                             "kernel");
    if (v.state == VersionState::loading) e.hint = "retry once it is ready";
    return e;
  }
  if (!may_launch(tenant, *v.manifest))
    return error(ErrorKind::not_found, "kernel: no package '" + std::string(name) + "' in the repository", "kernel");
  return RepositoryKernel{v.kernel, v.manifest, std::string(name), chosen};
}

std::vector<RepositoryPackage> KernelRepository::index(const std::string& tenant) const {
  std::vector<RepositoryPackage> out;
  std::shared_lock lock(mutex_);
  for (const auto& [name, package] : packages_)
    if (may_see(tenant, package)) out.push_back(describe(name, package));
  return out;
}

Result<RepositoryPackage> KernelRepository::package(const std::string& tenant, std::string_view name) const {
  std::shared_lock lock(mutex_);
  auto it = packages_.find(std::string(name));
  if (it == packages_.end() || !may_see(tenant, it->second))
    return error(ErrorKind::not_found, "no package '" + std::string(name) + "' in the repository");
  return describe(it->first, it->second);
}

std::optional<ServiceError> KernelRepository::control_refusal(const std::string& tenant, std::string_view name,
                                                              bool in_mode_none) const {
  if (!is_operator(tenant)) {
    ServiceError e = error(ErrorKind::forbidden, "tenant '" + tenant + "' may not change the kernel repository");
    e.hint = "kilnd's repository.operators lists the tenants that may";
    return e;
  }
  if (in_mode_none && config_.mode == RepositoryMode::none) {
    ServiceError e = error(ErrorKind::forbidden, "the repository's control mode is none: what kilnd loaded at start is final");
    e.hint = "run kilnd with repository mode explicit or poll to load and unload by API";
    return e;
  }
  if (!valid_package_name(name)) return error(ErrorKind::invalid_argument, "'" + std::string(name) + "' is not a package name");
  return std::nullopt;
}

Result<RepositoryPackage> KernelRepository::load(const std::string& tenant, std::string_view name_view,
                                                 std::optional<std::uint64_t> version, std::chrono::milliseconds wait) {
  if (auto e = control_refusal(tenant, name_view, true)) return *e;
  const std::string name(name_view);
  std::vector<Task> tasks;
  std::vector<std::uint64_t> waiting_for;
  {
    std::unique_lock lock(mutex_);
    const DiskVersions disk = read_versions(config_.path / name);
    if (!disk.exists) return error(ErrorKind::not_found, "no package '" + name + "' in the repository folder");
    if (version && !disk.signatures.contains(*version))
      return error(ErrorKind::not_found, "package '" + name + "' has no version " + std::to_string(*version) + " on disk");
    Package& package = packages_[name];
    package.held_through = 0;
    if (version) {
      Version& v = package.versions[*version];
      v.excluded = false;
      if (v.state == VersionState::ready) {
        serve(name, package, *version, "a load named it");
        hold(package);
      } else if (v.state == VersionState::loading) {
        v.serve_when_ready = true;
      } else {
        v.state = VersionState::loading;
        v.since = std::chrono::system_clock::now();
        tasks.push_back(Task{name, *version, true});
      }
      waiting_for.push_back(*version);
    } else {
      for (auto& [number, v] : package.versions) {
        v.excluded = false;
        if (v.state == VersionState::failed) v.signature = 0;  // try it again even if unchanged
      }
      plan(name, config_.mode == RepositoryMode::poll, tasks);
      for (const Task& t : tasks) waiting_for.push_back(t.version);
    }
  }
  enqueue(std::move(tasks));

  std::shared_lock lock(mutex_);
  auto loading = [&] {
    auto pit = packages_.find(name);
    if (pit == packages_.end()) return false;
    return std::any_of(waiting_for.begin(), waiting_for.end(), [&](std::uint64_t v) {
      auto vit = pit->second.versions.find(v);
      return vit != pit->second.versions.end() && vit->second.state == VersionState::loading;
    });
  };
  state_changed_.wait_for(lock, wait, [&] { return !loading(); });
  auto pit = packages_.find(name);
  if (pit == packages_.end()) return error(ErrorKind::not_found, "package '" + name + "' left the repository folder");
  if (version) {
    const Version& v = pit->second.versions.at(*version);
    if (v.state == VersionState::failed) {
      ServiceError e = error(ErrorKind::package_refused, "version " + std::to_string(*version) + " of package '" + name +
                                                               "' was refused: " + v.reason);
      e.details = {{"package", name}, {"version", *version}, {"problem", v.problem}, {"reason", v.reason}};
      return e;
    }
  }
  return describe(name, pit->second);
}

Result<RepositoryPackage> KernelRepository::unload(const std::string& tenant, std::string_view name_view,
                                                   std::optional<std::uint64_t> version) {
  if (auto e = control_refusal(tenant, name_view, true)) return *e;
  const std::string name(name_view);
  std::unique_lock lock(mutex_);
  auto pit = packages_.find(name);
  if (pit == packages_.end()) return error(ErrorKind::not_found, "no package '" + name + "' in the repository");
  Package& package = pit->second;
  if (version && !package.versions.contains(*version))
    return error(ErrorKind::not_found, "package '" + name + "' has no version " + std::to_string(*version));
  for (auto& [number, v] : package.versions) {
    if (version && number != *version) continue;
    v.excluded = true;  // poll mode leaves it out until a load names it
    if (v.state == VersionState::ready || v.state == VersionState::failed) {
      if (v.state == VersionState::ready)
        hooks_.log.info("repository_unloaded", "version unloaded by request", {{"package", name}, {"version", number}});
      v.state = VersionState::unloaded;
      v.kernel.reset();
      v.since = std::chrono::system_clock::now();
    }
  }
  if (!version) package.serving.reset(), package.previous.reset();
  settle(name, package);
  return describe(name, package);
}

Result<RepositoryPackage> KernelRepository::rollback(const std::string& tenant, std::string_view name_view) {
  if (auto e = control_refusal(tenant, name_view, false)) return *e;
  const std::string name(name_view);
  std::unique_lock lock(mutex_);
  auto pit = packages_.find(name);
  if (pit == packages_.end()) return error(ErrorKind::not_found, "no package '" + name + "' in the repository");
  Package& package = pit->second;
  if (!package.previous) {
    ServiceError e = error(ErrorKind::invalid_argument, "package '" + name + "' has no previous version to roll back to");
    e.hint = "a rollback returns to the version served before the current one; POST .../load with a version serves any other";
    return e;
  }
  const std::uint64_t from = *package.serving;
  const std::uint64_t to = *package.previous;
  package.serving = to;
  package.previous = from;
  package.held_through = package.versions.empty() ? from : std::max(from, package.versions.rbegin()->first);
  ++counters_.swaps;
  ++counters_.rollbacks;
  hooks_.log.info("repository_rollback", "rolled back", {{"package", name}, {"version", to}, {"from", from}});
  return describe(name, package);
}

RepositoryCounters KernelRepository::counters() const {
  std::shared_lock lock(mutex_);
  RepositoryCounters out = counters_;
  for (const auto& [name, package] : packages_)
    for (const auto& [version, v] : package.versions) ++out.versions[v.state];
  return out;
}

}  // namespace kiln::service::core
