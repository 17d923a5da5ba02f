#include "passes/gradient_builder.h"

#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

bool IsDefaultDomain(const onnx::NodeProto& n) {
  return n.domain().empty() || n.domain() == "ai.onnx";
}

// Values whose gradient can be non-zero: floats that depend on a parameter.
class Dependence {
 public:
  Dependence(const onnx::GraphProto& graph, const GraphEditor& editor,
             const std::vector<std::string>& params) {
    depends_.insert(params.begin(), params.end());
    for (const auto& node : graph.node()) {
      if (IsNonDifferentiable(node.domain(), node.op_type())) continue;
      bool any = false;
      for (const auto& in : node.input()) any |= depends_.count(in) != 0;
      if (!any) continue;
      for (const auto& out : node.output()) {
        if (!out.empty() && IsFloat(editor, out)) depends_.insert(out);
      }
    }
  }
  bool operator()(const std::string& v) const { return depends_.count(v) != 0; }

 private:
  static bool IsFloat(const GraphEditor& editor, const std::string& v) {
    std::optional<ValueShape> s = editor.ShapeOf(v);
    // Unknown types are assumed float; a rule that cannot handle it says so.
    return !s.has_value() || s->elem_type == 0 ||
           s->elem_type == onnx::TensorProto::FLOAT ||
           s->elem_type == onnx::TensorProto::DOUBLE;
  }
  std::unordered_set<std::string> depends_;
};

// Adjusts forward nodes for training (see the header).
void PrepareForward(GraphEditor& g) {
  std::string true_const;
  for (auto& node : *g.graph().mutable_node()) {
    if (!IsDefaultDomain(node)) continue;
    if (node.op_type() == "MaxPool" && node.output_size() < 2) {
      node.add_output(g.FreshName(node.output(0) + "_indices"));
    } else if (node.op_type() == "Dropout") {
      if (true_const.empty()) {
        onnx::TensorProto t;
        t.set_name("training_mode");
        t.set_data_type(onnx::TensorProto::BOOL);
        t.add_int32_data(1);
        true_const = g.Initializer(t);
      }
      while (node.input_size() < 2) node.add_input("");
      if (node.input_size() < 3) node.add_input(true_const);
      else node.set_input(2, true_const);
      if (node.output_size() < 2) {
        node.add_output(g.FreshName(node.output(0) + "_mask"));
      }
    } else if (node.op_type() == "SoftmaxCrossEntropyLoss" &&
               node.output_size() < 2) {
      node.add_output(g.FreshName(node.output(0) + "_log_prob"));
    }
  }
}

}  // namespace

absl::StatusOr<bool> BuildGradientsPass::RunImpl(onnx::ModelProto* model) {
  GraphEditor g(model);
  onnx::GraphProto& graph = g.graph();
  const std::string& loss = config_.loss;
  const std::vector<std::string>& params = config_.params;
  const graph::GraphIndex index(graph);
  for (const std::string& p : params) {
    if (!index.IsInitializer(p)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", p, "' is not an initializer of the graph"));
    }
  }
  std::optional<ValueShape> loss_shape = g.ShapeOf(loss);
  if (!loss_shape.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the loss '", loss, "' is not a value of the graph"));
  }
  if (loss_shape->elem_type != onnx::TensorProto::FLOAT ||
      (loss_shape->rank_known && loss_shape->rank() != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the loss '", loss, "' must be a float scalar"));
  }
  PrepareForward(g);
  const Dependence depends(graph, g, params);
  if (!depends(loss)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the loss '", loss, "' does not depend on any trainable parameter"));
  }

  // Gradient contributions per value, summed when a value has several uses.
  std::unordered_map<std::string, std::vector<std::string>> contributions;
  contributions[loss].push_back(g.ConstantFloat(1.0f, loss + "_grad_seed"));
  auto total = [&](const std::string& v) -> std::string {
    auto it = contributions.find(v);
    if (it == contributions.end() || it->second.empty()) return "";
    std::vector<std::string>& parts = it->second;
    while (parts.size() > 1) {
      const std::string sum =
          g.Add("Add", {parts[parts.size() - 2], parts.back()}, v + "_grad_sum");
      parts.pop_back();
      parts.back() = sum;
    }
    return parts[0];
  };

  // Walk the forward nodes in reverse topological order (ONNX graphs are
  // stored topologically sorted).  Take a copy: rules append nodes.
  const int forward_nodes = graph.node_size();
  for (int k = forward_nodes - 1; k >= 0; --k) {
    const onnx::NodeProto node = graph.node(k);
    std::vector<std::string> out_grads;
    bool any_out = false;
    for (const auto& out : node.output()) {
      out_grads.push_back(depends(out) ? total(out) : "");
      any_out |= !out_grads.back().empty();
    }
    if (!any_out) continue;
    std::vector<bool> wants;
    bool any_in = false;
    for (const auto& in : node.input()) {
      wants.push_back(!in.empty() && depends(in));
      any_in |= wants.back();
    }
    if (!any_in) continue;
    const GradOp* op = FindGradOp(node.domain(), node.op_type());
    if (op != nullptr && !op->inputs.any()) continue;  // no gradient flows
    if (op == nullptr || op->rule == nullptr) {
      return absl::UnimplementedError(absl::StrCat(
          "no gradient rule for ", DescribeNode(node),
          ", which lies between a trainable parameter and the loss"));
    }
    for (int i = 0; i < node.input_size(); ++i) {
      if (wants[i] && !op->inputs.differentiable(i)) {
        return absl::UnimplementedError(absl::StrCat(
            "no gradient for ", DescribeNode(node), " with respect to its input ", i, " '",
            node.input(i), "', which gradient_rule_list.h declares non-differentiable"));
      }
    }
    GradContext ctx(g, node, out_grads, wants);
    QAT_RETURN_IF_ERROR(op->rule(ctx));
    for (int i = 0; i < node.input_size(); ++i) {
      const std::string& grad = ctx.input_grads()[i];
      if (!grad.empty()) contributions[node.input(i)].push_back(grad);
    }
  }

  // Name the outputs: the loss first, then one gradient per parameter.
  g.ClearOutputs();
  g.AddOutput(loss, *loss_shape);
  std::string reset;
  if (config_.accumulate) {
    ValueShape flag;
    flag.elem_type = onnx::TensorProto::BOOL;
    flag.rank_known = true;
    g.AddInput(kLazyResetGrad, flag);
    reset = kLazyResetGrad;
  }
  for (const std::string& p : params) {
    const ValueShape shape = *g.ShapeOf(p);
    std::string grad = total(p);
    if (grad.empty()) {
      // The parameter does not reach the loss: its gradient is zero.
      const std::string zero = g.ConstantFloat(0.0f, p + "_grad_zero");
      grad = g.Add("Expand", {zero, g.ConstantInt64s(shape.dims, p + "_shape")},
                   p + "_grad_zeros");
    }
    const std::string out = p + "_grad";
    if (config_.accumulate) {
      const std::string buffer = p + kAccumulationBufferSuffix;
      g.AddInput(buffer, shape);
      const std::string sum = g.Add("Add", {buffer, grad}, p + "_grad_accumulated");
      g.AddNode("Where", "", {reset, grad, sum}, {out});
    } else {
      g.AddNode("Identity", "", {grad}, {out});
    }
    g.AddOutput(out, shape);
  }
  return true;
}

}  // namespace training
}  // namespace qat
