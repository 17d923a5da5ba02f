// Elementwise math and activations: Add, Sub, Mul, Div, Pow, Neg, Abs, Sqrt,
// Exp, Log, Round, Relu, LeakyRelu, Sigmoid, Tanh, Clip.
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

#include "exec/ops/conv_activation.h"
#include "exec/ops/op_util.h"
#include "kernels/float_math.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// ---- Binary arithmetic with broadcasting ----------------------------------

struct AddFn { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a + b); } };
struct SubFn { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a - b); } };
struct MulFn { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a * b); } };
struct DivFn { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a / b); } };

// Integer division by zero (or INT_MIN / -1) would trap; reject it instead.
template <typename T>
absl::Status CheckIntegerDivisor(const Tensor& b) {
  if constexpr (std::is_integral_v<T>) {
    for (T v : b.values<T>()) {
      if (v == 0) return absl::InvalidArgumentError("integer division by zero");
      if (std::is_signed_v<T> && v == T(-1)) {
        return absl::InvalidArgumentError(
            "integer division by -1 is not supported (it can overflow)");
      }
    }
  }
  return absl::OkStatus();
}

// Before opset 7 these ops broadcast only with the attribute broadcast=1,
// and then B's dimensions line up with A's from `axis` on (by default, with
// A's last dimensions).  AlignB returns B reshaped (into `scratch`) so that
// numpy broadcasting means the same; without the attribute it returns B.
struct LegacyBroadcast {
  bool enabled = false;
  bool has_axis = false;
  int64_t axis = 0;

  static LegacyBroadcast FromNode(const NodeView& node) {
    LegacyBroadcast legacy;
    legacy.enabled = node.opset() < 7 && node.GetInt("broadcast", 0) != 0;
    legacy.has_axis = node.HasAttr("axis");
    legacy.axis = node.GetInt("axis", 0);
    return legacy;
  }

  absl::StatusOr<const Tensor*> AlignB(const Tensor& a, const Tensor& b,
                                       Tensor& scratch) const {
    if (!enabled) return &b;
    const int64_t start = has_axis ? (axis < 0 ? axis + a.rank() : axis) : a.rank() - b.rank();
    if (start < 0 || start + b.rank() > a.rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "B ", ShapeToString(b.shape()), " does not fit A ", ShapeToString(a.shape()),
          " at axis ", start));
    }
    std::vector<int64_t> shape(static_cast<size_t>(start), 1);
    shape.insert(shape.end(), b.shape().begin(), b.shape().end());
    shape.resize(static_cast<size_t>(a.rank()), 1);
    scratch = b;
    scratch.Reshape(std::move(shape));
    return &scratch;
  }
};

// A kernel for a broadcasting binary op: body(ctx, a, b) with B aligned for
// the legacy broadcast of opsets before 7.
template <typename Body>
absl::StatusOr<Kernel> MakeBinary(const NodeView& node, Body body) {
  const LegacyBroadcast legacy = LegacyBroadcast::FromNode(node);
  auto scratch = std::make_shared<Tensor>();
  return Kernel([legacy, scratch, body](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& a = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const Tensor* b, legacy.AlignB(a, ctx.input(1), *scratch));
    return body(ctx, a, *b);
  });
}

template <typename Fn>
absl::StatusOr<Kernel> MakeArithmetic(const NodeView& node) {
  return MakeBinary(node, [](KernelContext& ctx, const Tensor& a,
                             const Tensor& b) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireSameType(a, b));
    return VisitNumeric(a.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      if (std::is_same_v<Fn, DivFn>) QAT_RETURN_IF_ERROR(CheckIntegerDivisor<T>(b));
      return BroadcastBinary<T, T, T>(ctx.pool, a, b, ctx.output(0), Fn{});
    });
  });
}

template <typename T>
T Sigmoid(T x) {
  // Split by sign so that exp never overflows.
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

}  // namespace

absl::StatusOr<Kernel> MakeAdd(const NodeView& node) {
  return MakeArithmetic<AddFn>(node);
}
absl::StatusOr<Kernel> MakeSub(const NodeView& node) {
  return MakeArithmetic<SubFn>(node);
}
absl::StatusOr<Kernel> MakeMul(const NodeView& node) {
  return MakeArithmetic<MulFn>(node);
}
absl::StatusOr<Kernel> MakeDiv(const NodeView& node) {
  return MakeArithmetic<DivFn>(node);
}

