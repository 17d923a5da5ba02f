#include "qat/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kernels/finite_check.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

// The smallest power of two strictly greater than absmax, and at least
// float's smallest normal (so that all-zero data has a valid range).
double LimitFor(float absmax) {
  if (absmax < std::numeric_limits<float>::min()) {
    return std::numeric_limits<float>::min();
  }
  int exponent = 0;
  std::frexp(absmax, &exponent);  // absmax = f * 2^exponent, f in [0.5, 1)
  return std::ldexp(1.0, exponent);
}

}  // namespace

absl::StatusOr<Histogram> Histogram::Create(int num_bins) {
  if (num_bins < 2 || num_bins > (1 << 24) || (num_bins & (num_bins - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_bins must be a power of two in [2, 2^24], got ", num_bins));
  }
  return Histogram(num_bins);
}

void Histogram::Cover(float absmax) { GrowTo(LimitFor(absmax)); }

void Histogram::GrowTo(double wanted) {
  if (limit_ == 0.0) {
    limit_ = wanted;
    return;
  }
  if (wanted <= limit_) return;
  int shift = 0;
  std::frexp(wanted / limit_, &shift);  // wanted / limit_ = 2^(shift - 1)
  shift = std::min(shift - 1, 62);
  const int64_t half = num_bins() / 2;
  std::vector<uint64_t> merged(counts_.size(), 0);
  for (int64_t k = 0; k < half; ++k) {
    const int64_t to = k >> shift;
    merged[half + to] += counts_[half + k];
    merged[half - 1 - to] += counts_[half - 1 - k];
  }
  counts_.swap(merged);
  limit_ = wanted;
}

absl::Status Histogram::Add(absl::Span<const float> values) {
  QAT_RETURN_IF_ERROR(CheckFinite(values));
  if (values.empty()) return absl::OkStatus();
  float absmax = 0.0f;
  for (float v : values) absmax = std::max(absmax, std::fabs(v));
  Cover(absmax);
  // inv_width is a power of two, so |x| * inv_width is exact in double.
  const int64_t half = num_bins() / 2;
  const double inv_width = static_cast<double>(half) / limit_;
  uint64_t* counts = counts_.data();
  for (float v : values) {
    const auto k = static_cast<int64_t>(std::fabs(static_cast<double>(v)) * inv_width);
    ++counts[v < 0.0f ? half - 1 - k : half + k];
  }
  total_ += values.size();
  return absl::OkStatus();
}

absl::StatusOr<Histogram> Histogram::FromCounts(double limit, std::vector<uint64_t> counts) {
  QAT_ASSIGN_OR_RETURN(Histogram h, Create(static_cast<int>(
                                        std::min<size_t>(counts.size(), size_t{1} << 25))));
  int exponent = 0;
  const bool power_of_two = std::frexp(limit, &exponent) == 0.5;
  uint64_t total = 0;
  for (uint64_t c : counts) {
    if (__builtin_add_overflow(total, c, &total)) {
      return absl::InvalidArgumentError("the histogram's counts overflow 64 bits");
    }
  }
  if (limit == 0.0 ? total != 0
                   : !(power_of_two && limit >= std::numeric_limits<float>::min() &&
                       std::isfinite(limit))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a histogram's limit must be a power of two >= 2^-126 (or 0 when empty), got ", limit));
  }
  h.counts_ = std::move(counts);
  h.limit_ = limit;
  h.total_ = total;
  return h;
}

absl::Status Histogram::Merge(const Histogram& other) {
  if (other.num_bins() != num_bins()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot merge a histogram of ",
                                                   other.num_bins(), " bins into one of ",
                                                   num_bins()));
  }
  if (other.limit_ == 0.0) return absl::OkStatus();
  uint64_t total = 0;
  if (__builtin_add_overflow(total_, other.total_, &total)) {
    return absl::InvalidArgumentError("the merged histogram's counts overflow 64 bits");
  }
  // Both at the wider limit: each is then the histogram built directly with
  // it (see the header), so their sum is the histogram of both multisets.
  Histogram wide = other;
  wide.GrowTo(limit_);
  GrowTo(wide.limit_);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += wide.counts_[i];
  total_ = total;
  return absl::OkStatus();
}

std::vector<uint64_t> Histogram::MagnitudeCounts() const {
  const int half = num_bins() / 2;
  std::vector<uint64_t> magnitude(half);
  for (int k = 0; k < half; ++k) {
    magnitude[k] = counts_[half + k] + counts_[half - 1 - k];
  }
  return magnitude;
}

}  // namespace qat
