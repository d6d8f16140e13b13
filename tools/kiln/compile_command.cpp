// `kiln compile`: compile a kernel file through the kernel cache (memory, disk, NVRTC), print where
// the result came from and its lowered names, and report errors the way a compiler does.
// `kiln compile --warm DIR`: compile every kernel file of a folder into the cache, in parallel.
// `kiln compile --lto FILE.cu -o lib.ltoir`: LTO-IR (NVRTC -dlto), e.g. a device library built ahead
// of time for jit::DeviceLibrary::from_ltoir_file or any nvJitLink link.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "commands.hpp"
#include "progress.hpp"
#include "kiln/jit/kernel_cache.hpp"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

struct CompileArgs {
  std::string file;
  std::string out;
  std::string arch;
  bool ptx = false;
  bool cubin = false;
  bool lto = false;
  std::vector<std::string> defines;
  std::vector<std::string> include_dirs;
  std::vector<std::string> name_expressions;
  std::string standard;
  std::string cache_dir;
  bool no_disk = false;
  bool pch = false;
  bool minimal = false;
  bool worker = false;
  bool worker_no_aslr = false;
  std::string warm;
  unsigned jobs = 0;
};

std::string milliseconds(std::chrono::nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", std::chrono::duration<double, std::milli>(d).count());
  return text;
}

jit::Target choose_target(const CompileArgs& a) {
  jit::Target t;
  if (!a.arch.empty()) {
    t = jit::Target::parse(a.arch);
  } else {
    try {
      t = jit::Target::for_device(0);
    } catch (const Error& e) {
      throw Error(Errc::invalid_argument,
                  "no --arch given and no GPU to choose one for (" + std::string(e.name()) + "); pass --arch sm_XX");
    }
  }
  if (a.ptx) t.kind = jit::ImageKind::ptx;
  if (a.cubin) t.kind = jit::ImageKind::cubin;
  if (a.lto) {
    t.kind = jit::ImageKind::ltoir;
    if (!a.arch.empty()) t.reason = "requested " + t.arch_name();
  }
  return t;
}

jit::KernelCacheOptions cache_options(const CompileArgs& a) {
  jit::KernelCacheOptions o;
  o.use_disk = !a.no_disk;
  o.disk.directory = a.cache_dir;
  o.precompiled_headers = a.pch;
  if (a.worker || a.worker_no_aslr) {
    o.compile_worker.emplace();
    o.compile_worker->disable_aslr = a.worker_no_aslr;
  }
  return o;
}

jit::Program program_for(const CompileArgs& a, const fs::path& file) {
  jit::Program p = jit::Program::from_file(file);
  p.options.defines = a.defines;
  p.options.standard = a.standard;
  p.options.minimal = a.minimal;
  p.include_dirs = a.include_dirs;
  p.name_expressions = a.name_expressions;
  return p;
}

void print_warnings(const jit::KernelCache& cache) {
  for (const auto& w : cache.stats().warnings) std::cerr << "kiln: warning: " << w << "\n";
}

int compile_one(const CompileArgs& a) {
  const jit::Target target = choose_target(a);
  jit::KernelCache cache(cache_options(a));
  const jit::Program program = program_for(a, a.file);
  const jit::CompileResult result = cache.try_compile(program, target);
  print_warnings(cache);
  if (!result.ok()) {
    std::cerr << jit::format_diagnostics(result.diagnostics);
    if (result.diagnostics.empty()) std::cerr << result.log << "\n";
    std::cerr << "kiln compile: " << program.name << " did not compile for " << target.arch_name() << "\n";
    return kExitProblems;
  }
  const jit::Artifact& artifact = *result.artifact;
  std::cerr << jit::format_diagnostics(artifact.diagnostics());  // warnings, like a compiler
  std::cout << program.name << ": " << target.arch_name() << " " << jit::to_string(artifact.kind()) << ", "
            << artifact.size() << " bytes\n";
  std::cout << "  from:    ";
  switch (artifact.origin()) {
    case jit::Origin::compiled: std::cout << "NVRTC (compiled in " << milliseconds(artifact.compile_time()) << ")\n"; break;
    case jit::Origin::disk:
      std::cout << "disk cache " << cache.disk()->entry_path(artifact.key()).string() << " (saved "
                << milliseconds(artifact.compile_time()) << ")\n";
      break;
    case jit::Origin::memory: std::cout << "memory cache\n"; break;
  }
  std::cout << "  key:     " << artifact.key().hex() << "\n";
  if (!target.reason.empty()) std::cout << "  target:  " << target.reason << "\n";
  for (const auto& [expr, lowered] : artifact.lowered_names())
    std::cout << "  lowered: " << expr << " -> " << lowered << "\n";
  if (!a.out.empty()) {
    std::ofstream out(a.out, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(artifact.data()), static_cast<std::streamsize>(artifact.size()));
    if (!out) throw Error(Errc::invalid_argument, "cannot write output file '" + a.out + "'");
    std::cout << "  wrote:   " << a.out << "\n";
  }
  return kExitOk;
}

