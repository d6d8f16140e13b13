// spawn(): the child is made as glibc's posix_spawn makes one, clone(CLONE_VM | CLONE_VFORK) on
// a private stack, so nothing of this process is copied and this thread sleeps until the child
// has exec'ed or failed. The child shares this process's memory until then: it reads the plan the
// parent built (every string, array and number), makes raw system calls only (no allocation, no
// lock, no errno-dependent library code beyond syscall()), and on failure writes the step and
// errno into the parent's `ChildFailure` before exiting, which the parent reads once clone returns.
#include "kiln/ipc/spawn.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "ipc/detail/errno_text.hpp"
#include "kiln/driver/error.hpp"

extern char** environ;

namespace kiln::ipc {
namespace {

enum class Step : int {
  none = 0,
  parent_death_signal,
  address_space_limit,
  personality,
  move_fd,   // dup of a mapped descriptor above every target
  map_fd,    // dup3 onto its target
  exec,
};

struct ChildFailure {
  Step step = Step::none;
  int error = 0;
  int fd = -1;
};

// Everything the child needs, built by the parent before clone.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const FdMapping* fds = nullptr;
  std::size_t fd_count = 0;
  int* moved = nullptr;    // scratch: where each mapped descriptor was moved to
  int first_free = 3;      // above 2 and every target: moved descriptors go here
  int close_limit = 0;     // for a kernel without close_range: close up to this
  int death_signal = 0;    // 0: none
  pid_t parent = 0;
  std::uint64_t address_space_limit = 0;
  bool disable_aslr = false;
  ChildFailure* failure = nullptr;
};

#define KILN_CHILD_CODE __attribute__((no_sanitize("address", "undefined"))) __attribute__((noinline))

KILN_CHILD_CODE [[noreturn]] void child_fail(const ChildPlan& plan, Step step, int fd) noexcept {
  // Volatile stores: the compiler must not assume this memory is private to the child.
  volatile ChildFailure* failure = plan.failure;
  failure->error = errno;
  failure->fd = fd;
  failure->step = step;
  ::syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

KILN_CHILD_CODE bool is_target(const ChildPlan& plan, int fd) noexcept {
  for (std::size_t i = 0; i < plan.fd_count; ++i)
    if (plan.fds[i].child_fd == fd) return true;
  return false;
}

KILN_CHILD_CODE int child_main(void* arg) noexcept {
  const ChildPlan& plan = *static_cast<const ChildPlan*>(arg);

  // Every signal is blocked (the parent blocked them before clone). A handler of this process
  // must never run here, in its memory: reset those to the default before unblocking below.
  // (sigaction is async-signal-safe; ignored signals stay ignored, as exec would keep them.)
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction current {};
    if (::sigaction(sig, nullptr, &current) != 0) continue;  // glibc's internal signals
    if (current.sa_handler == SIG_IGN || current.sa_handler == SIG_DFL) continue;
    struct sigaction reset {};
    reset.sa_handler = SIG_DFL;
    ::sigaction(sig, &reset, nullptr);
  }

  if (plan.death_signal != 0) {
    if (::syscall(SYS_prctl, PR_SET_PDEATHSIG, plan.death_signal, 0, 0, 0) != 0)
      child_fail(plan, Step::parent_death_signal, -1);
    // The parent may have gone before the prctl: then the signal would never come.
    if (::syscall(SYS_getppid) != plan.parent) ::syscall(SYS_exit_group, 127);
  }
  if (plan.address_space_limit > 0) {
    const rlimit limit{plan.address_space_limit, plan.address_space_limit};
    if (::syscall(SYS_prlimit64, 0, RLIMIT_AS, &limit, nullptr) != 0) child_fail(plan, Step::address_space_limit, -1);
  }
  if (plan.disable_aslr) {
    const long current = ::syscall(SYS_personality, 0xffffffffUL);
    if (current == -1 ||
        ::syscall(SYS_personality, static_cast<unsigned long>(current) | ADDR_NO_RANDOMIZE) == -1)
      child_fail(plan, Step::personality, -1);
  }

  // First move every mapped descriptor above all the targets, so that placing one cannot
  // overwrite another's source (a mapping may swap two descriptors); then place them.
  for (std::size_t i = 0; i < plan.fd_count; ++i) {
    const long fd = ::syscall(SYS_fcntl, plan.fds[i].parent_fd, F_DUPFD_CLOEXEC, plan.first_free);
    if (fd < 0) child_fail(plan, Step::move_fd, plan.fds[i].parent_fd);
    plan.moved[i] = static_cast<int>(fd);
  }
  for (std::size_t i = 0; i < plan.fd_count; ++i)
    if (::syscall(SYS_dup3, plan.moved[i], plan.fds[i].child_fd, 0) < 0)  // the copy has no close-on-exec
      child_fail(plan, Step::map_fd, plan.fds[i].child_fd);

  // Descriptors the host opened without close-on-exec are none of the child's business.
  for (int fd = 3; fd < plan.first_free; ++fd)
    if (!is_target(plan, fd)) ::syscall(SYS_close, fd);
  long closed = -1;
#ifdef SYS_close_range
  closed = ::syscall(SYS_close_range, plan.first_free, ~0U, 0);
#endif
  if (closed != 0)
    for (int fd = plan.first_free; fd < plan.close_limit; ++fd) ::syscall(SYS_close, fd);

  // The spawning thread's mask would be inherited; the program starts with none blocked.
  const std::uint64_t none = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
  ::syscall(SYS_execve, plan.path, plan.argv, plan.envp);
  child_fail(plan, Step::exec, -1);
}

bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// execvp's search, done here in the parent: the child only calls execve.
std::string resolve(const SpawnOptions& o) {
  const std::string program = o.program.string();
  if (!o.search_path || program.empty() || program.find('/') != std::string::npos) return program;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  if (auto it = o.environment.find("PATH"); it != o.environment.end()) {
    if (it->second) path = *it->second;
  } else if (const char* inherited = o.inherit_environment ? std::getenv("PATH") : nullptr) {
    path = inherited;
  }
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    std::string candidate = end > start ? path.substr(start, end - start) : std::string(".");
    candidate.append(1, '/').append(program);
    if (executable_file(candidate)) return candidate;
    start = end + 1;
  }
  return program;  // execve fails with ENOENT, and the error says where it was looked for
}

