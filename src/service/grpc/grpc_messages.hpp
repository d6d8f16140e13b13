// Between kilnd's protobuf messages (proto/kiln/v1/kilnd.proto) and the service core's values.
//
// A request is turned into the JSON body the HTTP API takes and parsed by the same parser
// (kiln/service/requests.hpp), so both front ends apply one set of rules (ranges, limits, field
// names in refusals) and registration hands scale-out the body it sends on. proto3 cannot tell an
// absent scalar from its zero: a zero that the HTTP API would take as "not given" (a name, a
// priority, a deadline, grid and block) is left out of the body; see the proto's comments.
//
// Not public API. Thread safety: pure functions over values.
#pragma once

#include <string>

#include "core/service_core.hpp"
#include "kiln/v1/kilnd.pb.h"

namespace kiln::service::grpc_front {

// JSON bodies for parse_kernel_request, parse_buffer_request, parse_launch_request,
// parse_package_version_request, parse_shared_memory_request and parse_shared_memory_copy_request.
std::string kernel_body(const kiln::v1::KernelRequest& request);
std::string buffer_body(const kiln::v1::BufferRequest& request);
std::string launch_body(const kiln::v1::LaunchRequest& request);
std::string package_version_body(const kiln::v1::PackageRequest& request);
std::string shared_memory_body(const kiln::v1::SharedMemoryRequest& request);
std::string shared_memory_copy_body(const kiln::v1::SharedMemoryCopyRequest& request);  // all but buffer

// limit 0: the default page; above core::kMaxPageSize: cut to it.
core::PageRequest page_of(const kiln::v1::PageRequest& request) noexcept;

void to_proto(const core::KernelInfo& in, kiln::v1::Kernel& out);
void to_proto(const core::KernelRegistration& in, kiln::v1::Kernel& out);
void to_proto(const core::BufferInfo& in, kiln::v1::Buffer& out);
void to_proto(const core::SharedMemoryInfo& in, kiln::v1::SharedMemory& out);
void to_proto(const JobSnapshot& in, kiln::v1::Job& out);
void to_proto(const core::LibraryInfo& in, kiln::v1::Library& out);
void to_proto(const core::RepositoryPackage& in, kiln::v1::Package& out);

}  // namespace kiln::service::grpc_front
