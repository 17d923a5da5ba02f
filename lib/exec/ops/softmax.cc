// Softmax and LogSoftmax.
//
// Since opset 13 they normalize along one axis.  Before, they flattened the
// input to 2-D at `axis` (default 1) and normalized each row; both cases are
// "normalize n values spaced `inner` apart", with inner = 1 for the old form.
#include "exec/ops/op_util.h"
#include "exec/ops/softmax_lane.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

absl::StatusOr<Kernel> MakeSoftmaxKernel(const NodeView& node, bool log) {
  const bool flatten = node.opset() < 13;
  const int64_t axis_attr = node.GetInt("axis", flatten ? 1 : -1);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    // A scalar has one value along its "axis".
    const int64_t rank = std::max<int64_t>(x.rank(), 1);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, rank));
    const auto& shape = x.shape();
    const int64_t outer = Product(shape, 0, axis);
    const int64_t n = flatten ? Product(shape, axis, shape.size())
                              : (x.rank() == 0 ? 1 : shape[axis]);
    const int64_t inner = flatten ? 1 : Product(shape, axis + 1, shape.size());
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), shape);
      if (x.num_elements() == 0) return absl::OkStatus();
      const T* px = x.data<T>();
      T* py = y.data<T>();
      ForEachRow(ctx.pool, outer * inner, n, [&](int64_t lane) {
        const int64_t base = (lane / inner) * n * inner + lane % inner;
        NormalizeLane(px + base, py + base, n, inner, log);
      });
      return absl::OkStatus();
    });
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeSoftmax(const NodeView& node) {
  return MakeSoftmaxKernel(node, /*log=*/false);
}
absl::StatusOr<Kernel> MakeLogSoftmax(const NodeView& node) {
  return MakeSoftmaxKernel(node, /*log=*/true);
}

}  // namespace exec
}  // namespace qat
