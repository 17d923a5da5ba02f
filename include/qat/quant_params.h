// Quantized integer types, their ranges, and the scale and zero point that
// map a float range onto them.
//
// Both follow ONNX Runtime's quantization tools (quant_utils.py), so that a
// table computed here gives the same QDQ parameters as quantize_static:
//
//   QuantRangeFor(type, symmetric, reduce_range)   get_qmin_qmax_for_qType
//   ComputeQuantParams(rmin, rmax, range, sym)     compute_scale_zp
//
// ComputeQuantParams, step by step (rmin, rmax and the range are inputs):
//   1. widen the range to include 0: rmin = min(rmin, 0), rmax = max(rmax, 0);
//   2. symmetric: rmin = -absmax, rmax = +absmax, absmax = max(|rmin|, |rmax|);
//   3. scale = (rmax - rmin) / (qmax - qmin): the subtraction in float, the
//      division in double, as ORT's numpy code does;
//   4. a scale below float's smallest normal (an all-zero range) becomes
//      scale 1, zero point 0;
//   5. zero_point = round(qmin - rmin / scale) in double, round half to even;
//      symmetric: zero_point = round((qmin + qmax) / 2), which is the same in
//      exact arithmetic and does not depend on the scale's rounding;
//   6. the scale is rounded to float last.
#ifndef QAT_QUANT_PARAMS_H_
#define QAT_QUANT_PARAMS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "qat/api.h"
#include "qat/quant_range.h"

namespace qat {

enum class QuantType { kInt8, kUInt8, kInt4, kUInt4, kInt16, kUInt16 };

// "int8", "uint8", "int4", "uint4", "int16", "uint16".
QAT_API const char* QuantTypeName(QuantType type);
// InvalidArgument, listing the valid names, for anything else.
QAT_API absl::StatusOr<QuantType> ParseQuantType(absl::string_view name);

// 4, 8 or 16.
QAT_API int QuantTypeBits(QuantType type);

// Every value the type holds, e.g. [-128, 127] for int8.
QAT_API QuantRange QuantTypeRange(QuantType type);

// The range the quantizer uses (ORT's get_qmin_qmax_for_qType):
//   reduce_range (wins over symmetric): one bit less, e.g. int8 [-64, 64],
//     uint8 [0, 127], int16 [-16384, 16384], uint16 [0, 32767], int4 [-4, 3],
//     uint4 [0, 7];
//   symmetric: the range without its lone extreme, so that it is centred:
//     int8 [-127, 127], uint8 [0, 254], int16 [-32767, 32767],
//     uint16 [0, 65534]; 4-bit types keep their full range;
//   otherwise the type's full range.
QAT_API QuantRange QuantRangeFor(QuantType type, bool symmetric,
                                 bool reduce_range);

// Whether a range drops its type's lone extreme value (int8's -128, uint8's
// 255): kNarrow drops it ([-127, 127], [0, 254] at 8 bits; [-3, 3], [0, 6]
// at 3 bits), kFull keeps it, kAuto does what QuantRangeFor does for the
// 4-, 8- and 16-bit types (narrow only for symmetric 8- and 16-bit) and keeps
// the full range at every other width.
enum class QuantRangeMode { kAuto, kNarrow, kFull };

// "auto", "narrow", "full"; ParseQuantRangeMode: InvalidArgument otherwise.
QAT_API const char* QuantRangeModeName(QuantRangeMode mode);
QAT_API absl::StatusOr<QuantRangeMode> ParseQuantRangeMode(absl::string_view name);

// The smallest and largest bit width the quantizer takes below 16: 2 and 8.
inline constexpr int kMinQuantBits = 2;
inline constexpr int kMaxQuantBits = 8;
// InvalidArgument naming `what` unless kMinQuantBits <= bits <= kMaxQuantBits.
QAT_API absl::Status ValidateQuantBits(int bits, absl::string_view what);

// The range of a `bits`-wide grid (2..16), signed or unsigned:
//   kAuto at 4, 8 and 16 bits: QuantRangeFor of that type, unchanged;
//   otherwise reduce_range takes one bit less, then signed full is
//   [-2^(b-1), 2^(b-1) - 1], unsigned full [0, 2^b - 1], and narrow drops
//   the lone extreme as above.
// Bits outside 2..16 are clamped into it (callers validate first).
QAT_API QuantRange QuantRangeForBits(bool is_signed, int bits, bool symmetric,
                                     bool reduce_range,
                                     QuantRangeMode mode = QuantRangeMode::kAuto);

// OK when quant_min <= 0 <= quant_max and quant_min < quant_max, the ranges
// a zero point can map 0.0 into; InvalidArgument naming the range otherwise.
QAT_API absl::Status ValidateQuantRangeHoldsZero(QuantRange range);

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// See the steps above.  InvalidArgument for a NaN or infinite bound,
// rmin > rmax, a range whose width overflows float, or a quant range that
// ValidateQuantRangeHoldsZero rejects.
QAT_API absl::StatusOr<QuantParams> ComputeQuantParams(float rmin, float rmax,
                                                       QuantRange range,
                                                       bool symmetric);

// The shape of a blocked scale for a tensor of `shape`: the same, except
// ceil(shape[axis] / block_size) along axis (as QuantizeLinear-21 defines).
// InvalidArgument for a scalar shape, an axis out of range or block_size < 1.
QAT_API absl::StatusOr<std::vector<int64_t>> BlockedParamShape(
    absl::Span<const int64_t> shape, int64_t axis, int64_t block_size);

}  // namespace qat

#endif  // QAT_QUANT_PARAMS_H_
