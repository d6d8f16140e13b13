// Issue #11's probes of the disk tier, each a test that failed before the fix: links inside the
// folder are never followed (clear, prune, eviction, loads), odd files at entry names are misses,
// untrusted folders are not used, single flight holds across processes (also when a holder is
// killed), the size cap holds with several writers, and damaged entries are never loaded.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "cache_entries.hpp"
#include "support/files.hpp"
#include "kiln/jit/kernel_cache.hpp"
#include "support/process.hpp"

extern char** environ;

namespace {

using namespace kiln::jit;
namespace fs = std::filesystem;

using kiln::testing::read_all;
using kiln::testing::write_all;

using test_kernels::variant;

using test_kernels::fake;

bool contains(const std::vector<std::string>& warnings, std::string_view text) {
  for (const auto& w : warnings)
    if (w.find(text) != std::string::npos) return true;
  return false;
}

// 'path' (built by appending: GCC 12 warns falsely, -Wrestrict, on "'" + std::string).
std::string quoted(const fs::path& p) {
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

std::string joined(const std::vector<std::string>& warnings) {
  std::string s;
  for (const auto& w : warnings) s += w + "\n";
  return s;
}

// Every regular file under a folder, with its contents: what must survive.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_all(e.path());
  return files;
}

// A fresh folder per test; TMPDIR points into it, so fallbacks (and children's) stay inside.
class DiskCacheHardening : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln-jit-hard-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tmp");
    fs::permissions(dir_, fs::perms(0755));
    if (const char* t = std::getenv("TMPDIR")) saved_tmpdir_ = t;
    ::setenv("TMPDIR", (dir_ / "tmp").c_str(), 1);
    cache_ = dir_ / "cache";
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (saved_tmpdir_) ::setenv("TMPDIR", saved_tmpdir_->c_str(), 1);
    else ::unsetenv("TMPDIR");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  KernelCacheOptions options(std::uint64_t max_bytes = 0) const {
    KernelCacheOptions o;
    o.disk.directory = cache_;
    o.disk.max_bytes = max_bytes;
    return o;
  }
  // A victim folder, outside the cache, that a link will point at. Its files must survive.
  fs::path make_victim(const std::string& name) {
    const fs::path v = dir_ / name;
    fs::create_directories(v / "ab");
    write_all(v / "ab" / (std::string(64, 'a') + ".kjit"), "precious entry-like file");
    write_all(v / "notes.txt", "precious");
    write_all(v / "old.pch", std::string(5000, 'p'));
    fs::last_write_time(v / "old.pch", fs::file_time_type::clock::now() - std::chrono::hours(48));
    return v;
  }
  pid_t spawn(const std::vector<std::string>& args, const fs::path& out) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0) << args[0];
    posix_spawn_file_actions_destroy(&actions);
    children_.push_back(pid);
    return pid;
  }
  int wait(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::erase(children_, pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // Waits (up to a minute: the child starts and loads what it needs) for a line in a child's output.
  bool wait_for_line(const fs::path& out, const std::string& line) {
    for (int i = 0; i < 6000; ++i) {
      if (read_all(out).find(line + "\n") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  fs::path dir_, cache_;
  std::optional<std::string> saved_tmpdir_;
  std::vector<pid_t> children_;
};

// --- links and odd files ---------------------------------------------------------------------

TEST_F(DiskCacheHardening, LinkedEntriesOrPchFolderIsRefusedAndItsTargetSurvives) {
  for (const char* sub : {"entries", "pch"}) {
    SCOPED_TRACE(sub);
    fs::remove_all(cache_);
    fs::create_directories(cache_);
    const fs::path victim = make_victim(std::string("victim-") + sub);
    const auto before = snapshot(victim);
    fs::create_directory_symlink(victim, cache_ / sub);

    DiskCache disk({cache_, 1000});
    EXPECT_TRUE(disk.fell_back());
    ASSERT_FALSE(disk.warnings().empty());
    EXPECT_NE(disk.warnings()[0].find("not safe to use"), std::string::npos) << disk.warnings()[0];
    EXPECT_NE(disk.warnings()[0].find((cache_ / sub).string() + "' is a symbolic link"), std::string::npos)
        << disk.warnings()[0];
    EXPECT_EQ(disk.directory().parent_path(), dir_ / "tmp");
    disk.store(fake(1, 600));
    disk.store(fake(2, 600));  // over the small cap: evicts
    disk.prune(std::uint64_t{0});
    disk.clear();
    EXPECT_EQ(snapshot(victim), before);
    EXPECT_TRUE(fs::is_symlink(cache_ / sub));
  }
}

// The links appear after the folder was checked (another process swapped them in): clear, prune,
// eviction under the cap and loads never reach the target.
TEST_F(DiskCacheHardening, LinksSwappedInLaterAreNeverFollowed) {
  const Artifact planted = fake(7, 500);
  {
    DiskCache seed({dir_ / "seed", 1 << 20});
    seed.store(planted);
  }
  DiskCache disk({cache_, 4000});
  EXPECT_FALSE(disk.fell_back());
  disk.store(fake(1, 500));
  // entries/ becomes a link to a folder holding a valid entry for `planted`; pch/ to another victim.
  const fs::path victim = make_victim("victim");
  fs::copy(dir_ / "seed" / "entries", victim, fs::copy_options::recursive);
  const fs::path pch_victim = make_victim("pch-victim");
  const auto before = snapshot(victim), pch_before = snapshot(pch_victim);
  fs::rename(cache_ / "entries", dir_ / "entries.old");
  fs::create_directory_symlink(victim, cache_ / "entries");
  fs::rename(cache_ / "pch", dir_ / "pch.old");
  fs::create_directory_symlink(pch_victim, cache_ / "pch");

  EXPECT_FALSE(disk.load(planted.key()));
  for (int i = 0; i < 12; ++i) disk.store(fake(10 + i, 900));  // far over the cap
  disk.prune(std::uint64_t{0});
  disk.prune(std::nullopt, /*verify=*/true);
  disk.clear();
  EXPECT_EQ(disk.usage().total_bytes(), 0u);  // nothing behind the links is counted
  EXPECT_EQ(snapshot(victim), before);
  EXPECT_EQ(snapshot(pch_victim), pch_before);
  EXPECT_TRUE(contains(disk.warnings(), "not cleared")) << joined(disk.warnings());
  EXPECT_EQ(disk.hits(), 0u);
}

// Whatever sits at an entry's name that is not a regular file: a miss (never a hang, never what a
// link points at), counted, removed as a name, and rebuilt by the compile.
TEST_F(DiskCacheHardening, OddFilesAtAnEntryNameAreMissesNotHangs) {
  const Program p = variant(1);
  const Artifact original = KernelCache(options()).compile(p, Target::for_arch(90));
  const fs::path entry = KernelCache(options()).disk()->entry_path(original.key());
  const fs::path elsewhere = dir_ / "elsewhere.kjit";
  fs::copy_file(entry, elsewhere);  // a valid entry: still must not be read through a link
  struct Odd {
    const char* name;
    const char* reason;
    void (*make)(const fs::path& entry, const fs::path& elsewhere);
  };
  const Odd odds[] = {
      {"FIFO", "a FIFO", [](const fs::path& e, const fs::path&) { ASSERT_EQ(::mkfifo(e.c_str(), 0644), 0); }},
      {"link", "a symbolic link", [](const fs::path& e, const fs::path& v) { fs::create_symlink(v, e); }},
      {"folder", "a folder", [](const fs::path& e, const fs::path&) {
         fs::create_directories(e / "inside");
         write_all(e / "inside" / "x", "x");
       }},
      {"dangling link", "a symbolic link",
       [](const fs::path& e, const fs::path&) { fs::create_symlink("/nonexistent/kiln", e); }},
  };
  for (const Odd& odd : odds) {
    SCOPED_TRACE(odd.name);
    fs::remove(entry);
    odd.make(entry, elsewhere);
    KernelCache cache(options());
    const Artifact a = cache.compile(p, Target::for_arch(90));
    EXPECT_EQ(a.origin(), Origin::compiled);
    EXPECT_EQ(a.image(), original.image());
    const CacheStats s = cache.stats();
    EXPECT_EQ(s.corrupt_entries, 1u);
    EXPECT_EQ(s.disk_hits, 0u);
    EXPECT_TRUE(contains(s.warnings, odd.reason)) << joined(s.warnings);
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(entry)));
    EXPECT_TRUE(fs::exists(elsewhere));
  }
  // The entry's two-digit folder itself a link: not entered, removed as a name.
  const fs::path folder = entry.parent_path();
  fs::rename(folder, dir_ / "moved");
  fs::create_directory_symlink(dir_ / "moved", folder);
  KernelCache cache(options());
  EXPECT_EQ(cache.compile(p, Target::for_arch(90)).origin(), Origin::compiled);
  EXPECT_EQ(cache.stats().corrupt_entries, 1u);
  EXPECT_FALSE(fs::is_symlink(folder));
  EXPECT_TRUE(fs::exists(dir_ / "moved" / entry.filename()));
}

TEST_F(DiskCacheHardening, VerifyReportsFifosFoldersAndUnreadableFiles) {
  DiskCache disk({cache_, 1 << 20});
  disk.store(fake(1, 100));
  disk.store(fake(2, 100));
  disk.store(fake(3, 100));
  const fs::path fifo = disk.entry_path(fake(1, 0).key());
  const fs::path folder = disk.entry_path(fake(2, 0).key());
  const fs::path unreadable = disk.entry_path(fake(3, 0).key());
  fs::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::remove(folder);
  fs::create_directories(folder);
  fs::permissions(unreadable, fs::perms::none);
  const bool root = ::geteuid() == 0;  // root reads a mode-0 file anyway: then it is a good entry
  const PruneResult r = disk.prune(std::nullopt, /*verify=*/true);
  EXPECT_EQ(r.corrupt_removed, root ? 2u : 3u);
  const auto w = disk.warnings();
  EXPECT_TRUE(contains(w, fifo.string() + "' (a FIFO, not a regular file)")) << joined(w);
  EXPECT_TRUE(contains(w, folder.string() + "' (a folder, not a regular file)")) << joined(w);
  if (!root) {
    EXPECT_TRUE(contains(w, unreadable.string() + "' (Permission denied)")) << joined(w);
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(fifo)));
  EXPECT_FALSE(fs::exists(folder));
}

// --- folder trust ----------------------------------------------------------------------------

// A planted entry in an untrusted folder must not be loaded.
void plant(const fs::path& cache, const Artifact& a) {
  DiskCache({cache, 1 << 20}).store(a);
}

TEST_F(DiskCacheHardening, WorldWritableFolderIsNotUsed) {
  const Program p = variant(2);
  const Artifact compiled = KernelCache(options()).compile(p, Target::for_arch(90));
  fs::permissions(cache_, fs::perms(0777));
  {
    KernelCache cache(options());
    ASSERT_NE(cache.disk(), nullptr);
    EXPECT_TRUE(cache.disk()->fell_back());
    const auto w = cache.stats().warnings;
    ASSERT_FALSE(w.empty());
    EXPECT_NE(w[0].find(quoted(cache_) + " is not safe to use (writable by its group or other users (mode 0777)"),
              std::string::npos)
        << w[0];
    EXPECT_EQ(cache.compile(p, Target::for_arch(90)).origin(), Origin::compiled);  // the planted one is not used
  }
  // Group-writable entries/ in a good folder: the same.
  fs::permissions(cache_, fs::perms(0755));
  fs::permissions(cache_ / "entries", fs::perms(0775));
  EXPECT_TRUE(DiskCache({cache_, 0}).fell_back());
  // The sticky bit (like /tmp) keeps others from replacing what we write: a sticky root is used.
  fs::permissions(cache_ / "entries", fs::perms(0755));
  fs::permissions(cache_, fs::perms(01777));
  KernelCache sticky(options());
  EXPECT_FALSE(sticky.disk()->fell_back()) << joined(sticky.stats().warnings);
  EXPECT_EQ(sticky.compile(p, Target::for_arch(90)).origin(), Origin::disk);
}

TEST_F(DiskCacheHardening, FolderOwnedByAnotherUserIsNotUsed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a folder to another user";
  constexpr uid_t kNobody = 65534;
  plant(cache_, fake(1, 100));
  ASSERT_EQ(::chown(cache_.c_str(), kNobody, kNobody), 0);
  {
    DiskCache disk({cache_, 0});
    EXPECT_TRUE(disk.fell_back());
    ASSERT_FALSE(disk.warnings().empty());
    EXPECT_NE(disk.warnings()[0].find("owned by another user (uid 65534)"), std::string::npos) << disk.warnings()[0];
    EXPECT_FALSE(disk.load(fake(1, 0).key()));
  }
  // Our folder, but entries/ is someone else's.
  ASSERT_EQ(::chown(cache_.c_str(), 0, 0), 0);
  ASSERT_EQ(::chown((cache_ / "entries").c_str(), kNobody, kNobody), 0);
  {
    DiskCache disk({cache_, 0});
    EXPECT_TRUE(disk.fell_back());
    EXPECT_TRUE(contains(disk.warnings(), (cache_ / "entries").string() + "' is owned by another user"))
        << joined(disk.warnings());
  }
  // The private fallback owned by another user is refused too: no disk tier, said so.
  ASSERT_EQ(::chown((cache_ / "entries").c_str(), 0, 0), 0);
  ASSERT_EQ(::chown(cache_.c_str(), kNobody, kNobody), 0);
  const fs::path fallback = DiskCache::fallback_directory();
  fs::remove_all(fallback);
  fs::create_directories(fallback);
  ASSERT_EQ(::chown(fallback.c_str(), kNobody, kNobody), 0);
  KernelCache cache(options());
  EXPECT_EQ(cache.disk(), nullptr);
  EXPECT_TRUE(contains(cache.stats().warnings, "disk tier disabled")) << joined(cache.stats().warnings);
  EXPECT_TRUE(contains(cache.stats().warnings, quoted(fallback) + " (owned by another user (uid 65534)"))
      << joined(cache.stats().warnings);
}

TEST_F(DiskCacheHardening, FallbackIsNeverRelative) {
  const std::string uid = std::to_string(::geteuid());
  ::unsetenv("TMPDIR");
  EXPECT_EQ(DiskCache::fallback_directory(), fs::path("/tmp/kiln-cache-" + uid));
  ::setenv("TMPDIR", "", 1);
  EXPECT_EQ(DiskCache::fallback_directory(), fs::path("/tmp/kiln-cache-" + uid));
  ::setenv("TMPDIR", "relative/tmp", 1);
  EXPECT_EQ(DiskCache::fallback_directory(), fs::path("/tmp/kiln-cache-" + uid));
  ::setenv("TMPDIR", (dir_ / "tmp").c_str(), 1);
  EXPECT_EQ(DiskCache::fallback_directory(), dir_ / "tmp" / ("kiln-cache-" + uid));

  std::map<std::string, std::optional<std::string>> saved;
  for (const char* n : {"KILN_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    saved[n] = std::getenv(n) ? std::optional<std::string>(std::getenv(n)) : std::nullopt;
    ::unsetenv(n);
  }
  EXPECT_EQ(DiskCache::default_directory(), dir_ / "tmp" / ("kiln-cache-" + uid));
  for (const auto& [n, v] : saved) v ? ::setenv(n.c_str(), v->c_str(), 1) : ::unsetenv(n.c_str());
  // A relative cache folder is made absolute once, against the working folder of that moment.
  EXPECT_TRUE(DiskCache({fs::relative(cache_), 0}).directory().is_absolute());
}

// The cache folder itself a link: followed once, to an empty folder (which becomes a cache) or a
// kiln cache; a link to anything else (/, a home folder) is refused and nothing is written there.
TEST_F(DiskCacheHardening, LinkedCacheFolderMustLeadToACache) {
  const fs::path target = dir_ / "real-cache";
  fs::create_directories(target);
  fs::create_directory_symlink(target, cache_);
  {
    DiskCache disk({cache_, 0});
    EXPECT_FALSE(disk.fell_back()) << joined(disk.warnings());
    EXPECT_EQ(disk.directory(), fs::canonical(target));
    disk.store(fake(1, 100));
  }
  EXPECT_FALSE(DiskCache({cache_, 0}).fell_back());  // now a kiln cache: still fine

  const fs::path victim = make_victim("home");
  const auto before = snapshot(victim);
  fs::remove(cache_);
  fs::create_directory_symlink(victim, cache_);
  DiskCache disk({cache_, 0});
  EXPECT_TRUE(disk.fell_back());
  EXPECT_NE(disk.warnings()[0].find("neither empty nor a kiln cache"), std::string::npos) << disk.warnings()[0];
  disk.store(fake(2, 100));
  disk.clear();
  EXPECT_EQ(snapshot(victim), before);
  EXPECT_FALSE(fs::exists(victim / "entries"));
  EXPECT_FALSE(fs::exists(victim / "locks"));

  if (::geteuid() == 0) {  // a link someone else made, to our own cache: refused
    fs::remove(cache_);
    fs::create_directory_symlink(target, cache_);
    ASSERT_EQ(::lchown(cache_.c_str(), 65534, 65534), 0);
    DiskCache foreign({cache_, 0});
    EXPECT_TRUE(foreign.fell_back());
    EXPECT_NE(foreign.warnings()[0].find("a symbolic link owned by another user (uid 65534)"), std::string::npos)
        << foreign.warnings()[0];
  }
}

// --- single flight across processes ----------------------------------------------------------

struct ChildReport {
  int lines = 0, compiled = 0, compiles = -1, lock_waits = -1, lock_timeouts = -1, corrupt = -1;
};

ChildReport report(const std::string& out) {
  ChildReport r;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("# ")) {
      std::sscanf(line.c_str(), "# compiles=%d lock_waits=%d lock_timeouts=%d corrupt=%d", &r.compiles, &r.lock_waits,
                  &r.lock_timeouts, &r.corrupt);
      continue;
    }
    ++r.lines;
    r.compiled += line.find(" compiled ") != std::string::npos;
  }
  return r;
}

