// Shape and layout: Shape, Reshape, Flatten, Transpose, Squeeze, Unsqueeze,
// Concat, Gather, Slice.
//
// Squeeze, Unsqueeze and Slice took their axes (and starts/ends) as
// attributes before opset 13 (Slice: 10) and as inputs since; the kernels
// accept both forms, choosing by the node's opset.
#include <algorithm>
#include <cstring>
#include <set>

#include "core/checked_size.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// Normalizes and checks a list of axes against `rank`; rejects duplicates.
absl::StatusOr<std::vector<int64_t>> NormalizeAxes(const std::vector<int64_t>& axes,
                                                   int64_t rank) {
  std::vector<int64_t> result;
  for (int64_t a : axes) {
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(a, rank));
    if (std::find(result.begin(), result.end(), axis) != result.end()) {
      return absl::InvalidArgumentError(absl::StrCat("axis ", a, " is repeated"));
    }
    result.push_back(axis);
  }
  return result;
}

// Reads an optional int list input (since_opset and later) or attribute.
absl::StatusOr<std::vector<int64_t>> IntsFromInputOrAttr(
    const KernelContext& ctx, int input, bool from_attr,
    const std::vector<int64_t>& attr, const char* what) {
  if (from_attr) return attr;
  if (!ctx.has_input(input)) return std::vector<int64_t>{};
  return ReadInts(ctx.input(input), what);
}

}  // namespace

