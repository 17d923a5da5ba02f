// Pooling: MaxPool (with its optional Indices output), AveragePool,
// GlobalAveragePool and GlobalMaxPool, for 1 to 3 spatial dimensions, and
// MaxUnpool, which puts MaxPool's values back where its Indices say.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/checked_size.h"
#include "exec/ops/op_util.h"
#include "exec/ops/spatial.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class PoolKind { kMax, kAverage };

// out[o] = max(out[o], in[o * stride]) for o < n, as a select (a NaN already
// in out stays).  kStride > 0 fixes the stride at compile time, so that the
// common strides 1 and 2 vectorize.
template <typename T, int64_t kStride>
void MaxPass(const T* __restrict in, int64_t n, int64_t stride, T* __restrict out) {
  const int64_t s = kStride > 0 ? kStride : stride;
  for (int64_t o = 0; o < n; ++o) {
    const T v = in[o * s], current = out[o];
    out[o] = v > current ? v : current;
  }
}

// Checks X is [N, C, spatial...] with 1 to 3 spatial dims; returns the spatial part.
absl::StatusOr<std::vector<int64_t>> SpatialShape(const Tensor& x) {
  if (x.rank() < 3 || x.rank() > 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pooling needs an input of rank 3 to 5, got ", ShapeToString(x.shape())));
  }
  return std::vector<int64_t>(x.shape().begin() + 2, x.shape().end());
}

