// `kiln pack`: build a kernel package (docs/REPOSITORY.md) from a kernel file: CUBIN per sm_XX and
// PTX per compute_XX, compiled in parallel through the kernel cache (so a repeated pack hits), each
// entry point checked against its declared parameters. `kiln pack --verify DIR`: open a package as
// kilnd would and print what it holds, or the problem that makes kilnd refuse it.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.hpp"
#include "progress.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "kiln/jit/nvrtc_facts.hpp"
#include "kiln/jit/package.hpp"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct PackArgs {
  std::string file;
  std::string name;
  std::uint64_t version = 0;
  std::string description;
  std::vector<std::string> entries;
  std::vector<std::string> archs;
  std::vector<std::string> include_dirs;
  std::vector<std::string> headers;  // name=path
  std::vector<std::string> defines;
  std::string standard;
  bool minimal = false;
  bool fast_math = false;
  std::vector<std::string> tenants;
  bool no_source = false;
  unsigned jobs = 0;
  std::string out;
  std::string cache_dir;
  bool no_disk = false;
  std::string verify;
  bool json = false;
};

// Architectures `kiln pack --verify` shows the choice for, besides the declared ones.
constexpr int kCommonArchs[] = {75, 80, 86, 89, 90, 100, 120};

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// "saxpy(ptr,ptr,f32,u32)", "scale<float>(ptr, f32)", "init()": the name (any name expression)
// and the trailing parenthesised parameter list.
jit::EntryPoint parse_entry(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    return CLI::ValidationError("--entry", "'" + spec + "': " + why +
                                               " (expected NAME(TYPE,...), e.g. 'saxpy(ptr,ptr,f32,u32)'; types: "
                                               "ptr i8 u8 i16 u16 i32 u32 i64 u64 f16 f32 f64)");
  };
  const std::string s = trim(spec);
  if (s.empty() || s.back() != ')') throw bad("no parameter list in parentheses at the end");
  int depth = 0;
  std::size_t open = std::string::npos;
  for (std::size_t i = s.size(); i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) {
      open = i;
      break;
    }
  }
  if (open == std::string::npos) throw bad("unbalanced parentheses");
  jit::EntryPoint e;
  e.name = trim(std::string_view(s).substr(0, open));
  if (e.name.empty()) throw bad("no kernel name before the parameter list");
  const std::string list = trim(std::string_view(s).substr(open + 1, s.size() - open - 2));
  if (list.empty()) return e;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    const std::string type = trim(std::string_view(list).substr(start, comma - start));
    const auto t = jit::parse_parameter_type(type);
    if (!t) throw bad(type.empty() ? "an empty parameter type" : "'" + type + "' is not a parameter type");
    e.parameters.push_back(*t);
    start = comma + 1;
  }
  return e;
}

std::string signature(const jit::EntryPoint& e) {
  std::string s = e.name + "(";
  for (std::size_t i = 0; i < e.parameters.size(); ++i) s += (i ? ", " : "") + std::string(jit::to_string(e.parameters[i]));
  return s + ")";
}

json entry_json(const jit::EntryPoint& e) {
  json params = json::array();
  for (jit::ParameterType t : e.parameters) params.push_back(std::string(jit::to_string(t)));
  return {{"name", e.name}, {"symbol", e.symbol}, {"parameters", std::move(params)}};
}

std::string image_arch(const jit::PackageImage& im) { return (im.kind == jit::ImageKind::ptx ? "compute_" : "sm_") + std::to_string(im.arch); }

json image_json(const jit::PackageManifest& m, const jit::PackageImage& im) {
  return {{"file", im.file}, {"kind", std::string(jit::to_string(im.kind))}, {"arch", image_arch(im)},
          {"bytes", m.file_sizes.at(im.file)}};
}

std::uint64_t total_bytes(const jit::PackageManifest& m) {
  std::uint64_t n = 0;
  for (const auto& [file, bytes] : m.file_sizes) n += bytes;
  return n;
}

// The problem as kilnd names it: a line on stderr, or the JSON object on stdout. The detail, not
// what(): kiln::Error's generic meaning and hint say nothing about a package.
int report_problem(const PackArgs& a, const std::string& folder, const jit::PackageError& e) {
  if (a.json) {
    std::cout << json{{"ok", false}, {"folder", folder}, {"problem", std::string(jit::to_string(e.problem()))},
                      {"file", e.file()}, {"message", e.detail()}}
                     .dump(2)
              << "\n";
  } else {
    std::cerr << "kiln pack: " << folder << ": " << e.detail() << "\n";  // "package <problem>: <file>: ..."
  }
  return kExitProblems;
}

