#include "kiln/jit/compile_worker.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "jit/detail/worker_protocol.hpp"
#include "kiln/driver/nvrtc_api.hpp"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kWorkerFd = 3;  // where the worker finds its end of the socket

// AddressSanitizer reserves terabytes of address space for its shadow memory at start-up: under it
// an address-space limit would stop the worker before main. Sanitized builds run without one.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSpaceLimits = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSpaceLimits = false;
#else
constexpr bool kAddressSpaceLimits = true;
#endif
#else
constexpr bool kAddressSpaceLimits = true;
#endif
constexpr auto kExitGrace = 1s;

std::string errno_text(int err) { return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")"; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "signal " + std::to_string(sig) + " (" + (name ? name : "unknown") + ")";
  }
  return "status " + std::to_string(status);
}

std::string milliseconds(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// Runs in the child between fork and exec: only async-signal-safe calls, no allocation.
[[noreturn]] void exec_worker(int fd, bool disable_aslr, std::uint64_t memory_limit, const char* path,
                              char* const* argv) noexcept {
  if (memory_limit > 0 && kAddressSpaceLimits) {
    const rlimit limit{memory_limit, memory_limit};
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(125);
  }
  if (disable_aslr) {
    const int current = ::personality(0xffffffff);
    if (current != -1) ::personality(static_cast<unsigned long>(current) | ADDR_NO_RANDOMIZE);
  }
  if (fd == kWorkerFd) {
    ::fcntl(fd, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
  } else if (::dup2(fd, kWorkerFd) < 0) {
    ::_exit(126);
  }
  // Descriptors the host program opened without close-on-exec are none of the worker's business.
  ::syscall(SYS_close_range, kWorkerFd + 1, ~0u, 0);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the forking thread's mask would be inherited
  ::execv(path, argv);
  ::_exit(127);
}

}  // namespace

bool CompileWorker::memory_limits_apply() noexcept { return kAddressSpaceLimits; }

fs::path CompileWorker::default_executable() {
  std::vector<std::string> tried;
  auto usable = [&](const fs::path& p, const char* where) {
    if (!p.empty() && ::access(p.c_str(), X_OK) == 0) return true;
    tried.push_back(std::string(where) + " '" + p.string() + "'");
    return false;
  };
  if (const char* env = std::getenv("KILN_COMPILE_WORKER"); env && *env) {
    // Exclusive, like KILN_NVRTC_PATH: a wrong path is an error, not a silent fallback.
    if (usable(env, "$KILN_COMPILE_WORKER")) return env;
    throw Error(Errc::invalid_argument,
                "$KILN_COMPILE_WORKER names '" + std::string(env) + "', which is not an executable file");
  }
  if (usable(KILN_COMPILE_WORKER_BUILD_PATH, "the build tree's")) return KILN_COMPILE_WORKER_BUILD_PATH;
  if (usable(KILN_COMPILE_WORKER_INSTALL_PATH, "the installed")) return KILN_COMPILE_WORKER_INSTALL_PATH;
  std::string list;
  for (const auto& t : tried) list += (list.empty() ? "" : ", ") + t;
  throw Error(Errc::invalid_argument, "no kiln-compile-worker executable found (tried " + list +
                                          "); set $KILN_COMPILE_WORKER or CompileWorkerOptions::executable");
}

CompileWorker::CompileWorker(CompileWorkerOptions options) : options_(std::move(options)) {
  executable_ = options_.executable.empty() ? default_executable() : options_.executable;
  if (::access(executable_.c_str(), X_OK) != 0)
    throw Error(Errc::invalid_argument,
                "compile worker executable '" + executable_.string() + "' cannot be run: " + errno_text(errno));
  std::lock_guard lock(mutex_);
  start_locked();
}

CompileWorker::~CompileWorker() {
  std::lock_guard lock(mutex_);
  stop_locked(false);
}

void CompileWorker::start_locked() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(Errc::internal, "socketpair for the compile worker failed: " + errno_text(errno));

  // Everything the child needs is built before fork: it may only make async-signal-safe calls.
  std::vector<std::string> args{executable_.string()};
  args.insert(args.end(), options_.arguments.begin(), options_.arguments.end());
  args.insert(args.end(), {"--fd", std::to_string(kWorkerFd)});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw Error(Errc::internal, "fork for the compile worker failed: " + errno_text(err));
  }
  if (pid == 0) exec_worker(sv[1], options_.disable_aslr, options_.memory_limit_bytes, argv[0], argv.data());
  ::close(sv[1]);
  socket_ = sv[0];
  pid_.store(pid, std::memory_order_relaxed);
  starts_.fetch_add(1, std::memory_order_relaxed);

  auto fail = [&](Errc code, std::string why) {
    stop_locked(true);
    return Error(code, "compile worker '" + executable_.string() + "' (pid " + std::to_string(pid) + ") " + why);
  };
  detail::Frame hello_frame;
  const auto status = detail::read_frame(socket_, Clock::now() + options_.start_timeout, hello_frame);
  if (status == detail::ReadStatus::timed_out)
    throw fail(Errc::timeout, "did not report ready within " + milliseconds(options_.start_timeout));
  if (status == detail::ReadStatus::malformed)
    throw fail(Errc::internal, "sent something other than a kiln compile worker's greeting");
  if (status != detail::ReadStatus::ok) {
    const std::string how = wait_description_locked();
    std::string limit;
    if (options_.memory_limit_bytes > 0)
      limit = "; its memory limit is " + std::to_string(options_.memory_limit_bytes >> 20) + " MiB (memory_limit_bytes), "
              "too small to load NVRTC?";
    throw fail(Errc::internal, "ended before reporting ready (" + how + "; 127: it could not be executed" + limit + ")");
  }
  const auto hello = hello_frame.type == detail::FrameType::hello ? detail::decode_hello(hello_frame.payload)
                                                                  : std::nullopt;
  if (!hello) throw fail(Errc::internal, "sent a malformed greeting: is it a kiln compile worker?");
  if (hello->protocol_version != detail::kWorkerProtocolVersion)
    throw fail(Errc::version_mismatch, "speaks protocol version " + std::to_string(hello->protocol_version) +
                                           ", this kiln speaks " + std::to_string(detail::kWorkerProtocolVersion) +
                                           ": it belongs to another kiln build");
  if (options_.disable_aslr && !hello->aslr_disabled)
    throw fail(Errc::internal,
               "runs with address-space randomisation on although disable_aslr was asked: "
               "personality(ADDR_NO_RANDOMIZE) did not take effect (a seccomp profile may forbid it)");
  aslr_disabled_.store(hello->aslr_disabled, std::memory_order_relaxed);
}

