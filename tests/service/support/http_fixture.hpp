// A real kilnd server on an ephemeral loopback port, with two tenants and a kernel cache in a fresh
// temporary folder, and a cpp-httplib client to talk to it.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "kiln/service/config.hpp"
#include "kiln/service/no_gpu_backend.hpp"
#include "kiln/service/server.hpp"

namespace kiln::testing {

inline constexpr const char* kAliceToken = "alice-token-0123456789abcdef";
inline constexpr const char* kBobToken = "bob-token-0123456789abcdef00";

// A folder removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class ServiceFixture : public ::testing::Test {
 protected:
  // Tests may change config_ before calling start().
  void SetUp() override;
  void TearDown() override;
  void start();

  httplib::Headers auth(const char* token) const { return {{"Authorization", std::string("Bearer ") + token}}; }
  httplib::Result get(const std::string& path, const char* token = kAliceToken);
  httplib::Result post(const std::string& path, const std::string& body, const char* token = kAliceToken);
  httplib::Result del(const std::string& path, const char* token = kAliceToken);
  // Registers `source` for alice; returns the response body (asserting 201 is the caller's job).
  httplib::Result register_kernel(const nlohmann::json& request, const char* token = kAliceToken);

  static nlohmann::json body_of(const httplib::Result& r);

  TempDir dir_;
  service::ServiceConfig config_;
  service::NoGpuBackend backend_{"test machine without a GPU"};
  service::GpuBackend* gpu_backend_ = &backend_;  // tests may point it at another backend before start()
  service::Log log_;                              // discards; tests may capture it before start()
  std::unique_ptr<service::Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace kiln::testing
