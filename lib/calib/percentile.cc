// The percentile search, and the clipping that every histogram method shares.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "calib/range_search.h"

namespace qat {
namespace {

// The value below which `mass` values lie, counting bins from `first_edge`
// with values spread uniformly inside each bin.
double ValueAtMass(absl::Span<const uint64_t> counts, double first_edge,
                   double width, double mass) {
  double below = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double c = static_cast<double>(counts[i]);
    if (c > 0.0 && below + c >= mass) {
      return first_edge + width * (static_cast<double>(i) + (mass - below) / c);
    }
    below += c;
  }
  return first_edge + width * static_cast<double>(counts.size());
}

}  // namespace

FloatRange ClipToData(double lo, double hi, float data_min, float data_max) {
  const double dmin = data_min, dmax = data_max;
  return {static_cast<float>(std::clamp(lo, dmin, dmax)),
          static_cast<float>(std::clamp(hi, dmin, dmax))};
}

FloatRange PercentileRange(const Histogram& histogram, float data_min,
                           float data_max, double percentile, bool symmetric) {
  const double total = static_cast<double>(histogram.total());
  const double w = histogram.bin_width();
  if (symmetric) {
    const std::vector<uint64_t> magnitude = histogram.MagnitudeCounts();
    const double t = ValueAtMass(magnitude, 0.0, w, total * percentile / 100.0);
    return ClipToData(-t, t, data_min, data_max);
  }
  const double cut = total * (100.0 - percentile) / 200.0;
  const double lo = ValueAtMass(histogram.counts(), histogram.edge(0), w, cut);
  const double hi = ValueAtMass(histogram.counts(), histogram.edge(0), w, total - cut);
  return ClipToData(lo, hi, data_min, data_max);
}

}  // namespace qat
