// The service core without HTTP: registration errors, missing kernels and buffers, tenant
// isolation, paging, and typed errors that carry their rule and field (no front end parses text).
#include <gtest/gtest.h>

#include "core/service_core.hpp"
#include <fstream>

#include "jit/kernels.hpp"
#include "jit/link_kernels.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/policy_error.hpp"
#include "kiln/service/no_gpu_backend.hpp"
#include "support/fake_gpu.hpp"
#include "support/http_fixture.hpp"

namespace kiln::service::core {
namespace {

using jit::test_kernels::kSaxpy;

KernelRequest kernel_request(const nlohmann::json& j) {
  Parsed<KernelRequest> parsed = parse_kernel_request(j.dump());
  EXPECT_TRUE(parsed.ok()) << parsed.error().text();
  return std::move(parsed.value());
}

LaunchRequest launch_request(const nlohmann::json& j) {
  Parsed<LaunchRequest> parsed = parse_launch_request(j.dump());
  EXPECT_TRUE(parsed.ok()) << parsed.error().text();
  return std::move(parsed.value());
}

class ServiceCoreTest : public ::testing::Test {
 protected:
  ServiceCoreTest() {
    config_.cache_dir = dir_.path() / "cache";
    config_.drain_timeout = std::chrono::milliseconds(200);
    core_ = std::make_unique<ServiceCore>(config_, gpu_);
  }

  std::uint64_t register_saxpy(const std::string& tenant) {
    auto k = core_->register_kernel(tenant, kernel_request({{"source", kSaxpy}, {"name", "saxpy.cu"}}), "");
    EXPECT_TRUE(k) << (k ? "" : k.error().message);
    return k ? k->id : 0;
  }
  std::uint64_t create_buffer(const std::string& tenant, std::uint64_t bytes) {
    auto b = core_->create_buffer(tenant, BufferRequest{0, bytes, "t"});
    EXPECT_TRUE(b) << (b ? "" : b.error().message);
    return b ? b->id : 0;
  }

  testing::TempDir dir_;
  ServiceConfig config_;
  testing::FakeGpu gpu_;
  std::unique_ptr<ServiceCore> core_;
};

TEST_F(ServiceCoreTest, RegistersAndFindsAKernel) {
  const std::uint64_t id = register_saxpy("alice");
  auto k = core_->kernel("alice", id);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->name, "saxpy.cu");
  ASSERT_EQ(k->targets.size(), 1u);
  EXPECT_EQ(k->targets[0].arch, "sm_90");
}

TEST_F(ServiceCoreTest, BadSourceIsACompileFailureWithDiagnostics) {
  auto k = core_->register_kernel("alice", kernel_request({{"source", "__global__ void k() { undefined_thing(); }"}}), "");
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().kind, ErrorKind::compile_failed);
  EXPECT_TRUE(k.error().rule.empty());
  ASSERT_TRUE(k.error().details.contains("diagnostics")) << k.error().details.dump();
  EXPECT_FALSE(k.error().details["diagnostics"].empty());
}

TEST_F(ServiceCoreTest, PolicyRefusalCarriesItsRuleAsAField) {
  auto k = core_->register_kernel(
      "alice", kernel_request({{"source", "__global__ void k() { asm(\"trap;\"); }"}, {"name", "asm.cu"}}), "");
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().kind, ErrorKind::policy);
  EXPECT_EQ(k.error().rule, "forbidden_identifier");
  EXPECT_FALSE(k.error().details.contains("rule")) << "the rule travels as ServiceError::rule, not in details";
}

TEST_F(ServiceCoreTest, MissingKernelBufferAndJobAreNotFound) {
  EXPECT_EQ(core_->kernel("alice", 42).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->delete_kernel("alice", 42).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->buffer("alice", 42).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->delete_buffer("alice", 42).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->read_buffer("alice", 42, 0, std::nullopt).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->job("alice", 42, {}).error().kind, ErrorKind::not_found);
  auto launched = core_->launch("alice", launch_request({{"kernel", 42}, {"function", "saxpy"}}));
  ASSERT_FALSE(launched);
  EXPECT_EQ(launched.error().kind, ErrorKind::not_found);
  EXPECT_EQ(launched.error().message, "kernel 42 not found");
}

