// One softmax or log-softmax "lane": n values spaced `inner` apart.  Shared
// by Softmax/LogSoftmax and SoftmaxCrossEntropyLoss.
#ifndef QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_
#define QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qat {
namespace exec {

// Subtracts the lane's maximum first so that exp never overflows.
template <typename T>
void NormalizeLane(const T* x, T* y, int64_t n, int64_t inner, bool log) {
  T max = x[0];
  for (int64_t j = 1; j < n; ++j) max = std::max(max, x[j * inner]);
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    const T e = std::exp(x[j * inner] - max);
    if (!log) y[j * inner] = e;
    sum += e;
  }
  if (log) {
    const T log_sum = std::log(sum);
    for (int64_t j = 0; j < n; ++j) y[j * inner] = x[j * inner] - max - log_sum;
  } else {
    for (int64_t j = 0; j < n; ++j) y[j * inner] /= sum;
  }
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_
