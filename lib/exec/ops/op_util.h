// Helpers shared by the op kernels: dtype dispatch, argument checks, axes,
// numpy-style broadcasting, and unary kernels.
#ifndef QAT_LIB_EXEC_OPS_OP_UTIL_H_
#define QAT_LIB_EXEC_OPS_OP_UTIL_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "exec/kernel.h"
#include "qat/tensor.h"
#include "qat/thread_pool.h"

namespace qat {
namespace exec {

// Elements per task for elementwise loops.  Tasks are cut by size alone, so
// results never depend on the thread count.
inline constexpr int64_t kElementsPerTask = int64_t{1} << 15;

inline absl::Status UnsupportedType(const char* what, DataType type) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " does not support ", DataTypeName(type)));
}

// Calls f(T{}) with T the C++ type of `type`, for the listed families.
// f returns absl::Status.
template <typename F>
absl::Status VisitFloat(DataType type, F&& f) {
  switch (type) {
    case DataType::kFloat32: return f(float{});
    case DataType::kFloat64: return f(double{});
    default: return UnsupportedType("this op", type);
  }
}

template <typename F>
absl::Status VisitNumeric(DataType type, F&& f) {
  switch (type) {
    case DataType::kFloat32: return f(float{});
    case DataType::kFloat64: return f(double{});
    case DataType::kInt64: return f(int64_t{});
    case DataType::kInt32: return f(int32_t{});
    case DataType::kInt8: return f(int8_t{});
    case DataType::kUInt8: return f(uint8_t{});
    default: return UnsupportedType("this op", type);
  }
}

template <typename F>
absl::Status VisitQuantized(DataType type, F&& f) {
  switch (type) {
    case DataType::kInt8: return f(int8_t{});
    case DataType::kUInt8: return f(uint8_t{});
    default: return UnsupportedType("the quantized type", type);
  }
}

template <typename F>
absl::Status VisitAll(DataType type, F&& f) {
  if (type == DataType::kBool) return f(bool{});
  return VisitNumeric(type, std::forward<F>(f));
}

// Checks that input i is present; InvalidArgument naming it otherwise.
inline absl::Status RequireInput(const KernelContext& ctx, int i) {
  if (ctx.has_input(i)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("input ", i, " is required"));
}

// Checks that inputs 0 .. count-1 are all present.
inline absl::Status RequireInputs(const KernelContext& ctx, int count) {
  for (int i = 0; i < count; ++i) {
    absl::Status status = RequireInput(ctx, i);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

inline absl::Status RequireType(const Tensor& t, DataType type, const char* what) {
  if (t.dtype() == type) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, " must be ", DataTypeName(type), ", got ", DataTypeName(t.dtype())));
}

inline absl::Status RequireSameType(const Tensor& a, const Tensor& b) {
  if (a.dtype() == b.dtype()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("inputs have different types: ", DataTypeName(a.dtype()),
                   " and ", DataTypeName(b.dtype())));
}

// Maps a possibly negative axis into [0, rank).
inline absl::StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return axis < 0 ? axis + rank : axis;
}

// Reads an int64/int32 tensor of any rank as flat int64 values.
absl::StatusOr<std::vector<int64_t>> ReadIndices(const Tensor& t, const char* what);

// Checks that every index lies in [-n, n) for an axis of size n, and wraps
// negative ones to count from the end (Gather, ScatterElements).
absl::Status WrapIndices(int64_t axis, int64_t n, std::vector<int64_t>* indices);

// Reads a 1-D (or scalar) int64/int32 tensor as int64 values.
absl::StatusOr<std::vector<int64_t>> ReadInts(const Tensor& t, const char* what);

// Reads a float32/float64 tensor of any rank as flat double values.
absl::StatusOr<std::vector<double>> ReadReals(const Tensor& t, const char* what);
// The sequence_lens input of RNN, GRU, LSTM and opset 8's Scan: one length
// in [0, max_length] per batch row; max_length for every row when absent.
absl::StatusOr<std::vector<int64_t>> ReadSequenceLengths(const Tensor* lens, int64_t batch,
                                                         int64_t max_length);

// Reads a scalar (or one-element tensor) of any numeric type as double.
absl::StatusOr<double> ReadScalar(const Tensor& t, const char* what);

