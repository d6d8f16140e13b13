#include "kiln/jit/compile_worker.hpp"

#include <sys/personality.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "jit/detail/compile_worker_protocol.hpp"
#include "kiln/driver/nvrtc_api.hpp"
#include "kiln/ipc/socket_pair.hpp"
#include "kiln/ipc/spawn.hpp"

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

std::string milliseconds(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

using detail::CompileWorkerFrame;
using Failure = ipc::ChannelError::Failure;

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
  std::lock_guard lock(mutex_);
  start_locked();
}

CompileWorker::~CompileWorker() {
  std::lock_guard lock(mutex_);
  stop_locked(false);
}

void CompileWorker::start_locked() {
  std::string limit;
  if (options_.memory_limit_bytes > 0)
    limit = "; its memory limit is " + std::to_string(options_.memory_limit_bytes >> 20) + " MiB (memory_limit_bytes), "
            "too small to load NVRTC?";

  ipc::SocketPair sockets = ipc::SocketPair::create();
  ipc::SpawnOptions spawn;
  spawn.program = executable_;
  spawn.arguments = options_.arguments;
  spawn.arguments.insert(spawn.arguments.end(), {"--fd", std::to_string(kWorkerFd)});
  spawn.fds = {{kWorkerFd, sockets.second.get()}};
  spawn.disable_aslr = options_.disable_aslr;
  if (kAddressSpaceLimits) spawn.address_space_limit = options_.memory_limit_bytes;
  try {
    process_ = ipc::spawn(spawn);
  } catch (const Error& e) {
    const Errc code = e.is(Errc::invalid_argument) ? Errc::invalid_argument : Errc::internal;
    throw Error(code, "compile worker executable " + e.detail() + (limit.empty() ? "" : " (" + limit.substr(2) + ")"));
  }
  sockets.second.reset();  // the worker holds its end now
  const pid_t pid = process_.pid();
  const std::string who = "compile worker '" + executable_.string() + "' (pid " + std::to_string(pid) + ")";
  channel_ = ipc::Channel(std::move(sockets.first), detail::compile_worker_channel(who));
  pid_.store(pid, std::memory_order_relaxed);
  starts_.fetch_add(1, std::memory_order_relaxed);

  auto fail = [&](Errc code, std::string why) {
    stop_locked(true);
    return Error(code, who + " " + why);
  };
  ipc::Received hello_frame;
  try {
    hello_frame = channel_.receive(ipc::Channel::deadline_after(options_.start_timeout));
  } catch (const ipc::ChannelError& e) {
    if (e.failure() != Failure::truncated)  // a cut-off frame: it is dying, ask how below
      throw fail(Errc::internal, "sent something other than a kiln compile worker's greeting (" + e.detail() + ")");
  }
  if (hello_frame.status == ipc::ReceiveStatus::timed_out)
    throw fail(Errc::timeout, "did not report ready within " + milliseconds(options_.start_timeout));
  if (!hello_frame) {
    const std::string how = wait_description_locked();
    throw fail(Errc::internal, "ended before reporting ready (" + how + limit + ")");
  }
  const auto hello = hello_frame.frame.type_as<CompileWorkerFrame>() == CompileWorkerFrame::hello
                         ? detail::decode_hello(hello_frame.frame.payload)
                         : std::nullopt;
  if (!hello) throw fail(Errc::internal, "sent a malformed greeting: is it a kiln compile worker?");
  if (hello->protocol_version != detail::kCompileWorkerProtocolVersion)
    throw fail(Errc::version_mismatch, "speaks protocol version " + std::to_string(hello->protocol_version) +
                                           ", this kiln speaks " +
                                           std::to_string(detail::kCompileWorkerProtocolVersion) +
                                           ": it belongs to another kiln build");
  if (options_.disable_aslr && !hello->aslr_disabled)
    throw fail(Errc::internal,
               "runs with address-space randomisation on although disable_aslr was asked: "
               "personality(ADDR_NO_RANDOMIZE) did not take effect (a seccomp profile may forbid it)");
  aslr_disabled_.store(hello->aslr_disabled, std::memory_order_relaxed);
}

