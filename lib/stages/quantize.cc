#include "qat/quantize.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "graph/graph_index.h"
#include "graph/pass_pipeline.h"
#include "passes/fold_batch_norm.h"
#include "passes/fold_constants.h"
#include "passes/inline_control_flow.h"
#include "passes/insert_qdq.h"
#include "passes/node_selection.h"
#include "passes/opset_upgrade.h"
#include "passes/prune_unused_initializers.h"
#include "qat/status_macros.h"

namespace qat {

int64_t WeightChannelAxis(const std::string& op_type, bool trans_b) {
  return passes::WeightChannelAxis(op_type, trans_b);
}

absl::StatusOr<std::vector<QuantizableNode>> QuantizableNodes(const Model& model,
                                                               const QuantizeOptions& options) {
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  passes::InlineControlFlowPass inline_control_flow;
  if (options.disabled_passes.count(std::string(inline_control_flow.name())) == 0) {
    QAT_RETURN_IF_ERROR(inline_control_flow.Run(proto.get()).status());
  }
  const onnx::GraphProto& graph = proto->graph();
  std::vector<std::string> exclude = options.exclude_nodes;
  for (const auto& [node, o] : options.node_overrides) {
    if (o.keep_float) exclude.push_back(node);
  }
  QAT_ASSIGN_OR_RETURN(quantization::NodeSelection selection,
                       quantization::NodeSelection::Create(graph, options.op_types,
                                                           options.include_nodes, exclude));
  const graph::GraphIndex index(graph);
  std::vector<QuantizableNode> nodes;
  for (const auto& n : graph.node()) {
    if (!selection.Selects(n)) continue;
    QuantizableNode q;
    q.name = n.name();
    q.op_type = n.op_type();
    for (int i = 0; i < std::min(quantization::NodeSelection::kDataInputs, n.input_size()); ++i) {
      if (n.input(i).empty()) continue;
      (index.IsInitializer(n.input(i)) ? q.weights : q.activations).push_back(n.input(i));
    }
    if (n.output_size() > 0) q.activations.push_back(n.output(0));
    nodes.push_back(std::move(q));
  }
  return nodes;
}

absl::StatusOr<Model> QuantizeModel(const Model& model, const CalibrationTable& table,
                                    const QuantizeOptions& options,
                                    std::vector<std::string>* warnings) {
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  // If and Loop fixed by constants become plain nodes first, as calibration
  // does (the same pass on the same graph, so the same names), so that the
  // ops inside get quantized and the table's names are checked against them.
  passes::InlineControlFlowPass inline_control_flow;
  const std::string inline_name(inline_control_flow.name());
  if (options.disabled_passes.count(inline_name) == 0) {
    QAT_RETURN_IF_ERROR(inline_control_flow.Run(proto.get()).status());
  }
  // A table entry for a tensor the model does not have is most likely a
  // typo in a hand-edited table: say so rather than ignore it.
  std::set<std::string> names;
  for (const auto& v : proto->graph().input()) names.insert(v.name());
  for (const auto& t : proto->graph().initializer()) names.insert(t.name());
  for (const auto& n : proto->graph().node()) names.insert(n.output().begin(), n.output().end());
  for (const auto& [name, entry] : table.entries()) {
    if (names.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the calibration table names tensor '", name, "', which '", model.source(),
          "' does not have"));
    }
  }
  // The quantize pipeline, in order:
  //  0. opset_upgrade (models below opset 13, said in a warning) and
  //     promote_constants (weights in Constant nodes become initializers);
  //  1. fold_constants: weights behind Constant, Transpose, Reshape and the
  //     like become initializers, so that insert_qdq sees them as weights;
  //  2. fold_batch_norm: an inference-mode BatchNormalization after a Conv,
  //     ConvTranspose or Gemm goes into that layer's weight and bias, so
  //     the int8 weights are the ones the deployed model uses;
  //  3. insert_qdq: Q/DQ pairs around the selected nodes;
  //  4. prune: the float weights that insert_qdq stored as integers, and
  //     whatever else nothing reads any more, go.
  // The result is checked and shape-inferred once, as a Model.
  passes::PassPipelineOptions pipeline_options;
  pipeline_options.disabled = options.disabled_passes;
  pipeline_options.disabled.erase(inline_name);  // ran (or not) above
  passes::PassPipeline pipeline(pipeline_options);
  const passes::OpsetUpgradePass& upgrade = passes::AddUpgradePasses(&pipeline);
  // Block-wise weights exist from opset 21 on (DequantizeLinear's block_size).
  if (options.block_size > 0 || options.embedding_bits != 0) pipeline.Add(std::make_unique<passes::Opset21UpgradePass>());
  pipeline.Add(std::make_unique<passes::FoldConstantsPass>());
  pipeline.Add(std::make_unique<passes::FoldBatchNormPass>());
  pipeline.Add(std::make_unique<passes::InsertQdqPass>(table, options));
  pipeline.Add(std::make_unique<passes::PruneUnusedInitializersPass>());
  QAT_RETURN_IF_ERROR(pipeline.Run(proto.get()).status());
  upgrade.ReportWarning(model.source(), warnings);
  if (warnings != nullptr) {
    warnings->insert(warnings->end(), inline_control_flow.warnings().begin(),
                     inline_control_flow.warnings().end());
  }
  // The fp32 model this one came from: the default teacher for distillation.
  std::error_code error;
  if (std::filesystem::is_regular_file(model.source(), error)) {
    const std::string path = std::filesystem::absolute(model.source(), error).string();
    onnx::StringStringEntryProto* entry = nullptr;
    for (auto& e : *proto->mutable_metadata_props()) {
      if (e.key() == kSourceModelMetadataKey) entry = &e;
    }
    if (entry == nullptr) entry = proto->add_metadata_props();
    entry->set_key(kSourceModelMetadataKey);
    entry->set_value(path);
  }
  return ModelAccess::FromTransformedProto(std::move(proto), model.source() + " (quantized)");
}

}  // namespace qat
