#include <gtest/gtest.h>

#include <fstream>

#include "kiln/driver/error.hpp"
#include "kiln/service/config.hpp"
#include "support/error_message.hpp"
#include "support/http_fixture.hpp"

namespace kiln::service {
namespace {

using kiln::testing::error_message_of;

TEST(ServiceConfig, DefaultsListenOnLoopback) {
  ServiceConfig c;
  EXPECT_EQ(c.listen_address, "127.0.0.1");
  EXPECT_TRUE(c.tokens_file.empty());
  EXPECT_NO_THROW(validate(c));
}

TEST(ServiceConfig, LogKeysApplyAndBadOnesAreRefused) {
  ServiceConfig c;
  EXPECT_EQ(c.log_format, kiln::service::LogFormat::text);
  EXPECT_EQ(c.log_level, kiln::service::LogLevel::info);
  EXPECT_TRUE(c.log_file.empty());
  apply_config_json(c, R"({"log_format": "json", "log_level": "warn", "log_file": "/var/log/kilnd.log"})", "test.json");
  EXPECT_EQ(c.log_format, kiln::service::LogFormat::json);
  EXPECT_EQ(c.log_level, kiln::service::LogLevel::warn);
  EXPECT_EQ(c.log_file, "/var/log/kilnd.log");
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"log_format": "xml"})", "a.json"); })
                .find("key 'log_format': expected \"text\" or \"json\""),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"log_level": "loud"})", "a.json"); }).find("key 'log_level'"),
            std::string::npos);
}

TEST(ServiceConfig, JsonKeysApply) {
  ServiceConfig c;
  apply_config_json(c, R"({"listen_address": "0.0.0.0", "port": 9000, "tokens_file": "/etc/kiln/tokens",
      "max_body_bytes": 1048576, "max_json_bytes": 65536, "aging_step_ms": 250, "dispatchers_per_device": 4,
      "job_retention_s": 30, "source_policy": {"max_source_bytes": 100, "allow_include_dirs": true,
      "forbidden_identifiers": ["asm", "printf"]}})",
                    "test.json");
  EXPECT_EQ(c.listen_address, "0.0.0.0");
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.tokens_file, "/etc/kiln/tokens");
  EXPECT_EQ(c.max_body_bytes, 1048576u);
  EXPECT_EQ(c.aging_step, std::chrono::milliseconds(250));
  EXPECT_EQ(c.dispatchers_per_device, 4);
  EXPECT_EQ(c.job_retention, std::chrono::seconds(30));
  EXPECT_EQ(c.source_policy.max_source_bytes, 100u);
  EXPECT_TRUE(c.source_policy.allow_include_dirs);
  EXPECT_EQ(c.source_policy.forbidden_identifiers, (std::vector<std::string>{"asm", "printf"}));
}

TEST(ServiceConfig, GrpcPortIsOffUnlessSetAndMustDifferFromTheHttpPort) {
  ServiceConfig c;
  EXPECT_EQ(c.grpc_port, 0);
  apply_config_json(c, R"({"grpc_port": 8471})", "g.json");
  EXPECT_EQ(c.grpc_port, 8471);
  EXPECT_NO_THROW(validate(c));
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"grpc_port": 70000})", "g.json"); }).find("between 0 and 65535"),
            std::string::npos);
  c.grpc_port = c.port;
  EXPECT_NE(error_message_of([&] { validate(c); }).find("grpc_port"), std::string::npos);
}

TEST(ServiceConfig, GrpcThreadsAndTheIpcSocketKeysApplyAndBadValuesAreRefused) {
  ServiceConfig c;
  EXPECT_EQ(c.grpc_threads, 128);
  EXPECT_FALSE(c.allow_client_ipc);
  EXPECT_TRUE(c.ipc_socket.empty());
  apply_config_json(c, R"({"grpc_threads": 32, "allow_client_ipc": true, "ipc_socket": "/run/kilnd.sock"})", "i.json");
  EXPECT_EQ(c.grpc_threads, 32);
  EXPECT_TRUE(c.allow_client_ipc);
  EXPECT_EQ(c.ipc_socket, "/run/kilnd.sock");
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"grpc_threads": 0})", "i.json"); }).find("grpc_threads"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"allow_client_ipc": "yes"})", "i.json"); }).find("allow_client_ipc"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"ipc_socket": 3})", "i.json"); }).find("ipc_socket"),
            std::string::npos);
}

