// The KL-divergence threshold search (see range_search.h).
//
// Every candidate needs only sums over ranges of bins, so prefix sums make
// each one cost O(num_quantized_bins) instead of O(bins):
//   KL(P || Q) = (sum P log P) / N - log N + log S - (sum_g W_g log(S_g / z_g)) / N
// with N the number of values, S = sum Q, and for group g: W_g its mass in P,
// S_g its mass in Q (before spreading) and z_g its non-zero bins of P.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "calib/range_search.h"

namespace qat {

FloatRange EntropyRange(const Histogram& histogram, float data_min,
                        float data_max, int num_quantized_bins) {
  const std::vector<uint64_t> h = histogram.MagnitudeCounts();
  const int bins = static_cast<int>(h.size());
  const int n = num_quantized_bins;
  // Prefix sums over bins [0, j): mass, non-zero bins, and m log m.
  std::vector<double> mass(bins + 1, 0.0), nonzero(bins + 1, 0.0),
      mlogm(bins + 1, 0.0);
  for (int k = 0; k < bins; ++k) {
    const double m = static_cast<double>(h[k]);
    mass[k + 1] = mass[k] + m;
    nonzero[k + 1] = nonzero[k] + (m > 0.0 ? 1.0 : 0.0);
    mlogm[k + 1] = mlogm[k] + (m > 0.0 ? m * std::log(m) : 0.0);
  }
  const double total = mass[bins];

  int best = bins;
  double best_kl = std::numeric_limits<double>::infinity();
  for (int i = n; i <= bins; ++i) {
    const double outliers = total - mass[i];
    const double last = static_cast<double>(h[i - 1]) + outliers;  // P[i-1]
    const double plogp =
        mlogm[i - 1] + (last > 0.0 ? last * std::log(last) : 0.0);
    const int merged = i / n;
    double cross = 0.0;
    bool finite = true;
    for (int g = 0; g < n && finite; ++g) {
      const int start = g * merged;
      const int end = g == n - 1 ? i : start + merged;
      const double q_mass = mass[end] - mass[start];
      double p_mass = q_mass;
      double p_nonzero = nonzero[end] - nonzero[start];
      if (g == n - 1 && outliers > 0.0) {
        p_mass += outliers;
        if (h[i - 1] == 0) p_nonzero += 1.0;
      }
      if (p_mass == 0.0) continue;
      if (q_mass == 0.0) {
        finite = false;  // Q is 0 where P is not
        break;
      }
      cross += p_mass * std::log(q_mass / p_nonzero);
    }
    if (!finite) continue;
    const double kl =
        (plogp - cross) / total - std::log(total) + std::log(mass[i]);
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  const double t = best * histogram.bin_width();
  return ClipToData(-t, t, data_min, data_max);
}

}  // namespace qat