TEST_F(DiskCacheHardening, EightProcessesCompileEachKernelOnce) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  constexpr int kProcesses = 8, kKernels = 5;
  fs::create_directories(cache_);
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcesses; ++i)  // all in the same order: they all miss the same key at once
    pids.push_back(spawn({KILN_JIT_CACHE_CHILD, cache_.string(), "500", std::to_string(kKernels)},
                         dir_ / ("out" + std::to_string(i))));
  int compiles = 0, compiled = 0, waits = 0;
  for (int i = 0; i < kProcesses; ++i) {
    ASSERT_EQ(wait(pids[i]), 0);
    const std::string out = read_all(dir_ / ("out" + std::to_string(i)));
    const ChildReport r = report(out);
    EXPECT_EQ(r.lines, kKernels) << out;
    EXPECT_EQ(r.lock_timeouts, 0) << out;
    EXPECT_EQ(r.corrupt, 0) << out;
    compiles += r.compiles;
    compiled += r.compiled;
    waits += r.lock_waits;
  }
  EXPECT_EQ(compiles, kKernels);  // before: each process compiled most of them
  EXPECT_EQ(compiled, kKernels);
  RecordProperty("lock_waits", waits);
  DiskCache disk({cache_, 0});
  EXPECT_EQ(disk.usage().entries, static_cast<std::uint64_t>(kKernels));
  EXPECT_TRUE(fs::is_empty(cache_ / "locks"));  // every lock file was removed after use
}

