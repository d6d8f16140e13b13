#include "kiln/service/config.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& object, std::string_view origin) : object_(object), origin_(origin) {}

  [[noreturn]] void fail(std::string_view key, std::string_view what) const {
    throw Error(Errc::invalid_argument, std::string(origin_) + ": key '" + std::string(key) + "': " + std::string(what));
  }

  template <class Int>
  void integer(std::string_view key, const json& value, Int& out, long long min, long long max) const {
    if (!value.is_number_integer()) fail(key, "expected an integer, got " + value.dump());
    const long long v = value.is_number_unsigned() && value.get<unsigned long long>() > static_cast<unsigned long long>(
                                                                                              std::numeric_limits<long long>::max())
                            ? std::numeric_limits<long long>::max()
                            : value.get<long long>();
    if (v < min || v > max)
      fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + value.dump());
    out = static_cast<Int>(v);
  }
  void ms(std::string_view key, const json& value, std::chrono::milliseconds& out) const {
    long long v = 0;
    integer(key, value, v, 0, std::numeric_limits<int>::max());
    out = std::chrono::milliseconds(v);
  }
  void text(std::string_view key, const json& value, std::string& out) const {
    if (!value.is_string()) fail(key, "expected a string, got " + value.dump());
    out = value.get<std::string>();
  }
  void flag(std::string_view key, const json& value, bool& out) const {
    if (!value.is_boolean()) fail(key, "expected true or false, got " + value.dump());
    out = value.get<bool>();
  }
  void strings(std::string_view key, const json& value, std::vector<std::string>& out) const {
    if (!value.is_array()) fail(key, "expected an array of strings, got " + value.dump());
    out.clear();
    for (const json& v : value) {
      if (!v.is_string()) fail(key, "expected an array of strings, found " + v.dump());
      out.push_back(v.get<std::string>());
    }
  }

 private:
  const json& object_;
  std::string_view origin_;
};

constexpr long long kMaxBytes = std::numeric_limits<long long>::max();

void apply_policy(jit::SourcePolicy& policy, const json& object, const Reader& r) {
  if (!object.is_object()) r.fail("source_policy", "expected an object, got " + object.dump());
  for (const auto& [key, value] : object.items()) {
    const std::string k = "source_policy." + key;
    if (key == "max_source_bytes") r.integer(k, value, policy.max_source_bytes, 1, kMaxBytes);
    else if (key == "max_headers") r.integer(k, value, policy.max_headers, 0, 1 << 20);
    else if (key == "max_header_bytes") r.integer(k, value, policy.max_header_bytes, 1, kMaxBytes);
    else if (key == "allow_include_dirs") r.flag(k, value, policy.allow_include_dirs);
    else if (key == "allow_extra_options") r.flag(k, value, policy.allow_extra_options);
    else if (key == "forbidden_identifiers") r.strings(k, value, policy.forbidden_identifiers);
    else if (key == "forbidden_ptx_instructions") r.strings(k, value, policy.forbidden_ptx_instructions);
    else if (key == "max_compile_time_ms") r.ms(k, value, policy.max_compile_time);
    else if (key == "max_compile_memory_bytes") r.integer(k, value, policy.max_compile_memory, 0, kMaxBytes);
    else r.fail(k, "unknown key");
  }
}

bool valid_library_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '.' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

void apply_library_options(jit::CompileOptions& o, const json& object, const Reader& r, const std::string& where) {
  if (!object.is_object()) r.fail(where, "expected an object, got " + object.dump());
  for (const auto& [key, value] : object.items()) {
    const std::string k = where + "." + key;
    if (key == "std") r.text(k, value, o.standard);
    else if (key == "defines") r.strings(k, value, o.defines);
    else if (key == "fast_math") r.flag(k, value, o.fast_math);
    else if (key == "line_info") r.flag(k, value, o.line_info);
    else if (key == "rdc") r.flag(k, value, o.relocatable_device_code);
    else if (key == "max_registers") r.integer(k, value, o.max_registers, 0, 255);
    else if (key == "extra") r.strings(k, value, o.extra);
    else r.fail(k, "unknown key (std, defines, fast_math, line_info, max_registers, rdc, extra)");
  }
}

