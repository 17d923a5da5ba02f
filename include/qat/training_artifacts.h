// Training artifacts on disk: the folder that `qat prepare` writes and
// `qat train` / `qat export` read.
//
//   DIR/training.onnx   the training model (loss, then <param>_grad outputs)
//   DIR/eval.onnx       the eval model (loss, then the model's outputs)
//   DIR/checkpoint      parameters and training state (qat/checkpoint.h)
//
// Every file is written atomically.  The parameter order is the order of
// the training model's gradient outputs.
#ifndef QAT_TRAINING_ARTIFACTS_H_
#define QAT_TRAINING_ARTIFACTS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/checkpoint.h"
#include "qat/api.h"
#include "qat/model.h"
#include "qat/tensor.h"
#include "qat/training_graph.h"

namespace qat {

inline constexpr char kTrainingModelFile[] = "training.onnx";
inline constexpr char kEvalModelFile[] = "eval.onnx";
inline constexpr char kCheckpointFile[] = "checkpoint";

// Creates DIR if needed and writes the three files; the checkpoint holds
// the models' initial parameters and no training state.
QAT_API absl::Status SaveTrainingArtifacts(const std::string& dir,
                                           const TrainingModels& models);

// Reads the two models back (the parameter list comes from the training
// model's outputs).
QAT_API absl::StatusOr<TrainingModels> LoadTrainingModels(const std::string& dir);

// The eval model as a plain inference model: without the loss and the
// labels, with `params` (when given) written over the initializers of the
// same name.
QAT_API absl::StatusOr<Model> ExportInferenceModel(
    const Model& eval, const std::map<std::string, Tensor>& params = {});

// What an export writes over the eval model's initializers: the
// checkpoint's parameters and, in observe mode, its observed scales and
// zero points.
QAT_API std::map<std::string, Tensor> ExportedParameters(const Checkpoint& checkpoint);

// Writes a model atomically.
QAT_API absl::Status SaveModel(const Model& model, const std::string& path);

}  // namespace qat

#endif  // QAT_TRAINING_ARTIFACTS_H_
