#include "qat/prepare.h"

#include "core/checked_size.h"
#include "core/model_internal.h"
#include "graph/graph_index.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"
#include "stages/fuse_qdq_pairs.h"
#include "train/training_graph_build.h"

namespace qat {

absl::StatusOr<TrainingModels> PrepareModels(const Model& model, const PrepareOptions& options,
                                             std::vector<std::string>* warnings) {
  // A QDQ model trains through FakeQuant; a float model trains as it is.
  // The fused proto goes straight into the build (no copy, no check of its
  // own: the eval model built from it is checked).
  onnx::ModelProto fused = ModelAccess::Proto(model);
  QAT_RETURN_IF_ERROR(FuseQdqPairs(&fused, warnings));
  return training::BuildTrainingModelsFromProto(std::move(fused), model.source() + " (fused)",
                                                options.graph);
}

absl::StatusOr<PrepareSummary> Prepare(const Model& model, const std::string& folder,
                                       const PrepareOptions& options) {
  PrepareSummary summary;
  QAT_ASSIGN_OR_RETURN(TrainingModels models, PrepareModels(model, options, &summary.warnings));
  QAT_RETURN_IF_ERROR(SaveTrainingArtifacts(folder, models));
  summary.params = models.params;
  const graph::GraphIndex index(ModelAccess::Proto(models.training).graph());
  for (const std::string& name : models.params) {
    int64_t elements = 0;
    if (const onnx::TensorProto* t = index.FindInitializer(name); t != nullptr) {
      QAT_ASSIGN_OR_RETURN(elements, CheckedElementCount(t->dims()));
    }
    summary.param_elements.push_back(elements);
  }
  summary.loss = options.graph.loss.kind;
  summary.observe_quant_params = models.observe_quant_params;
  return summary;
}

}  // namespace qat
