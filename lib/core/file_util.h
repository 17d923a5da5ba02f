// Whole-file reads, and the atomic writes of qat/file_io.h, for the loaders
// and writers.
#ifndef QAT_LIB_CORE_FILE_UTIL_H_
#define QAT_LIB_CORE_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "qat/file_io.h"

namespace qat {

// NotFound when the file cannot be opened, DataLoss when reading fails.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace qat

#endif  // QAT_LIB_CORE_FILE_UTIL_H_