// "device_libraries": {"name": {"ltoir"?, "arch"?, "source"?, "options"?, "headers"?, "tenants"?}}
void apply_libraries(std::map<std::string, DeviceLibraryConfig>& out, const json& object, const Reader& r) {
  if (!object.is_object()) r.fail("device_libraries", "expected an object of library name -> settings, got " + object.dump());
  out.clear();
  for (const auto& [name, settings] : object.items()) {
    const std::string where = "device_libraries." + name;
    if (!valid_library_name(name)) r.fail(where, "a library name is 1-64 of A-Z a-z 0-9 _ . -");
    if (!settings.is_object()) r.fail(where, "expected an object {\"ltoir\"?, \"arch\"?, \"source\"?, \"options\"?, "
                                             "\"headers\"?, \"tenants\"?}, got " + settings.dump());
    DeviceLibraryConfig lib;
    for (const auto& [key, value] : settings.items()) {
      const std::string k = where + "." + key;
      std::string path;
      if (key == "ltoir") (r.text(k, value, path), lib.ltoir = path);
      else if (key == "arch") r.integer(k, value, lib.arch, 30, 1000);
      else if (key == "source") (r.text(k, value, path), lib.source = path);
      else if (key == "options") apply_library_options(lib.options, value, r, k);
      else if (key == "headers") {
        if (!value.is_object()) r.fail(k, "expected an object of include name -> file, got " + value.dump());
        for (const auto& [include, file] : value.items()) {
          if (include.empty()) r.fail(k, "an include name is empty");
          if (!file.is_string() || file.get<std::string>().empty())
            r.fail(k + "." + include, "expected the header's file name, got " + file.dump());
          lib.headers[include] = file.get<std::string>();
        }
      } else if (key == "tenants") {
        std::vector<std::string> tenants;
        r.strings(k, value, tenants);
        lib.tenants = std::move(tenants);
      } else {
        r.fail(k, "unknown key (ltoir, arch, source, options, headers, tenants)");
      }
    }
    if (lib.ltoir.empty() && lib.source.empty())
      r.fail(where, "names neither \"ltoir\" (a file of `kiln compile --lto`) nor \"source\" (a .cu file)");
    if (lib.arch != 0 && lib.ltoir.empty()) r.fail(where + ".arch", "is the architecture of \"ltoir\", which is not given");
    out[name] = std::move(lib);
  }
}

// "repository": {"path", "mode"?, "poll_interval_ms"?, "latest"?, "pinned"? {name: [versions]},
// "load"? [names], "operators"? [tenants], "tenants"? [tenants]}
void apply_repository(RepositoryConfig& out, const json& object, const Reader& r) {
  if (!object.is_object()) r.fail("repository", "expected an object {\"path\", \"mode\"?, ...}, got " + object.dump());
  for (const auto& [key, value] : object.items()) {
    const std::string k = "repository." + key;
    std::string text;
    if (key == "path") (r.text(k, value, text), out.path = text);
    else if (key == "mode") {
      r.text(k, value, text);
      const auto mode = parse_repository_mode(text);
      if (!mode) r.fail(k, "expected \"none\", \"explicit\" or \"poll\", got " + value.dump());
      out.mode = *mode;
    } else if (key == "poll_interval_ms") r.ms(k, value, out.poll_interval);
    else if (key == "latest") r.integer(k, value, out.latest, 0, 1 << 20);
    else if (key == "pinned") {
      if (!value.is_object()) r.fail(k, "expected an object of package name -> [versions], got " + value.dump());
      out.pinned.clear();
      for (const auto& [name, versions] : value.items()) {
        if (!versions.is_array() || versions.empty()) r.fail(k + "." + name, "expected a non-empty array of versions");
        for (const json& v : versions) {
          std::uint64_t version = 0;
          r.integer(k + "." + name, v, version, 1, std::numeric_limits<long long>::max());
          out.pinned[name].push_back(version);
        }
      }
    } else if (key == "load") r.strings(k, value, out.load);
    else if (key == "operators") r.strings(k, value, out.operators);
    else if (key == "tenants") {
      std::vector<std::string> tenants;
      r.strings(k, value, tenants);
      out.tenants = std::move(tenants);
    } else {
      r.fail(k, "unknown key (path, mode, poll_interval_ms, latest, pinned, load, operators, tenants)");
    }
  }
}

}  // namespace

std::string_view to_string(RepositoryMode mode) noexcept {
  switch (mode) {
    case RepositoryMode::none: return "none";
    case RepositoryMode::explicit_: return "explicit";
    case RepositoryMode::poll: return "poll";
  }
  return "none";
}

