// What every build has of qat/collective.h; the MPI implementation is
// train/mpi_collective.cc, compiled only with QAT_WITH_MPI.
#include "qat/collective.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"

namespace qat {

Collective::~Collective() = default;

Shard ShardOf(int64_t n, int rank, int size) {
  // floor(n * r / size) without overflow: n = q * size + m.
  const int64_t q = n / size, m = n % size;
  auto start = [&](int64_t r) { return q * r + (m * r) / size; };
  return {start(rank), start(rank + 1)};
}

absl::StatusOr<std::vector<std::vector<uint64_t>>> AllgatherWords(
    Collective& collective, absl::Span<const uint64_t> words) {
  // Lengths below 2^24 travel exactly as floats.
  if (words.size() >= (size_t{1} << 24)) {
    return absl::InvalidArgumentError(absl::StrCat("AllgatherWords takes fewer than 2^24 words, got ",
                                                   words.size()));
  }
  float lengths[2] = {static_cast<float>(words.size()), static_cast<float>(words.size())};
  QAT_RETURN_IF_ERROR(collective.Allreduce(absl::MakeSpan(lengths, 1), ReduceOp::kMin));
  QAT_RETURN_IF_ERROR(collective.Allreduce(absl::MakeSpan(lengths + 1, 1), ReduceOp::kMax));
  if (lengths[0] != lengths[1]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", collective.rank(), ": the ranks' states have from ", lengths[0], " to ",
        lengths[1], " words; they must be the same model's"));
  }
  constexpr int kPieces = 4;
  const size_t n = words.size() * kPieces;
  std::vector<float> buffer(n * collective.size(), 0.0f);
  float* mine = buffer.data() + n * collective.rank();
  for (size_t i = 0; i < words.size(); ++i) {
    for (int p = 0; p < kPieces; ++p) {
      mine[i * kPieces + p] = static_cast<float>((words[i] >> (16 * p)) & 0xffff);
    }
  }
  QAT_RETURN_IF_ERROR(collective.Allreduce(absl::MakeSpan(buffer), ReduceOp::kSum));
  std::vector<std::vector<uint64_t>> all(collective.size());
  for (int r = 0; r < collective.size(); ++r) {
    const float* slot = buffer.data() + n * r;
    all[r].resize(words.size());
    for (size_t i = 0; i < words.size(); ++i) {
      uint64_t w = 0;
      for (int p = 0; p < kPieces; ++p) {
        w |= static_cast<uint64_t>(slot[i * kPieces + p]) << (16 * p);
      }
      all[r][i] = w;
    }
  }
  return all;
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
