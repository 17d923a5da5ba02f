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

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_TRAIN_TRAINING_GRAPH_BUILD_H_
