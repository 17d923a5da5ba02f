// Ops that work along one axis of a tensor: ArgMax, ArgMin, TopK, CumSum,
// Hardmax; and Trilu, which keeps a triangle of the last two axes.
//
// Each axis op sees the input as outer x n x inner: a "lane" is the n values
// spaced `inner` apart at one (outer, inner) position.  Lanes run as
// thread-pool tasks; each lane is computed in order on one thread, so the
// results never depend on the thread count.
//
// Ties and NaN: ArgMax, ArgMin and Hardmax pick the first extreme (the last
// with select_last_index), and TopK orders equal values by index, as the
// spec says; NaN counts as larger than every number (numpy's order).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// The outer x n x inner view of a shape around `axis`.
struct Lanes {
  int64_t outer = 1, n = 1, inner = 1;
  int64_t count() const { return outer * inner; }
  // The flat index of element 0 of lane `lane`.
  int64_t base(int64_t lane) const { return (lane / inner) * n * inner + lane % inner; }
};

Lanes LanesAround(const std::vector<int64_t>& shape, int64_t axis) {
  return {Product(shape, 0, axis), shape[axis], Product(shape, axis + 1, shape.size())};
}

// The one value of a scalar or one-element int64/int32 input (k, axis).
absl::StatusOr<int64_t> ReadOneInt(const Tensor& t, const char* what) {
  QAT_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInts(t, what));
  if (v.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must hold one value, got ", v.size()));
  }
  return v[0];
}

// a < b in numpy's sort order: NaN after every number.
template <typename T>
bool SortsBefore(T a, T b) {
  if (b != b) return a == a;
  return a < b;
}

// ---- ArgMax, ArgMin ---------------------------------------------------------

absl::StatusOr<Kernel> MakeArgExtreme(const NodeView& node, bool max) {
  const int64_t axis_attr = node.GetInt("axis", 0);
  const bool keep_dims = node.GetInt("keepdims", 1) != 0;
  const bool last = node.GetInt("select_last_index", 0) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
    const Lanes lanes = LanesAround(x.shape(), axis);
    if (lanes.n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot take the extreme of an empty axis ", axis));
    }
    std::vector<int64_t> out_shape = x.shape();
    if (keep_dims) {
      out_shape[axis] = 1;
    } else {
      out_shape.erase(out_shape.begin() + axis);
    }
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(DataType::kInt64, out_shape);
      const T* px = x.data<T>();
      int64_t* po = out.data<int64_t>();
      ForEachIndex(ctx.pool, lanes.count(), [&](int64_t lane) {
        const T* p = px + lanes.base(lane);
        int64_t best = 0;
        for (int64_t j = 1; j < lanes.n; ++j) {
          const T v = p[j * lanes.inner], b = p[best * lanes.inner];
          const bool better = max ? SortsBefore(b, v) : SortsBefore(v, b);
          const bool tie = !SortsBefore(v, b) && !SortsBefore(b, v);
          if (better || (last && tie)) best = j;
        }
        po[lane] = best;
      });
      return absl::OkStatus();
    });
  });
}

// ---- TopK -------------------------------------------------------------------

absl::StatusOr<Kernel> MakeTopKKernel(const NodeView& node) {
  const bool k_from_attr = node.opset() < 10;
  const int64_t k_attr = node.GetInt("k", -1);
  const int64_t axis_attr = node.GetInt("axis", -1);
  const bool largest = node.GetInt("largest", 1) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    int64_t k = k_attr;
    if (!k_from_attr) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
      QAT_ASSIGN_OR_RETURN(k, ReadOneInt(ctx.input(1), "k"));
    }
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
    const Lanes lanes = LanesAround(x.shape(), axis);
    if (k < 0 || k > lanes.n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "k = ", k, " is out of range for axis ", axis, " of size ", lanes.n));
    }
    std::vector<int64_t> out_shape = x.shape();
    out_shape[axis] = k;
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& values = ctx.output(0);
      Tensor& indices = ctx.output(1);
      values.Resize(x.dtype(), out_shape);
      indices.Resize(DataType::kInt64, out_shape);
      const T* px = x.data<T>();
      T* pv = values.data<T>();
      int64_t* pi = indices.data<int64_t>();
      ForEachIndex(ctx.pool, lanes.count(), [&](int64_t lane) {
        const T* p = px + lanes.base(lane);
        std::vector<int64_t> order(lanes.n);
        std::iota(order.begin(), order.end(), 0);
        // Strict weak order: by value (descending when largest), then by index.
        auto first = [&](int64_t a, int64_t b) {
          const T va = p[a * lanes.inner], vb = p[b * lanes.inner];
          if (largest ? SortsBefore(vb, va) : SortsBefore(va, vb)) return true;
          if (SortsBefore(va, vb) || SortsBefore(vb, va)) return false;
          return a < b;
        };
        std::partial_sort(order.begin(), order.begin() + k, order.end(), first);
        const int64_t out_base = (lane / lanes.inner) * k * lanes.inner + lane % lanes.inner;
        for (int64_t j = 0; j < k; ++j) {
          pv[out_base + j * lanes.inner] = p[order[j] * lanes.inner];
          pi[out_base + j * lanes.inner] = order[j];
        }
      });
      return absl::OkStatus();
    });
  });
}

