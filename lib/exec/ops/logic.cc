// Comparison and logic: Equal, Less, Greater, LessOrEqual, GreaterOrEqual,
// And, Or, Xor, Not, Where.  All broadcast like numpy.
#include <algorithm>

#include "kernels/target_clones.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

template <typename Compare>
absl::StatusOr<Kernel> MakeComparison(bool allow_bool) {
  return Kernel([allow_bool](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(a, b));
    if (a.dtype() == DataType::kBool && !allow_bool) {
      return UnsupportedType("this comparison", a.dtype());
    }
    return VisitAll(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      return BroadcastBinary<T, T, bool>(ctx.pool, a, b, ctx.output(0), Compare{});
    });
  });
}

struct EqualFn { template <typename T> bool operator()(T a, T b) const { return a == b; } };
struct LessFn { template <typename T> bool operator()(T a, T b) const { return a < b; } };
struct GreaterFn { template <typename T> bool operator()(T a, T b) const { return a > b; } };
struct LessOrEqualFn { template <typename T> bool operator()(T a, T b) const { return a <= b; } };
struct GreaterOrEqualFn { template <typename T> bool operator()(T a, T b) const { return a >= b; } };

}  // namespace

absl::StatusOr<Kernel> MakeEqual(const NodeView&) { return MakeComparison<EqualFn>(true); }
absl::StatusOr<Kernel> MakeLess(const NodeView&) { return MakeComparison<LessFn>(false); }
absl::StatusOr<Kernel> MakeGreater(const NodeView&) { return MakeComparison<GreaterFn>(false); }
absl::StatusOr<Kernel> MakeLessOrEqual(const NodeView&) {
  return MakeComparison<LessOrEqualFn>(false);
}
absl::StatusOr<Kernel> MakeGreaterOrEqual(const NodeView&) {
  return MakeComparison<GreaterOrEqualFn>(false);
}

namespace {

// A broadcasting op on two bool inputs; `name` names the op in errors.
template <typename Fn>
absl::StatusOr<Kernel> MakeBoolBinary(const char* name, Fn fn) {
  return Kernel([name, fn](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    QAT_RETURN_IF_ERROR(
        RequireType(ctx.input(0), DataType::kBool, absl::StrCat(name, "'s input A").c_str()));
    QAT_RETURN_IF_ERROR(
        RequireType(ctx.input(1), DataType::kBool, absl::StrCat(name, "'s input B").c_str()));
    return BroadcastBinary<bool, bool, bool>(ctx.pool, ctx.input(0), ctx.input(1),
                                             ctx.output(0), fn);
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeAnd(const NodeView&) {
  return MakeBoolBinary("And", [](bool a, bool b) { return a && b; });
}
absl::StatusOr<Kernel> MakeOr(const NodeView&) {
  return MakeBoolBinary("Or", [](bool a, bool b) { return a || b; });
}
absl::StatusOr<Kernel> MakeXor(const NodeView&) {
  return MakeBoolBinary("Xor", [](bool a, bool b) { return a != b; });
}

absl::StatusOr<Kernel> MakeNot(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    QAT_RETURN_IF_ERROR(RequireType(ctx.input(0), DataType::kBool, "Not's input"));
    MapUnary<bool, bool>(ctx.pool, ctx.input(0), ctx.output(0), [](bool v) { return !v; });
    return absl::OkStatus();
  });
}

namespace {

// Where on floats when the condition has the output's shape and each value
// input has it too (step 1) or is one value (step 0): the STE and ReLU
// gradients' Where(mask, dY, 0).  Cloned per instruction set (a select
// vectorizes well with AVX-512 masks); the result is a copy, the same bits
// on every clone.
QAT_TARGET_CLONES void SelectFloats(int64_t n, const bool* __restrict cond_bools,
                                    const float* __restrict x, int64_t x_step,
                                    const float* __restrict y, int64_t y_step,
                                    float* __restrict out) {
  // Read as bytes: GCC does not vectorize a select on bool.  Every value is
  // read whatever the condition (a conditional load cannot become a
  // select), and unit strides are spelled out, so that each loop vectorizes.
  const unsigned char* cond = reinterpret_cast<const unsigned char*>(cond_bools);
  const float x0 = x[0], y0 = y[0];
  if (x_step == 1 && y_step == 1) {
    for (int64_t i = 0; i < n; ++i) {
      const float a = x[i], b = y[i];
      out[i] = cond[i] != 0 ? a : b;
    }
  } else if (x_step == 1) {
    for (int64_t i = 0; i < n; ++i) {
      const float a = x[i];
      out[i] = cond[i] != 0 ? a : y0;
    }
  } else if (y_step == 1) {
    for (int64_t i = 0; i < n; ++i) {
      const float b = y[i];
      out[i] = cond[i] != 0 ? x0 : b;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = cond[i] != 0 ? x0 : y0;
  }
}

}  // namespace

absl::StatusOr<Kernel> MakeWhere(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& cond = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& y = ctx.input(2);
    QAT_RETURN_IF_ERROR(RequireType(cond, DataType::kBool, "Where's condition"));
    QAT_RETURN_IF_ERROR(RequireSameType(x, y));
    auto shape = BroadcastShapes({&cond.shape(), &x.shape(), &y.shape()});
    if (!shape.ok()) return shape.status();
    const std::array<std::vector<int64_t>, 3> strides = {
        BroadcastStrides(cond.shape(), *shape), BroadcastStrides(x.shape(), *shape),
        BroadcastStrides(y.shape(), *shape)};
    const int64_t n = NumElements(*shape);
    if (x.dtype() == DataType::kFloat32 && cond.num_elements() == n &&
        (x.num_elements() == n || x.num_elements() == 1) &&
        (y.num_elements() == n || y.num_elements() == 1)) {
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), *shape);
      const int64_t x_step = x.num_elements() == n ? 1 : 0;
      const int64_t y_step = y.num_elements() == n ? 1 : 0;
      ForEachChunk(ctx.pool, n, [&](int64_t begin, int64_t count) {
        SelectFloats(count, cond.data<bool>() + begin, x.data<float>() + begin * x_step, x_step,
                     y.data<float>() + begin * y_step, y_step, out.data<float>() + begin);
      });
      return absl::OkStatus();
    }
    return VisitAll(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), *shape);
      const bool* pc = cond.data<bool>();
      const T* px = x.data<T>();
      const T* py = y.data<T>();
      T* po = out.data<T>();
      ForEachBroadcast<3>(ctx.pool, *shape, strides,
                          [&](int64_t i, const std::array<int64_t, 3>& o) {
                            po[i] = pc[o[0]] ? px[o[1]] : py[o[2]];
                          });
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
