// The training-graph build on a proto that the caller owns: for stages that
// transform the model just before (prepare's QDQ fusion), so that the model
// is neither copied nor checked in between.  BuildTrainingModels (public,
// qat/training_graph.h) is this on a copy of a loaded model.
#ifndef QAT_LIB_TRAIN_TRAINING_GRAPH_BUILD_H_
#define QAT_LIB_TRAIN_TRAINING_GRAPH_BUILD_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/arena_model_proto.h"
#include "qat/training_graph.h"

namespace qat {
namespace training {

// `model` need not have been checked: the eval model is checked (with
// shape inference) before the gradients are built.  `source` names it in
// errors.
absl::StatusOr<TrainingModels> BuildTrainingModelsFromProto(
    ArenaModelProto model, const std::string& source, const TrainingGraphOptions& options);

// The training model with BatchNormalization frozen (PyTorch's
// freeze_bn_stats): the gradients of the eval model, whose BatchNorms use
// the running statistics (folded as deployed where the QAT folding applies:
// for a Conv, FakeQuant(W·f) with f = γ/σ_running and bias β + (b - μ)·f is
// PyTorch's frozen ConvBn2d, conv/f + b normalized by the running
// statistics, written out), and which returns no running statistics.
// Loss first, then <param>_grad for models.params, as the training model.
absl::StatusOr<Model> BuildFrozenBatchNormTraining(const TrainingModels& models);

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_TRAIN_TRAINING_GRAPH_BUILD_H_