bool is_kernel_file(const fs::path& p) { return p.extension() == ".cu"; }

int warm(const CompileArgs& a) {
  std::error_code ec;
  if (!fs::is_directory(a.warm, ec)) throw Error(Errc::invalid_argument, "--warm: '" + a.warm + "' is not a folder");
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(a.warm, fs::directory_options::skip_permission_denied, ec))
    if (e.is_regular_file() && is_kernel_file(e.path())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  const jit::Target target = choose_target(a);
  const unsigned jobs = std::max(1u, std::min<unsigned>(a.jobs ? a.jobs : std::thread::hardware_concurrency(),
                                                        static_cast<unsigned>(files.size())));
  jit::KernelCacheOptions options = cache_options(a);
  options.compile_worker_processes = jobs;  // one worker per thread when workers are asked for
  jit::KernelCache cache(options);
  Progress progress(std::cerr, files.size(), "files", ::isatty(STDERR_FILENO) != 0);
  std::atomic<std::size_t> next{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < files.size();) {
      std::string failure;
      try {
        jit::CompileResult r = cache.try_compile(program_for(a, files[i]), target);
        if (!r.ok()) failure = jit::format_diagnostics(r.diagnostics);
      } catch (const Error& e) {
        failure = std::string(e.what()) + "\n";
      }
      if (!failure.empty()) {
        ++failed;
        progress.message(failure);
      }
      progress.advance(files[i].filename().string());
    }
  };
  std::vector<std::thread> threads;
  for (unsigned j = 0; j < jobs; ++j) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  progress.finish();
  print_warnings(cache);
  const jit::CacheStats s = cache.stats();
  std::cout << "warmed " << files.size() << " kernel files for " << target.arch_name() << " with " << jobs
            << " threads in " << milliseconds(std::chrono::steady_clock::now() - start) << ": " << s.compiles
            << " compiled, " << s.disk_hits << " already on disk, " << failed.load() << " failed\n";
  return failed ? kExitProblems : kExitOk;
}

}  // namespace

void add_compile_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<CompileArgs>();
  auto* cmd = app.add_subcommand("compile", "Compile a CUDA kernel file with NVRTC through kiln's kernel cache");
  cmd->footer("Exit codes: 0 compiled; 1 compile errors (printed like a compiler's) or other failure; 2 bad usage.");
  auto* file = cmd->add_option("file", a->file, "the kernel source (.cu)");
  auto* warm_opt = cmd->add_option("--warm", a->warm, "compile every .cu file under this folder into the cache");
  file->excludes(warm_opt);
  cmd->add_option("-o,--output", a->out, "write the CUBIN, PTX or LTO-IR here")->excludes(warm_opt);
  cmd->add_option("--arch", a->arch, "sm_90, compute_90, lto_90 or 9.0 (default: device 0's best target)");
  auto* ptx = cmd->add_flag("--ptx", a->ptx, "produce PTX for the architecture");
  auto* cubin = cmd->add_flag("--cubin", a->cubin, "produce a CUBIN for the architecture")->excludes(ptx);
  cmd->add_flag("--lto", a->lto, "produce LTO-IR (NVRTC -dlto) for the architecture, for nvJitLink to link")
      ->excludes(ptx)
      ->excludes(cubin);
  cmd->add_option("-D,--define", a->defines, "NAME or NAME=VALUE")->allow_extra_args(false);
  cmd->add_option("-I,--include-dir", a->include_dirs, "a folder searched for #include")->allow_extra_args(false);
  cmd->add_option("--name-expr", a->name_expressions, "a name expression to lower, e.g. 'fill<3>'")
      ->allow_extra_args(false);
  cmd->add_option("--std", a->standard, "language standard, e.g. c++17");
  cmd->add_flag("--minimal", a->minimal, "NVRTC's -minimal: faster for kernels that include no library headers");
  cmd->add_option("--cache-dir", a->cache_dir, "cache folder (default: $KILN_CACHE_DIR, ~/.cache/kiln)");
  cmd->add_flag("--no-disk-cache", a->no_disk, "use only this process's memory");
  cmd->add_flag("--pch", a->pch, "use NVRTC's automatic precompiled headers, kept in the cache folder");
  auto* worker = cmd->add_flag("--worker", a->worker, "compile in a kiln-compile-worker child process");
  cmd->add_flag("--worker-no-aslr", a->worker_no_aslr,
                "compile in a worker started without address-space randomisation, so PCH files made by "
                "earlier such workers load (weakens that process's exploit protection: docs/JIT.md)")
      ->excludes(worker);
  cmd->add_option("-j,--jobs", a->jobs, "threads for --warm (default: one per core)");
  cmd->callback([a, &exit_code] {
    if (a->file.empty() && a->warm.empty()) throw CLI::RequiredError("file or --warm");
    exit_code = a->warm.empty() ? compile_one(*a) : warm(*a);
  });
}

}  // namespace kiln::cli
