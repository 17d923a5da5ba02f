// Gradient rules for Gemm, MatMul, reductions and softmax.
#include <numeric>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"
#include "core/onnx_tensor.h"
#include "qat/tensor.h"

namespace qat {
namespace training {
namespace {

// alpha * A' B' as a Gemm, with A' = A^T when ta, B' = B^T when tb.
std::string GemmOf(GradContext& ctx, const std::string& a, bool ta,
                   const std::string& b, bool tb, float alpha,
                   const std::string& what) {
  std::vector<onnx::AttributeProto> attrs = {AttrInt("transA", ta),
                                             AttrInt("transB", tb)};
  if (alpha != 1.0f) attrs.push_back(AttrFloat("alpha", alpha));
  return ctx.g().Add("Gemm", {a, b}, ctx.Hint(what), attrs);
}

// The permutation that swaps the last two axes of a rank-r tensor.
std::vector<int64_t> SwapLastTwo(int64_t rank) {
  std::vector<int64_t> perm(static_cast<size_t>(rank));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[rank - 1], perm[rank - 2]);
  return perm;
}

// Normalizes the reduction axes of a Reduce* node over an input of `rank`:
// attribute before opset 13 (ReduceSum) / 18 (others), input after.
absl::StatusOr<std::vector<int64_t>> ReduceAxes(GradContext& ctx,
                                                int64_t rank) {
  std::vector<int64_t> axes = GetAttrInts(ctx.node(), "axes");
  if (ctx.num_inputs() > 1 && !ctx.input(1).empty()) {
    // Axes given as a tensor: only a constant initializer can be read here.
    const onnx::TensorProto* t = ctx.g().FindInitializer(ctx.input(1));
    if (t == nullptr) return ctx.Unsupported("reduction axes that are not constant");
    QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*t));
    if (value.dtype() != DataType::kInt64) {
      return ctx.Unsupported("reduction axes that are not int64");
    }
    axes.assign(value.values<int64_t>().begin(), value.values<int64_t>().end());
  }
  if (axes.empty()) {
    if (GetAttrInt(ctx.node(), "noop_with_empty_axes", 0) != 0) return axes;
    axes.resize(static_cast<size_t>(rank));
    std::iota(axes.begin(), axes.end(), 0);
  }
  for (int64_t& a : axes) {
    if (a < 0) a += rank;
  }
  return axes;
}

// Broadcasts the reduced gradient back over the input's shape.
absl::StatusOr<std::string> ExpandReduced(GradContext& ctx,
                                          std::vector<int64_t>* axes_out) {
  std::string g = ctx.output_grad(0);
  const bool keepdims = GetAttrInt(ctx.node(), "keepdims", 1) != 0;
  const bool all_axes = GetAttrInts(ctx.node(), "axes").empty() &&
                        (ctx.num_inputs() < 2 || ctx.input(1).empty());
  if (!(all_axes && !keepdims)) {
    // The reduced axes must be re-inserted before broadcasting, which needs
    // the input's rank.  (A full reduction to a scalar broadcasts as is.)
    QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
    QAT_ASSIGN_OR_RETURN(*axes_out, ReduceAxes(ctx, x.rank()));
    if (!keepdims && !axes_out->empty()) {
      g = ctx.g().Unsqueeze(g, *axes_out, ctx.Hint("keep"));
    }
  }
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  return ctx.g().Add("Expand", {g, shape}, ctx.Hint("x"));
}

}  // namespace

absl::Status GradGemm(GradContext& ctx) {
  // Y = alpha op(A) op(B) + beta C, with op = transpose when transA/transB.
  const bool ta = GetAttrInt(ctx.node(), "transA", 0) != 0;
  const bool tb = GetAttrInt(ctx.node(), "transB", 0) != 0;
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 1.0f);
  const float beta = GetAttrFloat(ctx.node(), "beta", 1.0f);
  const std::string& g = ctx.output_grad(0);
  const std::string& a = ctx.input(0);
  const std::string& b = ctx.input(1);
  if (ctx.wants(0)) {
    // d op(A) = alpha g op(B)^T.
    ctx.SetInputGrad(0, ta ? GemmOf(ctx, b, tb, g, true, alpha, "a")
                           : GemmOf(ctx, g, false, b, !tb, alpha, "a"));
  }
  if (ctx.wants(1)) {
    // d op(B) = alpha op(A)^T g.
    ctx.SetInputGrad(1, tb ? GemmOf(ctx, g, true, a, ta, alpha, "b")
                           : GemmOf(ctx, a, !ta, g, false, alpha, "b"));
  }
  if (ctx.wants(2)) {
    std::string gc = g;
    if (beta != 1.0f) {
      gc = ctx.g().Add("Mul", {g, ctx.g().ConstantFloat(beta, ctx.Hint("beta"))},
                       ctx.Hint("c"));
    }
    QAT_ASSIGN_OR_RETURN(std::string dc, ctx.Unbroadcast(gc, 2));
    ctx.SetInputGrad(2, dc);
  }
  return absl::OkStatus();
}

