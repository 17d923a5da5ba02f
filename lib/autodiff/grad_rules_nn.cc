// Gradient rules for convolution, pooling and dropout.
#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

// The geometry of a Conv node with static shapes and explicit pads.
struct ConvGeometry {
  int64_t spatial = 0;
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins, ends
  std::vector<int64_t> in, out;                           // spatial sizes
};

// The window geometry of a Conv or pooling node; `kernel` is the default
// kernel shape (Conv: the weights' spatial dims; pooling: the attribute).
absl::StatusOr<ConvGeometry> ResolveWindow(GradContext& ctx,
                                           const std::vector<int64_t>& kernel) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(ValueShape y, ctx.Shape(ctx.output(0)));
  // The batch may be dynamic; the spatial sizes must be static.
  for (const ValueShape* s : {&x, &y}) {
    for (int64_t a = 2; a < s->rank(); ++a) {
      if (s->dims[a] < 0) {
        return ctx.Unsupported("convolution over dynamic spatial sizes");
      }
    }
  }
  ConvGeometry c;
  c.spatial = x.rank() - 2;
  if (c.spatial < 1) return ctx.Unsupported("Conv input of rank < 3");
  const size_t n = static_cast<size_t>(c.spatial);
  c.kernel = GetAttrInts(ctx.node(), "kernel_shape", kernel);
  if (c.kernel.size() != n) return ctx.Unsupported("a kernel_shape of another rank");
  c.strides = GetAttrInts(ctx.node(), "strides", std::vector<int64_t>(n, 1));
  c.dilations = GetAttrInts(ctx.node(), "dilations", std::vector<int64_t>(n, 1));
  c.in.assign(x.dims.begin() + 2, x.dims.end());
  c.out.assign(y.dims.begin() + 2, y.dims.end());
  const std::string auto_pad = GetAttrString(ctx.node(), "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    c.pads = GetAttrInts(ctx.node(), "pads", std::vector<int64_t>(2 * n, 0));
  } else {
    // Recover the padding that shape inference applied: the total is what
    // makes the output size come out, split as SAME_UPPER/SAME_LOWER say.
    c.pads.assign(2 * n, 0);
    for (size_t i = 0; auto_pad != "VALID" && i < n; ++i) {
      const int64_t total =
          std::max<int64_t>(0, (c.out[i] - 1) * c.strides[i] +
                                   (c.kernel[i] - 1) * c.dilations[i] + 1 -
                                   c.in[i]);
      const int64_t small = total / 2, large = total - small;
      c.pads[i] = auto_pad == "SAME_LOWER" ? large : small;
      c.pads[i + n] = auto_pad == "SAME_LOWER" ? small : large;
    }
  }
  return c;
}

absl::StatusOr<ConvGeometry> ResolveConv(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape w, ctx.Shape(ctx.input(1), true));
  return ResolveWindow(ctx, std::vector<int64_t>(w.dims.begin() + 2, w.dims.end()));
}

// ConvTranspose's output_padding that gives back the forward input's sizes
// (the forward stride may have rounded some away); negative when the last
// window ran past the padding (ceil_mode), which ConvTranspose cannot undo.
std::vector<int64_t> OutputPadding(const ConvGeometry& c) {
  const size_t n = static_cast<size_t>(c.spatial);
  std::vector<int64_t> output_padding(n);
  for (size_t i = 0; i < n; ++i) {
    output_padding[i] = c.in[i] - ((c.out[i] - 1) * c.strides[i] +
                                   (c.kernel[i] - 1) * c.dilations[i] + 1 -
                                   c.pads[i] - c.pads[i + n]);
  }
  return output_padding;
}

std::vector<int64_t> SwapFirstTwo(int64_t rank) {
  std::vector<int64_t> perm(static_cast<size_t>(rank));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[0], perm[1]);
  return perm;
}

// Axes 0, 2, 3, ...: everything but the channel.
std::vector<int64_t> AllButChannel(int64_t rank) {
  std::vector<int64_t> axes = {0};
  for (int64_t a = 2; a < rank; ++a) axes.push_back(a);
  return axes;
}

