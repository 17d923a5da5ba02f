// Integer and quantized ops: ConvInteger, MatMulInteger, QLinearConv,
// QLinearMatMul, DynamicQuantizeLinear.
//
// They reuse the float ops' code paths instead of repeating their loops:
// the operands, less their zero points, become int32 (MatMul, whose GEMM
// takes int32) or double (Conv; every product and sum of 8-bit values is an
// integer below 2^53, so double is exact), the existing kernel runs on them,
// and the QLinear ops requantize the exact accumulator: round half to even
// of acc * (a_scale * b_scale / y_scale), plus y_zero_point, saturated.
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "exec/ops/op_util.h"
#include "qat/quant_params.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {

absl::StatusOr<Kernel> MakeConv(const NodeView& node);
absl::StatusOr<Kernel> MakeMatMul(const NodeView& node);

namespace {

// A scale or zero point: one value, or one per index along an axis of the
// tensor it applies to (element i uses values[(i / inner) % size]).
struct AxisParam {
  std::vector<double> values{0.0};
  int64_t inner = 1;
  double at(int64_t i) const {
    return values.size() == 1 ? values[0] : values[(i / inner) % values.size()];
  }
};

// Reads input `i` as an AxisParam with 1 or `count` values (the size of the
// axis it applies to, whose elements lie `inner` apart); absent: fallback.
absl::StatusOr<AxisParam> ReadAxisParam(const KernelContext& ctx, int i, int64_t count,
                                        int64_t inner, const char* what, double fallback) {
  AxisParam p;
  p.values = {fallback};
  p.inner = inner;
  if (!ctx.has_input(i)) return p;
  const Tensor& t = ctx.input(i);
  if (t.num_elements() != 1 && (t.rank() != 1 || t.num_elements() != count)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must have 1 or ", count, " values, got shape ", ShapeToString(t.shape())));
  }
  p.values.assign(static_cast<size_t>(t.num_elements()), 0.0);
  QAT_RETURN_IF_ERROR(VisitNumeric(t.dtype(), [&](auto tag) {
    using V = decltype(tag);
    for (int64_t k = 0; k < t.num_elements(); ++k) p.values[k] = static_cast<double>(t.data<V>()[k]);
    return absl::OkStatus();
  }));
  return p;
}

// x - zero_point, as Out (int32 or double), into *out.
template <typename Out>
absl::Status Shifted(const Tensor& x, const AxisParam& zp, Tensor* out) {
  out->Resize(DataTypeOf<Out>(), x.shape());
  Out* y = out->data<Out>();
  return VisitQuantized(x.dtype(), [&](auto tag) -> absl::Status {
    using Q = decltype(tag);
    const Q* v = x.data<Q>();
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      y[i] = static_cast<Out>(v[i]) - static_cast<Out>(zp.at(i));
    }
    return absl::OkStatus();
  });
}

// Runs `kernel` on `inputs` with one output, into *out.
absl::Status RunInner(const Kernel& kernel, KernelContext& outer,
                      std::vector<const Tensor*> inputs, Tensor* out) {
  KernelContext ctx;
  ctx.pool = outer.pool;
  ctx.inputs = std::move(inputs);
  ctx.input_constant.assign(ctx.inputs.size(), false);
  ctx.outputs = {out};
  ctx.output_requested = {true};
  return kernel(ctx);
}

// y = saturate(round_half_even(acc[i] * multiplier(i)) + zero_point(i)),
// with y's type that of y_zero_point (uint8 when absent).
template <typename Acc, typename Multiplier>
absl::Status Requantize(const Tensor& acc, Multiplier&& multiplier, const KernelContext& ctx,
                        int zp_input, const AxisParam& y_zp, Tensor* y) {
  const DataType type = ctx.has_input(zp_input) ? ctx.input(zp_input).dtype() : DataType::kUInt8;
  y->Resize(type, acc.shape());
  return VisitQuantized(type, [&](auto tag) -> absl::Status {
    using Q = decltype(tag);
    constexpr double lo = std::numeric_limits<Q>::min(), hi = std::numeric_limits<Q>::max();
    const Acc* a = acc.data<Acc>();
    Q* out = y->data<Q>();
    for (int64_t i = 0; i < acc.num_elements(); ++i) {
      const double v = std::nearbyint(static_cast<double>(a[i]) * multiplier(i)) + y_zp.at(i);
      out[i] = static_cast<Q>(v < lo ? lo : (v > hi ? hi : v));
    }
    return absl::OkStatus();
  });
}

