#include "qat/prepare.h"

#include <algorithm>
#include <memory>

#include "core/checked_size.h"
#include "core/model_internal.h"
#include "graph/graph_index.h"
#include "graph/pass_pipeline.h"
#include "passes/opset21_downgrade.h"
#include "passes/opset_upgrade.h"
#include "passes/promote_constants.h"
#include "absl/strings/str_cat.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"
#include "stages/fuse_qdq_pairs.h"
#include "train/training_graph_build.h"

namespace qat {

absl::StatusOr<TrainingModels> PrepareModels(const Model& model, const PrepareOptions& options,
                                             std::vector<std::string>* warnings) {
  // One copy of the model, which every step edits in place: old opsets are
  // upgraded and Constant-node weights become initializers (so that they
  // train and can be frozen), QDQ pairs become FakeQuant (a float model
  // trains as it is), and the training build starts from the result.  The
  // steps are libqat's own passes, so the result is checked once, as the
  // eval model (and after every pass with QAT_CHECK_PASS_INVARIANTS=1).
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  std::vector<std::string> upgrade_warnings;
  if (std::any_of(proto->graph().node().begin(), proto->graph().node().end(),
                  passes::IsPromotableConstant) ||
      passes::DefaultOpset(*proto) < passes::kUpgradeTargetOpset) {
    passes::PassPipelineOptions pipeline_options;
    pipeline_options.disabled = options.disabled_passes;
    passes::PassPipeline upgrade(pipeline_options);
    const passes::OpsetUpgradePass& opset = passes::AddUpgradePasses(&upgrade);
    QAT_RETURN_IF_ERROR(upgrade.Run(proto.get()).status());
    opset.ReportWarning(model.source(), &upgrade_warnings);
  }
  QAT_RETURN_IF_ERROR(FuseQdqPairs(proto.get(), warnings));
  if (warnings != nullptr) {  // the fusion's warnings replace the list's contents
    warnings->insert(warnings->begin(), upgrade_warnings.begin(), upgrade_warnings.end());
  }
  // Block-wise models come from quantize at opset 21, where ONNX 1.12
  // infers no shapes; fused, their blocks live in FakeQuant, so they train
  // at opset 17 with inferred shapes, and export raises them to 21 again.
  // A graph with no opset-17 form trains at 21 as it is (the gradient
  // rules that need shapes then fail, naming the value).
  if (passes::DefaultOpset(*proto) == passes::kInt4ExportOpset) {
    passes::PassPipelineOptions pipeline_options;
    pipeline_options.disabled = options.disabled_passes;
    passes::PassPipeline downgrade(pipeline_options);
    downgrade.Add(std::make_unique<passes::Opset21DowngradePass>());
    // A refused model is left as it was (the pass checks before it edits).
    absl::Status status = downgrade.Run(proto.get()).status();
    if (!status.ok() && status.code() != absl::StatusCode::kFailedPrecondition) return status;
    if (!status.ok() && warnings != nullptr) {
      warnings->push_back(absl::StrCat("'", model.source(), "' trains at opset 21, without ",
                                       "inferred shapes: ", status.message()));
    }
  }
  return training::BuildTrainingModelsFromProto(std::move(proto), model.source() + " (fused)",
                                                options.graph);
}

absl::StatusOr<std::string> RecordedTeacher(const Model& model) {
  for (const auto& entry : ModelAccess::Proto(model).metadata_props()) {
    if (entry.key() == kSourceModelMetadataKey) return entry.value();
  }
  return absl::NotFoundError(absl::StrCat(
      "'", model.source(), "' records no fp32 model it came from (",
      kSourceModelMetadataKey, "); name the teacher"));
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
