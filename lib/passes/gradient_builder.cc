#include "passes/gradient_builder.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

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
  absl::flat_hash_set<std::string> depends_;
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


// Shapes that ONNX shape inference leaves unknown downstream of a Reshape
// to a computed shape (Reshape(x, Concat(Shape(x)[0], -1)), as exporters
// write x.view(x.size(0), -1)): the rules need at least the ranks.  This
// propagates ranks, and the dims it can see, through the ops whose output
// shape follows from their inputs' shapes; a dimension it cannot tell is
// -1, so rules compute it at run time.  Values that have a shape keep it.
class ShapeCompletion {
 public:
  explicit ShapeCompletion(GraphEditor& g) : g_(g) {}

  void Run() {
    for (const auto& node : g_.graph().node()) {
      if (node.output_size() == 0 || node.output(0).empty()) continue;
      // FakeQuant (com.microsoft, ai.libqat): Y and its mask have X's shape.
      const bool fake_quant = node.op_type() == "FakeQuant";
      if (!IsDefaultDomain(node) && !fake_quant) continue;
      const std::optional<ValueShape> known = g_.ShapeOf(node.output(0));
      if (known.has_value() && known->rank_known) continue;
      std::optional<ValueShape> s = fake_quant ? Of(node.input(0)) : Infer(node);
      if (!s.has_value()) continue;
      if (known.has_value() && known->elem_type != 0) s->elem_type = known->elem_type;
      g_.SetShape(node.output(0), *s);
      if (fake_quant && node.output_size() > 1 && !node.output(1).empty()) {
        s->elem_type = onnx::TensorProto::BOOL;
        g_.SetShape(node.output(1), *s);
      }
    }
  }

 private:
  // A shape vector claiming more dims than this is not believed (a bad
  // model must not make the builder allocate for it).
  static constexpr int64_t kMaxRank = 64;

  std::optional<ValueShape> Of(const std::string& v) const {
    if (v.empty()) return std::nullopt;
    std::optional<ValueShape> s = g_.ShapeOf(v);
    if (!s.has_value() || !s->rank_known) return std::nullopt;
    s->symbols.clear();
    return s;
  }

  static ValueShape Broadcast(const std::vector<ValueShape>& in) {
    ValueShape out;
    out.elem_type = in[0].elem_type;
    out.rank_known = true;
    int64_t rank = 0;
    for (const auto& s : in) rank = std::max(rank, s.rank());
    out.dims.assign(static_cast<size_t>(rank), 1);
    for (int64_t a = 0; a < rank; ++a) {
      bool unknown = false;
      for (const auto& s : in) {
        const int64_t k = a - (rank - s.rank());
        if (k < 0) continue;
        const int64_t d = s.dims[k];
        if (d < 0) unknown = true;
        else if (d != 1) out.dims[a] = d;
      }
      if (unknown && out.dims[a] == 1) out.dims[a] = -1;
    }
    return out;
  }

