// The header of an .npy file: its dtype, its shape and where its data
// starts, so that a reader can map the data instead of copying it.
#ifndef QAT_LIB_DATA_NPY_HEADER_H_
#define QAT_LIB_DATA_NPY_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/tensor.h"

namespace qat {

struct NpyHeader {
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // from the start of the bytes
  size_t data_bytes = 0;   // exactly what the dtype and shape need
};

// Parses the header at the start of `bytes` (a whole .npy file) and checks
// that the data after it holds exactly what the header says.
// InvalidArgument (without the file's name; the caller adds it) otherwise.
absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes);

}  // namespace qat

#endif  // QAT_LIB_DATA_NPY_HEADER_H_
