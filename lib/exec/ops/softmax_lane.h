// One softmax or log-softmax "lane": n values spaced `inner` apart.  Shared
// by Softmax/LogSoftmax and SoftmaxCrossEntropyLoss.
#ifndef QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_
#define QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qat {
namespace exec {

// Subtracts the lane's maximum first so that exp never overflows.  The sum
// of the exponentials is accumulated in double: a float running sum drifts
// over long lanes (6,625 classes), while the double sum leaves each output
// within ~6e-7 relative of a double-precision softmax (the error of float
// exp), at a few percent more time (benchmarks/softmax_benchmark.cc).
// Softmax then multiplies by the sum's reciprocal: one rounding more than a
// division, in a loop that vectorizes.
template <typename T>
void NormalizeLane(const T* x, T* y, int64_t n, int64_t inner, bool log) {
  T max = x[0];
  for (int64_t j = 1; j < n; ++j) max = std::max(max, x[j * inner]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    const T e = std::exp(x[j * inner] - max);
    if (!log) y[j * inner] = e;
    sum += static_cast<double>(e);
  }
  if (log) {
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t j = 0; j < n; ++j) y[j * inner] = x[j * inner] - max - log_sum;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) y[j * inner] *= inv;
  }
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_