// The gradient of a convolution's weights [M, C/G, kernel...] (C/G =
// `per_group`), given its input X [N, C, in...] and the gradient g of its
// output [N, M, out...].
//
// dW[o,i,k] = sum_n sum_y g[n,o,y] X[n,i,y*s + k*d]: a convolution of X^T
// ([C_in, N, ...]) with g^T ([C_out, N, ...]) as the kernel, strides and
// dilations swapped; it may overshoot the kernel size, so slice.  With G
// groups, output channel o only sees its group's C/G inputs: X becomes
// [C/G, G*N, ...] (group-major channels) and the convolution takes group =
// G, so that g^T's group j meets X's group j only.
std::string ConvWeightGrad(GradContext& ctx, const std::string& x, const std::string& g,
                           const ConvGeometry& c, int64_t group, int64_t per_group) {
  const size_t n = static_cast<size_t>(c.spatial);
  const int64_t rank = c.spatial + 2;
  std::string xt;
  if (group == 1) {
    xt = ctx.g().Transpose(x, SwapFirstTwo(rank), ctx.Hint("xt"));
  } else {
    std::vector<int64_t> split = {0, group, per_group};  // [N, G, C/G, ...]
    split.insert(split.end(), c.in.begin(), c.in.end());
    const std::string xs =
        ctx.g().Reshape(x, ctx.g().ConstantInt64s(split, ctx.Hint("x_groups")), ctx.Hint("xs"));
    std::vector<int64_t> perm = {2, 1, 0};  // [C/G, G, N, ...]
    for (int64_t a = 3; a < rank + 1; ++a) perm.push_back(a);
    const std::string xp = ctx.g().Transpose(xs, perm, ctx.Hint("xp"));
    std::vector<int64_t> merged = {per_group, -1};  // [C/G, G*N, ...]
    merged.insert(merged.end(), c.in.begin(), c.in.end());
    xt = ctx.g().Reshape(xp, ctx.g().ConstantInt64s(merged, ctx.Hint("x_merged")),
                         ctx.Hint("xt"));
  }
  const std::string gt = ctx.g().Transpose(g, SwapFirstTwo(rank), ctx.Hint("gt"));
  std::vector<onnx::AttributeProto> attrs = {AttrInts("strides", c.dilations),
                                             AttrInts("dilations", c.strides),
                                             AttrInts("pads", c.pads)};
  if (group != 1) attrs.push_back(AttrInt("group", group));
  std::string dw = ctx.g().Add("Conv", {xt, gt}, ctx.Hint("w_t"), attrs);
  std::vector<int64_t> starts(n, 0), axes(n);
  std::iota(axes.begin(), axes.end(), 2);
  dw = ctx.g().Add("Slice",
                   {dw, ctx.g().ConstantInt64s(starts, ctx.Hint("starts")),
                    ctx.g().ConstantInt64s(c.kernel, ctx.Hint("ends")),
                    ctx.g().ConstantInt64s(axes, ctx.Hint("axes"))},
                   ctx.Hint("w_slice"));
  return ctx.g().Transpose(dw, SwapFirstTwo(rank), ctx.Hint("w"));
}

// ConvTranspose read as the convolution it is the adjoint of: a Conv from
// ConvTranspose's output (`in`) to its input (`out`), with the same kernel,
// strides, dilations and groups, and the padding that ConvTranspose cut from
// its full output (ONNX's rules for pads, output_shape and auto_pad, as
// lib/exec/ops/training_ops.cc computes them).  Output positions past the
// full size (output_shape asking for more) receive nothing but the bias:
// `used` is how much of each output dimension the input reaches.
struct TransposedGeometry {
  ConvGeometry conv;
  std::vector<int64_t> used;
};

