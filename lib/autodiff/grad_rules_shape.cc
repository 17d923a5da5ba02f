// Gradient rules for ops that only move elements around.
#include <algorithm>
#include <numeric>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"
#include "autodiff/gradient_rules.h"
#include "core/onnx_tensor.h"

namespace qat {
namespace training {
namespace {

// The adjoint of Gather(data, indices, axis) for data of the static shape
// `dims`: `g` (shaped dims[:axis] + indices' shape + dims[axis+1:]) put back
// at `indices` along `axis` into zeros shaped like the data, added up where
// an index repeats (`accumulate`: ScatterElements' reduction "add").  Works
// on [P, D, Q] views, P and Q the sizes before and after the axis.
std::string ScatterIntoZeros(GradContext& ctx, const std::string& g, const std::string& indices,
                             const std::vector<int64_t>& dims, int64_t axis, bool accumulate) {
  int64_t p = 1, q = 1;
  for (int64_t a = 0; a < axis; ++a) p *= dims[a];
  for (size_t a = static_cast<size_t>(axis) + 1; a < dims.size(); ++a) q *= dims[a];
  GraphEditor& e = ctx.g();
  const std::string g3 =
      e.Reshape(g, e.ConstantInt64s({p, -1, q}, ctx.Hint("g3_shape")), ctx.Hint("g3"));
  const std::string column = e.Reshape(
      indices, e.ConstantInt64s({1, -1, 1}, ctx.Hint("index_shape")), ctx.Hint("index"));
  const std::string index3 =
      e.Add("Expand", {column, e.Add("Shape", {g3}, ctx.Hint("g3_dims"))}, ctx.Hint("index3"));
  const std::string zeros =
      e.Add("Expand",
            {e.ConstantFloat(0.0f, ctx.Hint("zero")),
             e.ConstantInt64s({p, dims[axis], q}, ctx.Hint("zeros_shape"))},
            ctx.Hint("zeros"));
  std::vector<onnx::AttributeProto> attrs = {AttrInt("axis", 1)};
  if (accumulate) attrs.push_back(AttrString("reduction", "add"));
  const std::string scattered =
      e.Add("ScatterElements", {zeros, index3, g3}, ctx.Hint("scatter"), attrs);
  return e.Reshape(scattered, e.ConstantInt64s(dims, ctx.Hint("dims")), ctx.Hint("unscattered"));
}

// The input's shape, which must be static.
absl::StatusOr<std::vector<int64_t>> StaticDims(GradContext& ctx, const std::string& what) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0), true));
  if (!x.fully_known()) return ctx.Unsupported(what + " of data whose shape is not static");
  return x.dims;
}

}  // namespace

