#include "passes/add_loss.h"

#include "absl/strings/str_cat.h"
#include "graph/graph_editor.h"

namespace qat {

absl::StatusOr<LossKind> ParseLossKind(absl::string_view name) {
  for (LossKind k : {LossKind::kCrossEntropy, LossKind::kMse,
                     LossKind::kBceWithLogits, LossKind::kL1}) {
    if (name == LossKindName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown loss '", name, "'; expected cross-entropy, mse, "
      "bce-with-logits or l1"));
}

const char* LossKindName(LossKind kind) {
  switch (kind) {
    case LossKind::kCrossEntropy: return "cross-entropy";
    case LossKind::kMse: return "mse";
    case LossKind::kBceWithLogits: return "bce-with-logits";
    case LossKind::kL1: return "l1";
  }
  return "unknown";
}

namespace training {
namespace {

// Sum or mean over every element, to a scalar.
std::string Reduce(GraphEditor& g, const std::string& x, LossReduction r) {
  return r == LossReduction::kSum ? g.ReduceSum(x, {}, false, "loss_sum")
                                  : g.ReduceMean(x, {}, false, "loss_mean");
}

}  // namespace

absl::StatusOr<bool> AddLossPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto& graph = g.graph();
  if (graph.output_size() == 0) {
    return absl::InvalidArgumentError("the model has no outputs");
  }
  std::string y = options_.output.empty() ? graph.output(0).name()
                                          : options_.output;
  std::optional<ValueShape> ys;
  for (const auto& o : graph.output()) {
    if (o.name() == y) ys = g.ShapeOf(y);
  }
  if (!ys.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the loss input '", y, "' is not an output of the model"));
  }
  for (const char* reserved : {kLabelsInput, kLossOutput}) {
    if (g.ShapeOf(reserved).has_value() || g.FreshName(reserved) != reserved) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model already has a value named '", reserved, "'"));
    }
  }
  if (ys->elem_type != onnx::TensorProto::FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat("the loss input '", y, "' is not float"));
  }
  const bool ce = options_.kind == LossKind::kCrossEntropy;
  if (!ce && (options_.ignore_index.has_value() ||
              !options_.class_weights.empty())) {
    return absl::InvalidArgumentError(
        "ignore_index and class weights apply to cross-entropy only");
  }

  // labels: int64 [N, d...] for cross-entropy, else shaped like y.
  ValueShape labels = *ys;
  if (ce) {
    if (!ys->rank_known || ys->rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cross-entropy needs logits of rank >= 2 ([N, C, ...]), but '", y,
          "' has ", ys->rank_known ? absl::StrCat("rank ", ys->rank())
                                   : std::string("an unknown rank")));
    }
    labels.elem_type = onnx::TensorProto::INT64;
    labels.dims.erase(labels.dims.begin() + 1);
  }
  g.AddInput(kLabelsInput, labels);

  std::string loss;
  const LossReduction r = options_.reduction;
  switch (options_.kind) {
    case LossKind::kCrossEntropy: {
      std::vector<std::string> inputs = {y, kLabelsInput};
      if (!options_.class_weights.empty()) {
        if (ys->dims[1] >= 0 &&
            static_cast<int64_t>(options_.class_weights.size()) != ys->dims[1]) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cross-entropy has ", options_.class_weights.size(),
              " class weights for ", ys->dims[1], " classes"));
        }
        inputs.push_back(g.Initializer(MakeFloatTensor(
            "class_weights",
            {static_cast<int64_t>(options_.class_weights.size())},
            options_.class_weights)));
      }
      std::vector<onnx::AttributeProto> attrs = {AttrString(
          "reduction", r == LossReduction::kSum ? "sum" : "mean")};
      if (options_.ignore_index.has_value()) {
        attrs.push_back(AttrInt("ignore_index", *options_.ignore_index));
      }
      loss = g.Add("SoftmaxCrossEntropyLoss", inputs, "loss_ce", attrs);
      break;
    }
    case LossKind::kMse: {
      const std::string d = g.Add("Sub", {y, kLabelsInput}, "loss_diff");
      loss = Reduce(g, g.Add("Mul", {d, d}, "loss_sq"), r);
      break;
    }
    case LossKind::kL1: {
      const std::string d = g.Add("Sub", {y, kLabelsInput}, "loss_diff");
      loss = Reduce(g, g.Add("Abs", {d}, "loss_abs"), r);
      break;
    }
    case LossKind::kBceWithLogits: {
      // max(y, 0) - y * t + log(1 + exp(-|y|)): finite for any y.
      const std::string pos = g.Add("Relu", {y}, "loss_pos");
      const std::string yt = g.Add("Mul", {y, kLabelsInput}, "loss_yt");
      const std::string e = g.Add(
          "Exp", {g.Add("Neg", {g.Add("Abs", {y}, "loss_abs")}, "loss_neg")},
          "loss_exp");
      const std::string sp = g.Add(
          "Log", {g.Add("Add", {g.ConstantFloat(1.0f, "loss_one"), e}, "loss_1pe")},
          "loss_log");
      const std::string elem =
          g.Add("Add", {g.Add("Sub", {pos, yt}, "loss_lin"), sp}, "loss_elem");
      loss = Reduce(g, elem, r);
      break;
    }
  }
  // Rename the loss value to "loss" and list it first among the outputs.
  // Its producer is the last node this pass appended: look from the end.
  for (int k = graph.node_size() - 1; k >= 0; --k) {
    bool found = false;
    for (auto& o : *graph.mutable_node(k)->mutable_output()) {
      if (o == loss) {
        o = kLossOutput;
        found = true;
      }
    }
    if (found) break;
  }
  ValueShape scalar;
  scalar.elem_type = onnx::TensorProto::FLOAT;
  scalar.rank_known = true;
  onnx::GraphProto outputs;
  *outputs.mutable_output() = graph.output();
  g.ClearOutputs();
  g.AddOutput(kLossOutput, scalar);
  for (const auto& o : outputs.output()) *graph.add_output() = o;
  return true;
}

}  // namespace training
}  // namespace qat
