// `kiln cache stats|clear|prune`: the persistent kernel cache's folder, size and health.
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/jit/disk_cache.hpp"

namespace kiln::cli {
namespace {

struct CacheArgs {
  std::string dir;
  bool json = false;
  bool verify = false;
  std::uint64_t max_bytes = 0;
};

jit::DiskCache open_cache(const CacheArgs& a) {
  jit::DiskCacheOptions o;
  o.directory = a.dir;
  return jit::DiskCache(o);
}

void print_warnings(const jit::DiskCache& disk) {
  for (const auto& w : disk.warnings()) std::cerr << "kiln: warning: " << w << "\n";
}

std::string mib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

void add_cache_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<CacheArgs>();
  auto* cmd = app.add_subcommand("cache", "Inspect and manage the persistent kernel cache");
  cmd->require_subcommand(1);
  cmd->add_option("--cache-dir", a->dir, "cache folder (default: $KILN_CACHE_DIR, ~/.cache/kiln)");
  cmd->footer("Exit codes: 0 success; 1 failure (or --verify found corrupt entries); 2 bad usage.");

  auto* stats = cmd->add_subcommand("stats", "folder, size cap, entries and bytes, precompiled headers");
  stats->add_flag("--json", a->json, "machine-readable output");
  stats->add_flag("--verify", a->verify, "read and check every entry; corrupt ones are removed");
  stats->callback([a, &exit_code] {
    jit::DiskCache disk = open_cache(*a);
    jit::PruneResult verified;
    if (a->verify) verified = disk.prune(std::numeric_limits<std::uint64_t>::max(), true);
    const jit::DiskUsage u = disk.usage();
    print_warnings(disk);
    if (a->json) {
      nlohmann::json j{{"directory", disk.directory().string()}, {"max_bytes", disk.max_bytes()},
                       {"entries", u.entries},  {"entry_bytes", u.entry_bytes},
                       {"pch_files", u.pch_files}, {"pch_bytes", u.pch_bytes},
                       {"total_bytes", u.total_bytes()}, {"fell_back", disk.fell_back()},
                       {"warnings", disk.warnings()}};
      if (a->verify) j["corrupt_removed"] = verified.corrupt_removed;
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << "directory:   " << disk.directory().string() << (disk.fell_back() ? " (fallback)" : "") << "\n"
                << "size cap:    " << mib(disk.max_bytes()) << "\n"
                << "entries:     " << u.entries << " (" << mib(u.entry_bytes) << ")\n"
                << "precompiled: " << u.pch_files << " files (" << mib(u.pch_bytes) << ")\n"
                << "total:       " << mib(u.total_bytes()) << "\n";
      if (a->verify) std::cout << "corrupt:     " << verified.corrupt_removed << " removed\n";
    }
    exit_code = verified.corrupt_removed ? kExitProblems : kExitOk;
  });

  auto* clear = cmd->add_subcommand("clear", "remove every entry and precompiled header");
  clear->callback([a, &exit_code] {
    jit::DiskCache disk = open_cache(*a);
    print_warnings(disk);
    std::cout << "removed " << disk.clear() << " files from " << disk.directory().string() << "\n";
    exit_code = kExitOk;
  });

  auto* prune = cmd->add_subcommand("prune", "evict least recently used files down to the size cap");
  prune->add_option("--max-bytes", a->max_bytes, "evict down to this many bytes instead of the cap");
  prune->add_flag("--verify", a->verify, "also read and check every entry, removing corrupt ones");
  prune->callback([a, &exit_code] {
    jit::DiskCache disk = open_cache(*a);
    const jit::PruneResult r =
        disk.prune(a->max_bytes ? std::optional<std::uint64_t>(a->max_bytes) : std::nullopt, a->verify);
    print_warnings(disk);
    std::cout << "evicted " << r.removed_files << " files (" << mib(r.removed_bytes) << "), " << r.stale_temp_removed
              << " stale temporary files, " << r.corrupt_removed << " corrupt entries; "
              << mib(disk.usage().total_bytes()) << " left in " << disk.directory().string() << "\n";
    exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
