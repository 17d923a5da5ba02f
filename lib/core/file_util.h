// Whole-file reads, and the atomic writes of qat/file_io.h, for the loaders
// and writers.
#ifndef QAT_LIB_CORE_FILE_UTIL_H_
#define QAT_LIB_CORE_FILE_UTIL_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/file_io.h"

namespace qat {

// NotFound when the file cannot be opened, DataLoss when reading fails.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// WriteFileAtomically for a file made of pieces, which are never all in
// memory at once: `produce` passes each piece, in order, to the WritePiece
// it is given and returns the first error.  A write error is WriteFileAtomically's;
// an error of the producer's own is returned as it is.  Either way the
// temporary file is removed and `path` is left as it was.
using WritePiece = absl::FunctionRef<absl::Status(absl::string_view)>;
absl::Status WriteFileAtomicallyInPieces(const std::string& path,
                                         absl::FunctionRef<absl::Status(WritePiece)> produce);

}  // namespace qat

#endif  // QAT_LIB_CORE_FILE_UTIL_H_
