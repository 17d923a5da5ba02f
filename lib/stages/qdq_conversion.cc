#include "qat/qdq_conversion.h"

#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "graph/pass_pipeline.h"
#include "passes/fake_quant_to_qdq.h"
#include "passes/fuse_qdq_to_fake_quant.h"
#include "passes/opset_upgrade.h"
#include "core/op_schemas.h"
#include "graph/graph_editor.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"
#include "stages/evaluate_folded_weights.h"
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
// is read) and the folded BatchNorm weights are constants
// (EvaluateFoldedWeights): fake_quant_to_qdq, which stores weights as integers unless
// keep_float_weights, and prunes the float weights it replaced.
namespace {

// ExportOptions::opset 0: 21 when a FakeQuant over an initializer has a
// 4-bit range (and weights are stored) or any FakeQuant is block-wise.
int64_t ChooseExportOpset(const onnx::ModelProto& model, const ExportOptions& options) {
  if (options.opset != 0) return options.opset;
  std::set<std::string> inputs, weights;
  for (const auto& in : model.graph().input()) inputs.insert(in.name());
  for (const auto& t : model.graph().initializer()) {
    if (inputs.count(t.name()) == 0) weights.insert(t.name());
  }
  for (const auto& n : model.graph().node()) {
    if (n.op_type() != "FakeQuant" || n.input_size() == 0) continue;
    if (n.domain() == kLibqatDomain && training::GetAttrInt(n, "block_size", 0) != 0) {
      return passes::kInt4ExportOpset;
    }
    const int64_t qmin = training::GetAttrInt(n, "quant_min", 0);
    const int64_t qmax = training::GetAttrInt(n, "quant_max", 255);
    const bool four_bit = (qmin >= -8 && qmax <= 7) || (qmin >= 0 && qmax <= 15);
    if (four_bit && !options.keep_float_weights && weights.count(n.input(0)) != 0) {
      return passes::kInt4ExportOpset;
    }
  }
  return 13;
}

}  // namespace

absl::StatusOr<Model> ExportQuantizedModel(const Model& eval,
                                           const std::map<std::string, Tensor>& params,
                                           const ExportOptions& options) {
  if (options.opset != 0 && options.opset != 13 && options.opset != passes::kInt4ExportOpset) {
    return absl::InvalidArgumentError(
        absl::StrCat("export writes opset 13 or 21, not ", options.opset));
  }
  QAT_ASSIGN_OR_RETURN(Model inference, ExportInferenceModel(eval, params));
  ArenaModelProto proto = ModelAccess::CopyProto(inference);
  // BatchNorm folded in QAT: the folded weights and biases become constants.
  QAT_RETURN_IF_ERROR(EvaluateFoldedWeights(proto.get()));
  passes::FakeQuantToQdqConfig config;
  config.int8_weights = !options.keep_float_weights;
  config.opset = ChooseExportOpset(*proto, options);
  config.uint8_block_scales = options.uint8_block_scales;
  passes::PassPipeline pipeline;
  if (config.opset == passes::kInt4ExportOpset) {
    pipeline.Add(std::make_unique<passes::Opset21UpgradePass>());
  }
  pipeline.Add(std::make_unique<passes::FakeQuantToQdqPass>(config));
  QAT_RETURN_IF_ERROR(pipeline.Run(proto.get()).status());
  return ModelAccess::FromTransformedProto(std::move(proto), eval.source() + " (exported)");
}

}  // namespace qat
