// The range searches of the histogram observers (see qat/observer.h).
//
// Each takes a channel's histogram and the exact extremes of its values
// (data_min <= data_max, at least one value), assumes that the values inside
// a bin are spread uniformly over it, and returns a range inside
// [data_min, data_max].
#ifndef QAT_LIB_CALIB_RANGE_SEARCH_H_
#define QAT_LIB_CALIB_RANGE_SEARCH_H_

#include "absl/status/statusor.h"
#include "qat/histogram.h"
#include "qat/quant_range.h"

namespace qat {

struct FloatRange {
  float rmin = 0.0f;
  float rmax = 0.0f;
};

// Symmetric: t is the value below which `percentile` percent of |x| lies,
// and the range is [-t, t].  Asymmetric: (100 - percentile) / 2 percent of
// the values is cut from each end.
FloatRange PercentileRange(const Histogram& histogram, float data_min,
                           float data_max, double percentile, bool symmetric);

// The KL-divergence threshold search on the histogram of |x| (TensorRT's
// entropy calibration, also ONNX Runtime's).  With H = num_bins / 2 magnitude
// bins h[0..H) and n = num_quantized_bins, for every candidate i in [n, H]:
//   P = h[0..i) with the mass beyond, sum(h[i..H)), added to P[i-1];
//   Q = h[0..i) merged into n groups of i / n bins (the last group also takes
//       the remainder), then each group's sum spread evenly over the bins of
//       the group where P is non-zero;
//   KL(P || Q) of the normalized distributions, infinite when Q is 0 where P
//   is not.
// The smallest i with the least divergence gives the threshold t = i * w and
// the range [-t, t].
FloatRange EntropyRange(const Histogram& histogram, float data_min,
                        float data_max, int num_quantized_bins);

// Candidate k in 1..num_candidates is the full range scaled by k / n:
// symmetric [-a, a] with a = k / n * max(|data_min|, |data_max|), otherwise
// [k / n * min(data_min, 0), k / n * max(data_max, 0)].  Each gets the scale
// and zero point of ComputeQuantParams on quant_range, and its expected
// squared error is integrated exactly over every bin (clipped to
// [data_min, data_max]) for FakeQuant's piecewise-constant output.  The
// candidate with the least error wins; on a tie the wider one.
absl::StatusOr<FloatRange> MseRange(const Histogram& histogram, float data_min,
                                    float data_max, QuantRange quant_range,
                                    bool symmetric, int num_candidates);

// Clamps both ends into [data_min, data_max]; lo <= hi stays ordered.
FloatRange ClipToData(double lo, double hi, float data_min, float data_max);

}  // namespace qat

#endif  // QAT_LIB_CALIB_RANGE_SEARCH_H_
