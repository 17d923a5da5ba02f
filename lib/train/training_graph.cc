#include "qat/training_graph.h"

#include <map>
#include <set>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model_internal.h"
#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"
#include "passes/add_loss.h"
#include "passes/gradient_builder.h"

namespace qat {
namespace {

// Values that `target` depends on, walking the graph backwards.
std::unordered_set<std::string> Ancestors(const onnx::GraphProto& graph,
                                          const std::string& target) {
  std::unordered_set<std::string> seen = {target};
  for (int k = graph.node_size() - 1; k >= 0; --k) {
    const auto& node = graph.node(k);
    bool feeds = false;
    for (const auto& o : node.output()) feeds |= seen.count(o) != 0;
    if (!feeds) continue;
    for (const auto& i : node.input()) seen.insert(i);
  }
  return seen;
}

absl::StatusOr<std::vector<std::string>> ChooseParams(
    const onnx::GraphProto& graph, const TrainingGraphOptions& options) {
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : graph.initializer()) inits[t.name()] = &t;
  const std::set<std::string> frozen(options.frozen.begin(),
                                     options.frozen.end());
  for (const std::string& f : frozen) {
    if (inits.count(f) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frozen parameter '", f, "' is not an initializer of the model"));
    }
  }
  std::vector<std::string> params;
  if (!options.trainable.empty()) {
    for (const std::string& p : options.trainable) {
      if (frozen.count(p) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter '", p, "' is listed as both frozen and trainable"));
      }
      auto it = inits.find(p);
      if (it == inits.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "trainable parameter '", p, "' is not an initializer of the model"));
      }
      if (it->second->data_type() != onnx::TensorProto::FLOAT) {
        return absl::InvalidArgumentError(
            absl::StrCat("trainable parameter '", p, "' is not float"));
      }
      params.push_back(p);
    }
    return params;
  }
  const std::unordered_set<std::string> needed = Ancestors(graph, kLossOutput);
  // Initializers that feed a trainable input (gradient_rule_list.h says which).
  std::set<std::string> weight_slots;
  for (const auto& node : graph.node()) {
    for (int i = 0; i < node.input_size(); ++i) {
      if (training::IsTrainableInput(node, i, options.learn_quant_params)) {
        weight_slots.insert(node.input(i));
      }
    }
  }
  for (const auto& t : graph.initializer()) {  // in the model's order
    if (t.data_type() != onnx::TensorProto::FLOAT) continue;
    if (frozen.count(t.name()) != 0 || needed.count(t.name()) == 0) continue;
    if (weight_slots.count(t.name()) == 0) continue;
    params.push_back(t.name());
  }
  if (params.empty()) {
    return absl::InvalidArgumentError(
        "the model has no trainable parameters that the loss depends on");
  }
  return params;
}

absl::StatusOr<Model> Reload(const onnx::ModelProto& proto,
                             const std::string& source) {
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", source));
  }
  return Model::FromBytes(bytes, source);
}

}  // namespace

absl::StatusOr<TrainingModels> BuildTrainingModels(
    const Model& model, const TrainingGraphOptions& options) {
  if (options.learn_quant_params && options.observe_quant_params) {
    return absl::InvalidArgumentError(
        "quantization parameters can be learned or observed, not both");
  }
  onnx::ModelProto eval = ModelAccess::Proto(model);
  QAT_RETURN_IF_ERROR(training::AddLossPass(options.loss).Run(&eval).status());
  QAT_ASSIGN_OR_RETURN(std::vector<std::string> params,
                       ChooseParams(eval.graph(), options));
  // Shape inference again, so that the gradient rules see the loss's shapes.
  QAT_ASSIGN_OR_RETURN(Model eval_model,
                       Reload(eval, model.source() + " (eval)"));
  onnx::ModelProto training = ModelAccess::Proto(eval_model);
  QAT_RETURN_IF_ERROR(training::BuildGradientsPass(kLossOutput, params,
                                                   options.accumulate_gradients)
                          .Run(&training)
                          .status());
  if (options.observe_quant_params) {
    onnx::StringStringEntryProto* entry = training.add_metadata_props();
    entry->set_key(kQuantParamsMetadataKey);
    entry->set_value("observe");
  }
  QAT_ASSIGN_OR_RETURN(Model training_model,
                       Reload(training, model.source() + " (training)"));
  return TrainingModels{std::move(training_model), std::move(eval_model),
                        std::move(params), options.observe_quant_params};
}

}  // namespace qat
