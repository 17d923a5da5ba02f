// Checked size arithmetic: the one place where the library turns dimensions
// into element and byte counts.
//
// Dimensions come from files (ONNX initializers, .npy and IDX headers), from
// tensors that a graph computes (Expand's shape, Tile's repeats) and from C
// ABI callers, so a product can overflow int64 and wrap, to 0 for (2^60,
// 784).  A wrapped count passes "the data size matches" checks and then a
// kernel writes through a buffer far too small.  These functions refuse a
// negative dimension and any product (elements, then bytes, then the bytes
// rounded up to the allocation alignment) that does not fit in int64.
//
// Errors are InvalidArgument and name the shape; callers prefix the tensor
// or file.
#ifndef QAT_LIB_CORE_CHECKED_SIZE_H_
#define QAT_LIB_CORE_CHECKED_SIZE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/tensor.h"

namespace qat {

// a * b for non-negative a and b; InvalidArgument naming `what` on overflow.
absl::StatusOr<int64_t> CheckedMul(int64_t a, int64_t b, absl::string_view what);
// a + b for non-negative a and b; InvalidArgument naming `what` on overflow.
absl::StatusOr<int64_t> CheckedAdd(int64_t a, int64_t b, absl::string_view what);

// The product of `dims` (1 for a scalar).
absl::StatusOr<int64_t> CheckedElementCount(absl::Span<const int64_t> dims);

// The bytes that a `type` tensor of `dims` holds.  The count leaves room to
// round it up to Tensor's 64-byte alignment, so an allocation of it cannot
// wrap either.
absl::StatusOr<int64_t> CheckedByteCount(DataType type, absl::Span<const int64_t> dims);

}  // namespace qat

#endif  // QAT_LIB_CORE_CHECKED_SIZE_H_
