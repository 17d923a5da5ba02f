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

// Float zeros of the shape `shape` (a 1-D int64 value), named after `what`.
std::string ZerosOfShape(GradContext& ctx, const std::string& shape,
                         const std::string& what = "zeros") {
  return ctx.g().Add("Expand", {ctx.g().ConstantFloat(0.0f, ctx.Hint("zero")), shape},
                     ctx.Hint(what));
}

// The gradient of taking the run of positions [first, last] along `axis`
// (of size d) of a value of rank `rank`: g between zeros, in one pass.
std::string PadRunWithZeros(GradContext& ctx, const std::string& g, int64_t rank, int64_t axis,
                            int64_t first, int64_t last, int64_t d) {
  std::vector<int64_t> pads(static_cast<size_t>(2 * rank), 0);
  pads[axis] = first;
  pads[axis + rank] = d - last - 1;
  return ctx.g().Add("Pad", {g, ctx.g().ConstantInt64s(pads, ctx.Hint("pads"))},
                     ctx.Hint("padded"));
}

// Puts `g` back at `positions` (1-D, along `axis`) into zeros of the shape
// `shape` (a 1-D int64 value: the data's shape, of rank `rank`), added up
// where a position repeats (`accumulate`: ScatterElements' reduction
// "add").  g has that shape but along the axis, where it has one entry per
// position.  Every size may be dynamic: the indices are the positions
// broadcast over g's shape at run time.
std::string ScatterIntoZeros(GradContext& ctx, const std::string& g, const std::string& positions,
                             const std::string& shape, int64_t rank, int64_t axis,
                             bool accumulate) {
  GraphEditor& e = ctx.g();
  std::vector<int64_t> column_shape(static_cast<size_t>(rank), 1);
  column_shape[axis] = -1;
  const std::string column =
      e.Reshape(positions, e.ConstantInt64s(column_shape, ctx.Hint("index_shape")),
                ctx.Hint("index"));
  const std::string index =
      e.Add("Expand", {column, e.Add("Shape", {g}, ctx.Hint("g_dims"))}, ctx.Hint("index_nd"));
  const std::string zeros = ZerosOfShape(ctx, shape);
  std::vector<onnx::AttributeProto> attrs = {AttrInt("axis", axis)};
  if (accumulate) attrs.push_back(AttrString("reduction", "add"));
  return e.Add("ScatterElements", {zeros, index, g}, ctx.Hint("scatter"), attrs);
}

// A bool initializer [rank] that is true at `axes`.
std::string AxisMask(GradContext& ctx, int64_t rank, const std::vector<int64_t>& axes) {
  onnx::TensorProto t;
  t.set_name(ctx.Hint("axis_mask"));
  t.set_data_type(onnx::TensorProto::BOOL);
  t.add_dims(rank);
  for (int64_t a = 0; a < rank; ++a) {
    t.add_int32_data(std::find(axes.begin(), axes.end(), a) != axes.end());
  }
  return ctx.g().Initializer(std::move(t));
}

