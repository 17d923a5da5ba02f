#include "qat/quant_params.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

struct TypeInfo {
  QuantType type;
  const char* name;
  int bits;
  QuantRange full;
  QuantRange symmetric;  // ORT's symmetric range (the full one for 4 bits)
  QuantRange reduced;
};

// One row per type; every lookup below reads this table.
constexpr TypeInfo kTypes[] = {
    {QuantType::kInt8, "int8", 8, {-128, 127}, {-127, 127}, {-64, 64}},
    {QuantType::kUInt8, "uint8", 8, {0, 255}, {0, 254}, {0, 127}},
    {QuantType::kInt4, "int4", 4, {-8, 7}, {-8, 7}, {-4, 3}},
    {QuantType::kUInt4, "uint4", 4, {0, 15}, {0, 15}, {0, 7}},
    {QuantType::kInt16, "int16", 16, {-32768, 32767}, {-32767, 32767},
     {-16384, 16384}},
    {QuantType::kUInt16, "uint16", 16, {0, 65535}, {0, 65534}, {0, 32767}},
};

const TypeInfo& Info(QuantType type) {
  for (const TypeInfo& info : kTypes) {
    if (info.type == type) return info;
  }
  return kTypes[0];  // unreachable for a valid enum value
}

}  // namespace

const char* QuantTypeName(QuantType type) { return Info(type).name; }

absl::StatusOr<QuantType> ParseQuantType(absl::string_view name) {
  for (const TypeInfo& info : kTypes) {
    if (name == info.name) return info.type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown quantized type '", name,
                   "'; expected int8, uint8, int4, uint4, int16 or uint16"));
}

int QuantTypeBits(QuantType type) { return Info(type).bits; }

QuantRange QuantTypeRange(QuantType type) { return Info(type).full; }

QuantRange QuantRangeFor(QuantType type, bool symmetric, bool reduce_range) {
  const TypeInfo& info = Info(type);
  if (reduce_range) return info.reduced;
  return symmetric ? info.symmetric : info.full;
}

const char* QuantRangeModeName(QuantRangeMode mode) {
  switch (mode) {
    case QuantRangeMode::kNarrow:
      return "narrow";
    case QuantRangeMode::kFull:
      return "full";
    default:
      return "auto";
  }
}

absl::StatusOr<QuantRangeMode> ParseQuantRangeMode(absl::string_view name) {
  for (QuantRangeMode m : {QuantRangeMode::kAuto, QuantRangeMode::kNarrow, QuantRangeMode::kFull}) {
    if (name == QuantRangeModeName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown range mode '", name, "'; expected auto, narrow or full"));
}

absl::Status ValidateQuantBits(int bits, absl::string_view what) {
  if (bits < kMinQuantBits || bits > kMaxQuantBits) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be from ", kMinQuantBits,
                                                   " to ", kMaxQuantBits, ", got ", bits));
  }
  return absl::OkStatus();
}

QuantRange QuantRangeForBits(bool is_signed, int bits, bool symmetric, bool reduce_range,
                             QuantRangeMode mode) {
  bits = std::clamp(bits, 2, 16);
  if (mode == QuantRangeMode::kAuto && (bits == 4 || bits == 8 || bits == 16)) {
    const QuantType type = bits == 4    ? (is_signed ? QuantType::kInt4 : QuantType::kUInt4)
                           : bits == 8  ? (is_signed ? QuantType::kInt8 : QuantType::kUInt8)
                                        : (is_signed ? QuantType::kInt16 : QuantType::kUInt16);
    return QuantRangeFor(type, symmetric, reduce_range);
  }
  if (reduce_range && bits > 2) --bits;
  const bool narrow = mode == QuantRangeMode::kNarrow;
  const int32_t half = int32_t{1} << (bits - 1);
  if (is_signed) return QuantRange{narrow ? 1 - half : -half, half - 1};
  return QuantRange{0, 2 * half - (narrow ? 2 : 1)};
}

absl::Status ValidateQuantRangeHoldsZero(QuantRange range) {
  if (range.quant_min > 0 || range.quant_max < 0 ||
      range.quant_min >= range.quant_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the quant range must satisfy quant_min <= 0 <= quant_max and "
        "quant_min < quant_max, got [", range.quant_min, ", ", range.quant_max,
        "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<QuantParams> ComputeQuantParams(float rmin, float rmax,
                                               QuantRange range,
                                               bool symmetric) {
  if (!std::isfinite(rmin) || !std::isfinite(rmax)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the range must be finite, got [", rmin, ", ", rmax, "]"));
  }
  if (rmin > rmax) {
    return absl::InvalidArgumentError(
        absl::StrCat("rmin must not exceed rmax, got [", rmin, ", ", rmax, "]"));
  }
  QAT_RETURN_IF_ERROR(ValidateQuantRangeHoldsZero(range));
  const int32_t qmin = range.quant_min, qmax = range.quant_max;

  rmin = std::min(rmin, 0.0f);
  rmax = std::max(rmax, 0.0f);
  if (symmetric) {
    const float absmax = std::max(std::fabs(rmin), std::fabs(rmax));
    rmin = -absmax;
    rmax = absmax;
  }
  const float width = rmax - rmin;  // in float, as numpy subtracts float32
  if (!std::isfinite(width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the range [", rmin, ", ", rmax, "] is wider than float represents"));
  }
  const double scale = static_cast<double>(width) /
                       (static_cast<double>(qmax) - static_cast<double>(qmin));
  if (scale < static_cast<double>(std::numeric_limits<float>::min())) {
    return QuantParams{1.0f, 0};
  }
  // nearbyint rounds half to even in the default rounding mode, as
  // numpy.round does.
  const double zero_point =
      symmetric ? std::nearbyint((static_cast<double>(qmin) + qmax) / 2.0)
                : std::nearbyint(qmin - static_cast<double>(rmin) / scale);
  return QuantParams{static_cast<float>(scale),
                     static_cast<int32_t>(zero_point)};
}

absl::StatusOr<std::vector<int64_t>> BlockedParamShape(
    absl::Span<const int64_t> shape, int64_t axis, int64_t block_size) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    return absl::InvalidArgumentError(
        "block-wise quantization needs a tensor of rank >= 1, got a scalar");
  }
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("block-wise quantization axis ", axis,
                     " is out of range for a tensor of rank ", rank));
  }
  if (block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block-wise quantization needs block_size >= 1, got ", block_size));
  }
  std::vector<int64_t> out(shape.begin(), shape.end());
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (out[a] > 0) out[a] = (out[a] - 1) / block_size + 1;
  return out;
}

}  // namespace qat
