// The memory tier and the KernelCache facade: hits, LRU by bytes, single flight.
#include <gtest/gtest.h>

#include <latch>
#include <thread>

#include "kernels.hpp"
#include "kiln/jit/kernel_cache.hpp"

namespace {

using namespace kiln::jit;
using kiln::Errc;

Program saxpy(std::string suffix = "") {
  Program p;
  p.name = "saxpy.cu";
  p.source = std::string(test_kernels::kSaxpy) + suffix;
  return p;
}

KernelCacheOptions memory_only() {
  KernelCacheOptions o;
  o.use_disk = false;
  return o;
}

Artifact fake(int id, std::size_t image_bytes) {
  ArtifactContents c;
  c.image.assign(image_bytes, static_cast<char>('a' + id));
  c.program_name = "fake" + std::to_string(id);
  c.key.bytes[0] = static_cast<std::uint8_t>(id);
  c.key.bytes[1] = 0x5a;
  return Artifact(std::move(c), Origin::compiled);
}

TEST(MemoryCache, HitAfterMissThroughTheFacade) {
  KernelCache cache(memory_only());
  const Artifact first = cache.compile(saxpy(), Target::for_arch(90));
  EXPECT_EQ(first.origin(), Origin::compiled);
  const Artifact second = cache.compile(saxpy(), Target::for_arch(90));
  EXPECT_EQ(second.origin(), Origin::memory);
  EXPECT_EQ(second.data(), first.data());  // the same shared image, not a copy
  EXPECT_EQ(cache.find(first.key())->origin(), Origin::memory);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.memory_hits, 2u);
  EXPECT_EQ(s.memory_misses, 1u);
  EXPECT_EQ(s.memory_entries, 1u);
  EXPECT_GE(s.memory_bytes, first.size());
  EXPECT_EQ(s.compile_time_saved, 2 * first.compile_time());
  EXPECT_EQ(s.compile_time_spent, first.compile_time());
  EXPECT_NE(cache.compile(saxpy("// changed\n"), Target::for_arch(90)).origin(), Origin::memory);
}

TEST(MemoryCache, EvictsLeastRecentlyUsedByBytes) {
  const std::size_t one = fake(0, 1000).footprint();
  MemoryCache m(3 * one);
  m.insert(fake(1, 1000));
  m.insert(fake(2, 1000));
  m.insert(fake(3, 1000));
  EXPECT_EQ(m.entries(), 3u);
  ASSERT_TRUE(m.find(fake(1, 1000).key()));  // 1 is now the most recently used
  m.insert(fake(4, 1000));
  EXPECT_EQ(m.entries(), 3u);
  EXPECT_EQ(m.evictions(), 1u);
  EXPECT_FALSE(m.find(fake(2, 1000).key()));
  EXPECT_TRUE(m.find(fake(1, 1000).key()));
  EXPECT_TRUE(m.find(fake(4, 1000).key()));
  EXPECT_LE(m.bytes(), m.capacity_bytes());
}

TEST(MemoryCache, ArtifactLargerThanTheTierIsNotStored) {
  MemoryCache m(500);
  m.insert(fake(1, 1000));
  EXPECT_EQ(m.entries(), 0u);
  EXPECT_EQ(m.bytes(), 0u);
}

TEST(MemoryCache, ReinsertReplacesWithoutDoubleCounting) {
  MemoryCache m(1 << 20);
  m.insert(fake(1, 1000));
  const std::size_t bytes = m.bytes();
  m.insert(fake(1, 1000));
  EXPECT_EQ(m.bytes(), bytes);
  EXPECT_EQ(m.entries(), 1u);
  m.clear();
  EXPECT_EQ(m.entries(), 0u);
  EXPECT_EQ(m.bytes(), 0u);
}

TEST(SingleFlight, EightThreadsAskingForOneKeyCompileOnce) {
  KernelCache cache(memory_only());
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::vector<Artifact> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = cache.compile(saxpy("// single flight\n"), Target::for_arch(90));
    });
  for (auto& t : threads) t.join();
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.shared_waits + s.memory_hits, kThreads - 1u);
  EXPECT_GE(s.shared_waits, 1u);  // a compile takes far longer than the threads need to arrive
  for (const auto& r : results) EXPECT_EQ(r.data(), results[0].data());
}

TEST(SingleFlight, ACompileFailureReachesEveryWaiterOnce) {
  KernelCache cache(memory_only());
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  Program bad = saxpy("__global__ void g() { undefined_thing(); }\n");
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        cache.compile(bad, Target::for_arch(90));
      } catch (const kiln::Error& e) {
        if (e.is(Errc::compile_failed) && std::string(e.what()).find("undefined_thing") != std::string::npos)
          ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), kThreads);
  // Waiters share the leader's failure; a later caller may try again (failures are not cached).
  EXPECT_LT(cache.stats().compile_failures, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(cache.stats().compiles, 0u);
}

TEST(SingleFlight, AnExceptionReachesEveryWaiter) {
  KernelCache cache(memory_only());
  Program bad = saxpy();
  bad.options.extra = {std::string("-DX=\0", 5)};  // refused before NVRTC runs, with an exception
  constexpr int kThreads = 4;
  std::latch start(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        cache.compile(bad, Target::for_arch(90));
      } catch (const kiln::Error& e) {
        if (e.is(Errc::invalid_argument)) ++errors;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), kThreads);
}

TEST(KernelCache, TryCompileReturnsDiagnosticsInsteadOfThrowing) {
  KernelCache cache(memory_only());
  CompileResult r = cache.try_compile(saxpy("int oops = ;\n"), Target::for_arch(90));
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_EQ(r.diagnostics[0].file, "saxpy.cu");
  EXPECT_EQ(r.diagnostics[0].line, 6);
}

}  // namespace