TEST_F(DiskCacheHardening, AKilledLockHolderFreesTheKeyAtOnce) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  fs::create_directories(cache_);
  const fs::path out = dir_ / "holder";
  const pid_t holder = spawn({KILN_JIT_CACHE_CHILD, "--hold-lock", cache_.string(), "3"}, out);
  ASSERT_TRUE(wait_for_line(out, "locked")) << read_all(out);
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait(holder), 128 + SIGKILL);

  KernelCacheOptions o = options();
  o.disk_lock_wait = std::chrono::minutes(2);  // reached only if the dead holder's lock stayed
  KernelCache cache(o);
  EXPECT_EQ(cache.compile(variant(3), Target::for_arch(90)).origin(), Origin::compiled);
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.disk_lock_waits, 0u);
  EXPECT_EQ(s.disk_lock_timeouts, 0u);
  EXPECT_TRUE(fs::is_empty(cache_ / "locks"));  // the dead holder's file was taken over and removed
}

TEST_F(DiskCacheHardening, ALiveLockHolderIsWaitedForOnlyUpToTheBound) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  fs::create_directories(cache_);
  const fs::path out = dir_ / "holder";
  spawn({KILN_JIT_CACHE_CHILD, "--hold-lock", cache_.string(), "4"}, out);
  ASSERT_TRUE(wait_for_line(out, "locked")) << read_all(out);
  KernelCacheOptions o = options();
  o.disk_lock_wait = std::chrono::milliseconds(200);
  KernelCache cache(o);
  EXPECT_EQ(cache.compile(variant(4), Target::for_arch(90)).origin(), Origin::compiled);
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.disk_lock_timeouts, 1u);
  EXPECT_TRUE(contains(s.warnings, "compiling here as well")) << joined(s.warnings);
  EXPECT_EQ(KernelCache(options()).compile(variant(4), Target::for_arch(90)).origin(), Origin::disk);
}