TEST_F(ServiceCoreTest, ATenantSeesOnlyItsOwnKernelsBuffersAndJobs) {
  const std::uint64_t kernel = register_saxpy("alice");
  const std::uint64_t buffer = create_buffer("alice", 64);
  auto launched = core_->launch("alice", launch_request({{"kernel", kernel},
                                                         {"function", "saxpy"},
                                                         {"wait", true},
                                                         {"arguments", {{{"type", "f32"}, {"value", 1.0}},
                                                                        {{"buffer", buffer}},
                                                                        {{"buffer", buffer}},
                                                                        {{"type", "i32"}, {"value", 16}}}}}));
  ASSERT_TRUE(launched) << launched.error().message;
  EXPECT_EQ(launched->job.state, JobState::finished);

  EXPECT_EQ(core_->kernel("bob", kernel).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->delete_kernel("bob", kernel).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->buffer("bob", buffer).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->write_buffer("bob", buffer, 0, {}).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->delete_buffer("bob", buffer).error().kind, ErrorKind::not_found);
  EXPECT_EQ(core_->job("bob", launched->job.id, {}).error().kind, ErrorKind::not_found);
  EXPECT_TRUE(core_->list_kernels("bob", {}).items.empty());
  EXPECT_TRUE(core_->list_buffers("bob", {}).items.empty());
  EXPECT_TRUE(core_->list_jobs("bob", {}).items.empty());
  EXPECT_EQ(core_->list_kernels("alice", {}).items.size(), 1u);
  EXPECT_EQ(core_->list_buffers("alice", {}).items.size(), 1u);
  ASSERT_EQ(core_->list_jobs("alice", {}).items.size(), 1u);
  EXPECT_EQ(core_->list_jobs("alice", {}).items[0].id, launched->job.id);

  // Bob's own kernel cannot take alice's buffer as an argument.
  const std::uint64_t bobs = register_saxpy("bob");
  auto stolen = core_->launch("bob", launch_request({{"kernel", bobs}, {"function", "saxpy"}, {"arguments", {{{"buffer", buffer}}}}}));
  ASSERT_FALSE(stolen);
  EXPECT_EQ(stolen.error().kind, ErrorKind::not_found);
  EXPECT_EQ(stolen.error().message, "arguments[0]: buffer " + std::to_string(buffer) + " not found");
}

TEST_F(ServiceCoreTest, ListsArePagedInIdOrder) {
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(create_buffer("alice", 16));
  create_buffer("bob", 16);
  Page<BufferInfo> first = core_->list_buffers("alice", {0, 2});
  ASSERT_EQ(first.items.size(), 2u);
  EXPECT_EQ(first.items[0].id, ids[0]);
  EXPECT_EQ(first.items[1].id, ids[1]);
  ASSERT_TRUE(first.next_after);
  Page<BufferInfo> rest = core_->list_buffers("alice", {*first.next_after, 10});
  ASSERT_EQ(rest.items.size(), 3u);
  EXPECT_EQ(rest.items[2].id, ids[4]);
  EXPECT_FALSE(rest.next_after);
  // A limit past the bound is cut to it; 0 is taken as 1.
  EXPECT_EQ(core_->list_buffers("alice", {0, 0}).items.size(), 1u);
  EXPECT_EQ(core_->list_buffers("alice", {0, kMaxPageSize * 10}).items.size(), 5u);
}

TEST_F(ServiceCoreTest, TypedErrorsNameTheirField) {
  const std::uint64_t kernel = register_saxpy("alice");
  auto wrong = core_->launch("alice", launch_request({{"kernel", kernel}, {"function", "nope"}}));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(wrong.error().field, "function");

  auto device = core_->create_buffer("alice", BufferRequest{7, 16, ""});
  ASSERT_FALSE(device);
  EXPECT_EQ(device.error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(device.error().field, "device");

  auto big = core_->create_buffer("alice", BufferRequest{0, config_.max_buffer_bytes + 1, ""});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind, ErrorKind::too_large);

  const std::uint64_t buffer = create_buffer("alice", 8);
  const std::byte nine[9]{};
  EXPECT_EQ(core_->write_buffer("alice", buffer, 0, nine).error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(core_->read_buffer("alice", buffer, 4, 8).error().kind, ErrorKind::invalid_argument);
  auto read = core_->read_buffer("alice", buffer, 4, std::nullopt);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->size(), 4u);
}

