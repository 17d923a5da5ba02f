// ExportFolder; ExportQuantizedModel lives in qdq_conversion.cc and
// ExportInferenceModel in training_artifacts.cc.
#include "qat/export.h"

#include "qat/status_macros.h"
#include "qat/training_artifacts.h"

namespace qat {

absl::StatusOr<Model> ExportFolder(const std::string& folder, const ExportOptions& options) {
  QAT_ASSIGN_OR_RETURN(TrainingModels models, LoadTrainingModels(folder));
  QAT_ASSIGN_OR_RETURN(Checkpoint checkpoint,
                       LoadCheckpoint(folder + "/" + kCheckpointFile));
  return ExportQuantizedModel(models.eval, ExportedParameters(checkpoint), options);
}

}  // namespace qat