// The shifted inputs of an integer Conv: x - x_zp and w - w_zp (per output
// channel) as double.  Returns M, the number of output channels.
absl::StatusOr<int64_t> ShiftConvOperands(const KernelContext& ctx, int x_in, int x_zp_in,
                                          int w_in, int w_zp_in, Tensor* xd, Tensor* wd) {
  QAT_RETURN_IF_ERROR(RequireInput(ctx, x_in));
  QAT_RETURN_IF_ERROR(RequireInput(ctx, w_in));
  const Tensor& x = ctx.input(x_in);
  const Tensor& w = ctx.input(w_in);
  if (w.rank() < 3) return absl::InvalidArgumentError("W must have rank 3 or more");
  const int64_t m = w.dim(0);
  QAT_ASSIGN_OR_RETURN(AxisParam x_zp, ReadAxisParam(ctx, x_zp_in, 1, 1, "x_zero_point", 0));
  QAT_ASSIGN_OR_RETURN(AxisParam w_zp, ReadAxisParam(ctx, w_zp_in, m,
                                                     m > 0 ? w.num_elements() / m : 1,
                                                     "w_zero_point", 0));
  QAT_RETURN_IF_ERROR(Shifted<double>(x, x_zp, xd));
  QAT_RETURN_IF_ERROR(Shifted<double>(w, w_zp, wd));
  return m;
}

// The shifted inputs of an integer MatMul: a - a_zp (per row of A) and
// b - b_zp (per column of B) as int32.
absl::Status ShiftMatMulOperands(const KernelContext& ctx, int a_in, int a_zp_in, int b_in,
                                 int b_zp_in, Tensor* ai, Tensor* bi) {
  QAT_RETURN_IF_ERROR(RequireInput(ctx, a_in));
  QAT_RETURN_IF_ERROR(RequireInput(ctx, b_in));
  const Tensor& a = ctx.input(a_in);
  const Tensor& b = ctx.input(b_in);
  if (a.rank() == 0 || b.rank() == 0) {
    return absl::InvalidArgumentError("the matrices must have rank >= 1");
  }
  const int64_t m = a.rank() >= 2 ? a.dim(a.rank() - 2) : 1, k = a.dim(a.rank() - 1);
  const int64_t n = b.rank() >= 2 ? b.dim(b.rank() - 1) : 1;
  QAT_ASSIGN_OR_RETURN(AxisParam a_zp, ReadAxisParam(ctx, a_zp_in, m, k, "a_zero_point", 0));
  QAT_ASSIGN_OR_RETURN(AxisParam b_zp, ReadAxisParam(ctx, b_zp_in, n, 1, "b_zero_point", 0));
  QAT_RETURN_IF_ERROR(Shifted<int32_t>(a, a_zp, ai));
  return Shifted<int32_t>(b, b_zp, bi);
}

absl::Status ToInt32(const Tensor& acc, Tensor* y) {
  y->Resize(DataType::kInt32, acc.shape());
  for (int64_t i = 0; i < acc.num_elements(); ++i) {
    y->data<int32_t>()[i] = static_cast<int32_t>(acc.data<double>()[i]);
  }
  return absl::OkStatus();
}

struct Scratch {
  Tensor a, b, bias, acc;
};

}  // namespace

absl::StatusOr<Kernel> MakeConvInteger(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(Kernel conv, MakeConv(node));
  auto scratch = std::make_shared<Scratch>();
  return Kernel([conv, scratch](KernelContext& ctx) -> absl::Status {
    Scratch& s = *scratch;
    QAT_RETURN_IF_ERROR(ShiftConvOperands(ctx, 0, 2, 1, 3, &s.a, &s.b).status());
    QAT_RETURN_IF_ERROR(RunInner(conv, ctx, {&s.a, &s.b}, &s.acc));
    return ToInt32(s.acc, &ctx.output(0));
  });
}

// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
// y_zero_point, B (int32, in the accumulator's scale).
absl::StatusOr<Kernel> MakeQLinearConv(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(Kernel conv, MakeConv(node));
  auto scratch = std::make_shared<Scratch>();
  return Kernel([conv, scratch](KernelContext& ctx) -> absl::Status {
    Scratch& s = *scratch;
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 8));
    QAT_ASSIGN_OR_RETURN(const int64_t m, ShiftConvOperands(ctx, 0, 2, 3, 5, &s.a, &s.b));
    std::vector<const Tensor*> inputs = {&s.a, &s.b};
    if (ctx.has_input(8)) {
      const Tensor& bias = ctx.input(8);
      QAT_RETURN_IF_ERROR(RequireType(bias, DataType::kInt32, "B"));
      s.bias.Resize(DataType::kFloat64, bias.shape());
      for (int64_t i = 0; i < bias.num_elements(); ++i) {
        s.bias.data<double>()[i] = bias.data<int32_t>()[i];
      }
      inputs.push_back(&s.bias);
    }
    QAT_RETURN_IF_ERROR(RunInner(conv, ctx, inputs, &s.acc));
    const int64_t spatial = m > 0 ? s.acc.num_elements() / (s.acc.dim(0) * m) : 1;
    QAT_ASSIGN_OR_RETURN(AxisParam x_scale, ReadAxisParam(ctx, 1, 1, 1, "x_scale", 1));
    QAT_ASSIGN_OR_RETURN(AxisParam w_scale, ReadAxisParam(ctx, 4, m, spatial, "w_scale", 1));
    QAT_ASSIGN_OR_RETURN(AxisParam y_scale, ReadAxisParam(ctx, 6, 1, 1, "y_scale", 1));
    QAT_ASSIGN_OR_RETURN(AxisParam y_zp, ReadAxisParam(ctx, 7, 1, 1, "y_zero_point", 0));
    const double xy = x_scale.at(0) / y_scale.at(0);
    return Requantize<double>(s.acc, [&](int64_t i) { return xy * w_scale.at(i); }, ctx, 7,
                              y_zp, &ctx.output(0));
  });
}

absl::StatusOr<Kernel> MakeMatMulInteger(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(Kernel matmul, MakeMatMul(node));
  auto scratch = std::make_shared<Scratch>();
  return Kernel([matmul, scratch](KernelContext& ctx) -> absl::Status {
    Scratch& s = *scratch;
    QAT_RETURN_IF_ERROR(ShiftMatMulOperands(ctx, 0, 2, 1, 3, &s.a, &s.b));
    return RunInner(matmul, ctx, {&s.a, &s.b}, &ctx.output(0));
  });
}

// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
// y_zero_point.
absl::StatusOr<Kernel> MakeQLinearMatMul(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(Kernel matmul, MakeMatMul(node));
  auto scratch = std::make_shared<Scratch>();
  return Kernel([matmul, scratch](KernelContext& ctx) -> absl::Status {
    Scratch& s = *scratch;
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 8));
    QAT_RETURN_IF_ERROR(ShiftMatMulOperands(ctx, 0, 2, 3, 5, &s.a, &s.b));
    QAT_RETURN_IF_ERROR(RunInner(matmul, ctx, {&s.a, &s.b}, &s.acc));
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(3);
    const int64_t m = a.rank() >= 2 ? a.dim(a.rank() - 2) : 1;
    const int64_t n = b.rank() >= 2 ? b.dim(b.rank() - 1) : 1;
    // On the output, a row of A is i / n (mod m), a column of B is i mod n.
    QAT_ASSIGN_OR_RETURN(AxisParam a_scale, ReadAxisParam(ctx, 1, m, n, "a_scale", 1));
    QAT_ASSIGN_OR_RETURN(AxisParam b_scale, ReadAxisParam(ctx, 4, n, 1, "b_scale", 1));
    QAT_ASSIGN_OR_RETURN(AxisParam y_scale, ReadAxisParam(ctx, 6, 1, 1, "y_scale", 1));
    QAT_ASSIGN_OR_RETURN(AxisParam y_zp, ReadAxisParam(ctx, 7, 1, 1, "y_zero_point", 0));
    const double inv_y = 1.0 / y_scale.at(0);
    return Requantize<int32_t>(
        s.acc, [&](int64_t i) { return a_scale.at(i) * b_scale.at(i) * inv_y; }, ctx, 7, y_zp,
        &ctx.output(0));
  });
}

// y = saturate(round(x / scale) + zp) to uint8, with scale and zero point
// from the range of x widened to hold 0 (qat/quant_params.h, ONNX Runtime's
// rule, which DynamicQuantizeLinear's definition matches).
absl::StatusOr<Kernel> MakeDynamicQuantizeLinear(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_RETURN_IF_ERROR(RequireType(x, DataType::kFloat32, "x"));
    const float* v = x.data<float>();
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      if (std::isnan(v[i])) return absl::InvalidArgumentError("x holds NaN");
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    QAT_ASSIGN_OR_RETURN(QuantParams q,
                         ComputeQuantParams(lo, hi, QuantTypeRange(QuantType::kUInt8), false));
    Tensor& y = ctx.output(0);
    y.Resize(DataType::kUInt8, x.shape());
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      const float r = std::nearbyint(v[i] / q.scale) + static_cast<float>(q.zero_point);
      y.data<uint8_t>()[i] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, r)));
    }
    ctx.output(1) = Tensor::Scalar<float>(q.scale);
    ctx.output(2) = Tensor::Scalar<uint8_t>(static_cast<uint8_t>(q.zero_point));
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
