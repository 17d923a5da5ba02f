// Gradient rules for reductions (ReduceMax, ReduceMin, ReduceProd,
// ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare), for
// CumSum, TopK, Trilu and Einsum.
//
// A reduction's rule works on the input's shape: dL/dy and y are brought
// back to it as ReduceSum's rule does (re-insert the reduced axes, Expand),
// and then
//   ReduceSumSquare  dx = 2 x g          ReduceL1         dx = sign(x) g
//   ReduceL2         dx = x g / y (0 where y = 0)
//   ReduceLogSum     dx = g / exp(y)     ReduceLogSumExp  dx = g exp(x - y)
//   ReduceMax/Min    dx = g [x = y] / (number of such x): ties share
//   ReduceProd       dx = g * (product of the others), computed without
//                    dividing by a zero: with z = [x = 0], P the product of
//                    x + z and Z the count of zeros, dx = g P / (x + z) where
//                    Z - z = 0 (no other zero), else 0.
#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autodiff/gradient_rules.h"
#include "core/einsum_equation.h"
#include "core/onnx_tensor.h"
#include "qat/status_macros.h"

namespace qat {
namespace training {
namespace {

// `reduced` (shaped like the reduction's output) broadcast back over its
// input's shape: exactly the gradient of ReduceSum with the same axes, so
// its rule does it.
absl::StatusOr<std::string> ToInputShape(GradContext& ctx, const std::string& reduced) {
  GradContext sum(ctx.g(), ctx.node(), {reduced}, {true});
  QAT_RETURN_IF_ERROR(GradReduceSum(sum));
  return sum.input_grads()[0];
}

// `op` (ReduceSum, ReduceProd) over `x` with the node's axes and keepdims,
// spelled for the graph's opset: the axes are an input since 13 for
// ReduceSum and since 18 for the others.
absl::StatusOr<std::string> ReduceLike(GradContext& ctx, const std::string& op,
                                       const std::string& x, const std::string& hint) {
  auto axes_as_input = [&](const std::string& type) {
    return ctx.g().opset() >= (type == "ReduceSum" ? 13 : 18);
  };
  const std::string& axes_input = ctx.num_inputs() > 1 ? ctx.input(1) : ctx.input(0);
  const bool has_axes_input = ctx.num_inputs() > 1 && !axes_input.empty();
  std::vector<int64_t> axes = GetAttrInts(ctx.node(), "axes");
  if (has_axes_input && !axes_as_input(op)) {
    return ctx.Unsupported(absl::StrCat(op, " over axes given as an input"));
  }
  std::vector<onnx::AttributeProto> attrs;
  for (const onnx::AttributeProto& a : ctx.node().attribute()) {
    if (a.name() != "axes") attrs.push_back(a);
  }
  std::vector<std::string> inputs = {x};
  if (has_axes_input) {
    inputs.push_back(axes_input);
  } else if (!axes.empty() && axes_as_input(op)) {
    inputs.push_back(ctx.g().ConstantInt64s(axes, ctx.Hint(hint + "_axes")));
  } else if (!axes.empty()) {
    attrs.push_back(AttrInts("axes", axes));
  }
  return ctx.g().Add(op, inputs, ctx.Hint(hint), attrs);
}

int32_t ElemType(GradContext& ctx, const std::string& name) {
  const std::optional<ValueShape> s = ctx.g().ShapeOf(name);
  return s.has_value() && s->elem_type != 0 ? s->elem_type : onnx::TensorProto::FLOAT;
}

// [a = b] as a float (the input's type) tensor.
std::string Indicator(GradContext& ctx, const std::string& a, const std::string& b,
                      const std::string& hint) {
  const std::string eq = ctx.g().Add("Equal", {a, b}, ctx.Hint(hint + "_eq"));
  return ctx.g().Add("Cast", {eq}, ctx.Hint(hint), {AttrInt("to", ElemType(ctx, ctx.input(0)))});
}

// The rules below get g and y on the input's shape.
struct OnInput {
  std::string x, g, y;
};
absl::StatusOr<OnInput> Broadcast(GradContext& ctx, bool need_y) {
  OnInput v{ctx.input(0), "", ""};
  QAT_ASSIGN_OR_RETURN(v.g, ToInputShape(ctx, ctx.output_grad(0)));
  if (need_y) {
    QAT_ASSIGN_OR_RETURN(v.y, ToInputShape(ctx, ctx.output(0)));
  }
  return v;
}

// dx = g * [x is the extreme] / (how many are).
absl::Status GradReduceExtreme(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, true));
  const std::string mask = Indicator(ctx, v.x, v.y, "mask");
  QAT_ASSIGN_OR_RETURN(const std::string ties, ReduceLike(ctx, "ReduceSum", mask, "ties"));
  QAT_ASSIGN_OR_RETURN(const std::string count, ToInputShape(ctx, ties));
  const std::string gm = ctx.g().Add("Mul", {v.g, mask}, ctx.Hint("masked"));
  ctx.SetInputGrad(0, ctx.g().Add("Div", {gm, count}, ctx.Hint("x")));
  return absl::OkStatus();
}

}  // namespace

