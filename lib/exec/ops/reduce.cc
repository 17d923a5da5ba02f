// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
// ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare.
//
// The axes are an input since opset 13 for ReduceSum and since opset 18 for
// the others, an attribute before.  Empty axes reduce everything, unless
// noop_with_empty_axes is set.  Each reduction is a map of every element
// (|x|, x^2, exp(x - max)), an accumulation (sum, max, min, product) and a
// final step (mean, sqrt, log); an empty set gives the accumulation's
// identity (0, 1, the type's extremes) before the final step, as opset 18
// specifies.  The accumulation runs in input order on one thread, so it is
// deterministic.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class Reduction {
  kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare
};

// The accumulation under a reduction.
enum class Accumulate { kSum, kMax, kMin, kProd };

Accumulate AccumulationOf(Reduction kind) {
  switch (kind) {
    case Reduction::kMax: return Accumulate::kMax;
    case Reduction::kMin: return Accumulate::kMin;
    case Reduction::kProd: return Accumulate::kProd;
    default: return Accumulate::kSum;
  }
}

template <typename T>
T IdentityOf(Accumulate acc) {
  using L = std::numeric_limits<T>;
  switch (acc) {
    case Accumulate::kMax: return L::has_infinity ? -L::infinity() : L::lowest();
    case Accumulate::kMin: return L::has_infinity ? L::infinity() : L::max();
    case Accumulate::kProd: return T(1);
    case Accumulate::kSum: break;
  }
  return T(0);
}

// a = acc(a, v).
template <typename T>
void AccumulateInto(Accumulate acc, T& a, T v) {
  if (acc == Accumulate::kMax) {
    // NaN wins, as in numpy.
    if (v > a || v != v) a = v;
  } else if (acc == Accumulate::kMin) {
    if (v < a || v != v) a = v;
  } else if (acc == Accumulate::kProd) {
    a = static_cast<T>(a * v);
  } else {
    a = static_cast<T>(a + v);
  }
}

// When every reduced axis comes after every kept one (LayerNorm's mean over
// the last axis, a global pool), output o folds x's elements
// [o * len, (o + 1) * len): returns len, else 0.
int64_t TrailingReductionLength(const std::vector<int64_t>& shape,
                                const std::vector<int64_t>& out_strides) {
  int d = static_cast<int>(shape.size());
  int64_t len = 1;
  for (; d > 0 && (out_strides[d - 1] == 0 || shape[d - 1] == 1); --d) len *= shape[d - 1];
  const std::vector<int64_t> contiguous = ContiguousStrides(shape);
  for (int e = 0; e < d; ++e) {
    if (shape[e] != 1 && out_strides[e] * len != contiguous[e]) return 0;
  }
  return len;
}

// The most blocks FoldSideBySide folds together.
constexpr int kSideBySide = 8;

// Folds `count` blocks of `len` elements into their distinct outputs, one
// element of each in turn (kCount, when not 0, is count known at compile
// time); the accumulation is dispatched once, outside the loop.
template <int kCount, typename T, typename Map>
void FoldSideBySide(Accumulate acc, int64_t len, int64_t count, const int64_t* target,
                    const T* const* rows, T* po, Map& map) {
  auto fold = [&](auto kind) {
    constexpr Accumulate kAcc = decltype(kind)::value;
    const int64_t n = kCount != 0 ? kCount : count;
    T a[kSideBySide];
    for (int64_t g = 0; g < n; ++g) a[g] = po[target[g]];
    for (int64_t j = 0; j < len; ++j) {
#pragma GCC unroll 8
      for (int64_t g = 0; g < n; ++g) AccumulateInto(kAcc, a[g], map(rows[g][j], target[g]));
    }
    for (int64_t g = 0; g < n; ++g) po[target[g]] = a[g];
  };
  switch (acc) {
    case Accumulate::kSum: fold(std::integral_constant<Accumulate, Accumulate::kSum>{}); break;
    case Accumulate::kMax: fold(std::integral_constant<Accumulate, Accumulate::kMax>{}); break;
    case Accumulate::kMin: fold(std::integral_constant<Accumulate, Accumulate::kMin>{}); break;
    case Accumulate::kProd: fold(std::integral_constant<Accumulate, Accumulate::kProd>{}); break;
  }
}