TEST(ServiceConfig, RepositoryKeysApplyAndBadOnesAreRefused) {
  ServiceConfig c;
  apply_config_json(c, R"({"repository": {"path": "/srv/kernels", "mode": "poll", "poll_interval_ms": 500, "latest": 2,
                          "pinned": {"saxpy": [3, 4]}, "operators": ["ops"], "tenants": ["a", "b"]}})", "r.json");
  EXPECT_EQ(c.repository.path, "/srv/kernels");
  EXPECT_EQ(c.repository.mode, RepositoryMode::poll);
  EXPECT_EQ(c.repository.poll_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(c.repository.latest, 2u);
  EXPECT_EQ(c.repository.pinned.at("saxpy"), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(c.repository.operators, std::vector<std::string>{"ops"});
  EXPECT_EQ(c.repository.tenants, (std::vector<std::string>{"a", "b"}));
  validate(c);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"repository": {"mode": "watch"}})", "r.json"); })
                .find("key 'repository.mode': expected \"none\", \"explicit\" or \"poll\""),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"repository": {"pinned": {"x": [0]}}})", "r.json"); })
                .find("repository.pinned.x"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"repository": {"paths": "x"}})", "r.json"); }).find("unknown key"),
            std::string::npos);
  ServiceConfig load_without_explicit;
  load_without_explicit.repository.path = "/srv/kernels";
  load_without_explicit.repository.load = {"saxpy"};
  EXPECT_NE(error_message_of([&] { validate(load_without_explicit); }).find("in none mode the version policy decides"),
            std::string::npos);
}

TEST(ServiceConfig, ErrorsNameOriginAndKey) {
  ServiceConfig c;
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"prot": 1})", "a.json"); }).find("a.json: key 'prot': unknown key"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"port": "80"})", "a.json"); }).find("key 'port': expected an integer"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"port": 70000})", "a.json"); }).find("between 0 and 65535"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"source_policy": {"nope": 1}})", "a.json"); })
                .find("key 'source_policy.nope'"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, "{", "a.json"); }).find("a.json: not valid JSON"), std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, "[]", "a.json"); }).find("expected a JSON object"), std::string::npos);
}

TEST(ServiceConfig, JsonLimitsAndTheTokensOverrideAreSettings) {
  ServiceConfig c;
  EXPECT_EQ(c.max_json_depth, 64u);
  EXPECT_EQ(c.max_json_values, 65536u);
  EXPECT_FALSE(c.allow_insecure_tokens);
  apply_config_json(c, R"({"max_json_depth": 16, "max_json_values": 1000, "allow_insecure_tokens": true})", "t.json");
  EXPECT_EQ(c.max_json_depth, 16u);
  EXPECT_EQ(c.max_json_values, 1000u);
  EXPECT_TRUE(c.allow_insecure_tokens);
  EXPECT_NO_THROW(validate(c));
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"max_json_depth": 1})", "t.json"); }).find("between 2 and 10000"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"max_json_values": 3})", "t.json"); }).find("key 'max_json_values'"),
            std::string::npos);
  // A number beyond a double is nlohmann's out_of_range, not a parse_error: it escaped as a
  // non-kiln exception and ended kilnd instead of naming the file.
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"port": 1e999})", "t.json"); }).find("t.json: not valid JSON"),
            std::string::npos);
}

TEST(ServiceConfig, FileLoadsAndMissingFileIsNamed) {
  testing::TempDir dir;
  const auto file = dir.path() / "kilnd.json";
  std::ofstream(file) << R"({"port": 0, "max_queued_jobs": 5, "max_queued_jobs_per_tenant": 2})";
  const ServiceConfig c = load_config_file(file);
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.max_queued_jobs, 5u);
  EXPECT_NE(error_message_of([&] { load_config_file(dir.path() / "absent.json"); }).find("absent.json"), std::string::npos);
}

TEST(ServiceConfig, ValidateRefusesContradictions) {
  ServiceConfig c;
  c.max_json_bytes = c.max_body_bytes + 1;
  EXPECT_NE(error_message_of([&] { validate(c); }).find("max_json_bytes"), std::string::npos);
  c = {};
  c.max_queued_jobs = 10;
  c.max_queued_jobs_per_tenant = 11;
  EXPECT_NE(error_message_of([&] { validate(c); }).find("max_queued_jobs_per_tenant"), std::string::npos);
  c = {};
  c.default_deadline = c.max_deadline + std::chrono::milliseconds(1);
  EXPECT_NE(error_message_of([&] { validate(c); }).find("default_deadline_ms"), std::string::npos);
}