std::optional<RepositoryMode> parse_repository_mode(std::string_view text) noexcept {
  if (text == "none") return RepositoryMode::none;
  if (text == "explicit") return RepositoryMode::explicit_;
  if (text == "poll") return RepositoryMode::poll;
  return std::nullopt;
}

void apply_config_json(ServiceConfig& c, std::string_view json_text, std::string_view origin) {
  json object;
  try {
    object = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number such as 1e999
    throw Error(Errc::invalid_argument, std::string(origin) + ": not valid JSON: " + e.what());
  }
  if (!object.is_object())
    throw Error(Errc::invalid_argument, std::string(origin) + ": expected a JSON object of settings");
  const Reader r(object, origin);
  for (const auto& [key, value] : object.items()) {
    std::string path;
    if (key == "listen_address") r.text(key, value, c.listen_address);
    else if (key == "port") r.integer(key, value, c.port, 0, 65535);
    else if (key == "grpc_port") r.integer(key, value, c.grpc_port, 0, 65535);
    else if (key == "grpc_threads") r.integer(key, value, c.grpc_threads, 1, 4096);
    else if (key == "tokens_file") (r.text(key, value, path), c.tokens_file = path);
    else if (key == "allow_insecure_tokens") r.flag(key, value, c.allow_insecure_tokens);
    else if (key == "http_threads") r.integer(key, value, c.http_threads, 1, 1024);
    else if (key == "http_io_threads") r.integer(key, value, c.http_io_threads, 1, 256);
    else if (key == "spin_us") {
      long long us = 0;
      r.integer(key, value, us, 0, 1000000);
      c.spin = std::chrono::microseconds(us);
    }
    else if (key == "max_connections") r.integer(key, value, c.max_connections, 1, 1u << 24);
    else if (key == "max_connections_per_client") r.integer(key, value, c.max_connections_per_client, 1, 1u << 24);
    else if (key == "header_timeout_ms") r.ms(key, value, c.header_timeout);
    else if (key == "idle_timeout_ms") r.ms(key, value, c.idle_timeout);
    else if (key == "body_timeout_ms") r.ms(key, value, c.body_timeout);
    else if (key == "min_body_rate") r.integer(key, value, c.min_body_rate, 1, kMaxBytes);
    else if (key == "write_timeout_ms") r.ms(key, value, c.write_timeout);
    else if (key == "max_body_bytes") r.integer(key, value, c.max_body_bytes, 1, kMaxBytes);
    else if (key == "max_json_bytes") r.integer(key, value, c.max_json_bytes, 1, kMaxBytes);
    else if (key == "max_buffer_bytes") r.integer(key, value, c.max_buffer_bytes, 1, kMaxBytes);
    else if (key == "allow_client_shm") r.flag(key, value, c.allow_client_shm);
    else if (key == "max_shm_regions_per_tenant") r.integer(key, value, c.max_shm_regions_per_tenant, 1, 1u << 20);
    else if (key == "allow_client_ipc") r.flag(key, value, c.allow_client_ipc);
    else if (key == "ipc_socket") r.text(key, value, c.ipc_socket);
    else if (key == "max_kernels_per_tenant") r.integer(key, value, c.max_kernels_per_tenant, 1, kMaxBytes);
    else if (key == "max_launch_arguments") r.integer(key, value, c.max_launch_arguments, 0, 4096);
    else if (key == "max_json_depth") r.integer(key, value, c.max_json_depth, 2, 10000);
    else if (key == "max_json_values") r.integer(key, value, c.max_json_values, 16, kMaxBytes);
    else if (key == "cache_dir") (r.text(key, value, path), c.cache_dir = path);
    else if (key == "cache_memory_bytes") r.integer(key, value, c.cache_memory_bytes, 0, kMaxBytes);
    else if (key == "fallback_arch") r.integer(key, value, c.fallback_arch, 30, 1000);
    else if (key == "max_queued_jobs") r.integer(key, value, c.max_queued_jobs, 1, kMaxBytes);
    else if (key == "max_queued_jobs_per_tenant") r.integer(key, value, c.max_queued_jobs_per_tenant, 1, kMaxBytes);
    else if (key == "aging_step_ms") r.ms(key, value, c.aging_step);
    else if (key == "dispatchers_per_device") r.integer(key, value, c.dispatchers_per_device, 1, 256);
    else if (key == "gpu_mode") {
      std::string mode;
      r.text(key, value, mode);
      const auto parsed = parse_gpu_mode(mode);
      if (!parsed) r.fail(key, "expected \"isolation\" or \"concurrent\", got " + value.dump());
      c.gpu_mode = *parsed;
    } else if (key == "gpu_modes") {
      if (!value.is_object()) r.fail(key, "expected an object of GPU ordinals and modes, {\"1\": \"concurrent\"}");
      c.gpu_modes.clear();
      for (const auto& [ordinal, mode] : value.items()) {
        const std::optional<std::uint64_t> device = ordinal.size() <= 3 && !ordinal.empty() &&
                                                             ordinal.find_first_not_of("0123456789") == std::string::npos
                                                         ? std::optional<std::uint64_t>(std::stoull(ordinal))
                                                         : std::nullopt;
        if (!device) r.fail(key, "\"" + ordinal + "\" is not a GPU ordinal (0-999)");
        const auto parsed = mode.is_string() ? parse_gpu_mode(mode.get<std::string>()) : std::nullopt;
        if (!parsed) r.fail(key, "GPU " + ordinal + ": expected \"isolation\" or \"concurrent\", got " + mode.dump());
        c.gpu_modes[static_cast<int>(*device)] = *parsed;
      }
    } else if (key == "streams_per_gpu") r.integer(key, value, c.streams_per_gpu, 1, 256);
    else if (key == "default_deadline_ms") r.ms(key, value, c.default_deadline);
    else if (key == "max_deadline_ms") r.ms(key, value, c.max_deadline);
    else if (key == "max_wait_ms") r.ms(key, value, c.max_wait);
    else if (key == "drain_timeout_ms") r.ms(key, value, c.drain_timeout);
    else if (key == "job_retention_s") {
      long long s = 0;
      r.integer(key, value, s, 0, std::numeric_limits<int>::max());
      c.job_retention = std::chrono::seconds(s);
    } else if (key == "source_policy") apply_policy(c.source_policy, value, r);
    else if (key == "device_libraries") apply_libraries(c.device_libraries, value, r);
    else if (key == "repository") apply_repository(c.repository, value, r);
    else if (key == "compile_workers") r.integer(key, value, c.compile_workers, 0, 256);
    else if (key == "max_compiles_per_tenant") r.integer(key, value, c.max_compiles_per_tenant, 0, 256);
    else if (key == "max_queued_compiles_per_tenant") r.integer(key, value, c.max_queued_compiles_per_tenant, 0, 1 << 20);
    else if (key == "queue") r.text(key, value, c.queue_url);
    else if (key == "node_name") r.text(key, value, c.node_name);
    else if (key == "queue_prefix") r.text(key, value, c.queue_prefix);
    else if (key == "cluster_compile_threads") r.integer(key, value, c.cluster_compile_threads, 0, 256);
    else if (key == "cluster_lease_ms") r.ms(key, value, c.cluster_lease);
    else if (key == "cluster_max_deliveries") r.integer(key, value, c.cluster_max_deliveries, 1, 1000);
    else if (key == "log_format") {
      std::string format;
      r.text(key, value, format);
      const auto parsed = parse_log_format(format);
      if (!parsed) r.fail(key, "expected \"text\" or \"json\", got " + value.dump());
      c.log_format = *parsed;
    } else if (key == "log_level") {
      std::string level;
      r.text(key, value, level);
      const auto parsed = parse_log_level(level);
      if (!parsed) r.fail(key, "expected \"debug\", \"info\", \"warn\", \"error\" or \"off\", got " + value.dump());
      c.log_level = *parsed;
    } else if (key == "log_file") (r.text(key, value, path), c.log_file = path);
    else r.fail(key, "unknown key (docs/SERVICE.md lists the settings)");
  }
}

