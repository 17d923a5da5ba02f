// Unary math, activations and variadic ops: Erf, Floor, Ceil, Reciprocal,
// the trigonometric and hyperbolic functions, Softsign, IsInf, IsNaN;
// HardSigmoid, HardSwish, PRelu, Elu, Selu, Softplus, Celu, ThresholdedRelu,
// Shrink; Max, Min, Sum, Mean (numpy broadcasting over any number of
// inputs); Mod and BitShift.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "exec/ops/op_util.h"
#include "kernels/float_math.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// A kernel whose bool output tests each float element of input 0.
template <typename Pred>
absl::StatusOr<Kernel> MakeFloatPredicate(Pred pred) {
  return Kernel([pred](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      MapUnary<T, bool>(ctx.pool, x, ctx.output(0), [&](T v) { return pred(v); });
      return absl::OkStatus();
    });
  });
}

// v converted to T, clamped to T's range first when T is an integer (a
// double outside it would make the conversion undefined).
template <typename T>
T ClampTo(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (!(v >= static_cast<double>(std::numeric_limits<T>::lowest()))) {
      return std::numeric_limits<T>::lowest();
    }
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
      return std::numeric_limits<T>::max();
    }
  }
  return static_cast<T>(v);
}

// ---- Variadic ops -----------------------------------------------------------

// Folds the inputs left to right with op, broadcasting numpy-style (opset 8
// on; the same-shape inputs of older opsets are a special case).
template <typename T, typename Op>
absl::Status FoldInputs(KernelContext& ctx, Op op) {
  const int n = ctx.num_inputs();
  Tensor& out = ctx.output(0);
  if (n == 1) {
    out = ctx.input(0);
    return absl::OkStatus();
  }
  QAT_RETURN_IF_ERROR((BroadcastBinary<T, T, T>(ctx.pool, ctx.input(0), ctx.input(1), out, op)));
  Tensor acc;
  for (int i = 2; i < n; ++i) {
    std::swap(acc, out);
    QAT_RETURN_IF_ERROR((BroadcastBinary<T, T, T>(ctx.pool, acc, ctx.input(i), out, op)));
  }
  return absl::OkStatus();
}

// A kernel over one or more inputs of one type (of the family Visit);
// finish(out, n), when given, runs on the folded result.
template <typename Visit, typename Op, typename Finish>
absl::StatusOr<Kernel> MakeVariadic(Visit visit, Op op, Finish finish) {
  return Kernel([visit, op, finish](KernelContext& ctx) -> absl::Status {
    const int n = ctx.num_inputs();
    if (n < 1) return absl::InvalidArgumentError("needs at least one input");
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, n));
    for (int i = 1; i < n; ++i) QAT_RETURN_IF_ERROR(RequireSameType(ctx.input(0), ctx.input(i)));
    return visit(ctx.input(0).dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      QAT_RETURN_IF_ERROR(FoldInputs<T>(ctx, op));
      finish(ctx.output(0).template values<T>(), n);
      return absl::OkStatus();
    });
  });
}

struct NoFinish {
  template <typename Span> void operator()(Span, int) const {}
};

// numpy's maximum and minimum: a NaN in either input gives NaN.
struct MaxFn {
  template <typename T> T operator()(T a, T b) const { return (a > b || a != a) ? a : b; }
};
struct MinFn {
  template <typename T> T operator()(T a, T b) const { return (a < b || a != a) ? a : b; }
};
struct PlusFn {
  template <typename T> T operator()(T a, T b) const { return a + b; }
};

// ---- Mod --------------------------------------------------------------------

// fmod = 1: the remainder of truncated division (C's fmod, the sign of the
// dividend).  fmod = 0: the remainder of floored division (Python's and
// numpy's mod, the sign of the divisor).  ONNX asks for fmod = 1 on floats;
// fmod = 0 on floats is taken as numpy's mod, as ONNX's reference does.
template <typename T>
T Remainder(T a, T b, bool truncated) {
  T r;
  if constexpr (std::is_floating_point_v<T>) {
    r = std::fmod(a, b);
  } else {
    // b == -1 would overflow for the most negative a; the remainder is 0.
    if (std::is_signed_v<T> && b == T(-1)) return T(0);
    r = static_cast<T>(a % b);
  }
  if constexpr (std::is_signed_v<T>) {
    if (!truncated && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
  }
  return r;
}

}  // namespace

