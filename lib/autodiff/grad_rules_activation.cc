// Gradient rules for activations and elementwise math: Erf, HardSigmoid,
// HardSwish, PRelu, Elu, Selu, Softplus, Celu, ThresholdedRelu, Shrink,
// Reciprocal, Softsign, Sin, Cos, and the variadic Max, Min, Sum, Mean.
//
// At a kink the one-sided slope follows PyTorch: the "x > 0" branch of
// PRelu, Elu, Selu and Celu takes x = 0 to the negative side; HardSigmoid's
// and ThresholdedRelu's and Shrink's flat parts include their ends.  Max
// and Min send the gradient to the inputs that equal the output, split
// evenly among ties, as PyTorch's maximum and minimum do for two inputs.
#include <string>
#include <vector>

#include "qat/status_macros.h"
#include "autodiff/gradient_rules.h"

namespace qat {
namespace training {
namespace {

// Emits nodes of the default domain named from the rule's node.
class Emit {
 public:
  explicit Emit(GradContext& ctx) : ctx_(ctx) {}

  std::string operator()(const std::string& op, std::vector<std::string> inputs,
                         const std::string& what, std::vector<onnx::AttributeProto> attrs = {}) {
    return ctx_.g().Add(op, std::move(inputs), ctx_.Hint(what), std::move(attrs));
  }
  std::string Float(float value, const std::string& what) {
    return ctx_.g().ConstantFloat(value, ctx_.Hint(what));
  }
  // Where(cond, a, b).
  std::string Select(const std::string& cond, const std::string& a, const std::string& b) {
    return (*this)("Where", {cond, a, b}, "x");
  }
  // dy * factor.
  std::string Times(const std::string& factor) {
    return (*this)("Mul", {ctx_.output_grad(0), factor}, "x");
  }

 private:
  GradContext& ctx_;
};

// dx = dy * factor, for unary ops.
absl::Status SetTimes(GradContext& ctx, const std::string& factor) {
  ctx.SetInputGrad(0, Emit(ctx).Times(factor));
  return absl::OkStatus();
}

// dx = x > 0 ? positive_grad : dy * negative_factor (PyTorch's side at
// x = 0).
absl::Status SetPositiveOr(GradContext& ctx, const std::string& positive_grad,
                           const std::string& negative_factor) {
  Emit e(ctx);
  const std::string pos = e("Greater", {ctx.input(0), e.Float(0.0f, "zero")}, "pos");
  ctx.SetInputGrad(0, e.Select(pos, positive_grad, e.Times(negative_factor)));
  return absl::OkStatus();
}

// dx = cond ? dy : 0.
absl::Status SetPassWhere(GradContext& ctx, const std::string& cond) {
  Emit e(ctx);
  ctx.SetInputGrad(0, e.Select(cond, ctx.output_grad(0), e.Float(0.0f, "zero")));
  return absl::OkStatus();
}

// Sets the gradient of every wanted input i to share(i) summed back to the
// input's shape (share(i) is shaped like the output).
template <typename Share>
absl::Status SetEveryInput(GradContext& ctx, Share share) {
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.wants(i)) continue;
    QAT_ASSIGN_OR_RETURN(std::string g, ctx.Unbroadcast(share(i), i));
    ctx.SetInputGrad(i, g);
  }
  return absl::OkStatus();
}

// Max and Min: mask_i = (x_i == y), dx_i = dy * mask_i / sum_j mask_j.
// x_i == y is spelled Not(x_i < y) for Max and Not(x_i > y) for Min, as
// Equal takes floats only from opset 11.
absl::Status GradSelected(GradContext& ctx, const char* beaten) {
  if (ctx.num_inputs() == 1) {
    ctx.SetInputGrad(0, ctx.output_grad(0));
    return absl::OkStatus();
  }
  Emit e(ctx);
  std::vector<std::string> masks;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    const std::string lost = e(beaten, {ctx.input(i), ctx.output(0)}, "lost");
    const std::string won = e("Not", {lost}, "won");
    masks.push_back(e("Cast", {won}, "mask", {AttrInt("to", onnx::TensorProto::FLOAT)}));
  }
  const std::string share = e("Div", {ctx.output_grad(0), e("Sum", masks, "ties")}, "share");
  return SetEveryInput(ctx, [&](int i) { return e("Mul", {share, masks[i]}, "selected"); });
}

}  // namespace

absl::Status GradErf(GradContext& ctx) {
  // 2 / sqrt(pi) * exp(-x^2)
  Emit e(ctx);
  const std::string x2 = e("Mul", {ctx.input(0), ctx.input(0)}, "x2");
  const std::string exp = e("Exp", {e("Neg", {x2}, "neg")}, "exp");
  return SetTimes(ctx, e("Mul", {exp, e.Float(1.12837916709551257f, "two_over_sqrt_pi")}, "d"));
}

absl::Status GradHardSigmoid(GradContext& ctx) {
  // alpha where 0 < alpha x + beta < 1, that is where 0 < y < 1.
  Emit e(ctx);
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 0.2f);
  const std::string above = e("Greater", {ctx.output(0), e.Float(0.0f, "zero")}, "above");
  const std::string below = e("Less", {ctx.output(0), e.Float(1.0f, "one")}, "below");
  const std::string inside = e("And", {above, below}, "inside");
  ctx.SetInputGrad(0, e.Select(inside, e.Times(e.Float(alpha, "alpha")), e.Float(0.0f, "zero")));
  return absl::OkStatus();
}

