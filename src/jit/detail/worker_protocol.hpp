// The compile worker's protocol: length-prefixed frames over a Unix stream socket, and the
// encoding of what crosses it (a compile request; the worker's hello; a compile result, an NVRTC
// rejection or a kiln::Error). Both ends are the same build of kiln, so the encoding carries a
// version only to refuse a mismatched worker binary with a clear message.
//
//   frame: u32 magic "KCW1" | u8 type | u64 payload length | payload
//
// Thread safety: pure functions over values, plus blocking I/O on a descriptor the caller owns
// (one thread at a time per descriptor).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/driver/error.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit::detail {

inline constexpr std::uint32_t kWorkerProtocolVersion = 2;  // 2: CompileOptions::minimal
// Requests and results far beyond any real program or image are refused as corrupt.
inline constexpr std::uint64_t kMaxFrameBytes = 1ull << 30;

enum class FrameType : std::uint8_t { hello = 1, compile_request = 2, compile_response = 3 };

struct Frame {
  FrameType type{};
  std::string payload;
};

enum class ReadStatus : std::uint8_t { ok, timed_out, closed, malformed };

// Writes the whole frame (retrying on EINTR, never raising SIGPIPE). False when the peer is gone.
bool write_frame(int fd, FrameType type, std::string_view payload) noexcept;
// Reads one frame, waiting until `deadline` at most (none: forever).
ReadStatus read_frame(int fd, std::optional<std::chrono::steady_clock::time_point> deadline, Frame& frame);

struct WorkerHello {
  std::uint32_t protocol_version = kWorkerProtocolVersion;
  std::int32_t pid = 0;
  bool aslr_disabled = false;  // what the worker's own personality says, not what was asked
};

std::string encode_hello(const WorkerHello& hello);
std::optional<WorkerHello> decode_hello(std::string_view bytes);

struct CompileRequest {
  Program program;
  Target target;
  CompileSettings settings;
};

std::string encode_request(const CompileRequest& request);
std::optional<CompileRequest> decode_request(std::string_view bytes);

// What jit::compile() did in the worker: returned a result (accepted or rejected) or threw.
struct CompileReply {
  std::optional<CompileResult> result;
  std::optional<Error> error;
};

std::string encode_result(const CompileResult& result);
std::string encode_error(const Error& error);
std::optional<CompileReply> decode_reply(std::string_view bytes);

}  // namespace kiln::jit::detail
