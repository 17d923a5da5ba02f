// Quantization: QuantizeLinear and DequantizeLinear (per tensor, per axis
// since opset 13, per block since opset 21; int8 and uint8, and INT4 / UINT4,
// which the executor holds one value per byte: core/int4_packing.h), and libqat's FakeQuant family on the
// kernels of qat/fake_quant.h:
//   com.microsoft FakeQuant      per tensor, ONNX Runtime's schema
//   ai.libqat FakeQuant          per channel along `axis`, or per block
//                                along it when block_size > 0
//   com.microsoft FakeQuantGrad  dX = dY * mask
#include <cmath>

#include "kernels/target_clones.h"
#include "exec/ops/op_util.h"
#include "qat/fake_quant.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// Scale (and zero point) per element: either one value, or one per index
// along `axis` of x.
struct QuantAxis {
  int64_t channels = 1;  // 1: per tensor; per block: the axis's length
  int64_t inner = 1;     // elements after the axis
  int64_t block = 0;     // > 0: blocks of this many along the axis (opset 21)
  int64_t blocks = 1;    // per block: ceil(channels / block)

  // The scale (and zero point) index of flat element i.
  int64_t Channel(int64_t i) const {
    if (block == 0) return (i / inner) % channels;
    const int64_t o = i / (channels * inner);
    const int64_t j = (i / inner) % channels;
    return (o * blocks + j / block) * inner + i % inner;
  }
};

// Opset 21's blocked parameters: scale has x's shape but ceil(n / block)
// along the axis.
absl::StatusOr<QuantAxis> ResolveBlockAxis(const Tensor& x, const Tensor& scale,
                                           int64_t axis_attr, int64_t block, const char* what) {
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> want,
                       BlockedParamShape(x.shape(), axis_attr, block));
  if (scale.shape() != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has shape ", ShapeToString(scale.shape()), " but block_size ", block,
        " along axis ", axis_attr, " of ", ShapeToString(x.shape()), " needs ",
        ShapeToString(want)));
  }
  QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
  QuantAxis q;
  q.channels = x.dim(axis);
  q.inner = Product(x.shape(), axis + 1, x.shape().size());
  q.block = block;
  q.blocks = want[axis];
  return q;
}

absl::StatusOr<QuantAxis> ResolveQuantAxis(const Tensor& x, const Tensor& scale,
                                           int64_t axis_attr, int64_t block,
                                           const char* what) {
  if (block != 0) return ResolveBlockAxis(x, scale, axis_attr, block, what);
  QuantAxis q;
  if (scale.rank() == 0 || (scale.rank() == 1 && scale.num_elements() == 1 && x.rank() == 0)) {
    return q;
  }
  if (scale.rank() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be a scalar or 1-D, got ", ShapeToString(scale.shape())));
  }
  QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
  if (scale.num_elements() == 1 && x.dim(axis) != 1) return q;
  if (scale.num_elements() != x.dim(axis)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", scale.num_elements(), " values but axis ", axis, " of ",
        ShapeToString(x.shape()), " has ", x.dim(axis)));
  }
  q.channels = x.dim(axis);
  q.inner = Product(x.shape(), axis + 1, x.shape().size());
  return q;
}


// The zero point's values as int32 (zeros when absent), and its type.
absl::Status ReadZeroPoint(const KernelContext& ctx, int input, int64_t count,
                           DataType* type, std::vector<int32_t>* values) {
  values->assign(static_cast<size_t>(count), 0);
  if (!ctx.has_input(input)) return absl::OkStatus();
  const Tensor& zp = ctx.input(input);
  if (zp.num_elements() != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the zero point has ", zp.num_elements(), " values, the scale ", count));
  }
  *type = zp.dtype();
  return VisitQuantized(zp.dtype(), [&](auto tag) {
    using Q = decltype(tag);
    for (int64_t i = 0; i < count; ++i) (*values)[i] = zp.data<Q>()[i];
    return absl::OkStatus();
  });
}