jit::SourcePolicy default_source_policy() {
  jit::SourcePolicy policy;
  // A CUB kernel compiles in 1.6-2 s and 300 MiB; 96 nested CUB sorts in 670 bytes of source took
  // 69 s: without limits one request holds a compile slot for minutes.
  policy.max_compile_time = std::chrono::seconds(60);
  policy.max_compile_memory = 4ull << 30;
  return policy;
}

unsigned default_compile_workers() {
  return std::clamp(std::thread::hardware_concurrency() / 2, 2u, 8u);
}

GpuMode gpu_mode_of(const ServiceConfig& c, int device) {
  auto it = c.gpu_modes.find(device);
  return it == c.gpu_modes.end() ? c.gpu_mode : it->second;
}

int dispatchers_per_gpu(const ServiceConfig& c, int device) {
  return gpu_mode_of(c, device) == GpuMode::concurrent ? c.streams_per_gpu : c.dispatchers_per_device;
}

unsigned compiles_per_tenant(const ServiceConfig& c) {
  if (c.max_compiles_per_tenant > 0) return c.max_compiles_per_tenant;
  return std::max(1u, std::max(c.compile_workers, 1u) / 2);
}

ServiceConfig load_config_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(Errc::invalid_argument, "cannot read the config file " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  ServiceConfig config;
  apply_config_json(config, text.str(), file.string());
  return config;
}