// `x`'s shape as a 1-D int64 value, with dimension `axis` replaced by
// `value`: a constant when x's shape is static, else computed.
std::string ShapeWith(GradContext& ctx, const std::string& x, const ValueShape& xs, int64_t axis,
                      int64_t value) {
  if (xs.fully_known()) {
    std::vector<int64_t> dims = xs.dims;
    dims[axis] = value;
    return ctx.g().ConstantInt64s(dims, ctx.Hint("dims"));
  }
  std::vector<int64_t> fill(static_cast<size_t>(xs.rank()), value);
  return ctx.g().Add("Where",
                     {AxisMask(ctx, xs.rank(), {axis}), ctx.g().ConstantInt64s(fill, ctx.Hint("fill")),
                      ctx.RuntimeShape(x)},
                     ctx.Hint("dims"));
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
  bool dynamic = false;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(i)));
    if (axis < 0 || axis >= x.rank()) return ctx.Unsupported("an axis out of range");
    sizes.push_back(x.dims[axis]);
    dynamic |= x.dims[axis] < 0;
    outs.push_back(ctx.g().FreshName(ctx.Hint(absl::StrCat("x", i))));
  }
  if (dynamic && ctx.g().opset() < 13) {
    return ctx.Unsupported("Concat whose inputs' sizes along the axis are not static, "
                           "before opset 13");
  }
  std::vector<std::string> inputs = {ctx.output_grad(0)};
  std::vector<onnx::AttributeProto> attrs = {AttrInt("axis", axis)};
  if (dynamic) {
    // The sizes at run time (Split-13 reads them as an input).
    std::vector<std::string> parts;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      parts.push_back(sizes[i] >= 0
                          ? ctx.g().ConstantInt64s({sizes[i]}, ctx.Hint("size"))
                          : ctx.RuntimeDims(ctx.input(i), axis, axis + 1));
    }
    inputs.push_back(ctx.g().Add("Concat", parts, ctx.Hint("split"), {AttrInt("axis", 0)}));
  } else if (ctx.g().opset() >= 13) {
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
  // Repeated indices need the scatter's reduction "add" (opset 16, to
  // which an older training graph is raised); a constant index list without
  // repeats does without (opset 11).  The data's shape may be dynamic.
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  int64_t axis = GetAttrInt(ctx.node(), "axis", 0);
  const int64_t rank = x.rank();
  if (axis < -rank || axis >= rank) return ctx.Unsupported("an axis out of range");
  if (axis < 0) axis += rank;
  QAT_ASSIGN_OR_RETURN(auto constant, ConstantInts(ctx, ctx.input(1)));
  bool repeats = true;
  const int64_t d = x.dims[axis];
  std::vector<int64_t> taken;  // the constant positions, wrapped, when d is static
  if (constant.has_value()) {
    std::set<int64_t> seen;
    repeats = false;
    for (int64_t i : *constant) {
      if (i < 0 && d < 0) repeats = true;  // -1 may be any position
      const int64_t position = i < 0 ? i + d : i;
      repeats |= !seen.insert(position).second;
      if (d >= 0) taken.push_back(position);
    }
  }
  if (repeats) {
    QAT_RETURN_IF_ERROR(ctx.RequireOpset(
        16, "Gather's gradient adds repeated indices up with a scatter's reduction 'add'"));
  } else if (ctx.g().opset() < 11) {
    return ctx.Unsupported("Gather's gradient before opset 11 (ScatterND, ScatterElements)");
  }
  GraphEditor& e = ctx.g();
  // g [dims before, indices..., dims after] -> [dims before, K, dims after].
  const std::string g = e.Reshape(ctx.output_grad(0), ShapeWith(ctx, ctx.input(0), x, axis, -1),
                                  ctx.Hint("g_flat"));
  if (!repeats && !taken.empty()) {
    // Constant positions in one ascending run (a ViT's class token,
    // x[:, 0]): g padded with zeros along the axis, in one pass.
    bool run = taken.front() >= 0 && taken.back() < d;
    for (size_t k = 1; run && k < taken.size(); ++k) {
      run = taken[k] == taken.front() + static_cast<int64_t>(k);
    }
    if (run) {
      ctx.SetInputGrad(
          0, PadRunWithZeros(ctx, g, rank, axis, taken.front(), taken.back(), d));
      return absl::OkStatus();
    }
  }
  const std::string shape =
      x.fully_known() ? e.ConstantInt64s(x.dims, ctx.Hint("x_dims")) : ctx.RuntimeShape(ctx.input(0));
  if (axis == 0) {
    // Whole rows (an embedding's gradient): ScatterND with one index per
    // row of g, so no index per element is built, and the rows add up in
    // the order of the positions, as ScatterElements adds them.
    const std::string rows = e.Reshape(ctx.input(1), e.ConstantInt64s({-1, 1}, ctx.Hint("rows")),
                                       ctx.Hint("positions"));
    std::vector<onnx::AttributeProto> attrs;
    if (repeats) attrs.push_back(AttrString("reduction", "add"));
    ctx.SetInputGrad(0, e.Add("ScatterND", {ZerosOfShape(ctx, shape), rows, g},
                              ctx.Hint("scatter"), attrs));
    return absl::OkStatus();
  }
  const std::string positions =
      e.Reshape(ctx.input(1), e.ConstantInt64s({-1}, ctx.Hint("flat")), ctx.Hint("positions"));
  ctx.SetInputGrad(0, ScatterIntoZeros(ctx, g, positions, shape, rank, axis, repeats));
  return absl::OkStatus();
}