absl::StatusOr<Kernel> MakeErf(const NodeView&) {
  // float: kernels::ErfFloat (within 1 ULP, vectorized); double: std::erf.
  return MakeUnary(FloatTypes{}, [](auto v) { return std::erf(v); }, kernels::ErfFloats);
}
absl::StatusOr<Kernel> MakeFloor(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::floor(v); });
}
absl::StatusOr<Kernel> MakeCeil(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::ceil(v); });
}
absl::StatusOr<Kernel> MakeReciprocal(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return decltype(v)(1) / v; });
}
absl::StatusOr<Kernel> MakeSin(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::sin(v); });
}
absl::StatusOr<Kernel> MakeCos(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::cos(v); });
}
absl::StatusOr<Kernel> MakeTan(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::tan(v); });
}
absl::StatusOr<Kernel> MakeAsin(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::asin(v); });
}
absl::StatusOr<Kernel> MakeAcos(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::acos(v); });
}
absl::StatusOr<Kernel> MakeAtan(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::atan(v); });
}
absl::StatusOr<Kernel> MakeSinh(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::sinh(v); });
}
absl::StatusOr<Kernel> MakeCosh(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::cosh(v); });
}
absl::StatusOr<Kernel> MakeAsinh(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::asinh(v); });
}
absl::StatusOr<Kernel> MakeAcosh(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::acosh(v); });
}
absl::StatusOr<Kernel> MakeAtanh(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::atanh(v); });
}
absl::StatusOr<Kernel> MakeSoftsign(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return v / (decltype(v)(1) + std::fabs(v)); });
}

absl::StatusOr<Kernel> MakeIsNaN(const NodeView&) {
  return MakeFloatPredicate([](auto v) { return std::isnan(v); });
}

absl::StatusOr<Kernel> MakeIsInf(const NodeView& node) {
  const bool negative = node.GetInt("detect_negative", 1) != 0;
  const bool positive = node.GetInt("detect_positive", 1) != 0;
  return MakeFloatPredicate([negative, positive](auto v) {
    return std::isinf(v) && (v > 0 ? positive : negative);
  });
}

// ---- Activations ------------------------------------------------------------

absl::StatusOr<Kernel> MakeHardSigmoid(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 0.2f);
  const float beta = node.GetFloat("beta", 0.5f);
  return MakeUnary(FloatTypes{}, [alpha, beta](auto v) {
    using T = decltype(v);
    return std::max(T(0), std::min(T(1), static_cast<T>(alpha) * v + static_cast<T>(beta)));
  });
}

// x * HardSigmoid(x) with alpha = 1/6 and beta = 0.5.
absl::StatusOr<Kernel> MakeHardSwish(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) {
    using T = decltype(v);
    return v * std::max(T(0), std::min(T(1), v / T(6) + T(0.5)));
  });
}

absl::StatusOr<Kernel> MakeElu(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 1.0f);
  return MakeUnary(FloatTypes{}, [alpha](auto v) {
    using T = decltype(v);
    return v >= 0 ? v : static_cast<T>(alpha) * std::expm1(v);
  });
}

absl::StatusOr<Kernel> MakeSelu(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 1.67326319217681884765625f);
  const float gamma = node.GetFloat("gamma", 1.05070102214813232421875f);
  return MakeUnary(FloatTypes{}, [alpha, gamma](auto v) {
    using T = decltype(v);
    return static_cast<T>(gamma) * (v > 0 ? v : static_cast<T>(alpha) * std::expm1(v));
  });
}

// log(1 + exp(x)), split by sign so that exp never overflows.
absl::StatusOr<Kernel> MakeSoftplus(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) {
    return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
  });
}

absl::StatusOr<Kernel> MakeCelu(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 1.0f);
  if (!(alpha != 0.0f)) return absl::InvalidArgumentError("Celu's alpha must not be 0");
  return MakeUnary(FloatTypes{}, [alpha](auto v) {
    using T = decltype(v);
    const T a = static_cast<T>(alpha);
    return v > 0 ? v : a * std::expm1(v / a);
  });
}

absl::StatusOr<Kernel> MakeThresholdedRelu(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 1.0f);
  return MakeUnary(FloatTypes{}, [alpha](auto v) {
    using T = decltype(v);
    return v > static_cast<T>(alpha) ? v : T(0);
  });
}

