// Looking inside a model: the values an intermediate tensor takes on data,
// for the pipeline's activation histogram.
//
// The executor returns graph outputs only, so the probe runs a copy of the
// model in which the tensor is declared as an extra graph output.
#ifndef QAT_EXAMPLES_CLI_ACTIVATION_PROBE_H_
#define QAT_EXAMPLES_CLI_ACTIVATION_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/dataset.h"
#include "qat/model.h"

namespace qat_cli {

// The activation input of the second node whose op type is in `op_types`
// (for the MLP: the ReLU output that the second Gemm reads, i.e. the first
// hidden activation).  NotFound when the model has fewer such nodes.
absl::StatusOr<std::string> FirstHiddenActivation(const qat::Model& model,
                                                  const std::vector<std::string>& op_types);

// Every value `tensor` takes on the first `samples` examples of `data`.
absl::StatusOr<std::vector<float>> CollectActivation(const qat::Model& model,
                                                     const std::string& tensor,
                                                     const qat::Dataset& data,
                                                     int64_t samples, int threads);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_ACTIVATION_PROBE_H_
