// Built twice: into kiln_service, and alone into the fuzz target (by clang, which cannot compile
// kiln::Error's headers), so this file uses nothing of kiln but plain structs.
#include "kiln/service/requests.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "detail/bounded_json.hpp"
#include "detail/error_body.hpp"

namespace kiln::service {

namespace {

using nlohmann::json;

// A refusal travels as an exception inside this file only, and leaves it as a RequestError.
struct Refusal {
  RequestError error;
};

[[noreturn]] void refuse(std::string field, std::string message) { throw Refusal{{std::move(field), std::move(message)}}; }

std::string describe(const json& value) {
  // Containers are named, not printed: a body may hold many of them.
  if (value.is_structured()) return std::string("an ") + value.type_name();
  return detail::printable(detail::json_text(value), 60);
}

// Text quoted from the body into a message or a field name, kept short.
std::string excerpt(std::string_view text) { return detail::printable(text, 64); }

json parse_object(std::string_view body, const RequestLimits& limits) {
  json value;
  if (auto refusal = detail::parse_bounded_json(body, limits, value)) throw Refusal{std::move(*refusal)};
  if (!value.is_object()) refuse("", "expected a JSON object, got " + describe(value));
  return value;
}

void only_keys(const json& object, std::initializer_list<std::string_view> allowed, const std::string& where) {
  for (const auto& [key, v] : object.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) refuse(where + excerpt(key), "unknown field");
  }
}

// A number written with a fraction or an exponent, or an integer too large for 64 bits (which
// nlohmann keeps as a double): whole and non-negative, it is refused as too large.
bool whole_and_non_negative(const json& v) {
  const double d = v.get<double>();
  return std::isfinite(d) && d >= 0 && std::trunc(d) == d;
}

std::uint64_t unsigned_value(const json& v, const std::string& field, std::uint64_t max) {
  if (v.is_number_float() && whole_and_non_negative(v) &&
      (v.get<double>() > static_cast<double>(max) || v.get<double>() >= 0x1p64))
    refuse(field, "must be at most " + std::to_string(max) + ", got " + describe(v));
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<std::int64_t>() < 0))
    refuse(field, "expected a non-negative integer, got " + describe(v));
  const auto n = v.get<std::uint64_t>();
  if (n > max) refuse(field, "must be at most " + std::to_string(max) + ", got " + std::to_string(n));
  return n;
}

std::string string_value(const json& v, const std::string& field) {
  if (!v.is_string()) refuse(field, "expected a string, got " + describe(v));
  return v.get<std::string>();
}

bool bool_value(const json& v, const std::string& field) {
  if (!v.is_boolean()) refuse(field, "expected true or false, got " + describe(v));
  return v.get<bool>();
}

