#include "kiln/service/ipc_socket_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/service_core.hpp"
#include "detail/error_body.hpp"
#include "kiln/driver/error.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/service/token_store.hpp"

namespace kiln::service {

using json = nlohmann::json;

namespace {

json buffer_json(const core::BufferInfo& b) {
  return {{"id", b.id},          {"device", b.device},     {"bytes", b.bytes},
          {"tag", b.tag},        {"imported", b.imported}, {"owner_pid", b.owner_pid}};
}

// One request's reply: its JSON text, the descriptor to send with it (an export's), and for the
// metrics its error code ("ok" for none).
struct Reply {
  Reply(std::string text, ipc::UniqueFd descriptor = {}) : body(std::move(text)), fd(std::move(descriptor)) {}  // NOLINT
  std::string body;
  ipc::UniqueFd fd;
  std::string_view code = "ok";  // a literal or core::api_error_code's: static
};

// HTTP's error body for `code`.
Reply refusal(std::string_view code, std::string_view message, const json& extra = nullptr) {
  Reply r(detail::error_body(code, message, extra));
  r.code = code;
  return r;
}

// The same body HTTP answers for a core error (its code, message, field, rule, hint, details).
Reply error_reply(const core::ServiceError& e) {
  const json extra = core::error_members(e);
  return refusal(core::api_error_code(e.kind), e.message, extra.empty() ? json(nullptr) : extra);
}

Reply bad_request(std::string_view message, std::string_view field = {}) {
  return refusal("bad_request", message, field.empty() ? json(nullptr) : json{{"field", field}});
}

struct Peer {
  pid_t pid = 0;
  uid_t uid = 0;
};

Peer peer_of(int fd) {
  ucred cred{};
  socklen_t size = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return {};
  return {cred.pid, cred.uid};
}

sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    throw Error(Errc::invalid_argument, "ipc_socket '" + path + "': a Unix socket path must have 1 to " +
                                            std::to_string(sizeof a.sun_path - 1) + " characters");
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

// Whether a kilnd (or anything) still serves at `path`: a socket file nobody listens on is what a
// kilnd that died leaves behind.
bool someone_listens(const sockaddr_un& a) {
  ipc::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
}

}  // namespace

struct IpcSocketServer::Impl {
  core::ServiceCore& core;
  const TokenStore& tokens;
  std::string path;
  Log log;
  ipc::UniqueFd listener;
  ipc::UniqueFd wake_read, wake_write;  // stop() wakes the accept loop through this pipe
  std::jthread acceptor;

  struct Connection {
    int fd = -1;  // the Channel's socket, for stop() to shut down
    bool done = false;
    std::jthread thread;
  };
  std::mutex connections_mutex;
  std::list<Connection> connections;
  bool stopping = false;

  Impl(core::ServiceCore& c, const TokenStore& t, std::string p, Log l)
      : core(c), tokens(t), path(std::move(p)), log(std::move(l)) {}

  static constexpr std::string_view kOps[] = {"hello", "export_buffer", "import_buffer"};

