// kilnd's front end for co-located clients: a Unix socket (config ipc_socket) that speaks kiln's
// one wire format (ipc::Channel frames, file descriptors by SCM_RIGHTS), for what a TCP front end
// cannot carry: CUDA IPC. A client asks for a buffer's memory and gets a VMM POSIX file descriptor
// to map on its own GPU stream (no copy), or hands kilnd its own device memory to use as a buffer.
// Thin over the service core like HTTP and gRPC: parse, call one core method, map the result.
//
// The protocol (docs/SERVICE.md "CUDA IPC"): each request is one frame of type 1, a JSON object
// with "op" and (except "hello") "token", plus at most one descriptor; each reply one frame of
// type 2, a JSON object, plus the descriptor an export returns. A failure's reply is HTTP's error
// body ({"error": {"code", "message", ...}}). The registering process of an import is the socket's
// peer (SO_PEERCRED), never a field a client could name: its buffers are freed when it ends.
//
// A slow or hostile client holds only its own connection: each has its own thread; a connection
// whose next request has not arrived whole kIdleTimeout after its last reply is closed, and so is
// one that does not take its reply within kFrameTimeout; above kMaxConnections a new connection
// gets an error reply and is closed.
//
// Thread safety: start() and stop() from one thread; the server serves on its own threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kiln/service/log.hpp"

namespace kiln::service {

class TokenStore;
namespace core {
class ServiceCore;
}

class IpcSocketServer {
 public:
  static constexpr std::uint32_t kRequestFrame = 1;
  static constexpr std::uint32_t kReplyFrame = 2;
  static constexpr int kProtocolVersion = 1;
  static constexpr std::size_t kMaxFrameBytes = 64 * 1024;
  static constexpr std::size_t kMaxConnections = 64;
  static constexpr std::chrono::milliseconds kFrameTimeout{5000};
  static constexpr std::chrono::milliseconds kIdleTimeout{60000};

  // The core and tokens must outlive the server.
  IpcSocketServer(core::ServiceCore& core, const TokenStore& tokens, std::string path, Log log);
  ~IpcSocketServer();  // stop()
  IpcSocketServer(const IpcSocketServer&) = delete;
  IpcSocketServer& operator=(const IpcSocketServer&) = delete;

  // Binds the socket (mode 0660; a stale socket file left by a kilnd that died is replaced, a live
  // one is an error) and serves. Throws kiln::Error naming the path.
  void start();
  // Closes the socket and every connection (a request in progress finishes first), removes the
  // socket file. Idempotent.
  void stop() noexcept;
  const std::string& path() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::service