// No lock possible (here: locks/ replaced by a file after the folder was opened): compiles and
// stores as before, without cross-process single flight. (A new cache refuses such a folder.)
TEST_F(DiskCacheHardening, NoLockFolderStillCompiles) {
  KernelCache cache(options());
  fs::remove_all(cache_ / "locks");
  write_all(cache_ / "locks", "not a folder");
  EXPECT_EQ(cache.compile(variant(5), Target::for_arch(90)).origin(), Origin::compiled);
  EXPECT_EQ(cache.stats().disk_writes, 1u);
  EXPECT_EQ(KernelCache(options()).compile(variant(5), Target::for_arch(90)).origin(), Origin::compiled);
}

// --- the size cap ----------------------------------------------------------------------------

TEST_F(DiskCacheHardening, FourWritersKeepTheFolderUnderTheCap) {
  KILN_SKIP_UNDER_EMULATOR("the test starts another process of this build through kiln (not run_process), which QEMU's user mode cannot follow into without binfmt_misc");
  constexpr int kWriters = 4, kEntries = 60;
  constexpr std::size_t kImage = 4000;
  const std::uint64_t entry_bytes = kImage + 200;  // image, 88-byte header, other fields (upper bound)
  const std::uint64_t cap = 16 * entry_bytes;
  fs::create_directories(cache_);
  DiskCache sampler({cache_, cap});
  std::vector<pid_t> pids;
  for (int i = 0; i < kWriters; ++i)
    pids.push_back(spawn({KILN_JIT_CACHE_CHILD, "--fill", cache_.string(), std::to_string(cap),
                          std::to_string(kEntries), std::to_string(i + 1), std::to_string(kImage)},
                         dir_ / ("fill" + std::to_string(i))));
  std::uint64_t worst = 0, samples = 0;
  std::map<pid_t, int> exits;
  while (exits.size() < pids.size()) {
    worst = std::max(worst, sampler.usage().total_bytes());
    ++samples;
    for (pid_t pid : pids) {
      int status = 0;
      if (!exits.contains(pid) && ::waitpid(pid, &status, WNOHANG) == pid) exits[pid] = status;
    }
  }
  children_.clear();
  for (const auto& [pid, status] : exits) EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  RecordProperty("samples", static_cast<int>(samples));
  RecordProperty("worst_bytes", static_cast<int>(worst));
  // At any moment (usage() counts under the folder lock: one moment of the folder): the cap.
  EXPECT_LE(worst, cap) << samples << " samples";
  const DiskUsage end = sampler.usage();
  EXPECT_LE(end.total_bytes(), cap);
  EXPECT_GE(end.entries, 10u);
  EXPECT_EQ(sampler.prune(std::nullopt, /*verify=*/true).corrupt_removed, 0u);
}

