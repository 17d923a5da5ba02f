// Gradient rules for convolution, pooling and dropout.
#include <numeric>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "training/gradient_rules.h"

namespace qat {
namespace training {
namespace {

// The geometry of a Conv node with static shapes and explicit pads.
struct ConvGeometry {
  int64_t spatial = 0;
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins, ends
  std::vector<int64_t> in, out;                           // spatial sizes
};

absl::StatusOr<ConvGeometry> ResolveConv(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  QAT_ASSIGN_OR_RETURN(ValueShape w, ctx.Shape(ctx.input(1), true));
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
  c.kernel = GetAttrInts(ctx.node(), "kernel_shape",
                         std::vector<int64_t>(w.dims.begin() + 2, w.dims.end()));
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

}  // namespace

absl::Status GradConv(GradContext& ctx) {
  if (GetAttrInt(ctx.node(), "group", 1) != 1) {
    return ctx.Unsupported("grouped convolution (group > 1)");
  }
  QAT_ASSIGN_OR_RETURN(ConvGeometry c, ResolveConv(ctx));
  const std::string& g = ctx.output_grad(0);
  const size_t n = static_cast<size_t>(c.spatial);
  if (ctx.wants(0)) {
    // dX = ConvTranspose(g, W), with output_padding restoring sizes that the
    // forward stride rounded away.
    std::vector<int64_t> output_padding(n);
    for (size_t i = 0; i < n; ++i) {
      output_padding[i] = c.in[i] - ((c.out[i] - 1) * c.strides[i] +
                                     (c.kernel[i] - 1) * c.dilations[i] + 1 -
                                     c.pads[i] - c.pads[i + n]);
    }
    ctx.SetInputGrad(
        0, ctx.g().Add("ConvTranspose", {g, ctx.input(1)}, ctx.Hint("x"),
                       {AttrInts("kernel_shape", c.kernel),
                        AttrInts("strides", c.strides),
                        AttrInts("dilations", c.dilations),
                        AttrInts("pads", c.pads),
                        AttrInts("output_padding", output_padding)}));
  }
  if (ctx.wants(1)) {
    // dW[o,i,k] = sum_n sum_y g[n,o,y] X[n,i,y*s + k*d]: a convolution of
    // X^T ([C_in, N, ...]) with g^T ([C_out, N, ...]) as the kernel, strides
    // and dilations swapped; it may overshoot the kernel size, so slice.
    const int64_t rank = c.spatial + 2;
    const std::string xt = ctx.g().Transpose(ctx.input(0), SwapFirstTwo(rank),
                                             ctx.Hint("xt"));
    const std::string gt = ctx.g().Transpose(g, SwapFirstTwo(rank), ctx.Hint("gt"));
    std::string dw = ctx.g().Add(
        "Conv", {xt, gt}, ctx.Hint("w_t"),
        {AttrInts("strides", c.dilations), AttrInts("dilations", c.strides),
         AttrInts("pads", c.pads)});
    std::vector<int64_t> starts(n, 0), axes(n);
    std::iota(axes.begin(), axes.end(), 2);
    dw = ctx.g().Add("Slice",
                     {dw, ctx.g().ConstantInt64s(starts, ctx.Hint("starts")),
                      ctx.g().ConstantInt64s(c.kernel, ctx.Hint("ends")),
                      ctx.g().ConstantInt64s(axes, ctx.Hint("axes"))},
                     ctx.Hint("w_slice"));
    ctx.SetInputGrad(1, ctx.g().Transpose(dw, SwapFirstTwo(rank), ctx.Hint("w")));
  }
  if (ctx.wants(2)) {
    ctx.SetInputGrad(2, ctx.g().ReduceSum(g, AllButChannel(c.spatial + 2),
                                          false, ctx.Hint("b")));
  }
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
  // Overlapping windows can send several gradients to one element, which
  // needs ScatterElements' reduction = "add" (opset 16).
  if (overlapping && ctx.g().opset() < 16) {
    return ctx.Unsupported("overlapping MaxPool windows before opset 16");
  }
  const std::string flat = ctx.g().ConstantInt64s({-1}, ctx.Hint("flat"));
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  const std::string zeros = ctx.g().Add(
      "Expand", {ctx.g().ConstantFloat(0.0f, ctx.Hint("zero")), shape},
      ctx.Hint("zeros"));
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
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  int64_t count = 1;
  for (int64_t a = 2; a < x.rank(); ++a) {
    if (x.dims[a] < 0) {
      return ctx.Unsupported("GlobalAveragePool over dynamic spatial sizes");
    }
    count *= x.dims[a];
  }
  const std::string shape = ctx.g().Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  const std::string spread =
      ctx.g().Add("Expand", {ctx.output_grad(0), shape}, ctx.Hint("spread"));
  ctx.SetInputGrad(
      0, ctx.g().Add("Div",
                     {spread, ctx.g().ConstantFloat(static_cast<float>(count),
                                                    ctx.Hint("count"))},
                     ctx.Hint("x")));
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
