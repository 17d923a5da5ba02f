#include "qat/qdq_conversion.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "graph/pass_pipeline.h"
#include "passes/fake_quant_to_qdq.h"
#include "passes/fuse_qdq_to_fake_quant.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"
#include "stages/fuse_qdq_pairs.h"

namespace qat {

// The first step of the training-graph build: QDQ pairs become FakeQuant,
// so that the quantized model can train.  BuildTrainingModels
// (lib/train/training_graph.cc) then adds the loss and the gradients.
absl::Status FuseQdqPairs(onnx::ModelProto* proto, std::vector<std::string>* warnings) {
  passes::PassPipeline pipeline;
  const auto& fuse = pipeline.Add(std::make_unique<passes::FuseQdqToFakeQuantPass>());
  QAT_RETURN_IF_ERROR(pipeline.Run(proto).status());
  if (warnings != nullptr) *warnings = fuse.warnings();
  return absl::OkStatus();
}

absl::StatusOr<Model> FuseQdqToFakeQuant(const Model& model,
                                         std::vector<std::string>* warnings) {
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  QAT_RETURN_IF_ERROR(FuseQdqPairs(proto.get(), warnings));
  return ModelAccess::FromTransformedProto(std::move(proto), model.source() + " (fused)");
}

// The export pipeline, after the training-only parts are gone
// (ExportInferenceModel: no loss, labels or gradients, so no FakeQuant mask
// is read): fake_quant_to_qdq, which stores weights as integers unless
// keep_float_weights, and prunes the float weights it replaced.
absl::StatusOr<Model> ExportQuantizedModel(const Model& eval,
                                           const std::map<std::string, Tensor>& params,
                                           const ExportOptions& options) {
  QAT_ASSIGN_OR_RETURN(Model inference, ExportInferenceModel(eval, params));
  ArenaModelProto proto = ModelAccess::CopyProto(inference);
  passes::FakeQuantToQdqConfig config;
  config.int8_weights = !options.keep_float_weights;
  passes::PassPipeline pipeline;
  pipeline.Add(std::make_unique<passes::FakeQuantToQdqPass>(config));
  QAT_RETURN_IF_ERROR(pipeline.Run(proto.get()).status());
  return ModelAccess::FromTransformedProto(std::move(proto), eval.source() + " (exported)");
}

}  // namespace qat
