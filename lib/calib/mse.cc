// The MSE range search (see range_search.h).
//
// The error of one bin is integrated in closed form.  In units of the scale,
// u = x / scale, FakeQuant outputs q(u) = clamp(round(u), m0, m1) with
// m0 = quant_min - zero_point and m1 = quant_max - zero_point, so q - u is a
// sawtooth of slope -1 between the clamps and grows linearly outside them.
// SawtoothIntegral(u) = integral of (q - u)^2 from m0 + 1/2 to u (negative
// below it); each whole rounding cell contributes 1/12.  Rounding ties, where
// FakeQuant rounds half to even, have measure zero and do not matter.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "calib/range_search.h"
#include "qat/quant_params.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

struct Grid {
  double scale;
  double m0, m1;  // the clamps, in units of the scale
};

double Cube(double v) { return v * v * v; }

double SawtoothIntegral(double u, const Grid& g) {
  const double low = g.m0 + 0.5, high = g.m1 - 0.5;
  if (u <= low) return (Cube(u - g.m0) - 0.125) / 3.0;
  if (u >= high) {
    return (high - low) / 12.0 + (Cube(u - g.m1) + 0.125) / 3.0;
  }
  const double cells = std::floor(u - low);
  const double r = u - low - cells;  // position inside the cell, in [0, 1)
  return cells / 12.0 + (Cube(r - 0.5) + 0.125) / 3.0;
}

// Mean squared error of values spread uniformly over [a, b].
double MeanSquaredError(double a, double b, const Grid& g) {
  if (b <= a) {  // a single point
    const double u = a / g.scale;
    const double q = std::clamp(std::nearbyint(u), g.m0, g.m1);
    const double e = (q - u) * g.scale;
    return e * e;
  }
  const double s = g.scale;
  return s * s * s * (SawtoothIntegral(b / s, g) - SawtoothIntegral(a / s, g)) /
         (b - a);
}

}  // namespace

absl::StatusOr<FloatRange> MseRange(const Histogram& histogram, float data_min,
                                    float data_max, QuantRange quant_range,
                                    bool symmetric, int num_candidates) {
  // The occupied bins, clipped to the data's extremes.
  struct Bin {
    double lo, hi, count;
  };
  std::vector<Bin> bins;
  const absl::Span<const uint64_t> counts = histogram.counts();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    const double lo = std::max(histogram.edge(static_cast<int>(i)),
                               static_cast<double>(data_min));
    const double hi = std::min(histogram.edge(static_cast<int>(i) + 1),
                               static_cast<double>(data_max));
    bins.push_back({lo, hi, static_cast<double>(counts[i])});
  }

  const float lo_full = std::min(data_min, 0.0f), hi_full = std::max(data_max, 0.0f);
  const float absmax = std::max(-lo_full, hi_full);
  FloatRange best{lo_full, hi_full};
  double best_error = std::numeric_limits<double>::infinity();
  for (int k = num_candidates; k >= 1; --k) {  // wide first: ties keep the wider
    const float f = static_cast<float>(k) / static_cast<float>(num_candidates);
    const FloatRange candidate =
        symmetric ? FloatRange{-absmax * f, absmax * f}
                  : FloatRange{lo_full * f, hi_full * f};
    QAT_ASSIGN_OR_RETURN(const QuantParams p,
                         ComputeQuantParams(candidate.rmin, candidate.rmax,
                                            quant_range, symmetric));
    const Grid grid{p.scale,
                    static_cast<double>(quant_range.quant_min) - p.zero_point,
                    static_cast<double>(quant_range.quant_max) - p.zero_point};
    double error = 0.0;
    for (const Bin& b : bins) error += b.count * MeanSquaredError(b.lo, b.hi, grid);
    if (error < best_error) {
      best_error = error;
      best = candidate;
    }
  }
  return ClipToData(best.rmin, best.rmax, data_min, data_max);
}

}  // namespace qat
