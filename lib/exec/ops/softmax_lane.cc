#include "exec/ops/softmax_lane.h"

#include <cmath>
#include <cstdint>

#include "kernels/float_math.h"
#include "kernels/target_clones.h"

namespace qat {
namespace exec {
namespace {

constexpr int kLanes = 16;           // accumulators, one AVX-512 vector
constexpr int64_t kBlock = 16 * kLanes;  // values per block of float sums

// The lane for a stride known at the call (1: the loops vectorize).  Every
// step is the same per value whatever the stride; see softmax_lane.h.
template <bool kLog>
QAT_ALWAYS_INLINE void FloatLane(const float* x, float* y, int64_t n, int64_t inner) {
  float lane_max[kLanes];
  for (int l = 0; l < kLanes; ++l) lane_max[l] = x[0];
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = x[(j + l) * inner];
      lane_max[l] = lane_max[l] < v ? v : lane_max[l];
    }
  }
  for (int l = 0; j < n; ++j, ++l) {
    const float v = x[j * inner];
    lane_max[l] = lane_max[l] < v ? v : lane_max[l];
  }
  // A lane shorter than 16 leaves lanes l >= n at x[0] and their
  // accumulators at +0, which change neither the maximum nor the sum (of
  // values >= +0): it skips them, the same bits for less work.
  const int used = n < kLanes ? static_cast<int>(n) : kLanes;
  float max = lane_max[0];
  for (int l = 1; l < used; ++l) max = max < lane_max[l] ? lane_max[l] : max;

  double sum = 0;
  for (j = 0; j < n;) {
    const int64_t end = n - j < kBlock ? n : j + kBlock;
    float acc[kLanes] = {};
    for (; j + kLanes <= end; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const float e = kernels::ExpFloat(x[(j + l) * inner] - max);
        if (!kLog) y[(j + l) * inner] = e;
        acc[l] += e;
      }
    }
    for (int l = 0; j < end; ++j, ++l) {
      const float e = kernels::ExpFloat(x[j * inner] - max);
      if (!kLog) y[j * inner] = e;
      acc[l] += e;
    }
    for (int l = 0; l < used; ++l) sum += static_cast<double>(acc[l]);
  }

  if (kLog) {
    const float log_sum = static_cast<float>(std::log(sum));
    for (j = 0; j < n; ++j) y[j * inner] = x[j * inner] - max - log_sum;
  } else {
    const float inv = static_cast<float>(1.0 / sum);
    for (j = 0; j < n; ++j) y[j * inner] *= inv;
  }
}

// Internal linkage behind the plain function (GCC gives a clone's resolver
// default visibility, which would export it).
QAT_TARGET_CLONES void NormalizeLaneClones(const float* x, float* y, int64_t n, int64_t inner,
                                           bool log) {
  if (inner == 1) {
    if (log) {
      FloatLane<true>(x, y, n, 1);
    } else {
      FloatLane<false>(x, y, n, 1);
    }
  } else if (log) {
    FloatLane<true>(x, y, n, inner);
  } else {
    FloatLane<false>(x, y, n, inner);
  }
}

}  // namespace

void NormalizeLane(const float* x, float* y, int64_t n, int64_t inner, bool log) {
  NormalizeLaneClones(x, y, n, inner, log);
}

}  // namespace exec
}  // namespace qat
