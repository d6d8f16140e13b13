#include "support/http_fixture.hpp"

#include <random>

namespace kiln::testing {

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() / ("kiln-service-test-" + std::to_string(random()) + "-" + std::to_string(random()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void ServiceFixture::SetUp() {
  config_.port = 0;
  config_.cache_dir = dir_.path() / "cache";
  config_.http_threads = 4;
  config_.drain_timeout = std::chrono::milliseconds(200);
}

void ServiceFixture::start() {
  const std::string tokens = std::string("alice ") + kAliceToken + "\nbob " + kBobToken + "\n";
  server_ = std::make_unique<service::Server>(config_, service::TokenStore::parse(tokens, "test tokens"), *gpu_backend_,
                                              nullptr, log_);
  server_->start();
  client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  client_->set_read_timeout(std::chrono::seconds(60));
}

void ServiceFixture::TearDown() {
  client_.reset();
  if (server_) server_->stop();
  server_.reset();
}

httplib::Result ServiceFixture::get(const std::string& path, const char* token) {
  return token ? client_->Get(path, auth(token)) : client_->Get(path);
}

httplib::Result ServiceFixture::post(const std::string& path, const std::string& body, const char* token) {
  return token ? client_->Post(path, auth(token), body, "application/json") : client_->Post(path, body, "application/json");
}

httplib::Result ServiceFixture::del(const std::string& path, const char* token) {
  return token ? client_->Delete(path, auth(token)) : client_->Delete(path);
}

httplib::Result ServiceFixture::register_kernel(const nlohmann::json& request, const char* token) {
  return post("/v1/kernels", request.dump(), token);
}

nlohmann::json ServiceFixture::body_of(const httplib::Result& r) {
  EXPECT_TRUE(r) << "no HTTP response: " << httplib::to_string(r.error());
  if (!r) return {};
  auto parsed = nlohmann::json::parse(r->body, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << "not JSON: " << r->body;
  return parsed;
}

}  // namespace kiln::testing
