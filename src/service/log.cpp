#include "kiln/service/log.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

// spdlog 1.10 (Debian 12) has no callback sink: this one hands each line to a function.
class FunctionSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FunctionSink(std::function<void(std::string_view)> f) : f_(std::move(f)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override { f_(std::string_view(msg.payload.data(), msg.payload.size())); }
  void flush_() override {}

 private:
  std::function<void(std::string_view)> f_;
};

std::shared_ptr<spdlog::logger> make_logger(spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>("kilnd", std::move(sink));
  // The line is made here (text or JSON); spdlog adds only the newline. Levels are filtered
  // before a line is made, so spdlog passes everything it is given.
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);  // a crash loses no line already logged
  return logger;
}

spdlog::level::level_enum spdlog_level(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
    case LogLevel::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// UTC, milliseconds: 2026-12-02T13:40:00.123Z.
std::string timestamp() { return utc_timestamp(std::chrono::system_clock::now()); }

}  // namespace

std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
  return text;
}

namespace {

// The length of the valid UTF-8 sequence at the start of `s`, or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  std::size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || n > s.size()) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((b(i) & 0xC0) != 0x80) return 0;
  if (n == 3 && ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F))) return 0;  // overlong, surrogate
  if (n == 4 && ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F))) return 0;  // overlong, past U+10FFFF
  return n;
}

// A JSON string: quotes, backslashes and control characters escaped, bytes that are not UTF-8
// replaced by U+FFFD (a path as sent is bytes), so a line is always valid JSON.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
      ++i;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
      ++i;
    } else if (const std::size_t n = utf8_sequence(s.substr(i)); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  out += '"';
}

void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) return void(out += "null");
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, v).ptr;
  out.append(text, end);
}

void append_json_value(std::string& out, const LogField::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return append_json_string(out, *s);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return void(out += std::to_string(*i));
  if (const auto* u = std::get_if<std::uint64_t>(&v)) return void(out += std::to_string(*u));
  if (const auto* d = std::get_if<double>(&v)) return append_number(out, *d);
  if (const auto* b = std::get_if<bool>(&v)) return void(out += *b ? "true" : "false");
  out += '[';
  const auto& ids = std::get<std::vector<std::uint64_t>>(v);
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (k > 0) out += ',';
    out += std::to_string(ids[k]);
  }
  out += ']';
}

void append_json_member(std::string& out, std::string_view name, const LogField::Value& v) {
  out += ',';
  append_json_string(out, name);
  out += ':';
  append_json_value(out, v);
}

// A text value: bare when it is a plain word, else quoted the way JSON quotes strings.
std::string text_of(const LogField::Value& v) {
  std::string out;
  if (const auto* s = std::get_if<std::string>(&v)) {
    const bool plain = !s->empty() && s->find_first_of(" \t\r\n\"=\\") == std::string::npos;
    if (plain) return *s;
    append_json_string(out, *s);
  } else if (const auto* ids = std::get_if<std::vector<std::uint64_t>>(&v)) {
    for (std::uint64_t id : *ids) {
      if (!out.empty()) out += ',';
      out += std::to_string(id);
    }
    if (out.empty()) out = "none";
  } else {
    append_json_value(out, v);
  }
  return out;
}

thread_local const LogContext* current_context = nullptr;

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view text) noexcept {
  if (text == "text") return LogFormat::text;
  if (text == "json") return LogFormat::json;
  return std::nullopt;
}

std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
  for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error, LogLevel::off})
    if (text == to_string(l)) return l;
  return std::nullopt;
}

std::string_view to_string(LogFormat format) noexcept { return format == LogFormat::json ? "json" : "text"; }

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
  }
  return "info";
}

// Every discarding Log shares one logger: they are made often (defaults of constructors).
Log::Log() {
  static const std::shared_ptr<spdlog::logger> discard = make_logger(std::make_shared<spdlog::sinks::null_sink_mt>());
  logger_ = discard;
  options_.level = LogLevel::off;
}

Log::Log(std::shared_ptr<spdlog::logger> logger, LogOptions options) : logger_(std::move(logger)), options_(std::move(options)) {}