// QuantizeLinear of one value: divide (not multiply by the reciprocal),
// round half to even, add the zero point, saturate.  NaN becomes 0 (it has
// no integer; an explicit rule keeps every clone and CPU alike).
template <typename Q>
QAT_ALWAYS_INLINE Q QuantizeValue(float x, float scale, float zero_point) {
  constexpr float lo = std::numeric_limits<Q>::min(), hi = std::numeric_limits<Q>::max();
  float v = std::nearbyint(x / scale) + zero_point;
  v = v == v ? v : 0.0f;
  return static_cast<Q>(v < lo ? lo : (v > hi ? hi : v));
}

// Per-tensor QuantizeLinear and DequantizeLinear of floats, cloned per
// instruction set (the rounding vectorizes from SSE4.1 on).  Division,
// rounding in the default mode and the integer conversions are exact or
// correctly rounded, so every clone gives the same bits.
template <typename Q>
QAT_ALWAYS_INLINE void QuantizeRun(int64_t n, const float* __restrict x, float scale,
                                   float zero_point, Q* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = QuantizeValue<Q>(x[i], scale, zero_point);
}
QAT_TARGET_CLONES void QuantizeToUInt8(int64_t n, const float* x, float scale, float zp,
                                       uint8_t* y) {
  QuantizeRun(n, x, scale, zp, y);
}
QAT_TARGET_CLONES void QuantizeToInt8(int64_t n, const float* x, float scale, float zp,
                                      int8_t* y) {
  QuantizeRun(n, x, scale, zp, y);
}
template <typename Q>
QAT_ALWAYS_INLINE void DequantizeRun(int64_t n, const Q* __restrict x, int32_t zero_point,
                                     float scale, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zero_point) * scale;
  }
}
QAT_TARGET_CLONES void DequantizeUInt8(int64_t n, const uint8_t* x, int32_t zp, float scale,
                                       float* y) {
  DequantizeRun(n, x, zp, scale, y);
}
QAT_TARGET_CLONES void DequantizeInt8(int64_t n, const int8_t* x, int32_t zp, float scale,
                                      float* y) {
  DequantizeRun(n, x, zp, scale, y);
}

// What QuantizeLinear and DequantizeLinear share: x, the scale (float32) and
// the zero point, resolved per tensor or per axis.
struct QuantArgs {
  QuantAxis axis;
  const float* scales = nullptr;
  std::vector<int32_t> zero_points;
  DataType zero_point_type = DataType::kUndefined;  // kUndefined when absent
};

absl::StatusOr<QuantArgs> ReadQuantArgs(const KernelContext& ctx, int64_t axis,
                                        int64_t block, const char* scale_name) {
  QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  const Tensor& scale = ctx.input(1);
  QAT_RETURN_IF_ERROR(RequireType(scale, DataType::kFloat32, scale_name));
  QuantArgs args;
  QAT_ASSIGN_OR_RETURN(args.axis,
                       ResolveQuantAxis(ctx.input(0), scale, axis, block, scale_name));
  args.scales = scale.data<float>();
  QAT_RETURN_IF_ERROR(ReadZeroPoint(ctx, 2, scale.num_elements(), &args.zero_point_type,
                                    &args.zero_points));
  return args;
}

}  // namespace