absl::StatusOr<TransposedGeometry> ResolveConvTranspose(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(ValueShape y, ctx.Shape(ctx.output(0)));
  QAT_ASSIGN_OR_RETURN(ValueShape w, ctx.Shape(ctx.input(1), true));
  for (const ValueShape* s : {&x, &y}) {
    for (int64_t a = 2; a < s->rank(); ++a) {
      if (s->dims[a] < 0) return ctx.Unsupported("ConvTranspose over dynamic spatial sizes");
    }
  }
  if (x.rank() < 3 || w.rank() != x.rank() || y.rank() != x.rank()) {
    return ctx.Unsupported("ConvTranspose whose X, W and Y differ in rank or are below rank 3");
  }
  TransposedGeometry t;
  ConvGeometry& c = t.conv;
  c.spatial = x.rank() - 2;
  const size_t n = static_cast<size_t>(c.spatial);
  c.kernel.assign(w.dims.begin() + 2, w.dims.end());
  c.strides = GetAttrInts(ctx.node(), "strides", std::vector<int64_t>(n, 1));
  c.dilations = GetAttrInts(ctx.node(), "dilations", std::vector<int64_t>(n, 1));
  std::vector<int64_t> output_padding =
      GetAttrInts(ctx.node(), "output_padding", std::vector<int64_t>(n, 0));
  std::vector<int64_t> pads = GetAttrInts(ctx.node(), "pads", std::vector<int64_t>(2 * n, 0));
  if (c.strides.size() != n || c.dilations.size() != n || output_padding.size() != n ||
      pads.size() != 2 * n) {
    return ctx.Unsupported("strides, dilations, output_padding or pads of another rank");
  }
  for (size_t d = 0; d < n; ++d) {
    if (c.strides[d] < 1 || c.dilations[d] < 1 || c.kernel[d] < 1 || output_padding[d] < 0) {
      return ctx.Unsupported("kernel sizes, strides or dilations below 1, or a negative "
                             "output_padding");
    }
  }
  const std::string mode = GetAttrString(ctx.node(), "auto_pad", "NOTSET");
  const bool sized = !GetAttrInts(ctx.node(), "output_shape").empty() ||
                     mode == "SAME_UPPER" || mode == "SAME_LOWER";
  std::vector<int64_t> xin(x.dims.begin() + 2, x.dims.end());
  std::vector<int64_t> yout(y.dims.begin() + 2, y.dims.end());
  c.pads.assign(2 * n, 0);
  for (size_t d = 0; d < n; ++d) {
    const int64_t full = c.strides[d] * (xin[d] - 1) + output_padding[d] +
                         c.dilations[d] * (c.kernel[d] - 1) + 1;
    int64_t begin = 0;
    if (sized) {
      const int64_t total = full - yout[d];
      begin = total < 0 ? 0 : mode == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else if (mode == "NOTSET") {
      begin = pads[d];
    }
    const int64_t end = full - yout[d] - begin;
    c.pads[d] = begin;
    c.pads[d + n] = std::max<int64_t>(end, 0);
    t.used.push_back(yout[d] + std::min<int64_t>(end, 0));
  }
  c.in = t.used;
  c.out = xin;
  return t;
}

// MaxPool's gradient without a scatter reduction (opset 11 and 12): the
// windows whose output positions are congruent to r modulo m = ceil(window
// / stride), per spatial axis, start m * stride >= window apart and so never
// share an input element.  Each of the prod(m) classes of g and Indices
// (Slice with steps m from r) scatters into `zeros_flat` without
// collisions; their sum is dX, flat.
absl::StatusOr<std::string> ScatterByDisjointWindows(GradContext& ctx,
                                                     const std::vector<int64_t>& kernel,
                                                     const std::vector<int64_t>& strides,
                                                     const std::vector<int64_t>& dilations,
                                                     const std::string& zeros_flat) {
  static constexpr int64_t kMaxClasses = 64;
  if (ctx.g().opset() < 11) {
    return ctx.Unsupported("overlapping MaxPool windows before opset 11 (ScatterElements)");
  }
  const size_t n = kernel.size();
  if (strides.size() != n || dilations.size() != n) {
    return ctx.Unsupported("strides or dilations of another rank than kernel_shape");
  }
  std::vector<int64_t> m(n);
  int64_t classes = 1;
  for (size_t d = 0; d < n; ++d) {
    if (strides[d] < 1 || dilations[d] < 1 || kernel[d] < 1) {
      return ctx.Unsupported("a kernel, stride or dilation below 1");
    }
    const int64_t window = (kernel[d] - 1) * dilations[d] + 1;
    m[d] = (window + strides[d] - 1) / strides[d];
    classes *= m[d];
    if (classes > kMaxClasses) {
      return ctx.Unsupported(absl::StrCat("overlapping MaxPool windows before opset 13 whose "
                                          "windows fall into more than ", kMaxClasses,
                                          " disjoint classes"));
    }
  }
  GraphEditor& e = ctx.g();
  std::vector<int64_t> axes(n), ends(n, std::numeric_limits<int64_t>::max());
  std::iota(axes.begin(), axes.end(), 2);
  const std::string flat = e.ConstantInt64s({-1}, ctx.Hint("flat"));
  const std::string axes_name = e.ConstantInt64s(axes, ctx.Hint("class_axes"));
  const std::string ends_name = e.ConstantInt64s(ends, ctx.Hint("class_ends"));
  const std::string steps_name = e.ConstantInt64s(m, ctx.Hint("class_steps"));
  std::string sum;
  for (int64_t k = 0; k < classes; ++k) {
    std::vector<int64_t> r(n);
    for (int64_t rest = k, d = static_cast<int64_t>(n) - 1; d >= 0; --d) {
      r[d] = rest % m[d];
      rest /= m[d];
    }
    const std::string starts = e.ConstantInt64s(r, ctx.Hint("class_starts"));
    auto take = [&](const std::string& v, const std::string& what) {
      return e.Reshape(e.Add("Slice", {v, starts, ends_name, axes_name, steps_name},
                             ctx.Hint(what)),
                       flat, ctx.Hint(what + "_flat"));
    };
    const std::string part = e.Add(
        "ScatterElements",
        {zeros_flat, take(ctx.output(1), "class_indices"), take(ctx.output_grad(0), "class_g")},
        ctx.Hint("class_scatter"), {AttrInt("axis", 0)});
    sum = sum.empty() ? part : e.Add("Add", {sum, part}, ctx.Hint("class_sum"));
  }
  return sum;
}

}  // namespace

