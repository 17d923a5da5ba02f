// One softmax or log-softmax "lane": n values spaced `inner` apart.  Shared
// by Softmax/LogSoftmax and SoftmaxCrossEntropyLoss.
#ifndef QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_
#define QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qat {
namespace exec {

// The plain lane, for double (and the reference the float lane is checked
// against).  Subtracts the lane's maximum first so that exp never
// overflows; the sum of the exponentials is accumulated in double (a float
// running sum drifts over long lanes, 6,625 classes).  Softmax then
// multiplies by the sum's reciprocal: one rounding more than a division, in
// a loop that vectorizes.
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

// The float lane (softmax_lane.cc), vectorized and cloned per instruction
// set with the same bits: the maximum over 16 interleaved lanes (exact, so
// the order changes nothing), exp by kernels::ExpFloat (within 1 ULP), and
// the sum by a fixed tree: value j goes to float accumulator j % 16 within
// blocks of 256 values, and each block's 16 accumulators are added into a
// double in order.  The tree depends on n only, not on `inner` nor on the
// instruction set, so a strided lane (inner > 1, scalar) gives the bits of
// the same values laid out contiguously (inner = 1, vectorized).  Each output
// stays within 1e-6 relative of a double-precision softmax (log-softmax:
// 1e-6 of max(1, |value|)) on 6,625-class lanes
// (tests/real_model_quirks_test.cc).  y may be x.
void NormalizeLane(const float* x, float* y, int64_t n, int64_t inner, bool log);

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_SOFTMAX_LANE_H_
