// The compile worker's protocol on ipc::Channel frames: the frame types, the channel's limits, and
// the encoding of what crosses it (a compile request; the worker's hello; a compile result, an
// NVRTC rejection or a kiln::Error). Both ends are the same build of kiln, so the encoding carries
// a version only to refuse a mismatched worker binary with a clear message.
//
// Thread safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/driver/error.hpp"
#include "kiln/ipc/channel.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/program.hpp"
#include "kiln/jit/target.hpp"

namespace kiln::jit::detail {

// 2: CompileOptions::minimal; 3: ipc::Channel frames (u32 type | u64 length) instead of "KCW1" ones.
inline constexpr std::uint32_t kCompileWorkerProtocolVersion = 3;
// Requests and results far beyond any real program or image are refused as corrupt.
inline constexpr std::uint64_t kMaxCompileWorkerFrameBytes = 1ull << 30;

enum class CompileWorkerFrame : std::uint32_t { hello = 1, compile_request = 2, compile_response = 3 };

// The limits both ends use; `peer` names the other end in errors.
ipc::ChannelOptions compile_worker_channel(std::string peer);

struct CompileWorkerHello {
  std::uint32_t protocol_version = kCompileWorkerProtocolVersion;
  std::int32_t pid = 0;
  bool aslr_disabled = false;  // what the worker's own personality says, not what was asked
};

std::string encode_hello(const CompileWorkerHello& hello);
std::optional<CompileWorkerHello> decode_hello(std::string_view bytes);

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