// The most bytes one output may take when its size comes from the values of
// a tensor (ConstantOfShape's shape, Range's count, Tile's repeats, Pad's
// pads, OneHot's depth) rather than from the shapes of the inputs: a larger
// size is taken as bad input, not as an allocation to try.
inline constexpr int64_t kMaxComputedTensorBytes = int64_t{1} << 36;  // 64 GiB

// Checks an output shape computed from tensor values: no negative
// dimension, element and byte counts that fit (core/checked_size.h), and at
// most kMaxComputedTensorBytes.  InvalidArgument naming `what` otherwise.
absl::Status CheckComputedShape(DataType type, absl::Span<const int64_t> shape,
                                const char* what);

// Product of shape[begin, end).
int64_t Product(absl::Span<const int64_t> shape, size_t begin, size_t end);

// Row-major strides of a shape, in elements.
std::vector<int64_t> ContiguousStrides(absl::Span<const int64_t> shape);

// ---- Broadcasting -----------------------------------------------------------

// The numpy broadcast of several shapes; InvalidArgument when they clash.
absl::StatusOr<std::vector<int64_t>> BroadcastShapes(
    std::initializer_list<const std::vector<int64_t>*> shapes);

// Strides (in elements) for reading `shape` as if it had `out_shape`: 0 on
// broadcast dimensions.  `out_shape` must be a broadcast of `shape`.
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& shape,
                                      const std::vector<int64_t>& out_shape);

