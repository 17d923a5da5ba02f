// Einsum as a function, for the Einsum kernel and its tests: the fast path
// (diagonals, sums and transposes by restriding, contractions through
// Gemm()) and the plain reference loop it is checked against.
#ifndef QAT_LIB_EXEC_OPS_EINSUM_H_
#define QAT_LIB_EXEC_OPS_EINSUM_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "qat/tensor.h"
#include "qat/thread_pool.h"

namespace qat {
namespace exec {

// out = einsum(equation, inputs...) (numpy's rules; all inputs of one
// numeric type).  InvalidArgument for a bad equation or shapes that do not
// fit it.
absl::Status Einsum(ThreadPool* pool, const std::string& equation,
                    const std::vector<const Tensor*>& inputs, Tensor* out);

// The same by one loop over every combination of labels.
absl::Status EinsumReference(const std::string& equation,
                             const std::vector<const Tensor*>& inputs, Tensor* out);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_EINSUM_H_
