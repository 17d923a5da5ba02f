#include "autodiff/gradient_rules.h"

#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/onnx_tensor.h"
#include "qat/tensor.h"
#include "qat/status_macros.h"

namespace qat {
namespace training {

GradContext::GradContext(GraphEditor& editor, const onnx::NodeProto& node,
                         std::vector<std::string> output_grads,
                         std::vector<bool> wants_input_grad)
    : editor_(editor),
      node_(node),
      output_grads_(std::move(output_grads)),
      wants_(std::move(wants_input_grad)),
      input_grads_(node.input_size()) {}

const std::string& GradContext::input(int i) const {
  static const std::string kNone;
  return i < node_.input_size() ? node_.input(i) : kNone;
}

const std::string& GradContext::output(int i) const {
  static const std::string kNone;
  return i < node_.output_size() ? node_.output(i) : kNone;
}

const std::string& GradContext::output_grad(int i) const {
  static const std::string kNone;
  return i < static_cast<int>(output_grads_.size()) ? output_grads_[i] : kNone;
}

bool GradContext::wants(int i) const {
  return i < static_cast<int>(wants_.size()) && wants_[i];
}

void GradContext::SetInputGrad(int i, std::string grad) {
  if (wants(i)) input_grads_[i] = std::move(grad);
}

std::string GradContext::Hint(const std::string& what) const {
  return absl::StrCat(node_.output_size() > 0 ? node_.output(0) : node_.name(),
                      "_grad_", what);
}

absl::StatusOr<ValueShape> GradContext::Shape(const std::string& name,
                                              bool need_dims) const {
  std::optional<ValueShape> s = editor_.ShapeOf(name);
  if (!s.has_value() || !s->rank_known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the gradient of ", DescribeNode(node_),
        " needs the shape of '", name,
        "', which shape inference did not determine"));
  }
  if (need_dims && !s->fully_known()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the gradient of ", DescribeNode(node_), " needs static dimensions of '",
        name, "', but its shape is [", absl::StrJoin(s->dims, ","), "]"));
  }
  return *s;
}

absl::StatusOr<std::string> GradContext::Unbroadcast(const std::string& grad,
                                                     int in, int out) {
  return UnbroadcastTo(grad, input(in), output(out));
}

absl::StatusOr<std::string> GradContext::UnbroadcastTo(const std::string& grad,
                                                       const std::string& x,
                                                       const std::string& y) {
  QAT_ASSIGN_OR_RETURN(ValueShape xs, Shape(x));
  QAT_ASSIGN_OR_RETURN(ValueShape ys, Shape(y));
  const int64_t lead = ys.rank() - xs.rank();
  if (lead < 0) {
    return absl::InternalError(absl::StrCat(
        DescribeNode(node_), ": input '", x, "' has a higher rank than the output"));
  }
  std::string g = grad;
  if (lead > 0) {
    std::vector<int64_t> axes(static_cast<size_t>(lead));
    for (int64_t a = 0; a < lead; ++a) axes[a] = a;
    g = editor_.ReduceSum(g, axes, /*keepdims=*/false, Hint("unbroadcast"));
  }
  // Axes where the input had size 1 and the output did not.  An input
  // dimension that is not static was broadcast if it is 1 at run time,
  // unless the output's dimension is 1 too or has the same name.
  auto symbol = [](const ValueShape& s, int64_t a) {
    return a < static_cast<int64_t>(s.symbols.size()) ? s.symbols[a] : std::string();
  };
  std::vector<int64_t> ones, maybe;
  for (int64_t a = 0; a < xs.rank(); ++a) {
    const int64_t xd = xs.dims[a], yd = ys.dims[a + lead];
    if (xd == 1 && yd != 1) ones.push_back(a);
    if (xd >= 0 || yd == 1) continue;
    const std::string name = symbol(xs, a);
    if (!name.empty() && name == symbol(ys, a + lead)) continue;
    maybe.push_back(a);
  }
  if (maybe.empty()) {
    if (!ones.empty()) {
      g = editor_.ReduceSum(g, ones, /*keepdims=*/true, Hint("unbroadcast"));
    }
    return g;
  }
  if (editor_.opset() < 13) {
    return Unsupported(absl::StrCat("broadcasting from '", x,
                                    "', whose dimensions are not static, before opset 13"));
  }
  // The axes to sum, at run time: the static ones, and each other axis a
  // whose size is 1 (Slice([a], 0, size == 1) is [a] or nothing); an empty
  // list sums nothing (noop_with_empty_axes).
  std::vector<std::string> parts;
  if (!ones.empty()) parts.push_back(editor_.ConstantInt64s(ones, Hint("axes")));
  const std::string one = editor_.ConstantInt64s({1}, Hint("one"));
  for (int64_t a : maybe) {
    const std::string d = RuntimeDims(x, a, a + 1);
    const std::string take =
        editor_.Add("Cast", {editor_.Add("Equal", {d, one}, Hint("is_one"))}, Hint("take"),
                    {AttrInt("to", onnx::TensorProto::INT64)});
    parts.push_back(editor_.Add("Slice",
                                {editor_.ConstantInt64s({a}, Hint("axis")),
                                 editor_.ConstantInt64s({0}, Hint("zero")), take},
                                Hint("maybe_axis")));
  }
  const std::string axes = parts.size() == 1
                               ? parts[0]
                               : editor_.Add("Concat", parts, Hint("axes"), {AttrInt("axis", 0)});
  return editor_.Add("ReduceSum", {g, axes}, Hint("unbroadcast"),
                     {AttrInt("keepdims", 1), AttrInt("noop_with_empty_axes", 1)});
}

