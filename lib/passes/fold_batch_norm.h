// FoldBatchNormPass: an inference-mode BatchNormalization after a Conv,
// ConvTranspose or Gemm is folded into that layer's weight and bias, so
// that the weights quantize as the deployed model uses them (ONNX
// Runtime's quantizer preprocessing does the same).
//
// Before:  X ─> Conv(W, B) ─> t ─> BatchNormalization(scale, bias, mean, var) ─> Y
// After:   X ─> Conv(W', B') ─> Y
//          f = scale / sqrt(var + epsilon) per output channel,
//          W' = W·f (along the output-channel axis), B' = (B - mean)·f + bias
//
// Folds when: the BatchNormalization is in inference mode (training_mode 0,
// is_test not 0, and only its Y output named: before opset 14 naming the
// running statistics is what makes it train); its four parameters and the
// layer's W (and B, if present) are constants; t has no other reader and is
// not a graph output; float32 throughout.  For a Gemm, Y must be 2-D [N, M] with B's
// output axis known from transB.  The folded weight and bias are new
// initializers with fresh names (a calibration-table entry for the old
// weight no longer applies), computed in double and rounded once.  Anything
// else is left as it is.  Initializers nothing reads any more are pruned.
#ifndef QAT_LIB_PASSES_FOLD_BATCH_NORM_H_
#define QAT_LIB_PASSES_FOLD_BATCH_NORM_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

class FoldBatchNormPass : public GraphPass {
 public:
  absl::string_view name() const override { return "fold_batch_norm"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
};

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_FOLD_BATCH_NORM_H_
