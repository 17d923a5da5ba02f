// Linear algebra: MatMul (numpy semantics, batched with broadcasting) and
// Gemm, both through Gemm() in ops/gemm.h; Det.
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "exec/ops/gemm.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

template <typename F>
absl::Status VisitMatMulTypes(DataType type, F&& f) {
  switch (type) {
    case DataType::kFloat32: return f(float{});
    case DataType::kFloat64: return f(double{});
    case DataType::kInt32: return f(int32_t{});
    case DataType::kInt64: return f(int64_t{});
    default: return UnsupportedType("MatMul and Gemm", type);
  }
}

}  // namespace

absl::StatusOr<Kernel> MakeMatMul(const NodeView&) {
  auto b_cache = std::make_shared<PackedGemmB>();  // for a constant, unbatched B
  return Kernel([b_cache](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(a, b));
    if (a.rank() == 0 || b.rank() == 0) {
      return absl::InvalidArgumentError("MatMul inputs must have rank >= 1");
    }
    // 1-D operands become a row (A) or a column (B), removed again below.
    std::vector<int64_t> sa = a.shape(), sb = b.shape();
    if (a.rank() == 1) sa.insert(sa.begin(), 1);
    if (b.rank() == 1) sb.push_back(1);
    const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
    if (sb[sb.size() - 2] != k) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot multiply shapes ", ShapeToString(a.shape()), " and ",
                       ShapeToString(b.shape())));
    }
    const std::vector<int64_t> batch_a(sa.begin(), sa.end() - 2);
    const std::vector<int64_t> batch_b(sb.begin(), sb.end() - 2);
    QAT_ASSIGN_OR_RETURN(std::vector<int64_t> batch, BroadcastShapes({&batch_a, &batch_b}));
    std::vector<int64_t> out_shape = batch;
    if (a.rank() > 1) out_shape.push_back(m);
    if (b.rank() > 1) out_shape.push_back(n);
    const std::vector<int64_t> stride_a = BroadcastStrides(batch_a, batch);
    const std::vector<int64_t> stride_b = BroadcastStrides(batch_b, batch);
    return VisitMatMulTypes(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(a.dtype(), out_shape);
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* pc = out.data<T>();
      const GemmShape shape{m, k, n, false, false};
      PackedGemmB* cache = ctx.is_constant(1) && batch_b.empty() ? b_cache.get() : nullptr;
      // Every element of C is the same chain of products over k whatever
      // the tiling (ops/gemm.h), so these three ways give the same bits.
      // One B for a whole, contiguous batch of A (a linear layer on [N, T,
      // D] activations): one product with the batch in its rows, whose
      // tiles spread over the pool instead of T rows at a time.
      const int64_t products = NumElements(batch);
      if (products > 1 && batch_b.empty() && stride_a == ContiguousStrides(batch)) {
        Gemm(ctx.pool, GemmShape{products * m, k, n, false, false}, pa, pb, pc, cache);
        return absl::OkStatus();
      }
      // Products of one tile each (attention's): one task per product.
      if (products > 1 && NumGemmTasks(shape) == 1) {
        std::vector<std::array<int64_t, 2>> offsets(products);
        ForEachBroadcast<2>(nullptr, batch, {stride_a, stride_b},
                            [&](int64_t i, const std::array<int64_t, 2>& o) { offsets[i] = o; });
        ParallelFor(ctx.pool, products, [&](int64_t i) {
          Gemm<T>(nullptr, shape, pa + offsets[i][0] * m * k, pb + offsets[i][1] * k * n,
                  pc + i * m * n);
        });
        return absl::OkStatus();
      }
      // Larger products run one after another, each spread over the pool.
      ForEachBroadcast<2>(nullptr, batch, {stride_a, stride_b},
                          [&](int64_t i, const std::array<int64_t, 2>& o) {
                            Gemm(ctx.pool, shape, pa + o[0] * m * k, pb + o[1] * k * n,
                                 pc + i * m * n, cache);
                          });
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeGemm(const NodeView& node) {
  const float alpha = node.GetFloat("alpha", 1.0f);
  const float beta = node.GetFloat("beta", 1.0f);
  const bool trans_a = node.GetInt("transA", 0) != 0;
  const bool trans_b = node.GetInt("transB", 0) != 0;
  auto b_cache = std::make_shared<PackedGemmB>();  // for a constant B
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(a, b));
    if (a.rank() != 2 || b.rank() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Gemm needs 2-D inputs, got ", ShapeToString(a.shape()), " and ",
          ShapeToString(b.shape())));
    }
    const GemmShape shape{trans_a ? a.dim(1) : a.dim(0), trans_a ? a.dim(0) : a.dim(1),
                          trans_b ? b.dim(0) : b.dim(1), trans_a, trans_b};
    if ((trans_b ? b.dim(1) : b.dim(0)) != shape.k) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Gemm cannot multiply ", ShapeToString(a.shape()), (trans_a ? "^T" : ""),
          " and ", ShapeToString(b.shape()), (trans_b ? "^T" : "")));
    }
    const std::vector<int64_t> out_shape = {shape.m, shape.n};
    const Tensor* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    std::vector<int64_t> c_strides;
    if (c != nullptr) {
      QAT_RETURN_IF_ERROR(RequireSameType(a, *c));
      auto broadcast = BroadcastShapes({&c->shape(), &out_shape});
      if (!broadcast.ok() || *broadcast != out_shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Gemm's C of shape ", ShapeToString(c->shape()),
            " does not broadcast to ", ShapeToString(out_shape)));
      }
      c_strides = BroadcastStrides(c->shape(), out_shape);
    }
    return VisitMatMulTypes(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(a.dtype(), out_shape);
      T* py = out.data<T>();
      Gemm(ctx.pool, shape, a.data<T>(), b.data<T>(), py,
           ctx.is_constant(1) ? b_cache.get() : nullptr);
      const T t_alpha = static_cast<T>(alpha);
      const T t_beta = static_cast<T>(beta);
      if (c == nullptr) {
        if (alpha != 1.0f) {
          for (int64_t i = 0; i < out.num_elements(); ++i) py[i] *= t_alpha;
        }
        return absl::OkStatus();
      }
      const T* pc = c->data<T>();
      ForEachBroadcast<1>(ctx.pool, out_shape, {c_strides},
                          [&](int64_t i, const std::array<int64_t, 1>& o) {
                            py[i] = t_alpha * py[i] + t_beta * pc[o[0]];
                          });
      return absl::OkStatus();
    });
  });
}