jit::KernelCacheOptions cache_options(const PackArgs& a) {
  jit::KernelCacheOptions o;
  o.use_disk = !a.no_disk;
  o.disk.directory = a.cache_dir;
  return o;
}

std::vector<jit::Target> targets(const PackArgs& a, jit::KernelCache& cache) {
  const fs::path cache_dir = cache.disk() ? cache.disk()->directory() : jit::DiskCache::default_directory();
  const std::vector<int> supported = jit::nvrtc_facts(cache_dir).supported_archs;
  std::vector<jit::Target> out;
  std::set<std::pair<jit::ImageKind, int>> seen;
  for (const std::string& text : a.archs) {
    jit::Target t;
    try {
      t = jit::Target::parse(text);
    } catch (const Error& e) {
      throw CLI::ValidationError("--arch", e.detail());
    }
    if (t.kind == jit::ImageKind::ltoir)
      throw CLI::ValidationError("--arch", "'" + text + "': a package carries CUBIN (sm_XX) and PTX (compute_XX), not LTO-IR");
    if (std::find(supported.begin(), supported.end(), t.arch) == supported.end()) {
      std::string list;
      for (int s : supported) {  // step by step: GCC 12 warns falsely on "" + std::to_string
        if (!list.empty()) list += ' ';
        list += std::to_string(s);
      }
      throw CLI::ValidationError("--arch", "'" + text + "': this NVRTC does not compile for architecture " +
                                               std::to_string(t.arch) + " (it knows " + list + ")");
    }
    if (seen.insert({t.kind, t.arch}).second) out.push_back(t);
  }
  return out;
}

