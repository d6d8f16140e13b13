#include "grpc_messages.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "detail/error_body.hpp"

namespace kiln::service::grpc_front {

namespace {

using nlohmann::json;

json string_list(const google::protobuf::RepeatedPtrField<std::string>& items) {
  json out = json::array();
  for (const std::string& s : items) out.push_back(s);
  return out;
}

json dims(const google::protobuf::RepeatedField<std::uint32_t>& values) {
  json out = json::array();
  for (std::uint32_t v : values) out.push_back(v);
  return out;
}

// Strings from a client may hold any bytes (proto3 checks UTF-8 only for well-behaved senders):
// the body's text stays valid so the parser, not nlohmann's dump, judges it.
std::string body_text(const json& body) { return detail::json_text(body); }

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::finished: return "finished";
  }
  return "unknown";
}

}  // namespace

std::string kernel_body(const kiln::v1::KernelRequest& r) {
  json body = {{"source", r.source()}};
  if (!r.name().empty()) body["name"] = r.name();
  if (!r.headers().empty()) {
    json headers = json::object();
    for (const auto& [name, text] : r.headers()) headers[name] = text;
    body["headers"] = std::move(headers);
  }
  if (!r.name_expressions().empty()) body["name_expressions"] = string_list(r.name_expressions());
  if (r.has_options()) {
    const kiln::v1::CompileOptions& o = r.options();
    json options = json::object();
    if (!o.std().empty()) options["std"] = o.std();
    if (!o.defines().empty()) options["defines"] = string_list(o.defines());
    if (o.fast_math()) options["fast_math"] = true;
    if (o.line_info()) options["line_info"] = true;
    if (o.rdc()) options["rdc"] = true;
    if (o.max_registers() != 0) options["max_registers"] = o.max_registers();  // negative: refused by the parser
    if (!o.extra().empty()) options["extra"] = string_list(o.extra());
    body["options"] = std::move(options);
  }
  if (!r.libraries().empty()) body["libraries"] = string_list(r.libraries());
  return body_text(body);
}

std::string buffer_body(const kiln::v1::BufferRequest& r) {
  json body = {{"device", r.device()}, {"bytes", r.bytes()}};
  if (!r.tag().empty()) body["tag"] = r.tag();
  return body_text(body);
}

std::string launch_body(const kiln::v1::LaunchRequest& r) {
  json body = json::object();
  if (r.kernel_case() == kiln::v1::LaunchRequest::kPackage) body["kernel"] = r.package();
  else if (r.kernel_case() == kiln::v1::LaunchRequest::kKernelId) body["kernel"] = r.kernel_id();
  if (!r.function().empty()) body["function"] = r.function();
  if (!r.grid().empty()) body["grid"] = dims(r.grid());
  if (!r.block().empty()) body["block"] = dims(r.block());
  if (r.shared_bytes() != 0) body["shared_bytes"] = r.shared_bytes();
  if (!r.arguments().empty()) {
    json arguments = json::array();
    for (const kiln::v1::Argument& a : r.arguments()) {
      if (a.has_buffer()) {
        arguments.push_back({{"buffer", a.buffer().buffer()}, {"offset", a.buffer().offset()}});
      } else if (a.has_scalar()) {
        const kiln::v1::Scalar& s = a.scalar();
        json arg = {{"type", s.type()}};
        switch (s.value_case()) {
          case kiln::v1::Scalar::kInteger: arg["value"] = s.integer(); break;
          case kiln::v1::Scalar::kUnsignedInteger: arg["value"] = s.unsigned_integer(); break;
          case kiln::v1::Scalar::kReal: arg["value"] = s.real(); break;
          case kiln::v1::Scalar::VALUE_NOT_SET: break;  // the parser says "value: missing"
        }
        arguments.push_back(std::move(arg));
      } else {
        arguments.push_back(json::object());  // neither: the parser names the argument
      }
    }
    body["arguments"] = std::move(arguments);
  }
  if (!r.priority().empty()) body["priority"] = r.priority();
  if (r.deadline_ms() != 0) body["deadline_ms"] = r.deadline_ms();
  if (r.has_device()) body["device"] = r.device();  // negative: refused by the parser
  if (r.wait()) body["wait"] = true;
  return body_text(body);
}

std::string package_version_body(const kiln::v1::PackageRequest& r) {
  json body = json::object();
  if (r.has_version()) body["version"] = r.version();
  return body_text(body);
}

// bytes and name always (0 and "": the parser's "at least 1" and its name rules); offset and
// owner_pid when given (0: not given).
std::string shared_memory_body(const kiln::v1::SharedMemoryRequest& r) {
  json body = {{"name", r.name()}, {"bytes", r.bytes()}};
  if (r.offset() != 0) body["offset"] = r.offset();
  if (r.owner_pid() != 0) body["owner_pid"] = r.owner_pid();  // above pid_max: refused by the parser
  return body_text(body);
}

