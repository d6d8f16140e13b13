// spawn(): real programs with descriptors mapped (a pipe at fd 3, a swap), every other descriptor
// closed, the environment, an empty signal mask, exec failures reported as errors naming the path
// and errno, the parent-death signal, RLIMIT_AS and no-ASLR, from many threads at once.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/personality.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "ipc_test_support.hpp"
#include "kiln/ipc/pipe.hpp"
#include "kiln/ipc/spawn.hpp"
#include "support/process.hpp"

namespace {

using namespace kiln::ipc;
using namespace kiln::ipc::testing;
using namespace std::chrono_literals;
using kiln::Errc;
namespace fs = std::filesystem;

TEST(Spawn, DescriptorMappedAtThreeReachesTheChild) {
  Pipe channel = Pipe::create();  // close-on-exec here; the mapping makes fd 3 inheritable there
  SpawnOptions o;
  o.fds = {{3, channel.write.get()}};
  const Output r = shell("echo through-fd-3 >&3; echo on-stdout", o);
  channel.write.reset();
  EXPECT_EQ(r.status, ExitStatus::exited_with(0));
  EXPECT_EQ(r.out, "on-stdout\n");
  EXPECT_EQ(read_all(channel.read), "through-fd-3\n");
}

TEST(Spawn, MappingsMaySwapDescriptors) {
  Pipe a = Pipe::create(), b = Pipe::create();
  // Put the write ends at 200 and 201, then ask for them the other way round.
  ASSERT_EQ(::dup3(a.write.get(), 200, O_CLOEXEC), 200);
  ASSERT_EQ(::dup3(b.write.get(), 201, O_CLOEXEC), 201);
  UniqueFd at200(200), at201(201);
  a.write.reset();
  b.write.reset();
  Pipe out = Pipe::create();
  SpawnOptions o;
  o.program = "/bin/bash";  // dash takes single-digit descriptors only
  o.arguments = {"-c", "echo to-201 >&201; echo to-200 >&200"};
  o.fds = {{201, 200}, {200, 201}};
  Output r;
  r.status = spawn(o).wait();
  at200.reset();
  at201.reset();
  EXPECT_EQ(r.status, ExitStatus::exited_with(0));
  EXPECT_EQ(read_all(a.read), "to-201\n");  // a's writer became the child's 201
  EXPECT_EQ(read_all(b.read), "to-200\n");
}

TEST(Spawn, EveryOtherDescriptorIsClosedInTheChild) {
  // Descriptors this process opened without close-on-exec (as careless libraries do), one below
  // the mapped target (closed one by one) and one above it (close_range).
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(null);
  UniqueFd low(::fcntl(null.get(), F_DUPFD, 100)), high(::fcntl(null.get(), F_DUPFD, 500));
  ASSERT_GE(low.get(), 100);
  ASSERT_LT(low.get(), 400);
  ASSERT_GE(high.get(), 500);
  EXPECT_FALSE(::fcntl(low.get(), F_GETFD) & FD_CLOEXEC);
  Pipe p = Pipe::create();
  SpawnOptions o;
  o.fds = {{400, p.write.get()}};
  const std::string l = std::to_string(low.get()), h = std::to_string(high.get());
  const Output r = shell("for fd in " + l + " 400 " + h +
                             "; do if [ -e /proc/$$/fd/$fd ]; then echo $fd open; else echo $fd closed; fi; done",
                         o);
  EXPECT_EQ(r.out, l + " closed\n400 open\n" + h + " closed\n");
}

TEST(Spawn, EnvironmentInheritedSetAndRemoved) {
  ASSERT_EQ(::setenv("KILN_IPC_INHERITED", "from-parent", 1), 0);
  ASSERT_EQ(::setenv("KILN_IPC_REMOVED", "should-go", 1), 0);
  SpawnOptions o;
  o.environment = {{"KILN_IPC_SET", "new value"}, {"KILN_IPC_REMOVED", std::nullopt}};
  Output r = shell("echo \"$KILN_IPC_INHERITED|$KILN_IPC_SET|${KILN_IPC_REMOVED-unset}\"", o);
  EXPECT_EQ(r.out, "from-parent|new value|unset\n");

  SpawnOptions clean;
  clean.inherit_environment = false;
  clean.environment = {{"ONLY", "this"}};
  r = shell("env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort", clean);
  EXPECT_EQ(r.out, "ONLY=this\n");
  ::unsetenv("KILN_IPC_INHERITED");
  ::unsetenv("KILN_IPC_REMOVED");
}

TEST(Spawn, ArgumentsArriveVerbatimAndArgv0CanBeChosen) {
  Pipe out = Pipe::create();
  SpawnOptions p;
  p.program = "/bin/sh";
  p.arguments = {"-c", "printf '%s|' \"$@\"", "zero", "with space", "", "quote'\"", "*"};
  p.fds = {{1, out.write.get()}};
  ChildProcess child = spawn(p);
  out.write.reset();
  EXPECT_EQ(read_all(out.read), "with space||quote'\"|*|");
  EXPECT_TRUE(child.wait().success());

  Pipe named = Pipe::create();
  SpawnOptions c;
  c.program = "/bin/cat";
  c.argv0 = "custom-name";
  c.arguments = {"/proc/self/cmdline"};
  c.fds = {{1, named.write.get()}};
  child = spawn(c);
  named.write.reset();
  EXPECT_EQ(read_all(named.read), std::string("custom-name\0/proc/self/cmdline\0", 31));
  EXPECT_TRUE(child.wait().success());
}

TEST(Spawn, SearchPathFindsProgramsLikeExecvp) {
  KILN_SKIP_UNDER_EMULATOR("QEMU's user mode runs the child itself: exec failures and the child's resource limits are QEMU's, not the kernel's");
  Pipe out = Pipe::create();
  SpawnOptions o;
  o.program = "sh";
  o.search_path = true;
  o.arguments = {"-c", "echo found"};
  o.fds = {{1, out.write.get()}};
  ChildProcess child = spawn(o);
  out.write.reset();
  EXPECT_EQ(read_all(out.read), "found\n");
  EXPECT_TRUE(child.wait().success());

  o.program = "kiln-no-such-program-anywhere";
  o.fds.clear();
  const kiln::Error e = error_of([&] { spawn(o); });
  EXPECT_TRUE(e.is(Errc::invalid_argument)) << e.what();
  EXPECT_TRUE(contains(e.detail(), "'kiln-no-such-program-anywhere' cannot be run (searched $PATH)")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "errno 2")) << e.what();
}