absl::StatusOr<Kernel> MakePool(const NodeView& node, PoolKind kind) {
  const WindowAttrs attrs = WindowAttrs::FromNode(node);
  if (attrs.kernel_shape.empty()) {
    return absl::InvalidArgumentError("kernel_shape is required");
  }
  const bool count_include_pad = node.GetInt("count_include_pad", 0) != 0;
  const bool column_major = node.GetInt("storage_order", 0) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> in, SpatialShape(x));
    QAT_ASSIGN_OR_RETURN(const Window w, ComputeWindow(attrs, in, attrs.kernel_shape));
    std::vector<int64_t> out_shape = {x.dim(0), x.dim(1)};
    out_shape.insert(out_shape.end(), w.out.begin(), w.out.end());
    const bool want_indices = kind == PoolKind::kMax && ctx.has_output(1);
    auto body = [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), out_shape);
      int64_t* indices = nullptr;
      if (want_indices) {
        ctx.output(1).Resize(DataType::kInt64, out_shape);
        indices = ctx.output(1).data<int64_t>();
      }
      const size_t dims = in.size();
      const std::vector<int64_t> offsets = KernelOffsets(w);
      const std::vector<int64_t> strides = ContiguousStrides(in);
      // Indices count spatial positions in column-major order if asked.
      std::vector<int64_t> index_strides = strides;
      if (column_major) {
        int64_t s = 1;
        for (size_t d = 0; d < dims; ++d) {
          index_strides[d] = s;
          s *= in[d];
        }
      }
      const int64_t P = w.out_size(), K = w.kernel_size(), in_size = w.in_size();
      // Each kernel position's flat offset from the window's corner, for
      // windows that lie wholly inside the input (no bounds checks needed).
      std::vector<int64_t> flat_offsets(K, 0), flat_indices(K, 0);
      for (int64_t kk = 0; kk < K; ++kk) {
        for (size_t d = 0; d < dims; ++d) {
          flat_offsets[kk] += offsets[kk * dims + d] * strides[d];
          flat_indices[kk] += offsets[kk * dims + d] * index_strides[d];
        }
      }
      if (P == 0) return absl::OkStatus();
      const T* px = x.data<T>();
      T* py = y.data<T>();
      // One output, i, whose window starts at `corner` and reaches into the
      // padding.  Per dimension, the kernel positions whose tap lies inside
      // the input are a range, so the taps are visited over those ranges in
      // the kernel's row-major order, as the whole-window path visits them.
      auto pool_one = [&](const T* src, int64_t plane, int64_t i, const int64_t* corner) {
        // Dimensions past `dims` have one tap.
        int64_t lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
        int64_t padded_taps = 1;  // the taps inside the input or its padding
        for (size_t d = 0; d < dims; ++d) {
          const int64_t dil = w.dilations[d];
          // The taps k whose position corner + k * dil lies below `limit`.
          auto taps_below = [&](int64_t limit) {
            const int64_t n = limit <= corner[d] ? 0 : (limit - corner[d] + dil - 1) / dil;
            return std::min(n, w.kernel[d]);
          };
          lo[d] = corner[d] >= 0 ? 0 : std::min((-corner[d] + dil - 1) / dil, w.kernel[d]);
          hi[d] = std::max(lo[d], taps_below(in[d]));
          padded_taps *= taps_below(in[d] + w.pad_end[d]);
        }
        T best = std::numeric_limits<T>::lowest();
        int64_t best_index = -1;
        double sum = 0;
        for (int64_t k0 = lo[0]; k0 < hi[0]; ++k0) {
          for (int64_t k1 = lo[1]; k1 < hi[1]; ++k1) {
            for (int64_t k2 = lo[2]; k2 < hi[2]; ++k2) {
              const int64_t k[3] = {k0, k1, k2};
              int64_t offset = 0, index = 0;
              for (size_t d = 0; d < dims; ++d) {
                const int64_t pos = corner[d] + k[d] * w.dilations[d];
                offset += pos * strides[d];
                index += pos * index_strides[d];
              }
              const T v = src[offset];
              if (kind == PoolKind::kMax) {
                if (best_index < 0 || v > best) {
                  best = v;
                  best_index = index;
                }
              } else {
                sum += static_cast<double>(v);
              }
            }
          }
        }
        if (kind == PoolKind::kMax) {
          py[i] = best;
          if (indices != nullptr) indices[i] = plane * in_size + best_index;
        } else {
          int64_t count = count_include_pad ? padded_taps : 1;
          for (size_t d = 0; d < dims && !count_include_pad; ++d) count *= hi[d] - lo[d];
          py[i] = static_cast<T>(count > 0 ? sum / static_cast<double>(count) : 0.0);
        }
      };
      // Tasks take whole runs of outputs along the last spatial dimension,
      // where only the last coordinate of the window's corner moves.
      const size_t last = dims - 1;
      const int64_t run = w.out[last], runs_per_plane = P / run;
      const int64_t runs = x.dim(0) * x.dim(1) * runs_per_plane;
      const int64_t runs_per_task = std::max<int64_t>(1, kElementsPerTask / (run * K));
      // Outputs [lo, hi) of a run have their windows inside the input along
      // the last dimension.
      const int64_t stride = w.strides[last];
      const int64_t reach = (w.kernel[last] - 1) * w.dilations[last];
      const OutputRange inside = InsideOutputs(-w.pad_begin[last], stride, in[last] - reach, run);
      const int64_t lo = inside.lo, hi = inside.hi;  // plain names: the lambda captures them
      // The window corner of each run of a plane, computed once (it takes
      // divisions).
      std::vector<int64_t> run_corners(runs_per_plane * 3, 0);
      for (int64_t q = 0; q < runs_per_plane; ++q) {
        WindowCorner(w, q * run, &run_corners[q * 3]);
      }
      ParallelFor(ctx.pool, (runs + runs_per_task - 1) / runs_per_task, [&](int64_t task) {
        std::vector<double> sums;
        const int64_t end = std::min(runs, (task + 1) * runs_per_task);
        for (int64_t r = task * runs_per_task; r < end; ++r) {
          const int64_t plane = r / runs_per_plane;
          int64_t corner[3];
          std::copy_n(&run_corners[(r % runs_per_plane) * 3], 3, corner);
          const T* src = px + plane * in_size;
          bool outer_inside = true;
          for (size_t d = 0; d < last; ++d) {
            outer_inside = outer_inside && corner[d] >= 0 &&
                           corner[d] + (w.kernel[d] - 1) * w.dilations[d] < in[d];
          }
          const int64_t first = r * run;
          const int64_t fast_lo = outer_inside ? lo : run, fast_hi = outer_inside ? hi : run;
          for (int64_t o = 0; o < run; ++o) {
            if (o == fast_lo) o = fast_hi;  // those are done below
            if (o == run) break;
            int64_t c[3] = {corner[0], corner[1], corner[2]};
            c[last] += o * stride;
            pool_one(src, plane, first + o, c);
          }
          if (fast_lo >= fast_hi) continue;
          // Whole windows: one pass over the row per kernel position, so
          // consecutive outputs do not wait on each other.
          int64_t base = (corner[last] + fast_lo * stride) * strides[last];
          int64_t base_index = (corner[last] + fast_lo * stride) * index_strides[last];
          for (size_t d = 0; d < last; ++d) {
            base += corner[d] * strides[d];
            base_index += corner[d] * index_strides[d];
          }
          const int64_t n = fast_hi - fast_lo;
          T* out = py + first + fast_lo;
          const T* row = src + base;
          if (kind == PoolKind::kMax) {
            for (int64_t o = 0; o < n; ++o) out[o] = row[o * stride + flat_offsets[0]];
            int64_t* at = indices != nullptr ? indices + first + fast_lo : nullptr;
            if (at != nullptr) std::fill(at, at + n, int64_t{0});
            // Values are loaded before the select so that it stays a select
            // (a conditional store would be a branch on data).
            for (int64_t kk = 1; kk < K; ++kk) {
              const T* in_kk = row + flat_offsets[kk];
              if (at == nullptr) {
                if (stride == 1) {
                  MaxPass<T, 1>(in_kk, n, stride, out);
                } else if (stride == 2) {
                  MaxPass<T, 2>(in_kk, n, stride, out);
                } else {
                  MaxPass<T, 0>(in_kk, n, stride, out);
                }
              }
              for (int64_t o = 0; o < n && at != nullptr; ++o) {
                const T v = in_kk[o * stride], current = out[o];
                const int64_t current_at = at[o];
                out[o] = v > current ? v : current;
                at[o] = v > current ? kk : current_at;
              }
            }
            for (int64_t o = 0; at != nullptr && o < n; ++o) {
              at[o] = plane * in_size + base_index + o * stride * index_strides[last] +
                      flat_indices[at[o]];
            }
          } else {
            sums.assign(n, 0.0);
            for (int64_t kk = 0; kk < K; ++kk) {
              const T* in_kk = row + flat_offsets[kk];
              for (int64_t o = 0; o < n; ++o) sums[o] += static_cast<double>(in_kk[o * stride]);
            }
            for (int64_t o = 0; o < n; ++o) out[o] = static_cast<T>(sums[o] / K);
          }
        }
      });
      return absl::OkStatus();
    };
    return kind == PoolKind::kMax ? VisitNumeric(x.dtype(), body)
                                  : VisitFloat(x.dtype(), body);
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeMaxPool(const NodeView& node) {
  return MakePool(node, PoolKind::kMax);
}
absl::StatusOr<Kernel> MakeAveragePool(const NodeView& node) {
  return MakePool(node, PoolKind::kAverage);
}

