// Whole-file reads and atomic writes, for the loaders and writers.
#ifndef QAT_LIB_CORE_FILE_UTIL_H_
#define QAT_LIB_CORE_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qat {

// NotFound when the file cannot be opened, DataLoss when reading fails.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes to "<path>.tmp" and renames it over `path`, so readers never see a
// partial file; on failure the temporary file is removed.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

}  // namespace qat

#endif  // QAT_LIB_CORE_FILE_UTIL_H_
