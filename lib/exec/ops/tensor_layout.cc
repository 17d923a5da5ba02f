// Tensor layout and generated tensors: Size, ConstantOfShape, Range,
// EyeLike, Tile, Pad, DepthToSpace, SpaceToDepth.
//
// ConstantOfShape, Range, Tile, Pad, EyeLike (and OneHot, in indexing.cc)
// take their output sizes from tensor values, so each checks the size with
// CheckComputedShape (op_util.h) before anything is allocated: a negative
// or absurd size is InvalidArgument.  Pad takes pads and value as
// attributes before opset 11 and as inputs since (with axes from opset 18);
// its modes are constant, reflect (numpy's, repeating for wide pads) and
// edge, and negative pads crop.  Tile, DepthToSpace and SpaceToDepth are
// strided copies of a reshaped view (StridedCopy).
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <type_traits>

#include "core/onnx_tensor.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// out = the view of x as `view` (x's elements in a new shape), transposed by
// `perm`, then given `shape`.
void PermutedCopy(ThreadPool* pool, const Tensor& x, const std::vector<int64_t>& view,
                  const std::vector<int64_t>& perm, std::vector<int64_t> shape, Tensor& out) {
  const std::vector<int64_t> view_strides = ContiguousStrides(view);
  std::vector<int64_t> permuted, strides;
  for (int64_t p : perm) {
    permuted.push_back(view[p]);
    strides.push_back(view_strides[p]);
  }
  out.Resize(x.dtype(), permuted);
  StridedCopy(pool, x, 0, strides, out);
  out.Reshape(std::move(shape));
}

// The blocksize attribute of DepthToSpace and SpaceToDepth.
absl::StatusOr<int64_t> BlockSize(const NodeView& node) {
  const int64_t b = node.GetInt("blocksize", 0);
  if (b < 1 || b > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("blocksize ", b, " must be positive"));
  }
  return b;
}

absl::Status RequireRank4(const Tensor& x) {
  if (x.rank() == 4) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("input must be [N, C, H, W], got shape ", ShapeToString(x.shape())));
}

enum class PadMode { kConstant, kReflect, kEdge };

absl::StatusOr<PadMode> ParsePadMode(const std::string& mode) {
  if (mode == "constant") return PadMode::kConstant;
  if (mode == "reflect") return PadMode::kReflect;
  if (mode == "edge") return PadMode::kEdge;
  return absl::InvalidArgumentError(absl::StrCat("unknown Pad mode '", mode, "'"));
}

// For one axis of size n padded by `begin` and `end` (negative: cropped),
// the input position each output position reads, or -1 for the constant.
absl::StatusOr<std::vector<int64_t>> PadSources(PadMode mode, int64_t n, int64_t begin,
                                                int64_t end, int64_t axis) {
  const int64_t out = n + begin + end;
  if (out < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pads ", begin, " and ", end, " crop more than axis ", axis, " of size ", n));
  }
  if (mode != PadMode::kConstant && n == 0 && out > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot reflect or extend the empty axis ", axis));
  }
  std::vector<int64_t> sources(static_cast<size_t>(out));
  const int64_t period = 2 * (n - 1);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t s = o - begin;
    if (s >= 0 && s < n) {
      sources[o] = s;
    } else if (mode == PadMode::kConstant) {
      sources[o] = -1;
    } else if (mode == PadMode::kEdge || n == 1) {
      sources[o] = std::clamp<int64_t>(s, 0, n - 1);
    } else {  // reflect, periodic beyond one reflection as numpy's
      const int64_t m = ((s % period) + period) % period;
      sources[o] = m < n ? m : period - m;
    }
  }
  return sources;
}

}  // namespace

absl::StatusOr<Kernel> MakeSize(const NodeView& node) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    ctx.output(0) = Tensor::Scalar<int64_t>(ctx.input(0).num_elements());
    return absl::OkStatus();
  });
}

