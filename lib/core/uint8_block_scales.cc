#include "core/uint8_block_scales.h"

#include <cfloat>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace qat {
namespace {

// The index along the steps' axis of entry (r, c).
int64_t GroupOf(int64_t r, int64_t c, int64_t axis) { return axis == 0 ? r : c; }

// The least power of two >= t (t > 0, finite), in double.
double PowerOfTwoAtLeast(double t) {
  int e = 0;
  const double m = std::frexp(t, &e);  // t = m * 2^e, m in [0.5, 1)
  return m == 0.5 ? std::ldexp(1.0, e - 1) : std::ldexp(1.0, e);
}

}  // namespace

absl::StatusOr<Uint8BlockScales> SnapToUint8BlockScales(absl::Span<const float> scales,
                                                        int64_t rows, int64_t cols,
                                                        int64_t block_axis,
                                                        const std::vector<bool>& ignore) {
  if ((block_axis != 0 && block_axis != 1) || rows < 1 || cols < 1 ||
      static_cast<int64_t>(scales.size()) / cols != rows ||
      static_cast<int64_t>(scales.size()) % cols != 0 ||
      (!ignore.empty() && ignore.size() != scales.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "uint8 block scales: ", scales.size(), " scales do not form a [", rows, ", ", cols,
        "] tensor blocked along axis ", block_axis));
  }
  Uint8BlockScales out;
  out.axis = 1 - block_axis;
  const int64_t groups = out.axis == 0 ? rows : cols;
  std::vector<double> max_used(groups, 0.0), max_all(groups, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      const float s = scales[i];
      if (!std::isfinite(s) || s <= 0.0f) {
        return absl::InvalidArgumentError(
            absl::StrCat("uint8 block scales: scale ", i, " is ", s, "; scales must be > 0"));
      }
      const int64_t g = GroupOf(r, c, out.axis);
      max_all[g] = std::max(max_all[g], static_cast<double>(s));
      if (ignore.empty() || !ignore[i]) max_used[g] = std::max(max_used[g], static_cast<double>(s));
    }
  }
  out.steps.resize(groups);
  for (int64_t g = 0; g < groups; ++g) {
    const double top = max_used[g] > 0.0 ? max_used[g] : max_all[g];
    const double step = PowerOfTwoAtLeast(top / 255.0);
    if (step < FLT_MIN) {
      return absl::InvalidArgumentError(absl::StrCat(
          "uint8 block scales: group ", g, "'s largest scale ", top,
          " needs a step below float's smallest normal"));
    }
    out.steps[g] = static_cast<float>(step);  // a power of two: exact
  }
  out.codes.resize(scales.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      const int64_t g = GroupOf(r, c, out.axis);
      double code = std::nearbyint(static_cast<double>(scales[i]) / out.steps[g]);
      if (!ignore.empty() && ignore[i] && max_used[g] > 0.0) code = 1.0;
      out.codes[i] = static_cast<uint8_t>(std::min(255.0, std::max(1.0, code)));
    }
  }
  return out;
}

std::vector<float> DequantizeBlockScales(const Uint8BlockScales& s, int64_t rows, int64_t cols) {
  std::vector<float> out(s.codes.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      out[i] = static_cast<float>(s.codes[i]) * s.steps[GroupOf(r, c, s.axis)];
    }
  }
  return out;
}

std::optional<Uint8BlockScales> ExactUint8BlockScales(absl::Span<const float> scales,
                                                      int64_t rows, int64_t cols,
                                                      int64_t block_axis) {
  absl::StatusOr<Uint8BlockScales> s = SnapToUint8BlockScales(scales, rows, cols, block_axis);
  if (!s.ok()) return std::nullopt;
  const std::vector<float> back = DequantizeBlockScales(*s, rows, cols);
  if (std::memcmp(back.data(), scales.data(), back.size() * sizeof(float)) != 0) {
    return std::nullopt;
  }
  return *std::move(s);
}

}  // namespace qat
