#include "kiln/service/redis_stream_queue.hpp"

#include <charconv>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

// Adds a job: a new id, its record, its stream entry. KEYS: next, stream. ARGV: record prefix,
// payload, origin, tenant.
constexpr std::string_view kEnqueue = R"lua(
local id = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
redis.call('HSET', ARGV[1] .. id, 'state', 'queued', 'origin', ARGV[3], 'tenant', ARGV[4],
           'enqueued_ms', now[1] * 1000 + math.floor(now[2] / 1000), 'deliveries', 0, 'completions', 0)
redis.call('XADD', KEYS[2], '*', 'job', id, 'origin', ARGV[3], 'payload', ARGV[2])
return id
)lua";

// Marks a claimed job running under its consumer; returns the group's delivery count, or -1 when
// the consumer does not hold it. KEYS: stream, record. ARGV: group, consumer, entry.
constexpr std::string_view kStart = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[2], 'state', 'running', 'consumer', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'deliveries', 1)
return p[1][4]
)lua";

// Renews the lease (XCLAIM to the same consumer resets the idle time; JUSTID leaves the delivery
// count alone) only if the consumer still holds the job. KEYS: stream. ARGV: group, consumer, entry.
constexpr std::string_view kExtend = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
)lua";

// The one completion. KEYS: stream, record, reply. ARGV: group, consumer, entry, retention
// seconds, then result field/value pairs.
constexpr std::string_view kComplete = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], 'state', 'done', 'completed_by', ARGV[2],
           'completed_ms', now[1] * 1000 + math.floor(now[2] / 1000))
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', KEYS[2], 'completions', 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[3], 'done')
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
)lua";

std::string field(const RedisReply& fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2)
    if (fields.elements[i].text == name) return fields.elements[i + 1].text;
  return {};
}

std::uint64_t to_u64(std::string_view text) {
  std::uint64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

JobRecord to_record(const RedisReply& r) {
  JobRecord out;
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) out[r.elements[i].text] = r.elements[i + 1].text;
  return out;
}

}  // namespace

// A connection borrowed from the queue's pool for one call; always returned (a broken connection
// reconnects on its next command).
class RedisStreamQueue::Lease {
 public:
  explicit Lease(RedisStreamQueue& q) : q_(q), c_(q.borrow()) {}
  ~Lease() { q_.give_back(std::move(c_)); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  RedisClient* operator->() { return c_.get(); }

 private:
  RedisStreamQueue& q_;
  std::unique_ptr<RedisClient> c_;
};

RedisStreamQueue::RedisStreamQueue(RedisAddress address, StreamQueueOptions options)
    : address_(std::move(address)), options_(std::move(options)) {
  Lease c(*this);
  const RedisReply info = c->command({"INFO", "server"});
  const auto at = info.text.find("redis_version:");
  const int major = at == std::string::npos ? 0 : std::atoi(info.text.c_str() + at + 14);
  const auto dot = at == std::string::npos ? std::string::npos : info.text.find('.', at);
  const int minor = dot == std::string::npos ? 0 : std::atoi(info.text.c_str() + dot + 1);
  if (major < 6 || (major == 6 && minor < 2))
    throw Error(Errc::unavailable, "Redis at " + address_.text() + " is version " + std::to_string(major) + "." +
                                       std::to_string(minor) + "; kilnd's shared queue needs 6.2 or newer (XAUTOCLAIM)");
  try {
    c->command({"XGROUP", "CREATE", key("stream"), options_.group, "0", "MKSTREAM"});
  } catch (const Error& e) {
    if (std::string(e.what()).find("BUSYGROUP") == std::string::npos) throw;  // it exists: fine
  }
}

RedisStreamQueue::~RedisStreamQueue() = default;

std::unique_ptr<RedisClient> RedisStreamQueue::borrow() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return std::make_unique<RedisClient>(address_);
}

void RedisStreamQueue::give_back(std::unique_ptr<RedisClient> client) {
  if (!client) return;
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(client));
}

std::string RedisStreamQueue::key(std::string_view suffix) const {
  return options_.prefix + ":" + options_.name + ":" + std::string(suffix);
}