absl::Status GradConvTranspose(GradContext& ctx) {
  // Y = ConvTranspose(X, W) + B.  ConvTranspose is the adjoint of the Conv
  // with the same W and geometry (W [C, M/G, k...] is that Conv's [C_out,
  // C_in/G, k...] layout), so dX = Conv(g, W); and dW is that Conv's weight
  // gradient with g as its input and X as its output's gradient.
  const int64_t group = GetAttrInt(ctx.node(), "group", 1);
  if (group < 1) return ctx.Unsupported("a group below 1");
  QAT_ASSIGN_OR_RETURN(TransposedGeometry t, ResolveConvTranspose(ctx));
  const ConvGeometry& c = t.conv;
  const size_t n = static_cast<size_t>(c.spatial);
  QAT_ASSIGN_OR_RETURN(ValueShape y, ctx.Shape(ctx.output(0)));
  std::string g = ctx.output_grad(0);
  std::vector<int64_t> axes(n);
  std::iota(axes.begin(), axes.end(), 2);
  bool trimmed = false;
  for (size_t d = 0; d < n; ++d) trimmed |= t.used[d] != y.dims[d + 2];
  if (trimmed) {
    g = ctx.g().Slice(g, std::vector<int64_t>(n, 0), t.used, axes, ctx.Hint("used"));
  }
  if (ctx.wants(0)) {
    std::vector<onnx::AttributeProto> attrs = {
        AttrInts("kernel_shape", c.kernel), AttrInts("strides", c.strides),
        AttrInts("dilations", c.dilations), AttrInts("pads", c.pads)};
    if (group != 1) attrs.push_back(AttrInt("group", group));
    std::string dx = ctx.g().Add("Conv", {g, ctx.input(1)}, ctx.Hint("x_conv"), attrs);
    // output_padding of a stride or more makes the Conv see more windows
    // than X has positions: keep the first.
    bool longer = false;
    for (size_t d = 0; d < n; ++d) {
      longer |= (c.in[d] + c.pads[d] + c.pads[d + n] - c.dilations[d] * (c.kernel[d] - 1) - 1) /
                        c.strides[d] + 1 != c.out[d];
    }
    if (longer) dx = ctx.g().Slice(dx, std::vector<int64_t>(n, 0), c.out, axes, ctx.Hint("x_cut"));
    ctx.SetInputGrad(0, longer ? dx : ctx.g().Add("Identity", {dx}, ctx.Hint("x")));
  }
  if (ctx.wants(1)) {
    QAT_ASSIGN_OR_RETURN(ValueShape w, ctx.Shape(ctx.input(1), true));
    ctx.SetInputGrad(1, ConvWeightGrad(ctx, g, ctx.input(0), c, group, w.dims[1]));
  }
  if (ctx.wants(2)) {
    ctx.SetInputGrad(2, ctx.g().ReduceSum(ctx.output_grad(0), AllButChannel(c.spatial + 2),
                                          false, ctx.Hint("b")));
  }
  return absl::OkStatus();
}

