#include "exec/ops/op_util.h"

#include <cstring>

#include "absl/strings/str_join.h"
#include "core/checked_size.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {

absl::StatusOr<std::vector<int64_t>> ReadInts(const Tensor& t, const char* what) {
  if (t.rank() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be 1-D, got shape ", ShapeToString(t.shape())));
  }
  return ReadIndices(t, what);
}

absl::Status WrapIndices(int64_t axis, int64_t n, std::vector<int64_t>* indices) {
  for (int64_t& i : *indices) {
    if (i < -n || i >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "index ", i, " is out of range for axis ", axis, " of size ", n));
    }
    if (i < 0) i += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ReadIndices(const Tensor& t, const char* what) {
  if (t.dtype() == DataType::kInt64) {
    auto v = t.values<int64_t>();
    return std::vector<int64_t>(v.begin(), v.end());
  }
  if (t.dtype() == DataType::kInt32) {
    auto v = t.values<int32_t>();
    return std::vector<int64_t>(v.begin(), v.end());
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " must be int64 or int32, got ", DataTypeName(t.dtype())));
}

absl::StatusOr<std::vector<double>> ReadReals(const Tensor& t, const char* what) {
  std::vector<double> v;
  absl::Status status = VisitFloat(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (T x : t.values<T>()) v.push_back(static_cast<double>(x));
    return absl::OkStatus();
  });
  if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", status.message()));
  return v;
}

absl::StatusOr<double> ReadScalar(const Tensor& t, const char* what) {
  if (t.num_elements() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must hold one value, got shape ", ShapeToString(t.shape())));
  }
  double value = 0;
  absl::Status status = VisitAll(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    value = static_cast<double>(t.data<T>()[0]);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return value;
}

absl::Status CheckComputedShape(DataType type, absl::Span<const int64_t> shape,
                                const char* what) {
  absl::StatusOr<int64_t> bytes = CheckedByteCount(type, shape);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", bytes.status().message()));
  }
  if (*bytes > kMaxComputedTensorBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", ShapeToString(shape), " of ", DataTypeName(type), " would take ", *bytes,
        " bytes, more than the ", kMaxComputedTensorBytes, " allowed for a computed size"));
  }
  return absl::OkStatus();
}

int64_t Product(absl::Span<const int64_t> shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < shape.size(); ++i) p *= shape[i];
  return p;
}

std::vector<int64_t> ContiguousStrides(absl::Span<const int64_t> shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d) {
    strides[d] = strides[d + 1] * shape[d + 1];
  }
  return strides;
}

absl::StatusOr<std::vector<int64_t>> BroadcastShapes(
    std::initializer_list<const std::vector<int64_t>*> shapes) {
  size_t rank = 0;
  for (const auto* s : shapes) rank = std::max(rank, s->size());
  std::vector<int64_t> out(rank, 1);
  for (const auto* s : shapes) {
    const size_t shift = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      const int64_t d = (*s)[i];
      int64_t& o = out[shift + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::vector<std::string> names;
      for (const auto* t : shapes) names.push_back(ShapeToString(*t));
      return absl::InvalidArgumentError(absl::StrCat(
          "shapes ", absl::StrJoin(names, " and "), " cannot be broadcast"));
    }
  }
  // [2^40, 1] and [1, 2^40] broadcast to a shape whose count does not fit.
  QAT_RETURN_IF_ERROR(CheckedElementCount(out).status());
  return out;
}

namespace {

// `shape` (dst's, contiguous) and `strides` (src's) with the dimensions of
// size 1 dropped and each dimension merged into the next where src steps
// over both as one (its stride is the next one's times that one's size): the
// same copy over fewer, longer dimensions.  A Transpose of [C_in, C_out, 3,
// 3] weights walks rows of 9 instead of 3.
void MergeDimensions(std::vector<int64_t>* shape, std::vector<int64_t>* strides) {
  std::vector<int64_t> merged_shape, merged_strides;
  for (size_t d = 0; d < shape->size(); ++d) {
    if ((*shape)[d] == 1) continue;
    if (!merged_shape.empty() &&
        merged_strides.back() == (*strides)[d] * (*shape)[d]) {
      merged_shape.back() *= (*shape)[d];
      merged_strides.back() = (*strides)[d];
      continue;
    }
    merged_shape.push_back((*shape)[d]);
    merged_strides.push_back((*strides)[d]);
  }
  if (merged_shape.empty()) {  // one element
    merged_shape.push_back(1);
    merged_strides.push_back(0);
  }
  *shape = std::move(merged_shape);
  *strides = std::move(merged_strides);
}

}  // namespace

void StridedCopy(ThreadPool* pool, const Tensor& src, int64_t base,
                 const std::vector<int64_t>& strides, Tensor& dst) {
  std::vector<int64_t> shape = dst.shape(), src_strides = strides;
  if (dst.num_elements() > 0) MergeDimensions(&shape, &src_strides);
  auto copy = [&](auto tag) {
    using U = decltype(tag);
    const U* s = static_cast<const U*>(src.raw_data()) + base;
    U* d = static_cast<U*>(dst.raw_data());
    const std::array<std::vector<int64_t>, 1> st = {src_strides};
    if (const BroadcastRows<1> rows = RowsOfBroadcast<1>(shape, st);
        rows.inner >= kMinBroadcastRow && rows.contiguous[0]) {
      // Rows that are contiguous in src too (a Transpose that keeps the
      // last axis, a Slice, an Expand of rows): one memcpy each.
      ForEachRow(pool, rows.outer, rows.inner, [&](int64_t r) {
        std::memcpy(d + r * rows.inner, s + RowOffset(rows, shape, src_strides, r),
                    static_cast<size_t>(rows.inner) * sizeof(U));
      });
      return;
    }
    ForEachBroadcast<1>(pool, shape, st,
                        [&](int64_t i, const std::array<int64_t, 1>& o) { d[i] = s[o[0]]; });
  };
  switch (DataTypeSize(src.dtype())) {
    case 1: copy(uint8_t{}); break;
    case 4: copy(uint32_t{}); break;
    default: copy(uint64_t{}); break;
  }
}

std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& shape,
                                      const std::vector<int64_t>& out_shape) {
  const std::vector<int64_t> own = ContiguousStrides(shape);
  std::vector<int64_t> strides(out_shape.size(), 0);
  const size_t shift = out_shape.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    strides[shift + i] = shape[i] == 1 ? 0 : own[i];
  }
  return strides;
}

absl::StatusOr<std::vector<int64_t>> ReadSequenceLengths(const Tensor* lens, int64_t batch,
                                                         int64_t max_length) {
  if (lens == nullptr) return std::vector<int64_t>(static_cast<size_t>(batch), max_length);
  auto values = ReadIndices(*lens, "sequence_lens");
  if (!values.ok()) return values.status();
  if (static_cast<int64_t>(values->size()) != batch) {
    return absl::InvalidArgumentError("sequence_lens must have one length per batch row");
  }
  for (int64_t len : *values) {
    if (len < 0 || len > max_length) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence_lens has ", len, ", outside [0, ", max_length, "]"));
    }
  }
  return values;
}

}  // namespace exec
}  // namespace qat
