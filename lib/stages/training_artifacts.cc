#include "qat/training_artifacts.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "passes/fold_batch_norm_qat.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

absl::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create the folder '", dir, "': ", ec ? ec.message() : "not a folder"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SaveTrainingArtifacts(const std::string& dir,
                                   const TrainingModels& models) {
  QAT_RETURN_IF_ERROR(MakeDir(dir));
  // The initial parameters are the training model's initializers, read in
  // place (detaching them would copy the whole model).
  Checkpoint initial;
  const graph::GraphIndex index(ModelAccess::Proto(models.training).graph());
  for (const std::string& p : models.params) {
    const onnx::TensorProto* t = index.FindInitializer(p);
    if (t == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", p, "' is not an initializer of ", models.training.source()));
    }
    QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*t));
    initial.parameters.emplace_back(p, std::move(value));
  }
  QAT_RETURN_IF_ERROR(SaveModel(models.training, dir + "/" + kTrainingModelFile));
  QAT_RETURN_IF_ERROR(SaveModel(models.eval, dir + "/" + kEvalModelFile));
  return SaveCheckpoint(dir + "/" + kCheckpointFile, initial);
}

absl::StatusOr<TrainingModels> LoadTrainingModels(const std::string& dir) {
  QAT_ASSIGN_OR_RETURN(Model training, Model::Load(dir + "/" + kTrainingModelFile));
  QAT_ASSIGN_OR_RETURN(Model eval, Model::Load(dir + "/" + kEvalModelFile));
  std::vector<std::string> params;
  const std::vector<ValueInfo> outputs = training.outputs();
  if (outputs.empty() || outputs[0].name != kLossOutput) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", training.source(), "' is not a libqat training model: its first "
        "output is not '", kLossOutput, "'"));
  }
  for (size_t i = 1; i < outputs.size(); ++i) {
    // BatchNormalization running statistics, after the gradients.
    if (!params.empty() && absl::EndsWith(outputs[i].name, passes::kRunningStatSuffix)) continue;
    if (!absl::EndsWith(outputs[i].name, "_grad")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", training.source(), "' output '", outputs[i].name,
          "' is not a <param>_grad output"));
    }
    params.push_back(outputs[i].name.substr(0, outputs[i].name.size() - 5));
  }
  bool observe = false;
  for (const auto& entry : ModelAccess::Proto(training).metadata_props()) {
    if (entry.key() == kQuantParamsMetadataKey) observe = entry.value() == "observe";
  }
  return TrainingModels{std::move(training), std::move(eval), std::move(params), observe};
}

std::map<std::string, Tensor> ExportedParameters(const Checkpoint& checkpoint) {
  std::map<std::string, Tensor> params(checkpoint.parameters.begin(),
                                       checkpoint.parameters.end());
  params.insert(checkpoint.quant_params.begin(), checkpoint.quant_params.end());
  params.insert(checkpoint.running_stats.begin(), checkpoint.running_stats.end());
  return params;
}

absl::StatusOr<Model> ExportInferenceModel(
    const Model& eval, const std::map<std::string, Tensor>& params) {
  ArenaModelProto proto = ModelAccess::CopyProto(eval);
  onnx::GraphProto* g = proto->mutable_graph();
  // Keep the outputs other than the loss, and what they need.
  graph::KeepIf(g->mutable_output(),
                [](const onnx::ValueInfoProto& o) { return o.name() != kLossOutput; });
  if (g->output().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", eval.source(), "' has no outputs besides the loss"));
  }
  absl::flat_hash_set<std::string> needed;
  for (const auto& o : g->output()) needed.insert(o.name());
  std::vector<int> kept;  // in reverse order until the end of the walk
  for (int k = g->node_size() - 1; k >= 0; --k) {
    const auto& node = g->node(k);
    bool keep = false;
    for (const auto& o : node.output()) keep = keep || needed.count(o) != 0;
    if (!keep) continue;
    kept.push_back(k);
    for (const auto& i : node.input()) needed.insert(i);
  }
  std::reverse(kept.begin(), kept.end());
  graph::Rearrange(g->mutable_node(), kept);
  graph::KeepIf(g->mutable_input(),
                [&](const onnx::ValueInfoProto& in) { return needed.count(in.name()) != 0; });
  graph::KeepIf(g->mutable_initializer(),
                [&](const onnx::TensorProto& t) { return needed.count(t.name()) != 0; });
  // The trained values replace the initial ones.
  std::set<std::string> written;
  for (auto& t : *g->mutable_initializer()) {
    auto it = params.find(t.name());
    if (it == params.end()) continue;
    MoveTensorProto(TensorToProto(it->second, t.name()), &t);
    written.insert(t.name());
  }
  for (const auto& [name, value] : params) {
    if (written.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", name, "' is not an initializer of '", eval.source(), "'"));
    }
  }
  return ModelAccess::FromTransformedProto(std::move(proto), eval.source() + " (exported)");
}

}  // namespace qat
