// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceProd.
//
// The axes are an input since opset 13 for ReduceSum and since opset 18 for
// the others, an attribute before.  Empty axes reduce everything, unless
// noop_with_empty_axes is set.  The sum runs in input order on one thread,
// so it is deterministic.
#include <limits>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class Reduction { kSum, kMean, kMax, kProd };

absl::StatusOr<Kernel> MakeReduce(const NodeView& node, Reduction kind,
                                  int64_t axes_input_since) {
  const bool from_attr = node.opset() < axes_input_since;
  const std::vector<int64_t> axes_attr = node.GetInts("axes");
  const bool keep_dims = node.GetInt("keepdims", 1) != 0;
  const bool noop_empty = node.GetInt("noop_with_empty_axes", 0) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> axes = axes_attr;
    if (!from_attr) {
      axes.clear();
      if (ctx.has_input(1)) {
        QAT_ASSIGN_OR_RETURN(axes, ReadInts(ctx.input(1), "axes"));
      }
    }
    if (axes.empty() && noop_empty) {
      ctx.output(0) = x;
      return absl::OkStatus();
    }
    std::vector<bool> reduced(x.rank(), axes.empty());
    for (int64_t a : axes) {
      QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(a, x.rank()));
      reduced[axis] = true;
    }
    std::vector<int64_t> kept_shape, out_shape;
    int64_t count = 1;
    for (int64_t d = 0; d < x.rank(); ++d) {
      kept_shape.push_back(reduced[d] ? 1 : x.dim(d));
      if (!reduced[d] || keep_dims) out_shape.push_back(kept_shape.back());
      if (reduced[d]) count *= x.dim(d);
    }
    const std::vector<int64_t> out_strides = BroadcastStrides(kept_shape, x.shape());
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), out_shape);
      T* po = out.data<T>();
      const T init = kind == Reduction::kMax
                         ? (std::numeric_limits<T>::has_infinity
                                ? -std::numeric_limits<T>::infinity()
                                : std::numeric_limits<T>::lowest())
                         : T(kind == Reduction::kProd ? 1 : 0);
      std::fill(po, po + out.num_elements(), init);
      const T* px = x.data<T>();
      ForEachBroadcast<1>(nullptr, x.shape(), {out_strides},
                          [&](int64_t i, const std::array<int64_t, 1>& o) {
                            T& acc = po[o[0]];
                            if (kind == Reduction::kMax) {
                              // NaN wins, as in numpy.
                              if (px[i] > acc || px[i] != px[i]) acc = px[i];
                            } else if (kind == Reduction::kProd) {
                              acc = static_cast<T>(acc * px[i]);
                            } else {
                              acc = static_cast<T>(acc + px[i]);
                            }
                          });
      if (kind == Reduction::kMean) {
        for (int64_t i = 0; i < out.num_elements(); ++i) {
          // The mean of nothing is NaN (0 for integers).
          po[i] = count == 0 ? (std::numeric_limits<T>::has_quiet_NaN
                                    ? std::numeric_limits<T>::quiet_NaN()
                                    : T(0))
                             : static_cast<T>(po[i] / static_cast<T>(count));
        }
      }
      return absl::OkStatus();
    });
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeReduceSum(const NodeView& node) {
  return MakeReduce(node, Reduction::kSum, 13);
}
absl::StatusOr<Kernel> MakeReduceMean(const NodeView& node) {
  return MakeReduce(node, Reduction::kMean, 18);
}
absl::StatusOr<Kernel> MakeReduceMax(const NodeView& node) {
  return MakeReduce(node, Reduction::kMax, 18);
}
absl::StatusOr<Kernel> MakeReduceProd(const NodeView& node) {
  return MakeReduce(node, Reduction::kProd, 18);
}

}  // namespace exec
}  // namespace qat
