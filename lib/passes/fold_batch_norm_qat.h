// FoldBatchNormQatPass: the simulated BatchNorm folding of QAT (Jacob et al.
// 2018, section 3.2; Krishnamoorthi 2018, section 3.2; PyTorch's
// torch.ao.nn.intrinsic.qat.ConvBn2d), for a training-mode
// BatchNormalization after a Conv whose weight is fake-quantized.
//
// Before (a quantized model after QDQ -> FakeQuant):
//   X ─> Conv(FakeQuant(W, s, z), b) ─> t ─> BatchNormalization(γ, β, μ, v; training) ─> Y
//
// With f = γ / sqrt(v + ε) per output channel (the running variance v):
// kTraining (the forward of the training model):
//   X ─> Conv(FakeQuant(W·f, s', z)) ─> ÷f ─> +b ─> BatchNormalization(training) ─> Y
//   the FakeQuant sees the folded weight, and the batch statistics undo
//   the running ones (÷f) and normalize: so the gradients reach W, γ, β and
//   b as in PyTorch, and the running statistics update as the model's own.
// kEval (the eval model, and what export writes):
//   X ─> Conv(FakeQuant(W·f, s', z), β + (b - μ)·f) ─> Y
//   the deployed form: the export evaluates W·f and the bias with the
//   executor (lib/stages/evaluate_folded_weights.h), so that the int8
//   model computes bit for bit what the eval model does.
// s' = s·|f| per channel (s·max|f| for a per-tensor scale): quantize chose
// s for W, the FakeQuant now sees W·f.  The nodes computing f, W·f and the
// folded bias read only initializers and are named kBatchNormFoldPrefix...
//
// Folds when: the BatchNormalization is in training mode (training_mode=1
// from opset 14, running-statistics outputs named before), its input has
// no other reader and is not a graph output, and comes from a Conv whose W
// is FakeQuant(initializer) with axis 0 (or per-tensor) and no other
// reader; γ, β, μ, v (and the Conv's bias, if any) are float initializers
// with one value per output channel.
//
// Every other training-mode BatchNormalization: kEval puts it in inference
// mode (running statistics); kTraining leaves it as it is.
//
// In both modes, kTraining also names each training-mode node's running-
// statistics outputs <statistic>kRunningStatSuffix ("<mean>_next",
// "<var>_next"; momentum as the node's), for a statistic that is an
// initializer; AddRunningStatisticOutputs lists them as graph outputs once
// the gradients are built, and the trainer writes them back after each step.
#ifndef QAT_LIB_PASSES_FOLD_BATCH_NORM_QAT_H_
#define QAT_LIB_PASSES_FOLD_BATCH_NORM_QAT_H_

#include "graph/graph_pass.h"

namespace qat {
namespace passes {

inline constexpr char kBatchNormFoldPrefix[] = "bn_fold/";
inline constexpr char kRunningStatSuffix[] = "_next";

enum class BatchNormFoldMode { kTraining, kEval };

class FoldBatchNormQatPass : public GraphPass {
 public:
  explicit FoldBatchNormQatPass(BatchNormFoldMode mode) : mode_(mode) {}
  absl::string_view name() const override { return "fold_batch_norm_qat"; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override;
  BatchNormFoldMode mode_;
};

// Whether the graph has a BatchNormalization in training mode.
bool HasTrainingBatchNorm(const onnx::ModelProto& model);

// Lists every node output named <initializer>kRunningStatSuffix as a graph
// output (float, the initializer's shape), after the existing outputs.
void AddRunningStatisticOutputs(onnx::ModelProto* model);

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_FOLD_BATCH_NORM_QAT_H_
