#include "kiln/service/redis_client.hpp"

#ifdef KILN_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include <charconv>
#include <optional>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

#ifdef KILN_HAVE_HIREDIS
timeval to_timeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

#endif

std::optional<int> to_int(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

#ifdef KILN_HAVE_HIREDIS
RedisReply copy_reply(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::string; out.text.assign(r.str, r.len); break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::status; out.text.assign(r.str, r.len); break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::integer; out.integer = r.integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(copy_reply(*r.element[i]));
      break;
    default: break;  // nil
  }
  return out;
}

#endif

}  // namespace

std::string RedisAddress::text() const {
  std::string t;
  if (socket.empty()) {
    t.append("redis://").append(host).append(":").append(std::to_string(port));
    if (database != 0) t.append("/").append(std::to_string(database));
  } else {
    t.append("unix://").append(socket);
    if (database != 0) t.append("?db=").append(std::to_string(database));
  }
  return t;
}

RedisAddress parse_redis_url(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return Error(Errc::invalid_argument, "queue URL '" + std::string(url) + "': " + std::string(why) +
                                             " (expected redis://host[:port][/db] or unix:///path[?db=N])");
  };
  RedisAddress a;
  if (url.starts_with("unix://")) {
    std::string_view rest = url.substr(7);
    if (auto q = rest.find("?db="); q != std::string_view::npos) {
      auto db = to_int(rest.substr(q + 4));
      if (!db || *db < 0) throw bad("the database must be a non-negative number");
      a.database = *db;
      rest = rest.substr(0, q);
    }
    if (!rest.starts_with('/')) throw bad("the socket path must be absolute");
    a.socket = std::string(rest);
    return a;
  }
  if (!url.starts_with("redis://")) throw bad("unknown scheme");
  std::string_view rest = url.substr(8);
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    auto db = to_int(rest.substr(slash + 1));
    if (!db || *db < 0) throw bad("the database must be a non-negative number");
    a.database = *db;
    rest = rest.substr(0, slash);
  }
  if (rest.find('@') != std::string_view::npos) throw bad("credentials in the URL are not supported");
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    auto port = to_int(rest.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535) throw bad("the port must be 1-65535");
    a.port = *port;
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) throw bad("no host");
  a.host = std::string(rest);
  return a;
}

const RedisReply& RedisReply::at(std::size_t i) const {
  if (type != Type::array || i >= elements.size())
    throw Error(Errc::unavailable, "unexpected reply from Redis: wanted element " + std::to_string(i) + " of an array");
  return elements[i];
}

#ifdef KILN_HAVE_HIREDIS
struct RedisClient::Context {
  redisContext* c = nullptr;
  ~Context() {
    if (c) redisFree(c);
  }
};
#else  // built without hiredis: the client exists, and says why it cannot connect
struct RedisClient::Context {};
#endif

RedisClient::RedisClient(const RedisAddress& address, std::chrono::milliseconds timeout)
    : address_(address), timeout_(timeout) {
  connect();
}

RedisClient::~RedisClient() = default;
RedisClient::RedisClient(RedisClient&&) noexcept = default;
RedisClient& RedisClient::operator=(RedisClient&&) noexcept = default;

RedisReply RedisClient::blocking_command(const std::vector<std::string_view>& args, std::chrono::milliseconds block) {
  const std::chrono::milliseconds usual = timeout_;
  set_timeout(usual + block);
  try {
    RedisReply reply = command(args);
    set_timeout(usual);
    return reply;
  } catch (...) {
    set_timeout(usual);
    throw;
  }
}

#ifdef KILN_HAVE_HIREDIS

void RedisClient::connect() {
  context_.reset();
  auto ctx = std::make_unique<Context>();
  const timeval tv = to_timeval(timeout_);
  ctx->c = address_.socket.empty() ? redisConnectWithTimeout(address_.host.c_str(), address_.port, tv)
                                   : redisConnectUnixWithTimeout(address_.socket.c_str(), tv);
  if (ctx->c == nullptr) throw Error(Errc::unavailable, "cannot reach Redis at " + address_.text() + ": out of memory");
  if (ctx->c->err)
    throw Error(Errc::unavailable, "cannot reach Redis at " + address_.text() + ": " + std::string(ctx->c->errstr));
  redisSetTimeout(ctx->c, tv);
  context_ = std::move(ctx);
  if (address_.database != 0) command({"SELECT", std::to_string(address_.database)});
}

void RedisClient::set_timeout(std::chrono::milliseconds timeout) {
  timeout_ = timeout;
  if (context_ && context_->c) redisSetTimeout(context_->c, to_timeval(timeout));
}

RedisReply RedisClient::command(const std::vector<std::string_view>& args) {
  if (!context_ || context_->c->err) connect();
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context_->c, static_cast<int>(args.size()), argv.data(), lengths.data()));
  const std::string name = args.empty() ? std::string() : std::string(args.front());
  if (reply == nullptr) {
    const std::string why = context_->c->errstr;
    context_.reset();  // unusable now: the next command reconnects
    throw Error(Errc::unavailable, "Redis at " + address_.text() + ": " + name + " failed: " + why);
  }
  std::unique_ptr<redisReply, void (*)(void*)> owned(reply, freeReplyObject);
  if (reply->type == REDIS_REPLY_ERROR)
    throw Error(Errc::unavailable, "Redis at " + address_.text() + " refused " + name + ": " + std::string(reply->str, reply->len));
  return copy_reply(*reply);
}

#else

void RedisClient::connect() {
  throw Error(Errc::unavailable, "cannot reach Redis at " + address_.text() +
                                     ": kiln was built without hiredis (install libhiredis-dev and rebuild)");
}
void RedisClient::set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
RedisReply RedisClient::command(const std::vector<std::string_view>&) {
  connect();
  return {};
}

#endif

}  // namespace kiln::service
