// kilnd's structured log: one line per event, as text (default) or as JSON lines, through an
// spdlog logger. An event has a level, a name (`request`, `policy_refused`, `worker_exited`, ...),
// a message for people and fields for machines; docs/SERVICE.md ("Logs") lists them.
//
// Log is a small handle that can be copied and passed to what logs (the server, the core, the
// cluster's compile consumers): kilnd makes one from its settings (stderr or a file), tests make
// one that captures the lines. A default-constructed Log discards everything.
//
// What must never be logged: tokens, kernel sources, buffer bytes. Callers log names, sizes, ids
// and kiln's explanations only; a test runs requests carrying each and greps the whole log.
//
// LogContext adds the request id and tenant of the request a thread is serving to every event it
// logs while the context lives, so an event deep in the core carries the request's id.
//
// Thread safety: a Log may be used from any thread at once (spdlog's sinks lock); LogContext is
// per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace spdlog {
class logger;
}

namespace kiln::service {

enum class LogFormat : std::uint8_t { text, json };
enum class LogLevel : std::uint8_t { debug, info, warn, error, off };

std::optional<LogFormat> parse_log_format(std::string_view text) noexcept;  // "text", "json"
std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;    // "debug" ... "off"
std::string_view to_string(LogFormat format) noexcept;
std::string_view to_string(LogLevel level) noexcept;
// "2026-12-02T13:40:00.123Z": UTC, milliseconds, as every log line's time.
std::string utc_timestamp(std::chrono::system_clock::time_point t);

struct LogOptions {
  LogFormat format = LogFormat::text;
  LogLevel level = LogLevel::info;
  std::filesystem::path file;  // empty: standard error
};

// One field of an event: a name and a string, integer, number or flag (a list of ids for buffers).
struct LogField {
  using Value = std::variant<std::string, std::int64_t, std::uint64_t, double, bool, std::vector<std::uint64_t>>;
  std::string_view name;
  Value value;

  LogField(std::string_view n, std::string_view v) : name(n), value(std::string(v)) {}
  LogField(std::string_view n, const std::string& v) : name(n), value(v) {}
  LogField(std::string_view n, const char* v) : name(n), value(std::string(v)) {}
  LogField(std::string_view n, bool v) : name(n), value(v) {}
  LogField(std::string_view n, int v) : name(n), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view n, long v) : name(n), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view n, long long v) : name(n), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view n, unsigned v) : name(n), value(static_cast<std::uint64_t>(v)) {}
  LogField(std::string_view n, unsigned long v) : name(n), value(static_cast<std::uint64_t>(v)) {}
  LogField(std::string_view n, unsigned long long v) : name(n), value(static_cast<std::uint64_t>(v)) {}
  LogField(std::string_view n, double v) : name(n), value(v) {}
  LogField(std::string_view n, std::vector<std::uint64_t> v) : name(n), value(std::move(v)) {}
};

using LogFields = std::vector<LogField>;

class Log {
 public:
  Log();  // discards every event
  // To standard error or options.file (appended; created when missing). Throws kiln::Error
  // (invalid_argument) naming the file when it cannot be opened.
  static Log open(const LogOptions& options);
  // Every line, formatted as `options` says and without its newline, to `sink` (tests).
  static Log capture(const LogOptions& options, std::function<void(std::string_view line)> sink);

  bool enabled(LogLevel level) const noexcept;
  void event(LogLevel level, std::string_view name, std::string_view message, const LogFields& fields = {}) const noexcept;
  void debug(std::string_view name, std::string_view message, const LogFields& fields = {}) const noexcept {
    event(LogLevel::debug, name, message, fields);
  }
  void info(std::string_view name, std::string_view message, const LogFields& fields = {}) const noexcept {
    event(LogLevel::info, name, message, fields);
  }
  void warn(std::string_view name, std::string_view message, const LogFields& fields = {}) const noexcept {
    event(LogLevel::warn, name, message, fields);
  }
  void error(std::string_view name, std::string_view message, const LogFields& fields = {}) const noexcept {
    event(LogLevel::error, name, message, fields);
  }
  // Writes what the sinks hold (a file) now.
  void flush() const noexcept;
  // A log to a file opens it again by its name (kilnd does on SIGHUP, after logrotate moved the
  // file away): later lines go to the new file, every copy of this Log included. Nothing for
  // standard error or a capture. Throws kiln::Error naming the file when it cannot be opened
  // (the old file is kept then).
  void reopen() const;

 private:
  Log(std::shared_ptr<spdlog::logger> logger, LogOptions options);
  std::shared_ptr<spdlog::logger> logger_;
  struct FileSink;
  std::shared_ptr<FileSink> file_;  // a file log's sink and name, which reopen() swaps
  LogOptions options_;
};

// The request this thread serves, for the events it logs meanwhile (see above). Nests: the inner
// context wins until it ends.
class LogContext {
 public:
  LogContext(std::string_view request_id, std::string_view tenant) noexcept;
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

  // The innermost context's values on this thread ("" outside any).
  static std::string_view request_id() noexcept;
  static std::string_view tenant() noexcept;

 private:
  std::string_view request_id_, tenant_;
  const LogContext* outer_;
};

}  // namespace kiln::service
