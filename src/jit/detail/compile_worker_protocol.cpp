#include "jit/detail/compile_worker_protocol.hpp"

#include "jit/detail/byte_io.hpp"

namespace kiln::jit::detail {
namespace {

enum class ReplyKind : std::uint8_t { result = 0, error = 1 };

void put_strings(std::string& out, const std::vector<std::string>& items) {
  put<std::uint64_t>(out, items.size());
  for (const auto& s : items) put_string(out, s);
}

std::vector<std::string> get_strings(ByteReader& r) {
  std::vector<std::string> items(r.get_count(8));
  for (auto& s : items) s = r.get_string();
  return items;
}

void put_target(std::string& out, const Target& t) {
  put<std::uint8_t>(out, static_cast<std::uint8_t>(t.kind));
  put<std::int32_t>(out, t.arch);
  put_string(out, t.reason);
}

bool get_target(ByteReader& r, Target& t) {
  const auto kind = r.get<std::uint8_t>();
  t.kind = static_cast<ImageKind>(kind <= kLastImageKind ? kind : 0);
  t.arch = r.get<std::int32_t>();
  t.reason = r.get_string();
  return kind <= kLastImageKind;
}

void put_key(std::string& out, const CacheKey& key) { out.append(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size()); }

CacheKey get_key(ByteReader& r) {
  CacheKey key;
  for (auto& b : key.bytes) b = r.get<std::uint8_t>();
  return key;
}

void put_diagnostics(std::string& out, const std::vector<Diagnostic>& diagnostics) {
  put<std::uint64_t>(out, diagnostics.size());
  for (const auto& d : diagnostics) {
    put_string(out, d.file);
    put<std::int32_t>(out, d.line);
    put<std::int32_t>(out, d.column);
    put<std::uint8_t>(out, static_cast<std::uint8_t>(d.severity));
    put_string(out, d.code);
    put_string(out, d.message);
    put_string(out, d.source_line);
    put_strings(out, d.context);
  }
}

std::vector<Diagnostic> get_diagnostics(ByteReader& r) {
  std::vector<Diagnostic> diagnostics(r.get_count(8 * 5 + 9));
  for (auto& d : diagnostics) {
    d.file = r.get_string();
    d.line = r.get<std::int32_t>();
    d.column = r.get<std::int32_t>();
    d.severity = static_cast<Severity>(std::min<std::uint8_t>(r.get<std::uint8_t>(), 3));
    d.code = r.get_string();
    d.message = r.get_string();
    d.source_line = r.get_string();
    d.context = get_strings(r);
  }
  return diagnostics;
}

}  // namespace

ipc::ChannelOptions compile_worker_channel(std::string peer) {
  ipc::ChannelOptions o;
  o.peer = std::move(peer);
  o.max_frame_bytes = kMaxCompileWorkerFrameBytes;
  o.first_type = static_cast<std::uint32_t>(CompileWorkerFrame::hello);
  o.last_type = static_cast<std::uint32_t>(CompileWorkerFrame::compile_response);
  return o;
}

std::string encode_hello(const CompileWorkerHello& hello) {
  std::string out;
  put<std::uint32_t>(out, hello.protocol_version);
  put<std::int32_t>(out, hello.pid);
  put<std::uint8_t>(out, hello.aslr_disabled ? 1 : 0);
  return out;
}

std::optional<CompileWorkerHello> decode_hello(std::string_view bytes) {
  ByteReader r(bytes);
  CompileWorkerHello h;
  h.protocol_version = r.get<std::uint32_t>();
  h.pid = r.get<std::int32_t>();
  h.aslr_disabled = r.get<std::uint8_t>() != 0;
  if (!r.ok_and_done()) return std::nullopt;
  return h;
}

std::string encode_request(const CompileRequest& request) {
  const Program& p = request.program;
  std::string out;
  put_string(out, p.name);
  put_string(out, p.source);
  put<std::uint64_t>(out, p.headers.size());
  for (const auto& [name, text] : p.headers) {
    put_string(out, name);
    put_string(out, text);
  }
  put_strings(out, p.include_dirs);
  const CompileOptions& o = p.options;
  put_string(out, o.standard);
  put_strings(out, o.defines);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(o.line_info | o.fast_math << 1 | o.relocatable_device_code << 2 |
                                                 o.minimal << 3));
  put<std::int32_t>(out, o.max_registers);
  put_strings(out, o.extra);
  put_strings(out, p.name_expressions);
  put_target(out, request.target);
  put_string(out, request.settings.pch_dir);
  put<std::uint8_t>(out, request.settings.key ? 1 : 0);
  if (request.settings.key) put_key(out, *request.settings.key);
  return out;
}

