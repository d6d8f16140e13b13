// Captures what a service::Log writes, line by line, for tests to parse (JSON) or grep.
//
// Thread safety: the Log it makes may write from any thread; the readers copy under its lock.
#pragma once

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/service/log.hpp"

namespace kiln::testing {

// Every line a Log wrote, kept in order.
class LogCapture {
 public:
  service::Log make(service::LogFormat format, service::LogLevel level = service::LogLevel::debug) {
    return service::Log::capture({format, level, {}}, [this](std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  std::string all() {
    std::string out;
    for (const std::string& l : lines()) out += l + "\n";
    return out;
  }
  // The JSON lines whose "event" is `name` (every line must be JSON).
  std::vector<nlohmann::json> events(std::string_view name) {
    std::vector<nlohmann::json> out;
    for (const std::string& l : lines()) {
      nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
      EXPECT_TRUE(j.is_object()) << "not a JSON object: " << l;
      if (j.is_object() && j.value("event", "") == name) out.push_back(std::move(j));
    }
    return out;
  }
  // The request lines of one request id.
  std::vector<nlohmann::json> requests(std::string_view id) {
    std::vector<nlohmann::json> out;
    for (nlohmann::json& j : events("request"))
      if (j.value("request_id", "") == id) out.push_back(std::move(j));
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

}  // namespace kiln::testing
