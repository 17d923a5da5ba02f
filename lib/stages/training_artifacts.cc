#include "qat/training_artifacts.h"

#include <filesystem>
#include <set>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_index.h"
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
  return params;
}

absl::StatusOr<Model> ExportInferenceModel(
    const Model& eval, const std::map<std::string, Tensor>& params) {
  onnx::ModelProto proto = ModelAccess::Proto(eval);
  onnx::GraphProto* g = proto.mutable_graph();
  // Keep the outputs other than the loss, and what they need.
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> outputs;
  for (const auto& o : g->output()) {
    if (o.name() != kLossOutput) *outputs.Add() = o;
  }
  if (outputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", eval.source(), "' has no outputs besides the loss"));
  }
  *g->mutable_output() = outputs;
  std::unordered_set<std::string> needed;
  for (const auto& o : g->output()) needed.insert(o.name());
  std::vector<bool> keep(g->node_size(), false);
  for (int k = g->node_size() - 1; k >= 0; --k) {
    const auto& node = g->node(k);
    for (const auto& o : node.output()) keep[k] = keep[k] || needed.count(o) != 0;
    if (keep[k]) {
      for (const auto& i : node.input()) needed.insert(i);
    }
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (int k = 0; k < g->node_size(); ++k) {
    if (keep[k]) *nodes.Add() = g->node(k);
  }
  *g->mutable_node() = nodes;
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
  for (const auto& in : g->input()) {
    if (needed.count(in.name()) != 0) *inputs.Add() = in;
  }
  *g->mutable_input() = inputs;
  google::protobuf::RepeatedPtrField<onnx::TensorProto> inits;
  std::set<std::string> written;
  for (const auto& t : g->initializer()) {
    if (needed.count(t.name()) == 0) continue;
    auto it = params.find(t.name());
    if (it == params.end()) {
      *inits.Add() = t;
      continue;
    }
    *inits.Add() = TensorToProto(it->second, t.name());
    written.insert(t.name());
  }
  *g->mutable_initializer() = inits;
  for (const auto& [name, value] : params) {
    if (written.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", name, "' is not an initializer of '", eval.source(), "'"));
    }
  }
  return ModelAccess::FromTransformedProto(std::move(proto), eval.source() + " (exported)");
}

}  // namespace qat