absl::Status GradSlice(GradContext& ctx) {
  // A slice along one axis gathers positions along it, so the gradient puts
  // g back axis by axis with ScatterIntoZeros (positions never repeat, so no
  // reduction).  Constant starts, ends and steps give the positions here;
  // computed ones give them at run time, as the same Slice of [0, 1, ...,
  // d - 1], so that ONNX's clamping applies unchanged.  The axes must be
  // constants; a sliced axis whose size is not static takes step 1 only
  // (g between zeros); the other axes may be dynamic.
  if (ctx.g().opset() < 11) return ctx.Unsupported("Slice's gradient before opset 11");
  QAT_ASSIGN_OR_RETURN(ValueShape xs, ctx.Shape(ctx.input(0)));
  const int64_t rank = xs.rank();
  GraphEditor& e = ctx.g();
  // starts, ends, axes, steps: constant values, or the computed value's name.
  std::vector<std::optional<std::vector<int64_t>>> lists(4);
  std::vector<std::string> names(4);
  int64_t count = -1;
  for (int i = 0; i < 4; ++i) {
    if (i + 1 >= ctx.num_inputs() || ctx.input(i + 1).empty()) continue;
    names[i] = ctx.input(i + 1);
    QAT_ASSIGN_OR_RETURN(lists[i], ConstantInts(ctx, names[i]));
    if (lists[i].has_value()) {
      count = static_cast<int64_t>(lists[i]->size());
    } else if (i == 2) {
      return ctx.Unsupported(absl::StrCat("Slice whose axes '", names[i], "' are computed"));
    }
  }
  if (count < 0) {
    // Only computed starts and ends: their length must be static.
    QAT_ASSIGN_OR_RETURN(ValueShape ss, ctx.Shape(names[0]));
    if (ss.rank() != 1 || ss.dims[0] < 0) {
      return ctx.Unsupported(absl::StrCat("Slice whose starts '", names[0],
                                          "' have no static length"));
    }
    count = ss.dims[0];
  }
  std::vector<int64_t> axes = lists[2].value_or(std::vector<int64_t>());
  if (axes.empty()) {
    axes.resize(static_cast<size_t>(count));
    std::iota(axes.begin(), axes.end(), 0);
  }
  for (int i : {0, 1, 3}) {
    if (lists[i].has_value() && static_cast<int64_t>(lists[i]->size()) != count) {
      return ctx.Unsupported("Slice whose starts, ends, axes and steps differ in length");
    }
  }
  if (static_cast<int64_t>(axes.size()) != count) {
    return ctx.Unsupported("Slice whose starts, ends, axes and steps differ in length");
  }
  bool runtime = !xs.fully_known();
  std::vector<int64_t> current(xs.dims);  // static: the shape of g, axis by axis
  // Per sliced axis: the positions taken (scattered back), or for a dynamic
  // axis the clamped start and the axis' size (g padded with zeros).
  // A constant run of positions of step 1 is `run` [first, last] instead:
  // g padded with zeros along the axis.
  struct Taken {
    int64_t axis;
    std::string positions, begin, size;
    std::optional<std::pair<int64_t, int64_t>> run;
  };
  std::vector<Taken> kept;
  for (int64_t i = 0; i < count; ++i) {
    int64_t axis = axes[i];
    if (axis < -rank || axis >= rank) return ctx.Unsupported("an axis out of range");
    if (axis < 0) axis += rank;
    const int64_t d = xs.dims[axis];
    // One entry of a list, as a 1-D tensor of one element.
    auto entry = [&](int list, int64_t fallback) {
      if (names[list].empty()) return e.ConstantInt64s({fallback}, ctx.Hint("entry"));
      if (lists[list].has_value()) return e.ConstantInt64s({(*lists[list])[i]}, ctx.Hint("entry"));
      return e.Slice(names[list], {i}, {i + 1}, {0}, ctx.Hint("entry"));
    };
    const bool constant = lists[0].has_value() && lists[1].has_value() &&
                          (names[3].empty() || lists[3].has_value());
    // Run-time positions come from a ramp of d constants: past kMaxRamp,
    // an axis is treated as dynamic.
    static constexpr int64_t kMaxRamp = int64_t{1} << 16;
    if (d < 0 || (!constant && d > kMaxRamp)) {
      // A dynamic axis (PyTorch's logits[:, :-1] over a symbolic sequence):
      // with step 1, dX is g between zeros, the first as long as the
      // clamped start (start + d when negative, then within [0, d]).
      const bool unit_step = names[3].empty() || (lists[3].has_value() && (*lists[3])[i] == 1);
      if (!unit_step) {
        return ctx.Unsupported(absl::StrCat("Slice along axis ", axis, " of '", ctx.input(0),
                                            "', whose size is not static, with a step other "
                                            "than 1"));
      }
      const std::string size = ctx.RuntimeDims(ctx.input(0), axis, axis + 1);
      const std::string start = entry(0, 0);
      const std::string zero = e.ConstantInt64s({0}, ctx.Hint("zero_index"));
      const std::string wrapped =
          e.Add("Where",
                {e.Add("Less", {start, zero}, ctx.Hint("negative")),
                 e.Add("Add", {start, size}, ctx.Hint("from_end")), start},
                ctx.Hint("start"));
      kept.push_back(
          {axis, "", e.Add("Clip", {wrapped, zero, size}, ctx.Hint("begin")), size,
           std::nullopt});
      runtime = true;
      continue;
    }
    if (!constant) {
      std::vector<int64_t> ramp(static_cast<size_t>(d));
      std::iota(ramp.begin(), ramp.end(), 0);
      kept.push_back({axis,
                      e.Add("Slice",
                            {e.ConstantInt64s(ramp, ctx.Hint("ramp")), entry(0, 0), entry(1, 0),
                             e.ConstantInt64s({0}, ctx.Hint("ramp_axis")), entry(3, 1)},
                            ctx.Hint("positions")),
                      "", "", std::nullopt});
      runtime = true;
      continue;
    }
    const int64_t step = lists[3].has_value() ? (*lists[3])[i] : 1;
    if (step == 0) return ctx.Unsupported("a step of 0");
    const std::vector<int64_t> positions =
        SlicePositions(d, (*lists[0])[i], (*lists[1])[i], step);
    if (positions.empty()) {  // nothing was taken: the gradient is all zeros
      const std::string shape = e.Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
      ctx.SetInputGrad(0, ZerosOfShape(ctx, shape, "x"));
      return absl::OkStatus();
    }
    bool whole = static_cast<int64_t>(positions.size()) == d;
    for (size_t p = 0; whole && p < positions.size(); ++p) whole = positions[p] == int64_t(p);
    if (whole) continue;
    current[axis] = static_cast<int64_t>(positions.size());
    if (step == 1) {  // consecutive positions
      kept.push_back({axis, "", "", "", std::pair{positions.front(), positions.back()}});
      continue;
    }
    kept.push_back(
        {axis, e.ConstantInt64s(positions, ctx.Hint("positions")), "", "", std::nullopt});
  }
  std::string grad = ctx.output_grad(0);
  // The shape after putting back the axes so far: x's along them, g's
  // along the others.
  const std::string x_dims = runtime ? ctx.RuntimeShape(ctx.input(0)) : "";
  const std::string g_dims = runtime ? ctx.RuntimeShape(grad) : "";
  std::vector<int64_t> done;
  for (const Taken& t : kept) {
    const int64_t axis = t.axis;
    done.push_back(axis);
    if (t.run.has_value()) {
      // One pass that writes each element once (a Q, K or V slice of an
      // attention's packed projection), where a scatter builds an index per
      // element.
      grad = PadRunWithZeros(ctx, grad, rank, axis, t.run->first, t.run->second, xs.dims[axis]);
      current[axis] = xs.dims[axis];
      continue;
    }
    if (!t.begin.empty()) {
      // Zeros before (begin) and after (size - begin - g's length).
      const std::string dims = e.Add("Shape", {grad}, ctx.Hint("g_dims"));
      const std::string mask = AxisMask(ctx, rank, {axis});
      const std::string length = e.Slice(dims, {axis}, {axis + 1}, {0}, ctx.Hint("length"));
      const std::string after =
          e.Add("Sub", {e.Add("Sub", {t.size, t.begin}, ctx.Hint("rest")), length},
                ctx.Hint("after"));
      auto zeros = [&](const std::string& n, const std::string& what) {
        return ZerosOfShape(ctx, e.Add("Where", {mask, n, dims}, ctx.Hint(what + "_dims")), what);
      };
      grad = e.Add("Concat", {zeros(t.begin, "before"), grad, zeros(after, "after")},
                   ctx.Hint("padded"), {AttrInt("axis", axis)});
      continue;
    }
    std::string shape;
    if (runtime) {
      shape = e.Add("Where", {AxisMask(ctx, rank, done), x_dims, g_dims}, ctx.Hint("dims"));
    } else {
      current[axis] = xs.dims[axis];
      shape = e.ConstantInt64s(current, ctx.Hint("dims"));
    }
    grad = ScatterIntoZeros(ctx, grad, t.positions, shape, rank, axis, /*accumulate=*/false);
  }
  ctx.SetInputGrad(0, grad == ctx.output_grad(0) ? e.Add("Identity", {grad}, ctx.Hint("x"))
                                                 : grad);
  return absl::OkStatus();
}

absl::Status GradExpand(GradContext& ctx) {
  // Expand broadcasts x to the output's shape (a ViT's class token over
  // the batch): sum the gradient back to x's shape.
  QAT_ASSIGN_OR_RETURN(std::string g, ctx.Unbroadcast(ctx.output_grad(0), 0));
  ctx.SetInputGrad(0, g == ctx.output_grad(0) ? ctx.g().Add("Identity", {g}, ctx.Hint("x")) : g);
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
