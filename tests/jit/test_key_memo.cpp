// detail::KeyMemo: a memo hit is exactly the digest's key, programs are never confused, the bound
// holds, and threads may share it.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "jit/detail/key_bytes.hpp"
#include "jit/detail/key_memo.hpp"

namespace {

using namespace kiln::jit;

const KeyContext kContext{13000, {"/cuda/include"}};

Program program(int n) {
  Program p;
  p.source = "__global__ void k" + std::to_string(n) + "() {}";
  return p;
}

CacheKey memo_key(detail::KeyMemo& memo, const Program& p, const Target& t = Target::for_arch(90)) {
  return memo.key(detail::key_bytes(p, t, kContext));
}

TEST(KeyMemo, GivesTheDigestsKeyWhetherItHitsOrNot) {
  detail::KeyMemo memo(1 << 20);
  for (int round = 0; round < 2; ++round)  // the second round is answered from the memo
    for (int n = 0; n < 10; ++n) EXPECT_EQ(memo_key(memo, program(n)), cache_key(program(n), Target::for_arch(90), kContext));
}

TEST(KeyMemo, NeverConfusesProgramsOrTargets) {
  detail::KeyMemo memo(1 << 20);
  const CacheKey a = memo_key(memo, program(1));
  EXPECT_NE(memo_key(memo, program(2)), a);
  EXPECT_NE(memo_key(memo, program(1), Target::for_arch(80)), a);
  EXPECT_NE(memo_key(memo, program(1), Target::for_arch(90, ImageKind::ptx)), a);
  EXPECT_EQ(memo_key(memo, program(1)), a);
}

TEST(KeyMemo, StartsOverPastItsBoundAndStaysRight) {
  const std::size_t one = detail::key_bytes(program(0), Target::for_arch(90), kContext).size();
  detail::KeyMemo memo(3 * one);  // room for three programs' bytes
  for (int round = 0; round < 3; ++round)
    for (int n = 0; n < 7; ++n) EXPECT_EQ(memo_key(memo, program(n)), cache_key(program(n), Target::for_arch(90), kContext));
  detail::KeyMemo tiny(1);  // nothing fits: every key is computed, and right
  EXPECT_EQ(memo_key(tiny, program(3)), cache_key(program(3), Target::for_arch(90), kContext));
}

TEST(KeyMemo, ThreadsShareIt) {
  detail::KeyMemo memo(1 << 20);
  std::vector<CacheKey> expected;
  for (int n = 0; n < 16; ++n) expected.push_back(cache_key(program(n), Target::for_arch(90), kContext));
  std::vector<std::thread> threads;
  std::vector<int> wrong(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const int n = (i * 7 + t) % 16;
        if (memo_key(memo, program(n)) != expected[n]) ++wrong[t];
      }
    });
  for (auto& t : threads) t.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

}  // namespace
