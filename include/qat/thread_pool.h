// A fixed pool of worker threads that runs index-parallel loops.
//
// Determinism is the caller's job and is easy to keep: ParallelFor hands out
// task indices, never thread identities, so a kernel that cuts its work into
// tasks by size alone (not by thread count) gets bit-identical results with
// any number of threads.
//
// Thread safety: one ParallelFor at a time per pool.  Calls from several
// threads are serialized; a nested call from inside a task runs inline.
#ifndef QAT_THREAD_POOL_H_
#define QAT_THREAD_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "qat/api.h"

namespace qat {

class QAT_API ThreadPool {
 public:
  // `num_threads` counts the calling thread, so 1 means "no workers".
  // 0 means one per hardware thread.
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
  std::unique_ptr<State> state_;
};

// Runs fn(i) for i in [0, num_tasks): on `pool` when it is non-null and there
// is more than one task, inline otherwise.
QAT_API void ParallelFor(ThreadPool* pool, int64_t num_tasks,
                         const std::function<void(int64_t)>& fn);

}  // namespace qat

#endif  // QAT_THREAD_POOL_H_