// The value is parsed once, here.
absl::StatusOr<Kernel> MakeConstantOfShape(const NodeView& node) {
  Tensor value = Tensor::Scalar(0.0f);
  if (const auto* attr = node.Find("value")) {
    QAT_ASSIGN_OR_RETURN(value, TensorFromProto(attr->t()));
    if (value.num_elements() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "value must hold one element, got shape ", ShapeToString(value.shape())));
    }
  }
  return Kernel([value = std::move(value)](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, ReadInts(ctx.input(0), "shape"));
    QAT_RETURN_IF_ERROR(CheckComputedShape(value.dtype(), shape, "ConstantOfShape's shape"));
    Tensor& out = ctx.output(0);
    out.Resize(value.dtype(), shape);
    return VisitAll(value.dtype(), [&](auto tag) {
      using T = decltype(tag);
      std::fill(out.data<T>(), out.data<T>() + out.num_elements(), value.data<T>()[0]);
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeRange(const NodeView& node) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& start_t = ctx.input(0);
    for (int i = 1; i < 3; ++i) QAT_RETURN_IF_ERROR(RequireSameType(start_t, ctx.input(i)));
    for (int i = 0; i < 3; ++i) {
      if (ctx.input(i).num_elements() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "start, limit and delta must be scalars, got shape ",
            ShapeToString(ctx.input(i).shape())));
      }
    }
    return VisitNumeric(start_t.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      const T start = ctx.input(0).data<T>()[0];
      const T limit = ctx.input(1).data<T>()[0];
      const T delta = ctx.input(2).data<T>()[0];
      if (delta == T(0)) return absl::InvalidArgumentError("Range's delta is 0");
      // ceil((limit - start) / delta), in double so that integer limits
      // far apart cannot overflow; NaN and infinities are refused.
      const double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) /
                                     static_cast<double>(delta));
      if (std::isnan(count) || count > 0x1p62) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Range(", start, ", ", limit, ", ", delta, ") has no finite length"));
      }
      const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
      QAT_RETURN_IF_ERROR(CheckComputedShape(start_t.dtype(), {n}, "Range's output"));
      Tensor& out = ctx.output(0);
      out.Resize(start_t.dtype(), {n});
      // Accumulated, as ONNX's definition of Range (a loop adding delta).
      T value = start;
      T* po = out.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        po[i] = value;
        value = static_cast<T>(value + delta);
      }
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeEyeLike(const NodeView& node) {
  const bool has_dtype = node.HasAttr("dtype");
  const int64_t dtype = node.GetInt("dtype", 0);
  if (has_dtype && !IsSupportedDataType(static_cast<int32_t>(dtype))) {
    return absl::UnimplementedError(absl::StrCat("EyeLike to ONNX data type ", dtype,
                                                 " is not supported"));
  }
  const int64_t k = node.GetInt("k", 0);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (x.rank() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("input must be 2-D, got shape ", ShapeToString(x.shape())));
    }
    const DataType type = has_dtype ? static_cast<DataType>(dtype) : x.dtype();
    QAT_RETURN_IF_ERROR(CheckComputedShape(type, x.shape(), "EyeLike's output"));
    Tensor& out = ctx.output(0);
    out.Resize(type, x.shape());
    return VisitAll(type, [&](auto tag) {
      using T = decltype(tag);
      T* po = out.data<T>();
      const int64_t rows = x.dim(0), cols = x.dim(1);
      std::fill(po, po + out.num_elements(), T(0));
      // Row i has its one at column i + k, when that column exists (k
      // compared before it is negated, so that any int64 k is safe).
      const int64_t first = k >= 0 ? 0 : k <= -rows ? rows : -k;
      for (int64_t i = first; i < rows && k < cols - i; ++i) po[i * cols + i + k] = T(1);
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeTile(const NodeView& node) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> repeats, ReadInts(ctx.input(1), "repeats"));
    if (static_cast<int64_t>(repeats.size()) != x.rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "repeats has ", repeats.size(), " values for an input of rank ", x.rank()));
    }
    // The output as a view [r0, d0, r1, d1, ...] that reads x with stride 0
    // along every repeat.
    std::vector<int64_t> view, shape, strides;
    const std::vector<int64_t> x_strides = ContiguousStrides(x.shape());
    for (int64_t d = 0; d < x.rank(); ++d) {
      if (repeats[d] < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "repeats ", ShapeToString(repeats), " has a negative value"));
      }
      view.insert(view.end(), {repeats[d], x.dim(d)});
      strides.insert(strides.end(), {0, x_strides[d]});
    }
    // The view's non-zero dimensions must have a product that fits, so each
    // dimension of the result does too.
    QAT_RETURN_IF_ERROR(CheckComputedShape(x.dtype(), view, "Tile's output"));
    for (int64_t d = 0; d < x.rank(); ++d) shape.push_back(x.dim(d) * repeats[d]);
    Tensor& out = ctx.output(0);
    out.Resize(x.dtype(), view);
    StridedCopy(ctx.pool, x, 0, strides, out);
    out.Reshape(std::move(shape));
    return absl::OkStatus();
  });
}