TEST(ServiceConfig, GpuModeIsIsolationUnlessToldAndSizesTheDispatchers) {
  ServiceConfig c;
  EXPECT_EQ(c.gpu_mode, GpuMode::isolation);
  EXPECT_EQ(c.streams_per_gpu, 4);
  EXPECT_EQ(dispatchers_per_gpu(c, 0), c.dispatchers_per_device) << "isolation: dispatchers_per_device";
  apply_config_json(c, R"({"gpu_mode": "concurrent", "streams_per_gpu": 6, "dispatchers_per_device": 3})", "m.json");
  EXPECT_EQ(c.gpu_mode, GpuMode::concurrent);
  EXPECT_EQ(c.streams_per_gpu, 6);
  EXPECT_EQ(dispatchers_per_gpu(c, 0), 6) << "concurrent: a dispatcher per stream";
  EXPECT_NO_THROW(validate(c));
  apply_config_json(c, R"({"gpu_mode": "isolation"})", "m.json");
  EXPECT_EQ(c.gpu_mode, GpuMode::isolation);
  EXPECT_EQ(dispatchers_per_gpu(c, 0), 3);
  EXPECT_EQ(to_string(GpuMode::concurrent), "concurrent");
  EXPECT_EQ(to_string(GpuMode::isolation), "isolation");
  EXPECT_EQ(parse_gpu_mode("Concurrent"), std::nullopt);
}

// The choice is per GPU: isolation for the GPU that runs untrusted long kernels, concurrency for
// another, in one kilnd.
TEST(ServiceConfig, GpuModesChooseTheModeOfEachGpu) {
  ServiceConfig c;
  apply_config_json(c, R"({"gpu_modes": {"1": "concurrent", "3": "isolation"}, "gpu_mode": "isolation", "streams_per_gpu": 5})",
                    "m.json");
  EXPECT_EQ(gpu_mode_of(c, 0), GpuMode::isolation);
  EXPECT_EQ(gpu_mode_of(c, 1), GpuMode::concurrent);
  EXPECT_EQ(gpu_mode_of(c, 3), GpuMode::isolation);
  EXPECT_EQ(dispatchers_per_gpu(c, 1), 5);
  EXPECT_EQ(dispatchers_per_gpu(c, 0), c.dispatchers_per_device);
  apply_config_json(c, R"({"gpu_mode": "concurrent"})", "m.json");
  EXPECT_EQ(gpu_mode_of(c, 0), GpuMode::concurrent) << "gpu_mode is the default for GPUs gpu_modes leaves out";
  EXPECT_EQ(gpu_mode_of(c, 3), GpuMode::isolation);
  for (const char* bad : {R"({"gpu_modes": {"x": "concurrent"}})", R"({"gpu_modes": {"1": "fast"}})",
                          R"({"gpu_modes": ["concurrent"]})", R"({"gpu_modes": {"1": 2}})", R"({"gpu_modes": {"-1": "isolation"}})"}) {
    const std::string message = error_message_of([&] { apply_config_json(c, bad, "m.json"); });
    EXPECT_NE(message.find("gpu_modes"), std::string::npos) << bad << " -> " << message;
    EXPECT_NE(message.find("m.json"), std::string::npos) << bad << " -> " << message;
  }
}

TEST(ServiceConfig, GpuModeErrorsNameTheKeyAndTheChoices) {
  ServiceConfig c;
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"gpu_mode": "parallel"})", "m.json"); })
                .find("m.json: key 'gpu_mode': expected \"isolation\" or \"concurrent\", got \"parallel\""),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"gpu_mode": 2})", "m.json"); })
                .find("key 'gpu_mode': expected a string, got 2"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"streams_per_gpu": 0})", "m.json"); })
                .find("key 'streams_per_gpu': must be between 1 and 256, got 0"),
            std::string::npos);
  EXPECT_NE(error_message_of([&] { apply_config_json(c, R"({"streams_per_gpu": 257})", "m.json"); })
                .find("must be between 1 and 256, got 257"),
            std::string::npos);
  EXPECT_EQ(c.gpu_mode, GpuMode::isolation) << "a refused value changes nothing";
  EXPECT_EQ(c.streams_per_gpu, 4);
  c.streams_per_gpu = 0;
  EXPECT_NE(error_message_of([&] { validate(c); }).find("invalid setting: streams_per_gpu 0 is outside 1-256"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln::service