// Computed in double, then converted back (clamped for integer types).
absl::StatusOr<Kernel> MakeShrink(const NodeView& node) {
  const double bias = node.GetFloat("bias", 0.0f);
  const double lambd = node.GetFloat("lambd", 0.5f);
  return MakeUnary(NumericTypes{}, [bias, lambd](auto v) {
    using T = decltype(v);
    const double x = static_cast<double>(v);
    return ClampTo<T>(x < -lambd ? x + bias : x > lambd ? x - bias : 0.0);
  });
}

// PRelu broadcasts the slope to X's shape (unidirectionally).  Before opset
// 7, a 1-D slope of X's channel count is per channel (axis 1), as
// PyTorch's exported models use it.
absl::StatusOr<Kernel> MakePRelu(const NodeView& node) {
  const bool per_channel = node.opset() < 7;
  return Kernel([per_channel](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor* slope = &ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(x, *slope));
    Tensor channels;
    if (per_channel && slope->rank() == 1 && x.rank() >= 2 && slope->num_elements() > 1 &&
        slope->shape()[0] == x.shape()[1]) {
      channels = *slope;
      std::vector<int64_t> shape(static_cast<size_t>(x.rank() - 1), 1);
      shape[0] = slope->shape()[0];
      channels.Reshape(std::move(shape));
      slope = &channels;
    }
    QAT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, BroadcastShapes({&x.shape(), &slope->shape()}));
    if (shape != x.shape()) {
      return absl::InvalidArgumentError(absl::StrCat("PRelu's slope ", ShapeToString(slope->shape()),
                                                     " does not broadcast to X's shape ",
                                                     ShapeToString(x.shape())));
    }
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      return BroadcastBinary<T, T, T>(ctx.pool, x, *slope, ctx.output(0), [](T v, T a) {
        if constexpr (std::is_signed_v<T>) {
          if (v < 0) return static_cast<T>(a * v);
        }
        return v;
      });
    });
  });
}

// ---- Variadic ops -----------------------------------------------------------

absl::StatusOr<Kernel> MakeMax(const NodeView&) {
  return MakeVariadic(NumericTypes{}, MaxFn{}, NoFinish{});
}
absl::StatusOr<Kernel> MakeMin(const NodeView&) {
  return MakeVariadic(NumericTypes{}, MinFn{}, NoFinish{});
}
absl::StatusOr<Kernel> MakeSum(const NodeView&) {
  return MakeVariadic(FloatTypes{}, PlusFn{}, NoFinish{});
}
// The sum divided by the number of inputs, as ONNX's reference computes it.
absl::StatusOr<Kernel> MakeMean(const NodeView&) {
  return MakeVariadic(FloatTypes{}, PlusFn{}, [](auto values, int n) {
    for (auto& v : values) v /= n;
  });
}

// ---- Mod and BitShift -------------------------------------------------------

absl::StatusOr<Kernel> MakeMod(const NodeView& node) {
  const bool truncated = node.GetInt("fmod", 0) != 0;
  return Kernel([truncated](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(a, b));
    return VisitNumeric(a.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      if constexpr (std::is_integral_v<T>) {
        const auto divisors = b.values<T>();
        if (std::find(divisors.begin(), divisors.end(), T(0)) != divisors.end()) {
          return absl::InvalidArgumentError("Mod: integer division by zero");
        }
      }
      return BroadcastBinary<T, T, T>(ctx.pool, a, b, ctx.output(0), [truncated](T x, T y) {
        return Remainder(x, y, truncated);
      });
    });
  });
}

// A shift by the type's width or more gives 0.
absl::StatusOr<Kernel> MakeBitShift(const NodeView& node) {
  const std::string direction = node.GetString("direction", "");
  if (direction != "LEFT" && direction != "RIGHT") {
    return absl::InvalidArgumentError(
        absl::StrCat("BitShift's direction must be LEFT or RIGHT, got '", direction, "'"));
  }
  const bool left = direction == "LEFT";
  return Kernel([left](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor& y = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(x, y));
    // The schema's types are the unsigned integers; libqat has uint8.
    if (x.dtype() != DataType::kUInt8) return UnsupportedType("BitShift", x.dtype());
    using T = uint8_t;
    return BroadcastBinary<T, T, T>(ctx.pool, x, y, ctx.output(0), [left](T v, T s) {
      if (s >= std::numeric_limits<T>::digits) return T(0);
      return static_cast<T>(left ? v << s : v >> s);
    });
  });
}

}  // namespace exec
}  // namespace qat