namespace {

enum class GlobalKind { kAverage, kMax };

absl::StatusOr<Kernel> MakeGlobalPool(GlobalKind kind) {
  return Kernel([kind](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    if (x.rank() < 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "global pooling needs rank >= 3, got ", ShapeToString(x.shape())));
    }
    std::vector<int64_t> out_shape(x.rank(), 1);
    out_shape[0] = x.dim(0);
    out_shape[1] = x.dim(1);
    const int64_t in_size = Product(x.shape(), 2, x.shape().size());
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), out_shape);
      const T* px = x.data<T>();
      T* py = y.data<T>();
      ForEachRow(ctx.pool, x.dim(0) * x.dim(1), in_size, [&](int64_t plane) {
        const T* p = px + plane * in_size;
        if (kind == GlobalKind::kMax) {
          // A NaN, once taken, stays (as MaxPool's select does).
          T best = in_size > 0 ? p[0] : std::numeric_limits<T>::lowest();
          for (int64_t i = 1; i < in_size; ++i) best = p[i] > best ? p[i] : best;
          py[plane] = best;
          return;
        }
        T sum = 0;
        for (int64_t i = 0; i < in_size; ++i) sum += p[i];
        py[plane] = sum / static_cast<T>(in_size);
      });
      return absl::OkStatus();
    });
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeGlobalAveragePool(const NodeView&) {
  return MakeGlobalPool(GlobalKind::kAverage);
}
absl::StatusOr<Kernel> MakeGlobalMaxPool(const NodeView&) {
  return MakeGlobalPool(GlobalKind::kMax);
}

