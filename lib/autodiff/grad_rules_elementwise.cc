// Gradient rules for elementwise ops.  Binary ops broadcast numpy-style, so
// each input's gradient is summed back to that input's shape.
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

// Sets input i's gradient to `grad` summed back to the input's shape.
absl::Status SetUnbroadcast(GradContext& ctx, int i, const std::string& grad) {
  if (!ctx.wants(i)) return absl::OkStatus();
  QAT_ASSIGN_OR_RETURN(std::string g, ctx.Unbroadcast(grad, i));
  ctx.SetInputGrad(i, g);
  return absl::OkStatus();
}

// g * f(node), for unary ops whose derivative is an expression.
void SetProduct(GradContext& ctx, const std::string& factor) {
  ctx.SetInputGrad(0, ctx.g().Add("Mul", {ctx.output_grad(0), factor},
                                  ctx.Hint("x")));
}

absl::Status GradFakeQuantLearnable(GradContext& ctx);

std::string Zero(GradContext& ctx) {
  return ctx.g().ConstantFloat(0.0f, ctx.Hint("zero"));
}

}  // namespace

absl::Status GradAdd(GradContext& ctx) {
  QAT_RETURN_IF_ERROR(SetUnbroadcast(ctx, 0, ctx.output_grad(0)));
  return SetUnbroadcast(ctx, 1, ctx.output_grad(0));
}

absl::Status GradSub(GradContext& ctx) {
  QAT_RETURN_IF_ERROR(SetUnbroadcast(ctx, 0, ctx.output_grad(0)));
  if (!ctx.wants(1)) return absl::OkStatus();
  return SetUnbroadcast(
      ctx, 1, ctx.g().Add("Neg", {ctx.output_grad(0)}, ctx.Hint("neg")));
}

absl::Status GradMul(GradContext& ctx) {
  const std::string& g = ctx.output_grad(0);
  if (ctx.wants(0)) {
    QAT_RETURN_IF_ERROR(SetUnbroadcast(
        ctx, 0, ctx.g().Add("Mul", {g, ctx.input(1)}, ctx.Hint("a"))));
  }
  if (ctx.wants(1)) {
    QAT_RETURN_IF_ERROR(SetUnbroadcast(
        ctx, 1, ctx.g().Add("Mul", {g, ctx.input(0)}, ctx.Hint("b"))));
  }
  return absl::OkStatus();
}

absl::Status GradDiv(GradContext& ctx) {
  // y = a / b:  da = g / b,  db = -g * y / b.
  const std::string& g = ctx.output_grad(0);
  const std::string g_over_b =
      ctx.g().Add("Div", {g, ctx.input(1)}, ctx.Hint("a"));
  QAT_RETURN_IF_ERROR(SetUnbroadcast(ctx, 0, g_over_b));
  if (!ctx.wants(1)) return absl::OkStatus();
  const std::string prod =
      ctx.g().Add("Mul", {g_over_b, ctx.output(0)}, ctx.Hint("b"));
  return SetUnbroadcast(ctx, 1, ctx.g().Add("Neg", {prod}, ctx.Hint("b")));
}

