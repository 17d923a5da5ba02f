#include "qat/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace qat {
namespace {
// Set while a thread runs a task, so that a nested ParallelFor runs inline
// instead of waiting on workers that are busy with the outer loop.
thread_local bool tls_inside_task = false;

// How long a thread spins for the next loop, or for the workers to finish
// this one, before it sleeps.  An executor runs hundreds of small loops
// back to back (a transformer's forward pass takes 14 ms): woken through a
// condition variable, a worker arrived tens of microseconds late, when the
// caller had run most of the tasks itself, and two threads gave nothing.
constexpr std::chrono::microseconds kSpin{50};

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpin has passed; whether done() came true.
template <typename Done>
bool SpinUntil(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (done()) return true;
    CpuRelax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return done();
  }
}

}  // namespace

struct ThreadPool::State {
  std::vector<std::thread> workers;
  std::mutex call_mutex;  // one ParallelFor at a time

  std::mutex mutex;
  std::condition_variable work_ready;
  std::condition_variable work_done;
  bool stop = false;                       // guarded by mutex
  std::atomic<bool> stopping{false};       // stop, for the spinning workers
  std::atomic<uint64_t> generation{0};     // bumped for each ParallelFor
  const std::function<void(int64_t)>* fn = nullptr;  // guarded by mutex
  int64_t num_tasks = 0;                   // guarded by mutex
  std::atomic<int64_t> next_task{0};
  std::atomic<int> busy_workers{0};
  int sleeping_workers = 0;                // guarded by mutex

  void RunTasks(const std::function<void(int64_t)>& task, int64_t count) {
    tls_inside_task = true;
    for (int64_t i = next_task.fetch_add(1); i < count;
         i = next_task.fetch_add(1)) {
      task(i);
    }
    tls_inside_task = false;
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    const std::function<void(int64_t)>* task = nullptr;
    int64_t count = 0;
    for (;;) {
      auto has_work = [&] {
        return stopping.load(std::memory_order_acquire) ||
               generation.load(std::memory_order_acquire) != seen;
      };
      const bool spun = SpinUntil(has_work);
      {
        std::unique_lock<std::mutex> lock(mutex);
        if (!spun) {
          ++sleeping_workers;
          work_ready.wait(lock, [&] { return stop || generation.load() != seen; });
          --sleeping_workers;
        }
        if (stop) return;
        seen = generation.load();
        // A loop that has already been closed by its caller is skipped: the
        // caller no longer waits for us and `fn` may be gone.
        if (fn == nullptr) continue;
        task = fn;
        count = num_tasks;
        busy_workers.fetch_add(1);
      }
      RunTasks(*task, count);
      if (busy_workers.fetch_sub(1) == 1) {
        // Under the lock: a caller that found workers busy waits on
        // work_done only after checking again with the lock held.
        std::lock_guard<std::mutex> lock(mutex);
        work_done.notify_all();
      }
    }
  }
};

absl::Status CheckThreadCount(int64_t num_threads, absl::string_view what) {
  if (num_threads >= 0 && num_threads <= kMaxThreads) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, " is ", num_threads, "; it must be between 0 (one thread per core) and ",
      kMaxThreads));
}

absl::StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(int num_threads) {
  absl::Status status = CheckThreadCount(num_threads, "num_threads");
  if (!status.ok()) return status;
  try {
    return std::make_unique<ThreadPool>(num_threads);
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot start ", num_threads, " threads: ", e.what(),
        "; ask for fewer (num_threads, --threads)"));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start ", num_threads, " threads: out of memory"));
  }
}

ThreadPool::ThreadPool(int num_threads) : state_(std::make_unique<State>()) {
  if (num_threads <= 0) num_threads = HardwareConcurrency();
  try {
    state_->workers.reserve(num_threads - 1);
    for (int i = 1; i < num_threads; ++i) {
      state_->workers.emplace_back([s = state_.get()] { s->WorkerLoop(); });
    }
  } catch (...) {
    // The destructor does not run for a constructor that throws: stop the
    // workers that did start here, before their state goes away (else they
    // wait on a destroyed condition variable, and a joinable std::thread
    // terminates the process).
    StopWorkers();
    throw;
  }
}

ThreadPool::~ThreadPool() { StopWorkers(); }

void ThreadPool::StopWorkers() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
    state_->stopping.store(true, std::memory_order_release);
  }
  state_->work_ready.notify_all();
  for (auto& t : state_->workers) t.join();
  state_->workers.clear();
}

int ThreadPool::num_threads() const {
  return static_cast<int>(state_->workers.size()) + 1;
}

int ThreadPool::HardwareConcurrency() {
  return std::max(1u, std::thread::hardware_concurrency());
}

void ThreadPool::ParallelFor(int64_t num_tasks,
                             const std::function<void(int64_t)>& fn) {
  if (num_tasks <= 0) return;
  if (state_->workers.empty() || num_tasks == 1 || tls_inside_task) {
    for (int64_t i = 0; i < num_tasks; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> call_lock(state_->call_mutex);
  State& s = *state_;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.fn = &fn;
    s.num_tasks = num_tasks;
    s.next_task.store(0);
    s.generation.fetch_add(1, std::memory_order_release);
    wake = s.sleeping_workers > 0;  // spinning workers see the generation
  }
  if (wake) s.work_ready.notify_all();
  s.RunTasks(fn, num_tasks);
  // Close the loop so that late-arriving workers skip it, then wait for the
  // workers that joined it: spinning first, as they are about to finish.
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.fn = nullptr;
  }
  if (SpinUntil([&] { return s.busy_workers.load(std::memory_order_acquire) == 0; })) return;
  std::unique_lock<std::mutex> lock(s.mutex);
  s.work_done.wait(lock, [&] { return s.busy_workers.load() == 0; });
}

void ParallelFor(ThreadPool* pool, int64_t num_tasks,
                 const std::function<void(int64_t)>& fn) {
  if (pool != nullptr && num_tasks > 1) {
    pool->ParallelFor(num_tasks, fn);
    return;
  }
  for (int64_t i = 0; i < num_tasks; ++i) fn(i);
}

}  // namespace qat