// Calls fn(i, offsets) for every flat output index i of out_shape, where
// offsets[k] is the flat index into input k read with strides[k].  Work is
// split over the pool in fixed-size tasks.
template <size_t N, typename F>
void ForEachBroadcast(ThreadPool* pool, const std::vector<int64_t>& out_shape,
                      const std::array<std::vector<int64_t>, N>& strides, F&& fn) {
  const int64_t total = NumElements(out_shape);
  if (total == 0) return;
  const int rank = static_cast<int>(out_shape.size());
  const std::vector<int64_t> contiguous = ContiguousStrides(out_shape);
  // Common cases without the index walk: every input either has the output's
  // shape (offset i) or is a single value (offset 0), as in Where(mask, dY,
  // 0) or x * scale.
  bool full_or_scalar = true;
  std::array<int64_t, N> mask{};  // ~0 keeps i, 0 gives offset 0
  for (size_t k = 0; k < N; ++k) {
    const bool full = strides[k] == contiguous;
    const bool scalar = std::all_of(strides[k].begin(), strides[k].end(),
                                    [](int64_t s) { return s == 0; });
    full_or_scalar = full_or_scalar && (full || scalar);
    mask[k] = full ? ~int64_t{0} : 0;
  }
  const int64_t num_tasks = (total + kElementsPerTask - 1) / kElementsPerTask;
  ParallelFor(pool, num_tasks, [&](int64_t task) {
    const int64_t begin = task * kElementsPerTask;
    const int64_t end = std::min(total, begin + kElementsPerTask);
    std::array<int64_t, N> off{};
    if (full_or_scalar) {
      for (int64_t i = begin; i < end; ++i) {
        for (size_t k = 0; k < N; ++k) off[k] = i & mask[k];
        fn(i, off);
      }
      return;
    }
    std::vector<int64_t> idx(rank);
    int64_t rem = begin;
    for (int d = rank - 1; d >= 0; --d) {
      idx[d] = rem % out_shape[d];
      rem /= out_shape[d];
    }
    for (size_t k = 0; k < N; ++k) {
      for (int d = 0; d < rank; ++d) off[k] += idx[d] * strides[k][d];
    }
    // Runs along the innermost dimension, then a carry into the outer ones.
    std::array<int64_t, N> step{};
    for (size_t k = 0; k < N; ++k) step[k] = strides[k][rank - 1];
    const int64_t inner = out_shape[rank - 1];
    for (int64_t i = begin; i < end;) {
      const int64_t run = std::min(end - i, inner - idx[rank - 1]);
      for (const int64_t stop = i + run; i < stop; ++i) {
        fn(i, off);
        for (size_t k = 0; k < N; ++k) off[k] += step[k];
      }
      idx[rank - 1] += run;
      for (int d = rank - 1; d > 0 && idx[d] == out_shape[d]; --d) {
        for (size_t k = 0; k < N; ++k) off[k] += strides[k][d - 1] - strides[k][d] * out_shape[d];
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  });
}

// Runs fn(begin, count) for the fixed-size chunks of [0, n), one task each,
// over the pool (for loops that want a whole chunk, such as a vectorized
// kernel).
template <typename F>
void ForEachChunk(ThreadPool* pool, int64_t n, F&& fn) {
  ParallelFor(pool, (n + kElementsPerTask - 1) / kElementsPerTask, [&](int64_t task) {
    const int64_t begin = task * kElementsPerTask;
    fn(begin, std::min(kElementsPerTask, n - begin));
  });
}

// Runs fn(i) for i in [0, n) in fixed-size tasks over the pool.
template <typename F>
void ForEachIndex(ThreadPool* pool, int64_t n, F&& fn) {
  ForEachChunk(pool, n, [&](int64_t begin, int64_t count) {
    for (int64_t i = begin; i < begin + count; ++i) fn(i);
  });
}

// Runs fn(r) for the rows r in [0, rows) of `inner` elements each, about
// kElementsPerTask elements per task, over the pool.
template <typename F>
void ForEachRow(ThreadPool* pool, int64_t rows, int64_t inner, F&& fn) {
  const int64_t rows_per_task =
      std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(1, inner));
  ParallelFor(pool, (rows + rows_per_task - 1) / rows_per_task, [&](int64_t task) {
    const int64_t last = std::min(rows, (task + 1) * rows_per_task);
    for (int64_t r = task * rows_per_task; r < last; ++r) fn(r);
  });
}

// dst[i] = src[base + sum(idx[d] * strides[d])] for every index of dst's
// shape; strides may be negative or 0 (a repeat).  Copies by element size,
// so it works for every dtype; dst must already have src's dtype.
void StridedCopy(ThreadPool* pool, const Tensor& src, int64_t base,
                 const std::vector<int64_t>& strides, Tensor& dst);

// A broadcast read as rows: the innermost dimensions over which each input
// is either contiguous (it has those dimensions) or constant (it broadcasts
// over all of them) form rows of `inner` elements, `outer` of them, as in
// x + bias ([N, T, C] + [C]) or x - mean ([N, T, C] - [N, T, 1]).
template <size_t N>
struct BroadcastRows {
  int64_t outer = 1, inner = 1;
  int outer_rank = 0;                 // the dimensions that index the rows
  std::array<bool, N> contiguous{};  // per input: stride 1 (true) or 0 in a row
};
template <size_t N>
BroadcastRows<N> RowsOfBroadcast(const std::vector<int64_t>& out_shape,
                                 const std::array<std::vector<int64_t>, N>& strides) {
  BroadcastRows<N> rows;
  const int rank = static_cast<int>(out_shape.size());
  const std::vector<int64_t> contiguous = ContiguousStrides(out_shape);
  // Per input: still contiguous / still constant over dimensions [d, rank).
  std::array<bool, N> full, constant;
  full.fill(true);
  constant.fill(true);
  int d = rank;
  for (; d > 0; --d) {
    const int e = d - 1;
    if (out_shape[e] == 1) continue;  // read at index 0 only
    std::array<bool, N> f = full, c = constant;
    bool ok = true;
    for (size_t k = 0; k < N; ++k) {
      f[k] = f[k] && strides[k][e] == contiguous[e];
      c[k] = c[k] && strides[k][e] == 0;
      ok = ok && (f[k] || c[k]);
    }
    if (!ok) break;
    full = f;
    constant = c;
  }
  rows.outer_rank = d;
  for (int e = 0; e < rank; ++e) (e < d ? rows.outer : rows.inner) *= out_shape[e];
  rows.contiguous = full;
  return rows;
}

// The flat offset into an input with `strides` of the first element of row
// r of `rows` over `out_shape`.
template <size_t N>
int64_t RowOffset(const BroadcastRows<N>& rows, const std::vector<int64_t>& out_shape,
                  const std::vector<int64_t>& strides, int64_t r) {
  int64_t offset = 0;
  for (int64_t d = rows.outer_rank - 1; d >= 0; --d) {
    offset += (r % out_shape[d]) * strides[d];
    r /= out_shape[d];
  }
  return offset;
}

// Rows shorter than this go through ForEachBroadcast's element walk.
inline constexpr int64_t kMinBroadcastRow = 16;

// out = op(a, b) with broadcasting; a holds A, b holds B, out gets Out.
// Each element is op of its two inputs whatever the path, so the row loops
// (which the compiler vectorizes) give the element walk's bits.
template <typename A, typename B, typename Out, typename Op>
absl::Status BroadcastBinary(ThreadPool* pool, const Tensor& a, const Tensor& b,
                             Tensor& out, Op op) {
  auto shape = BroadcastShapes({&a.shape(), &b.shape()});
  if (!shape.ok()) return shape.status();
  const std::array<std::vector<int64_t>, 2> strides = {
      BroadcastStrides(a.shape(), *shape), BroadcastStrides(b.shape(), *shape)};
  out.Resize(DataTypeOf<Out>(), *shape);
  const A* pa = a.data<A>();
  const B* pb = b.data<B>();
  Out* po = out.data<Out>();
  const BroadcastRows<2> rows = RowsOfBroadcast<2>(*shape, strides);
  if (rows.inner >= kMinBroadcastRow) {
    const int64_t inner = rows.inner;
    ForEachRow(pool, rows.outer, inner, [&](int64_t r) {
      const A* x = pa + RowOffset(rows, *shape, strides[0], r);
      const B* y = pb + RowOffset(rows, *shape, strides[1], r);
      Out* z = po + r * inner;
      if (rows.contiguous[0] && rows.contiguous[1]) {
        for (int64_t j = 0; j < inner; ++j) z[j] = op(x[j], y[j]);
      } else if (rows.contiguous[0]) {
        const B v = y[0];
        for (int64_t j = 0; j < inner; ++j) z[j] = op(x[j], v);
      } else if (rows.contiguous[1]) {
        const A u = x[0];
        for (int64_t j = 0; j < inner; ++j) z[j] = op(u, y[j]);
      } else {
        std::fill(z, z + inner, op(x[0], y[0]));
      }
    });
    return absl::OkStatus();
  }
  ForEachBroadcast<2>(pool, *shape, strides,
                      [&](int64_t i, const std::array<int64_t, 2>& o) {
                        po[i] = op(pa[o[0]], pb[o[1]]);
                      });
  return absl::OkStatus();
}

// out = op(x) elementwise, same shape.
template <typename T, typename Out, typename Op>
void MapUnary(ThreadPool* pool, const Tensor& x, Tensor& out, Op op) {
  out.Resize(DataTypeOf<Out>(), x.shape());
  const T* px = x.data<T>();
  Out* po = out.data<Out>();
  ForEachIndex(pool, x.num_elements(), [&](int64_t i) { po[i] = op(px[i]); });
}

// ---- Unary kernels ----------------------------------------------------------

// The dtype families, as objects that MakeUnary takes.
struct FloatTypes {
  template <typename F> absl::Status operator()(DataType t, F&& f) const { return VisitFloat(t, f); }
};
struct NumericTypes {
  template <typename F> absl::Status operator()(DataType t, F&& f) const { return VisitNumeric(t, f); }
};

// Builds a kernel that maps input 0 through fn, for the types Visit accepts.
// With a float_kernel, float tensors go through float_kernel(x, y, n)
// instead: an array loop that vectorizes (kernels/float_math.h), run chunk
// by chunk over the pool.
template <typename Visit, typename Fn>
absl::StatusOr<Kernel> MakeUnary(Visit visit, Fn fn,
                                 void (*float_kernel)(const float*, float*, int64_t) = nullptr) {
  return Kernel([visit, fn, float_kernel](KernelContext& ctx) -> absl::Status {
    absl::Status status = RequireInput(ctx, 0);
    if (!status.ok()) return status;
    const Tensor& x = ctx.input(0);
    return visit(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, float>) {
        if (float_kernel != nullptr) {
          Tensor& out = ctx.output(0);
          out.Resize(DataTypeOf<float>(), x.shape());
          const float* px = x.data<float>();
          float* po = out.data<float>();
          ForEachChunk(ctx.pool, x.num_elements(), [&](int64_t begin, int64_t count) {
            float_kernel(px + begin, po + begin, count);
          });
          return absl::OkStatus();
        }
      }
      MapUnary<T, T>(ctx.pool, x, ctx.output(0),
                     [&](T v) { return static_cast<T>(fn(v)); });
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_OP_UTIL_H_
