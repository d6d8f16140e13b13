// The disk tier: verified entries, rebuilds of damaged ones, LRU cap, fall-back folder, and
// several processes sharing one folder.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cache_entries.hpp"
#include "support/files.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "support/process.hpp"

extern char** environ;

namespace {

using namespace kiln::jit;
namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class DiskCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln-jit-disk-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  KernelCacheOptions options(std::uint64_t max_bytes = 0) const {
    KernelCacheOptions o;
    o.disk.directory = dir_;
    o.disk.max_bytes = max_bytes;
    return o;
  }
  fs::path dir_;
};

using test_kernels::variant;

using test_kernels::fake;

using kiln::testing::read_all;
using kiln::testing::write_all;

TEST_F(DiskCacheTest, NewCacheInstanceHitsTheDisk) {
  Program p = variant(1);
  p.name_expressions = {};
  Artifact compiled;
  {
    KernelCache cache(options());
    compiled = cache.compile(p, Target::for_arch(90));
    EXPECT_EQ(compiled.origin(), Origin::compiled);
    EXPECT_EQ(cache.stats().disk_writes, 1u);
    EXPECT_TRUE(fs::exists(cache.disk()->entry_path(compiled.key())));
    EXPECT_EQ(cache.disk()->entry_path(compiled.key()).parent_path().filename(), compiled.key().hex().substr(0, 2));
  }
  KernelCache fresh(options());
  const Artifact loaded = fresh.compile(p, Target::for_arch(90));
  EXPECT_EQ(loaded.origin(), Origin::disk);
  EXPECT_EQ(loaded.image(), compiled.image());
  EXPECT_EQ(loaded.key(), compiled.key());
  EXPECT_EQ(loaded.compile_time(), compiled.compile_time());
  EXPECT_EQ(fresh.compile(p, Target::for_arch(90)).origin(), Origin::memory);
  const CacheStats s = fresh.stats();
  EXPECT_EQ(s.disk_hits, 1u);
  EXPECT_EQ(s.compiles, 0u);
  EXPECT_EQ(s.compile_time_saved, 2 * compiled.compile_time());
}

TEST_F(DiskCacheTest, LoweredNamesAndLogSurviveTheDisk) {
  Program p;
  p.source = std::string(test_kernels::kTemplated) + "__global__ void w() { int unused; }\n";
  p.name_expressions = {"fill<7>"};
  Artifact compiled = KernelCache(options()).compile(p, Target::for_arch(90, ImageKind::ptx));
  Artifact loaded = KernelCache(options()).compile(p, Target::for_arch(90, ImageKind::ptx));
  EXPECT_EQ(loaded.origin(), Origin::disk);
  EXPECT_EQ(loaded.kind(), ImageKind::ptx);
  EXPECT_EQ(loaded.lowered_name("fill<7>"), compiled.lowered_name("fill<7>"));
  EXPECT_EQ(loaded.log(), compiled.log());
  ASSERT_EQ(loaded.diagnostics().size(), 1u);
  EXPECT_EQ(loaded.diagnostics()[0].severity, Severity::warning);
  EXPECT_EQ(static_cast<const char*>(loaded.data())[loaded.size()], '\0');
}

// Each damage is found on read, counted, reported, removed and rebuilt; never loaded.
TEST_F(DiskCacheTest, DamagedEntriesAreRebuilt) {
  struct Damage {
    std::string name, expected_reason;
    std::string (*apply)(std::string);
  };
  const std::vector<Damage> damages{
      {"truncated", "truncated", [](std::string b) { return b.substr(0, b.size() - 100); }},
      {"truncated header", "truncated", [](std::string b) { return b.substr(0, 20); }},
      {"bit flip", "checksum mismatch", [](std::string b) { b[b.size() / 2] ^= 0x10; return b; }},
      {"wrong magic", "wrong magic", [](std::string b) { b[1] = 'X'; return b; }},
      {"other key", "another key", [](std::string b) { b[20] ^= 1; return b; }},
      {"empty", "truncated", [](std::string) { return std::string(); }},
  };
  const Program p = variant(2);
  const Artifact original = KernelCache(options()).compile(p, Target::for_arch(90));
  for (const auto& damage : damages) {
    KernelCache cache(options());
    const fs::path entry = cache.disk()->entry_path(original.key());
    ASSERT_TRUE(fs::exists(entry)) << damage.name;
    write_all(entry, damage.apply(read_all(entry)));
    EXPECT_FALSE(cache.disk()->load(original.key())) << damage.name;
    EXPECT_FALSE(fs::exists(entry)) << damage.name;
    const CacheStats s = cache.stats();
    EXPECT_EQ(s.corrupt_entries, 1u) << damage.name;
    ASSERT_EQ(s.warnings.size(), 1u) << damage.name;
    EXPECT_NE(s.warnings[0].find(entry.string()), std::string::npos) << s.warnings[0];
    EXPECT_NE(s.warnings[0].find(damage.expected_reason), std::string::npos) << s.warnings[0];
    const Artifact rebuilt = cache.compile(p, Target::for_arch(90));
    EXPECT_EQ(rebuilt.origin(), Origin::compiled) << damage.name;
    EXPECT_EQ(rebuilt.image(), original.image()) << damage.name;
    EXPECT_TRUE(fs::exists(entry)) << damage.name;
  }
  EXPECT_EQ(KernelCache(options()).compile(p, Target::for_arch(90)).origin(), Origin::disk);
}

