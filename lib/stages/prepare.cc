#include "qat/prepare.h"

#include <algorithm>
#include <optional>

#include "core/checked_size.h"
#include "core/model_internal.h"
#include "graph/graph_index.h"
#include "graph/pass_pipeline.h"
#include "passes/opset_upgrade.h"
#include "passes/promote_constants.h"
#include "qat/qdq_conversion.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"

namespace qat {

absl::StatusOr<TrainingModels> PrepareModels(const Model& model, const PrepareOptions& options,
                                             std::vector<std::string>* warnings) {
  // Old opsets are upgraded and Constant-node weights become initializers
  // (so that they train and can be frozen) before anything else; a model
  // that needs neither is not copied.
  const onnx::ModelProto& original = ModelAccess::Proto(model);
  const bool has_constants = std::any_of(original.graph().node().begin(),
                                         original.graph().node().end(),
                                         passes::IsPromotableConstant);
  std::optional<Model> upgraded;
  std::vector<std::string> upgrade_warnings;
  if (has_constants || passes::DefaultOpset(original) < passes::kUpgradeTargetOpset) {
    onnx::ModelProto proto = original;
    passes::PassPipelineOptions pipeline_options;
    pipeline_options.disabled = options.disabled_passes;
    passes::PassPipeline upgrade(pipeline_options);
    const passes::OpsetUpgradePass& opset = passes::AddUpgradePasses(&upgrade);
    QAT_ASSIGN_OR_RETURN(const bool changed, upgrade.Run(&proto));
    opset.ReportWarning(model.source(), &upgrade_warnings);
    if (changed) {
      QAT_ASSIGN_OR_RETURN(upgraded, ModelAccess::FromTransformedProto(std::move(proto),
                                                                       model.source()));
    }
  }
  // A QDQ model trains through FakeQuant; a float model trains as it is.
  QAT_ASSIGN_OR_RETURN(Model fused,
                       FuseQdqToFakeQuant(upgraded ? *upgraded : model, warnings));
  if (warnings != nullptr) {  // the fusion's warnings replace the list's contents
    warnings->insert(warnings->begin(), upgrade_warnings.begin(), upgrade_warnings.end());
  }
  return BuildTrainingModels(fused, options.graph);
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