// When the trailing axes are reduced but some kept axis comes before a
// reduced one (a per-channel sum over [N, C, H, W]: BatchNorm's dScale and
// dB), x is a run of blocks of `len` contiguous elements that each fold into
// one output.  Blocks fold in flat order, so each output receives its
// elements in the element walk's order: the same bits.  Up to kSideBySide
// blocks with distinct outputs fold together (independent chains instead of
// one latency-bound one), and the outputs are split over the pool.  Returns
// false when the shape does not fit.
template <typename T, typename Map>
bool FoldTrailingBlocks(ThreadPool* pool, const Tensor& x, const std::vector<int64_t>& out_strides,
                        Accumulate acc, T* po, Map map) {
  const std::vector<int64_t>& shape = x.shape();
  size_t lead = shape.size();
  int64_t len = 1;
  for (; lead > 0 && (out_strides[lead - 1] == 0 || shape[lead - 1] == 1); --lead) {
    len *= shape[lead - 1];
  }
  if (len < 4 || lead == 0 || x.num_elements() == 0) return false;
  const int64_t blocks = x.num_elements() / len;
  int64_t outputs = 1;
  for (size_t a = 0; a < lead; ++a) outputs += (shape[a] - 1) * out_strides[a];
  const int64_t parts = std::min<int64_t>(outputs, 8);
  const T* px = x.data<T>();
  ParallelFor(pool, parts, [&](int64_t part) {
    const int64_t lo = outputs * part / parts, hi = outputs * (part + 1) / parts;
    int64_t pending = 0, target[kSideBySide];
    const T* rows[kSideBySide];
    auto flush = [&] {
      if (pending == kSideBySide) {
        FoldSideBySide<kSideBySide>(acc, len, kSideBySide, target, rows, po, map);
      } else {
        FoldSideBySide<0>(acc, len, pending, target, rows, po, map);
      }
      pending = 0;
    };
    // The blocks' output offsets, by an odometer over the leading axes.
    std::vector<int64_t> index(lead, 0);
    int64_t offset = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      if (offset >= lo && offset < hi) {
        bool clash = pending == kSideBySide;
        for (int64_t g = 0; g < pending && !clash; ++g) clash = target[g] == offset;
        if (clash) flush();
        target[pending] = offset;
        rows[pending++] = px + b * len;
      }
      for (size_t a = lead; a-- > 0;) {
        offset += out_strides[a];
        if (++index[a] < shape[a]) break;
        offset -= out_strides[a] * shape[a];
        index[a] = 0;
      }
    }
    flush();
  });
  return true;
}

// Folds the elements of `x` into `out` (already holding the identity) along
// `out_strides`; `map` turns an element (and its output index) into what is
// accumulated.
template <typename T, typename Map>
void Fold(ThreadPool* pool, const Tensor& x, const std::vector<int64_t>& out_strides,
          Accumulate acc, T* po, Map map) {
  const T* px = x.data<T>();
  if (const int64_t len = TrailingReductionLength(x.shape(), out_strides); len > 0) {
    // The element walk's order (flat index order per output) row by row,
    // without the index walk: the same bits.  Rows are independent, so
    // they spread over the pool.
    const int64_t rows = x.num_elements() / len;
    ForEachRow(pool, rows, len, [&](int64_t o) {
      T a = po[o];
      const T* row = px + o * len;
      for (int64_t j = 0; j < len; ++j) AccumulateInto(acc, a, map(row[j], o));
      po[o] = a;
    });
    return;
  }
  if (FoldTrailingBlocks(pool, x, out_strides, acc, po, map)) return;
  ForEachBroadcast<1>(nullptr, x.shape(), {out_strides},
                      [&](int64_t i, const std::array<int64_t, 1>& o) {
                        AccumulateInto(acc, po[o[0]], map(px[i], o[0]));
                      });
}