absl::StatusOr<Kernel> MakeQuantizeLinear(const NodeView& node) {
  const int64_t axis = node.GetInt("axis", 1);
  // block_size exists since opset 21 (0: per tensor or per axis).
  const int64_t block = node.opset() >= 21 ? node.GetInt("block_size", 0) : 0;
  if (block < 0) {
    return absl::InvalidArgumentError(absl::StrCat("block_size must be >= 0, got ", block));
  }
  return Kernel([axis, block](KernelContext& ctx) -> absl::Status {
    QAT_ASSIGN_OR_RETURN(const QuantArgs args, ReadQuantArgs(ctx, axis, block, "y_scale"));
    const Tensor& x = ctx.input(0);
    // Without a zero point the output is uint8.
    const DataType out_type = args.zero_point_type == DataType::kUndefined
                                  ? DataType::kUInt8
                                  : args.zero_point_type;
    return VisitQuantized(out_type, [&](auto qtag) {
      using Q = decltype(qtag);
      return VisitNumeric(x.dtype(), [&](auto xtag) -> absl::Status {
        using X = decltype(xtag);
        if (!std::is_same_v<X, float> && !std::is_same_v<X, int32_t>) {
          return UnsupportedType("QuantizeLinear's input", x.dtype());
        }
        Tensor& y = ctx.output(0);
        y.Resize(out_type, x.shape());
        const X* px = x.data<X>();
        Q* py = y.data<Q>();
        if constexpr (std::is_same_v<X, float> && sizeof(Q) == 1) {
          if (args.zero_points.size() == 1) {
            const float scale = args.scales[0], zp = static_cast<float>(args.zero_points[0]);
            ForEachChunk(ctx.pool, x.num_elements(), [&](int64_t begin, int64_t count) {
              if constexpr (std::is_same_v<Q, uint8_t>) {
                QuantizeToUInt8(count, px + begin, scale, zp, py + begin);
              } else {
                QuantizeToInt8(count, px + begin, scale, zp, py + begin);
              }
            });
            return absl::OkStatus();
          }
        }
        ForEachIndex(ctx.pool, x.num_elements(), [&](int64_t i) {
          const int64_t c = args.axis.Channel(i);
          py[i] = QuantizeValue<Q>(static_cast<float>(px[i]), args.scales[c],
                                   static_cast<float>(args.zero_points[c]));
        });
        return absl::OkStatus();
      });
    });
  });
}

absl::StatusOr<Kernel> MakeDequantizeLinear(const NodeView& node) {
  const int64_t axis = node.GetInt("axis", 1);
  // block_size exists since opset 21 (0: per tensor or per axis).
  const int64_t block = node.opset() >= 21 ? node.GetInt("block_size", 0) : 0;
  if (block < 0) {
    return absl::InvalidArgumentError(absl::StrCat("block_size must be >= 0, got ", block));
  }
  return Kernel([axis, block](KernelContext& ctx) -> absl::Status {
    QAT_ASSIGN_OR_RETURN(const QuantArgs args, ReadQuantArgs(ctx, axis, block, "x_scale"));
    const Tensor& x = ctx.input(0);
    if (args.zero_point_type != DataType::kUndefined && args.zero_point_type != x.dtype()) {
      return absl::InvalidArgumentError("x and x_zero_point have different types");
    }
    auto body = [&](auto tag) {
      using Q = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(DataType::kFloat32, x.shape());
      const Q* px = x.data<Q>();
      float* py = y.data<float>();
      if constexpr (sizeof(Q) == 1) {
        if (args.zero_points.size() == 1) {
          ForEachChunk(ctx.pool, x.num_elements(), [&](int64_t begin, int64_t count) {
            if constexpr (std::is_same_v<Q, uint8_t>) {
              DequantizeUInt8(count, px + begin, args.zero_points[0], args.scales[0], py + begin);
            } else {
              DequantizeInt8(count, px + begin, args.zero_points[0], args.scales[0], py + begin);
            }
          });
          return absl::OkStatus();
        }
      }
      ForEachIndex(ctx.pool, x.num_elements(), [&](int64_t i) {
        const int64_t c = args.axis.Channel(i);
        py[i] = static_cast<float>(static_cast<int32_t>(px[i]) - args.zero_points[c]) *
                args.scales[c];
      });
      return absl::OkStatus();
    };
    if (x.dtype() == DataType::kInt32) return body(int32_t{});
    return VisitQuantized(x.dtype(), body);
  });
}