std::uint64_t RedisStreamQueue::enqueue(std::string_view payload, std::string_view origin, std::string_view tenant) {
  Lease c(*this);
  const RedisReply r = c->command({"EVAL", kEnqueue, "2", key("next"), key("stream"), key("job:"), payload, origin, tenant});
  return static_cast<std::uint64_t>(r.integer);
}

std::optional<StreamJob> RedisStreamQueue::claim(std::string_view consumer, std::chrono::milliseconds block) {
  Lease c(*this);
  const std::string stream = key("stream");
  const std::string lease_ms = std::to_string(options_.lease.count());
  StreamJob job;
  // [id, [field, value, ...]] of the entry this consumer now holds, or nothing.
  const RedisReply* entry = nullptr;
  const RedisReply autoclaimed =
      c->command({"XAUTOCLAIM", stream, options_.group, consumer, lease_ms, "0-0", "COUNT", "1"});
  RedisReply read;
  if (autoclaimed.at(1).elements.size() == 1 && !autoclaimed.at(1).at(0).is_nil()) {
    entry = &autoclaimed.at(1).at(0);
    job.reclaimed = true;
  } else {
    read = c->blocking_command({"XREADGROUP", "GROUP", options_.group, consumer, "COUNT", "1", "BLOCK",
                                std::to_string(block.count()), "STREAMS", stream, ">"},
                               block);
    if (read.is_nil() || read.elements.empty() || read.at(0).at(1).elements.empty()) return std::nullopt;
    entry = &read.at(0).at(1).at(0);
  }
  job.entry = entry->at(0).text;
  const RedisReply& fields = entry->at(1);
  job.id = to_u64(field(fields, "job"));
  job.origin = field(fields, "origin");
  job.payload = field(fields, "payload");
  const RedisReply started = c->command({"EVAL", kStart, "2", stream, key("job:" + std::to_string(job.id)),
                                         options_.group, consumer, job.entry});
  if (started.integer < 0) return std::nullopt;  // lost it at once (cannot happen unless the lease is tiny)
  job.deliveries = static_cast<std::uint32_t>(started.integer);
  return job;
}

bool RedisStreamQueue::extend(const StreamJob& job, std::string_view consumer) {
  Lease c(*this);
  return c->command({"EVAL", kExtend, "1", key("stream"), options_.group, consumer, job.entry}).integer == 1;
}

bool RedisStreamQueue::complete(const StreamJob& job, std::string_view consumer, const JobRecord& result) {
  Lease c(*this);
  const std::string id = std::to_string(job.id);
  const std::string retention = std::to_string(options_.retention.count());
  const std::string stream = key("stream"), record = key("job:" + id), reply = key("reply:" + id);
  std::vector<std::string_view> args = {"EVAL", kComplete, "3", stream, record, reply,
                                        options_.group, consumer, job.entry, retention};
  for (const auto& [name, value] : result) {
    args.push_back(name);
    args.push_back(value);
  }
  return c->command(args).integer == 1;
}

std::optional<JobRecord> RedisStreamQueue::wait(std::uint64_t id, std::chrono::milliseconds timeout) {
  Lease c(*this);
  const std::string reply = key("reply:" + std::to_string(id));
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.3f", std::max<double>(0.001, timeout.count() / 1000.0));
  const RedisReply r = c->blocking_command({"BLPOP", reply, seconds}, timeout);
  if (r.is_nil()) return std::nullopt;
  return to_record(c->command({"HGETALL", key("job:" + std::to_string(id))}));
}

JobRecord RedisStreamQueue::record(std::uint64_t id) {
  Lease c(*this);
  return to_record(c->command({"HGETALL", key("job:" + std::to_string(id))}));
}

RedisStreamQueue::Depth RedisStreamQueue::depth() {
  Lease c(*this);
  const auto length = static_cast<std::size_t>(c->command({"XLEN", key("stream")}).integer);
  const RedisReply pending = c->command({"XPENDING", key("stream"), options_.group});
  const auto claimed = static_cast<std::size_t>(pending.at(0).integer);
  return {length > claimed ? length - claimed : 0, claimed};
}

}  // namespace kiln::service