// Constant padding that only grows (a Slice's gradient puts g between
// zeros this way): the value everywhere, then each of x's rows copied to
// its place, as the general path would place them one by one.
template <typename T>
void PadGrowing(const Tensor& x, const std::vector<int64_t>& begin,
                const std::vector<int64_t>& shape, T value, T* po) {
  const int64_t rank = x.rank();
  std::fill(po, po + Product(shape, 0, rank), value);
  const int64_t row = x.dim(rank - 1);
  if (row == 0 || x.num_elements() == 0) return;
  const std::vector<int64_t> out_strides = ContiguousStrides(shape);
  std::vector<int64_t> index(static_cast<size_t>(rank - 1), 0);
  const T* px = x.data<T>();
  for (int64_t r = 0, rows = x.num_elements() / row; r < rows; ++r) {
    int64_t offset = begin[rank - 1];
    for (int64_t d = 0; d + 1 < rank; ++d) offset += (index[d] + begin[d]) * out_strides[d];
    std::copy(px + r * row, px + (r + 1) * row, po + offset);
    for (int64_t d = rank - 2; d >= 0 && ++index[d] == x.dim(d); --d) index[d] = 0;
  }
}

absl::StatusOr<Kernel> MakePad(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const PadMode mode, ParsePadMode(node.GetString("mode", "constant")));
  const bool from_attr = node.opset() < 11;
  const std::vector<int64_t> pads_attr = node.GetInts("pads");
  const float value_attr = node.GetFloat("value", 0.0f);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    const int64_t rank = x.rank();
    std::vector<int64_t> pads = pads_attr;
    if (!from_attr) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
      QAT_ASSIGN_OR_RETURN(pads, ReadInts(ctx.input(1), "pads"));
    }
    // pads lists the beginnings then the ends, of every axis or of `axes`.
    std::vector<int64_t> axes(static_cast<size_t>(rank));
    std::iota(axes.begin(), axes.end(), 0);
    if (!from_attr && ctx.has_input(3)) {
      QAT_ASSIGN_OR_RETURN(axes, ReadInts(ctx.input(3), "axes"));
      for (int64_t& a : axes) {
        QAT_ASSIGN_OR_RETURN(a, NormalizeAxis(a, rank));
      }
    }
    const size_t listed = axes.size();
    if (pads.size() != 2 * listed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pads has ", pads.size(), " values, expected ", 2 * listed, " for ", listed, " axes"));
    }
    std::vector<int64_t> begin(rank, 0), end(rank, 0);
    for (size_t i = 0; i < listed; ++i) {
      begin[axes[i]] = pads[i];
      end[axes[i]] = pads[i + listed];
    }
    // Pads far beyond any size would overflow n + begin + end.
    for (int64_t p : pads) {
      if (p > (int64_t{1} << 62) || p < -(int64_t{1} << 62)) {
        return absl::InvalidArgumentError(absl::StrCat("pad ", p, " is out of range"));
      }
    }
    std::vector<int64_t> shape;
    for (int64_t d = 0; d < rank; ++d) shape.push_back(x.dim(d) + begin[d] + end[d]);
    for (int64_t d = 0; d < rank; ++d) {
      if (shape[d] < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pads ", begin[d], " and ", end[d], " crop more than axis ", d, " of size ", x.dim(d)));
      }
    }
    QAT_RETURN_IF_ERROR(CheckComputedShape(x.dtype(), shape, "Pad's output"));
    std::vector<std::vector<int64_t>> sources;
    for (int64_t d = 0; d < rank; ++d) {
      QAT_ASSIGN_OR_RETURN(auto s, PadSources(mode, x.dim(d), begin[d], end[d], d));
      sources.push_back(std::move(s));
    }
    const Tensor* value_t = !from_attr && ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (value_t != nullptr) {
      QAT_RETURN_IF_ERROR(RequireSameType(x, *value_t));
      if (value_t->num_elements() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "constant_value must be a scalar, got shape ", ShapeToString(value_t->shape())));
      }
    }
    Tensor& out = ctx.output(0);
    out.Resize(x.dtype(), shape);
    const std::vector<int64_t> in_strides = ContiguousStrides(x.shape());
    return VisitAll(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T value = value_t != nullptr ? value_t->data<T>()[0] : static_cast<T>(value_attr);
      const T* px = x.data<T>();
      T* po = out.data<T>();
      if (rank == 0) {
        po[0] = px[0];
        return absl::OkStatus();
      }
      const bool growing =
          mode == PadMode::kConstant && std::all_of(pads.begin(), pads.end(),
                                                     [](int64_t p) { return p >= 0; });
      if (growing) {
        PadGrowing(x, begin, shape, value, po);
        return absl::OkStatus();
      }
      // Axis by axis; `offset` < 0 once a position reads the constant.
      int64_t next = 0;
      std::function<void(int64_t, int64_t)> fill = [&](int64_t d, int64_t offset) {
        const std::vector<int64_t>& src = sources[d];
        for (int64_t o = 0; o < shape[d]; ++o) {
          const int64_t from = offset < 0 || src[o] < 0 ? -1 : offset + src[o] * in_strides[d];
          if (d + 1 < rank) {
            fill(d + 1, from);
          } else {
            po[next++] = from < 0 ? value : px[from];
          }
        }
      };
      fill(0, 0);
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeDepthToSpace(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const int64_t b, BlockSize(node));
  const std::string mode = node.GetString("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") {
    return absl::InvalidArgumentError(absl::StrCat("unknown DepthToSpace mode '", mode, "'"));
  }
  const bool dcr = mode == "DCR";
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_RETURN_IF_ERROR(RequireRank4(x));
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    if (c % (b * b) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "channels ", c, " are not a multiple of blocksize^2 = ", b * b));
    }
    const int64_t depth = c / (b * b);
    // DCR: x as [N, b, b, C', H, W]; CRD: as [N, C', b, b, H, W].  Both
    // become [N, C', H, b, W, b].
    const std::vector<int64_t> view = dcr ? std::vector<int64_t>{n, b, b, depth, h, w}
                                          : std::vector<int64_t>{n, depth, b, b, h, w};
    const std::vector<int64_t> perm = dcr ? std::vector<int64_t>{0, 3, 4, 1, 5, 2}
                                          : std::vector<int64_t>{0, 1, 4, 2, 5, 3};
    PermutedCopy(ctx.pool, x, view, perm, {n, depth, h * b, w * b}, ctx.output(0));
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeSpaceToDepth(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const int64_t b, BlockSize(node));
  return Kernel([b](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_RETURN_IF_ERROR(RequireRank4(x));
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    if (h % b != 0 || w % b != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spatial size ", h, "x", w, " is not a multiple of blocksize ", b));
    }
    // x as [N, C, H', b, W', b], to [N, b, b, C, H', W'].
    PermutedCopy(ctx.pool, x, {n, c, h / b, b, w / b, b}, {0, 3, 5, 1, 2, 4},
                 {n, c * b * b, h / b, w / b}, ctx.output(0));
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