TEST_F(ServiceCoreTest, LaunchFailuresAreTypedAndNameTheirField) {
  const std::uint64_t kernel = register_saxpy("alice");
  const std::uint64_t buffer = create_buffer("alice", 64);
  auto launch = [&](nlohmann::json j) {
    j["kernel"] = kernel;
    j["function"] = "saxpy";
    return core_->launch("alice", launch_request(j));
  };

  auto no_device = launch({{"device", 7}});
  ASSERT_FALSE(no_device);
  EXPECT_EQ(no_device.error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(no_device.error().field, "device");
  EXPECT_EQ(no_device.error().message, "device: 7 does not exist (this machine has 1 GPU(s))");

  auto missing = launch({{"arguments", {{{"buffer", 4242}}}}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::not_found);
  EXPECT_EQ(missing.error().field, "arguments[0]");

  auto outside = launch({{"arguments", {{{"type", "f32"}, {"value", 2.0}}, {{"buffer", buffer}, {"offset", 64}}}}});
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(outside.error().field, "arguments[1]") << outside.error().message;

  auto other_device = launch({{"device", 3}, {"arguments", {{{"buffer", buffer}}}}});
  ASSERT_FALSE(other_device);
  EXPECT_EQ(other_device.error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(other_device.error().field, "arguments[0]") << other_device.error().message;

  auto long_deadline = launch({{"deadline_ms", config_.max_deadline.count() + 1}});
  ASSERT_FALSE(long_deadline);
  EXPECT_EQ(long_deadline.error().kind, ErrorKind::invalid_argument);
  EXPECT_EQ(long_deadline.error().field, "deadline_ms");

  gpu_.set_worker_up(false);  // placement has no GPU to choose (a launch naming its GPU waits for the new worker)
  auto down = launch(nlohmann::json::object());
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind, ErrorKind::unavailable);
  EXPECT_NE(down.error().message.find("GPU 0: no worker (the worker exited with signal 9 (Killed))"), std::string::npos)
      << down.error().message;
  EXPECT_FALSE(down.error().hint.empty());
  gpu_.set_worker_up(true);
  EXPECT_TRUE(launch({{"arguments", {{{"buffer", buffer}}}}}));
}

// A kernel keeps its device libraries: a GPU of another architecture that comes up after its
// registration gets an image linked with the same libraries, at its first launch there.
TEST(ServiceCoreLibraries, AGpuOfANewArchitectureLinksTheSameLibrariesAgain) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "lib.cu") << jit::test_kernels::kLibrarySource;
  std::ofstream(dir.path() / "lib.cuh") << jit::test_kernels::kLibraryHeader;
  ServiceConfig config;
  config.cache_dir = dir.path() / "cache";
  config.drain_timeout = std::chrono::milliseconds(200);
  DeviceLibraryConfig source;
  source.source = dir.path() / "lib.cu";
  source.headers["scale_add.cuh"] = dir.path() / "lib.cuh";
  config.device_libraries["scale_add"] = source;
  testing::FakeGpu gpu;
  ServiceCore core(config, gpu);
  auto k = core.register_kernel(
      "alice", kernel_request({{"source", jit::test_kernels::kCallerSource}, {"libraries", {"scale_add"}}}), "");
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(k->libraries, std::vector<std::string>{"scale_add"});

  gpu.set_arch(80);
  auto launched = core.launch("alice", launch_request({{"kernel", k->id}, {"function", "linked_saxpy"}}));
  ASSERT_TRUE(launched) << launched.error().message;
  auto info = core.kernel("alice", k->id);
  ASSERT_TRUE(info);
  ASSERT_EQ(info->targets.size(), 2u);
  EXPECT_EQ(info->targets[0].arch, "sm_80");
  EXPECT_EQ(info->targets[0].kind, "cubin");
  EXPECT_EQ(info->libraries, std::vector<std::string>{"scale_add"});
}