TEST_F(DiskCacheHardening, AnEntryLargerThanTheCapIsNotWritten) {
  DiskCache disk({cache_, 1000});
  const Artifact big = fake(1, 5000);
  disk.store(big);
  EXPECT_EQ(disk.writes(), 0u);
  EXPECT_EQ(disk.oversized(), 1u);
  EXPECT_EQ(disk.usage().total_bytes(), 0u);
  ASSERT_EQ(disk.warnings().size(), 1u);
  EXPECT_NE(disk.warnings()[0].find(" bytes, larger than the cache's size cap of 1000 bytes: not written"),
            std::string::npos)
      << disk.warnings()[0];
  EXPECT_NE(disk.warnings()[0].find("is 5"), std::string::npos) << disk.warnings()[0];  // 5000 + header
  disk.store(fake(2, 500));  // a small one still fits
  EXPECT_EQ(disk.writes(), 1u);
}

// --- damage trials ---------------------------------------------------------------------------

// Real entries, damaged in every way we could think of, each loaded: never a crash, never a
// hit with other bytes than the original, every damaged entry counted and removed.
TEST_F(DiskCacheHardening, DamageTrialsNeverLoadADamagedEntry) {
  Program templated;
  templated.source = std::string(test_kernels::kTemplated) + "__global__ void w() { int unused; }\n";
  templated.name_expressions = {"fill<7>"};
  // Each trial writes and unlinks a file: on a busy ext4 disk an unlink of a file just written
  // took 2 ms (40 s for the trials), on tmpfs microseconds. Same code either way.
  fs::path scratch = dir_;
  if (std::error_code ec; fs::create_directory("/dev/shm/kiln-jit-damage-" + std::to_string(::getpid()), ec))
    scratch = "/dev/shm/kiln-jit-damage-" + std::to_string(::getpid());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{scratch == dir_ ? fs::path() : scratch};
  KernelCacheOptions o;
  o.disk.directory = scratch / "cache";
  std::vector<Artifact> originals;
  {
    KernelCache cache(o);
    originals.push_back(cache.compile(variant(6), Target::for_arch(90)));
    originals.push_back(cache.compile(templated, Target::for_arch(80, ImageKind::ptx)));
  }
  DiskCache disk({scratch / "cache", 1 << 20});
  std::uint64_t trials = 0, hits = 0;
  for (const Artifact& original : originals) {
    const fs::path entry = disk.entry_path(original.key());
    const std::string good = read_all(entry);
    ASSERT_GT(good.size(), 200u);
    auto trial = [&](const std::string& what, const std::function<void()>& damage) {
      write_all(entry, good);
      damage();
      const std::uint64_t corrupt = disk.corrupt_entries();
      const bool identical = fs::is_regular_file(fs::symlink_status(entry)) && read_all(entry) == good;
      const std::optional<Artifact> loaded = disk.load(original.key());
      ++trials;
      if (loaded) {
        ++hits;
        EXPECT_TRUE(identical) << what;  // only an undamaged entry may load
        EXPECT_EQ(loaded->image(), original.image()) << what;
        EXPECT_EQ(loaded->lowered_names(), original.lowered_names()) << what;
        EXPECT_EQ(loaded->log(), original.log()) << what;
        return;
      }
      EXPECT_FALSE(identical) << what;
      EXPECT_EQ(disk.corrupt_entries(), corrupt + 1) << what;
      EXPECT_FALSE(fs::exists(fs::symlink_status(entry))) << what;
    };
    auto with = [&](std::string bytes) { return [&entry, bytes] { write_all(entry, bytes); }; };
    for (std::size_t n = 0; n < good.size(); n += n < 128 ? 1 : 2)  // every length class, every header length
      trial("truncated to " + std::to_string(n), with(good.substr(0, n)));
    for (std::size_t i = 0; i < good.size(); ++i) {  // a bit of every byte, a different bit each time
      std::string b = good;
      b[i] = static_cast<char>(b[i] ^ (1 << (i % 8)));
      trial("bit flip at " + std::to_string(i), with(b));
    }
    for (std::size_t i = 0; i < 88 * 8; ++i) {  // every bit of the header
      std::string b = good;
      b[i / 8] = static_cast<char>(b[i / 8] ^ (1 << (i % 8)));
      trial("header bit " + std::to_string(i), with(b));
    }
    for (std::uint64_t length : {std::uint64_t{0}, std::uint64_t{1}, ~std::uint64_t{0}, std::uint64_t{1} << 62,
                                 static_cast<std::uint64_t>(good.size()), static_cast<std::uint64_t>(good.size() - 89)}) {
      std::string b = good;
      std::memcpy(b.data() + 48, &length, sizeof length);
      trial("payload length " + std::to_string(length), with(b));
    }
    trial("appended byte", with(good + "x"));
    trial("doubled", with(good + good));
    trial("zero-filled", with(std::string(good.size(), '\0')));
    trial("another entry's bytes", with(read_all(disk.entry_path(originals[&original == &originals[0] ? 1 : 0].key()))));
    trial("a FIFO", [&] { fs::remove(entry); ASSERT_EQ(::mkfifo(entry.c_str(), 0644), 0); });
    trial("a folder", [&] { fs::remove(entry); fs::create_directories(entry / "x"); });
    trial("a link to a good copy", [&] {
      write_all(scratch / "copy", good);
      fs::remove(entry);
      fs::create_symlink(scratch / "copy", entry);
    });
    trial("undamaged", [] {});
    EXPECT_EQ(read_all(scratch / "copy"), good);
  }
  RecordProperty("trials", static_cast<int>(trials));
  EXPECT_EQ(hits, originals.size());  // the undamaged control of each entry
  EXPECT_EQ(disk.corrupt_entries(), trials - hits);
  EXPECT_GT(trials, 5000u);
}

}  // namespace