absl::StatusOr<Kernel> MakeShape(const NodeView& node) {
  const bool has_start = node.opset() >= 15 && node.HasAttr("start");
  const bool has_end = node.opset() >= 15 && node.HasAttr("end");
  const int64_t start_attr = node.GetInt("start", 0);
  const int64_t end_attr = node.GetInt("end", 0);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const auto& shape = ctx.input(0).shape();
    const int64_t rank = static_cast<int64_t>(shape.size());
    auto clamp = [rank](int64_t v) {
      if (v < 0) v += rank;
      return std::clamp<int64_t>(v, 0, rank);
    };
    const int64_t start = has_start ? clamp(start_attr) : 0;
    const int64_t end = has_end ? clamp(end_attr) : rank;
    const int64_t n = std::max<int64_t>(0, end - start);
    Tensor& out = ctx.output(0);
    out.Resize(DataType::kInt64, {n});
    std::copy(shape.begin() + start, shape.begin() + start + n, out.data<int64_t>());
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeReshape(const NodeView& node) {
  const bool allow_zero = node.opset() >= 14 && node.GetInt("allowzero", 0) != 0;
  return Kernel([allow_zero](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ReadInts(ctx.input(1), "shape"));
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allow_zero) {
        if (i >= x.shape().size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("shape ", ShapeToString(shape), " copies dimension ", i,
                           " which input of shape ", ShapeToString(x.shape()),
                           " does not have"));
        }
        shape[i] = x.shape()[i];
      }
      if (shape[i] == -1) {
        if (infer >= 0) return absl::InvalidArgumentError("shape has two -1 entries");
        infer = static_cast<int>(i);
      } else if (shape[i] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("shape ", ShapeToString(shape), " has a negative entry"));
      } else {
        // Checked: a product that wraps to the input's count would pass.
        QAT_ASSIGN_OR_RETURN(known, CheckedMul(known, shape[i], absl::StrCat(
                                                   "the element count of shape ",
                                                   ShapeToString(shape))));
      }
    }
    if (infer >= 0) shape[infer] = known == 0 ? 0 : x.num_elements() / known;
    if (NumElements(shape) != x.num_elements()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot reshape ", ShapeToString(x.shape()), " to ",
                       ShapeToString(shape)));
    }
    ForwardInput(ctx, 0, std::move(shape));
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeFlatten(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", 1);
  return Kernel([axis_attr](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    // axis may equal the rank here (everything goes to the outer dimension).
    int64_t axis = axis_attr < 0 ? axis_attr + x.rank() : axis_attr;
    if (axis < 0 || axis > x.rank()) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis ", axis_attr, " is out of range for rank ", x.rank()));
    }
    const int64_t outer = Product(x.shape(), 0, axis);
    ForwardInput(ctx, 0, {outer, Product(x.shape(), axis, x.shape().size())});
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeTranspose(const NodeView& node) {
  const std::vector<int64_t> perm_attr = node.GetInts("perm");
  return Kernel([perm_attr](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> perm = perm_attr;
    if (perm.empty()) {
      for (int64_t d = x.rank() - 1; d >= 0; --d) perm.push_back(d);
    }
    if (static_cast<int64_t>(perm.size()) != x.rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "perm has ", perm.size(), " entries for an input of rank ", x.rank()));
    }
    QAT_ASSIGN_OR_RETURN(perm, NormalizeAxes(perm, x.rank()));
    const std::vector<int64_t> in_strides = ContiguousStrides(x.shape());
    std::vector<int64_t> shape, strides;
    for (int64_t p : perm) {
      shape.push_back(x.shape()[p]);
      strides.push_back(in_strides[p]);
    }
    Tensor& out = ctx.output(0);
    out.Resize(x.dtype(), shape);
    StridedCopy(ctx.pool, x, 0, strides, out);
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeSqueeze(const NodeView& node) {
  const bool from_attr = node.opset() < 13;
  const std::vector<int64_t> axes_attr = node.GetInts("axes");
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(auto axes, IntsFromInputOrAttr(ctx, 1, from_attr, axes_attr, "axes"));
    QAT_ASSIGN_OR_RETURN(axes, NormalizeAxes(axes, x.rank()));
    std::vector<int64_t> shape;
    for (int64_t d = 0; d < x.rank(); ++d) {
      const bool listed = std::find(axes.begin(), axes.end(), d) != axes.end();
      if (listed && x.dim(d) != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot squeeze axis ", d, " of shape ", ShapeToString(x.shape())));
      }
      if (listed || (axes.empty() && x.dim(d) == 1)) continue;
      shape.push_back(x.dim(d));
    }
    ForwardInput(ctx, 0, std::move(shape));
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeUnsqueeze(const NodeView& node) {
  const bool from_attr = node.opset() < 13;
  const std::vector<int64_t> axes_attr = node.GetInts("axes");
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (!from_attr) QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
    QAT_ASSIGN_OR_RETURN(auto axes, IntsFromInputOrAttr(ctx, 1, from_attr, axes_attr, "axes"));
    const int64_t rank = x.rank() + static_cast<int64_t>(axes.size());
    QAT_ASSIGN_OR_RETURN(axes, NormalizeAxes(axes, rank));
    std::vector<int64_t> shape;
    int64_t next = 0;
    for (int64_t d = 0; d < rank; ++d) {
      const bool listed = std::find(axes.begin(), axes.end(), d) != axes.end();
      shape.push_back(listed ? 1 : x.dim(next++));
    }
    ForwardInput(ctx, 0, std::move(shape));
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeConcat(const NodeView& node) {
  if (!node.HasAttr("axis")) return absl::InvalidArgumentError("Concat needs an axis");
  const int64_t axis_attr = node.GetInt("axis", 0);
  return Kernel([axis_attr](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& first = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, first.rank()));
    std::vector<int64_t> shape = first.shape();
    shape[axis] = 0;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, i));
      const Tensor& t = ctx.input(i);
      QAT_RETURN_IF_ERROR(RequireSameType(first, t));
      bool ok = t.rank() == first.rank();
      for (int64_t d = 0; ok && d < t.rank(); ++d) {
        ok = d == axis || t.dim(d) == first.dim(d);
      }
      if (!ok) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot concatenate shapes ", ShapeToString(first.shape()), " and ",
            ShapeToString(t.shape()), " on axis ", axis));
      }
      shape[axis] += t.dim(axis);
    }
    Tensor& out = ctx.output(0);
    out.Resize(first.dtype(), shape);
    const size_t elem = DataTypeSize(first.dtype());
    const int64_t outer = Product(shape, 0, axis);
    const int64_t inner = Product(shape, axis + 1, shape.size());
    char* dst = static_cast<char*>(out.raw_data());
    const size_t out_row = static_cast<size_t>(shape[axis] * inner) * elem;
    size_t column = 0;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& t = ctx.input(i);
      const size_t row = static_cast<size_t>(t.dim(axis) * inner) * elem;
      const char* src = static_cast<const char*>(t.raw_data());
      for (int64_t o = 0; o < outer && row > 0; ++o) {
        std::memcpy(dst + o * out_row + column, src + o * row, row);
      }
      column += row;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeGather(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", 0);
  return Kernel([axis_attr](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& data = ctx.input(0);
    const Tensor& indices_t = ctx.input(1);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, data.rank()));
    QAT_ASSIGN_OR_RETURN(std::vector<int64_t> indices, ReadIndices(indices_t, "indices"));
    const int64_t n = data.dim(axis);
    QAT_RETURN_IF_ERROR(WrapIndices(axis, n, &indices));
    std::vector<int64_t> shape(data.shape().begin(), data.shape().begin() + axis);
    shape.insert(shape.end(), indices_t.shape().begin(), indices_t.shape().end());
    shape.insert(shape.end(), data.shape().begin() + axis + 1, data.shape().end());
    Tensor& out = ctx.output(0);
    out.Resize(data.dtype(), shape);
    const size_t elem = DataTypeSize(data.dtype());
    const int64_t outer = Product(data.shape(), 0, axis);
    const size_t slice = static_cast<size_t>(Product(data.shape(), axis + 1, data.shape().size())) * elem;
    const char* src = static_cast<const char*>(data.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    if (slice == 0) return absl::OkStatus();
    for (int64_t o = 0; o < outer; ++o) {
      for (size_t k = 0; k < indices.size(); ++k) {
        std::memcpy(dst, src + (o * n + indices[k]) * slice, slice);
        dst += slice;
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeSlice(const NodeView& node) {
  const bool from_attr = node.opset() < 10;
  const std::vector<int64_t> starts_attr = node.GetInts("starts");
  const std::vector<int64_t> ends_attr = node.GetInts("ends");
  const std::vector<int64_t> axes_attr = node.GetInts("axes");
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (!from_attr) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
      QAT_RETURN_IF_ERROR(RequireInput(ctx, 2));
    }
    QAT_ASSIGN_OR_RETURN(auto starts, IntsFromInputOrAttr(ctx, 1, from_attr, starts_attr, "starts"));
    QAT_ASSIGN_OR_RETURN(auto ends, IntsFromInputOrAttr(ctx, 2, from_attr, ends_attr, "ends"));
    QAT_ASSIGN_OR_RETURN(auto axes, IntsFromInputOrAttr(ctx, 3, from_attr, axes_attr, "axes"));
    std::vector<int64_t> steps;
    if (!from_attr && ctx.has_input(4)) {
      QAT_ASSIGN_OR_RETURN(steps, ReadInts(ctx.input(4), "steps"));
    }
    if (axes.empty()) {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size()) {
      return absl::InvalidArgumentError("starts, ends, axes and steps differ in length");
    }
    QAT_ASSIGN_OR_RETURN(axes, NormalizeAxes(axes, x.rank()));
    std::vector<int64_t> shape = x.shape();
    const std::vector<int64_t> in_strides = ContiguousStrides(x.shape());
    std::vector<int64_t> strides = in_strides;
    int64_t base = 0;
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = axes[i];
      const int64_t dim = x.dim(a);
      const int64_t step = steps[i];
      if (step == 0) return absl::InvalidArgumentError("Slice step cannot be 0");
      int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
      int64_t end = ends[i] < 0 ? ends[i] + dim : ends[i];
      // Huge ends (INT64_MAX) mean "to the end"; clamp as ONNX specifies.
      if (dim == 0) {
        shape[a] = 0;
      } else if (step > 0) {
        start = std::clamp<int64_t>(start, 0, dim);
        end = std::clamp<int64_t>(end, 0, dim);
        shape[a] = end > start ? (end - start + step - 1) / step : 0;
      } else {
        start = std::clamp<int64_t>(start, 0, dim - 1);
        end = std::clamp<int64_t>(end, -1, dim - 1);
        shape[a] = start > end ? (start - end - step - 1) / -step : 0;
      }
      if (shape[a] > 0) base += start * in_strides[a];
      strides[a] = in_strides[a] * step;
    }
    Tensor& out = ctx.output(0);
    out.Resize(x.dtype(), shape);
    StridedCopy(ctx.pool, x, base, strides, out);
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
