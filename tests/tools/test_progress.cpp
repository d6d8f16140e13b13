// The progress reporter of long CLI work, on a clock the test moves: what a terminal sees (one bar
// redrawn at most ten times a second, messages above it) and what a log sees (a line at each tenth
// done or every five seconds, never one per item).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "progress.hpp"

namespace {

using kiln::cli::Progress;
using namespace std::chrono_literals;

struct FakeClock {
  Progress::Clock::time_point t{};
  std::function<Progress::Clock::time_point()> fn() {
    return [this] { return t; };
  }
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST(Progress, ALogGetsALineAtEachTenthNotOnePerItem) {
  FakeClock clock;
  std::ostringstream out;
  Progress p(out, 100, "files", false, clock.fn());
  for (int i = 0; i < 100; ++i) {
    clock.t += 10ms;
    p.advance("f.cu");
  }
  p.finish();
  const auto got = lines(out.str());
  ASSERT_EQ(got.size(), 10u) << out.str();
  EXPECT_EQ(got[0].rfind("10/100 10% 100.0 files/s ETA 1s", 0), 0u) << got[0];
  EXPECT_EQ(got.back(), "100/100 100% 100.0 files/s in 1s");
  EXPECT_EQ(out.str().find('\033'), std::string::npos);  // no terminal codes in a log
}

TEST(Progress, ASlowLogGetsALineEveryFiveSecondsWithTheTimeLeft) {
  FakeClock clock;
  std::ostringstream out;
  Progress p(out, 1000, "files", false, clock.fn());
  for (int i = 0; i < 20; ++i) {
    clock.t += 1s;
    p.advance("f.cu");
  }
  const auto got = lines(out.str());
  // A line every 5 s (no tenth was reached): at 5, 10, 15 and 20 s.
  ASSERT_EQ(got.size(), 4u) << out.str();
  EXPECT_EQ(got[0], "5/1000 0% 1.0 files/s ETA 16m35s");
  EXPECT_EQ(got[1], "10/1000 1% 1.0 files/s ETA 16m30s");
  EXPECT_EQ(got[3], "20/1000 2% 1.0 files/s ETA 16m20s");
}

TEST(Progress, ATerminalRedrawsOneBarAtMostTenTimesASecond) {
  FakeClock clock;
  std::ostringstream out;
  Progress p(out, 50, "files", true, clock.fn());
  for (int i = 0; i < 50; ++i) {
    clock.t += 1ms;
    std::string label = "k";  // (appended, not `"k" + ...`: GCC 12 warns falsely on that)
    label.append(std::to_string(i)).append(".cu");
    p.advance(label);
  }
  // The first frame, the last (forced: 50/50), nothing in between: 49 ms passed.
  EXPECT_EQ(count(out.str(), "\r\033[K"), 2u) << out.str();
  EXPECT_NE(out.str().find("[##############################] 50/50 100%"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("k49.cu"), std::string::npos);
  EXPECT_EQ(out.str().find('\n'), std::string::npos);  // in place
  p.finish();
  EXPECT_EQ(out.str().back(), '\n');
}

TEST(Progress, MessagesPrintAboveTheBar) {
  FakeClock clock;
  std::ostringstream out;
  Progress p(out, 4, "files", true, clock.fn());
  clock.t += 1s;
  p.advance("a.cu");
  p.message("broken.cu:1:23: error: identifier \"nope\" is undefined");
  const std::string s = out.str();
  const auto error = s.find("\r\033[Kbroken.cu:1:23: error");
  ASSERT_NE(error, std::string::npos) << s;
  EXPECT_NE(s.find("] 1/4 25%", error), std::string::npos) << "the bar is drawn again below: " << s;
}

TEST(Progress, NothingToDoIsDoneAtOnce) {
  FakeClock clock;
  std::ostringstream out;
  Progress p(out, 0, "files", false, clock.fn());
  p.finish();
  EXPECT_EQ(out.str(), "0/0 100%\n");
}

}  // namespace
