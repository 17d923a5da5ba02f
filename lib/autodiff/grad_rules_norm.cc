// Gradient rules for Resize and Upsample, LayerNormalization,
// InstanceNormalization and GlobalMaxPool.
//
// None needs a static shape: the normalizations need only the input's rank,
// and Resize's gradient is one ai.libqat ResizeGrad node (lib/exec/ops/
// resize.cc), the adjoint of the forward's own interpolation taps, which
// reads the input's shape at run time.
#include <numeric>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

std::vector<int64_t> AxesFrom(int64_t first, int64_t rank) {
  std::vector<int64_t> axes;
  for (int64_t a = first; a < rank; ++a) axes.push_back(a);
  return axes;
}

// The input's rank, which the rules below need (its dims may be dynamic).
absl::StatusOr<int64_t> InputRank(GradContext& ctx) {
  QAT_ASSIGN_OR_RETURN(ValueShape x, ctx.Shape(ctx.input(0)));
  return x.rank();
}

// The statistics of y = (x - mean) * inv_std * scale + b over `axes`, built
// in the graph: xhat and inv_std (keepdims, so they broadcast against x).
struct Normalized {
  std::string xhat, inv_std;
};

Normalized Normalize(GradContext& ctx, const std::vector<int64_t>& axes, float epsilon) {
  GraphEditor& e = ctx.g();
  const std::string mean = e.ReduceMean(ctx.input(0), axes, true, ctx.Hint("mean"));
  const std::string centred = e.Add("Sub", {ctx.input(0), mean}, ctx.Hint("centred"));
  const std::string var = e.ReduceMean(e.Add("Mul", {centred, centred}, ctx.Hint("sq")), axes,
                                       true, ctx.Hint("var"));
  const std::string inv_std = e.Add(
      "Div",
      {e.ConstantFloat(1.0f, ctx.Hint("one")),
       e.Add("Sqrt", {e.Add("Add", {var, e.ConstantFloat(epsilon, ctx.Hint("epsilon"))},
                            ctx.Hint("var_eps"))},
             ctx.Hint("std"))},
      ctx.Hint("inv_std"));
  return {e.Add("Mul", {centred, inv_std}, ctx.Hint("xhat")), inv_std};
}

// dX of a normalization whose statistics are taken over `axes`, given d =
// dL/dxhat: inv_std * (d - mean(d) - xhat * mean(d * xhat)).
std::string NormalizedInputGrad(GradContext& ctx, const Normalized& n, const std::string& d,
                                const std::vector<int64_t>& axes) {
  GraphEditor& e = ctx.g();
  const std::string mean_d = e.ReduceMean(d, axes, true, ctx.Hint("mean_d"));
  const std::string mean_dx = e.ReduceMean(e.Add("Mul", {d, n.xhat}, ctx.Hint("d_xhat")), axes,
                                           true, ctx.Hint("mean_d_xhat"));
  const std::string inner =
      e.Add("Sub",
            {e.Add("Sub", {d, mean_d}, ctx.Hint("d_centred")),
             e.Add("Mul", {n.xhat, mean_dx}, ctx.Hint("xhat_term"))},
            ctx.Hint("inner"));
  return e.Add("Mul", {inner, n.inv_std}, ctx.Hint("x"));
}

}  // namespace

