// manifest.json (format 1): parse() reads it strictly, to_json() writes what parse() reads back, and
// both hold the manifest to the same rules (validate), so no writer can produce what no reader takes.
#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <set>

#include "kiln/jit/package.hpp"

namespace kiln::jit {
namespace {

using nlohmann::json;

constexpr std::string_view kTypeList = "ptr, i8, u8, i16, u16, i32, u32, i64, u64, f16, f32, f64";

// Where a check is in the manifest ("entry_points[1].parameters[0]"), for messages.
class Field {
 public:
  Field(std::string_view origin, std::string path) : origin_(origin), path_(std::move(path)) {}
  Field operator[](std::string_view key) const { return {origin_, path_.empty() ? std::string(key) : path_ + "." + std::string(key)}; }
  Field operator[](std::size_t index) const { return {origin_, path_ + "[" + std::to_string(index) + "]"}; }
  Field key(const std::string& key) const { return {origin_, path_ + "[\"" + key + "\"]"}; }
  const std::string& path() const noexcept { return path_; }

  [[noreturn]] void fail(const std::string& what, PackageProblem problem = PackageProblem::manifest_invalid,
                         std::string file = {}) const {
    if (file.empty()) file = std::string(origin_);
    throw PackageError(problem, std::move(file), std::string(origin_) + ": " + (path_.empty() ? "" : path_ + ": ") + what);
  }

 private:
  std::string_view origin_;
  std::string path_;
};

std::string_view type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number with a fraction";
    default: return "not a value";
  }
}

const std::string& get_string(const json& j, const Field& f) {
  if (!j.is_string()) f.fail(std::string("must be a string, not ") + std::string(type_name(j)));
  return j.get_ref<const std::string&>();
}
bool get_bool(const json& j, const Field& f) {
  if (!j.is_boolean()) f.fail(std::string("must be true or false, not ") + std::string(type_name(j)));
  return j.get<bool>();
}
std::uint64_t get_unsigned(const json& j, const Field& f) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<std::int64_t>() >= 0))
    f.fail(std::string("must be a non-negative integer, not ") + (j.is_number_integer() ? "negative" : std::string(type_name(j))));
  return j.get<std::uint64_t>();
}
const json& get_array(const json& j, const Field& f) {
  if (!j.is_array()) f.fail(std::string("must be an array, not ") + std::string(type_name(j)));
  return j;
}
std::vector<std::string> get_strings(const json& j, const Field& f) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < get_array(j, f).size(); ++i) out.push_back(get_string(j[i], f[i]));
  return out;
}

// An object's members, refusing keys outside `allowed` and missing `required` ones.
void check_keys(const json& j, const Field& f, std::initializer_list<std::string_view> allowed,
                std::initializer_list<std::string_view> required) {
  if (!j.is_object()) f.fail(std::string("must be an object, not ") + std::string(type_name(j)));
  for (const auto& [key, value] : j.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) f[key].fail("is not a field of the format");
  for (std::string_view key : required)
    if (!j.contains(key)) f[key].fail("is missing");
}

// "sm_90" (cubin, or a declared architecture) or "compute_90" (ptx): the number.
int parse_arch(const std::string& text, std::string_view prefix, const Field& f) {
  int arch = 0;
  if (text.starts_with(prefix)) {
    const char* begin = text.data() + prefix.size();
    const char* end = text.data() + text.size();
    auto [stop, ec] = std::from_chars(begin, end, arch);
    if (ec == std::errc() && stop == end && arch > 0 && *begin != '0') return arch;
  }
  f.fail("'" + text + "' is not an architecture (" + std::string(prefix) + "XX, e.g. " + std::string(prefix) + "90)");
}