TEST(Spawn, ChildStartsWithNoSignalBlocked) {
  sigset_t block, previous;
  ::sigemptyset(&block);
  ::sigaddset(&block, SIGUSR1);
  ::sigaddset(&block, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &previous), 0);
  // grep itself, not a shell (a shell blocks signals of its own while it waits for a command).
  Pipe out = Pipe::create();
  SpawnOptions o;
  o.program = "/bin/grep";
  o.arguments = {"^SigBlk", "/proc/self/status"};
  o.fds = {{1, out.write.get()}};
  ChildProcess child = spawn(o);
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  out.write.reset();
  EXPECT_EQ(read_all(out.read), "SigBlk:\t0000000000000000\n");
  EXPECT_TRUE(child.wait().success());
}

TEST(Spawn, ExecFailureIsAnErrorNamingThePathAndErrno) {
  KILN_SKIP_UNDER_EMULATOR("QEMU's user mode runs the child itself: exec failures and the child's resource limits are QEMU's, not the kernel's");
  SpawnOptions o;
  o.program = "/nonexistent/kiln-ipc-program";
  kiln::Error e = error_of([&] { spawn(o); });
  EXPECT_TRUE(e.is(Errc::invalid_argument)) << e.what();
  EXPECT_TRUE(contains(e.detail(), "'/nonexistent/kiln-ipc-program' cannot be run: execve failed")) << e.what();
  EXPECT_TRUE(contains(e.detail(), "No such file or directory (errno 2)")) << e.what();

  o.program = "/";  // a directory
  e = error_of([&] { spawn(o); });
  EXPECT_TRUE(contains(e.detail(), "'/' cannot be run: execve failed: Permission denied (errno 13)")) << e.what();

  const fs::path plain = fs::temp_directory_path() / ("kiln-ipc-not-executable-" + std::to_string(::getpid()));
  std::ofstream(plain) << "just text\n";
  o.program = plain;
  e = error_of([&] { spawn(o); });
  fs::remove(plain);
  EXPECT_TRUE(contains(e.detail(), "errno 13")) << e.what();

  SpawnOptions bad_fd;
  bad_fd.program = "/bin/true";
  bad_fd.fds = {{3, 987}};
  e = error_of([&] { spawn(bad_fd); });
  EXPECT_TRUE(contains(e.detail(), "descriptor 987 (for the child's 3) is not open")) << e.what();
  bad_fd.fds = {{3, 1}, {3, 2}};
  e = error_of([&] { spawn(bad_fd); });
  EXPECT_TRUE(contains(e.detail(), "mapped twice")) << e.what();
}

