// A fixed pool of worker threads that runs index-parallel loops.
//
// Determinism is the caller's job and is easy to keep: ParallelFor hands out
// task indices, never thread identities, so a kernel that cuts its work into
// tasks by size alone (not by thread count) gets bit-identical results with
// any number of threads.
//
// Thread safety: one ParallelFor at a time per pool.  Calls from several
// threads are serialized; a nested call from inside a task runs inline.
//
// Thread counts: every option that sets one (ExecutorOptions,
// CalibrateOptions, TrainerOptions, the CLI's --threads) accepts 0 (one per
// hardware thread) to kMaxThreads, checked by CheckThreadCount; a count the
// system cannot start is ResourceExhausted from Create, never an abort.
#ifndef QAT_THREAD_POOL_H_
#define QAT_THREAD_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"

namespace qat {

// The largest thread count an option may ask for.  A fixed number rather
// than a multiple of the hardware threads, so that a command valid on one
// machine is valid on every other (results depend on the thread count).
inline constexpr int kMaxThreads = 256;

// OK for 0 .. kMaxThreads; otherwise InvalidArgument naming `what` (the
// option, e.g. "num_threads") and the range.
QAT_API absl::Status CheckThreadCount(int64_t num_threads, absl::string_view what);

class QAT_API ThreadPool {
 public:
  // `num_threads` counts the calling thread, so 1 means "no workers".
  // 0 means one per hardware thread.  InvalidArgument outside 0 ..
  // kMaxThreads; ResourceExhausted when the system cannot start the
  // threads (those already started are stopped and joined first).
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(int num_threads = 0);

  // As Create, for a count the caller has checked; throws std::system_error
  // when a thread cannot be started, after stopping and joining the
  // workers it did start.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const;

  // Calls fn(i) once for every i in [0, num_tasks), spread over the pool's
  // threads including the caller, and returns when all calls have returned.
  void ParallelFor(int64_t num_tasks, const std::function<void(int64_t)>& fn);

  // Number of hardware threads, at least 1.
  static int HardwareConcurrency();

 private:
  struct State;
  // Stops and joins every started worker.
  void StopWorkers();
  std::unique_ptr<State> state_;
};

// Runs fn(i) for i in [0, num_tasks): on `pool` when it is non-null and there
// is more than one task, inline otherwise.
QAT_API void ParallelFor(ThreadPool* pool, int64_t num_tasks,
                         const std::function<void(int64_t)>& fn);

}  // namespace qat

#endif  // QAT_THREAD_POOL_H_