absl::Status GradReshapeLike(GradContext& ctx) {
  // Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's
  // shape back, read at run time so that a dynamic batch works.
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  ctx.SetInputGrad(0, ctx.g().Reshape(ctx.output_grad(0), shape, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradTranspose(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  std::vector<int64_t> perm = GetAttrInts(ctx.node(), "perm");
  if (perm.empty()) {  // default: reverse the axes
    perm.resize(static_cast<size_t>(x.rank()));
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);
  ctx.SetInputGrad(0, ctx.g().Transpose(ctx.output_grad(0), inverse, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradConcat(GradContext& ctx) {
  // Split the gradient along the axis into the inputs' sizes.
  QAT_ASSIGN_OR_RETURN(ValueShape y, ctx.Shape(ctx.output(0)));
  int64_t axis = GetAttrInt(ctx.node(), "axis", 0);
  if (axis < 0) axis += y.rank();
  std::vector<int64_t> sizes;
  std::vector<std::string> outs;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(i)));
    if (axis >= x.rank() || x.dims[axis] < 0) {
      return ctx.Unsupported("Concat whose inputs' sizes along the axis are "
                             "not static");
    }
    sizes.push_back(x.dims[axis]);
    outs.push_back(ctx.g().FreshName(ctx.Hint(absl::StrCat("x", i))));
  }
  std::vector<std::string> inputs = {ctx.output_grad(0)};
  std::vector<onnx::AttributeProto> attrs = {AttrInt("axis", axis)};
  if (ctx.g().opset() >= 13) {
    inputs.push_back(ctx.g().ConstantInt64s(sizes, ctx.Hint("split")));
  } else {
    attrs.push_back(AttrInts("split", sizes));
  }
  ctx.g().AddNode("Split", "", inputs, outs, attrs);
  for (int i = 0; i < ctx.num_inputs(); ++i) ctx.SetInputGrad(i, outs[i]);
  return absl::OkStatus();
}

absl::Status GradGather(GradContext& ctx) {
  // dData = zeros with the gradient added back at the gathered positions.
  // Repeated indices need ScatterElements' reduction "add" (opset 16); a
  // constant index list without repeats does without (opset 11).
  QAT_ASSIGN_OR_RETURN(std::vector<int64_t> dims, StaticDims(ctx, "Gather"));
  int64_t axis = GetAttrInt(ctx.node(), "axis", 0);
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (axis < -rank || axis >= rank) return ctx.Unsupported("an axis out of range");
  if (axis < 0) axis += rank;
  QAT_ASSIGN_OR_RETURN(auto constant, ConstantInts(ctx, ctx.input(1)));
  bool repeats = true;
  if (constant.has_value()) {
    std::set<int64_t> seen;
    repeats = false;
    for (int64_t i : *constant) repeats |= !seen.insert(i < 0 ? i + dims[axis] : i).second;
  }
  const int64_t needed = repeats ? 16 : 11;
  if (ctx.g().opset() < needed) {
    return ctx.Unsupported(absl::StrCat(
        "Gather's gradient before opset ", needed, repeats ? " (indices that may repeat need "
        "ScatterElements with reduction 'add')" : " (ScatterElements)"));
  }
  ctx.SetInputGrad(0, ScatterIntoZeros(ctx, ctx.output_grad(0), ctx.input(1), dims, axis,
                                       repeats));
  return absl::OkStatus();
}

absl::Status GradSlice(GradContext& ctx) {
  // A slice along one axis gathers a constant list of positions along it, so
  // the gradient puts g back axis by axis with ScatterIntoZeros (positions
  // never repeat, so no reduction).  starts, ends, axes and steps must be
  // constants, and the data's shape static.
  if (ctx.g().opset() < 11) return ctx.Unsupported("Slice's gradient before opset 11");
  QAT_ASSIGN_OR_RETURN(std::vector<int64_t> dims, StaticDims(ctx, "Slice"));
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<std::vector<int64_t>> lists(4);  // starts, ends, axes, steps
  for (int i = 0; i < 4; ++i) {
    if (i + 1 >= ctx.num_inputs() || ctx.input(i + 1).empty()) continue;
    QAT_ASSIGN_OR_RETURN(auto values, ConstantInts(ctx, ctx.input(i + 1)));
    if (!values.has_value()) {
      return ctx.Unsupported(absl::StrCat("Slice whose input '", ctx.input(i + 1),
                                          "' is not a constant"));
    }
    lists[i] = *values;
  }
  const std::vector<int64_t>& starts = lists[0];
  const std::vector<int64_t>& ends = lists[1];
  std::vector<int64_t> axes = lists[2], steps = lists[3];
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size()) {
    return ctx.Unsupported("Slice whose starts, ends, axes and steps differ in length");
  }
  std::string grad = ctx.output_grad(0);
  std::vector<int64_t> current(dims);  // the shape of `grad`, axis by axis
  std::vector<std::pair<int64_t, std::vector<int64_t>>> kept;  // axis, positions
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = axes[i];
    if (axis < -rank || axis >= rank) return ctx.Unsupported("an axis out of range");
    if (axis < 0) axis += rank;
    const int64_t d = dims[axis], step = steps[i];
    if (step == 0) return ctx.Unsupported("a step of 0");
    // ONNX's clamping: [0, d] going forward, [-1, d - 1] going backward.
    auto clamp = [&](int64_t v, bool is_end) {
      if (v < 0) v = v < -d ? (step > 0 || !is_end ? 0 : -1) : v + d;
      if (step > 0) return std::min(v, d);
      return std::min(v, d - 1);
    };
    const int64_t begin = clamp(starts[i], false), end = clamp(ends[i], true);
    std::vector<int64_t> positions;
    for (int64_t p = begin; step > 0 ? p < end : p > end; p += step) positions.push_back(p);
    current[axis] = static_cast<int64_t>(positions.size());
    kept.emplace_back(axis, std::move(positions));
  }
  for (const auto& [axis, positions] : kept) {
    if (positions.empty()) {  // nothing was taken: the gradient is all zeros
      const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
      ctx.SetInputGrad(0, ctx.g().Add("Expand", {ctx.g().ConstantFloat(0.0f, ctx.Hint("zero")),
                                                 shape}, ctx.Hint("x")));
      return absl::OkStatus();
    }
  }
  for (const auto& [axis, positions] : kept) {
    bool whole = static_cast<int64_t>(positions.size()) == dims[axis];
    for (size_t p = 0; whole && p < positions.size(); ++p) whole = positions[p] == int64_t(p);
    if (whole) continue;
    current[axis] = dims[axis];
    grad = ScatterIntoZeros(ctx, grad, ctx.g().ConstantInt64s(positions, ctx.Hint("positions")),
                            current, axis, /*accumulate=*/false);
  }
  ctx.SetInputGrad(0, grad == ctx.output_grad(0)
                          ? ctx.g().Add("Identity", {grad}, ctx.Hint("x"))
                          : grad);
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