absl::Status GradConv(GradContext& ctx) {
  const int64_t group = GetAttrInt(ctx.node(), "group", 1);
  if (group < 1) return ctx.Unsupported("a group below 1");
  QAT_ASSIGN_OR_RETURN(ConvGeometry c, ResolveConv(ctx));
  const std::string& g = ctx.output_grad(0);
  if (ctx.wants(0)) {
    // dX = ConvTranspose(g, W) with the same group: W [M, C/G, k...] is
    // exactly ConvTranspose's [C_in, C_out/G, k...] layout.
    std::vector<onnx::AttributeProto> attrs = {
        AttrInts("kernel_shape", c.kernel), AttrInts("strides", c.strides),
        AttrInts("dilations", c.dilations), AttrInts("pads", c.pads),
        AttrInts("output_padding", OutputPadding(c))};
    if (group != 1) attrs.push_back(AttrInt("group", group));
    ctx.SetInputGrad(0, ctx.g().Add("ConvTranspose", {g, ctx.input(1)}, ctx.Hint("x"),
                                    attrs));
  }
  if (ctx.wants(1)) {
    QAT_ASSIGN_OR_RETURN(ValueShape w, ctx.Shape(ctx.input(1), true));
    ctx.SetInputGrad(1, ConvWeightGrad(ctx, ctx.input(0), g, c, group, w.dims[1]));
  }
  if (ctx.wants(2)) {
    ctx.SetInputGrad(2, ctx.g().ReduceSum(g, AllButChannel(c.spatial + 2),
                                          false, ctx.Hint("b")));
  }
  return absl::OkStatus();
}