  // `op` becomes the request's op when it is one of kOps (the metrics' label; "unknown" otherwise).
  Reply handle(ipc::Frame& frame, const Peer& peer, std::string_view& op_label) {
    json request;
    try {
      request = json::parse(frame.payload);
    } catch (const json::exception& e) {
      return bad_request(std::string("the request is not JSON: ") + e.what());
    }
    if (!request.is_object() || !request.contains("op") || !request["op"].is_string())
      return bad_request("a request is a JSON object with \"op\" (a string)", "op");
    const std::string op = request["op"].get<std::string>();
    for (std::string_view known : kOps)
      if (op == known) op_label = known;
    if (op == "hello") {
      if (!frame.fds.empty()) return bad_request("hello takes no file descriptor", "fd");
      json ops = json::array();
      for (std::string_view known : kOps) ops.push_back(known);
      return {detail::json_text({{"protocol", kProtocolVersion}, {"ops", ops}})};
    }
    if (!request.contains("token") || !request["token"].is_string())
      return refusal("unauthorized", "\"token\": a bearer token (a string) is needed for " + op, {{"field", "token"}});
    const std::optional<std::string> tenant = tokens.tenant_for(request["token"].get<std::string>());
    if (!tenant) {
      log.warn("auth_refused", "unknown bearer token", {{"protocol", "ipc"}, {"pid", static_cast<std::int64_t>(peer.pid)}});
      return refusal("unauthorized", "unknown bearer token", {{"field", "token"}});
    }
    const LogContext context({}, *tenant);
    auto number = [&](const char* name) -> std::optional<std::uint64_t> {
      if (!request.contains(name) || !request[name].is_number_unsigned()) return std::nullopt;
      return request[name].get<std::uint64_t>();
    };
    if (op == "export_buffer") {
      if (!frame.fds.empty()) return bad_request("export_buffer takes no file descriptor", "fd");
      const auto id = number("buffer");
      if (!id) return bad_request("\"buffer\": the id of one of the tenant's buffers", "buffer");
      core::Result<core::ExportedBuffer> exported = core.export_buffer(*tenant, *id);
      if (!exported) return error_reply(exported.error());
      core::ExportedBuffer& e = exported.value();
      return {detail::json_text({{"buffer", buffer_json(e.buffer)},
                                 {"mapped_bytes", e.mapped_bytes},
                                 {"device_uuid", e.device_uuid}}),
              std::move(e.fd)};
    }
    if (op == "import_buffer") {
      if (frame.fds.size() != 1)
        return bad_request("import_buffer takes exactly one file descriptor (the allocation's, from "
                            "cuMemExportToShareableHandle), got " + std::to_string(frame.fds.size()),
                            "fd");
      const auto bytes = number("bytes");
      if (!bytes) return bad_request("\"bytes\": the allocation's size (a whole number)", "bytes");
      const auto device = number("device").value_or(0);
      if (request.contains("device") && !number("device"))
        return bad_request("\"device\": a GPU ordinal (a whole number)", "device");
      if (request.contains("tag") && !request["tag"].is_string()) return bad_request("\"tag\": a string", "tag");
      core::BufferImport import;
      import.device = static_cast<int>(std::min<std::uint64_t>(device, 1u << 20));
      import.bytes = *bytes;
      import.tag = request.value("tag", "");
      import.fd = std::move(frame.fds.front());
      import.owner_pid = peer.pid;
      core::Result<core::BufferInfo> buffer = core.import_buffer(*tenant, std::move(import));
      if (!buffer) return error_reply(buffer.error());
      log.info("client_buffer_imported", "buffer " + std::to_string(buffer->id) + ": device memory of process " +
                                             std::to_string(peer.pid),
               {{"buffer", static_cast<std::int64_t>(buffer->id)}, {"bytes", static_cast<std::int64_t>(buffer->bytes)}});
      return {detail::json_text({{"buffer", buffer_json(buffer.value())}})};
    }
    return bad_request("unknown op '" + detail::printable(op, 64) + "' (hello, export_buffer, import_buffer)", "op");
  }

  void serve(ipc::Channel& channel, const Peer& peer) {
    for (;;) {
      try {
        // The next request must arrive whole within kIdleTimeout of the last reply.
        ipc::Received r = channel.receive_for(kIdleTimeout);
        if (!r) return;  // closed, or idle too long
        std::string_view op = "unknown";
        Reply reply = handle(r.frame, peer, op);
        core.ipc_answered(op, reply.code);
        const int fds[] = {reply.fd.get()};
        channel.send(kReplyFrame, reply.body, reply.fd ? std::span<const int>(fds) : std::span<const int>(),
                     ipc::Channel::deadline_after(kFrameTimeout));
      } catch (const ipc::ChannelError& e) {
        // A cut-off frame, an oversized one, a client that does not read its reply: this
        // connection ends, nothing else does.
        log.info("ipc_client_dropped", e.what(), {{"pid", static_cast<std::int64_t>(peer.pid)}});
        return;
      } catch (const std::exception& e) {
        log.error("internal_error", std::string("IPC socket: ") + e.what());
        return;
      }
    }
  }

  void refuse_busy(ipc::UniqueFd socket) {
    try {
      ipc::Channel channel(std::move(socket));
      channel.send(kReplyFrame,
                   detail::error_body("too_many_connections", "kilnd's IPC socket holds " + std::to_string(kMaxConnections) +
                                                                  " connections; retry later"),
                   {}, ipc::Channel::deadline_after(std::chrono::milliseconds(100)));
    } catch (const std::exception&) {
    }
  }

