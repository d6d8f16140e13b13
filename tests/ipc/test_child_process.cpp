// ChildProcess and ExitStatus: a real child (/bin/sh, /bin/sleep) waited for, polled, signalled,
// killed and reaped on destruction, with no zombie left in /proc; exit statuses in words.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>
#include <type_traits>

#include "ipc_test_support.hpp"
#include "kiln/ipc/child_process.hpp"
#include "kiln/ipc/spawn.hpp"

namespace {

using namespace kiln::ipc;
using namespace kiln::ipc::testing;
using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<ChildProcess> && std::is_nothrow_move_constructible_v<ChildProcess>);

SpawnOptions run(const char* program) {
  SpawnOptions o;
  o.program = program;
  return o;
}

ChildProcess sleeper(const char* seconds = "30") {
  SpawnOptions o;
  o.program = "/bin/sleep";
  o.arguments = {seconds};
  return spawn(o);
}

// No process of that pid, or one that is not our zombie (the pid was reused).
bool gone(pid_t pid) {
  const auto state = process_state(pid);
  return !state || *state != 'Z';
}

TEST(ExitStatus, DescribesExitsAndSignalsInWords) {
  EXPECT_EQ(ExitStatus::exited_with(0).describe(), "exit status 0");
  EXPECT_EQ(ExitStatus::exited_with(3).describe(), "exit status 3");
  EXPECT_EQ(ExitStatus::killed_by(SIGKILL).describe(), "signal 9 (Killed)");
  EXPECT_EQ(ExitStatus::killed_by(SIGABRT).describe(), "signal 6 (Aborted)");
  EXPECT_EQ(ExitStatus::from_wait_status(0x8b).describe(), "signal 11 (Segmentation fault, core dumped)");
  EXPECT_TRUE(contains(ExitStatus::unknown().describe(), "unknown"));
  EXPECT_TRUE(ExitStatus::exited_with(0).success());
  EXPECT_FALSE(ExitStatus::exited_with(1).success());
  EXPECT_EQ(ExitStatus::killed_by(SIGTERM).shell_code(), 128 + SIGTERM);
  EXPECT_EQ(ExitStatus::killed_by(SIGTERM).exit_code(), -1);
  EXPECT_EQ(ExitStatus::exited_with(4).signal(), 0);
}

TEST(ChildProcess, ExitCodesAndSignalsOfARealChild) {
  EXPECT_EQ(shell("exit 7").status, ExitStatus::exited_with(7));
  EXPECT_EQ(shell("exit 0").status, ExitStatus::exited_with(0));
  const ExitStatus segv = shell("kill -SEGV $$").status;
  EXPECT_TRUE(segv.signaled());
  EXPECT_EQ(segv.signal(), SIGSEGV);
  EXPECT_TRUE(contains(segv.describe(), "signal 11 (Segmentation fault")) << segv.describe();
}

TEST(ChildProcess, TryWaitWaitForKillAndWait) {
  ChildProcess child = sleeper();
  const pid_t pid = child.pid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(child.running());
  EXPECT_FALSE(child.try_wait());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(child.wait_for(50ms));  // still sleeping
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_TRUE(child.kill(SIGTERM));
  const ExitStatus s = child.wait();
  EXPECT_EQ(s, ExitStatus::killed_by(SIGTERM));
  EXPECT_EQ(s.describe(), "signal 15 (Terminated)");
  EXPECT_FALSE(child.running());
  EXPECT_EQ(child.pid(), 0);
  ASSERT_TRUE(child.status());
  EXPECT_EQ(*child.status(), s);
  EXPECT_EQ(child.wait(), s);          // the recorded status again
  EXPECT_FALSE(child.kill(SIGKILL));   // reaped: the pid is never signalled again
  EXPECT_TRUE(gone(pid));
}

TEST(ChildProcess, WaitForSeesAnExitBeforeItsTimeout) {
  ChildProcess child = spawn(run("/bin/true"));
  const auto start = std::chrono::steady_clock::now();
  const auto s = child.wait_for(60s);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, ExitStatus::exited_with(0));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);  // failure-only bound
}

TEST(ChildProcess, DestructionKillsAndReapsNoZombie) {
  pid_t pid = 0;
  {
    ChildProcess child = sleeper();
    pid = child.pid();
    ASSERT_EQ(process_state(pid).value_or('?') == 'Z', false);
  }
  EXPECT_TRUE(gone(pid)) << "pid " << pid << " is still in /proc as a zombie";
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);  // nothing left to reap: ECHILD
  EXPECT_EQ(errno, ECHILD);
}

TEST(ChildProcess, MoveAssignmentEndsTheChildItHeld) {
  ChildProcess a = sleeper();
  ChildProcess b = sleeper();
  const pid_t first = a.pid(), second = b.pid();
  a = std::move(b);
  EXPECT_TRUE(gone(first));  // killed and reaped by the assignment
  EXPECT_EQ(a.pid(), second);
  EXPECT_EQ(b.pid(), 0);     // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(b.running());
  ChildProcess& alias = a;
  a = std::move(alias);  // self-move: still owns the same child
  EXPECT_EQ(a.pid(), second);
  EXPECT_EQ(process_state(second).value_or('?') != 'Z', true);
  ChildProcess c(std::move(a));
  EXPECT_EQ(c.pid(), second);
  EXPECT_EQ(c.kill_and_wait(), ExitStatus::killed_by(SIGKILL));
  EXPECT_TRUE(gone(second));
}

TEST(ChildProcess, StopGivesGraceThenKills) {
  ChildProcess quick = spawn(run("/bin/true"));
  EXPECT_EQ(quick.stop(30s), ExitStatus::exited_with(0));
  ChildProcess stubborn = sleeper();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(stubborn.stop(100ms), ExitStatus::killed_by(SIGKILL));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
}

TEST(ChildProcess, AStatusReapedElsewhereReadsAsUnknown) {
  ChildProcess child = spawn(run("/bin/true"));
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid(), &status, 0), child.pid());  // someone else collects it
  const ExitStatus s = child.wait();
  EXPECT_EQ(s.kind(), ExitStatus::Kind::unknown);
  EXPECT_FALSE(child.running());
}

TEST(ChildProcess, EmptyOwner) {
  ChildProcess none;
  EXPECT_FALSE(none);
  EXPECT_FALSE(none.try_wait());
  EXPECT_FALSE(none.kill(SIGKILL));
  EXPECT_THROW(none.wait(), kiln::Error);
}

}  // namespace