absl::Status GradNeg(GradContext& ctx) {
  ctx.SetInputGrad(0, ctx.g().Add("Neg", {ctx.output_grad(0)}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradAbs(GradContext& ctx) {
  SetProduct(ctx, ctx.g().Add("Sign", {ctx.input(0)}, ctx.Hint("sign")));
  return absl::OkStatus();
}

absl::Status GradSqrt(GradContext& ctx) {
  // d sqrt(x) = 1 / (2 sqrt(x)) = 0.5 / y.
  const std::string half = ctx.g().ConstantFloat(0.5f, ctx.Hint("half"));
  SetProduct(ctx, ctx.g().Add("Div", {half, ctx.output(0)}, ctx.Hint("d")));
  return absl::OkStatus();
}

absl::Status GradExp(GradContext& ctx) {
  SetProduct(ctx, ctx.output(0));
  return absl::OkStatus();
}

absl::Status GradLog(GradContext& ctx) {
  ctx.SetInputGrad(0, ctx.g().Add("Div", {ctx.output_grad(0), ctx.input(0)},
                                  ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradPow(GradContext& ctx) {
  // y = a^b:  da = g * b * a^(b-1),  db = g * y * log(a).
  const std::string& g = ctx.output_grad(0);
  if (ctx.wants(0)) {
    const std::string one = ctx.g().ConstantFloat(1.0f, ctx.Hint("one"));
    const std::string bm1 = ctx.g().Add("Sub", {ctx.input(1), one}, ctx.Hint("e"));
    const std::string p = ctx.g().Add("Pow", {ctx.input(0), bm1}, ctx.Hint("p"));
    const std::string d = ctx.g().Add("Mul", {p, ctx.input(1)}, ctx.Hint("d"));
    QAT_RETURN_IF_ERROR(
        SetUnbroadcast(ctx, 0, ctx.g().Add("Mul", {g, d}, ctx.Hint("a"))));
  }
  if (ctx.wants(1)) {
    const std::string l = ctx.g().Add("Log", {ctx.input(0)}, ctx.Hint("log"));
    const std::string d = ctx.g().Add("Mul", {ctx.output(0), l}, ctx.Hint("d"));
    QAT_RETURN_IF_ERROR(
        SetUnbroadcast(ctx, 1, ctx.g().Add("Mul", {g, d}, ctx.Hint("b"))));
  }
  return absl::OkStatus();
}

absl::Status GradRelu(GradContext& ctx) {
  // Zero gradient at x = 0, as PyTorch.  relu(x) > 0 exactly when x > 0
  // (NaN and -0.0 included), so the mask reads the output: the input then
  // has the Relu as its only reader, and the executor fuses a Conv feeding
  // it (conv_activation.h) in training graphs too, without keeping the
  // Conv's output for backward.
  const std::string pos =
      ctx.g().Add("Greater", {ctx.output(0), Zero(ctx)}, ctx.Hint("pos"));
  ctx.SetInputGrad(0, ctx.g().Add("Where", {pos, ctx.output_grad(0), Zero(ctx)},
                                  ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradLeakyRelu(GradContext& ctx) {
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 0.01f);
  const std::string& g = ctx.output_grad(0);
  const std::string pos =
      ctx.g().Add("Greater", {ctx.input(0), Zero(ctx)}, ctx.Hint("pos"));
  const std::string scaled = ctx.g().Add(
      "Mul", {g, ctx.g().ConstantFloat(alpha, ctx.Hint("alpha"))},
      ctx.Hint("neg"));
  ctx.SetInputGrad(0, ctx.g().Add("Where", {pos, g, scaled}, ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradSigmoid(GradContext& ctx) {
  // y (1 - y)
  const std::string one = ctx.g().ConstantFloat(1.0f, ctx.Hint("one"));
  const std::string omy = ctx.g().Add("Sub", {one, ctx.output(0)}, ctx.Hint("d"));
  SetProduct(ctx, ctx.g().Add("Mul", {ctx.output(0), omy}, ctx.Hint("d")));
  return absl::OkStatus();
}

absl::Status GradTanh(GradContext& ctx) {
  // 1 - y^2
  const std::string one = ctx.g().ConstantFloat(1.0f, ctx.Hint("one"));
  const std::string y2 =
      ctx.g().Add("Mul", {ctx.output(0), ctx.output(0)}, ctx.Hint("y2"));
  SetProduct(ctx, ctx.g().Add("Sub", {one, y2}, ctx.Hint("d")));
  return absl::OkStatus();
}

absl::Status GradClip(GradContext& ctx) {
  // Gradient passes where min <= x <= max (both ends included, as PyTorch's
  // clamp).  Clip-11+ takes min and max as optional inputs (constants: the
  // manifest declares no gradient for them).
  if (ctx.g().opset() < 11) return ctx.Unsupported("Clip before opset 11");
  std::string pass;
  for (int i : {1, 2}) {
    if (ctx.input(i).empty()) continue;
    const std::string c = ctx.g().Add(
        i == 1 ? "GreaterOrEqual" : "LessOrEqual", {ctx.input(0), ctx.input(i)},
        ctx.Hint(i == 1 ? "above_min" : "below_max"));
    pass = pass.empty() ? c : ctx.g().Add("And", {pass, c}, ctx.Hint("inside"));
  }
  ctx.SetInputGrad(0, pass.empty() ? ctx.output_grad(0)
                                   : ctx.g().Add("Where",
                                                 {pass, ctx.output_grad(0),
                                                  Zero(ctx)},
                                                 ctx.Hint("x")));
  return absl::OkStatus();
}

absl::Status GradWhere(GradContext& ctx) {
  const std::string& g = ctx.output_grad(0);
  if (ctx.wants(1)) {
    QAT_RETURN_IF_ERROR(SetUnbroadcast(
        ctx, 1,
        ctx.g().Add("Where", {ctx.input(0), g, Zero(ctx)}, ctx.Hint("a"))));
  }
  if (ctx.wants(2)) {
    QAT_RETURN_IF_ERROR(SetUnbroadcast(
        ctx, 2,
        ctx.g().Add("Where", {ctx.input(0), Zero(ctx), g}, ctx.Hint("b"))));
  }
  return absl::OkStatus();
}

absl::Status GradIdentity(GradContext& ctx) {
  ctx.SetInputGrad(0, ctx.output_grad(0));
  return absl::OkStatus();
}

absl::Status GradCast(GradContext& ctx) {
  // Only float-to-float casts carry a gradient; cast it back.
  QAT_ASSIGN_OR_RETURN(ValueShape in, ctx.Shape(ctx.input(0)));
  if (in.elem_type != onnx::TensorProto::FLOAT &&
      in.elem_type != onnx::TensorProto::DOUBLE) {
    return absl::OkStatus();
  }
  ctx.SetInputGrad(0, ctx.g().Add("Cast", {ctx.output_grad(0)}, ctx.Hint("x"),
                                  {AttrInt("to", in.elem_type)}));
  return absl::OkStatus();
}

absl::Status GradFakeQuant(GradContext& ctx) {
  if (ctx.wants(1) || ctx.wants(2)) return GradFakeQuantLearnable(ctx);
  // Straight-through estimator: dx = mask ? dy : 0.
  if (ctx.output(1).empty()) {
    return ctx.Unsupported("FakeQuant without its mask output");
  }
  ctx.SetInputGrad(0, ctx.g().Add("Where",
                                  {ctx.output(1), ctx.output_grad(0), Zero(ctx)},
                                  ctx.Hint("x")));
  return absl::OkStatus();
}

namespace {
absl::Status GradFakeQuantLearnable(GradContext& ctx) {
  // LSQ/LSQ+: one ai.libqat FakeQuantLsqGrad node gives dX, dScale and
  // dZeroPoint.  LSQ's gradient scale g = 1 / sqrt(N * qmax), N the number of
  // elements per channel of a weight, or of features per sample of an
  // activation (1 when unknown).
  const int64_t qmax = GetAttrInt(ctx.node(), "quant_max", 255);
  const bool per_channel = ctx.node().domain() == "ai.libqat";
  const int64_t axis = GetAttrInt(ctx.node(), "axis", 0);
  const int64_t block_size = per_channel ? GetAttrInt(ctx.node(), "block_size", 0) : 0;
  float g = 1.0f;
  if (std::optional<ValueShape> x = ctx.g().ShapeOf(ctx.input(0));
      x.has_value() && x->rank_known && qmax > 0) {
    const bool weight = ctx.g().FindInitializer(ctx.input(0)) != nullptr;
    const int64_t a = axis < 0 ? axis + x->rank() : axis;
    int64_t n = 1;
    for (int64_t d = weight ? 0 : 1; d < x->rank(); ++d) {
      if (per_channel && d == a) continue;
      n = x->dims[d] < 0 ? -1 : (n < 0 ? -1 : n * x->dims[d]);
    }
    // Per block, a weight's scale entry covers block_size elements.
    if (weight && block_size > 0) n = block_size;
    if (n > 0) g = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n) * qmax));
  }
  std::vector<onnx::AttributeProto> attrs = {
      AttrInt("quant_min", GetAttrInt(ctx.node(), "quant_min", 0)), AttrInt("quant_max", qmax),
      AttrFloat("grad_scale", g)};
  if (per_channel) attrs.push_back(AttrInt("axis", axis));
  if (block_size > 0) attrs.push_back(AttrInt("block_size", block_size));
  const std::string dx = ctx.g().FreshName(ctx.Hint("x"));
  const std::string ds = ctx.g().FreshName(ctx.Hint("scale"));
  const std::string dz = ctx.g().FreshName(ctx.Hint("zero_point"));
  ctx.g().EnsureOpset("ai.libqat", 1);
  ctx.g().AddNode("FakeQuantLsqGrad", "ai.libqat",
                  {ctx.input(0), ctx.output_grad(0), ctx.input(1), ctx.input(2)}, {dx, ds, dz},
                  attrs);
  ctx.SetInputGrad(0, dx);
  ctx.SetInputGrad(1, ds);
  ctx.SetInputGrad(2, dz);
  return absl::OkStatus();
}
}  // namespace

}  // namespace training
}  // namespace qat