std::string step_text(const ChildFailure& f, const SpawnOptions& o) {
  switch (f.step) {
    case Step::parent_death_signal: return "prctl(PR_SET_PDEATHSIG)";
    case Step::address_space_limit:
      return "setrlimit(RLIMIT_AS, " + std::to_string(o.address_space_limit) + " bytes)";
    case Step::personality: return "personality(ADDR_NO_RANDOMIZE)";
    case Step::move_fd: return "dup of descriptor " + std::to_string(f.fd);
    case Step::map_fd: return "placing a descriptor at " + std::to_string(f.fd);
    case Step::exec:
    case Step::none: break;
  }
  return "execve";
}

bool cannot_run(int error) {
  switch (error) {
    case ENOENT: case EACCES: case ENOEXEC: case ENOTDIR: case ELOOP: case ENAMETOOLONG: case EISDIR:
    case ETXTBSY: case EPERM: case E2BIG: case ELIBBAD: return true;
    default: return false;
  }
}

class SignalsBlocked {
 public:
  SignalsBlocked() noexcept {
    sigset_t all;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous_);
  }
  ~SignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t previous_;
};

constexpr std::size_t kChildStackBytes = 64 << 10;

}  // namespace

ChildProcess spawn(const SpawnOptions& o) {
  const std::string path = resolve(o);
  const std::string shown = "'" + o.program.string() + "'";
  if (path.empty()) throw Error(Errc::invalid_argument, "ipc: spawn() without a program");

  // argv and envp, owned here and only read by the child.
  std::vector<std::string> args;
  args.push_back(o.argv0.empty() ? o.program.string() : o.argv0);
  args.insert(args.end(), o.arguments.begin(), o.arguments.end());
  std::vector<std::string> env;
  if (o.inherit_environment)
    for (char** e = environ; e && *e; ++e) {
      const std::string_view entry(*e);
      if (!o.environment.contains(std::string(entry.substr(0, entry.find('='))))) env.emplace_back(entry);
    }
  for (const auto& [name, value] : o.environment)
    if (value) env.push_back(name + "=" + *value);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  ChildPlan plan;
  std::set<int> targets;
  for (const FdMapping& m : o.fds) {
    if (m.child_fd < 0 || !targets.insert(m.child_fd).second)
      throw Error(Errc::invalid_argument, "ipc: spawn of " + shown + ": descriptor " + std::to_string(m.child_fd) +
                                              " is mapped twice or is negative");
    if (::fcntl(m.parent_fd, F_GETFD) < 0)
      throw Error(Errc::invalid_argument, "ipc: spawn of " + shown + ": descriptor " + std::to_string(m.parent_fd) +
                                              " (for the child's " + std::to_string(m.child_fd) + ") is not open");
    plan.first_free = std::max(plan.first_free, m.child_fd + 1);
  }
  std::vector<int> moved(o.fds.size(), -1);
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  plan.close_limit = static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 16));
  plan.path = path.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.fds = o.fds.data();
  plan.fd_count = o.fds.size();
  plan.moved = moved.data();
  plan.death_signal = o.parent_death_signal.value_or(0);
  plan.parent = ::getpid();
  plan.address_space_limit = o.address_space_limit;
  plan.disable_aslr = o.disable_aslr;
  ChildFailure failure;
  plan.failure = &failure;

  void* stack = ::mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED)
    throw Error(Errc::internal, "ipc: spawn of " + shown + ": no memory for the child's stack: " + detail::errno_text(errno));
  pid_t pid;
  int clone_error = 0;
  {
    SignalsBlocked blocked;
    pid = ::clone(child_main, static_cast<char*>(stack) + kChildStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
    clone_error = errno;
  }
  ::munmap(stack, kChildStackBytes);
  if (pid < 0)
    throw Error(Errc::internal, "ipc: cannot start " + shown + ": clone failed: " + detail::errno_text(clone_error));

  ChildProcess child(pid);
  // Written by the child, if at all (clone was given its address, so the compiler re-reads it).
  const ChildFailure seen = failure;
  if (seen.step == Step::none) return child;
  child.wait();  // it exited with 127 right after writing the failure
  const std::string step = step_text(seen, o);
  if (seen.step == Step::exec) {
    std::string where;
    if (o.search_path && path.find('/') == std::string::npos) where = " (searched $PATH)";
    throw Error(cannot_run(seen.error) ? Errc::invalid_argument : Errc::internal,
                shown + " cannot be run" + where + ": execve failed: " + detail::errno_text(seen.error));
  }
  throw Error(Errc::internal, "ipc: cannot start " + shown + ": " + step + " failed in the child: " +
                                  detail::errno_text(seen.error));
}

}  // namespace kiln::ipc