absl::Status GradAveragePool(GradContext& ctx) {
  // y[w] = sum of x over window w / count[w], so dX = the sum, over the
  // windows that hold x, of g[w] / count[w]: each plane of g / count, spread
  // back by a ConvTranspose with a kernel of ones.  count[w] follows the
  // forward (lib/ops/pool.cc): the window's positions inside the input, or
  // also those in the padding with count_include_pad.
  // (ceil_mode works as long as no window runs past the padding.)
  QAT_ASSIGN_OR_RETURN(ConvGeometry c, ResolveWindow(ctx, {}));
  const std::vector<int64_t> output_padding = OutputPadding(c);
  for (int64_t p : output_padding) {
    if (p < 0) return ctx.Unsupported("AveragePool whose last window runs past the padding");
  }
  const bool include_pad = GetAttrInt(ctx.node(), "count_include_pad", 0) != 0;
  const size_t n = static_cast<size_t>(c.spatial);
  int64_t out_size = 1, kernel_size = 1;
  for (size_t d = 0; d < n; ++d) {
    out_size *= c.out[d];
    kernel_size *= c.kernel[d];
  }
  std::vector<float> inverse_count(static_cast<size_t>(out_size));
  for (int64_t p = 0; p < out_size; ++p) {
    // Per dimension, the window's positions that count; their product.
    int64_t count = 1, rest = p;
    for (size_t d = n; d-- > 0;) {
      const int64_t o = rest % c.out[d];
      rest /= c.out[d];
      int64_t counted = 0;
      for (int64_t k = 0; k < c.kernel[d]; ++k) {
        const int64_t pos = o * c.strides[d] - c.pads[d] + k * c.dilations[d];
        counted += include_pad ? pos < c.in[d] + c.pads[d + n] : pos >= 0 && pos < c.in[d];
      }
      count *= counted;
    }
    inverse_count[static_cast<size_t>(p)] = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  }
  std::vector<int64_t> plane_shape = {-1, 1};  // [N*C, 1, out...]
  plane_shape.insert(plane_shape.end(), c.out.begin(), c.out.end());
  const std::string scaled = ctx.g().Add(
      "Mul",
      {ctx.output_grad(0),
       ctx.g().Initializer(MakeFloatTensor(ctx.Hint("inverse_count"), c.out, inverse_count))},
      ctx.Hint("scaled"));
  const std::string planes = ctx.g().Reshape(
      scaled, ctx.g().ConstantInt64s(plane_shape, ctx.Hint("plane_shape")), ctx.Hint("planes"));
  std::vector<int64_t> kernel_dims = {1, 1};
  kernel_dims.insert(kernel_dims.end(), c.kernel.begin(), c.kernel.end());
  const std::string ones = ctx.g().Initializer(MakeFloatTensor(
      ctx.Hint("ones"), kernel_dims, std::vector<float>(static_cast<size_t>(kernel_size), 1.0f)));
  const std::string spread = ctx.g().Add(
      "ConvTranspose", {planes, ones}, ctx.Hint("spread"),
      {AttrInts("kernel_shape", c.kernel), AttrInts("strides", c.strides),
       AttrInts("dilations", c.dilations), AttrInts("pads", c.pads),
       AttrInts("output_padding", output_padding)});
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  ctx.SetInputGrad(0, ctx.g().Reshape(spread, shape, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradMaxPool(GradContext& ctx) {
  // Scatter the gradient to the arg-max positions that MaxPool's Indices
  // output records (flat over the whole input, ignoring padding).
  if (ctx.output(1).empty()) {
    return ctx.Unsupported("MaxPool without its Indices output");
  }
  if (GetAttrInt(ctx.node(), "storage_order", 0) != 0) {
    return ctx.Unsupported("MaxPool with storage_order = 1");
  }
  const std::vector<int64_t> kernel = GetAttrInts(ctx.node(), "kernel_shape");
  const std::vector<int64_t> strides =
      GetAttrInts(ctx.node(), "strides", std::vector<int64_t>(kernel.size(), 1));
  const std::vector<int64_t> dilations = GetAttrInts(
      ctx.node(), "dilations", std::vector<int64_t>(kernel.size(), 1));
  bool overlapping = false;
  for (size_t i = 0; i < kernel.size(); ++i) {
    overlapping |= (kernel[i] - 1) * dilations[i] + 1 > strides[i];
  }
  const std::string flat = ctx.g().ConstantInt64s({-1}, ctx.Hint("flat"));
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  const std::string zeros = ctx.g().Add(
      "Expand", {ctx.g().ConstantFloat(0.0f, ctx.Hint("zero")), shape},
      ctx.Hint("zeros"));
  // Overlapping windows can send several gradients to one element, which
  // needs ScatterElements' reduction = "add" (opset 16): a training graph
  // from opset 13 on is raised to it; before, where raising would change
  // other ops' meaning, the windows are split into classes that do not
  // overlap, scattered without a reduction and added.
  if (overlapping && ctx.g().opset() < 13) {
    QAT_ASSIGN_OR_RETURN(const std::string sum,
                         ScatterByDisjointWindows(ctx, kernel, strides, dilations,
                                                  ctx.g().Reshape(zeros, flat,
                                                                  ctx.Hint("zeros_flat"))));
    ctx.SetInputGrad(0, ctx.g().Reshape(sum, shape, ctx.Hint("x")));
    return absl::OkStatus();
  }
  if (overlapping) {
    QAT_RETURN_IF_ERROR(ctx.RequireOpset(
        16, "overlapping MaxPool windows add up with ScatterElements' reduction 'add'"));
  }
  std::vector<onnx::AttributeProto> attrs = {AttrInt("axis", 0)};
  if (overlapping) attrs.push_back(AttrString("reduction", "add"));
  const std::string scattered = ctx.g().Add(
      "ScatterElements",
      {ctx.g().Reshape(zeros, flat, ctx.Hint("zeros_flat")),
       ctx.g().Reshape(ctx.output(1), flat, ctx.Hint("indices_flat")),
       ctx.g().Reshape(ctx.output_grad(0), flat, ctx.Hint("g_flat"))},
      ctx.Hint("scatter"), attrs);
  ctx.SetInputGrad(0, ctx.g().Reshape(scattered, shape, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradGlobalAveragePool(GradContext& ctx) {
  // dX = g spread over the spatial axes / their size, counted at run time
  // when the spatial sizes are not static.
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  std::vector<int64_t> spatial;
  for (int64_t a = 2; a < x.rank(); ++a) spatial.push_back(a);
  QAT_ASSIGN_OR_RETURN(const std::string count, ctx.ElementCount(ctx.input(0), spatial));
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  const std::string spread =
      ctx.g().Add("Expand", {ctx.output_grad(0), shape}, ctx.Hint("spread"));
  ctx.SetInputGrad(0, ctx.g().Add("Div", {spread, count}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradBatchNormalization(GradContext& ctx) {
  // y = (x - mean) * inv_std * scale + B, per channel (axis 1), with
  // inv_std = 1 / sqrt(var + epsilon).
  // Inference mode: mean and var are the running statistics (constants), so
  //   dX = g * scale * inv_std.
  // Training mode (training_mode = 1 since opset 14; before, asking for the
  // running-statistics outputs): mean and var (population) are the batch's,
  // recomputed here, and with xhat = (x - mean) * inv_std, d = g * scale,
  //   dX = inv_std * (d - mean(d) - xhat * mean(d * xhat)),
  // the means over every axis but the channel.  Either way
  //   dScale = sum(g * xhat), dB = sum(g).
  // The running-statistics outputs carry no gradient.  The four batch
  // means of training mode are ai.libqat BatchMean nodes: under
  // synchronized BatchNorm the executor reduces them over the ranks (the
  // statistics as the forward does, mean(d) and mean(d * xhat) as gradient
  // terms), so that dX is the whole batch's; dScale and dB are parameter
  // gradients, which the trainer sums over the ranks anyway.
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  if (x.rank() < 2) return ctx.Unsupported("BatchNormalization of rank < 2");
  bool training = false;
  if (ctx.g().opset() >= 14) {
    training = GetAttrInt(ctx.node(), "training_mode", 0) != 0;
  } else {
    for (int i = 1; i < ctx.node().output_size(); ++i) training |= !ctx.output(i).empty();
  }
  GraphEditor& e = ctx.g();
  const std::vector<int64_t> axes = AllButChannel(x.rank());
  std::vector<int64_t> channel_shape(static_cast<size_t>(x.rank() - 1), 1);  // [C, 1, ...]
  channel_shape[0] = -1;
  const std::string per_channel = e.ConstantInt64s(channel_shape, ctx.Hint("channel_shape"));
  auto channel = [&](const std::string& v, const std::string& what) {
    return e.Reshape(v, per_channel, ctx.Hint(what));
  };
  const std::string& g = ctx.output_grad(0);
  // kind 0: a batch statistic, 1: a gradient term (lib/exec/ops/normalization.cc).
  auto batch_mean = [&](const std::string& v, int64_t kind, const std::string& what) {
    e.EnsureOpset("ai.libqat", 1);
    const std::string out = e.FreshName(ctx.Hint(what));
    e.AddNode("BatchMean", "ai.libqat", {v}, {out}, {AttrInt("kind", kind)});
    return out;
  };
  std::string mean, var;
  if (training) {
    mean = batch_mean(ctx.input(0), 0, "batch_mean");
    const std::string centred = e.Add("Sub", {ctx.input(0), mean}, ctx.Hint("batch_centred"));
    var = batch_mean(e.Add("Mul", {centred, centred}, ctx.Hint("batch_sq")), 0, "batch_var");
  } else {
    mean = channel(ctx.input(3), "mean");
    var = channel(ctx.input(4), "var");
  }
  const std::string eps =
      e.ConstantFloat(GetAttrFloat(ctx.node(), "epsilon", 1e-5f), ctx.Hint("epsilon"));
  const std::string inv_std = e.Add(
      "Div",
      {e.ConstantFloat(1.0f, ctx.Hint("one")),
       e.Add("Sqrt", {e.Add("Add", {var, eps}, ctx.Hint("var_eps"))}, ctx.Hint("std"))},
      ctx.Hint("inv_std"));
  const std::string xhat = e.Add(
      "Mul", {e.Add("Sub", {ctx.input(0), mean}, ctx.Hint("centred")), inv_std},
      ctx.Hint("xhat"));
  if (ctx.wants(0)) {
    const std::string d = e.Add("Mul", {g, channel(ctx.input(1), "scale")}, ctx.Hint("d"));
    if (training) {
      const std::string mean_d = batch_mean(d, 1, "mean_d");
      const std::string mean_dx =
          batch_mean(e.Add("Mul", {d, xhat}, ctx.Hint("d_xhat")), 1, "mean_d_xhat");
      const std::string inner = e.Add(
          "Sub",
          {e.Add("Sub", {d, mean_d}, ctx.Hint("d_centred")),
           e.Add("Mul", {xhat, mean_dx}, ctx.Hint("xhat_term"))},
          ctx.Hint("inner"));
      ctx.SetInputGrad(0, e.Add("Mul", {inner, inv_std}, ctx.Hint("x")));
    } else {
      ctx.SetInputGrad(0, e.Add("Mul", {d, inv_std}, ctx.Hint("x")));
    }
  }
  if (ctx.wants(1)) {
    ctx.SetInputGrad(1, e.ReduceSum(e.Add("Mul", {g, xhat}, ctx.Hint("g_xhat")), axes, false,
                                    ctx.Hint("scale")));
  }
  if (ctx.wants(2)) ctx.SetInputGrad(2, e.ReduceSum(g, axes, false, ctx.Hint("b")));
  return absl::OkStatus();
}

absl::Status GradDropout(GradContext& ctx) {
  // In training mode y = mask * x / (1 - ratio); in inference mode (no
  // training_mode input, the default) y = x.  The builder switches the
  // training graph's Dropout nodes to training mode with a mask output.
  if (ctx.input(2).empty() || ctx.output(1).empty()) {
    ctx.SetInputGrad(0, ctx.output_grad(0));
    return absl::OkStatus();
  }
  std::string ratio = ctx.input(1);
  if (ratio.empty()) {
    ratio = ctx.g().ConstantFloat(GetAttrFloat(ctx.node(), "ratio", 0.5f),
                                  ctx.Hint("ratio"));
  }
  const std::string one = ctx.g().ConstantFloat(1.0f, ctx.Hint("one"));
  const std::string keep = ctx.g().Add("Sub", {one, ratio}, ctx.Hint("keep"));
  const std::string scaled =
      ctx.g().Add("Div", {ctx.output_grad(0), keep}, ctx.Hint("scaled"));
  const std::string zero = ctx.g().ConstantFloat(0.0f, ctx.Hint("zero"));
  ctx.SetInputGrad(0, ctx.g().Add("Where", {ctx.output(1), scaled, zero},
                                  ctx.Hint("x")));
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