// Det of [..., M, M]: LU with partial pivoting, in double, per matrix.
absl::StatusOr<Kernel> MakeDet(const NodeView&) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (x.rank() < 2 || x.dim(x.rank() - 1) != x.dim(x.rank() - 2)) {
      return absl::InvalidArgumentError(
          absl::StrCat("Det needs square matrices [..., M, M], got ", ShapeToString(x.shape())));
    }
    const int64_t m = x.dim(x.rank() - 1);
    const std::vector<int64_t> batch(x.shape().begin(), x.shape().end() - 2);
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), batch);
      std::vector<double> lu(static_cast<size_t>(m * m));
      for (int64_t b = 0; b < y.num_elements(); ++b) {
        const T* a = x.data<T>() + b * m * m;
        for (int64_t i = 0; i < m * m; ++i) lu[i] = static_cast<double>(a[i]);
        double det = 1.0;
        for (int64_t c = 0; c < m && det != 0.0; ++c) {
          int64_t pivot = c;
          for (int64_t r = c + 1; r < m; ++r) {
            if (std::fabs(lu[r * m + c]) > std::fabs(lu[pivot * m + c])) pivot = r;
          }
          if (lu[pivot * m + c] == 0.0) {
            det = 0.0;
            break;
          }
          if (pivot != c) {
            for (int64_t k = 0; k < m; ++k) std::swap(lu[c * m + k], lu[pivot * m + k]);
            det = -det;
          }
          det *= lu[c * m + c];
          for (int64_t r = c + 1; r < m; ++r) {
            const double f = lu[r * m + c] / lu[c * m + c];
            for (int64_t k = c; k < m; ++k) lu[r * m + k] -= f * lu[c * m + k];
          }
        }
        y.data<T>()[b] = static_cast<T>(det);
      }
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