absl::Status GradHardSwish(GradContext& ctx) {
  // 0 for x < -3, x / 3 + 1/2 for -3 <= x <= 3, 1 above (PyTorch's ends).
  Emit e(ctx);
  const std::string& x = ctx.input(0);
  const std::string slope =
      e("Add", {e("Div", {x, e.Float(3.0f, "three")}, "third"), e.Float(0.5f, "half")}, "d");
  const std::string upto3 = e("LessOrEqual", {x, e.Float(3.0f, "three")}, "upto3");
  const std::string mid = e.Select(upto3, e.Times(slope), ctx.output_grad(0));
  const std::string low = e("Less", {x, e.Float(-3.0f, "minus_three")}, "low");
  ctx.SetInputGrad(0, e.Select(low, e.Float(0.0f, "zero"), mid));
  return absl::OkStatus();
}

absl::Status GradPRelu(GradContext& ctx) {
  // dx = x > 0 ? dy : dy * slope;  dslope = x > 0 ? 0 : dy * x, summed
  // back over the axes the slope was broadcast along.
  if (ctx.g().opset() < 7) return ctx.Unsupported("PRelu before opset 7 (per-channel slope)");
  Emit e(ctx);
  const std::string pos = e("Greater", {ctx.input(0), e.Float(0.0f, "zero")}, "pos");
  if (ctx.wants(0)) ctx.SetInputGrad(0, e.Select(pos, ctx.output_grad(0), e.Times(ctx.input(1))));
  if (ctx.wants(1)) {
    const std::string d = e.Select(pos, e.Float(0.0f, "zero"), e.Times(ctx.input(0)));
    QAT_ASSIGN_OR_RETURN(std::string g, ctx.Unbroadcast(d, 1));
    ctx.SetInputGrad(1, g);
  }
  return absl::OkStatus();
}

absl::Status GradElu(GradContext& ctx) {
  // alpha exp(x) = y + alpha below 0.
  Emit e(ctx);
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 1.0f);
  return SetPositiveOr(ctx, ctx.output_grad(0),
                       e("Add", {ctx.output(0), e.Float(alpha, "alpha")}, "d"));
}

absl::Status GradSelu(GradContext& ctx) {
  // gamma above 0; gamma alpha exp(x) = y + gamma alpha below.
  Emit e(ctx);
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 1.67326319217681884765625f);
  const float gamma = GetAttrFloat(ctx.node(), "gamma", 1.05070102214813232421875f);
  return SetPositiveOr(ctx, e.Times(e.Float(gamma, "gamma")),
                       e("Add", {ctx.output(0), e.Float(gamma * alpha, "gamma_alpha")}, "d"));
}

absl::Status GradSoftplus(GradContext& ctx) {
  return SetTimes(ctx, Emit(ctx)("Sigmoid", {ctx.input(0)}, "d"));
}

absl::Status GradCelu(GradContext& ctx) {
  // exp(x / alpha) below 0.
  Emit e(ctx);
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 1.0f);
  const std::string scaled = e("Div", {ctx.input(0), e.Float(alpha, "alpha")}, "scaled");
  return SetPositiveOr(ctx, ctx.output_grad(0), e("Exp", {scaled}, "d"));
}

absl::Status GradThresholdedRelu(GradContext& ctx) {
  Emit e(ctx);
  const float alpha = GetAttrFloat(ctx.node(), "alpha", 1.0f);
  return SetPassWhere(ctx, e("Greater", {ctx.input(0), e.Float(alpha, "alpha")}, "pass"));
}

absl::Status GradShrink(GradContext& ctx) {
  // 1 where |x| > lambd (the bias only shifts).
  Emit e(ctx);
  const float lambd = GetAttrFloat(ctx.node(), "lambd", 0.5f);
  const std::string abs = e("Abs", {ctx.input(0)}, "abs");
  return SetPassWhere(ctx, e("Greater", {abs, e.Float(lambd, "lambd")}, "pass"));
}

absl::Status GradReciprocal(GradContext& ctx) {
  // -1 / x^2 = -y^2
  Emit e(ctx);
  const std::string y2 = e("Mul", {ctx.output(0), ctx.output(0)}, "y2");
  ctx.SetInputGrad(0, e("Neg", {e.Times(y2)}, "x"));
  return absl::OkStatus();
}

absl::Status GradSoftsign(GradContext& ctx) {
  // 1 / (1 + |x|)^2
  Emit e(ctx);
  const std::string b = e("Add", {e("Abs", {ctx.input(0)}, "abs"), e.Float(1.0f, "one")}, "b");
  ctx.SetInputGrad(0, e("Div", {ctx.output_grad(0), e("Mul", {b, b}, "b2")}, "x"));
  return absl::OkStatus();
}

absl::Status GradSin(GradContext& ctx) {
  return SetTimes(ctx, Emit(ctx)("Cos", {ctx.input(0)}, "d"));
}

absl::Status GradCos(GradContext& ctx) {
  Emit e(ctx);
  ctx.SetInputGrad(0, e("Neg", {e.Times(e("Sin", {ctx.input(0)}, "d"))}, "x"));
  return absl::OkStatus();
}

absl::Status GradMax(GradContext& ctx) { return GradSelected(ctx, "Less"); }
absl::Status GradMin(GradContext& ctx) { return GradSelected(ctx, "Greater"); }

absl::Status GradSum(GradContext& ctx) {
  return SetEveryInput(ctx, [&](int) { return ctx.output_grad(0); });
}

absl::Status GradMean(GradContext& ctx) {
  Emit e(ctx);
  const std::string share =
      e("Div", {ctx.output_grad(0), e.Float(static_cast<float>(ctx.num_inputs()), "n")}, "share");
  return SetEveryInput(ctx, [&](int) { return share; });
}

}  // namespace training
}  // namespace qat
