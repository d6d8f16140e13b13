// RedisClient: one blocking connection to a Redis server (hiredis), with the replies copied into
// plain values. kilnd's shared queue (RedisStreamQueue) is built on it; nothing else in kiln needs
// Redis. The address is a URL: redis://host[:port][/db] or unix:///path/to/socket[?db=N].
//
// Thread safety: none; a connection serves one thread at a time. Give each thread its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::service {

struct RedisAddress {
  std::string host;       // empty for a Unix socket
  int port = 6379;
  std::string socket;     // the Unix socket's path, or empty
  int database = 0;
  std::string text() const;  // as given, for messages
};

// Throws kiln::Error (Errc::invalid_argument) naming what is wrong with the URL.
RedisAddress parse_redis_url(std::string_view url);

struct RedisReply {
  enum class Type : std::uint8_t { nil, string, integer, array, status };
  Type type = Type::nil;
  std::string text;  // string and status
  long long integer = 0;
  std::vector<RedisReply> elements;

  bool is_nil() const noexcept { return type == Type::nil; }
  const RedisReply& at(std::size_t i) const;  // throws kiln::Error when not an array that long
};

class RedisClient {
 public:
  // Connects (and SELECTs the database). Throws kiln::Error (Errc::unavailable) naming the address.
  explicit RedisClient(const RedisAddress& address, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~RedisClient();
  RedisClient(RedisClient&&) noexcept;
  RedisClient& operator=(RedisClient&&) noexcept;

  // One command, arguments binary-safe. An error reply or a broken connection throws kiln::Error
  // (Errc::unavailable) naming the command and Redis's message; after a broken connection the next
  // command reconnects once.
  RedisReply command(const std::vector<std::string_view>& args);
  RedisReply command(std::initializer_list<std::string_view> args) { return command(std::vector<std::string_view>(args)); }

  // A command that blocks on the server for up to `block` (BLPOP, XREADGROUP BLOCK): the
  // connection's timeout is raised by `block` for this command only.
  RedisReply blocking_command(const std::vector<std::string_view>& args, std::chrono::milliseconds block);

  // How long a command may take before the connection is given up.
  void set_timeout(std::chrono::milliseconds timeout);

  const RedisAddress& address() const noexcept { return address_; }

 private:
  struct Context;
  void connect();

  RedisAddress address_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Context> context_;
};

}  // namespace kiln::service
