// Gradient rules for indexing and layout ops: GatherElements, GatherND,
// ReverseSequence, Tile, Pad, DepthToSpace, SpaceToDepth.
//
// Each gradient puts dY back where the forward op took its elements from,
// adding up where one input element fed several outputs (repeated indices,
// Tile's copies, Pad's reflected and repeated borders).  Where ONNX has an
// accumulating scatter (ScatterElements and ScatterND with reduction "add",
// opset 16) the rules use it; before, an index is compared with every
// position of its axis and the matches summed (Equal, Where, ReduceSum), or
// multiplied out as a one-hot matrix (GatherND), which costs memory in
// proportion to indices x axis size.
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autodiff/gradient_rules.h"
#include "core/onnx_tensor.h"
#include "qat/status_macros.h"
#include "qat/tensor.h"

namespace qat {
namespace training {
namespace {

constexpr int64_t kToEnd = std::numeric_limits<int64_t>::max();

// An int64 constant of the given shape.
std::string ConstantInt64Tensor(GradContext& ctx, std::vector<int64_t> shape,
                                const std::vector<int64_t>& values, const std::string& what) {
  return ctx.g().Initializer(TensorToProto(
      Tensor::FromValues<int64_t>(std::move(shape), absl::MakeConstSpan(values)), ctx.Hint(what)));
}

// Slice of one axis (opset 10 on, where starts and ends are inputs).
std::string SliceAxis(GradContext& ctx, const std::string& x, int64_t axis, int64_t start,
                      int64_t end, int64_t step, const std::string& what) {
  GraphEditor& e = ctx.g();
  return e.Add("Slice",
               {x, e.ConstantInt64s({start}, ctx.Hint(what + "_starts")),
                e.ConstantInt64s({end}, ctx.Hint(what + "_ends")),
                e.ConstantInt64s({axis}, ctx.Hint(what + "_axes")),
                e.ConstantInt64s({step}, ctx.Hint(what + "_steps"))},
               ctx.Hint(what));
}

// Zeros added before and after each axis: Pad in constant mode, with its
// pads as an attribute before opset 11 and as an input since.
std::string PadZeros(GradContext& ctx, const std::string& x, const std::vector<int64_t>& begin,
                     const std::vector<int64_t>& end, const std::string& what) {
  std::vector<int64_t> pads = begin;
  pads.insert(pads.end(), end.begin(), end.end());
  if (ctx.g().opset() >= 11) {
    return ctx.g().Add("Pad", {x, ctx.g().ConstantInt64s(pads, ctx.Hint(what + "_pads"))},
                       ctx.Hint(what));
  }
  return ctx.g().Add("Pad", {x}, ctx.Hint(what), {AttrInts("pads", pads)});
}

// Zeros before and after one axis of a tensor of rank `rank`.
std::string PadAxis(GradContext& ctx, const std::string& x, int64_t rank, int64_t axis,
                    int64_t before, int64_t after, const std::string& what) {
  std::vector<int64_t> begin(rank, 0), end(rank, 0);
  begin[axis] = before;
  end[axis] = after;
  return PadZeros(ctx, x, begin, end, what);
}

// Zeros shaped like input 0, read at run time.
std::string ZerosLikeInput(GradContext& ctx) {
  GraphEditor& e = ctx.g();
  return e.Add("Expand",
               {e.ConstantFloat(0.0f, ctx.Hint("zero")),
                e.Add("Shape", {ctx.input(0)}, ctx.Hint("x_shape"))},
               ctx.Hint("zeros"));
}

// The normalized axis attribute of a node whose input 0 has `rank`.
absl::StatusOr<int64_t> AxisAttr(GradContext& ctx, int64_t rank, int64_t fallback) {
  const int64_t axis = GetAttrInt(ctx.node(), "axis", fallback);
  if (axis < -rank || axis >= rank) return ctx.Unsupported("an axis out of range");
  return axis < 0 ? axis + rank : axis;
}

}  // namespace

absl::Status GradGatherElements(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(const ValueShape x, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(const int64_t axis, AxisAttr(ctx, x.rank(), 0));
  GraphEditor& e = ctx.g();
  const std::string& dy = ctx.output_grad(0);
  if (e.opset() >= 16) {
    // dX = zeros with dY added in at the gathered positions.
    ctx.SetInputGrad(0, e.Add("ScatterElements", {ZerosLikeInput(ctx), ctx.input(1), dy},
                              ctx.Hint("x"),
                              {AttrInt("axis", axis), AttrString("reduction", "add")}));
    return absl::OkStatus();
  }
  // Before opset 16: compare every index with each position p of the axis,
  // dX[.., p, ..] = sum over k of dY[.., k, ..] where index[.., k, ..] == p,
  // then zeros where indices were smaller than the data off the axis.
  const int64_t n = x.dims[axis];
  if (n < 0) return ctx.Unsupported("GatherElements along an axis whose size is not static");
  const std::string index = e.Add("Cast", {ctx.input(1)}, ctx.Hint("index"),
                                  {AttrInt("to", onnx::TensorProto::INT64)});
  const std::string n_value = e.ConstantInt64s({n}, ctx.Hint("axis_size"));
  const std::string negative = e.Add("Less", {index, e.ConstantInt64s({0}, ctx.Hint("zero_index"))},
                                     ctx.Hint("negative"));
  const std::string wrapped =
      e.Add("Where", {negative, e.Add("Add", {index, n_value}, ctx.Hint("shifted")), index},
            ctx.Hint("wrapped"));
  std::vector<int64_t> positions_shape(static_cast<size_t>(x.rank() + 1), 1);
  positions_shape[axis + 1] = n;
  std::vector<int64_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), 0);
  const std::string match = e.Add(
      "Equal",
      {e.Unsqueeze(wrapped, {axis + 1}, ctx.Hint("index_column")),
       ConstantInt64Tensor(ctx, positions_shape, positions, "positions")},
      ctx.Hint("match"));
  const std::string picked =
      e.Add("Where",
            {match, e.Unsqueeze(dy, {axis + 1}, ctx.Hint("dy_column")),
             e.ConstantFloat(0.0f, ctx.Hint("zero"))},
            ctx.Hint("picked"));
  const std::string summed = e.ReduceSum(picked, {axis}, /*keepdims=*/false, ctx.Hint("summed"));
  // Pads at the end of each axis: data's shape minus the sum's.
  const std::string pads = e.Add(
      "Concat",
      {e.ConstantInt64s(std::vector<int64_t>(static_cast<size_t>(x.rank()), 0), ctx.Hint("pad_begin")),
       e.Add("Sub", {e.Add("Shape", {ctx.input(0)}, ctx.Hint("x_shape")),
                     e.Add("Shape", {summed}, ctx.Hint("summed_shape"))},
             ctx.Hint("pad_end"))},
      ctx.Hint("pads"), {AttrInt("axis", 0)});
  ctx.SetInputGrad(0, e.Add("Pad", {summed, pads}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradGatherND(GradContext& ctx) {
  GraphEditor& e = ctx.g();
  const std::string& dy = ctx.output_grad(0);
  const int64_t b = GetAttrInt(ctx.node(), "batch_dims", 0);
  if (e.opset() >= 16 && b == 0) {
    ctx.SetInputGrad(0, e.Add("ScatterND", {ZerosLikeInput(ctx), ctx.input(1), dy}, ctx.Hint("x"),
                              {AttrString("reduction", "add")}));
    return absl::OkStatus();
  }
  // Otherwise, over views: data as [B, N, R] (batch, indexed and remaining
  // dimensions), indices as [B, M, k], dY as [B, M, R].  Each tuple becomes
  // a flat position into N, and dX = OneHot(position, N)^T x dY, batch by
  // batch.  N, R and k must be static; B or M (not both) may be dynamic.
  QAT_ASSIGN_OR_RETURN(const ValueShape x, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(const ValueShape indices, ctx.Shape(ctx.input(1)));
  const int64_t r = x.rank(), q = indices.rank();
  if (q < 1 || b < 0 || b >= std::min(r, q)) return ctx.Unsupported("batch_dims out of range");
  const int64_t k = indices.dims[q - 1];
  if (k < 1 || k > r - b) return ctx.Unsupported("index tuples of unknown length or longer "
                                                 "than the data's rank");
  // Products of dimensions, -1 when one of them is dynamic.
  auto product = [](const std::vector<int64_t>& dims, int64_t begin, int64_t end) {
    int64_t p = 1;
    for (int64_t d = begin; d < end; ++d) {
      if (dims[d] < 0) return int64_t{-1};
      p *= dims[d];
    }
    return p;
  };
  const int64_t batches = product(x.dims, 0, b), n = product(x.dims, b, b + k);
  const int64_t rest = product(x.dims, b + k, r), m = product(indices.dims, b, q - 1);
  if (n < 0 || rest < 0 || (batches < 0 && m < 0)) {
    return ctx.Unsupported("GatherND whose indexed and trailing data dimensions are not static, "
                           "or whose batch and index dimensions are both dynamic");
  }
  std::vector<int64_t> bounds(x.dims.begin() + b, x.dims.begin() + b + k);
  std::vector<int64_t> strides(static_cast<size_t>(k), 1);
  for (int64_t j = k - 2; j >= 0; --j) strides[j] = strides[j + 1] * bounds[j + 1];
  const std::string index = e.Reshape(
      e.Add("Cast", {ctx.input(1)}, ctx.Hint("index"), {AttrInt("to", onnx::TensorProto::INT64)}),
      e.ConstantInt64s({batches, m, k}, ctx.Hint("index_shape")), ctx.Hint("index3"));
  const std::string bound = e.ConstantInt64s(bounds, ctx.Hint("bounds"));
  const std::string negative = e.Add("Less", {index, e.ConstantInt64s({0}, ctx.Hint("zero_index"))},
                                     ctx.Hint("negative"));
  const std::string wrapped =
      e.Add("Where", {negative, e.Add("Add", {index, bound}, ctx.Hint("shifted")), index},
            ctx.Hint("wrapped"));
  const std::string flat = e.ReduceSum(
      e.Add("Mul", {wrapped, e.ConstantInt64s(strides, ctx.Hint("strides"))}, ctx.Hint("scaled")),
      {2}, /*keepdims=*/true, ctx.Hint("flat"));  // [B, M, 1]
  std::vector<int64_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), 0);
  const std::string one_hot = e.Add(
      "Cast",
      {e.Add("Equal", {flat, ConstantInt64Tensor(ctx, {1, 1, n}, positions, "positions")},
             ctx.Hint("match"))},
      ctx.Hint("one_hot"), {AttrInt("to", onnx::TensorProto::FLOAT)});  // [B, M, N]
  const std::string dy3 =
      e.Reshape(dy, e.ConstantInt64s({batches, m, rest}, ctx.Hint("dy_shape")), ctx.Hint("dy3"));
  const std::string dx3 = e.Add(
      "MatMul", {e.Transpose(one_hot, {0, 2, 1}, ctx.Hint("one_hot_t")), dy3}, ctx.Hint("dx3"));
  ctx.SetInputGrad(0, e.Reshape(dx3, e.Add("Shape", {ctx.input(0)}, ctx.Hint("x_shape")),
                                ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradReverseSequence(GradContext& ctx) {
  // Reversing the same prefixes again undoes the reversal.
  std::vector<onnx::AttributeProto> attrs(ctx.node().attribute().begin(),
                                          ctx.node().attribute().end());
  ctx.SetInputGrad(0, ctx.g().Add("ReverseSequence", {ctx.output_grad(0), ctx.input(1)},
                                  ctx.Hint("x"), attrs));
  return absl::OkStatus();
}

absl::Status GradTile(GradContext& ctx) {
  // dY viewed as [r0, d0, r1, d1, ...], summed over the repeats.  The
  // repeats must be constants; one dimension of the input may be dynamic.
  QAT_ASSIGN_OR_RETURN(const ValueShape x, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(const auto repeats, ConstantInts(ctx, ctx.input(1)));
  if (!repeats.has_value()) return ctx.Unsupported("Tile whose repeats are not a constant");
  if (static_cast<int64_t>(repeats->size()) != x.rank()) {
    return ctx.Unsupported("repeats whose length is not the input's rank");
  }
  std::vector<int64_t> view, summed;
  int dynamic = 0;
  for (int64_t d = 0; d < x.rank(); ++d) {
    dynamic += x.dims[d] < 0;
    view.insert(view.end(), {(*repeats)[d], x.dims[d] < 0 ? -1 : x.dims[d]});
    summed.push_back(2 * d);
  }
  if (dynamic > 1) return ctx.Unsupported("Tile of an input with several dynamic dimensions");
  GraphEditor& e = ctx.g();
  const std::string g =
      e.Reshape(ctx.output_grad(0), e.ConstantInt64s(view, ctx.Hint("view")), ctx.Hint("view"));
  const std::string reduced = e.ReduceSum(g, summed, /*keepdims=*/false, ctx.Hint("summed"));
  ctx.SetInputGrad(0, e.Reshape(reduced, e.Add("Shape", {ctx.input(0)}, ctx.Hint("x_shape")),
                                ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradPad(GradContext& ctx) {
  // Axis by axis: the slice of dY over the input's own positions, plus, for
  // reflect and edge, the padded borders added back onto the positions
  // they copy (reversed for reflect, summed onto the end position for
  // edge).  Pads must be constants; cropping (negative pads) is undone by
  // zeros in constant mode.
  GraphEditor& e = ctx.g();
  if (e.opset() < 10) return ctx.Unsupported("Pad's gradient before opset 10");
  QAT_ASSIGN_OR_RETURN(const ValueShape x, ctx.Shape(ctx.input(0)));
  const int64_t rank = x.rank();
  std::vector<int64_t> pads = GetAttrInts(ctx.node(), "pads");
  std::vector<int64_t> axes(static_cast<size_t>(rank));
  std::iota(axes.begin(), axes.end(), 0);
  if (e.opset() >= 11) {
    QAT_ASSIGN_OR_RETURN(const auto given, ConstantInts(ctx, ctx.input(1)));
    if (!given.has_value()) return ctx.Unsupported("Pad whose pads are not a constant");
    pads = *given;
    if (ctx.num_inputs() > 3 && !ctx.input(3).empty()) {
      QAT_ASSIGN_OR_RETURN(const auto listed, ConstantInts(ctx, ctx.input(3)));
      if (!listed.has_value()) return ctx.Unsupported("Pad whose axes are not a constant");
      axes = *listed;
      for (int64_t& a : axes) a = a < 0 ? a + rank : a;
    }
  }
  if (pads.size() != 2 * axes.size()) return ctx.Unsupported("pads of the wrong length");
  std::vector<int64_t> begin(rank, 0), end(rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] < 0 || axes[i] >= rank) return ctx.Unsupported("an axis out of range");
    begin[axes[i]] = pads[i];
    end[axes[i]] = pads[i + axes.size()];
  }
  const std::string mode = GetAttrString(ctx.node(), "mode", "constant");
  std::string g = ctx.output_grad(0);
  if (mode == "constant") {
    // Zeros where the forward cropped, then the input's part.
    std::vector<int64_t> restore_begin(rank), restore_end(rank);
    bool cropped = false;
    for (int64_t d = 0; d < rank; ++d) {
      restore_begin[d] = std::max<int64_t>(0, -begin[d]);
      restore_end[d] = std::max<int64_t>(0, -end[d]);
      cropped = cropped || restore_begin[d] > 0 || restore_end[d] > 0;
    }
    if (cropped) g = PadZeros(ctx, g, restore_begin, restore_end, "uncropped");
    for (int64_t d = 0; d < rank; ++d) {
      if (begin[d] <= 0 && end[d] <= 0) continue;
      g = SliceAxis(ctx, g, d, std::max<int64_t>(0, begin[d]),
                    end[d] > 0 ? -end[d] : kToEnd, 1, absl::StrCat("inner", d));
    }
    ctx.SetInputGrad(0, g == ctx.output_grad(0) ? e.Add("Identity", {g}, ctx.Hint("x")) : g);
    return absl::OkStatus();
  }
  if (mode != "reflect" && mode != "edge") return ctx.Unsupported("Pad mode '" + mode + "'");
  const bool reflect = mode == "reflect";
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t b = begin[d], a = end[d], n = x.dims[d];
    if (b == 0 && a == 0) continue;
    if (n < 0) return ctx.Unsupported("Pad along an axis whose size is not static");
    if (b < 0 || a < 0) return ctx.Unsupported(mode + " Pad with negative pads");
    if (reflect && (b > n - 1 || a > n - 1)) {
      return ctx.Unsupported("reflect Pad wider than the axis less one");
    }
    const std::string axis = absl::StrCat(d);
    std::string sum = SliceAxis(ctx, g, d, b, b + n, 1, "inner" + axis);
    auto add = [&](const std::string& part) {
      sum = e.Add("Add", {sum, part}, ctx.Hint("sum" + axis));
    };
    if (b > 0) {
      if (reflect) {  // output b-1-j copies input 1+j... reversed: onto 1..b
        add(PadAxis(ctx, SliceAxis(ctx, g, d, b - 1, -(b + n + a) - 1, -1, "before" + axis),
                    rank, d, 1, n - 1 - b, "placed_before" + axis));
      } else {  // every padded position copies input 0
        add(PadAxis(ctx, e.ReduceSum(SliceAxis(ctx, g, d, 0, b, 1, "before" + axis), {d},
                                     /*keepdims=*/true, ctx.Hint("edge_before" + axis)),
                    rank, d, 0, n - 1, "placed_before" + axis));
      }
    }
    if (a > 0) {
      if (reflect) {  // output b+n+t copies input n-2-t: reversed, onto n-1-a..n-2
        add(PadAxis(ctx, SliceAxis(ctx, g, d, b + n + a - 1, b + n - 1, -1, "after" + axis),
                    rank, d, n - 1 - a, 1, "placed_after" + axis));
      } else {  // every padded position copies input n-1
        add(PadAxis(ctx, e.ReduceSum(SliceAxis(ctx, g, d, b + n, kToEnd, 1, "after" + axis), {d},
                                     /*keepdims=*/true, ctx.Hint("edge_after" + axis)),
                    rank, d, n - 1, 0, "placed_after" + axis));
      }
    }
    g = sum;
  }
  ctx.SetInputGrad(0, g == ctx.output_grad(0) ? e.Add("Identity", {g}, ctx.Hint("x")) : g);
  return absl::OkStatus();
}

absl::Status GradDepthToSpace(GradContext& ctx) {
  // DCR is undone by SpaceToDepth; CRD by the reverse reshape and transpose.
  GraphEditor& e = ctx.g();
  const int64_t b = GetAttrInt(ctx.node(), "blocksize", 0);
  const std::vector<onnx::AttributeProto> attrs = {AttrInt("blocksize", b)};
  if (GetAttrString(ctx.node(), "mode", "DCR") == "DCR") {
    ctx.SetInputGrad(0, e.Add("SpaceToDepth", {ctx.output_grad(0)}, ctx.Hint("x"), attrs));
    return absl::OkStatus();
  }
  QAT_ASSIGN_OR_RETURN(const ValueShape x, ctx.Shape(ctx.input(0)));
  if (x.rank() != 4 || x.dims[1] < 0 || x.dims[2] < 0 || x.dims[3] < 0 || b < 1) {
    return ctx.Unsupported("CRD DepthToSpace of an input whose C, H and W are not static");
  }
  const int64_t c = x.dims[1], h = x.dims[2], w = x.dims[3];
  // dY [N, C', H*b, W*b] as [N, C', H, b, W, b], to [N, C', b, b, H, W].
  const std::string view = e.Reshape(
      ctx.output_grad(0), e.ConstantInt64s({-1, c / (b * b), h, b, w, b}, ctx.Hint("view_shape")),
      ctx.Hint("view"));
  const std::string moved = e.Transpose(view, {0, 1, 3, 5, 2, 4}, ctx.Hint("moved"));
  ctx.SetInputGrad(0, e.Reshape(moved, e.Add("Shape", {ctx.input(0)}, ctx.Hint("x_shape")),
                                ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradSpaceToDepth(GradContext& ctx) {
  // SpaceToDepth is undone by DepthToSpace in DCR mode (the default).
  ctx.SetInputGrad(0, ctx.g().Add("DepthToSpace", {ctx.output_grad(0)}, ctx.Hint("x"),
                                  {AttrInt("blocksize", GetAttrInt(ctx.node(), "blocksize", 0))}));
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