std::optional<std::string> CompileWorker::reap_if_exited_locked() noexcept {
  if (!process_.running()) return std::string("not running");
  const auto status = process_.try_wait();
  if (!status) return std::nullopt;  // still running
  channel_.close();
  pid_.store(0, std::memory_order_relaxed);
  return status->describe();
}

std::string CompileWorker::wait_description_locked() noexcept {
  // The socket closed: the process is exiting or gone. Give it a moment to finish dying.
  try {
    if (const auto status = process_.wait_for(kExitGrace)) {
      channel_.close();
      pid_.store(0, std::memory_order_relaxed);
      return status->describe();
    }
  } catch (...) {
  }
  stop_locked(true);
  return "closed its socket and was killed";
}

void CompileWorker::stop_locked(bool kill_now) noexcept {
  channel_.close();  // an idle worker reads end-of-file and exits
  if (kill_now)
    process_.kill_and_wait();
  else
    process_.stop(kExitGrace);
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
  const auto deadline = time_limit ? ipc::Channel::deadline_after(*time_limit) : ipc::kForever;
  try {
    channel_.send(CompileWorkerFrame::compile_request, request);
  } catch (const ipc::ChannelError& e) {
    if (e.failure() == Failure::oversized)  // nothing was sent: the worker is fine
      throw Error(Errc::invalid_argument, what + " is too large for a compile worker: " + e.detail());
    throw died();
  }
  compiling_.store(true, std::memory_order_relaxed);

  ipc::Received reply_frame;
  try {
    reply_frame = channel_.receive(deadline);
  } catch (const ipc::ChannelError& e) {
    if (e.failure() == Failure::truncated) throw died();  // it died in the middle of its reply
    stop_locked(true);
    throw Error(Errc::internal, who + " sent a malformed reply while compiling " + what + " (" + e.detail() +
                                    "); it was killed");
  }
  switch (reply_frame.status) {
    case ipc::ReceiveStatus::frame: break;
    case ipc::ReceiveStatus::timed_out:
      kills_.fetch_add(1, std::memory_order_relaxed);
      stop_locked(true);  // NVRTC cannot be interrupted: end the process
      throw Error(Errc::timeout, what + " was still compiling after the time limit of " +
                                     milliseconds(*time_limit) + "; " + who +
                                     " was killed and the next compile starts a new one");
    case ipc::ReceiveStatus::closed: throw died();
  }
  auto reply = reply_frame.frame.type_as<CompileWorkerFrame>() == CompileWorkerFrame::compile_response
                   ? detail::decode_reply(reply_frame.frame.payload)
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
    ipc::Channel channel(ipc::UniqueFd(fd), detail::compile_worker_channel(
                                                "the compile worker's owner (pid " + std::to_string(::getppid()) + ")"));
    detail::CompileWorkerHello hello;
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
    try {
      channel.send(CompileWorkerFrame::hello, detail::encode_hello(hello));
    } catch (const ipc::ChannelError&) {
      return 1;
    }
    for (;;) {
      ipc::Received frame;
      try {
        frame = channel.receive();
      } catch (const ipc::ChannelError&) {
        return 2;
      }
      if (frame.status == ipc::ReceiveStatus::closed) {
        // The owner is done with us. NVRTC deletes the automatic PCH files it created when the
        // process exits normally; a no-ASLR worker ends without exit handlers to keep them for
        // the next no-ASLR worker (to any other process they are useless: let NVRTC clean up).
        if (!hello.aslr_disabled) return 0;
        std::fflush(nullptr);
        ::_exit(0);
      }
      if (frame.frame.type_as<CompileWorkerFrame>() != CompileWorkerFrame::compile_request) return 2;
      std::string reply;
      try {
        auto request = detail::decode_request(frame.frame.payload);
        if (!request) throw Error(Errc::internal, "the compile worker received a malformed request");
        reply = detail::encode_result(compile(request->program, request->target, request->settings));
      } catch (const Error& e) {
        reply = detail::encode_error(e);
      } catch (const std::exception& e) {
        reply = detail::encode_error(Error(Errc::internal, std::string("compile worker: ") + e.what()));
      }
      try {
        channel.send(CompileWorkerFrame::compile_response, reply);
      } catch (const ipc::ChannelError&) {
        return 1;
      }
    }
  } catch (...) {
    return 3;  // out of memory while building a reply: the owner sees the socket close
  }
}

}  // namespace kiln::jit
