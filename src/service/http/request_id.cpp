#include "http/request_id.hpp"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <random>

namespace kiln::service::http {

namespace {

bool tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~"))
    if (c == t) return true;
  return false;
}

std::uint64_t process_prefix() {
  std::random_device random;
  return (static_cast<std::uint64_t>(random()) << 32) ^ random();
}

}  // namespace

bool valid_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id)
    if (!tchar(c)) return false;
  return true;
}

std::string make_request_id() {
  static const std::uint64_t prefix = process_prefix();
  static std::atomic<std::uint64_t> counter{0};
  char text[40];
  std::snprintf(text, sizeof text, "%016llx-%llx", static_cast<unsigned long long>(prefix),
                static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed) + 1));
  return text;
}

std::string request_id_for(std::string_view client_value) {
  return valid_request_id(client_value) ? std::string(client_value) : make_request_id();
}

}  // namespace kiln::service::http
