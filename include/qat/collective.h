// Collective: the reductions that data-parallel training needs, over any
// transport (MPI, or a caller's own through the C ABI's allreduce hook).
//
//   QAT_ASSIGN_OR_RETURN(std::shared_ptr<Collective> world, MpiWorld());
//   TrainerOptions options;
//   options.collective = world;   // each rank trains on its shard
//
// A Collective spans `size()` ranks, numbered 0..size()-1; every rank calls
// the same reductions in the same order with buffers of the same length.
//
// Determinism: kSum adds the ranks' buffers in rank order, ((b0 + b1) + b2)
// + ..., so every rank gets the same bits whatever the message timing.
// kMin and kMax are exact in any order.
//
// Failure: a reduction that cannot complete (a rank died, or none answered
// within the implementation's timeout) returns an error (Unavailable or
// DeadlineExceeded) naming the rank; it never hangs forever.
#ifndef QAT_COLLECTIVE_H_
#define QAT_COLLECTIVE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/api.h"

namespace qat {

enum class ReduceOp { kSum = 0, kMin = 1, kMax = 2 };

class QAT_API Collective {
 public:
  virtual ~Collective();
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Replaces `values` on every rank by the elementwise reduction over the
  // ranks (kSum in rank order, see above).
  virtual absl::Status Allreduce(absl::Span<float> values, ReduceOp op) = 0;
};

// The examples [begin, end) of a batch of `n` that rank `rank` of `size`
// takes: contiguous, in rank order, sizes differing by at most one (so an
// evenly divisible batch splits evenly).
struct Shard {
  int64_t begin = 0;
  int64_t end = 0;
};
QAT_API Shard ShardOf(int64_t n, int rank, int size);

// Every rank's `words`, in rank order, on every rank: a gather made of
// Allreduce(kSum), each word travelling as four 16-bit pieces in floats
// (exact) in its rank's slot of a zeroed buffer.  For small states such as
// calibration observers (the traffic grows with size() squared).
// InvalidArgument when the ranks' lengths differ.
QAT_API absl::StatusOr<std::vector<std::vector<uint64_t>>> AllgatherWords(
    Collective& collective, absl::Span<const uint64_t> words);

// True when this libqat was built with MPI (QAT_WITH_MPI).
QAT_API bool HaveMpi();

// True when the process was started by mpirun / mpiexec with more than one
// rank (OpenMPI's, PMIx's or MPICH's environment variables say so).
QAT_API bool LaunchedByMpirun();

// MPI_COMM_WORLD: initializes MPI if nobody did (and then finalizes it when
// the last reference goes), with MPI_ERRORS_RETURN so a dead rank is an
// error, not an abort; a reduction that waits longer than `timeout_seconds`
// for the other ranks returns DeadlineExceeded.  Unimplemented in a build
// without MPI.
QAT_API absl::StatusOr<std::shared_ptr<Collective>> MpiWorld(double timeout_seconds = 20.0);

// The same over a caller's communicator: `mpi_comm` points at an MPI_Comm
// of the MPI this libqat was built with; it must outlive the Collective.
QAT_API absl::StatusOr<std::shared_ptr<Collective>> MpiCommunicator(
    const void* mpi_comm, double timeout_seconds = 20.0);

}  // namespace qat

#endif  // QAT_COLLECTIVE_H_
