// Graph plumbing: Identity, Constant, Cast, CastLike.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/onnx_tensor.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {

absl::StatusOr<Kernel> MakeIdentity(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    ForwardInput(ctx, 0, ctx.input(0).shape());
    return absl::OkStatus();
  });
}

// The value is parsed once, here; each run copies it into the output buffer.
absl::StatusOr<Kernel> MakeConstant(const NodeView& node) {
  Tensor value;
  if (const auto* attr = node.Find("value")) {
    QAT_ASSIGN_OR_RETURN(value, TensorFromProto(attr->t()));
  } else if (const auto* attr = node.Find("value_float")) {
    value = Tensor::Scalar<float>(attr->f());
  } else if (const auto* attr = node.Find("value_int")) {
    value = Tensor::Scalar<int64_t>(attr->i());
  } else if (node.HasAttr("value_floats")) {
    const std::vector<float> v = node.GetFloats("value_floats");
    value = Tensor::FromValues<float>({static_cast<int64_t>(v.size())}, v);
  } else if (node.HasAttr("value_ints")) {
    const std::vector<int64_t> v = node.GetInts("value_ints");
    value = Tensor::FromValues<int64_t>({static_cast<int64_t>(v.size())}, v);
  } else {
    return absl::UnimplementedError(
        "Constant supports the attributes value, value_float, value_floats, "
        "value_int and value_ints (not sparse or string values)");
  }
  return Kernel([value = std::move(value)](KernelContext& ctx) -> absl::Status {
    ctx.output(0) = value;
    return absl::OkStatus();
  });
}

namespace {

// A float converted to an integer type: C++ leaves NaN and out-of-range
// values undefined (and ONNX leaves them unspecified), so they are pinned
// here: NaN gives 0, the rest saturate at the type's limits.
template <typename Out, typename In>
Out FloatToInteger(In v) {
  if (std::isnan(v)) return Out(0);
  if (v <= static_cast<In>(std::numeric_limits<Out>::lowest())) {
    return std::numeric_limits<Out>::lowest();
  }
  // max() may round up when converted to In (2^63 - 1 to 2^63): compare
  // with >= so that the value that rounded is caught too.
  if (v >= static_cast<In>(std::numeric_limits<Out>::max())) return std::numeric_limits<Out>::max();
  return static_cast<Out>(v);
}

// out = x converted to `to` (nonzero is true for bool).
absl::Status CastTensor(ThreadPool* pool, const Tensor& x, DataType to, Tensor& out) {
  return VisitAll(x.dtype(), [&](auto in_tag) {
    using In = decltype(in_tag);
    return VisitAll(to, [&](auto out_tag) {
      using Out = decltype(out_tag);
      MapUnary<In, Out>(pool, x, out, [](In v) {
        if constexpr (std::is_same_v<Out, bool>) {
          return v != In(0);
        } else if constexpr (std::is_floating_point_v<In> && std::is_integral_v<Out>) {
          return FloatToInteger<Out>(v);
        } else {
          return static_cast<Out>(v);
        }
      });
      return absl::OkStatus();
    });
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeCast(const NodeView& node) {
  const int64_t to = node.GetInt("to", 0);
  if (!IsSupportedDataType(static_cast<int32_t>(to))) {
    return absl::UnimplementedError(
        absl::StrCat("Cast to ONNX data type ", to, " is not supported"));
  }
  const DataType out_type = static_cast<DataType>(to);
  return Kernel([out_type](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    return CastTensor(ctx.pool, ctx.input(0), out_type, ctx.output(0));
  });
}

// Cast to the type of input 1 (whose values are not read).
absl::StatusOr<Kernel> MakeCastLike(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    return CastTensor(ctx.pool, ctx.input(0), ctx.input(1).dtype(), ctx.output(0));
  });
}

}  // namespace exec
}  // namespace qat