// Y = zeros of the unpooled shape, with Y.flat[I[i]] = X.flat[i].  The
// shape is the optional output_shape input, or per spatial axis (in - 1) *
// stride + kernel - pads.  Indices count over the whole of Y, as MaxPool's
// do over its input.
absl::StatusOr<Kernel> MakeMaxUnpool(const NodeView& node) {
  const WindowAttrs attrs = WindowAttrs::FromNode(node);
  if (attrs.kernel_shape.empty()) return absl::InvalidArgumentError("kernel_shape is required");
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor& ind = ctx.input(1);
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> in, SpatialShape(x));
    const size_t dims = in.size();
    if (attrs.kernel_shape.size() != dims) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kernel_shape has ", attrs.kernel_shape.size(), " values for ", dims,
          " spatial dimensions"));
    }
    if (ind.shape() != x.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "I has shape ", ShapeToString(ind.shape()), ", X ", ShapeToString(x.shape())));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> natural_indices, ReadIndices(ind, "I"));
    // Indices count positions of the natural unpooled shape; an
    // output_shape puts each at the same coordinates in a larger output.
    std::vector<int64_t> natural = {x.dim(0), x.dim(1)};
    for (size_t d = 0; d < dims; ++d) {
      const int64_t stride = d < attrs.strides.size() ? attrs.strides[d] : 1;
      const int64_t pads = attrs.pads.size() == 2 * dims ? attrs.pads[d] + attrs.pads[d + dims] : 0;
      if (stride < 1) return absl::InvalidArgumentError("strides must be positive");
      natural.push_back((in[d] - 1) * stride + attrs.kernel_shape[d] - pads);
    }
    QAT_ASSIGN_OR_RETURN(const int64_t natural_total, CheckedElementCount(natural));
    std::vector<int64_t> out_shape = natural;
    if (ctx.has_input(2)) {
      QAT_ASSIGN_OR_RETURN(out_shape, ReadInts(ctx.input(2), "output_shape"));
      if (out_shape.size() != natural.size() || out_shape[0] != x.dim(0) ||
          out_shape[1] != x.dim(1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "output_shape ", ShapeToString(out_shape), " does not fit X of shape ",
            ShapeToString(x.shape())));
      }
    }
    QAT_ASSIGN_OR_RETURN(const int64_t total, CheckedElementCount(out_shape));
    std::vector<int64_t> indices;
    indices.reserve(natural_indices.size());
    const int64_t natural_plane = Product(natural, 2, natural.size());
    for (int64_t i : natural_indices) {
      if (i < 0 || i >= natural_total) {
        return absl::InvalidArgumentError(absl::StrCat(
            "index ", i, " is outside the unpooled shape ", ShapeToString(natural)));
      }
      int64_t rest = i % natural_plane, at = 0, step = 1;
      for (size_t d = natural.size(); d-- > 2;) {
        const int64_t coord = rest % natural[d];
        rest /= natural[d];
        if (coord >= out_shape[d]) {
          return absl::InvalidArgumentError(absl::StrCat(
              "index ", i, " falls outside output_shape ", ShapeToString(out_shape)));
        }
        at += coord * step;
        step *= out_shape[d];
      }
      indices.push_back(i / natural_plane * step + at);
    }
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), out_shape);
      T* py = y.data<T>();
      std::fill(py, py + total, T(0));
      const T* px = x.data<T>();
      for (size_t i = 0; i < indices.size(); ++i) py[indices[i]] = px[i];
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
