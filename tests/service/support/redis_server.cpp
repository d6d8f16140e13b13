#include "support/redis_server.hpp"

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "kiln/service/redis_client.hpp"

namespace kiln::testing {

namespace {

std::string find_redis_server() {
  if (std::filesystem::exists("/usr/bin/redis-server")) return "/usr/bin/redis-server";
  const char* path = std::getenv("PATH");
  std::string rest = path ? path : "";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::filesystem::path candidate = std::filesystem::path(rest.substr(0, colon)) / "redis-server";
    if (std::filesystem::exists(candidate)) return candidate.string();
    rest = colon == std::string::npos ? "" : rest.substr(colon + 1);
  }
  return {};
}

bool answers(const std::string& url) {
  try {
    service::RedisClient client(service::parse_redis_url(url), std::chrono::milliseconds(500));
    return client.command({"PING"}).text == "PONG";
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

RedisServer::RedisServer() {
  if (const char* given = std::getenv("KILN_TEST_REDIS_URL"); given && *given) {
    if (answers(given)) url_ = given;
    else why_ = std::string("KILN_TEST_REDIS_URL=") + given + " does not answer PING";
    return;
  }
  const std::string server = find_redis_server();
  if (server.empty()) {
    why_ = "no Redis: set KILN_TEST_REDIS_URL or install redis-server (Debian package redis-server)";
    return;
  }
  const std::string socket = (dir_.path() / "redis.sock").string();
  child_ = std::make_unique<Child>(std::vector<std::string>{
      server, "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
      "--logfile", (dir_.path() / "redis.log").string(), "--dir", dir_.path().string()});
  const std::string url = "unix://" + socket;
  for (int i = 0; i < 100; ++i) {
    if (std::filesystem::exists(socket) && answers(url)) {
      url_ = url;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  why_ = server + " did not answer on " + socket + " within 5 s (see its log)";
}

std::string RedisServer::unique_prefix() const {
  std::random_device random;
  return "kiln-test-" + std::to_string(getpid()) + "-" + std::to_string(random());
}

}  // namespace kiln::testing