void validate(const ServiceConfig& c) {
  auto fail = [](std::string what) { throw Error(Errc::invalid_argument, "invalid setting: " + std::move(what)); };
  if (c.listen_address.empty()) fail("listen_address is empty");
  if (c.port < 0 || c.port > 65535) fail("port " + std::to_string(c.port) + " is outside 0-65535");
  if (c.grpc_port < 0 || c.grpc_port > 65535) fail("grpc_port " + std::to_string(c.grpc_port) + " is outside 0-65535 (0: off)");
  if (c.grpc_port != 0 && c.grpc_port == c.port) fail("grpc_port " + std::to_string(c.grpc_port) + " is the HTTP port too");
  if (c.http_threads < 1) fail("http_threads must be at least 1");
  if (c.http_io_threads < 1) fail("http_io_threads must be at least 1");
  if (c.max_connections < 1 || c.max_connections_per_client < 1)
    fail("max_connections and max_connections_per_client must be at least 1");
  for (const auto& [name, value] : {std::pair{"header_timeout_ms", c.header_timeout}, std::pair{"idle_timeout_ms", c.idle_timeout},
                                    std::pair{"body_timeout_ms", c.body_timeout}, std::pair{"write_timeout_ms", c.write_timeout}})
    if (value.count() < 1) fail(std::string(name) + " must be at least 1");
  if (c.min_body_rate < 1) fail("min_body_rate must be at least 1 byte per second");
  if (c.dispatchers_per_device < 1) fail("dispatchers_per_device must be at least 1");
  if (c.streams_per_gpu < 1 || c.streams_per_gpu > 256)
    fail("streams_per_gpu " + std::to_string(c.streams_per_gpu) + " is outside 1-256");
  if (c.max_json_bytes > c.max_body_bytes)
    fail("max_json_bytes (" + std::to_string(c.max_json_bytes) + ") exceeds max_body_bytes (" +
         std::to_string(c.max_body_bytes) + ")");
  if (c.max_json_depth < 2) fail("max_json_depth must be at least 2 (a request is an object holding arrays)");
  if (c.max_json_values < 16) fail("max_json_values must be at least 16");
  if (c.default_deadline > c.max_deadline) fail("default_deadline_ms exceeds max_deadline_ms");
  if (!c.repository.path.empty() && c.repository.mode == RepositoryMode::poll &&
      c.repository.poll_interval < std::chrono::milliseconds(10))
    fail("repository.poll_interval_ms must be at least 10");
  if (!c.repository.load.empty() && c.repository.mode != RepositoryMode::explicit_)
    fail("repository.load names the packages loaded at start in explicit mode; in " +
         std::string(to_string(c.repository.mode)) + " mode the version policy decides");
  if (c.max_queued_jobs_per_tenant > c.max_queued_jobs) fail("max_queued_jobs_per_tenant exceeds max_queued_jobs");
  if (c.source_policy.max_compile_time.count() > 0 && c.compile_workers == 0)
    fail("source_policy.max_compile_time_ms needs compile_workers > 0 (NVRTC cannot be stopped in-process; "
         "a compile past the limit is ended by killing its worker process); to compile in kilnd's own process, "
         "set both to 0");
  if (c.source_policy.max_compile_memory > 0 && c.compile_workers == 0)
    fail("source_policy.max_compile_memory_bytes needs compile_workers > 0 (the limit applies to a compile "
         "worker process); to compile in kilnd's own process, set both to 0");
  if (!c.queue_url.empty() && c.queue_url != "memory") {
    if (c.cluster_lease < std::chrono::milliseconds(100)) fail("cluster_lease_ms must be at least 100");
    if (c.queue_prefix.empty()) fail("queue_prefix is empty");
  }
}

}  // namespace kiln::service
