// Ranks as threads of one process, for testing data-parallel training
// without MPI: a Collective (qat/collective.h) whose kSum adds the ranks'
// buffers in rank order, as the MPI implementation does.
#ifndef QAT_TESTS_THREAD_COLLECTIVE_H_
#define QAT_TESTS_THREAD_COLLECTIVE_H_

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qat/collective.h"

namespace qat {

// What the ranks share: one slot per rank and a generation barrier.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : slots_(size) {}
  int size() const { return static_cast<int>(slots_.size()); }

  absl::Status Allreduce(int rank, absl::Span<float> values, ReduceOp op) {
    slots_[rank].assign(values.begin(), values.end());
    Barrier();
    for (size_t i = 0; i < values.size(); ++i) {
      float v = slots_[0][i];
      for (int r = 1; r < size(); ++r) {
        const float w = slots_[r][i];
        v = op == ReduceOp::kSum ? v + w : op == ReduceOp::kMin ? std::min(v, w)
                                                                 : std::max(v, w);
      }
      values[i] = v;
    }
    Barrier();  // nobody overwrites a slot another rank still reads
    return absl::OkStatus();
  }

 private:
  void Barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    const int generation = generation_;
    if (++waiting_ == size()) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }

  std::vector<std::vector<float>> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0, generation_ = 0;
};

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
