// Ranks as threads of one process, for testing data-parallel training
// without MPI: a Collective (qat/collective.h) whose kSum adds the ranks'
// buffers in rank order, as the MPI implementation does.
#ifndef QAT_TESTS_THREAD_COLLECTIVE_H_
#define QAT_TESTS_THREAD_COLLECTIVE_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qat/collective.h"
#include "train/thread_group.h"

namespace qat {

class ThreadCollective final : public Collective {
 public:
  ThreadCollective(std::shared_ptr<ThreadGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  absl::Status Allreduce(absl::Span<float> values, ReduceOp op) override {
    ++calls;
    return group_->Allreduce(rank_, values, op);
  }
  int calls = 0;

 private:
  std::shared_ptr<ThreadGroup> group_;
  int rank_;
};

// Runs body(rank, collective) on `size` threads and waits for them.
inline void RunRanks(int size,
                     const std::function<void(int, std::shared_ptr<Collective>)>& body) {
  auto group = std::make_shared<ThreadGroup>(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] { body(r, std::make_shared<ThreadCollective>(group, r)); });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace qat

#endif  // QAT_TESTS_THREAD_COLLECTIVE_H_
