// Ranks as threads of one process: what they share for a rank-order
// reduction (one slot per rank and a generation barrier).  The trainer's
// batch shards under synchronized BatchNorm run as such threads, and the
// tests' ThreadCollective (tests/thread_collective.h) is built on it.
#ifndef QAT_LIB_TRAIN_THREAD_GROUP_H_
#define QAT_LIB_TRAIN_THREAD_GROUP_H_

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "qat/collective.h"

namespace qat {

class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : slots_(size) {}
  int size() const { return static_cast<int>(slots_.size()); }

  // Collective::Allreduce for `rank`: kSum adds the ranks' buffers in rank
  // order, ((b0 + b1) + b2) + ..., as MpiCollective does.  Cancelled once a
  // rank called Abort (so a failing rank does not leave the others waiting).
  absl::Status Allreduce(int rank, absl::Span<float> values, ReduceOp op) {
    slots_[rank].assign(values.begin(), values.end());
    if (!Barrier()) return Aborted(rank);
    for (size_t i = 0; i < values.size(); ++i) {
      float v = slots_[0][i];
      for (int r = 1; r < size(); ++r) {
        const float w = slots_[r][i];
        v = op == ReduceOp::kSum ? v + w : op == ReduceOp::kMin ? std::min(v, w)
                                                                 : std::max(v, w);
      }
      values[i] = v;
    }
    // Nobody overwrites a slot another rank still reads.
    if (!Barrier()) return Aborted(rank);
    return absl::OkStatus();
  }

  // Wakes every waiting rank with an error; Reset (with no rank running)
  // makes the group usable again.
  void Abort() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = false;
    waiting_ = 0;
  }

 private:
  bool Barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    if (aborted_) return false;
    const int generation = generation_;
    if (++waiting_ == size()) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return true;
    }
    cv_.wait(lock, [&] { return generation_ != generation || aborted_; });
    return generation_ != generation;
  }
  static absl::Status Aborted(int rank) {
    return absl::CancelledError(
        absl::StrCat("rank ", rank, ": another rank of the group failed"));
  }

  std::vector<std::vector<float>> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0, generation_ = 0;
  bool aborted_ = false;
};

// Rank `rank` of a ThreadGroup as a Collective.
class ThreadGroupMember final : public Collective {
 public:
  ThreadGroupMember(ThreadGroup* group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  absl::Status Allreduce(absl::Span<float> values, ReduceOp op) override {
    return group_->Allreduce(rank_, values, op);
  }

 private:
  ThreadGroup* group_;
  int rank_;
};

}  // namespace qat

#endif  // QAT_LIB_TRAIN_THREAD_GROUP_H_
