// Collective over MPI (qat/collective.h), the only file that includes mpi.h.
//
// kSum is an MPI_Iallgather of the ranks' buffers followed by a sum in rank
// order on every rank, not MPI_Allreduce(MPI_SUM): the MPI standard only
// recommends that a reduction's association be independent of timing and
// topology, and OpenMPI picks among algorithms (recursive doubling, ring,
// Rabenseifner) by message size, so the bits of an MPI_SUM may change with
// the buffer size or the rank count.  A gather in chunks of kChunk floats
// keeps the extra memory at size() * kChunk floats; the traffic is (size -
// 1) * n floats per rank against an allreduce's 2 (size - 1) / size * n
// (docs/training.md models the cost).  kMin and kMax are exact in any order
// and use MPI_Iallreduce.
//
// Every request is polled with MPI_Test until done or until the timeout:
// with MPI_ERRORS_RETURN a peer's failure is an error code, and a peer that
// neither answers nor fails (hung, or killed while the runtime has not yet
// noticed) is DeadlineExceeded, so a training step never waits forever.
// The C API only: OpenMPI's and MPICH's mpi.h otherwise pull in their C++
// bindings, which the C library (MPI::MPI_C) does not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qat/collective.h"

namespace qat {
namespace {

constexpr int64_t kChunk = int64_t{1} << 20;

std::string MpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return absl::StrCat("MPI error ", code);
  return std::string(text, length);
}

class MpiCollective final : public Collective {
 public:
  MpiCollective(MPI_Comm comm, int rank, int size, double timeout, bool finalize)
      : comm_(comm), rank_(rank), size_(size), timeout_(timeout), finalize_(finalize) {}

  ~MpiCollective() override {
    // After a failure a finalize could wait for the dead rank: leave it to
    // mpirun, which ends the job when a rank exits without it.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalize_ && !broken_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  absl::Status Allreduce(absl::Span<float> values, ReduceOp op) override {
    if (broken_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "MPI rank ", rank_, ": an earlier reduction failed; the job cannot go on"));
    }
    for (size_t at = 0; at < values.size(); at += kChunk) {
      const int n = static_cast<int>(std::min<size_t>(kChunk, values.size() - at));
      float* chunk = values.data() + at;
      MPI_Request request;
      int rc;
      if (op == ReduceOp::kSum) {
        gathered_.resize(static_cast<size_t>(n) * size_);
        rc = MPI_Iallgather(chunk, n, MPI_FLOAT, gathered_.data(), n, MPI_FLOAT, comm_,
                            &request);
      } else {
        rc = MPI_Iallreduce(MPI_IN_PLACE, chunk, n, MPI_FLOAT,
                            op == ReduceOp::kMin ? MPI_MIN : MPI_MAX, comm_, &request);
      }
      if (rc == MPI_SUCCESS) rc = Wait(&request);
      if (rc != MPI_SUCCESS) {
        broken_ = true;
        if (rc == kTimedOut) {
          return absl::DeadlineExceededError(absl::StrCat(
              "MPI rank ", rank_, " of ", size_, ": the other ranks did not answer within ",
              timeout_, " s in a reduction of ", n,
              " floats; a rank died or hangs (the last checkpoint holds the run: "
              "--resume goes on)"));
        }
        return absl::UnavailableError(absl::StrCat(
            "MPI rank ", rank_, " of ", size_, ": a reduction of ", n, " floats failed: ",
            MpiError(rc), " (a rank died?  the last checkpoint holds the run: --resume "
            "goes on)"));
      }
      if (op == ReduceOp::kSum) {
        for (int i = 0; i < n; ++i) {
          float sum = gathered_[i];
          for (int r = 1; r < size_; ++r) sum += gathered_[static_cast<size_t>(r) * n + i];
          chunk[i] = sum;
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  static constexpr int kTimedOut = -1;

  // MPI_SUCCESS, an MPI error code, or kTimedOut.
  int Wait(MPI_Request* request) {
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      const int rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return rc;
      if (done) return MPI_SUCCESS;
      // Spin briefly (a step's reduction usually completes in microseconds),
      // then sleep between polls.
      if (polls < 10000) continue;
      const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
      if (waited.count() > timeout_) return kTimedOut;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  MPI_Comm comm_;
  int rank_, size_;
  double timeout_;
  bool finalize_;
  bool broken_ = false;
  std::vector<float> gathered_;
};

absl::StatusOr<std::shared_ptr<Collective>> Make(MPI_Comm comm, double timeout, bool finalize) {
  if (!(timeout > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the MPI timeout must be > 0 seconds, got ", timeout));
  }
  // Errors come back as codes (the default, MPI_ERRORS_ARE_FATAL, aborts).
  int rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, &size);
  if (rc != MPI_SUCCESS) {
    return absl::InvalidArgumentError(absl::StrCat("not a usable MPI communicator: ",
                                                   MpiError(rc)));
  }
  return std::shared_ptr<Collective>(new MpiCollective(comm, rank, size, timeout, finalize));
}

}  // namespace

bool HaveMpi() { return true; }

absl::StatusOr<std::shared_ptr<Collective>> MpiWorld(double timeout_seconds) {
  // One per process: MPI initializes once, and finalizes when the last
  // reference goes.
  static std::mutex mu;
  static std::weak_ptr<Collective>* world = new std::weak_ptr<Collective>;
  std::lock_guard<std::mutex> lock(mu);
  if (std::shared_ptr<Collective> live = world->lock()) return live;
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) return absl::FailedPreconditionError("MPI was already finalized");
  if (!initialized) {
    // The thread pool's workers never call MPI: the caller's thread does.
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      return absl::UnavailableError("MPI_Init_thread failed");
    }
  }
  auto made = Make(MPI_COMM_WORLD, timeout_seconds, /*finalize=*/!initialized);
  if (made.ok()) *world = *made;
  return made;
}

absl::StatusOr<std::shared_ptr<Collective>> MpiCommunicator(const void* mpi_comm,
                                                            double timeout_seconds) {
  if (mpi_comm == nullptr) return absl::InvalidArgumentError("the MPI communicator is NULL");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    return absl::FailedPreconditionError(
        "MPI is not initialized: call MPI_Init before passing a communicator");
  }
  return Make(*static_cast<const MPI_Comm*>(mpi_comm), timeout_seconds, /*finalize=*/false);
}

}  // namespace qat