absl::StatusOr<Kernel> MakePow(const NodeView& node) {
  return MakeBinary(node, [](KernelContext& ctx, const Tensor& x,
                             const Tensor& y) -> absl::Status {
    return VisitNumeric(x.dtype(), [&](auto xtag) {
      using T = decltype(xtag);
      return VisitNumeric(y.dtype(), [&](auto ytag) {
        using E = decltype(ytag);
        return BroadcastBinary<T, E, T>(ctx.pool, x, y, ctx.output(0), [](T a, E b) {
          if constexpr (std::is_floating_point_v<T>) {
            // x^2 (LayerNorm's variance in PyTorch's exports) as x * x: the
            // correctly rounded square, and 20x faster than powf; x^1 (its
            // gradient's) is x, as pow gives it.
            if (b == E(2)) return static_cast<T>(a * a);
            if (b == E(1)) return a;
            return static_cast<T>(std::pow(a, static_cast<T>(b)));
          } else {
            return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
          }
        });
      });
    });
  });
}

absl::StatusOr<Kernel> MakeNeg(const NodeView&) {
  return MakeUnary(NumericTypes{}, [](auto v) { return -v; });
}
absl::StatusOr<Kernel> MakeAbs(const NodeView&) {
  return MakeUnary(NumericTypes{}, [](auto v) { return v < 0 ? -v : v; });
}
absl::StatusOr<Kernel> MakeSqrt(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::sqrt(v); });
}
absl::StatusOr<Kernel> MakeExp(const NodeView&) {
  // float: kernels::ExpFloat (within 1 ULP, vectorized); double: std::exp.
  return MakeUnary(FloatTypes{}, [](auto v) { return std::exp(v); }, kernels::ExpFloats);
}
absl::StatusOr<Kernel> MakeLog(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::log(v); });
}
// Half to even, as ONNX specifies (nearbyint in the default rounding mode).
absl::StatusOr<Kernel> MakeRound(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::nearbyint(v); });
}
absl::StatusOr<Kernel> MakeRelu(const NodeView&) {
  return MakeUnary(NumericTypes{}, [](auto v) { return ReluValue(v); });
}
absl::StatusOr<Kernel> MakeSigmoid(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return Sigmoid(v); });
}
absl::StatusOr<Kernel> MakeTanh(const NodeView&) {
  return MakeUnary(FloatTypes{}, [](auto v) { return std::tanh(v); });
}

absl::StatusOr<Kernel> MakeLeakyRelu(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 0.01f);
  return MakeUnary(FloatTypes{}, [alpha](auto v) {
    using T = decltype(v);
    return v >= 0 ? v : static_cast<T>(alpha) * v;
  });
}

// Clip took min and max as attributes before opset 11, as inputs since.
absl::StatusOr<Kernel> MakeClip(const NodeView& node) {
  const bool from_attributes = node.opset() < 11;
  const float attr_min = node.GetFloat("min", std::numeric_limits<float>::lowest());
  const float attr_max = node.GetFloat("max", std::numeric_limits<float>::max());
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    return VisitNumeric(x.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      T lo = std::numeric_limits<T>::lowest();
      T hi = std::numeric_limits<T>::max();
      if (from_attributes) {
        // Clip took only float types before opset 11.
        if (!std::is_floating_point_v<T>) return UnsupportedType("Clip before opset 11", x.dtype());
        lo = static_cast<T>(attr_min);
        hi = static_cast<T>(attr_max);
      }
      for (int i = 1; i <= 2 && !from_attributes; ++i) {
        if (!ctx.has_input(i)) continue;
        const Tensor& bound = ctx.input(i);
        QAT_RETURN_IF_ERROR(RequireSameType(x, bound));
        if (bound.num_elements() != 1) {
          return absl::InvalidArgumentError("Clip's min and max must be scalars");
        }
        (i == 1 ? lo : hi) = bound.data<T>()[0];
      }
      MapUnary<T, T>(ctx.pool, x, ctx.output(0), [lo, hi](T v) { return ClipValue(v, lo, hi); });
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
