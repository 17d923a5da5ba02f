// The export's half of the QAT BatchNorm folding (passes/fold_batch_norm_qat.h):
// the eval model computes the folded weight W·γ/σ and bias β + (b - μ)·γ/σ
// with nodes named kBatchNormFoldPrefix..., from the trained parameters.
// The export evaluates exactly those nodes with libqat's executor, the
// same kernels the eval model runs, and stores their results as
// initializers: so the FakeQuant over the folded weight becomes an int8
// weight, and the exported model computes bit for bit what the eval model
// does.
#ifndef QAT_LIB_STAGES_EVALUATE_FOLDED_WEIGHTS_H_
#define QAT_LIB_STAGES_EVALUATE_FOLDED_WEIGHTS_H_

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace qat {

// No change when the model has no such nodes.  An error names the node
// when one reads anything but initializers and other fold nodes.
absl::Status EvaluateFoldedWeights(onnx::ModelProto* model);

}  // namespace qat

#endif  // QAT_LIB_STAGES_EVALUATE_FOLDED_WEIGHTS_H_
