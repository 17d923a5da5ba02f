// Indexing: GatherElements, GatherND, ScatterND, Scatter, OneHot, Compress,
// NonZero, Unique, ReverseSequence.
//
// Indices may be negative (counted from the end) wherever ONNX allows it;
// an index out of range is InvalidArgument, never a read or write outside
// the tensor.  Scatter is ScatterElements' name before opset 11 and runs its
// kernel (training_ops.cc).  ScatterND applies its updates in index order on
// one thread, as ScatterElements does, so repeated indices give the same
// result on every run.  OneHot's output size comes from its depth input, so
// it is checked as a computed size (op_util.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "exec/ops/op_util.h"
#include "exec/ops/scatter.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {

absl::StatusOr<Kernel> MakeScatterElements(const NodeView& node);  // training_ops.cc

namespace {

// Reads the tuples of GatherND's and ScatterND's indices: the last dimension
// is the tuple, its k entries index data's dimensions [first, first + k).
// Negative entries wrap; each tuple becomes an element offset into one
// block of data (of the dimensions from `first` on).
absl::StatusOr<std::vector<int64_t>> TupleOffsets(const Tensor& data, const Tensor& indices_t,
                                                  int64_t first) {
  QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> indices, ReadIndices(indices_t, "indices"));
  const int64_t k = indices_t.dim(indices_t.rank() - 1);
  const std::vector<int64_t> strides = ContiguousStrides(data.shape());
  const int64_t count = Product(indices_t.shape(), 0, indices_t.rank() - 1);
  std::vector<int64_t> offsets(static_cast<size_t>(count), 0);  // k = 0: whole blocks
  for (int64_t t = 0; t < count; ++t) {
    int64_t offset = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t n = data.dim(first + j);
      int64_t i = indices[t * k + j];
      if (i < -n || i >= n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "index ", i, " is out of range for axis ", first + j, " of size ", n));
      }
      if (i < 0) i += n;
      offset += i * strides[first + j];
    }
    offsets[t] = offset;
  }
  return offsets;
}

// Compress's and Unique's view of their input: its shape and the axis, or,
// without an axis attribute, the input flat and axis 0.
struct AxisView {
  std::vector<int64_t> shape;
  int64_t axis = 0;
};

absl::StatusOr<AxisView> ViewAlongAxis(const Tensor& x, bool has_axis, int64_t axis_attr) {
  if (!has_axis) return AxisView{{x.num_elements()}, 0};
  QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
  return AxisView{x.shape(), axis};
}

// Unique's order of slices: lexicographic, with NaN after every number and
// equal to NaN (as numpy's unique collapses NaNs), so that the order is a
// strict weak one.
template <typename T>
bool ElementLess(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

}  // namespace

