#include "kiln/service/recent_activity.hpp"

#include <algorithm>
#include <cmath>

#include "kiln/driver/error.hpp"

namespace kiln::service {

namespace {

// `text` cut to at most `limit` bytes without splitting a UTF-8 sequence.
void cut_utf8(std::string& text, std::size_t limit) {
  if (text.size() <= limit) return;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  text += "…";
}

double percentile(const std::vector<float>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest sample with at least p of the samples at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

void RecentActivity::launch_ended(double seconds, Clock::time_point now) noexcept {
  try {
    std::lock_guard lock(mutex_);
    const auto second = std::chrono::duration_cast<std::chrono::seconds>(now - started_).count();
    Second& slot = per_second_[static_cast<std::size_t>(second) % per_second_.size()];
    if (slot.second != second) slot = {second, 0};
    ++slot.count;
    samples_.emplace_back(now, static_cast<float>(seconds * 1e3));
    while (samples_.size() > kMaxSamples || (!samples_.empty() && samples_.front().first < now - kWindow))
      samples_.pop_front();
  } catch (...) {
    // Out of memory for one sample: the window misses it.
  }
}

void RecentActivity::failure(RecentFailure f) noexcept {
  try {
    if (const ErrorInfo* info = f.error.empty() ? nullptr : find_error(f.error)) {
      if (f.explanation.empty()) f.explanation = std::string(info->description);
      if (f.hint.empty()) f.hint = std::string(info->hint);
    }
    cut_utf8(f.message, kMaxMessageBytes);
    std::lock_guard lock(mutex_);
    failures_.push_back(std::move(f));
    while (failures_.size() > kMaxFailures) failures_.pop_front();
  } catch (...) {
  }
}

LaunchWindow RecentActivity::launches(Clock::time_point now) const {
  LaunchWindow w;
  std::vector<float> latencies;
  const auto second = std::chrono::duration_cast<std::chrono::seconds>(now - started_).count();
  {
    std::lock_guard lock(mutex_);
    std::uint64_t in_rate_window = 0;
    for (const Second& s : per_second_) {
      if (s.second < 0 || s.second > second || second - s.second >= kWindow.count()) continue;
      w.launches += s.count;
      // The current second counts, and the kRateWindow - 1 whole seconds before it.
      if (second - s.second < kRateWindow.count()) in_rate_window += s.count;
    }
    const double since_start = std::chrono::duration<double>(now - started_).count();
    const double rate_span = std::clamp(since_start, 1.0, static_cast<double>(kRateWindow.count()));
    w.launches_per_second = static_cast<double>(in_rate_window) / rate_span;
    w.window_s = std::min(since_start, static_cast<double>(kWindow.count()));
    latencies.reserve(samples_.size());
    for (const auto& [end, ms] : samples_)
      if (end >= now - kWindow) latencies.push_back(ms);
  }
  std::sort(latencies.begin(), latencies.end());
  w.samples = latencies.size();
  w.p50_ms = percentile(latencies, 0.50);
  w.p90_ms = percentile(latencies, 0.90);
  w.p99_ms = percentile(latencies, 0.99);
  w.max_ms = latencies.empty() ? 0 : latencies.back();
  return w;
}

std::vector<RecentFailure> RecentActivity::failures() const {
  std::lock_guard lock(mutex_);
  return {failures_.rbegin(), failures_.rend()};
}

}  // namespace kiln::service
