// A fixed-size histogram of float values whose range grows with the data.
//
// The calibration observers keep one per tensor (or per channel) so that
// memory does not grow with the number of samples.
//
// Layout.  The histogram covers [-limit, limit) with num_bins bins of width
// w = limit / (num_bins / 2): half of them for negative values, half for the
// rest.  A value x falls in magnitude bin k = floor(|x| / w); positive x (and
// +-0) count in bin H + k, negative x in bin H - 1 - k, where H = num_bins / 2.
// So bin i spans [(i - H) w, (i - H + 1) w) and the histogram of |x| is the
// sum of mirrored bins (MagnitudeCounts).
//
// Growth.  The limit is always a power of two (at least 2^-126, float's
// smallest normal) strictly greater than every |x| seen.  A value outside it
// doubles the limit as often as needed, and each doubling merges magnitude
// bins 2k and 2k + 1 into bin k.  Since w is a power of two, floor(|x| / w) is
// exact, and floor(floor(|x| / w) / 2) = floor(|x| / 2w): the merged
// histogram equals the one built directly with the wider limit.  The final
// histogram is therefore a function of the multiset of values alone: the same
// values in one batch or in many, in any order, give identical counts.
#ifndef QAT_HISTOGRAM_H_
#define QAT_HISTOGRAM_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/api.h"

namespace qat {

class QAT_API Histogram {
 public:
  static constexpr int kDefaultNumBins = 2048;

  // num_bins must be a power of two in [2, 2^24].
  static absl::StatusOr<Histogram> Create(int num_bins = kDefaultNumBins);

  // Adds every value.  InvalidArgument, naming the index of the first NaN or
  // infinity, adds nothing.
  absl::Status Add(absl::Span<const float> values);

  int num_bins() const { return static_cast<int>(counts_.size()); }
  // 0 until the first value arrives.
  double limit() const { return limit_; }
  double bin_width() const { return limit_ / (num_bins() / 2); }
  // The lower edge of bin i, for i in [0, num_bins]: -limit + i * bin_width.
  double edge(int i) const { return (i - num_bins() / 2) * bin_width(); }
  uint64_t total() const { return total_; }
  absl::Span<const uint64_t> counts() const { return counts_; }

  // num_bins / 2 bins: bin k counts the values with |x| in
  // [k w, (k + 1) w).
  std::vector<uint64_t> MagnitudeCounts() const;

  // Adds another histogram's values (the same num_bins, else
  // InvalidArgument): exactly the histogram of both multisets, since both
  // are first grown to the wider limit.  Data-parallel calibration merges
  // the ranks' histograms so.
  absl::Status Merge(const Histogram& other);
  // The histogram with these counts() and limit() (a power of two >=
  // 2^-126, or 0 with no counts), as a transport hands them over.
  static absl::StatusOr<Histogram> FromCounts(double limit, std::vector<uint64_t> counts);

 private:
  explicit Histogram(int num_bins) : counts_(num_bins, 0) {}
  // Doubles the limit until it exceeds absmax, merging bins.
  void Cover(float absmax);
  // Grows the limit to `limit` (a power of two), merging bins.
  void GrowTo(double limit);

  std::vector<uint64_t> counts_;
  double limit_ = 0.0;
  uint64_t total_ = 0;
};

}  // namespace qat

#endif  // QAT_HISTOGRAM_H_
