// Loads a model file and compiles it for the executor (qat run, qat eval).
#ifndef QAT_EXAMPLES_CLI_LOAD_EXECUTOR_H_
#define QAT_EXAMPLES_CLI_LOAD_EXECUTOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "qat/executor.h"

namespace qat_cli {

// `threads` as ExecutorOptions::num_threads (0: one per core).
absl::StatusOr<std::unique_ptr<qat::Executor>> LoadExecutor(const std::string& path,
                                                            int64_t threads);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_LOAD_EXECUTOR_H_
