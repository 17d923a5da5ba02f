#include "qat/thread_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace qat {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t tasks : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(tasks);
      pool.ParallelFor(tasks, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < tasks; ++i) ASSERT_EQ(hits[i].load(), 1);
    }
  }
}

TEST(ThreadPoolTest, DefaultUsesEveryHardwareThread) {
  ThreadPool pool;
  EXPECT_EQ(pool.num_threads(), ThreadPool::HardwareConcurrency());
}

TEST(ThreadPoolTest, ManyShortLoopsInARow) {
  // Catches lost wake-ups and workers that run a finished loop's function.
  ThreadPool pool(4);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 2000; ++rep) {
    pool.ParallelFor(3, [&](int64_t i) { sum.fetch_add(i + 1); });
  }
  EXPECT_EQ(sum.load(), 2000 * 6);
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(3);
  std::atomic<int> count{0};
  pool.ParallelFor(4, [&](int64_t) {
    pool.ParallelFor(5, [&](int64_t) { count.fetch_add(1); });
  });
  EXPECT_EQ(count.load(), 20);
}

TEST(ThreadPoolTest, CallsFromSeveralThreadsAreSerialized) {
  ThreadPool pool(3);
  std::atomic<int> count{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 100; ++rep) {
        pool.ParallelFor(10, [&](int64_t) { count.fetch_add(1); });
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(count.load(), 4 * 100 * 10);
}

TEST(ThreadPoolTest, NullPoolRunsInline) {
  int count = 0;
  ParallelFor(nullptr, 5, [&](int64_t) { ++count; });
  EXPECT_EQ(count, 5);
}

}  // namespace
}  // namespace qat
