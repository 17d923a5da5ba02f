// Reading .npz archives (numpy.savez and numpy.savez_compressed): a zip of
// .npy files.  Stored members are read in place from a memory mapping;
// deflated ones are inflated into memory.
#ifndef QAT_LIB_DATA_NPZ_H_
#define QAT_LIB_DATA_NPZ_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/mapped_file.h"

namespace qat {

struct NpzMember {
  std::string name;         // without ".npy"
  absl::string_view bytes;  // the member's .npy file; valid while the archive lives
};

struct NpzArchive {
  std::shared_ptr<const MappedFile> file;
  std::vector<std::shared_ptr<const std::string>> inflated;
  std::vector<NpzMember> members;
};

// InvalidArgument naming the file for anything that is not a zip of .npy
// members (truncated, encrypted, another compression method).
absl::StatusOr<std::shared_ptr<const NpzArchive>> OpenNpz(const std::string& path);

}  // namespace qat

#endif  // QAT_LIB_DATA_NPZ_H_