std::optional<CompileRequest> decode_request(std::string_view bytes) {
  ByteReader r(bytes);
  CompileRequest request;
  Program& p = request.program;
  p.name = r.get_string();
  p.source = r.get_string();
  for (auto n = r.get_count(16); n > 0 && !r.bad(); --n) {
    std::string name = r.get_string();
    p.headers.emplace(std::move(name), r.get_string());
  }
  p.include_dirs = get_strings(r);
  CompileOptions& o = p.options;
  o.standard = r.get_string();
  o.defines = get_strings(r);
  const auto flags = r.get<std::uint8_t>();
  o.line_info = flags & 1;
  o.fast_math = flags & 2;
  o.relocatable_device_code = flags & 4;
  o.minimal = flags & 8;
  o.max_registers = r.get<std::int32_t>();
  o.extra = get_strings(r);
  p.name_expressions = get_strings(r);
  const bool target_ok = get_target(r, request.target);
  request.settings.pch_dir = r.get_string();
  if (r.get<std::uint8_t>() != 0) request.settings.key = get_key(r);
  if (!target_ok || !r.ok_and_done()) return std::nullopt;
  return request;
}

std::string encode_result(const CompileResult& result) {
  std::string out;
  put<std::uint8_t>(out, static_cast<std::uint8_t>(ReplyKind::result));
  put_string(out, result.program_name);
  put_target(out, result.target);
  put_string(out, result.log);
  put_diagnostics(out, result.diagnostics);
  put<std::uint8_t>(out, result.ok() ? 1 : 0);
  if (!result.ok()) return out;
  const Artifact& a = *result.artifact;
  put<std::uint8_t>(out, static_cast<std::uint8_t>(a.kind()));
  put<std::int32_t>(out, a.arch());
  put_string(out, a.program_name());
  put_string(out, a.image());
  put<std::uint64_t>(out, a.lowered_names().size());
  for (const auto& [expr, lowered] : a.lowered_names()) {
    put_string(out, expr);
    put_string(out, lowered);
  }
  put_string(out, a.log());
  put_diagnostics(out, a.diagnostics());
  put<std::int64_t>(out, a.compile_time().count());
  put_key(out, a.key());
  return out;
}

std::string encode_error(const Error& error) {
  std::string out;
  put<std::uint8_t>(out, static_cast<std::uint8_t>(ReplyKind::error));
  put<std::uint8_t>(out, static_cast<std::uint8_t>(error.domain()));
  put<std::int32_t>(out, error.code());
  put_string(out, error.call());
  put_string(out, error.detail());
  return out;
}

std::optional<CompileReply> decode_reply(std::string_view bytes) {
  ByteReader r(bytes);
  CompileReply reply;
  const auto kind = r.get<std::uint8_t>();
  if (kind == static_cast<std::uint8_t>(ReplyKind::error)) {
    const auto domain = r.get<std::uint8_t>();
    const auto code = r.get<std::int32_t>();
    std::string call = r.get_string(), detail = r.get_string();
    if (!r.ok_and_done() || domain > static_cast<std::uint8_t>(Domain::kiln)) return std::nullopt;
    if (domain == static_cast<std::uint8_t>(Domain::kiln))
      reply.error.emplace(static_cast<Errc>(code), std::move(detail));
    else
      reply.error.emplace(static_cast<Domain>(domain), code, std::move(call), std::move(detail));
    return reply;
  }
  if (kind != static_cast<std::uint8_t>(ReplyKind::result)) return std::nullopt;
  CompileResult result;
  result.program_name = r.get_string();
  bool ok = get_target(r, result.target);
  result.log = r.get_string();
  result.diagnostics = get_diagnostics(r);
  if (r.get<std::uint8_t>() != 0) {
    ArtifactContents c;
    const auto image_kind = r.get<std::uint8_t>();
    ok = ok && image_kind <= kLastImageKind;
    c.kind = static_cast<ImageKind>(image_kind <= kLastImageKind ? image_kind : 0);
    c.arch = r.get<std::int32_t>();
    c.program_name = r.get_string();
    c.image = r.get_string();
    for (auto n = r.get_count(16); n > 0 && !r.bad(); --n) {
      std::string expr = r.get_string();
      c.lowered_names.emplace(std::move(expr), r.get_string());
    }
    c.log = r.get_string();
    c.diagnostics = get_diagnostics(r);
    c.compile_time = std::chrono::nanoseconds(r.get<std::int64_t>());
    c.key = get_key(r);
    result.artifact.emplace(std::move(c), Origin::compiled);
  }
  if (!ok || !r.ok_and_done()) return std::nullopt;
  reply.result = std::move(result);
  return reply;
}

}  // namespace kiln::jit::detail