std::string GradContext::RuntimeShape(const std::string& name) {
  return editor_.Add("Shape", {name}, Hint("shape"));
}

std::string GradContext::RuntimeDims(const std::string& name, int64_t begin, int64_t end) {
  return editor_.Slice(RuntimeShape(name), {begin}, {end}, {0}, Hint("dims"));
}

absl::StatusOr<std::string> GradContext::ElementCount(const std::string& x,
                                                      std::vector<int64_t> axes) {
  // Empty axes: every axis, which needs no rank when counted at run time.
  const std::optional<ValueShape> s = editor_.ShapeOf(x);
  int64_t count = s.has_value() && s->rank_known ? 1 : -1;
  if (count > 0) {
    std::vector<int64_t> over = axes;
    if (over.empty()) {
      for (int64_t a = 0; a < s->rank(); ++a) over.push_back(a);
    }
    for (int64_t a : over) {
      const int64_t d = a >= 0 && a < s->rank() ? s->dims[a] : -1;
      count = (d < 0 || count < 0) ? -1 : count * d;
    }
  }
  if (count > 0) return editor_.ConstantFloat(static_cast<float>(count), Hint("count"));
  std::string dims = editor_.Add("Shape", {x}, Hint("in_shape"));
  if (!axes.empty()) {
    dims = editor_.Add("Gather", {dims, editor_.ConstantInt64s(axes, Hint("axes"))},
                       Hint("dims"), {AttrInt("axis", 0)});
  }
  const std::string dims_f =
      editor_.Add("Cast", {dims}, Hint("dims_f"), {AttrInt("to", onnx::TensorProto::FLOAT)});
  return editor_.Add("ReduceProd", {dims_f}, Hint("count"), {AttrInt("keepdims", 0)});
}

absl::Status GradContext::RequireOpset(int64_t version, const std::string& why) {
  const absl::Status s = editor_.RaiseOpset(version);
  if (s.ok()) return s;
  return Unsupported(absl::StrCat(why, ": ", s.message()));
}

absl::Status GradContext::Unsupported(const std::string& what) const {
  return absl::UnimplementedError(absl::StrCat(
      "no gradient for ", DescribeNode(node_), ": ", what));
}

absl::StatusOr<std::optional<std::vector<int64_t>>> ConstantInts(GradContext& ctx,
                                                                const std::string& name) {
  std::optional<std::vector<int64_t>> values = ctx.g().ConstantInts(name);
  if (!values.has_value() && ctx.g().FindConstant(name) != nullptr) {
    return ctx.Unsupported(absl::StrCat("'", name, "' of a type other than int32/int64"));
  }
  return values;
}

const std::vector<GradOp>& GradOps() {
  static const std::vector<GradOp>* const ops = new std::vector<GradOp>{
#define QAT_GRAD_RULE(domain, op, inputs, fn) {domain, op, inputs, fn},
#define QAT_GRAD_MISSING(domain, op, inputs) {domain, op, inputs, nullptr},
#define QAT_NO_GRAD(domain, op) {domain, op, GradInputs(), nullptr},
#include "autodiff/gradient_rule_list.h"
#undef QAT_GRAD_RULE
#undef QAT_GRAD_MISSING
#undef QAT_NO_GRAD
  };
  return *ops;
}

const GradOp* FindGradOp(const std::string& domain, const std::string& op_type) {
  // Keyed by domain and op type; built once, read by every pass over a graph.
  static const auto* const index = [] {
    auto* m = new std::unordered_map<std::string, const GradOp*>();
    for (const GradOp& op : GradOps()) {
      m->emplace(absl::StrCat(op.domain, "/", op.op_type), &op);
    }
    return m;
  }();
  const auto it =
      index->find(absl::StrCat(domain == "ai.onnx" ? "" : domain, "/", op_type));
  return it == index->end() ? nullptr : it->second;
}

bool IsNonDifferentiable(const std::string& domain, const std::string& op_type) {
  const GradOp* op = FindGradOp(domain, op_type);
  return op != nullptr && !op->inputs.any();
}

bool IsTrainableInput(const onnx::NodeProto& node, int slot, bool learn_quant_params) {
  const GradOp* op = FindGradOp(node.domain(), node.op_type());
  if (op == nullptr) return true;
  return op->inputs.differentiable(slot) &&
         (learn_quant_params || !op->inputs.quant_param(slot));
}

}  // namespace training
}  // namespace qat
