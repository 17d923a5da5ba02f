// Prepare: from an inference model (fp32, or QDQ from quantize) to a
// training folder that TrainFolder trains and ExportFolder exports.
//
//   QAT_ASSIGN_OR_RETURN(Model qdq, Model::Load("qdq.onnx"));
//   PrepareOptions options;
//   options.graph.learn_quant_params = true;  // LSQ
//   QAT_ASSIGN_OR_RETURN(PrepareSummary summary, Prepare(qdq, "qat_dir", options));
//
// Prepare fuses each QuantizeLinear -> [Clip] -> DequantizeLinear pair into a
// FakeQuant node (qat/qdq_conversion.h; a float model passes unchanged),
// builds the training and eval models (qat/training_graph.h: the loss, the
// gradients) and writes the folder (qat/training_artifacts.h):
//
//   FOLDER/training.onnx  FOLDER/eval.onnx  FOLDER/checkpoint
//
// The checkpoint holds the initial parameters and no training state, so the
// first TrainFolder call starts a new run.  A pair that cannot be fused is
// left alone and reported in PrepareSummary::warnings (Prepare prints
// nothing).
//
// Errors: those of the fusion and of BuildTrainingModels (InvalidArgument
// naming the node or the tensor: an unknown loss output, a parameter name
// that is not an initializer, learn and observe together, an op without a
// gradient rule: Unimplemented); PermissionDenied naming the folder or file
// that cannot be written.  Every file is written atomically.
// Determinism: the folder's files are a pure function of the model and the
// options.
// Thread safety: calls on different folders may run concurrently.
#ifndef QAT_PREPARE_H_
#define QAT_PREPARE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/model.h"
#include "qat/training_graph.h"

namespace qat {

struct PrepareOptions {
  TrainingGraphOptions graph;  // the loss, frozen parameters, quant-param mode
  // Passes to skip among those prepare starts with: "opset_upgrade" (a
  // model below opset 13 is upgraded, with a warning) and
  // "promote_constants" (float Constant nodes become initializers, so that
  // they train and can be frozen).
  std::set<std::string> disabled_passes;
};

struct PrepareSummary {
  // The trainable parameters in training order, with their element counts.
  std::vector<std::string> params;
  std::vector<int64_t> param_elements;
  LossKind loss = LossKind::kCrossEntropy;
  bool observe_quant_params = false;
  std::vector<std::string> warnings;  // an opset upgrade, QDQ pairs left alone: a line each
};

// The same, in memory: the fused training and eval models, no folder.
// Pairs left alone are appended to `warnings` when it is not null.
QAT_API absl::StatusOr<TrainingModels> PrepareModels(const Model& model,
                                                     const PrepareOptions& options = {},
                                                     std::vector<std::string>* warnings = nullptr);

// The teacher a quantized model records (kSourceModelMetadataKey, written
// by QuantizeModel): the fp32 model it came from.  NotFound when it records
// none (a model that was not quantized by libqat, or not from a file).
QAT_API absl::StatusOr<std::string> RecordedTeacher(const Model& model);

QAT_API absl::StatusOr<PrepareSummary> Prepare(const Model& model, const std::string& folder,
                                               const PrepareOptions& options = {});

}  // namespace qat

#endif  // QAT_PREPARE_H_