// A region id of 0 (no region has it) and an empty direction are left out: the parser says "missing".
std::string shared_memory_copy_body(const kiln::v1::SharedMemoryCopyRequest& r) {
  json body = json::object();
  if (!r.direction().empty()) body["direction"] = r.direction();
  if (r.region() != 0) body["region"] = r.region();
  if (r.region_offset() != 0) body["region_offset"] = r.region_offset();
  if (r.offset() != 0) body["offset"] = r.offset();
  if (r.has_bytes()) body["bytes"] = r.bytes();
  return body_text(body);
}

core::PageRequest page_of(const kiln::v1::PageRequest& r) noexcept {
  core::PageRequest page;
  page.after = r.after();
  page.limit = r.limit() == 0 ? core::kDefaultPageSize : std::min<std::size_t>(r.limit(), core::kMaxPageSize);
  return page;
}

void to_proto(const core::KernelInfo& in, kiln::v1::Kernel& out) {
  out.set_id(in.id);
  out.set_name(in.name);
  for (const auto& [expression, lowered] : in.lowered_names) (*out.mutable_lowered_names())[expression] = lowered;
  for (const core::KernelTarget& t : in.targets) {
    kiln::v1::KernelTarget* target = out.add_targets();
    target->set_arch(t.arch);
    target->set_kind(t.kind);
  }
  for (const std::string& l : in.libraries) out.add_libraries(l);
}

void to_proto(const core::KernelRegistration& in, kiln::v1::Kernel& out) {
  out.set_id(in.id);
  out.set_name(in.name);
  for (const auto& [expression, lowered] : in.lowered_names) (*out.mutable_lowered_names())[expression] = lowered;
  if (in.targets.is_array()) {
    for (const json& t : in.targets) {
      kiln::v1::KernelTarget* target = out.add_targets();
      if (t.contains("arch") && t["arch"].is_string()) target->set_arch(t["arch"].get<std::string>());
      if (t.contains("kind") && t["kind"].is_string()) target->set_kind(t["kind"].get<std::string>());
    }
  }
  for (const std::string& l : in.libraries) out.add_libraries(l);
  if (in.warnings.is_array() && !in.warnings.empty()) out.set_warnings_json(detail::json_text(in.warnings));
  out.set_compiled_by(in.compiled_by);
}

void to_proto(const core::BufferInfo& in, kiln::v1::Buffer& out) {
  out.set_id(in.id);
  out.set_device(in.device);
  out.set_bytes(in.bytes);
  out.set_tag(in.tag);
}

void to_proto(const core::SharedMemoryInfo& in, kiln::v1::SharedMemory& out) {
  out.set_id(in.id);
  out.set_name(in.name);
  out.set_offset(in.offset);
  out.set_bytes(in.bytes);
  out.set_owner_pid(in.owner_pid > 0 ? static_cast<std::uint32_t>(in.owner_pid) : 0u);
  out.set_pinned(in.pinned);
}

void to_proto(const JobSnapshot& s, kiln::v1::Job& out) {
  out.set_id(s.id);
  out.set_request_id(s.request_id);
  out.set_state(std::string(job_state_name(s.state)));
  out.set_device(s.device);
  out.set_priority(std::string(to_string(s.priority)));
  out.set_queued_ms(s.queued_ms);
  out.set_total_ms(s.total_ms);
  if (!s.package.empty()) {
    out.set_package(s.package);
    out.set_package_version(s.package_version);
  }
  if (s.state == JobState::finished) {
    out.set_status(std::string(to_string(s.outcome)));
    out.set_elapsed_ms(s.result.elapsed_ms);
    if (s.outcome != JobOutcome::completed) {
      kiln::v1::JobError* error = out.mutable_error();
      error->set_name(s.result.error_name);
      error->set_message(s.result.message);
      error->set_sticky(s.result.sticky);
      for (auto b : s.result.suspect_buffers) out.add_suspect_buffers(b);
    }
  }
}

void to_proto(const core::LibraryInfo& in, kiln::v1::Library& out) {
  out.set_name(in.name);
  if (in.prebuilt_arch) out.set_prebuilt_arch(*in.prebuilt_arch);
  out.set_ltoir_bytes(in.ltoir_bytes);
  out.set_source_bytes(in.source_bytes);
  for (const std::string& h : in.headers) out.add_headers(h);
}

void to_proto(const core::RepositoryPackage& in, kiln::v1::Package& out) {
  out.set_name(in.name);
  if (in.serving) out.set_serving(*in.serving);
  if (in.previous) out.set_previous(*in.previous);
  out.set_held(in.held);
  for (const core::RepositoryVersion& v : in.versions) {
    kiln::v1::PackageVersion* version = out.add_versions();
    version->set_version(v.version);
    version->set_state(std::string(core::to_string(v.state)));
    version->set_serving(v.serving);
    for (const std::string& e : v.entry_points) version->add_entry_points(e);
    for (const std::string& i : v.images) version->add_images(i);
    if (v.state == core::VersionState::ready) version->set_load_ms(v.load_ms);
    version->set_problem(v.problem);
    version->set_reason(v.reason);
  }
}

}  // namespace kiln::service::grpc_front