namespace {

// quant_min and quant_max, with ONNX Runtime's defaults (uint8's range).
QuantRange RangeFromNode(const NodeView& node) {
  return {static_cast<int32_t>(node.GetInt("quant_min", 0)),
          static_cast<int32_t>(node.GetInt("quant_max", 255))};
}

absl::Status RequireFloatTensors(const KernelContext& ctx, int count) {
  for (int i = 0; i < count; ++i) {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, i));
    QAT_RETURN_IF_ERROR(RequireType(ctx.input(i), DataType::kFloat32, "FakeQuant's inputs"));
  }
  return absl::OkStatus();
}

// Resizes Y (and the mask when asked for) to X's shape; returns the mask span.
absl::Span<bool> PrepareFakeQuantOutputs(KernelContext& ctx, const Tensor& x) {
  ctx.output(0).Resize(DataType::kFloat32, x.shape());
  if (!ctx.has_output(1)) return {};
  ctx.output(1).Resize(DataType::kBool, x.shape());
  return ctx.output(1).values<bool>();
}

// Per-block parameters after checking that the scale and zero point have
// the shape opset 21 defines for X, axis and block_size.
absl::StatusOr<BlockFakeQuantParams> ReadBlockParams(const Tensor& x, const Tensor& scale,
                                                     const Tensor& zp, int64_t axis,
                                                     int64_t block_size, QuantRange range) {
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> want,
                       BlockedParamShape(x.shape(), axis, block_size));
  for (const Tensor* t : {&scale, &zp}) {
    if (t->shape() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block-wise FakeQuant of X ", ShapeToString(x.shape()), " with axis ", axis,
          " and block_size ", block_size, " needs ", t == &scale ? "scale" : "zero_point",
          " of shape ", ShapeToString(want), ", got ", ShapeToString(t->shape())));
    }
  }
  return BlockFakeQuantParams{scale.values<float>(), zp.values<float>(), axis, block_size,
                              range};
}

}  // namespace

absl::StatusOr<Kernel> MakeFakeQuantPerTensor(const NodeView& node) {
  const QuantRange range = RangeFromNode(node);
  return Kernel([range](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireFloatTensors(ctx, 3));
    FakeQuantParams params;
    QAT_ASSIGN_OR_RETURN(const double scale, ReadScalar(ctx.input(1), "scale"));
    QAT_ASSIGN_OR_RETURN(const double zero_point, ReadScalar(ctx.input(2), "zero_point"));
    params.scale = static_cast<float>(scale);
    params.zero_point = static_cast<float>(zero_point);
    params.range = range;
    const Tensor& x = ctx.input(0);
    absl::Span<bool> mask = PrepareFakeQuantOutputs(ctx, x);
    return FakeQuantPerTensor(x.values<float>(), ctx.output(0).values<float>(), mask,
                              params, ctx.pool);
  });
}

absl::StatusOr<Kernel> MakeFakeQuantPerChannel(const NodeView& node) {
  const QuantRange range = RangeFromNode(node);
  const int64_t axis = node.GetInt("axis", 0);
  const int64_t block_size = node.GetInt("block_size", 0);
  return Kernel([range, axis, block_size](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireFloatTensors(ctx, 3));
    const Tensor& x = ctx.input(0);
    if (block_size != 0) {
      QAT_ASSIGN_OR_RETURN(const BlockFakeQuantParams params,
                           ReadBlockParams(x, ctx.input(1), ctx.input(2), axis, block_size,
                                           range));
      absl::Span<bool> mask = PrepareFakeQuantOutputs(ctx, x);
      return FakeQuantPerBlock(x.shape(), x.values<float>(), ctx.output(0).values<float>(),
                               mask, params, ctx.pool);
    }
    PerChannelFakeQuantParams params;
    params.scales = ctx.input(1).values<float>();
    params.zero_points = ctx.input(2).values<float>();
    params.axis = axis;
    params.range = range;
    absl::Span<bool> mask = PrepareFakeQuantOutputs(ctx, x);
    return FakeQuantPerChannel(x.shape(), x.values<float>(), ctx.output(0).values<float>(),
                               mask, params, ctx.pool);
  });
}