int pack_package(const PackArgs& a) {
  if (a.file.empty()) throw CLI::RequiredError("SOURCE (the kernel file)");
  if (a.name.empty()) throw CLI::RequiredError("--name");
  if (a.out.empty()) throw CLI::RequiredError("-o");
  if (a.entries.empty()) throw CLI::RequiredError("--entry");
  if (a.archs.empty()) throw CLI::RequiredError("--arch");
  if (a.version == 0) throw CLI::ValidationError("--version", "must be given and at least 1");

  jit::PackRequest r;
  r.name = a.name;
  r.version = a.version;
  r.description = a.description;
  for (const std::string& spec : a.entries) r.entry_points.push_back(parse_entry(spec));
  std::error_code ec;
  if (!fs::is_regular_file(a.file, ec)) throw CLI::ValidationError("SOURCE", "'" + a.file + "' is not a readable file");
  r.program = jit::Program::from_file(a.file);
  r.program.options.defines = a.defines;
  r.program.options.standard = a.standard;
  r.program.options.minimal = a.minimal;
  r.program.options.fast_math = a.fast_math;
  r.program.include_dirs = a.include_dirs;
  for (const std::string& h : a.headers) {
    const auto eq = h.find('=');
    if (eq == 0 || eq == std::string::npos || eq + 1 == h.size())
      throw CLI::ValidationError("--header", "'" + h + "' is not NAME=PATH (e.g. common.h=include/common.h)");
    const jit::Program header = jit::Program::from_file(h.substr(eq + 1));
    r.program.headers[h.substr(0, eq)] = header.source;
  }
  if (!a.include_dirs.empty() && !a.no_source)
    throw CLI::ValidationError("-I", "include folders do not travel with the source: name the headers it includes "
                                     "with --header NAME=PATH, or pass --no-source to carry only the images");
  r.include_source = !a.no_source;
  r.tenants = a.tenants;
  r.parallel = a.jobs;

  jit::KernelCache cache(cache_options(a));
  r.targets = targets(a, cache);
  if (fs::exists(fs::symlink_status(a.out, ec)))
    throw CLI::ValidationError("-o", "'" + a.out + "' already exists (a package version is never overwritten)");

  Progress progress(std::cerr, r.targets.size(), "images", ::isatty(STDERR_FILENO) != 0);
  r.progress = [&](const jit::Target& t, std::size_t, std::size_t) { progress.advance(t.arch_name()); };
  jit::PackageManifest m;
  try {
    m = jit::pack(r, cache, a.out);
  } catch (const jit::PackageError& e) {
    progress.finish();
    return report_problem(a, a.out, e);
  } catch (const Error& e) {
    progress.finish();
    if (!a.json) throw;  // main prints it, compile diagnostics included
    std::cout << json{{"ok", false}, {"folder", a.out}, {"error", std::string(e.name())}, {"message", e.detail()}}.dump(2)
              << "\n";
    return kExitProblems;
  } catch (...) {
    progress.finish();
    throw;
  }
  progress.finish();
  for (const auto& w : cache.stats().warnings) std::cerr << "kiln: warning: " << w << "\n";
  const jit::CacheStats s = cache.stats();

  if (a.json) {
    json images = json::array(), entries = json::array();
    for (const auto& im : m.images) images.push_back(image_json(m, im));
    for (const auto& e : m.entry_points) entries.push_back(entry_json(e));
    std::cout << json{{"ok", true},
                      {"folder", a.out},
                      {"name", m.name},
                      {"version", m.version},
                      {"images", std::move(images)},
                      {"entry_points", std::move(entries)},
                      {"source", m.source},
                      {"files", m.files.size()},
                      {"bytes", total_bytes(m)},
                      {"compiled", s.compiles},
                      {"disk_hits", s.disk_hits}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::cout << "packed " << m.name << " version " << m.version << " into " << a.out << ": " << m.files.size()
            << " files, " << total_bytes(m) << " bytes (" << s.compiles << " compiled, " << s.disk_hits
            << " from the disk cache)\n";
  std::cout << "  images:\n";
  for (const auto& im : m.images)
    std::cout << "    " << im.file << "  " << jit::to_string(im.kind) << " " << image_arch(im) << ", "
              << m.file_sizes.at(im.file) << " bytes\n";
  std::cout << "  entry points:\n";
  for (const auto& e : m.entry_points) std::cout << "    " << signature(e) << " -> " << e.symbol << "\n";
  if (!m.source.empty()) std::cout << "  source:  " << m.source << "\n";
  return kExitOk;
}

int verify(const PackArgs& a) {
  jit::Package p;
  try {
    p = jit::Package::open(a.verify);
  } catch (const jit::PackageError& e) {
    return report_problem(a, a.verify, e);
  }
  const jit::PackageManifest& m = p.manifest();
  std::set<int> archs(m.architectures.begin(), m.architectures.end());
  archs.insert(std::begin(kCommonArchs), std::end(kCommonArchs));
  if (a.json) {
    json images = json::array(), entries = json::array(), choice = json::object(), declared = json::array();
    for (const auto& im : m.images) images.push_back(image_json(m, im));
    for (const auto& e : m.entry_points) entries.push_back(entry_json(e));
    for (int arch : m.architectures) declared.push_back("sm_" + std::to_string(arch));
    for (int arch : archs) {
      std::string why;
      const jit::PackageImage* im = p.image_for(arch, &why);
      choice["sm_" + std::to_string(arch)] = im ? json{{"file", im->file}, {"kind", std::string(jit::to_string(im->kind))}}
                                                : json{{"file", nullptr}, {"why", why}};
    }
    std::cout << json{{"ok", true},
                      {"folder", p.folder().string()},
                      {"name", m.name},
                      {"version", m.version},
                      {"description", m.description},
                      {"architectures", std::move(declared)},
                      {"images", std::move(images)},
                      {"entry_points", std::move(entries)},
                      {"source", m.source},
                      {"headers", m.headers},
                      {"tenants", m.tenants},
                      {"image_for", std::move(choice)}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::cout << "package " << m.name << " version " << m.version << " in " << p.folder().string() << ": verified ("
            << m.files.size() << " files, " << total_bytes(m) << " bytes, checksums match)\n";
  if (!m.description.empty()) std::cout << "  description:   " << m.description << "\n";
  std::cout << "  architectures:";
  for (int arch : m.architectures) std::cout << " sm_" << arch;
  std::cout << "\n  images:\n";
  for (const auto& im : m.images)
    std::cout << "    " << im.file << "  " << jit::to_string(im.kind) << " " << image_arch(im) << ", "
              << m.file_sizes.at(im.file) << " bytes\n";
  std::cout << "  entry points:\n";
  for (const auto& e : m.entry_points) std::cout << "    " << signature(e) << " -> " << e.symbol << "\n";
  if (!m.source.empty()) {
    std::cout << "  source:        " << m.source;
    for (const auto& [name, path] : m.headers) std::cout << " (header " << name << ": " << path << ")";
    std::cout << "\n";
  }
  if (!m.tenants.empty()) {
    std::cout << "  tenants:      ";
    for (const auto& t : m.tenants) std::cout << " " << t;
    std::cout << "\n";
  }
  std::cout << "  a device of architecture ... gets:\n";
  for (int arch : archs) {
    const jit::PackageImage* im = p.image_for(arch);
    std::cout << "    sm_" << arch << ": ";
    if (im == nullptr)
      std::cout << (m.source.empty() ? "nothing (no image fits)" : "nothing prebuilt (its source is compiled for it)");
    else if (im->kind == jit::ImageKind::ptx)
      std::cout << im->file << " (PTX, JIT-compiled by the driver)";
    else
      std::cout << im->file;
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

void add_pack_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<PackArgs>();
  auto* cmd = app.add_subcommand("pack", "Build a kernel package for a repository, or verify one (docs/REPOSITORY.md)");
  cmd->footer(
      "Examples:\n"
      "  kiln pack saxpy.cu --name saxpy --version 3 --entry 'saxpy(f32,ptr,ptr,i32)' \\\n"
      "      --arch sm_90 --arch sm_100 --arch compute_90 -o repo/saxpy/3\n"
      "  kiln pack --verify repo/saxpy/3\n"
      "Exit codes: 0 packed or verified; 1 compile errors, a package problem (its name is printed) or other "
      "failure; 2 bad usage (an unparseable --entry, an unknown --arch, a missing option).");
  auto* file = cmd->add_option("file", a->file, "the kernel source (.cu)");
  auto* verify_opt = cmd->add_option("--verify", a->verify, "open the package in this folder and print what it holds");
  file->excludes(verify_opt);
  cmd->add_option("--name", a->name, "package name (1-64 of A-Z a-z 0-9 _ . -)")->excludes(verify_opt);
  cmd->add_option("--version", a->version, "package version (>= 1; larger is newer)")->excludes(verify_opt);
  cmd->add_option("--description", a->description, "what the package does")->excludes(verify_opt);
  cmd->add_option("--entry", a->entries, "an entry point with its parameters: 'saxpy(ptr,ptr,f32,u32)'")
      ->allow_extra_args(false)
      ->excludes(verify_opt);
  cmd->add_option("--arch", a->archs, "sm_XX (CUBIN) or compute_XX (PTX); repeat for several")
      ->allow_extra_args(false)
      ->excludes(verify_opt);
  cmd->add_option("-I,--include-dir", a->include_dirs, "a folder searched for #include (needs --no-source)")
      ->allow_extra_args(false);
  cmd->add_option("--header", a->headers, "NAME=PATH: a header the source includes as NAME, carried in the package")
      ->allow_extra_args(false);
  cmd->add_option("-D,--define", a->defines, "NAME or NAME=VALUE")->allow_extra_args(false);
  cmd->add_option("--std", a->standard, "language standard, e.g. c++17");
  cmd->add_flag("--minimal", a->minimal, "NVRTC's -minimal");
  cmd->add_flag("--fast-math", a->fast_math, "NVRTC's --use_fast_math");
  cmd->add_option("--tenant", a->tenants, "a tenant that may launch it (repeat); none: the server decides")
      ->allow_extra_args(false);
  cmd->add_flag("--no-source", a->no_source, "carry only the images, not the source and headers");
  cmd->add_option("-j,--jobs", a->jobs, "compiles at once (default: one per core)");
  cmd->add_option("-o,--output", a->out, "the package folder to create (must not exist)")->excludes(verify_opt);
  cmd->add_option("--cache-dir", a->cache_dir, "cache folder (default: $KILN_CACHE_DIR, ~/.cache/kiln)");
  cmd->add_flag("--no-disk-cache", a->no_disk, "use only this process's memory");
  cmd->add_flag("--json", a->json, "machine-readable output");
  cmd->callback([a, &exit_code] { exit_code = a->verify.empty() ? pack_package(*a) : verify(*a); });
}

}  // namespace kiln::cli