absl::StatusOr<Kernel> MakeGatherElements(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", 0);
  return Kernel([axis_attr](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& data = ctx.input(0);
    const Tensor& indices_t = ctx.input(1);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, data.rank()));
    QAT_RETURN_IF_ERROR(CheckElementIndexShapes(data, indices_t, axis));
    QAT_ASSIGN_OR_RETURN(std::vector<int64_t> indices, ReadIndices(indices_t, "indices"));
    QAT_RETURN_IF_ERROR(WrapIndices(axis, data.dim(axis), &indices));
    // Offsets into data of every index position, but for the axis.
    std::vector<int64_t> strides = ContiguousStrides(data.shape());
    const int64_t axis_stride = strides[axis];
    strides[axis] = 0;
    Tensor& out = ctx.output(0);
    out.Resize(data.dtype(), indices_t.shape());
    return VisitAll(data.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pd = data.data<T>();
      T* po = out.data<T>();
      ForEachBroadcast<1>(ctx.pool, indices_t.shape(), {strides},
                          [&](int64_t i, const std::array<int64_t, 1>& o) {
                            po[i] = pd[o[0] + indices[i] * axis_stride];
                          });
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeGatherND(const NodeView& node) {
  const int64_t batch_dims = node.GetInt("batch_dims", 0);
  if (batch_dims < 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch_dims ", batch_dims, " is negative"));
  }
  return Kernel([batch_dims](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& data = ctx.input(0);
    const Tensor& indices_t = ctx.input(1);
    const int64_t r = data.rank(), q = indices_t.rank(), b = batch_dims;
    if (q < 1 || b >= std::min(r, q)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data ", ShapeToString(data.shape()), " and indices ", ShapeToString(indices_t.shape()),
          " do not fit batch_dims=", b, " (both ranks must exceed it)"));
    }
    const int64_t k = indices_t.dim(q - 1);
    bool batches_match = k <= r - b;
    for (int64_t d = 0; d < b; ++d) batches_match = batches_match && indices_t.dim(d) == data.dim(d);
    if (!batches_match) {
      return absl::InvalidArgumentError(absl::StrCat(
          "indices ", ShapeToString(indices_t.shape()), " do not fit data ",
          ShapeToString(data.shape()), " with batch_dims=", b,
          " (the batch dimensions must agree, and the last dimension be at most ", r - b, ")"));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> offsets, TupleOffsets(data, indices_t, b));
    std::vector<int64_t> shape(indices_t.shape().begin(), indices_t.shape().end() - 1);
    shape.insert(shape.end(), data.shape().begin() + b + k, data.shape().end());
    Tensor& out = ctx.output(0);
    out.Resize(data.dtype(), shape);
    const size_t elem = DataTypeSize(data.dtype());
    const int64_t batches = Product(data.shape(), 0, b);
    const int64_t per_batch = batches == 0 ? 0 : static_cast<int64_t>(offsets.size()) / batches;
    const size_t slice = static_cast<size_t>(Product(data.shape(), b + k, r)) * elem;
    const size_t block = static_cast<size_t>(Product(data.shape(), b, r)) * elem;
    const char* src = static_cast<const char*>(data.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    if (slice == 0) return absl::OkStatus();
    for (int64_t n = 0; n < batches; ++n) {
      for (int64_t t = 0; t < per_batch; ++t) {
        std::memcpy(dst, src + n * block + offsets[n * per_batch + t] * elem, slice);
        dst += slice;
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeScatterND(const NodeView& node) {
  QAT_ASSIGN_OR_RETURN(const ScatterReduction reduction,
                       ParseScatterReduction(node.GetString("reduction", "none")));
  return Kernel([reduction](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& data = ctx.input(0);
    const Tensor& indices_t = ctx.input(1);
    const Tensor& updates = ctx.input(2);
    QAT_RETURN_IF_ERROR(RequireSameType(data, updates));
    const int64_t q = indices_t.rank();
    const int64_t k = q < 1 ? -1 : indices_t.dim(q - 1);
    std::vector<int64_t> want;  // updates' shape: indices[:-1] + data[k:]
    if (k >= 0 && k <= data.rank()) {
      want.assign(indices_t.shape().begin(), indices_t.shape().end() - 1);
      want.insert(want.end(), data.shape().begin() + k, data.shape().end());
    }
    if (k < 0 || k > data.rank() || updates.shape() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data ", ShapeToString(data.shape()), ", indices ", ShapeToString(indices_t.shape()),
          " and updates ", ShapeToString(updates.shape()),
          " do not fit (updates must be indices[:-1] + data[k:], k = indices[-1] <= data's rank)"));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> offsets, TupleOffsets(data, indices_t, 0));
    const int64_t slice = Product(data.shape(), k, data.rank());
    const DataType dtype = data.dtype();
    // The output starts as data: its very buffer when this node is data's
    // last reader (a gradient's zeros), so `data` is not read after this.
    ForwardInput(ctx, 0, data.shape());
    Tensor& out = ctx.output(0);
    return VisitAll(dtype, [&](auto tag) {
      using T = decltype(tag);
      T* po = out.data<T>();
      const T* pu = updates.data<T>();
      for (size_t t = 0; t < offsets.size(); ++t) {
        ScatterRun(reduction, pu + t * slice, slice, po + offsets[t]);
      }
      return absl::OkStatus();
    });
  });
}

// Scatter (opset 9 and 10) is ScatterElements without a reduction.
absl::StatusOr<Kernel> MakeScatter(const NodeView& node) { return MakeScatterElements(node); }

absl::StatusOr<Kernel> MakeOneHot(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", -1);
  return Kernel([axis_attr](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& indices_t = ctx.input(0);
    const Tensor& values = ctx.input(2);
    QAT_ASSIGN_OR_RETURN(const double depth_value, ReadScalar(ctx.input(1), "depth"));
    // Beyond 2^62 the count is refused below anyway; the bound keeps the
    // conversion to int64 defined.
    if (!(depth_value >= 1 && depth_value < 0x1p62)) {
      return absl::InvalidArgumentError(
          absl::StrCat("depth ", depth_value, " must be a positive number"));
    }
    const int64_t depth = static_cast<int64_t>(depth_value);
    if (values.num_elements() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "values must hold [off, on], got shape ", ShapeToString(values.shape())));
    }
    const int64_t rank = indices_t.rank() + 1;
    if (axis_attr < -rank || axis_attr >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("axis ", axis_attr, " is out of range for rank ", rank));
    }
    const int64_t axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
    std::vector<int64_t> shape = indices_t.shape();
    shape.insert(shape.begin() + axis, depth);
    QAT_RETURN_IF_ERROR(CheckComputedShape(values.dtype(), shape, "OneHot's output"));
    // The indices as integers; a float index is truncated, as ONNX's
    // reference casts it, and one outside [-depth, depth) stays all off.
    std::vector<int64_t> indices(static_cast<size_t>(indices_t.num_elements()));
    QAT_RETURN_IF_ERROR(VisitNumeric(indices_t.dtype(), [&](auto tag) {
      using I = decltype(tag);
      const I* pi = indices_t.data<I>();
      for (size_t i = 0; i < indices.size(); ++i) {
        const double v = static_cast<double>(pi[i]);
        indices[i] = std::fabs(v) < static_cast<double>(depth) + 1 ? static_cast<int64_t>(v)
                                                                   : depth;  // off
      }
      return absl::OkStatus();
    }));
    const int64_t outer = Product(indices_t.shape(), 0, axis);
    const int64_t inner = Product(indices_t.shape(), axis, indices_t.rank());
    Tensor& out = ctx.output(0);
    out.Resize(values.dtype(), shape);
    return VisitAll(values.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T off = values.data<T>()[0], on = values.data<T>()[1];
      T* po = out.data<T>();
      std::fill(po, po + out.num_elements(), off);
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          int64_t index = indices[o * inner + i];
          if (index < 0) index += depth;
          if (index >= 0 && index < depth) po[(o * depth + index) * inner + i] = on;
        }
      }
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeCompress(const NodeView& node) {
  const bool has_axis = node.HasAttr("axis");
  const int64_t axis_attr = node.GetInt("axis", 0);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor& condition = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireType(condition, DataType::kBool, "condition"));
    if (condition.rank() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "condition must be 1-D, got shape ", ShapeToString(condition.shape())));
    }
    QAT_ASSIGN_OR_RETURN(const AxisView view, ViewAlongAxis(x, has_axis, axis_attr));
    const std::vector<int64_t>& in_shape = view.shape;
    const int64_t axis = view.axis;
    const int64_t n = in_shape[axis];
    std::vector<int64_t> kept;
    const bool* pc = condition.data<bool>();
    for (int64_t i = 0; i < condition.num_elements(); ++i) {
      if (!pc[i]) continue;
      if (i >= n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "condition selects position ", i, " of an axis of size ", n));
      }
      kept.push_back(i);
    }
    std::vector<int64_t> shape = in_shape;
    shape[axis] = static_cast<int64_t>(kept.size());
    Tensor& out = ctx.output(0);
    out.Resize(x.dtype(), shape);
    const size_t elem = DataTypeSize(x.dtype());
    const int64_t outer = Product(in_shape, 0, axis);
    const size_t slice = static_cast<size_t>(Product(in_shape, axis + 1, in_shape.size())) * elem;
    const char* src = static_cast<const char*>(x.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    if (slice == 0) return absl::OkStatus();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i : kept) {
        std::memcpy(dst, src + (o * n + i) * slice, slice);
        dst += slice;
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeNonZero(const NodeView& node) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    // A scalar counts as one element of a 1-D tensor, as numpy takes it.
    const std::vector<int64_t> shape = x.rank() == 0 ? std::vector<int64_t>{1} : x.shape();
    const int64_t rank = static_cast<int64_t>(shape.size());
    std::vector<int64_t> found;
    QAT_RETURN_IF_ERROR(VisitAll(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      for (int64_t i = 0; i < x.num_elements(); ++i) {
        if (px[i] != T(0)) found.push_back(i);
      }
      return absl::OkStatus();
    }));
    const int64_t count = static_cast<int64_t>(found.size());
    Tensor& out = ctx.output(0);
    out.Resize(DataType::kInt64, {rank, count});
    int64_t* po = out.data<int64_t>();
    for (int64_t j = 0; j < count; ++j) {
      int64_t rem = found[j];
      for (int64_t d = rank - 1; d >= 0; --d) {
        po[d * count + j] = rem % shape[d];
        rem /= shape[d];
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeUnique(const NodeView& node) {
  const bool has_axis = node.HasAttr("axis");
  const int64_t axis_attr = node.GetInt("axis", 0);
  const bool sorted = node.GetInt("sorted", 1) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    // Slices along the axis, each `outer` runs of `inner` elements; without
    // an axis every element is a slice.
    QAT_ASSIGN_OR_RETURN(const AxisView view, ViewAlongAxis(x, has_axis, axis_attr));
    const std::vector<int64_t>& in_shape = view.shape;
    const int64_t axis = view.axis;
    const int64_t n = in_shape[axis];
    const int64_t outer = Product(in_shape, 0, axis);
    const int64_t inner = Product(in_shape, axis + 1, in_shape.size());
    return VisitAll(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      // Compares slice a with slice b: -1, 0 or 1.
      auto compare = [&](int64_t a, int64_t b) {
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t i = 0; i < inner; ++i) {
            const T va = px[(o * n + a) * inner + i], vb = px[(o * n + b) * inner + i];
            if (ElementLess(va, vb)) return -1;
            if (ElementLess(vb, va)) return 1;
          }
        }
        return 0;
      };
      // Stable: within a run of equal slices the first occurrence leads.
      std::vector<int64_t> order(static_cast<size_t>(n));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return compare(a, b) < 0; });
      std::vector<int64_t> first, counts;     // per unique slice, in sorted order
      std::vector<int64_t> group(n);          // slice -> its unique, in sorted order
      for (size_t j = 0; j < order.size(); ++j) {
        if (j == 0 || compare(order[j - 1], order[j]) != 0) {
          first.push_back(order[j]);
          counts.push_back(0);
        }
        ++counts.back();
        group[order[j]] = static_cast<int64_t>(first.size()) - 1;
      }
      const int64_t unique = static_cast<int64_t>(first.size());
      // rank[u]: where unique u (sorted order) goes in the output.
      std::vector<int64_t> rank(unique);
      std::iota(rank.begin(), rank.end(), 0);
      if (!sorted) {
        std::vector<int64_t> by_first(unique);
        std::iota(by_first.begin(), by_first.end(), 0);
        std::sort(by_first.begin(), by_first.end(),
                  [&](int64_t a, int64_t b) { return first[a] < first[b]; });
        for (int64_t p = 0; p < unique; ++p) rank[by_first[p]] = p;
      }
      std::vector<int64_t> y_shape = in_shape;
      y_shape[axis] = unique;
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), y_shape);
      Tensor& indices = ctx.output(1);
      indices.Resize(DataType::kInt64, {unique});
      Tensor& inverse = ctx.output(2);
      inverse.Resize(DataType::kInt64, {n});
      Tensor& count_out = ctx.output(3);
      count_out.Resize(DataType::kInt64, {unique});
      T* py = y.data<T>();
      for (int64_t u = 0; u < unique; ++u) {
        const int64_t p = rank[u];
        indices.data<int64_t>()[p] = first[u];
        count_out.data<int64_t>()[p] = counts[u];
        for (int64_t o = 0; o < outer; ++o) {
          std::copy(px + (o * n + first[u]) * inner, px + (o * n + first[u] + 1) * inner,
                    py + (o * unique + p) * inner);
        }
      }
      for (int64_t s = 0; s < n; ++s) inverse.data<int64_t>()[s] = rank[group[s]];
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeReverseSequence(const NodeView& node) {
  const int64_t batch_axis = node.GetInt("batch_axis", 1);
  const int64_t time_axis = node.GetInt("time_axis", 0);
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_axis ", batch_axis, " and time_axis ", time_axis, " must be 0 and 1"));
  }
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    if (x.rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input must have rank 2 or more, got shape ", ShapeToString(x.shape())));
    }
    const int64_t batch = x.dim(batch_axis), time = x.dim(time_axis);
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> lens,
                         ReadInts(ctx.input(1), "sequence_lens"));
    if (static_cast<int64_t>(lens.size()) != batch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence_lens has ", lens.size(), " values for a batch of ", batch));
    }
    for (int64_t len : lens) {
      if (len < 0 || len > time) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence length ", len, " is outside [0, ", time, "]"));
      }
    }
    Tensor& out = ctx.output(0);
    out = x;
    const size_t elem = DataTypeSize(x.dtype());
    const size_t slice = static_cast<size_t>(Product(x.shape(), 2, x.shape().size())) * elem;
    // Strides in slices of the dimensions after the first two.
    const int64_t batch_stride = batch_axis == 0 ? x.dim(1) : 1;
    const int64_t time_stride = time_axis == 0 ? x.dim(1) : 1;
    if (slice == 0) return absl::OkStatus();
    const char* src = static_cast<const char*>(x.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 0; t < lens[b]; ++t) {
        std::memcpy(dst + (b * batch_stride + t * time_stride) * slice,
                    src + (b * batch_stride + (lens[b] - 1 - t) * time_stride) * slice, slice);
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