absl::Status GradReduceMax(GradContext& ctx) { return GradReduceExtreme(ctx); }
absl::Status GradReduceMin(GradContext& ctx) { return GradReduceExtreme(ctx); }

absl::Status GradReduceProd(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, false));
  auto& g = ctx.g();
  const std::string zero = g.ConstantFloat(0.0f, ctx.Hint("zero"));
  const std::string z = Indicator(ctx, v.x, zero, "is_zero");
  const std::string nonzero = g.Add("Add", {v.x, z}, ctx.Hint("nonzero"));
  QAT_ASSIGN_OR_RETURN(const std::string p, ReduceLike(ctx, "ReduceProd", nonzero, "prod"));
  QAT_ASSIGN_OR_RETURN(const std::string zeros, ReduceLike(ctx, "ReduceSum", z, "zeros"));
  QAT_ASSIGN_OR_RETURN(const std::string pb, ToInputShape(ctx, p));
  QAT_ASSIGN_OR_RETURN(const std::string zb, ToInputShape(ctx, zeros));
  const std::string others = g.Add("Sub", {zb, z}, ctx.Hint("other_zeros"));
  const std::string none = g.Add("Equal", {others, zero}, ctx.Hint("no_other_zero"));
  const std::string rest = g.Add("Div", {pb, nonzero}, ctx.Hint("rest"));
  const std::string d = g.Add("Where", {none, rest, zero}, ctx.Hint("d"));
  ctx.SetInputGrad(0, g.Add("Mul", {v.g, d}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradReduceL1(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, false));
  const std::string s = ctx.g().Add("Sign", {v.x}, ctx.Hint("sign"));
  ctx.SetInputGrad(0, ctx.g().Add("Mul", {v.g, s}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradReduceL2(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, true));
  auto& g = ctx.g();
  const std::string zero = g.ConstantFloat(0.0f, ctx.Hint("zero"));
  const std::string gx = g.Add("Mul", {v.g, v.x}, ctx.Hint("gx"));
  const std::string d = g.Add("Div", {gx, v.y}, ctx.Hint("d"));
  const std::string at_zero = g.Add("Equal", {v.y, zero}, ctx.Hint("at_zero"));
  ctx.SetInputGrad(0, g.Add("Where", {at_zero, zero, d}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradReduceLogSum(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, true));
  const std::string sum = ctx.g().Add("Exp", {v.y}, ctx.Hint("sum"));
  ctx.SetInputGrad(0, ctx.g().Add("Div", {v.g, sum}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradReduceLogSumExp(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, true));
  const std::string shifted = ctx.g().Add("Sub", {v.x, v.y}, ctx.Hint("shifted"));
  const std::string p = ctx.g().Add("Exp", {shifted}, ctx.Hint("softmax"));
  ctx.SetInputGrad(0, ctx.g().Add("Mul", {v.g, p}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradReduceSumSquare(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const OnInput v, Broadcast(ctx, false));
  const std::string two = ctx.g().ConstantFloat(2.0f, ctx.Hint("two"));
  const std::string x2 = ctx.g().Add("Mul", {v.x, two}, ctx.Hint("two_x"));
  ctx.SetInputGrad(0, ctx.g().Add("Mul", {v.g, x2}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradCumSum(GradContext& ctx) {
  // Each input adds to the sums after it (before it, reversed): the adjoint
  // is the cumulative sum the other way, exclusive when the forward is.
  const bool reverse = GetAttrInt(ctx.node(), "reverse", 0) != 0;
  ctx.SetInputGrad(0, ctx.g().Add("CumSum", {ctx.output_grad(0), ctx.input(1)}, ctx.Hint("x"),
                                  {AttrInt("exclusive", GetAttrInt(ctx.node(), "exclusive", 0)),
                                   AttrInt("reverse", !reverse)}));
  return absl::OkStatus();
}

absl::Status GradTopK(GradContext& ctx) {
  // The values' gradient goes back to the positions they came from (distinct
  // along the axis, so no index repeats); the rest of x gets 0.
  if (ctx.g().opset() < 11) return ctx.Unsupported("TopK before opset 11");
  auto& g = ctx.g();
  const std::string shape = g.Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  const std::string zeros =
      g.Add("Expand", {g.ConstantFloat(0.0f, ctx.Hint("zero")), shape}, ctx.Hint("zeros"));
  ctx.SetInputGrad(0, g.Add("ScatterElements", {zeros, ctx.output(1), ctx.output_grad(0)},
                            ctx.Hint("x"), {AttrInt("axis", GetAttrInt(ctx.node(), "axis", -1))}));
  return absl::OkStatus();
}

absl::Status GradTrilu(GradContext& ctx) {
  // Trilu is a mask, so its adjoint is the same mask.
  std::vector<std::string> inputs = {ctx.output_grad(0)};
  if (ctx.num_inputs() > 1 && !ctx.input(1).empty()) inputs.push_back(ctx.input(1));
  ctx.SetInputGrad(0, ctx.g().Add("Trilu", inputs, ctx.Hint("x"),
                                  {AttrInt("upper", GetAttrInt(ctx.node(), "upper", 1))}));
  return absl::OkStatus();
}

absl::Status GradEinsum(GradContext& ctx) {
  // dL/dX_i is an Einsum of dL/dY with the other operands, written with
  // explicit letters (the ellipsis axes get letters of their own):
  // - a size-1 axis that another operand broadcasts takes a letter of its
  //   own (summed away, so the sizes always agree); in X_i it is left out
  //   of the result and put back by Unsqueeze;
  // - a label of X_i that nothing else has (summed in the forward) is left
  //   out too, and the result is Expanded back over it;
  // - a label repeated in X_i (a diagonal) gets a new letter per repeat,
  //   tied to the first by an identity matrix operand, so the gradient
  //   lands on the diagonal only.
  const std::string equation = GetAttrString(ctx.node(), "equation", "");
  const int n = ctx.num_inputs();
  QAT_ASSIGN_OR_RETURN(const EinsumTerms terms, ParseEinsum(equation, n));
  std::vector<ValueShape> shapes;
  std::vector<int64_t> ranks;
  for (int i = 0; i < n; ++i) {
    QAT_ASSIGN_OR_RETURN(ValueShape s, ctx.Shape(ctx.input(i)));
    ranks.push_back(s.rank());
    shapes.push_back(std::move(s));
  }
  QAT_ASSIGN_OR_RETURN(const EinsumLabels labels, ResolveEinsum(terms, ranks));
  std::vector<bool> used(kEinsumLetters, false);
  for (const std::string& t : terms.inputs) {
    for (char c : t) {
      if (c != '.') used[EinsumLetterLabel(c)] = true;
    }
  }
  auto fresh = [&]() -> absl::StatusOr<char> {
    for (int l = 0; l < kEinsumLetters; ++l) {
      if (!used[l]) {
        used[l] = true;
        return EinsumLabelLetter(l);
      }
    }
    return ctx.Unsupported("an Einsum that uses up all 52 letters");
  };
  std::map<int, char> letter;
  for (int e = 0; e < labels.ellipsis_rank; ++e) {
    QAT_ASSIGN_OR_RETURN(letter[kEinsumEllipsisLabel + e], fresh());
  }
  auto letter_of = [&](int label) {
    return label < kEinsumLetters ? EinsumLabelLetter(label) : letter[label];
  };
  // Axis a of operand i is broadcast: size 1 where another has more (or an
  // unknown size).
  auto broadcast = [&](int i, size_t a) {
    if (shapes[i].dims[a] != 1) return false;
    for (int j = 0; j < n; ++j) {
      for (size_t b = 0; b < labels.inputs[j].size(); ++b) {
        if (labels.inputs[j][b] == labels.inputs[i][a] && shapes[j].dims[b] != 1) return true;
      }
    }
    return false;
  };
  std::string out_term;
  for (int l : labels.output) out_term.push_back(letter_of(l));
  for (int i = 0; i < n; ++i) {
    if (!ctx.wants(i)) continue;
    std::vector<std::string> operand_terms = {out_term};
    std::vector<std::string> inputs = {ctx.output_grad(0)};
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      std::string t;
      for (size_t b = 0; b < labels.inputs[j].size(); ++b) {
        if (broadcast(j, b)) {
          QAT_ASSIGN_OR_RETURN(const char c, fresh());
          t.push_back(c);
        } else {
          t.push_back(letter_of(labels.inputs[j][b]));
        }
      }
      operand_terms.push_back(t);
      inputs.push_back(ctx.input(j));
    }
    const std::string available = absl::StrJoin(operand_terms, "");
    const std::vector<int>& own = labels.inputs[i];
    std::string target;
    std::vector<int64_t> dropped;
    bool expand = false;
    for (size_t a = 0; a < own.size(); ++a) {
      const char c = letter_of(own[a]);
      const bool repeated = std::count(own.begin(), own.end(), own[a]) > 1;
      const bool first = std::find(own.begin(), own.end(), own[a]) - own.begin() ==
                         static_cast<std::ptrdiff_t>(a);
      if (broadcast(i, a) && !repeated) {
        dropped.push_back(static_cast<int64_t>(a));
      } else if (first && !repeated && available.find(c) == std::string::npos) {
        dropped.push_back(static_cast<int64_t>(a));
        expand = true;
      } else if (first) {
        target.push_back(c);
      } else {
        const int64_t d = shapes[i].dims[a];
        if (d < 0 || d > 4096) {
          return ctx.Unsupported("a repeated Einsum label over an axis that is not static and small");
        }
        QAT_ASSIGN_OR_RETURN(const char tie, fresh());
        target.push_back(tie);
        std::vector<float> eye(static_cast<size_t>(d * d), 0.0f);
        for (int64_t k = 0; k < d; ++k) eye[k * d + k] = 1.0f;
        operand_terms.push_back(std::string{c, tie});
        inputs.push_back(ctx.g().Initializer(MakeFloatTensor(ctx.Hint("eye"), {d, d}, eye)));
      }
    }
    const std::string eq = absl::StrCat(absl::StrJoin(operand_terms, ","), "->", target);
    std::string r = operand_terms.size() == 1 && operand_terms[0] == target
                        ? ctx.output_grad(0)
                        : ctx.g().Add("Einsum", inputs, ctx.Hint(absl::StrCat("x", i)),
                                      {AttrString("equation", eq)});
    if (!dropped.empty()) r = ctx.g().Unsqueeze(r, dropped, ctx.Hint("unsqueeze"));
    if (expand) {
      const std::string shape = ctx.g().Add("Shape", {ctx.input(i)}, ctx.Hint("shape"));
      r = ctx.g().Add("Expand", {r, shape}, ctx.Hint("expand"));
    }
    ctx.SetInputGrad(i, r);
  }
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