TEST(ServiceCoreLibraries, ALibraryWithoutLtoIrForANewArchitectureFailsTheLaunchClearly) {
  testing::TempDir dir;
  jit::CompileResult lib = jit::compile(jit::test_kernels::library_program(), jit::Target::for_arch(90, jit::ImageKind::ltoir));
  ASSERT_TRUE(lib.ok());
  std::ofstream(dir.path() / "lib.ltoir", std::ios::binary) << lib.value().image();
  ServiceConfig config;
  config.cache_dir = dir.path() / "cache";
  config.drain_timeout = std::chrono::milliseconds(200);
  DeviceLibraryConfig prebuilt;
  prebuilt.ltoir = dir.path() / "lib.ltoir";
  config.device_libraries["scale_add"] = prebuilt;
  testing::FakeGpu gpu;
  ServiceCore core(config, gpu);
  auto ok = core.register_kernel(
      "alice",
      kernel_request({{"source", "extern \"C\" __device__ float scale_add(float, float, float);\n"
                                 "extern \"C\" __global__ void k(float* y) { y[0] = scale_add(1, y[0], 2); }\n"},
                      {"libraries", {"scale_add"}}}),
      "");
  ASSERT_TRUE(ok) << ok.error().message;

  gpu.set_arch(80);
  auto launched = core.launch("alice", launch_request({{"kernel", ok->id}, {"function", "k"}}));
  ASSERT_FALSE(launched);
  EXPECT_EQ(launched.error().kind, ErrorKind::invalid_argument);
  EXPECT_NE(launched.error().message.find("LTO-IR for sm_90 only"), std::string::npos) << launched.error().message;
}

TEST_F(ServiceCoreTest, TooManyKernelsIsItsOwnKind) {
  core_.reset();
  config_.max_kernels_per_tenant = 1;
  core_ = std::make_unique<ServiceCore>(config_, gpu_);
  register_saxpy("alice");
  auto second = core_->register_kernel("alice", kernel_request({{"source", kSaxpy}}), "");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::too_many_kernels);
  register_saxpy("bob");  // another tenant's count is its own
}

TEST(ServiceCoreNoGpu, BuffersAreUnavailableAndShutdownFreesWhatWasCreated) {
  testing::TempDir dir;
  ServiceConfig config;
  config.cache_dir = dir.path() / "cache";
  NoGpuBackend none("test machine without a GPU");
  ServiceCore core(config, none);
  auto b = core.create_buffer("alice", BufferRequest{0, 16, ""});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind, ErrorKind::unavailable);
  EXPECT_NE(b.error().message.find("test machine without a GPU"), std::string::npos) << b.error().message;
  EXPECT_FALSE(core.readiness().why_not.empty());

  testing::FakeGpu gpu;
  {
    ServiceCore with_gpu(config, gpu);
    ASSERT_TRUE(with_gpu.create_buffer("alice", BufferRequest{0, 16, ""}));
    EXPECT_EQ(gpu.buffers(), 1u);
  }
  EXPECT_EQ(gpu.buffers(), 0u) << "the core frees its buffers when it ends";
}

TEST(ServiceCoreErrors, ExceptionsBecomeTypedErrors) {
  EXPECT_EQ(error_from_exception(std::make_exception_ptr(std::bad_alloc())).kind, ErrorKind::out_of_host_memory);
  EXPECT_EQ(error_from_exception(std::make_exception_ptr(Error(Errc::driver_not_found, "no libcuda"))).kind,
            ErrorKind::unavailable);
  EXPECT_EQ(error_from_exception(std::make_exception_ptr(Error(Errc::invalid_argument, "bad"))).kind,
            ErrorKind::invalid_argument);
  const ServiceError internal = error_from_exception(std::make_exception_ptr(std::runtime_error("boom")));
  EXPECT_EQ(internal.kind, ErrorKind::internal);
  EXPECT_EQ(internal.message, "internal error: boom");
  EXPECT_EQ(to_string(ErrorKind::policy), "policy");

  const ServiceError policy =
      error_from_exception(std::make_exception_ptr(jit::PolicyError("include", "", "program 'a.cu' line 1: bad")));
  EXPECT_EQ(policy.kind, ErrorKind::policy);
  EXPECT_EQ(policy.rule, "include");
  EXPECT_EQ(policy.message, "source policy rule 'include': program 'a.cu' line 1: bad");
  const ServiceError timeout = error_from_exception(
      std::make_exception_ptr(jit::PolicyError("max_compile_time", "100 ms", "too slow", Errc::timeout)));
  EXPECT_EQ(timeout.kind, ErrorKind::policy);
  EXPECT_EQ(timeout.rule, "max_compile_time");
  EXPECT_EQ(error_from_exception(std::make_exception_ptr(Error(Errc::compile_failed, "a.cu:1:1: error: x"))).kind,
            ErrorKind::compile_failed);
}

}  // namespace
}  // namespace kiln::service::core
