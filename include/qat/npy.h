// Reading and writing numpy .npy files (format version 1.0).
//
// Supported dtypes: float32 (<f4), float64 (<f8), int64 (<i8), int32 (<i4),
// int8 (|i1), uint8 (|u1) and bool (|b1), little-endian, C order.  Anything
// else (Fortran order, big-endian, other dtypes, a truncated file) is an
// InvalidArgument naming the file.  WriteNpy writes to a temporary file and
// renames it into place, so a failed write never leaves a partial file.
#ifndef QAT_NPY_H_
#define QAT_NPY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

// Parses the bytes of an .npy file; `source` names it in error messages.
QAT_API absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes,
                                        const std::string& source = "<bytes>");
QAT_API std::string SerializeNpy(const Tensor& tensor);

QAT_API absl::StatusOr<Tensor> ReadNpy(const std::string& path);
QAT_API absl::Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace qat

#endif  // QAT_NPY_H_
