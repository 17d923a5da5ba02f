// What every build has of qat/collective.h; the MPI implementation is
// train/mpi_collective.cc, compiled only with QAT_WITH_MPI.
#include "qat/collective.h"

#include <cstdlib>

namespace qat {

Collective::~Collective() = default;

Shard ShardOf(int64_t n, int rank, int size) {
  // floor(n * r / size) without overflow: n = q * size + m.
  const int64_t q = n / size, m = n % size;
  auto start = [&](int64_t r) { return q * r + (m * r) / size; };
  return {start(rank), start(rank + 1)};
}

bool LaunchedByMpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && std::atoi(v) > 1) return true;
  }
  return false;
}

#ifndef QAT_WITH_MPI
bool HaveMpi() { return false; }

absl::StatusOr<std::shared_ptr<Collective>> MpiWorld(double) {
  return absl::UnimplementedError(
      "this libqat was built without MPI (configure with libopenmpi-dev installed and "
      "-DQAT_WITH_MPI=ON)");
}

absl::StatusOr<std::shared_ptr<Collective>> MpiCommunicator(const void*, double) {
  return MpiWorld(0);
}
#endif

}  // namespace qat
