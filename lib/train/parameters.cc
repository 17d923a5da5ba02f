#include "train/parameters.h"

#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "autodiff/gradient_rules.h"
#include "core/checked_size.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/rearrange.h"
#include "qat/status_macros.h"

namespace qat {
namespace training {
namespace {

// Rule 1 of ChooseParameters: the slots that hold a layer's weight or bias.
bool IsWeightSlot(const onnx::NodeProto& node, int slot, bool learn_quant_params) {
  if (!IsDefaultDomain(node)) {
    const GradOp* op = FindGradOp(node.domain(), node.op_type());
    return learn_quant_params && op != nullptr && op->inputs.quant_param(slot);
  }
  const std::string& op = node.op_type();
  if (op == "Conv" || op == "ConvTranspose" || op == "BatchNormalization" ||
      op == "LayerNormalization" || op == "InstanceNormalization") {
    return slot == 1 || slot == 2;
  }
  if (op == "Gemm" || op == "MatMul") return slot <= 2;
  if (op == "Gather") return slot == 0;
  return false;
}

// Ops between a weight and the layer that reads it, which keep its values.
bool PassesWeightThrough(const onnx::NodeProto& node) {
  static const std::set<std::string> kThrough = {"Identity",  "Cast",      "Reshape",
                                                 "Flatten",   "Squeeze",   "Unsqueeze",
                                                 "Transpose"};
  if (node.op_type() == "FakeQuant") return true;  // either domain
  return IsDefaultDomain(node) && kThrough.count(node.op_type()) != 0;
}

// Whether `name` feeds a weight slot, directly or through PassesWeightThrough.
bool FeedsWeightSlot(const graph::GraphIndex& index, const std::string& name,
                     bool learn_quant_params, int depth = 0) {
  if (depth > 8) return false;  // a chain of reshapes this long is not a weight's
  for (int k : index.Consumers(name)) {
    const onnx::NodeProto& node = index.graph().node(k);
    for (int i = 0; i < node.input_size(); ++i) {
      if (node.input(i) != name) continue;
      if (IsWeightSlot(node, i, learn_quant_params)) return true;
      if (i == 0 && PassesWeightThrough(node) && node.output_size() > 0 &&
          FeedsWeightSlot(index, node.output(0), learn_quant_params, depth + 1)) {
        return true;
      }
    }
  }
  return false;
}

// The values that reach `loss` through inputs that carry a gradient.
absl::flat_hash_set<std::string> DifferentiableAncestors(const graph::GraphIndex& index,
                                                        const std::string& loss,
                                                        bool learn_quant_params) {
  absl::flat_hash_set<std::string> seen = {loss};
  std::vector<std::string> todo = {loss};
  absl::flat_hash_set<int> visited;
  while (!todo.empty()) {
    const int k = index.Producer(todo.back());
    todo.pop_back();
    if (k < 0 || !visited.insert(k).second) continue;
    const onnx::NodeProto& node = index.graph().node(k);
    for (int i = 0; i < node.input_size(); ++i) {
      if (node.input(i).empty() || !IsTrainableInput(node, i, learn_quant_params)) continue;
      if (seen.insert(node.input(i)).second) todo.push_back(node.input(i));
    }
  }
  return seen;
}

bool HasWildcard(const std::string& pattern) {
  return pattern.find_first_of("*?") != std::string::npos;
}

}  // namespace

bool GlobMatch(absl::string_view pattern, absl::string_view name) {
  // Iterative matching with one backtrack point: the last '*' seen.
  size_t p = 0, n = 0, star = absl::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::StatusOr<std::vector<std::string>> ChooseParameters(const onnx::GraphProto& graph,
                                                          const std::string& loss,
                                                          const ParameterSelection& selection) {
  const graph::GraphIndex index(graph);
  absl::flat_hash_set<std::string> frozen;
  for (const std::string& f : selection.frozen) {
    bool matched = false;
    for (const auto& t : graph.initializer()) {
      if (GlobMatch(f, t.name())) {
        frozen.insert(t.name());
        matched = true;
      }
    }
    if (!matched) {
      return absl::InvalidArgumentError(absl::StrCat(
          HasWildcard(f) ? "frozen pattern '" : "frozen parameter '", f,
          HasWildcard(f) ? "' matches no initializer of the model"
                         : "' is not an initializer of the model"));
    }
  }
  std::vector<std::string> params;
  if (!selection.trainable.empty()) {
    const std::set<std::string> frozen_names(selection.frozen.begin(), selection.frozen.end());
    absl::flat_hash_set<std::string> chosen;
    for (const std::string& p : selection.trainable) {
      if (!HasWildcard(p)) {
        if (frozen_names.count(p) != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "parameter '", p, "' is listed as both frozen and trainable"));
        }
        const onnx::TensorProto* init = index.FindInitializer(p);
        if (init == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "trainable parameter '", p, "' is not an initializer of the model"));
        }
        if (init->data_type() != onnx::TensorProto::FLOAT) {
          return absl::InvalidArgumentError(
              absl::StrCat("trainable parameter '", p, "' is not float"));
        }
      }
      bool matched = false;
      for (const auto& t : graph.initializer()) {
        if (t.data_type() != onnx::TensorProto::FLOAT || !GlobMatch(p, t.name())) continue;
        matched = true;
        if (frozen.count(t.name()) == 0 && chosen.insert(t.name()).second) {
          params.push_back(t.name());
        }
      }
      if (!matched) {
        return absl::InvalidArgumentError(absl::StrCat(
            "trainable pattern '", p, "' matches no float initializer of the model"));
      }
    }
    if (params.empty()) {
      return absl::InvalidArgumentError(
          "every parameter that the trainable patterns match is frozen");
    }
    return params;
  }
  const absl::flat_hash_set<std::string> reach =
      DifferentiableAncestors(index, loss, selection.learn_quant_params);
  for (const auto& t : graph.initializer()) {  // in the model's order
    if (t.data_type() != onnx::TensorProto::FLOAT) continue;
    if (frozen.count(t.name()) != 0 || reach.count(t.name()) == 0) continue;
    QAT_ASSIGN_OR_RETURN(const int64_t elements, CheckedElementCount(t.dims()));
    if (elements > 1 || FeedsWeightSlot(index, t.name(), selection.learn_quant_params)) {
      params.push_back(t.name());
    }
  }
  if (params.empty()) {
    return absl::InvalidArgumentError(
        "the model has no trainable parameters that the loss depends on");
  }
  return params;
}

