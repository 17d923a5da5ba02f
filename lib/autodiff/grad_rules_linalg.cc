// Gradient rules for Gemm, MatMul, reductions and softmax.
#include <algorithm>
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

// The shape [-1, d] with d = B's dimension `axis` of a 2-D B: a constant
// when static, else read at run time.
std::string Rows(GradContext& ctx, const std::string& b, const ValueShape& bs, int64_t axis,
                 const std::string& what) {
  if (bs.dims[axis] >= 0) return ctx.g().ConstantInt64s({-1, bs.dims[axis]}, ctx.Hint(what));
  return ctx.g().Add("Concat",
                     {ctx.g().ConstantInt64s({-1}, ctx.Hint("minus_one")),
                      ctx.RuntimeDims(b, axis, axis + 1)},
                     ctx.Hint(what), {AttrInt("axis", 0)});
}

// The axes a (Log)Softmax normalizes over: its axis from opset 13 on;
// before, the input flattened to 2-D at `axis` (default 1), so every axis
// from there on (which needs the input's rank).
absl::StatusOr<std::vector<int64_t>> SoftmaxAxes(GradContext& ctx) {
  if (ctx.g().opset() >= 13) return std::vector<int64_t>{GetAttrInt(ctx.node(), "axis", -1)};
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  int64_t axis = GetAttrInt(ctx.node(), "axis", 1);
  if (axis < 0) axis += x.rank();
  if (axis < 0 || axis >= std::max<int64_t>(x.rank(), 1)) {
    return ctx.Unsupported("an axis out of range");
  }
  std::vector<int64_t> axes;
  for (int64_t a = axis; a < x.rank(); ++a) axes.push_back(a);
  return axes;
}

// Normalizes the reduction axes of a Reduce* node over an input of `rank`:
// attribute before opset 13 (ReduceSum) / 18 (others), input after.
absl::StatusOr<std::vector<int64_t>> ReduceAxes(GradContext& ctx,
                                                int64_t rank) {
  std::vector<int64_t> axes = GetAttrInts(ctx.node(), "axes");
  if (ctx.num_inputs() > 1 && !ctx.input(1).empty()) {
    // Axes given as a tensor: an initializer or a Constant node's value
    // (ExpandReduced handles computed axes).
    const onnx::TensorProto* t = ctx.g().FindConstant(ctx.input(1));
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
  const bool computed_axes = ctx.num_inputs() > 1 && !ctx.input(1).empty() &&
                             ctx.g().FindConstant(ctx.input(1)) == nullptr;
  if (computed_axes) {
    // Axes known only at run time (ReduceSum-13, ReduceMean-18): with
    // keepdims the gradient broadcasts as it is; without, Unsqueeze takes
    // the same axes (counted in the input's rank, which Unsqueeze's output
    // has, so negative axes mean the same).  A mean divides by a count over
    // every axis the caller names, so only sums take computed axes.
    if (ctx.node().op_type() != "ReduceSum") {
      return ctx.Unsupported("reduction axes that are not constant");
    }
    if (!keepdims) g = ctx.g().Add("Unsqueeze", {g, ctx.input(1)}, ctx.Hint("keep"));
  } else if (!(all_axes && !keepdims)) {
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
      // A common layout ([..., M, K] x [K, N]): fold the batch into M.  K
      // and N are B's dims.
      const std::string k = Rows(ctx, ctx.input(1), bs, 0, "k_shape");
      const std::string a2 = ctx.g().Reshape(ctx.input(0), k, ctx.Hint("a2"));
      const std::string n = Rows(ctx, ctx.input(1), bs, 1, "n_shape");
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
  QAT_ASSIGN_OR_RETURN(const std::string divisor, ctx.ElementCount(ctx.input(0), axes));
  ctx.SetInputGrad(0, ctx.g().Add("Div", {g, divisor}, ctx.Hint("mean")));
  return absl::OkStatus();
}

absl::Status GradSoftmax(GradContext& ctx) {
  // dx = y * (g - sum(g * y, axes)).
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, SoftmaxAxes(ctx));
  const std::string& g = ctx.output_grad(0);
  const std::string gy = ctx.g().Add("Mul", {g, ctx.output(0)}, ctx.Hint("gy"));
  const std::string s = ctx.g().ReduceSum(gy, axes, true, ctx.Hint("sum"));
  const std::string d = ctx.g().Add("Sub", {g, s}, ctx.Hint("d"));
  ctx.SetInputGrad(0, ctx.g().Add("Mul", {ctx.output(0), d}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradLogSoftmax(GradContext& ctx) {
  // dx = g - exp(y) * sum(g, axes).
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, SoftmaxAxes(ctx));
  const std::string& g = ctx.output_grad(0);
  const std::string s = ctx.g().ReduceSum(g, axes, true, ctx.Hint("sum"));
  const std::string p = ctx.g().Add("Exp", {ctx.output(0)}, ctx.Hint("p"));
  const std::string ps = ctx.g().Add("Mul", {p, s}, ctx.Hint("ps"));
  ctx.SetInputGrad(0, ctx.g().Add("Sub", {g, ps}, ctx.Hint("x")));
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
