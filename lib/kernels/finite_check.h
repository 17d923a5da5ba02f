// Rejects NaN and infinity in float data with a message that says where.
#ifndef QAT_LIB_KERNELS_FINITE_CHECK_H_
#define QAT_LIB_KERNELS_FINITE_CHECK_H_

#include <cmath>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "kernels/min_max.h"

namespace qat {

// InvalidArgument naming the index and value of the first NaN or infinity.
// The caller adds what the data is (a tensor's name, a batch).
inline absl::Status CheckFinite(absl::Span<const float> values) {
  if (kernels::AllFinite(values.data(), static_cast<int64_t>(values.size()))) {
    return absl::OkStatus();
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "value at index ", i, " is ", values[i], "; calibration data must be finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace qat

#endif  // QAT_LIB_KERNELS_FINITE_CHECK_H_