  void accept_loop() {
    for (;;) {
      pollfd fds[] = {{listener.get(), POLLIN, 0}, {wake_read.get(), POLLIN, 0}};
      const int n = ::poll(fds, 2, 1000);
      core.sweep_client_buffers();
      reap_finished();
      if (n < 0 && errno != EINTR) return;
      if (fds[1].revents != 0) return;  // stop()
      if (n <= 0 || (fds[0].revents & POLLIN) == 0) continue;
      ipc::UniqueFd socket(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!socket) continue;
      const Peer peer = peer_of(socket.get());
      {
        std::lock_guard lock(connections_mutex);
        if (stopping) return;
        if (connections.size() < kMaxConnections) {
          ipc::ChannelOptions options;
          options.peer = "IPC client (pid " + std::to_string(peer.pid) + ")";
          options.max_frame_bytes = kMaxFrameBytes;
          options.first_type = options.last_type = kRequestFrame;
          Connection& c = connections.emplace_back();
          c.fd = socket.get();
          c.thread = std::jthread([this, &c, peer, channel = ipc::Channel(std::move(socket), options)]() mutable {
            serve(channel, peer);
            // Forgotten before the socket closes (with this callable, at the thread's end), so
            // stop() never shuts down a descriptor number that another file has been given.
            std::lock_guard done_lock(connections_mutex);
            c.done = true;
            c.fd = -1;
          });
          continue;
        }
      }
      refuse_busy(std::move(socket));  // outside the lock: it may wait up to 100 ms for the client
    }
  }

  void reap_finished() {
    std::list<Connection> finished;
    {
      std::lock_guard lock(connections_mutex);
      for (auto it = connections.begin(); it != connections.end();) {
        auto next = std::next(it);
        if (it->done) finished.splice(finished.end(), connections, it);
        it = next;
      }
    }
    // Joined outside the lock: a finishing thread takes it to set `done`.
  }
};

IpcSocketServer::IpcSocketServer(core::ServiceCore& core, const TokenStore& tokens, std::string path, Log log)
    : impl_(std::make_unique<Impl>(core, tokens, std::move(path), std::move(log))) {}

IpcSocketServer::~IpcSocketServer() { stop(); }

const std::string& IpcSocketServer::path() const noexcept { return impl_->path; }

void IpcSocketServer::start() {
  Impl& s = *impl_;
  if (s.listener) return;
  const sockaddr_un a = address_of(s.path);
  struct stat st{};
  if (::lstat(s.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw Error(Errc::invalid_argument, "ipc_socket '" + s.path + "' exists and is not a socket: kilnd does not replace it");
    if (someone_listens(a))
      throw Error(Errc::invalid_argument, "ipc_socket '" + s.path + "': another process serves on it (a second kilnd?)");
    ::unlink(s.path.c_str());  // left by a kilnd that ended without removing it
  }
  ipc::UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener || ::bind(listener.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    throw Error(Errc::invalid_argument, "ipc_socket '" + s.path + "' cannot be bound: " + std::strerror(errno));
  if (::chmod(s.path.c_str(), 0660) != 0 || ::listen(listener.get(), 64) != 0) {
    const int saved = errno;
    ::unlink(s.path.c_str());
    throw Error(Errc::invalid_argument, "ipc_socket '" + s.path + "': " + std::strerror(saved));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    ::unlink(s.path.c_str());
    throw Error(Errc::internal, std::string("pipe2: ") + std::strerror(errno));
  }
  s.wake_read.reset(pipe_fds[0]);
  s.wake_write.reset(pipe_fds[1]);
  s.listener = std::move(listener);
  s.acceptor = std::jthread([&s] { s.accept_loop(); });
  s.log.info("listening", "serving the IPC socket on " + s.path, {{"path", s.path}, {"protocol", "ipc"}});
}

void IpcSocketServer::stop() noexcept {
  Impl& s = *impl_;
  if (!s.listener) return;
  {
    std::lock_guard lock(s.connections_mutex);
    s.stopping = true;
    // A connection's thread wakes from its wait on the socket and ends; one in the middle of a
    // request finishes it first (its reply fails to send, which it expects).
    for (const Impl::Connection& c : s.connections)
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
  }
  const char byte = 0;
  [[maybe_unused]] const ssize_t written = ::write(s.wake_write.get(), &byte, 1);
  s.acceptor = {};  // joins
  std::list<Impl::Connection> all;
  {
    std::lock_guard lock(s.connections_mutex);
    all.swap(s.connections);
  }
  all.clear();  // joins every connection's thread
  s.listener.reset();
  ::unlink(s.path.c_str());
  s.log.info("shutdown", "IPC socket closed", {{"phase", "ipc"}});
}

}  // namespace kiln::service