  std::optional<ValueShape> Infer(const onnx::NodeProto& node) const {
    static const std::set<std::string> kUnary = {
        "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Neg", "Abs", "Sqrt", "Identity",
        "LeakyRelu", "Clip", "Softmax", "LogSoftmax", "Dropout", "Cast", "Erf",
        "HardSigmoid", "HardSwish", "Sign", "Round", "Floor", "Ceil", "Reciprocal",
        "BatchNormalization", "LayerNormalization", "InstanceNormalization"};
    static const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Pow",
                                                  "Where", "Max", "Min", "Sum", "Mean"};
    const std::string& op = node.op_type();
    if (kUnary.count(op) != 0) return Of(node.input(0));
    if (kBinary.count(op) != 0) {
      std::vector<ValueShape> in;
      for (const auto& i : node.input()) {
        std::optional<ValueShape> s = Of(i);
        if (!s.has_value()) return std::nullopt;
        in.push_back(*s);
      }
      if (in.empty()) return std::nullopt;
      ValueShape out = Broadcast(in);
      out.elem_type = in[op == "Where" && in.size() > 1 ? 1 : 0].elem_type;
      return out;
    }
    if (op == "MatMul") {
      std::optional<ValueShape> a = Of(node.input(0)), b = Of(node.input(1));
      if (!a || !b || a->rank() < 2 || b->rank() < 2) return std::nullopt;
      ValueShape ba = *a, bb = *b;
      ba.dims.resize(ba.dims.size() - 2);
      bb.dims.resize(bb.dims.size() - 2);
      ValueShape out = ba.dims.empty() && bb.dims.empty() ? ba : Broadcast({ba, bb});
      out.rank_known = true;
      out.elem_type = a->elem_type;
      out.dims.push_back(a->dims[a->rank() - 2]);
      out.dims.push_back(b->dims.back());
      return out;
    }
    if (op == "Gemm") {
      std::optional<ValueShape> a = Of(node.input(0)), b = Of(node.input(1));
      if (!a || !b || a->rank() != 2 || b->rank() != 2) return std::nullopt;
      ValueShape out = *a;
      out.dims = {a->dims[GetAttrInt(node, "transA", 0) != 0 ? 1 : 0],
                  b->dims[GetAttrInt(node, "transB", 0) != 0 ? 0 : 1]};
      return out;
    }
    if (op == "Gather") {
      std::optional<ValueShape> x = Of(node.input(0)), i = Of(node.input(1));
      if (!x || !i || x->rank() < 1) return std::nullopt;
      int64_t axis = GetAttrInt(node, "axis", 0);
      if (axis < 0) axis += x->rank();
      if (axis < 0 || axis >= x->rank()) return std::nullopt;
      ValueShape out = *x;
      out.dims.assign(x->dims.begin(), x->dims.begin() + axis);
      out.dims.insert(out.dims.end(), i->dims.begin(), i->dims.end());
      out.dims.insert(out.dims.end(), x->dims.begin() + axis + 1, x->dims.end());
      return out;
    }
    if (op.rfind("Reduce", 0) == 0) {
      // Constant axes (an attribute, or an input since ReduceSum-13): the
      // reduced axes become 1, or go with keepdims = 0.
      std::optional<ValueShape> x = Of(node.input(0));
      if (!x) return std::nullopt;
      std::vector<int64_t> axes = GetAttrInts(node, "axes");
      if (node.input_size() > 1 && !node.input(1).empty()) {
        std::optional<std::vector<int64_t>> c = g_.ConstantInts(node.input(1));
        if (!c) return std::nullopt;
        axes = *c;
      }
      if (axes.empty()) {
        if (GetAttrInt(node, "noop_with_empty_axes", 0) != 0) return x;
        for (int64_t a = 0; a < x->rank(); ++a) axes.push_back(a);
      }
      std::vector<bool> reduced(static_cast<size_t>(x->rank()), false);
      for (int64_t a : axes) {
        if (a < 0) a += x->rank();
        if (a < 0 || a >= x->rank()) return std::nullopt;
        reduced[a] = true;
      }
      const bool keep = GetAttrInt(node, "keepdims", 1) != 0;
      ValueShape out = *x;
      out.dims.clear();
      for (int64_t a = 0; a < x->rank(); ++a) {
        if (!reduced[a]) out.dims.push_back(x->dims[a]);
        else if (keep) out.dims.push_back(1);
      }
      return out;
    }
    if (op == "Flatten") {
      std::optional<ValueShape> x = Of(node.input(0));
      if (!x) return std::nullopt;
      x->dims = {-1, -1};
      return x;
    }
    if (op == "Unsqueeze" || op == "Squeeze") {
      // Constant axes (an input since opset 13): the rank follows.
      std::optional<ValueShape> x = Of(node.input(0));
      std::vector<int64_t> axes = GetAttrInts(node, "axes");
      if (node.input_size() > 1) {
        std::optional<std::vector<int64_t>> c = g_.ConstantInts(node.input(1));
        if (!c) return std::nullopt;
        axes = *c;
      }
      if (!x || axes.empty()) return std::nullopt;
      const int64_t n = static_cast<int64_t>(axes.size());
      const int64_t rank = x->rank() + (op == "Unsqueeze" ? n : -n);
      if (rank < 0 || rank > kMaxRank) return std::nullopt;
      x->dims.assign(static_cast<size_t>(rank), -1);
      return x;
    }
    if (op == "Transpose") {
      std::optional<ValueShape> x = Of(node.input(0));
      if (!x) return std::nullopt;
      std::vector<int64_t> perm = GetAttrInts(node, "perm");
      if (perm.empty()) {
        for (int64_t a = x->rank() - 1; a >= 0; --a) perm.push_back(a);
      }
      if (static_cast<int64_t>(perm.size()) != x->rank()) return std::nullopt;
      ValueShape out = *x;
      for (size_t a = 0; a < perm.size(); ++a) {
        if (perm[a] < 0 || perm[a] >= x->rank()) return std::nullopt;
        out.dims[a] = x->dims[perm[a]];
      }
      return out;
    }
    if (op == "Expand" && node.input_size() > 1) {
      std::optional<ValueShape> x = Of(node.input(0)), target = Of(node.input(1));
      if (!x || !target || target->rank() != 1 || target->dims[0] < 0 ||
          target->dims[0] > kMaxRank) {
        return std::nullopt;
      }
      ValueShape t;
      t.rank_known = true;
      t.dims.assign(static_cast<size_t>(target->dims[0]), -1);
      ValueShape out = Broadcast({*x, t});
      out.elem_type = x->elem_type;
      return out;
    }
    if (op == "Concat") {
      // Every input's rank; along the axis, the sum of the sizes.
      std::optional<ValueShape> out;
      int64_t total = 0;
      for (const auto& i : node.input()) {
        std::optional<ValueShape> x = Of(i);
        if (!x) return std::nullopt;
        int64_t axis = GetAttrInt(node, "axis", 0);
        if (axis < 0) axis += x->rank();
        if (axis < 0 || axis >= x->rank() || (out && out->rank() != x->rank())) return std::nullopt;
        total = total < 0 || x->dims[axis] < 0 ? -1 : total + x->dims[axis];
        if (!out) out = *x;
        for (int64_t a = 0; a < x->rank(); ++a) {
          if (out->dims[a] < 0) out->dims[a] = x->dims[a];
        }
        out->dims[axis] = total;
      }
      return out;
    }
    if (op == "Slice") {
      // The rank stays; the sizes may change on any axis.
      std::optional<ValueShape> x = Of(node.input(0));
      if (!x) return std::nullopt;
      x->dims.assign(x->dims.size(), -1);
      return x;
    }
    if (op == "Reshape" && node.input_size() > 1) {
      std::optional<ValueShape> target = Of(node.input(1));
      std::optional<ValueShape> x = g_.ShapeOf(node.input(0));
      if (!target || target->rank() != 1 || target->dims[0] < 0 ||
          target->dims[0] > kMaxRank) {
        return std::nullopt;
      }
      ValueShape out;
      out.elem_type = x.has_value() ? x->elem_type : 0;
      out.rank_known = true;
      out.dims.assign(static_cast<size_t>(target->dims[0]), -1);
      return out;
    }
    return std::nullopt;
  }

  GraphEditor& g_;
};
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
  ShapeCompletion(g).Run();
  const Dependence depends(graph, g, params);
  if (!depends(loss)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the loss '", loss, "' does not depend on any trainable parameter"));
  }

  // Gradient contributions per value, summed when a value has several uses.
  absl::flat_hash_map<std::string, std::vector<std::string>> contributions;
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