absl::Status GradLayerNormalization(GradContext& ctx) {
  // Statistics over the axes from `axis` on; Scale and B broadcast to them.
  // Mean and InvStdDev, when output, carry no gradient of their own here.
  for (int i = 1; i < ctx.node().output_size(); ++i) {
    if (!ctx.output_grad(i).empty()) {
      return ctx.Unsupported("a gradient flowing into Mean or InvStdDev");
    }
  }
  QAT_ASSIGN_OR_RETURN(const int64_t rank, InputRank(ctx));
  int64_t axis = GetAttrInt(ctx.node(), "axis", -1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return ctx.Unsupported("an axis outside the input's rank");
  const std::vector<int64_t> axes = AxesFrom(axis, rank);
  const Normalized n = Normalize(ctx, axes, GetAttrFloat(ctx.node(), "epsilon", 1e-5f));
  const std::string& g = ctx.output_grad(0);
  GraphEditor& e = ctx.g();
  if (ctx.wants(0)) {
    const std::string d = e.Add("Mul", {g, ctx.input(1)}, ctx.Hint("d"));
    ctx.SetInputGrad(0, NormalizedInputGrad(ctx, n, d, axes));
  }
  if (ctx.wants(1)) {
    QAT_ASSIGN_OR_RETURN(std::string ds,
                         ctx.Unbroadcast(e.Add("Mul", {g, n.xhat}, ctx.Hint("g_xhat")), 1));
    ctx.SetInputGrad(1, ds);
  }
  if (ctx.wants(2) && !ctx.input(2).empty()) {
    QAT_ASSIGN_OR_RETURN(std::string db, ctx.Unbroadcast(g, 2));
    ctx.SetInputGrad(2, db);
  }
  return absl::OkStatus();
}

absl::Status GradInstanceNormalization(GradContext& ctx) {
  // Statistics per sample and channel over the spatial axes; scale and B
  // per channel.
  QAT_ASSIGN_OR_RETURN(const int64_t rank, InputRank(ctx));
  if (rank < 3) return ctx.Unsupported("InstanceNormalization of rank < 3");
  const std::vector<int64_t> spatial = AxesFrom(2, rank);
  std::vector<int64_t> all_but_channel = {0};
  all_but_channel.insert(all_but_channel.end(), spatial.begin(), spatial.end());
  const Normalized n = Normalize(ctx, spatial, GetAttrFloat(ctx.node(), "epsilon", 1e-5f));
  const std::string& g = ctx.output_grad(0);
  GraphEditor& e = ctx.g();
  if (ctx.wants(0)) {
    std::vector<int64_t> channel_shape(static_cast<size_t>(rank - 1), 1);  // [C, 1, ...]
    channel_shape[0] = -1;
    const std::string scale = e.Reshape(
        ctx.input(1), e.ConstantInt64s(channel_shape, ctx.Hint("channel_shape")),
        ctx.Hint("scale"));
    const std::string d = e.Add("Mul", {g, scale}, ctx.Hint("d"));
    ctx.SetInputGrad(0, NormalizedInputGrad(ctx, n, d, spatial));
  }
  if (ctx.wants(1)) {
    ctx.SetInputGrad(1, e.ReduceSum(e.Add("Mul", {g, n.xhat}, ctx.Hint("g_xhat")),
                                    all_but_channel, false, ctx.Hint("scale")));
  }
  if (ctx.wants(2)) ctx.SetInputGrad(2, e.ReduceSum(g, all_but_channel, false, ctx.Hint("b")));
  return absl::OkStatus();
}

absl::Status GradGlobalMaxPool(GradContext& ctx) {
  // The gradient goes to the positions that hold the maximum, split evenly
  // between ties (a subgradient whose parts sum to dY).
  QAT_ASSIGN_OR_RETURN(const int64_t rank, InputRank(ctx));
  if (rank < 3) return ctx.Unsupported("GlobalMaxPool of rank < 3");
  GraphEditor& e = ctx.g();
  const std::string mask = e.Add(
      "Cast", {e.Add("Equal", {ctx.input(0), ctx.output(0)}, ctx.Hint("is_max"))},
      ctx.Hint("mask"), {AttrInt("to", onnx::TensorProto::FLOAT)});
  const std::string count = e.ReduceSum(mask, AxesFrom(2, rank), true, ctx.Hint("count"));
  const std::string share = e.Add("Div", {ctx.output_grad(0), count}, ctx.Hint("share"));
  ctx.SetInputGrad(0, e.Add("Mul", {mask, share}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradResize(GradContext& ctx) {
  // One ResizeGrad(dY, shape(X), roi, scales, sizes) with Resize-11's
  // attributes: Upsample and Resize-10 sample at x / scale and round down,
  // which Resize-11 spells asymmetric and floor; Upsample-7's scales
  // attribute becomes a constant.
  const onnx::NodeProto& node = ctx.node();
  const bool upsample = node.op_type() == "Upsample";
  const bool legacy = upsample || ctx.g().opset() < 11;
  std::string mode = GetAttrString(node, "mode", "nearest");
  if (mode == "bilinear") mode = "linear";
  std::vector<onnx::AttributeProto> attrs = {AttrString("mode", mode)};
  std::string roi, scales, sizes;
  if (legacy) {
    attrs.push_back(AttrString("coordinate_transformation_mode", "asymmetric"));
    attrs.push_back(AttrString("nearest_mode", "floor"));
    if (upsample && ctx.g().opset() < 9) {
      std::vector<float> values;
      for (const auto& a : node.attribute()) {
        if (a.name() == "scales") values.assign(a.floats().begin(), a.floats().end());
      }
      scales = ctx.g().Initializer(MakeFloatTensor(
          ctx.Hint("scales"), {static_cast<int64_t>(values.size())}, values));
    } else {
      scales = ctx.input(1);
    }
  } else {
    for (const auto& a : node.attribute()) {
      if (a.name() != "mode") attrs.push_back(a);
    }
    roi = ctx.num_inputs() > 1 ? ctx.input(1) : "";
    scales = ctx.num_inputs() > 2 ? ctx.input(2) : "";
    sizes = ctx.num_inputs() > 3 ? ctx.input(3) : "";
  }
  GraphEditor& e = ctx.g();
  const std::string shape = e.Add("Shape", {ctx.input(0)}, ctx.Hint("shape"));
  e.EnsureOpset("ai.libqat", 1);
  const std::string dx = e.FreshName(ctx.Hint("x"));
  e.AddNode("ResizeGrad", "ai.libqat", {ctx.output_grad(0), shape, roi, scales, sizes}, {dx},
            attrs);
  ctx.SetInputGrad(0, dx);
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