std::optional<std::string> CompileWorker::reap_if_exited_locked() noexcept {
  const pid_t pid = pid_.load(std::memory_order_relaxed);
  if (pid == 0) return std::string("not running");
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;  // still running
  ::close(socket_);
  socket_ = -1;
  pid_.store(0, std::memory_order_relaxed);
  // ECHILD: the host ignores SIGCHLD, so the kernel reaped it already.
  return r == pid ? describe_status(status) : std::string("already reaped");
}

std::string CompileWorker::wait_description_locked() noexcept {
  // The socket closed: the process is exiting or gone. Give it a moment to finish dying.
  const auto until = Clock::now() + kExitGrace;
  for (;;) {
    if (auto how = reap_if_exited_locked()) return *how;
    if (Clock::now() >= until) break;
    std::this_thread::sleep_for(1ms);
  }
  stop_locked(true);
  return "closed its socket and was killed";
}

void CompileWorker::stop_locked(bool kill_now) noexcept {
  const pid_t pid = pid_.load(std::memory_order_relaxed);
  if (socket_ >= 0) {
    ::close(socket_);  // an idle worker reads end-of-file and exits
    socket_ = -1;
  }
  if (pid == 0) return;
  int status = 0;
  if (!kill_now) {
    const auto until = Clock::now() + kExitGrace;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (Clock::now() >= until) {
        kill_now = true;
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
  }
  if (kill_now) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_.store(0, std::memory_order_relaxed);
}

CompileResult CompileWorker::compile(const Program& program, const Target& target, const CompileSettings& settings,
                                     std::optional<std::chrono::milliseconds> time_limit) {
  const std::string request = detail::encode_request({program, target, settings});
  std::lock_guard lock(mutex_);
  if (pid_.load(std::memory_order_relaxed) == 0 || reap_if_exited_locked()) start_locked();

  const std::string what = "program '" + program.name + "' for " + target.arch_name();
  const pid_t pid = pid_.load(std::memory_order_relaxed);
  const std::string who = "compile worker (pid " + std::to_string(pid) + ")";
  auto died = [&] {
    deaths_.fetch_add(1, std::memory_order_relaxed);
    const std::string how = wait_description_locked();
    return Error(Errc::internal, who + " died of " + how + " while compiling " + what +
                                     "; the next compile starts a new worker");
  };

  struct Busy {  // compiling() is true exactly while a request is with the worker
    std::atomic<bool>& flag;
    ~Busy() { flag.store(false, std::memory_order_relaxed); }
  } busy{compiling_};
  const auto deadline = time_limit ? std::optional(Clock::now() + *time_limit) : std::nullopt;
  if (!detail::write_frame(socket_, detail::FrameType::compile_request, request)) throw died();
  compiling_.store(true, std::memory_order_relaxed);

  detail::Frame reply_frame;
  switch (detail::read_frame(socket_, deadline, reply_frame)) {
    case detail::ReadStatus::ok: break;
    case detail::ReadStatus::timed_out:
      kills_.fetch_add(1, std::memory_order_relaxed);
      stop_locked(true);  // NVRTC cannot be interrupted: end the process
      throw Error(Errc::timeout, what + " was still compiling after the time limit of " +
                                     milliseconds(*time_limit) + "; " + who +
                                     " was killed and the next compile starts a new one");
    case detail::ReadStatus::closed: throw died();
    case detail::ReadStatus::malformed:
      stop_locked(true);
      throw Error(Errc::internal, who + " sent a malformed reply while compiling " + what + "; it was killed");
  }
  auto reply = reply_frame.type == detail::FrameType::compile_response ? detail::decode_reply(reply_frame.payload)
                                                                       : std::nullopt;
  if (!reply) {
    stop_locked(true);
    throw Error(Errc::internal, who + " sent an undecodable reply while compiling " + what + "; it was killed");
  }
  if (reply->error) {
    if (options_.memory_limit_bytes > 0 && reply->error->is(Errc::nvrtc_not_found))
      throw Error(Errc::nvrtc_not_found, reply->error->detail() + " (in " + who + ", whose memory limit is " +
                                             std::to_string(options_.memory_limit_bytes >> 20) +
                                             " MiB: memory_limit_bytes may be too small to load NVRTC)");
    throw *reply->error;
  }
  return std::move(*reply->result);
}

int serve_compile_worker(int fd) noexcept {
  try {
    detail::WorkerHello hello;
    hello.pid = static_cast<std::int32_t>(::getpid());
    const int persona = ::personality(0xffffffff);
    hello.aslr_disabled = persona != -1 && (persona & ADDR_NO_RANDOMIZE) != 0;
    try {
      // Load NVRTC and let it start up before reporting ready: a compile's time limit then counts
      // the compile alone (NVRTC's first compile in a process costs about as much as a small kernel).
      const auto& api = driver::nvrtc();
      nvrtcProgram warm = nullptr;
      if (api.nvrtcCreateProgram(&warm, "__global__ void kiln_warm_up() {}", "warm_up.cu", 0, nullptr, nullptr) ==
          NVRTC_SUCCESS) {
        api.nvrtcCompileProgram(warm, 0, nullptr);
        api.nvrtcDestroyProgram(&warm);
      }
    } catch (const Error&) {
      // Reported with the first compile, exactly as an in-process compile would report it.
    }
    if (!detail::write_frame(fd, detail::FrameType::hello, detail::encode_hello(hello))) return 1;
    for (;;) {
      detail::Frame frame;
      const auto status = detail::read_frame(fd, std::nullopt, frame);
      if (status == detail::ReadStatus::closed) {
        // The owner is done with us. NVRTC deletes the automatic PCH files it created when the
        // process exits normally; a no-ASLR worker ends without exit handlers to keep them for
        // the next no-ASLR worker (to any other process they are useless: let NVRTC clean up).
        if (!hello.aslr_disabled) return 0;
        std::fflush(nullptr);
        ::_exit(0);
      }
      if (status != detail::ReadStatus::ok || frame.type != detail::FrameType::compile_request) return 2;
      std::string reply;
      try {
        auto request = detail::decode_request(frame.payload);
        if (!request) throw Error(Errc::internal, "the compile worker received a malformed request");
        reply = detail::encode_result(compile(request->program, request->target, request->settings));
      } catch (const Error& e) {
        reply = detail::encode_error(e);
      } catch (const std::exception& e) {
        reply = detail::encode_error(Error(Errc::internal, std::string("compile worker: ") + e.what()));
      }
      if (!detail::write_frame(fd, detail::FrameType::compile_response, reply)) return 1;
    }
  } catch (...) {
    return 3;  // out of memory while building a reply: the owner sees the socket close
  }
}

}  // namespace kiln::jit
