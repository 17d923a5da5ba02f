#include "qat/training_graph.h"

#include "train/training_graph_build.h"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model_internal.h"
#include "autodiff/gradient_rules.h"
#include "graph/graph_index.h"
#include "graph/pass_pipeline.h"
#include "passes/add_loss.h"
#include "passes/add_teacher.h"
#include "passes/fold_batch_norm_qat.h"
#include "passes/fold_shapes.h"
#include "passes/gradient_builder.h"
#include "passes/inline_control_flow.h"
#include "train/parameters.h"
#include "qat/status_macros.h"

namespace qat {

// The training-graph build.  The QDQ pairs of a quantized model became
// FakeQuant before (FuseQdqToFakeQuant, lib/stages/qdq_conversion.cc); then,
// in this order:
//  0. inline_control_flow: If and Loop fixed by constants become plain nodes
//     (no gradient rule reads a subgraph, nor does the parameter choice);
//  1. add_loss: the eval model is the inference graph with its loss and the
//     labels input; the trainable parameters are chosen on it, since only
//     what the loss depends on trains;
//  2. fold_shapes, then build_gradients: its rules read shapes, the loss's included, so it
//     runs on the eval model after that model's one check and shape
//     inference (ModelAccess::FromProto), which the eval model needs anyway.
// The training model is not checked again: the model it derives from was
// (as the eval model), and what build_gradients adds is the pass's own
// output, checked as a pass invariant (onnx::checker and shape inference
// after the pass) in debug builds and with QAT_CHECK_PASS_INVARIANTS=1, as
// the tests run.  Nothing reads its shapes before it is saved (the executor
// plans from the graph itself), and loading the saved file checks it and
// infers them.  On long graphs the check and inference were most of
// prepare's time.
namespace training {

absl::StatusOr<TrainingModels> BuildTrainingModelsFromProto(
    ArenaModelProto eval, const std::string& source, const TrainingGraphOptions& options) {
  if (options.learn_quant_params && options.observe_quant_params) {
    return absl::InvalidArgumentError(
        "quantization parameters can be learned or observed, not both");
  }
  passes::PassPipeline loss;
  loss.Add(std::make_unique<passes::InlineControlFlowPass>());  // before choosing parameters
  std::vector<std::string> frozen = options.frozen;
  std::optional<ArenaModelProto> teacher;
  if (options.teacher != nullptr) {
    teacher.emplace(ModelAccess::CopyProto(*options.teacher));
    loss.Add(std::make_unique<training::AddTeacherPass>(*teacher->get()));
    // The teacher trains nothing (a pattern must match, so only when it has weights).
    if ((*teacher)->graph().initializer_size() > 0) {
      frozen.push_back(absl::StrCat(kTeacherPrefix, "*"));
    }
  }
  loss.Add(std::make_unique<training::AddLossPass>(options.loss, options.teacher != nullptr));
  QAT_RETURN_IF_ERROR(loss.Run(eval.get()).status());
  teacher.reset();
  QAT_ASSIGN_OR_RETURN(std::vector<std::string> params,
                       training::ChooseParameters(
                           eval->graph(), kLossOutput,
                           {options.trainable, frozen, options.learn_quant_params}));
  // Training-mode BatchNormalization (chosen parameters first, so that the
  // running statistics never train): the training forward folds it as
  // QAT simulates it, the eval model as it is deployed (fold_batch_norm_qat.h).
  std::optional<ArenaModelProto> training_forward;
  if (passes::HasTrainingBatchNorm(*eval)) {
    training_forward.emplace(*eval);
    passes::PassPipeline train_fold, eval_fold;
    train_fold.Add(std::make_unique<passes::FoldBatchNormQatPass>(
        passes::BatchNormFoldMode::kTraining));
    eval_fold.Add(std::make_unique<passes::FoldBatchNormQatPass>(passes::BatchNormFoldMode::kEval));
    QAT_RETURN_IF_ERROR(train_fold.Run(training_forward->get()).status());
    QAT_RETURN_IF_ERROR(eval_fold.Run(eval.get()).status());
    (*training_forward)->mutable_graph()->clear_value_info();
  }
  eval->mutable_graph()->clear_value_info();  // inferred anew for the new graph
  QAT_ASSIGN_OR_RETURN(Model eval_model,
                       ModelAccess::FromProto(std::move(eval), source + " (eval)"));
  ArenaModelProto training = ModelAccess::CopyProto(eval_model);
  if (training_forward) {  // checked and shape-inferred, as the rules need
    QAT_ASSIGN_OR_RETURN(Model forward, ModelAccess::FromProto(std::move(*training_forward),
                                                               source + " (training)"));
    training = ModelAccess::CopyProto(forward);
  }
  passes::PassPipeline gradients;
  // Shape computations the model fixes become constants first, so that
  // the rules see them (the batch may stay symbolic).
  gradients.Add(std::make_unique<passes::FoldShapesPass>());
  gradients.Add(std::make_unique<training::BuildGradientsPass>(training::BuildGradientsConfig{
      kLossOutput, params, options.accumulate_gradients}));
  QAT_RETURN_IF_ERROR(gradients.Run(training.get()).status());
  passes::AddRunningStatisticOutputs(training.get());
  if (options.observe_quant_params) {
    onnx::StringStringEntryProto* entry = training->add_metadata_props();
    entry->set_key(kQuantParamsMetadataKey);
    entry->set_value("observe");
  }
  ModelLoadOptions checked_as_invariant;
  checked_as_invariant.check = false;
  checked_as_invariant.infer_shapes = false;
  QAT_ASSIGN_OR_RETURN(Model training_model,
                       ModelAccess::FromProto(std::move(training), source + " (training)",
                                              checked_as_invariant));
  return TrainingModels{std::move(training_model), std::move(eval_model),
                        std::move(params), options.observe_quant_params};
}

absl::StatusOr<Model> BuildFrozenBatchNormTraining(const TrainingModels& models) {
  bool accumulate = false;
  for (const ValueInfo& v : models.training.inputs()) {
    accumulate = accumulate || v.name == "lazy_reset_grad";
  }
  ArenaModelProto training = ModelAccess::CopyProto(models.eval);
  passes::PassPipeline gradients;
  gradients.Add(std::make_unique<passes::FoldShapesPass>());
  gradients.Add(std::make_unique<training::BuildGradientsPass>(
      training::BuildGradientsConfig{kLossOutput, models.params, accumulate}));
  QAT_RETURN_IF_ERROR(gradients.Run(training.get()).status());
  ModelLoadOptions checked_as_invariant;
  checked_as_invariant.check = false;
  checked_as_invariant.infer_shapes = false;
  return ModelAccess::FromProto(std::move(training),
                                models.eval.source() + " (training, BatchNorm frozen)",
                                checked_as_invariant);
}

}  // namespace training

absl::StatusOr<TrainingModels> BuildTrainingModels(
    const Model& model, const TrainingGraphOptions& options) {
  return training::BuildTrainingModelsFromProto(ModelAccess::CopyProto(model), model.source(),
                                                options);
}

}  // namespace qat
