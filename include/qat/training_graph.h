// Training graphs: from an inference model to the models that training runs.
//
//   QAT_ASSIGN_OR_RETURN(Model model, Model::Load("mlp.onnx"));
//   TrainingGraphOptions options;
//   options.loss.kind = LossKind::kCrossEntropy;
//   QAT_ASSIGN_OR_RETURN(TrainingModels m, BuildTrainingModels(model, options));
//
// The training model takes the model's inputs plus `labels` and returns the
// loss, then <param>_grad for every trainable parameter, in m.params order,
// then <statistic>_next for each running mean and variance of a training-
// mode BatchNormalization (its update from the batch: the Trainer writes it
// back).  Behind a quantized Conv such a BatchNormalization is folded as QAT
// simulates it, and in the eval model as it is deployed
// (docs/quantization.md, "BatchNormalization folding for QAT").
// The eval model takes the same inputs and returns the loss, then the
// model's own outputs; Dropout and BatchNormalization run in inference mode.
// Both use standard ONNX ops only (plus the FakeQuant ops the model already
// had).  The eval model passed onnx::checker and carries inferred shapes;
// the training model is checked as a pass invariant (debug builds and
// QAT_CHECK_PASS_INVARIANTS=1) and gets its shapes when it is loaded.
//
// With a teacher (distillation), the inputs are the model's own and the loss
// compares the student with the teacher (qat/loss.h, DistillOptions).
//
// Losses, each with reduction mean (default) or sum:
//   cross-entropy      SoftmaxCrossEntropyLoss(logits, labels); labels are
//                      int64 [N] (or [N, d...]); optional ignore_index and
//                      per-class weights
//   mse                mean((y - labels)^2); labels float, shaped like y
//   bce-with-logits    binary cross-entropy on logits, stable form
//                      max(y,0) - y*labels + log(1 + exp(-|y|))
//   l1                 mean(|y - labels|)
//
// Trainable parameters (lib/train/parameters.h, ChooseParameters): by
// default the float initializers that reach the loss through inputs with a
// gradient (as the gradient-rule manifest declares them; any input of an op
// it does not list) and that are a layer's weight or bias (Conv,
// ConvTranspose, Gemm, MatMul, the normalizations, an embedding Gather) or
// hold more than one element: so not scalars (a Pow exponent, an epsilon),
// quantization parameters (unless learn_quant_params), BatchNormalization
// running statistics, Dropout ratios, Clip bounds, loss class weights, nor
// constants that only feed shapes; minus `frozen`.  `trainable`, when not
// empty, names them instead.  Both lists hold glob patterns ('*', '?');
// frozen wins, and a pattern that matches nothing is an error naming it.
#ifndef QAT_TRAINING_GRAPH_H_
#define QAT_TRAINING_GRAPH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"
#include "qat/loss.h"
#include "qat/model.h"

namespace qat {

struct TrainingGraphOptions {
  LossOptions loss;
  std::vector<std::string> frozen;
  std::vector<std::string> trainable;  // empty: the default set (see above)
  // Adds gradient accumulation inputs (see docs/training.md).
  bool accumulate_gradients = false;
  // LSQ/LSQ+: the scales and zero points of FakeQuant nodes train too (they
  // are otherwise constants).  The trainer keeps scales positive and feeds
  // zero points rounded to integers in their range, as PyTorch does.
  bool learn_quant_params = false;
  // Observe mode: the scales and zero points of FakeQuant nodes stay
  // constants of the graphs, and the Trainer updates them from the values
  // it sees (moving-average min/max for activations, the current min/max
  // for weights; TrainerOptions::observe).  The training model records the
  // mode in its metadata_props (kQuantParamsMetadataKey = "observe"), so
  // that LoadTrainingModels gives it back.  Exclusive with
  // learn_quant_params.
  bool observe_quant_params = false;
  // Distillation: the teacher's graph joins the student's (its values named
  // "teacher/<name>", its inputs the student's of the same names, its
  // initializers frozen) and the loss is loss.distill's, without labels
  // unless loss.distill.label_weight > 0.  Not owned; read during the call.
  const Model* teacher = nullptr;
};

inline constexpr char kQuantParamsMetadataKey[] = "libqat.quant_params";

struct TrainingModels {
  Model training;
  Model eval;
  std::vector<std::string> params;  // trainable parameters, in output order
  // The Trainer observes the FakeQuant scales and zero points (see
  // TrainingGraphOptions::observe_quant_params).
  bool observe_quant_params = false;
};

QAT_API absl::StatusOr<TrainingModels> BuildTrainingModels(
    const Model& model, const TrainingGraphOptions& options);

}  // namespace qat

#endif  // QAT_TRAINING_GRAPH_H_
