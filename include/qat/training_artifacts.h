// Training artifacts on disk: the folder that `qat prepare` writes and
// `qat train` / `qat export` read.
//
//   DIR/training.onnx   the training model (loss, then <param>_grad outputs)
//   DIR/eval.onnx       the eval model (loss, then the model's outputs)
//   DIR/checkpoint      parameters and training state (qat/checkpoint.h)
//
// Every file is written atomically.  The parameter order is the order of
// the training model's gradient outputs.  Prepare (qat/prepare.h) writes
// the folder, TrainFolder (qat/train_folder.h) trains it, ExportFolder
// (qat/export.h, which also holds ExportInferenceModel and
// ExportedParameters, included here for code written before it) exports it.
#ifndef QAT_TRAINING_ARTIFACTS_H_
#define QAT_TRAINING_ARTIFACTS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/checkpoint.h"
#include "qat/api.h"
#include "qat/export.h"
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

// Writes a model atomically: Model::Save, kept for code written before it.
inline absl::Status SaveModel(const Model& model, const std::string& path) {
  return model.Save(path);
}

}  // namespace qat

#endif  // QAT_TRAINING_ARTIFACTS_H_