std::string arch_text(ImageKind kind, int arch) {
  return (kind == ImageKind::ptx ? "compute_" : "sm_") + std::to_string(arch);
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

bool is_hex_digest(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

namespace detail {

// A package path: relative, '/'-separated, no empty, "." or ".." component. ".." or a leading '/'
// lead outside the folder (path_outside); anything else malformed is manifest_invalid.
void check_package_path(const std::string& path, std::string_view origin, const std::string& field) {
  const Field f(origin, field);
  if (path.empty()) f.fail("a file path must not be empty");
  if (path.front() == '/') f.fail("'" + path + "' is absolute: package paths are relative to its folder", PackageProblem::path_outside, path);
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    const std::string_view part(path.data() + start, slash - start);
    if (part == "..") f.fail("'" + path + "' leads outside the package folder ('..')", PackageProblem::path_outside, path);
    if (part.empty() || part == ".")
      f.fail("'" + path + "' is not a normalised relative path (empty or '.' component)");
    if (part.find('\\') != std::string_view::npos || part.find('\0') != std::string_view::npos)
      f.fail("'" + path + "' holds a backslash or NUL");
    start = slash + 1;
  }
  if (path == "manifest.json") f.fail("manifest.json cannot list itself");
}

// The rules parse() and to_json() share, on a manifest whose JSON shape was right.
void validate_manifest(const PackageManifest& m, std::string_view origin) {
  const Field root(origin, "");
  if (!valid_name(m.name)) root["name"].fail("'" + m.name + "' is not a package name (1-64 of A-Z a-z 0-9 _ . -, not starting with '.')");
  if (m.version < 1) root["version"].fail("must be at least 1");
  if (m.entry_points.empty()) root["entry_points"].fail("must list at least one entry point");
  std::set<std::string> names;
  for (std::size_t i = 0; i < m.entry_points.size(); ++i) {
    const EntryPoint& e = m.entry_points[i];
    if (e.name.empty()) root["entry_points"][i]["name"].fail("must not be empty");
    if (e.symbol.empty()) root["entry_points"][i]["symbol"].fail("must not be empty");
    if (!names.insert(e.name).second) root["entry_points"][i]["name"].fail("'" + e.name + "' is listed twice");
  }
  if (m.architectures.empty()) root["architectures"].fail("must declare at least one architecture");
  std::set<int> archs;
  for (std::size_t i = 0; i < m.architectures.size(); ++i) {
    if (m.architectures[i] <= 0) root["architectures"][i].fail("must be positive");
    if (!archs.insert(m.architectures[i]).second)
      root["architectures"][i].fail("sm_" + std::to_string(m.architectures[i]) + " is listed twice");
  }
  for (const auto& [path, digest] : m.files) {
    check_package_path(path, origin, "files[\"" + path + "\"]");
    if (!is_hex_digest(digest)) root["files"].key(path)["sha256"].fail("'" + digest + "' is not a SHA-256 (64 lowercase hex digits)");
    if (!m.file_sizes.contains(path)) root["files"].key(path)["bytes"].fail("is missing");
  }
  for (const auto& [path, bytes] : m.file_sizes)
    if (!m.files.contains(path)) root["files"].key(path).fail("has a size but no SHA-256");
  auto listed = [&](const std::string& path, const Field& f) {
    check_package_path(path, origin, f.path());
    if (!m.files.contains(path)) f.fail("'" + path + "' is not listed in files");
  };
  if (m.images.empty() && m.source.empty()) root["images"].fail("a package without source needs at least one image");
  std::set<std::pair<ImageKind, int>> kinds;
  std::set<std::string> image_files;
  for (std::size_t i = 0; i < m.images.size(); ++i) {
    const PackageImage& im = m.images[i];
    const Field f = root["images"][i];
    if (im.kind != ImageKind::cubin && im.kind != ImageKind::ptx) f["kind"].fail("must be cubin or ptx");
    if (im.arch <= 0) f["arch"].fail("must be positive");
    if (!kinds.insert({im.kind, im.arch}).second) f.fail(arch_text(im.kind, im.arch) + " has two images");
    listed(im.file, f["file"]);
    if (!image_files.insert(im.file).second) f["file"].fail("'" + im.file + "' is the file of two images");
  }
  if (!m.source.empty()) listed(m.source, root["source"]);
  for (const auto& [name, path] : m.headers) {
    if (name.empty()) root["headers"].fail("a header's include name must not be empty");
    listed(path, root["headers"].key(name));
  }
  std::set<std::string> tenants;
  for (std::size_t i = 0; i < m.tenants.size(); ++i) {
    if (m.tenants[i].empty()) root["tenants"][i].fail("must not be empty");
    if (!tenants.insert(m.tenants[i]).second) root["tenants"][i].fail("'" + m.tenants[i] + "' is listed twice");
  }
  if (m.options.max_registers < 0) root["options"]["max_registers"].fail("must not be negative");
}

}  // namespace detail

std::string_view to_string(ParameterType type) noexcept {
  switch (type) {
    case ParameterType::pointer: return "ptr";
    case ParameterType::i8: return "i8";
    case ParameterType::u8: return "u8";
    case ParameterType::i16: return "i16";
    case ParameterType::u16: return "u16";
    case ParameterType::i32: return "i32";
    case ParameterType::u32: return "u32";
    case ParameterType::i64: return "i64";
    case ParameterType::u64: return "u64";
    case ParameterType::f16: return "f16";
    case ParameterType::f32: return "f32";
    case ParameterType::f64: return "f64";
  }
  return "ptr";
}

std::optional<ParameterType> parse_parameter_type(std::string_view text) noexcept {
  for (auto t : {ParameterType::pointer, ParameterType::i8, ParameterType::u8, ParameterType::i16, ParameterType::u16,
                 ParameterType::i32, ParameterType::u32, ParameterType::i64, ParameterType::u64, ParameterType::f16,
                 ParameterType::f32, ParameterType::f64})
    if (to_string(t) == text) return t;
  return std::nullopt;
}

std::size_t size_of(ParameterType type) noexcept {
  switch (type) {
    case ParameterType::i8:
    case ParameterType::u8: return 1;
    case ParameterType::i16:
    case ParameterType::u16:
    case ParameterType::f16: return 2;
    case ParameterType::i32:
    case ParameterType::u32:
    case ParameterType::f32: return 4;
    case ParameterType::pointer:
    case ParameterType::i64:
    case ParameterType::u64:
    case ParameterType::f64: return 8;
  }
  return 8;
}

PackageManifest PackageManifest::parse(std::string_view text, std::string_view origin) {
  const Field root(origin, "");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    root.fail(std::string("is not JSON: ") + e.what());
  }
  check_keys(j, root,
             {"format", "name", "version", "description", "entry_points", "architectures", "source", "headers",
              "options", "images", "files", "tenants"},
             {"format", "name", "version", "entry_points", "architectures", "images", "files"});
  if (!j["format"].is_number_integer() || j["format"].get<std::int64_t>() != kFormat)
    root["format"].fail("must be " + std::to_string(kFormat) + " (this kiln reads format " + std::to_string(kFormat) +
                        "), not " + j["format"].dump());
  PackageManifest m;
  m.name = get_string(j["name"], root["name"]);
  m.version = get_unsigned(j["version"], root["version"]);
  if (j.contains("description")) m.description = get_string(j["description"], root["description"]);

  const Field eps = root["entry_points"];
  for (std::size_t i = 0; i < get_array(j["entry_points"], eps).size(); ++i) {
    const json& e = j["entry_points"][i];
    check_keys(e, eps[i], {"name", "symbol", "parameters"}, {"name", "symbol", "parameters"});
    EntryPoint ep;
    ep.name = get_string(e["name"], eps[i]["name"]);
    ep.symbol = get_string(e["symbol"], eps[i]["symbol"]);
    const Field params = eps[i]["parameters"];
    for (std::size_t k = 0; k < get_array(e["parameters"], params).size(); ++k) {
      const std::string t = get_string(e["parameters"][k], params[k]);
      const auto type = parse_parameter_type(t);
      if (!type) params[k].fail("'" + t + "' is not a parameter type (" + std::string(kTypeList) + ")");
      ep.parameters.push_back(*type);
    }
    m.entry_points.push_back(std::move(ep));
  }

  const Field archs = root["architectures"];
  for (std::size_t i = 0; i < get_array(j["architectures"], archs).size(); ++i)
    m.architectures.push_back(parse_arch(get_string(j["architectures"][i], archs[i]), "sm_", archs[i]));

  if (j.contains("source")) m.source = get_string(j["source"], root["source"]);
  if (j.contains("headers")) {
    const Field f = root["headers"];
    if (!j["headers"].is_object()) f.fail(std::string("must be an object, not ") + std::string(type_name(j["headers"])));
    for (const auto& [name, path] : j["headers"].items()) m.headers[name] = get_string(path, f.key(name));
  }
  if (j.contains("options")) {
    const json& o = j["options"];
    const Field f = root["options"];
    check_keys(o, f, {"std", "defines", "fast_math", "line_info", "max_registers", "rdc", "minimal", "extra"}, {});
    if (o.contains("std")) m.options.standard = get_string(o["std"], f["std"]);
    if (o.contains("defines")) m.options.defines = get_strings(o["defines"], f["defines"]);
    if (o.contains("fast_math")) m.options.fast_math = get_bool(o["fast_math"], f["fast_math"]);
    if (o.contains("line_info")) m.options.line_info = get_bool(o["line_info"], f["line_info"]);
    if (o.contains("rdc")) m.options.relocatable_device_code = get_bool(o["rdc"], f["rdc"]);
    if (o.contains("minimal")) m.options.minimal = get_bool(o["minimal"], f["minimal"]);
    if (o.contains("extra")) m.options.extra = get_strings(o["extra"], f["extra"]);
    if (o.contains("max_registers")) {
      const std::uint64_t n = get_unsigned(o["max_registers"], f["max_registers"]);
      if (n > 65535) f["max_registers"].fail("must be at most 65535");
      m.options.max_registers = static_cast<int>(n);
    }
  }

  const Field images = root["images"];
  for (std::size_t i = 0; i < get_array(j["images"], images).size(); ++i) {
    const json& im = j["images"][i];
    check_keys(im, images[i], {"kind", "arch", "file"}, {"kind", "arch", "file"});
    PackageImage image;
    const std::string kind = get_string(im["kind"], images[i]["kind"]);
    if (kind == "cubin") image.kind = ImageKind::cubin;
    else if (kind == "ptx") image.kind = ImageKind::ptx;
    else images[i]["kind"].fail("'" + kind + "' is not an image kind (cubin, ptx)");
    image.arch = parse_arch(get_string(im["arch"], images[i]["arch"]), image.kind == ImageKind::ptx ? "compute_" : "sm_",
                            images[i]["arch"]);
    image.file = get_string(im["file"], images[i]["file"]);
    m.images.push_back(std::move(image));
  }

  const Field files = root["files"];
  if (!j["files"].is_object()) files.fail(std::string("must be an object, not ") + std::string(type_name(j["files"])));
  for (const auto& [path, entry] : j["files"].items()) {
    const Field f = files.key(path);
    check_keys(entry, f, {"sha256", "bytes"}, {"sha256", "bytes"});
    m.files[path] = get_string(entry["sha256"], f["sha256"]);
    m.file_sizes[path] = get_unsigned(entry["bytes"], f["bytes"]);
  }
  if (j.contains("tenants")) m.tenants = get_strings(j["tenants"], root["tenants"]);

  detail::validate_manifest(m, origin);
  return m;
}