absl::Status GradMatMul(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape as, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(ValueShape bs, ctx.Shape(ctx.input(1)));
  if (as.rank() < 2 || bs.rank() < 2) {
    return ctx.Unsupported("MatMul with a 1-D operand");
  }
  const std::string& g = ctx.output_grad(0);
  if (ctx.wants(0)) {
    // dA = g B^T, summed over broadcast batch axes.
    const std::string bt = ctx.g().Transpose(ctx.input(1), SwapLastTwo(bs.rank()),
                                             ctx.Hint("bt"));
    const std::string da = ctx.g().Add("MatMul", {g, bt}, ctx.Hint("a"));
    QAT_ASSIGN_OR_RETURN(std::string r, ctx.Unbroadcast(da, 0));
    ctx.SetInputGrad(0, r);
  }
  if (ctx.wants(1)) {
    if (bs.rank() == 2 && as.rank() > 2) {
      // A common layout ([..., M, K] x [K, N]): fold the batch into M.
      const std::string k = ctx.g().ConstantInt64s({-1, as.dims.back()},
                                                   ctx.Hint("k_shape"));
      const std::string a2 = ctx.g().Reshape(ctx.input(0), k, ctx.Hint("a2"));
      QAT_ASSIGN_OR_RETURN(ValueShape ys, ctx.Shape(ctx.output(0)));
      const std::string n = ctx.g().ConstantInt64s({-1, ys.dims.back()},
                                                   ctx.Hint("n_shape"));
      const std::string g2 = ctx.g().Reshape(g, n, ctx.Hint("g2"));
      ctx.SetInputGrad(1, GemmOf(ctx, a2, true, g2, false, 1.0f, "b"));
    } else {
      const std::string at = ctx.g().Transpose(
          ctx.input(0), SwapLastTwo(as.rank()), ctx.Hint("at"));
      const std::string db = ctx.g().Add("MatMul", {at, g}, ctx.Hint("b"));
      QAT_ASSIGN_OR_RETURN(std::string r, ctx.Unbroadcast(db, 1));
      ctx.SetInputGrad(1, r);
    }
  }
  return absl::OkStatus();
}

absl::Status GradReduceSum(GradContext& ctx) {
  std::vector<int64_t> axes;
  QAT_ASSIGN_OR_RETURN(std::string g, ExpandReduced(ctx, &axes));
  ctx.SetInputGrad(0, g);
  return absl::OkStatus();
}

absl::Status GradReduceMean(GradContext& ctx) {
  std::vector<int64_t> axes;  // empty: every axis
  QAT_ASSIGN_OR_RETURN(std::string g, ExpandReduced(ctx, &axes));
  // Divide by the number of elements averaged: a constant when those
  // dimensions are static, else computed from the runtime shape (so that a
  // mean over a dynamic batch works).
  const std::optional<ValueShape> x = ctx.g().ShapeOf(ctx.input(0));
  int64_t count = x.has_value() && x->rank_known ? 1 : -1;
  if (count > 0) {
    std::vector<int64_t> over = axes;
    if (over.empty()) {
      for (int64_t a = 0; a < x->rank(); ++a) over.push_back(a);
    }
    for (int64_t a : over) {
      const int64_t d = a < x->rank() ? x->dims[a] : -1;
      count = (d < 0 || count < 0) ? -1 : count * d;
    }
  }
  std::string divisor;
  if (count > 0) {
    divisor = ctx.g().ConstantFloat(static_cast<float>(count), ctx.Hint("count"));
  } else {
    std::string dims = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("in_shape"));
    if (!axes.empty()) {
      dims = ctx.g().Add("Gather", {dims, ctx.g().ConstantInt64s(axes, ctx.Hint("axes"))},
                         ctx.Hint("dims"), {AttrInt("axis", 0)});
    }
    const std::string dims_f = ctx.g().Add(
        "Cast", {dims}, ctx.Hint("dims_f"),
        {AttrInt("to", onnx::TensorProto::FLOAT)});
    divisor = ctx.g().Add("ReduceProd", {dims_f}, ctx.Hint("count"),
                          {AttrInt("keepdims", 0)});
  }
  ctx.SetInputGrad(0, ctx.g().Add("Div", {g, divisor}, ctx.Hint("mean")));
  return absl::OkStatus();
}

absl::Status GradSoftmax(GradContext& ctx) {
  // dx = y * (g - sum(g * y, axis)).
  if (ctx.g().opset() < 13) return ctx.Unsupported("Softmax before opset 13");
  const int64_t axis = GetAttrInt(ctx.node(), "axis", -1);
  const std::string& g = ctx.output_grad(0);
  const std::string gy = ctx.g().Add("Mul", {g, ctx.output(0)}, ctx.Hint("gy"));
  const std::string s = ctx.g().ReduceSum(gy, {axis}, true, ctx.Hint("sum"));
  const std::string d = ctx.g().Add("Sub", {g, s}, ctx.Hint("d"));
  ctx.SetInputGrad(0, ctx.g().Add("Mul", {ctx.output(0), d}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradLogSoftmax(GradContext& ctx) {
  // dx = g - exp(y) * sum(g, axis).
  if (ctx.g().opset() < 13) return ctx.Unsupported("LogSoftmax before opset 13");
  const int64_t axis = GetAttrInt(ctx.node(), "axis", -1);
  const std::string& g = ctx.output_grad(0);
  const std::string s = ctx.g().ReduceSum(g, {axis}, true, ctx.Hint("sum"));
  const std::string p = ctx.g().Add("Exp", {ctx.output(0)}, ctx.Hint("p"));
  const std::string ps = ctx.g().Add("Mul", {p, s}, ctx.Hint("ps"));
  ctx.SetInputGrad(0, ctx.g().Add("Sub", {g, ps}, ctx.Hint("x")));
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