// The file behind a file log, inside a sink whose target can be swapped while others log.
struct Log::FileSink {
  std::filesystem::path file;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> sink = std::make_shared<spdlog::sinks::dist_sink_mt>();
};

namespace {

spdlog::sink_ptr open_file_sink(const std::filesystem::path& file) {
  try {
    return std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false);
  } catch (const std::exception& e) {
    throw Error(Errc::invalid_argument, "cannot open the log file " + file.string() + ": " + e.what());
  }
}

}  // namespace

Log Log::open(const LogOptions& options) {
  if (options.file.empty()) return Log(make_logger(std::make_shared<spdlog::sinks::stderr_sink_mt>()), options);
  auto file = std::make_shared<FileSink>();
  file->file = options.file;
  file->sink->add_sink(open_file_sink(options.file));
  Log log(make_logger(file->sink), options);
  log.file_ = std::move(file);
  return log;
}

void Log::reopen() const {
  if (!file_) return;
  spdlog::sink_ptr fresh = open_file_sink(file_->file);  // throws before the old one is let go
  file_->sink->flush();
  file_->sink->set_sinks({std::move(fresh)});
}

Log Log::capture(const LogOptions& options, std::function<void(std::string_view)> sink) {
  return Log(make_logger(std::make_shared<FunctionSink>(std::move(sink))), options);
}

bool Log::enabled(LogLevel level) const noexcept {
  return level != LogLevel::off && options_.level != LogLevel::off && level >= options_.level;
}

void Log::event(LogLevel level, std::string_view name, std::string_view message, const LogFields& fields) const noexcept {
  if (!enabled(level)) return;
  try {
    const std::string_view request_id = LogContext::request_id(), tenant = LogContext::tenant();
    auto has = [&](std::string_view key) {
      for (const LogField& f : fields)
        if (f.name == key) return true;
      return false;
    };
    std::string line;
    if (options_.format == LogFormat::json) {
      // Written member by member (no DOM: a request line costs about a microsecond), in a fixed
      // order: time, level, event, message, the request's id and tenant, then the fields.
      line.reserve(256);
      line = "{\"time\":\"" + timestamp() + "\",\"level\":\"";
      line += to_string(level);
      line += '"';
      append_json_member(line, "event", std::string(name));
      append_json_member(line, "message", std::string(message));
      if (!request_id.empty() && !has("request_id")) append_json_member(line, "request_id", std::string(request_id));
      if (!tenant.empty() && !has("tenant")) append_json_member(line, "tenant", std::string(tenant));
      for (const LogField& f : fields) append_json_member(line, f.name, f.value);
      line += '}';
    } else {
      line = timestamp();
      line += ' ';
      std::string upper(to_string(level));
      for (char& c : upper) c = static_cast<char>(c - 'a' + 'A');
      line += upper;
      line += ' ';
      line += name;
      line += ": ";
      line += message;
      if (!request_id.empty() && !has("request_id")) line += " request_id=" + text_of(std::string(request_id));
      if (!tenant.empty() && !has("tenant")) line += " tenant=" + text_of(std::string(tenant));
      for (const LogField& f : fields) {
        line += ' ';
        line += f.name;
        line += '=';
        line += text_of(f.value);
      }
      for (char& c : line)
        if (c == '\n' || c == '\r') c = ' ';  // one event, one line
    }
    logger_->log(spdlog_level(level), std::string_view(line));
  } catch (...) {
    // A log line that cannot be made or written is lost; the service goes on.
  }
}

void Log::flush() const noexcept {
  try {
    logger_->flush();
  } catch (...) {
  }
}

LogContext::LogContext(std::string_view request_id, std::string_view tenant) noexcept
    : request_id_(request_id), tenant_(tenant), outer_(current_context) {
  current_context = this;
}

LogContext::~LogContext() { current_context = outer_; }

std::string_view LogContext::request_id() noexcept { return current_context ? current_context->request_id_ : std::string_view(); }
std::string_view LogContext::tenant() noexcept { return current_context ? current_context->tenant_ : std::string_view(); }

}  // namespace kiln::service
