#include "core/checked_size.h"

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qat {
namespace {

// Tensor rounds an allocation up to this many bytes (see tensor.cc).
constexpr int64_t kAllocationAlignment = 64;

absl::Status Overflow(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is too large to count in 64 bits"));
}

}  // namespace

absl::StatusOr<int64_t> CheckedMul(int64_t a, int64_t b, absl::string_view what) {
  int64_t product = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &product)) return Overflow(what);
  return product;
}

absl::StatusOr<int64_t> CheckedAdd(int64_t a, int64_t b, absl::string_view what) {
  int64_t sum = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum)) return Overflow(what);
  return sum;
}

absl::StatusOr<int64_t> CheckedElementCount(absl::Span<const int64_t> dims) {
  // The product of the non-zero dimensions must fit too, so that every
  // partial product a kernel takes ([0, 2^62, 2^62] has 0 elements, but its
  // inner size would wrap) fits as well.
  int64_t nonzero = 1;
  bool empty = false;
  for (int64_t d : dims) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeToString(dims), " has a negative dimension"));
    }
    if (d == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(nonzero, d, &nonzero)) {
      return Overflow(absl::StrCat("the element count of shape ", ShapeToString(dims)));
    }
  }
  return empty ? 0 : nonzero;
}

absl::StatusOr<int64_t> CheckedByteCount(DataType type, absl::Span<const int64_t> dims) {
  absl::StatusOr<int64_t> elements = CheckedElementCount(dims);
  if (!elements.ok()) return elements.status();
  int64_t bytes = 0;
  if (__builtin_mul_overflow(*elements, static_cast<int64_t>(DataTypeSize(type)), &bytes) ||
      bytes > std::numeric_limits<int64_t>::max() - kAllocationAlignment) {
    return Overflow(absl::StrCat("the byte count of ", DataTypeName(type), " shape ",
                                 ShapeToString(dims)));
  }
  return bytes;
}

}  // namespace qat