TEST_F(DiskCacheTest, SizeCapEvictsLeastRecentlyUsed) {
  DiskCache disk({dir_, 1 << 20});
  const std::uint64_t entry_bytes = 10'000 + 88 + 200;  // image, header, other fields (upper bound)
  DiskCache capped({dir_, 5 * entry_bytes});
  const auto base = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (int i = 0; i < 4; ++i) {
    capped.store(fake(i, 10'000));
    fs::last_write_time(capped.entry_path(fake(i, 0).key()), base + std::chrono::minutes(i));
  }
  EXPECT_EQ(capped.usage().entries, 4u);
  ASSERT_TRUE(capped.load(fake(0, 0).key()));  // touched: now the most recently used
  capped.store(fake(4, 10'000));
  capped.store(fake(5, 10'000));  // over the cap: pruned to 90% of it
  EXPECT_LE(capped.usage().total_bytes(), 5 * entry_bytes);
  EXPECT_GE(capped.evictions(), 1u);
  EXPECT_FALSE(fs::exists(capped.entry_path(fake(1, 0).key())));  // the oldest untouched one
  EXPECT_TRUE(fs::exists(capped.entry_path(fake(0, 0).key())));
  EXPECT_TRUE(fs::exists(capped.entry_path(fake(5, 0).key())));

  PruneResult r = capped.prune(std::uint64_t{0});
  EXPECT_GE(r.removed_files, 1u);
  EXPECT_EQ(capped.usage().entries, 0u);
}

TEST_F(DiskCacheTest, PchFilesCountAgainstTheCap) {
  DiskCache disk({dir_, 1 << 20});
  write_all(disk.pch_directory() / "some.pch", std::string(4000, 'p'));
  fs::last_write_time(disk.pch_directory() / "some.pch", fs::file_time_type::clock::now() - std::chrono::hours(2));
  disk.store(fake(1, 1000));
  DiskUsage u = disk.usage();
  EXPECT_EQ(u.pch_files, 1u);
  EXPECT_EQ(u.pch_bytes, 4000u);
  EXPECT_EQ(u.entries, 1u);
  disk.prune(u.total_bytes() - 1);  // the PCH file is the least recently used
  EXPECT_FALSE(fs::exists(disk.pch_directory() / "some.pch"));
  EXPECT_EQ(disk.usage().entries, 1u);
}

TEST_F(DiskCacheTest, PruneRemovesStaleTempFilesAndVerifies) {
  DiskCache disk({dir_, 1 << 20});
  disk.store(fake(1, 100));
  disk.store(fake(2, 100));
  const fs::path stale = disk.entry_path(fake(1, 0).key()).parent_path() / ".tmp-crashed-writer";
  write_all(stale, "half an entry");
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(3));
  const fs::path fresh_temp = disk.entry_path(fake(1, 0).key()).parent_path() / ".tmp-writing-now";
  write_all(fresh_temp, "in progress");
  std::string bytes = read_all(disk.entry_path(fake(2, 0).key()));
  bytes.back() ^= 1;
  write_all(disk.entry_path(fake(2, 0).key()), bytes);

  PruneResult r = disk.prune(std::nullopt, /*verify=*/true);
  EXPECT_EQ(r.stale_temp_removed, 1u);
  EXPECT_EQ(r.corrupt_removed, 1u);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh_temp));  // another process may be writing it
  EXPECT_TRUE(disk.load(fake(1, 0).key()));
  EXPECT_EQ(disk.clear(), 2u);  // the entry and the young temp file
  EXPECT_EQ(disk.usage().total_bytes(), 0u);
}

TEST_F(DiskCacheTest, UnwritableFolderFallsBackWithAWarning) {
  fs::create_directories(dir_);
  write_all(dir_ / "a-file", "not a folder");
  const fs::path tmp = dir_ / "tmp";
  fs::create_directories(tmp);
  const char* old_tmpdir = std::getenv("TMPDIR");
  std::string saved = old_tmpdir ? old_tmpdir : "";
  ::setenv("TMPDIR", tmp.c_str(), 1);
  {
    KernelCacheOptions o;
    o.disk.directory = dir_ / "a-file" / "cache";  // cannot be created: its parent is a file
    KernelCache cache(o);
    ASSERT_NE(cache.disk(), nullptr);
    EXPECT_TRUE(cache.disk()->fell_back());
    EXPECT_EQ(cache.disk()->directory().parent_path(), tmp);
    const auto warnings = cache.stats().warnings;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find((dir_ / "a-file" / "cache").string()), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("not writable"), std::string::npos) << warnings[0];
    EXPECT_EQ(cache.compile(variant(3), Target::for_arch(90)).origin(), Origin::compiled);
    EXPECT_EQ(cache.disk()->usage().entries, 1u);
  }
  if (old_tmpdir) ::setenv("TMPDIR", saved.c_str(), 1);
  else ::unsetenv("TMPDIR");
}

TEST_F(DiskCacheTest, DefaultFolderFollowsTheEnvironment) {
  const char* names[] = {"KILN_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  std::map<std::string, std::optional<std::string>> saved;
  for (const char* n : names) saved[n] = std::getenv(n) ? std::optional<std::string>(std::getenv(n)) : std::nullopt;
  ::setenv("KILN_CACHE_DIR", "/k", 1);
  ::setenv("XDG_CACHE_HOME", "/x", 1);
  ::setenv("HOME", "/h", 1);
  EXPECT_EQ(DiskCache::default_directory(), fs::path("/k"));
  ::unsetenv("KILN_CACHE_DIR");
  EXPECT_EQ(DiskCache::default_directory(), fs::path("/x/kiln"));
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(DiskCache::default_directory(), fs::path("/h/.cache/kiln"));
  for (const auto& [n, v] : saved) v ? ::setenv(n.c_str(), v->c_str(), 1) : ::unsetenv(n.c_str());
}

TEST_F(DiskCacheTest, BadSizeCapInTheEnvironmentIsNamed) {
  ::setenv("KILN_CACHE_MAX_BYTES", "lots", 1);
  try {
    DiskCache disk({dir_, 0});
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("KILN_CACHE_MAX_BYTES='lots'"), std::string::npos) << e.what();
  }
  ::setenv("KILN_CACHE_MAX_BYTES", "12345", 1);
  EXPECT_EQ(DiskCache({dir_, 0}).max_bytes(), 12345u);
  ::unsetenv("KILN_CACHE_MAX_BYTES");
}

struct Child {
  pid_t pid;
  fs::path out;
};

Child spawn_child(const std::vector<std::string>& args, const fs::path& out) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "posix_spawn " << args[0];
  return Child{pid, out};
}

// origin per variant, from a child's output
std::vector<std::pair<int, std::string>> origins(const fs::path& out) {
  std::vector<std::pair<int, std::string>> r;
  std::istringstream in(read_all(out));
  int i;
  std::string origin, key;
  while (in >> i >> origin >> key) r.emplace_back(i, origin);
  return r;
}

TEST_F(DiskCacheTest, DiskHitInANewProcess) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  fs::create_directories(dir_);
  for (const char* expected : {"compiled", "disk"}) {
    Child c = spawn_child({KILN_JIT_CACHE_CHILD, dir_.string(), "100", "1"}, dir_ / "out.txt");
    int status = 0;
    waitpid(c.pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    auto o = origins(c.out);
    ASSERT_EQ(o.size(), 1u);
    EXPECT_EQ(o[0].second, expected);
  }
}

TEST_F(DiskCacheTest, FourProcessesFillingOneFolderLeaveAConsistentCache) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  fs::create_directories(dir_);
  constexpr int kProcesses = 4, kVariants = 6;
  std::vector<Child> children;
  for (int i = 0; i < kProcesses; ++i)
    children.push_back(spawn_child({KILN_JIT_CACHE_CHILD, dir_.string(), "0", std::to_string(kVariants),
                                    std::to_string(i)},
                                   dir_ / ("out" + std::to_string(i) + ".txt")));
  int compiled = 0;
  for (const auto& c : children) {
    int status = 0;
    waitpid(c.pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_all(c.out);
    auto o = origins(c.out);
    EXPECT_EQ(o.size(), static_cast<std::size_t>(kVariants));
    for (const auto& [i, origin] : o) compiled += origin == "compiled";
  }
  EXPECT_EQ(compiled, kVariants);  // single flight across processes: each variant compiled once

  DiskCache disk({dir_, 0});
  EXPECT_EQ(disk.usage().entries, static_cast<std::uint64_t>(kVariants));
  PruneResult verified = disk.prune(std::nullopt, /*verify=*/true);
  EXPECT_EQ(verified.corrupt_removed, 0u);
  EXPECT_EQ(verified.removed_files, 0u);
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "entries"))
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
  KernelCacheOptions o;
  o.disk.directory = dir_;
  KernelCache cache(o);
  for (int i = 0; i < kVariants; ++i) EXPECT_EQ(cache.compile(variant(i), Target::for_arch(90)).origin(), Origin::disk);
}

}  // namespace