TEST(Spawn, ParentDeathSignalComesWhenTheSpawningThreadEnds) {
  // Linux sends it when the thread that made the child exits: a short-lived thread shows it
  // without ending this test process.
  ChildProcess doomed, survivor;
  std::thread([&] {
    SpawnOptions o;
    o.program = "/bin/sleep";
    o.arguments = {"30"};
    o.parent_death_signal = SIGKILL;
    doomed = spawn(o);
    o.parent_death_signal.reset();
    survivor = spawn(o);
  }).join();
  const auto status = doomed.wait_for(30s);  // failure-only bound: it comes at once
  ASSERT_TRUE(status) << "the child outlived the thread that spawned it";
  EXPECT_EQ(*status, ExitStatus::killed_by(SIGKILL));
  EXPECT_FALSE(survivor.try_wait()) << "without a parent-death signal the child lives on";
  EXPECT_EQ(survivor.kill_and_wait(), ExitStatus::killed_by(SIGKILL));
}

TEST(Spawn, AddressSpaceLimitApplies) {
  KILN_SKIP_UNDER_EMULATOR("QEMU's user mode runs the child itself: exec failures and the child's resource limits are QEMU's, not the kernel's");
  // The children here are /bin/sh and dd, not kiln programs: no AddressSanitizer in them (whose
  // shadow memory would need terabytes of address space), so the limit is testable in every build.
  SpawnOptions o;
  o.address_space_limit = 96u << 20;
  Output r = shell("ulimit -v", o);
  EXPECT_EQ(r.out, std::to_string(96 * 1024) + "\n");
  // dd's 256 MiB block cannot be allocated under 96 MiB, and fits without the limit.
  const std::string dd = "dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null && echo allocated || echo refused";
  r = shell(dd, o);
  EXPECT_EQ(r.out, "refused\n");
  EXPECT_EQ(shell(dd).out, "allocated\n");
}

TEST(Spawn, DisableAslrSetsThePersonalityOfTheChildOnly) {
  auto persona = [](const Output& r) { return std::stoul(r.out, nullptr, 16); };
  SpawnOptions o;
  o.disable_aslr = true;
  const Output fixed = shell("cat /proc/self/personality", o);
  ASSERT_FALSE(fixed.out.empty());
  EXPECT_TRUE(persona(fixed) & ADDR_NO_RANDOMIZE) << fixed.out;
  EXPECT_FALSE(persona(shell("cat /proc/self/personality")) & ADDR_NO_RANDOMIZE);
  EXPECT_FALSE(::personality(0xffffffff) & ADDR_NO_RANDOMIZE) << "this process lost its ASLR";
}

TEST(Spawn, ManyThreadsSpawnAtOnce) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&ok, t] {
      for (int i = 0; i < 10; ++i)
        if (shell("exit " + std::to_string((t + i) % 5)).status == ExitStatus::exited_with((t + i) % 5)) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
}

}  // namespace