absl::StatusOr<DetachedParameters> DetachParameters(
    const Model& model, const std::vector<std::string>& names) {
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  onnx::GraphProto* graph = proto->mutable_graph();
  const absl::flat_hash_set<std::string> wanted(names.begin(), names.end());
  std::map<std::string, Tensor> values;
  {
    const graph::GraphIndex index(*graph);
    for (const auto& t : graph->initializer()) {
      if (wanted.count(t.name()) == 0) continue;
      QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(t));
      // Declare it as an input unless the graph already lists it as one.
      if (!values.emplace(t.name(), std::move(value)).second) continue;
      if (index.IsGraphInput(t.name())) continue;
      onnx::ValueInfoProto* in = graph->add_input();
      in->set_name(t.name());
      auto* type = in->mutable_type()->mutable_tensor_type();
      type->set_elem_type(t.data_type());
      auto* shape = type->mutable_shape();
      for (int64_t d : t.dims()) shape->add_dim()->set_dim_value(d);
    }
  }
  for (const std::string& n : names) {
    if (values.count(n) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", n, "' is not an initializer of ", model.source()));
    }
  }
  graph::KeepIf(graph->mutable_initializer(),
                [&](const onnx::TensorProto& t) { return wanted.count(t.name()) == 0; });
  // The model passed the checker and shape inference, and an initializer
  // that becomes an input of the same type and shape changes neither: no
  // need to check it again.
  ModelLoadOptions unchanged;
  unchanged.check = false;
  unchanged.infer_shapes = false;
  QAT_ASSIGN_OR_RETURN(Model detached, ModelAccess::FromProto(std::move(proto), model.source(),
                                                              unchanged));
  return DetachedParameters{std::move(detached), std::move(values)};
}

}  // namespace training
}  // namespace qat