// ---- CumSum -----------------------------------------------------------------

absl::StatusOr<Kernel> MakeCumSumKernel(const NodeView& node) {
  const bool exclusive = node.GetInt("exclusive", 0) != 0;
  const bool reverse = node.GetInt("reverse", 0) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const int64_t axis_value, ReadOneInt(ctx.input(1), "axis"));
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_value, x.rank()));
    const Lanes lanes = LanesAround(x.shape(), axis);
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), x.shape());
      const T* px = x.data<T>();
      T* po = out.data<T>();
      ForEachIndex(ctx.pool, lanes.count(), [&](int64_t lane) {
        const int64_t base = lanes.base(lane);
        T sum = T(0);
        for (int64_t s = 0; s < lanes.n; ++s) {
          const int64_t j = base + (reverse ? lanes.n - 1 - s : s) * lanes.inner;
          if (exclusive) {
            po[j] = sum;
            sum = static_cast<T>(sum + px[j]);
          } else {
            sum = static_cast<T>(sum + px[j]);
            po[j] = sum;
          }
        }
      });
      return absl::OkStatus();
    });
  });
}

// ---- Hardmax ----------------------------------------------------------------

absl::StatusOr<Kernel> MakeHardmaxKernel(const NodeView& node) {
  // Before opset 13 the input is flattened to 2-D at `axis` (default 1), and
  // each row gets one 1; since 13 each lane along `axis` (default -1) does.
  const bool flatten = node.opset() < 13;
  const int64_t axis_attr = node.GetInt("axis", flatten ? 1 : -1);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    // A scalar is one lane of one value.
    QAT_ASSIGN_OR_RETURN(const int64_t axis,
                         NormalizeAxis(axis_attr, std::max<int64_t>(x.rank(), 1)));
    const auto& shape = x.shape();
    Lanes lanes;
    if (flatten) {
      lanes = {Product(shape, 0, axis), Product(shape, axis, shape.size()), 1};
    } else if (x.rank() > 0) {
      lanes = LanesAround(shape, axis);
    }
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), shape);
      const T* px = x.data<T>();
      T* po = out.data<T>();
      std::fill(po, po + out.num_elements(), T(0));
      if (lanes.n == 0) return absl::OkStatus();
      ForEachIndex(ctx.pool, lanes.count(), [&](int64_t lane) {
        const int64_t base = lanes.base(lane);
        int64_t best = 0;
        for (int64_t j = 1; j < lanes.n; ++j) {
          if (SortsBefore(px[base + best * lanes.inner], px[base + j * lanes.inner])) best = j;
        }
        po[base + best * lanes.inner] = T(1);
      });
      return absl::OkStatus();
    });
  });
}

// ---- Trilu ------------------------------------------------------------------

absl::StatusOr<Kernel> MakeTriluKernel(const NodeView& node) {
  const bool upper = node.GetInt("upper", 1) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (x.rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Trilu needs rank >= 2, got shape ", ShapeToString(x.shape())));
    }
    int64_t k = 0;
    if (ctx.has_input(1)) {
      QAT_ASSIGN_OR_RETURN(k, ReadOneInt(ctx.input(1), "k"));
    }
    const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
    return VisitAll(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), x.shape());
      const T* px = x.data<T>();
      T* po = out.data<T>();
      ForEachIndex(ctx.pool, x.num_elements(), [&](int64_t e) {
        // Diagonal offset j - i of the element; kept on the triangle's side of k.
        const int64_t d = e % cols - (e / cols) % rows;
        const bool keep = upper ? d >= k : d <= k;
        po[e] = keep ? px[e] : T(0);
      });
      return absl::OkStatus();
    });
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeArgMax(const NodeView& node) { return MakeArgExtreme(node, true); }
absl::StatusOr<Kernel> MakeArgMin(const NodeView& node) { return MakeArgExtreme(node, false); }
absl::StatusOr<Kernel> MakeTopK(const NodeView& node) { return MakeTopKKernel(node); }
absl::StatusOr<Kernel> MakeCumSum(const NodeView& node) { return MakeCumSumKernel(node); }
absl::StatusOr<Kernel> MakeHardmax(const NodeView& node) { return MakeHardmaxKernel(node); }
absl::StatusOr<Kernel> MakeTrilu(const NodeView& node) { return MakeTriluKernel(node); }

}  // namespace exec
}  // namespace qat