std::vector<std::string> string_list(const json& v, const std::string& field) {
  if (!v.is_array()) refuse(field, "expected an array of strings, got " + describe(v));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) out.push_back(string_value(v[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

// [x, y, z], [x, y], [x] or x; every dimension at least 1 and at most `max[i]`.
std::array<unsigned, 3> dims(const json& v, const std::string& field, std::array<std::uint64_t, 3> max) {
  std::array<unsigned, 3> out{1, 1, 1};
  if (v.is_number()) {
    out[0] = static_cast<unsigned>(unsigned_value(v, field, max[0]));
  } else if (v.is_array() && !v.empty() && v.size() <= 3) {
    for (std::size_t i = 0; i < v.size(); ++i)
      out[i] = static_cast<unsigned>(unsigned_value(v[i], field + "[" + std::to_string(i) + "]", max[i]));
  } else {
    refuse(field, "expected a positive integer or an array of 1 to 3 of them, got " + describe(v));
  }
  for (std::size_t i = 0; i < 3; ++i)
    if (out[i] == 0) refuse(field, "every dimension must be at least 1");
  return out;
}

ScalarArgument scalar(const json& arg, const std::string& field) {
  only_keys(arg, {"type", "value"}, field + ".");
  if (!arg.contains("type")) refuse(field + ".type", "missing (one of i32 u32 i64 u64 f32 f64)");
  const std::string type_name = string_value(arg["type"], field + ".type");
  const auto type = parse_scalar_type(type_name);
  if (!type) refuse(field + ".type", "unknown type '" + excerpt(type_name) + "' (one of i32 u32 i64 u64 f32 f64)");
  if (!arg.contains("value")) refuse(field + ".value", "missing");
  const json& v = arg["value"];
  const std::string vf = field + ".value";
  ScalarArgument out;
  out.type = *type;
  switch (*type) {
    case ScalarArgument::Type::f32:
    case ScalarArgument::Type::f64: {
      if (!v.is_number()) refuse(vf, "expected a number, got " + describe(v));
      const double d = v.get<double>();
      if (*type == ScalarArgument::Type::f32) {
        if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max())
          refuse(vf, "does not fit in f32: " + describe(v));
        const float f = static_cast<float>(d);
        std::uint32_t bits = 0;
        std::memcpy(&bits, &f, sizeof bits);
        out.bits = bits;
      } else {
        std::memcpy(&out.bits, &d, sizeof d);
      }
      return out;
    }
    case ScalarArgument::Type::u32:
      out.bits = unsigned_value(v, vf, std::numeric_limits<std::uint32_t>::max());
      return out;
    case ScalarArgument::Type::u64:
      out.bits = unsigned_value(v, vf, std::numeric_limits<std::uint64_t>::max());
      return out;
    case ScalarArgument::Type::i32:
    case ScalarArgument::Type::i64: {
      if (v.is_number_float()) {  // an integer beyond 64 bits arrives as a double
        const double d = v.get<double>();
        if (std::trunc(d) == d && (d >= 0x1p63 || d <= -0x1p63)) refuse(vf, "does not fit in " + type_name + ": " + describe(v));
      }
      if (!v.is_number_integer()) refuse(vf, "expected an integer, got " + describe(v));
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        refuse(vf, "does not fit in " + type_name + ": " + describe(v));
      const std::int64_t n = v.get<std::int64_t>();
      if (*type == ScalarArgument::Type::i32 &&
          (n < std::numeric_limits<std::int32_t>::min() || n > std::numeric_limits<std::int32_t>::max()))
        refuse(vf, "does not fit in i32: " + describe(v));
      // Two's complement of the value, truncated to the type's width when launched.
      out.bits = *type == ScalarArgument::Type::i32 ? static_cast<std::uint32_t>(static_cast<std::int32_t>(n))
                                                    : static_cast<std::uint64_t>(n);
      return out;
    }
  }
  refuse(field, "unknown type");
}

KernelArgument argument(const json& arg, const std::string& field) {
  if (!arg.is_object()) refuse(field, "expected an object ({\"type\", \"value\"} or {\"buffer\", \"offset\"}), got " + describe(arg));
  if (arg.contains("buffer")) {
    only_keys(arg, {"buffer", "offset"}, field + ".");
    BufferArgument b;
    b.buffer = unsigned_value(arg["buffer"], field + ".buffer", std::numeric_limits<std::uint64_t>::max());
    if (arg.contains("offset"))
      b.offset = unsigned_value(arg["offset"], field + ".offset", std::numeric_limits<std::uint64_t>::max());
    return b;
  }
  return scalar(arg, field);
}

template <class T, class F>
Parsed<T> guarded(F&& parse) {
  try {
    return parse();
  } catch (const Refusal& r) {
    return r.error;
  } catch (const json::exception& e) {  // a type nlohmann refused that the checks above missed
    return RequestError{"", "invalid request: " + detail::printable(e.what(), 240)};
  }
}

}  // namespace

std::string_view to_string(ScalarArgument::Type type) noexcept {
  switch (type) {
    case ScalarArgument::Type::i32: return "i32";
    case ScalarArgument::Type::u32: return "u32";
    case ScalarArgument::Type::i64: return "i64";
    case ScalarArgument::Type::u64: return "u64";
    case ScalarArgument::Type::f32: return "f32";
    case ScalarArgument::Type::f64: return "f64";
  }
  return "unknown";
}

std::optional<ScalarArgument::Type> parse_scalar_type(std::string_view text) noexcept {
  for (auto t : {ScalarArgument::Type::i32, ScalarArgument::Type::u32, ScalarArgument::Type::i64,
                 ScalarArgument::Type::u64, ScalarArgument::Type::f32, ScalarArgument::Type::f64})
    if (to_string(t) == text) return t;
  return std::nullopt;
}

Parsed<KernelRequest> parse_kernel_request(std::string_view body, const RequestLimits& limits) {
  return guarded<KernelRequest>([&]() -> Parsed<KernelRequest> {
    const json o = parse_object(body, limits);
    only_keys(o, {"name", "source", "headers", "include_dirs", "name_expressions", "options", "libraries"}, "");
    KernelRequest r;
    if (!o.contains("source")) refuse("source", "missing (the CUDA source text)");
    r.program.source = string_value(o["source"], "source");
    if (r.program.source.empty()) refuse("source", "is empty");
    if (o.contains("name")) {
      r.program.name = string_value(o["name"], "name");
      if (r.program.name.empty() || r.program.name.size() > 256) refuse("name", "must be 1-256 characters");
    }
    if (o.contains("headers")) {
      const json& h = o["headers"];
      if (!h.is_object()) refuse("headers", "expected an object of include name -> text, got " + describe(h));
      for (const auto& [name, text] : h.items()) {
        if (name.empty()) refuse("headers", "a header name is empty");
        r.program.headers[name] = string_value(text, "headers." + excerpt(name));
      }
    }
    if (o.contains("include_dirs")) r.program.include_dirs = string_list(o["include_dirs"], "include_dirs");
    if (o.contains("name_expressions")) r.program.name_expressions = string_list(o["name_expressions"], "name_expressions");
    if (o.contains("options")) {
      const json& opt = o["options"];
      if (!opt.is_object()) refuse("options", "expected an object, got " + describe(opt));
      only_keys(opt, {"std", "defines", "fast_math", "line_info", "max_registers", "rdc", "extra"}, "options.");
      jit::CompileOptions& c = r.program.options;
      if (opt.contains("std")) c.standard = string_value(opt["std"], "options.std");
      if (opt.contains("defines")) c.defines = string_list(opt["defines"], "options.defines");
      if (opt.contains("fast_math")) c.fast_math = bool_value(opt["fast_math"], "options.fast_math");
      if (opt.contains("line_info")) c.line_info = bool_value(opt["line_info"], "options.line_info");
      if (opt.contains("rdc")) c.relocatable_device_code = bool_value(opt["rdc"], "options.rdc");
      if (opt.contains("max_registers"))
        c.max_registers = static_cast<int>(unsigned_value(opt["max_registers"], "options.max_registers", 255));
      if (opt.contains("extra")) c.extra = string_list(opt["extra"], "options.extra");
    }
    if (o.contains("libraries")) {
      r.libraries = string_list(o["libraries"], "libraries");
      if (r.libraries.size() > kMaxKernelLibraries)
        refuse("libraries", "at most " + std::to_string(kMaxKernelLibraries) + " libraries, got " + std::to_string(r.libraries.size()));
      for (std::size_t i = 0; i < r.libraries.size(); ++i) {
        std::string field = "libraries[";
        field.append(std::to_string(i)).append("]");
        if (r.libraries[i].empty()) refuse(field, "is empty");
        for (std::size_t j = 0; j < i; ++j)
          if (r.libraries[j] == r.libraries[i]) refuse(field, "'" + excerpt(r.libraries[i]) + "' is named twice");
      }
    }
    return r;
  });
}

Parsed<BufferRequest> parse_buffer_request(std::string_view body, const RequestLimits& limits) {
  return guarded<BufferRequest>([&]() -> Parsed<BufferRequest> {
    const json o = parse_object(body, limits);
    only_keys(o, {"device", "bytes", "tag"}, "");
    BufferRequest r;
    if (o.contains("device")) r.device = static_cast<int>(unsigned_value(o["device"], "device", 1023));
    if (!o.contains("bytes")) refuse("bytes", "missing (the buffer's size in bytes)");
    r.bytes = unsigned_value(o["bytes"], "bytes", std::numeric_limits<std::uint64_t>::max());
    if (r.bytes == 0) refuse("bytes", "must be at least 1");
    if (o.contains("tag")) {
      r.tag = string_value(o["tag"], "tag");
      if (r.tag.size() > 128) refuse("tag", "must be at most 128 characters");
    }
    return r;
  });
}

Parsed<PackageVersionRequest> parse_package_version_request(std::string_view body, const RequestLimits& limits) {
  return guarded<PackageVersionRequest>([&]() -> Parsed<PackageVersionRequest> {
    PackageVersionRequest r;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return r;
    const json o = parse_object(body, limits);
    only_keys(o, {"version"}, "");
    if (o.contains("version")) {
      r.version = unsigned_value(o["version"], "version", std::numeric_limits<std::uint64_t>::max());
      if (*r.version == 0) refuse("version", "must be at least 1");
    }
    return r;
  });
}

Parsed<SharedMemoryRequest> parse_shared_memory_request(std::string_view body, const RequestLimits& limits) {
  return guarded<SharedMemoryRequest>([&]() -> Parsed<SharedMemoryRequest> {
    const json o = parse_object(body, limits);
    only_keys(o, {"name", "bytes", "offset", "owner_pid"}, "");
    SharedMemoryRequest r;
    if (!o.contains("name")) refuse("name", "missing (the shared memory object's name, as shm_open takes it: \"/my-region\")");
    r.name = string_value(o["name"], "name");
    if (!o.contains("bytes")) refuse("bytes", "missing (the region's size in bytes)");
    r.bytes = unsigned_value(o["bytes"], "bytes", std::numeric_limits<std::uint64_t>::max());
    if (r.bytes == 0) refuse("bytes", "must be at least 1");
    if (o.contains("offset")) r.offset = unsigned_value(o["offset"], "offset", std::numeric_limits<std::uint64_t>::max());
    if (o.contains("owner_pid")) {
      r.owner_pid = static_cast<int>(unsigned_value(o["owner_pid"], "owner_pid", 4194304));  // Linux's pid_max limit
      if (r.owner_pid == 0) refuse("owner_pid", "must be a process id (at least 1)");
    }
    return r;
  });
}

Parsed<SharedMemoryCopyRequest> parse_shared_memory_copy_request(std::string_view body, const RequestLimits& limits) {
  return guarded<SharedMemoryCopyRequest>([&]() -> Parsed<SharedMemoryCopyRequest> {
    const json o = parse_object(body, limits);
    only_keys(o, {"direction", "region", "region_offset", "offset", "bytes"}, "");
    SharedMemoryCopyRequest r;
    if (!o.contains("direction")) refuse("direction", "missing (\"upload\": region to buffer, \"download\": buffer to region)");
    const std::string direction = string_value(o["direction"], "direction");
    if (direction != "upload" && direction != "download")
      refuse("direction", "must be \"upload\" (region to buffer) or \"download\" (buffer to region), not \"" + direction + "\"");
    r.upload = direction == "upload";
    if (!o.contains("region")) refuse("region", "missing (the id POST /v1/shm returned)");
    const auto max = std::numeric_limits<std::uint64_t>::max();
    r.region = unsigned_value(o["region"], "region", max);
    if (o.contains("region_offset")) r.region_offset = unsigned_value(o["region_offset"], "region_offset", max);
    if (o.contains("offset")) r.offset = unsigned_value(o["offset"], "offset", max);
    if (o.contains("bytes")) r.bytes = unsigned_value(o["bytes"], "bytes", max);
    return r;
  });
}

Parsed<LaunchRequest> parse_launch_request(std::string_view body, const RequestLimits& limits) {
  return guarded<LaunchRequest>([&]() -> Parsed<LaunchRequest> {
    const json o = parse_object(body, limits);
    only_keys(o, {"kernel", "function", "grid", "block", "shared_bytes", "arguments", "priority", "deadline_ms", "device", "wait"},
              "");
    LaunchRequest r;
    if (!o.contains("kernel"))
      refuse("kernel", "missing (the id POST /v1/kernels returned, or a repository package's name[:version])");
    if (o["kernel"].is_string()) {
      r.package = string_value(o["kernel"], "kernel");
      if (r.package.empty() || r.package.size() > 128) refuse("kernel", "a package reference is name or name:version");
    } else {
      r.kernel = unsigned_value(o["kernel"], "kernel", std::numeric_limits<std::uint64_t>::max());
    }
    if (o.contains("function")) {
      r.function = string_value(o["function"], "function");
      if (r.function.empty()) refuse("function", "is empty");
    } else if (r.package.empty()) {
      refuse("function", "missing (a kernel name or one of the kernel's name expressions)");
    }
    // The driver's limits: grid x up to 2^31-1, y and z up to 65535; at most 1024 threads a block.
    if (o.contains("grid")) r.grid = dims(o["grid"], "grid", {2147483647u, 65535, 65535});
    if (o.contains("block")) r.block = dims(o["block"], "block", {1024, 1024, 64});
    if (std::uint64_t{r.block[0]} * r.block[1] * r.block[2] > 1024)
      refuse("block", "at most 1024 threads per block, got " + std::to_string(std::uint64_t{r.block[0]} * r.block[1] * r.block[2]));
    if (o.contains("shared_bytes")) r.shared_bytes = static_cast<unsigned>(unsigned_value(o["shared_bytes"], "shared_bytes", 1u << 20));
    if (o.contains("arguments")) {
      const json& a = o["arguments"];
      if (!a.is_array()) refuse("arguments", "expected an array, got " + describe(a));
      if (a.size() > limits.max_launch_arguments)
        refuse("arguments", "at most " + std::to_string(limits.max_launch_arguments) + " arguments, got " + std::to_string(a.size()));
      for (std::size_t i = 0; i < a.size(); ++i) r.arguments.push_back(argument(a[i], "arguments[" + std::to_string(i) + "]"));
    }
    if (o.contains("priority")) {
      const std::string p = string_value(o["priority"], "priority");
      const auto level = parse_priority(p);
      if (!level) refuse("priority", "unknown priority '" + excerpt(p) + "' (one of high, normal, low)");
      r.priority = *level;
    }
    if (o.contains("deadline_ms")) {
      const auto ms = unsigned_value(o["deadline_ms"], "deadline_ms", std::numeric_limits<std::int32_t>::max());
      if (ms == 0) refuse("deadline_ms", "must be at least 1");
      r.deadline = std::chrono::milliseconds(ms);
    }
    if (o.contains("device")) r.device = static_cast<int>(unsigned_value(o["device"], "device", 1023));
    if (o.contains("wait")) r.wait = bool_value(o["wait"], "wait");
    return r;
  });
}

}  // namespace kiln::service