absl::StatusOr<Kernel> MakeFakeQuantGrad(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireFloatTensors(ctx, 1));
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
    const Tensor& dy = ctx.input(0);
    const Tensor& mask = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireType(mask, DataType::kBool, "FakeQuantGrad's mask"));
    if (mask.shape() != dy.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dY ", ShapeToString(dy.shape()), " and mask ", ShapeToString(mask.shape()),
          " differ in shape"));
    }
    ctx.output(0).Resize(DataType::kFloat32, dy.shape());
    return FakeQuantGrad(dy.values<float>(), mask.values<bool>(),
                         ctx.output(0).values<float>(), ctx.pool);
  });
}

// ai.libqat FakeQuantLsqGrad(X, dY, scale, zero_point) -> (dX, dScale,
// dZeroPoint): the LSQ/LSQ+ backward of FakeQuant with learnable parameters
// (docs/formats.md gives its decomposition into standard ops).  A scalar
// scale means per tensor; a 1-D scale means per channel along `axis`.
absl::StatusOr<Kernel> MakeFakeQuantLsqGrad(const NodeView& node) {
  const QuantRange range = RangeFromNode(node);
  const int64_t axis = node.GetInt("axis", 0);
  const int64_t block_size = node.GetInt("block_size", 0);
  const float grad_scale = node.GetFloat("grad_scale", 1.0f);
  return Kernel([range, axis, block_size, grad_scale](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireFloatTensors(ctx, 4));
    const Tensor& x = ctx.input(0);
    const Tensor& dy = ctx.input(1);
    const Tensor& scale = ctx.input(2);
    const Tensor& zp = ctx.input(3);
    if (dy.shape() != x.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dY ", ShapeToString(dy.shape()), " does not match X ", ShapeToString(x.shape())));
    }
    ctx.output(0).Resize(DataType::kFloat32, x.shape());
    ctx.output(1).Resize(DataType::kFloat32, scale.shape());
    ctx.output(2).Resize(DataType::kFloat32, zp.shape());
    if (block_size != 0) {
      QAT_ASSIGN_OR_RETURN(const BlockFakeQuantParams params,
                           ReadBlockParams(x, scale, zp, axis, block_size, range));
      return FakeQuantLsqGradPerBlock(x.shape(), x.values<float>(), dy.values<float>(),
                                      ctx.output(0).values<float>(),
                                      ctx.output(1).values<float>(),
                                      ctx.output(2).values<float>(), params, grad_scale,
                                      ctx.pool);
    }
    if (scale.num_elements() == 1 && scale.rank() <= 1) {
      const FakeQuantParams params{scale.values<float>()[0], zp.values<float>()[0], range};
      QAT_ASSIGN_OR_RETURN(LsqGradients g,
                           FakeQuantLsqGradPerTensor(x.values<float>(), dy.values<float>(),
                                                     ctx.output(0).values<float>(), params,
                                                     grad_scale, ctx.pool));
      ctx.output(1).values<float>()[0] = g.scale;
      ctx.output(2).values<float>()[0] = g.zero_point;
      return absl::OkStatus();
    }
    PerChannelFakeQuantParams params{scale.values<float>(), zp.values<float>(), axis, range};
    return FakeQuantLsqGradPerChannel(x.shape(), x.values<float>(), dy.values<float>(),
                                      ctx.output(0).values<float>(),
                                      ctx.output(1).values<float>(),
                                      ctx.output(2).values<float>(), params, grad_scale,
                                      ctx.pool);
  });
}

}  // namespace exec
}  // namespace qat
