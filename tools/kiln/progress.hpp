// Progress of long CLI work (`kiln compile --warm`): on a terminal, one bar redrawn in place with the
// count, the rate and the time left; elsewhere (a log, CI), a plain line now and then, so a log of
// thousands of files stays short. Messages (a failed file's diagnostics) print above the bar.
//
// Thread safety: all calls lock; any thread may call them.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>

namespace kiln::cli {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  // `now` is the clock (tests give their own). `terminal`: redraw in place with ANSI erase codes.
  Progress(std::ostream& out, std::size_t total, std::string unit, bool terminal,
           std::function<Clock::time_point()> now = Clock::now);

  // One more item done; `label` names it on the bar.
  void advance(const std::string& label);
  // Text above the bar (printed whole, then the bar again).
  void message(const std::string& text);
  // The last state, then a newline on a terminal.
  void finish();

  // "12/40 30% 3.2 files/s ETA 9s": what both forms show (rate and ETA once something is done).
  std::string status() const;

 private:
  void draw(const std::string& label, bool force);

  std::ostream& out_;
  const std::size_t total_;
  const std::string unit_;
  const bool terminal_;
  const std::function<Clock::time_point()> now_;
  const Clock::time_point start_;
  mutable std::mutex mutex_;
  std::size_t done_ = 0;
  Clock::time_point last_draw_;
  std::size_t last_line_percent_ = 0;
  bool drawn_ = false;
};

}  // namespace kiln::cli