template <typename T>
T Abs(T v) {
  if constexpr (std::is_unsigned_v<T>) {
    return v;
  } else {
    return v < T(0) ? static_cast<T>(-v) : v;
  }
}

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
      ForwardInput(ctx, 0, x.shape());
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
    const Accumulate acc = AccumulationOf(kind);
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), out_shape);
      T* po = out.data<T>();
      const int64_t n = out.num_elements();
      std::fill(po, po + n, IdentityOf<T>(acc));
      switch (kind) {
        case Reduction::kL1:
          Fold<T>(ctx.pool, x, out_strides, acc, po, [](T v, int64_t) { return Abs(v); });
          break;
        case Reduction::kL2:
        case Reduction::kSumSquare:
          Fold<T>(ctx.pool, x, out_strides, acc, po,
                  [](T v, int64_t) { return static_cast<T>(v * v); });
          break;
        case Reduction::kLogSumExp: {
          // log(sum(exp(x - m))) + m with m the maximum, so that exp stays
          // finite; m = 0 where the maximum is infinite (or nothing).
          std::vector<T> shift(n, IdentityOf<T>(Accumulate::kMax));
          Fold<T>(ctx.pool, x, out_strides, Accumulate::kMax, shift.data(),
                  [](T v, int64_t) { return v; });
          for (T& m : shift) {
            if (!std::isfinite(static_cast<double>(m))) m = T(0);
          }
          Fold<T>(ctx.pool, x, out_strides, acc, po, [&](T v, int64_t o) {
            return static_cast<T>(std::exp(static_cast<double>(v) - shift[o]));
          });
          for (int64_t i = 0; i < n; ++i) {
            po[i] = static_cast<T>(std::log(static_cast<double>(po[i])) + shift[i]);
          }
          return absl::OkStatus();
        }
        default:
          Fold<T>(ctx.pool, x, out_strides, acc, po, [](T v, int64_t) { return v; });
          break;
      }
      for (int64_t i = 0; i < n; ++i) {
        if (kind == Reduction::kMean) {
          // The mean of nothing is NaN (0 for integers).
          po[i] = count == 0 ? (std::numeric_limits<T>::has_quiet_NaN
                                    ? std::numeric_limits<T>::quiet_NaN()
                                    : T(0))
                             : static_cast<T>(po[i] / static_cast<T>(count));
        } else if (kind == Reduction::kL2) {
          po[i] = static_cast<T>(std::sqrt(static_cast<double>(po[i])));
        } else if (kind == Reduction::kLogSum) {
          po[i] = static_cast<T>(std::log(static_cast<double>(po[i])));
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
absl::StatusOr<Kernel> MakeReduceMin(const NodeView& node) {
  return MakeReduce(node, Reduction::kMin, 18);
}
absl::StatusOr<Kernel> MakeReduceProd(const NodeView& node) {
  return MakeReduce(node, Reduction::kProd, 18);
}
absl::StatusOr<Kernel> MakeReduceL1(const NodeView& node) {
  return MakeReduce(node, Reduction::kL1, 18);
}
absl::StatusOr<Kernel> MakeReduceL2(const NodeView& node) {
  return MakeReduce(node, Reduction::kL2, 18);
}
absl::StatusOr<Kernel> MakeReduceLogSum(const NodeView& node) {
  return MakeReduce(node, Reduction::kLogSum, 18);
}
absl::StatusOr<Kernel> MakeReduceLogSumExp(const NodeView& node) {
  return MakeReduce(node, Reduction::kLogSumExp, 18);
}
absl::StatusOr<Kernel> MakeReduceSumSquare(const NodeView& node) {
  return MakeReduce(node, Reduction::kSumSquare, 18);
}

}  // namespace exec
}  // namespace qat