std::string PackageManifest::to_json() const {
  detail::validate_manifest(*this, "manifest");
  json j = json::object();
  j["format"] = kFormat;
  j["name"] = name;
  j["version"] = version;
  j["description"] = description;
  json eps = json::array();
  for (const EntryPoint& e : entry_points) {
    json params = json::array();
    for (ParameterType t : e.parameters) params.push_back(std::string(jit::to_string(t)));
    eps.push_back({{"name", e.name}, {"symbol", e.symbol}, {"parameters", std::move(params)}});
  }
  j["entry_points"] = std::move(eps);
  json archs = json::array();
  for (int a : architectures) archs.push_back(arch_text(ImageKind::cubin, a));
  j["architectures"] = std::move(archs);
  j["source"] = source;
  j["headers"] = headers;
  j["options"] = {{"std", options.standard},      {"defines", options.defines},
                  {"fast_math", options.fast_math}, {"line_info", options.line_info},
                  {"max_registers", options.max_registers}, {"rdc", options.relocatable_device_code},
                  {"minimal", options.minimal},     {"extra", options.extra}};
  json ims = json::array();
  for (const PackageImage& im : images)
    ims.push_back({{"kind", std::string(jit::to_string(im.kind))}, {"arch", arch_text(im.kind, im.arch)}, {"file", im.file}});
  j["images"] = std::move(ims);
  json fs = json::object();
  for (const auto& [path, digest] : files) fs[path] = {{"sha256", digest}, {"bytes", file_sizes.at(path)}};
  j["files"] = std::move(fs);
  j["tenants"] = tenants;
  return j.dump(2) + "\n";
}

}  // namespace kiln::jit
