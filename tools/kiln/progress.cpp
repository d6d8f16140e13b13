#include "progress.hpp"

#include <cstdio>

namespace kiln::cli {
namespace {

constexpr auto kRedraw = std::chrono::milliseconds(100);  // a terminal: at most ten frames a second
constexpr auto kLineEvery = std::chrono::seconds(5);      // elsewhere: a line this often
constexpr std::size_t kLinePercentStep = 10;              // or at each tenth done

std::string duration_text(double seconds) {
  char buf[32];
  if (seconds < 60) std::snprintf(buf, sizeof buf, "%.0fs", seconds);
  else if (seconds < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(seconds) / 60, int(seconds) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(seconds) / 3600, int(seconds) % 3600 / 60);
  return buf;
}

}  // namespace

Progress::Progress(std::ostream& out, std::size_t total, std::string unit, bool terminal,
                   std::function<Clock::time_point()> now)
    : out_(out), total_(total), unit_(std::move(unit)), terminal_(terminal), now_(std::move(now)), start_(now_()), last_draw_(start_) {}

std::string Progress::status() const {
  const std::size_t percent = total_ ? done_ * 100 / total_ : 100;
  std::string s = std::to_string(done_) + "/" + std::to_string(total_) + " " + std::to_string(percent) + "%";
  const double elapsed = std::chrono::duration<double>(now_() - start_).count();
  if (done_ > 0 && elapsed > 0) {
    const double rate = double(done_) / elapsed;
    char buf[48];
    std::snprintf(buf, sizeof buf, " %.1f %s/s", rate, unit_.c_str());
    s += buf;
    if (done_ < total_) s += " ETA " + duration_text(double(total_ - done_) / rate);
    else s += " in " + duration_text(elapsed);
  }
  return s;
}

void Progress::advance(const std::string& label) {
  std::lock_guard lock(mutex_);
  ++done_;
  draw(label, done_ == total_);
}

void Progress::message(const std::string& text) {
  std::lock_guard lock(mutex_);
  if (terminal_ && drawn_) out_ << "\r\033[K";
  out_ << text;
  if (!text.empty() && text.back() != '\n') out_ << '\n';
  if (terminal_) draw("", true);
  out_ << std::flush;
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  draw("", true);
  if (terminal_ && drawn_) out_ << '\n';
  out_ << std::flush;
}

void Progress::draw(const std::string& label, bool force) {
  const Clock::time_point now = now_();
  if (terminal_) {
    if (!force && drawn_ && now - last_draw_ < kRedraw) return;
    constexpr std::size_t width = 30;
    const std::size_t filled = total_ ? width * done_ / total_ : width;
    out_ << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] " << status();
    if (!label.empty()) out_ << "  " << label;
    out_ << std::flush;
  } else {
    const std::size_t percent = total_ ? done_ * 100 / total_ : 100;
    const bool step = percent >= last_line_percent_ + kLinePercentStep;
    if (!force && !step && now - last_draw_ < kLineEvery) return;
    if (force && drawn_ && percent == last_line_percent_ && done_ == total_) return;  // said already
    last_line_percent_ = percent;
    out_ << status() << "\n" << std::flush;
  }
  last_draw_ = now;
  drawn_ = true;
}

}  // namespace kiln::cli
