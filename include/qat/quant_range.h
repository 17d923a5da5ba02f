// The integer range [quant_min, quant_max] of a quantized type.
#ifndef QAT_QUANT_RANGE_H_
#define QAT_QUANT_RANGE_H_

#include <cstdint>

namespace qat {

struct QuantRange {
  int32_t quant_min = 0;
  int32_t quant_max = 0;

  static constexpr QuantRange Int4() { return {-8, 7}; }
  static constexpr QuantRange UInt4() { return {0, 15}; }
  static constexpr QuantRange Int8() { return {-128, 127}; }
  // Symmetric int8 as ONNX Runtime quantizes weights: -128 is never used.
  static constexpr QuantRange Int8Narrow() { return {-127, 127}; }
  static constexpr QuantRange UInt8() { return {0, 255}; }
  static constexpr QuantRange Int16() { return {-32768, 32767}; }
  static constexpr QuantRange UInt16() { return {0, 65535}; }

  constexpr bool operator==(const QuantRange& o) const {
    return quant_min == o.quant_min && quant_max == o.quant_max;
  }
  constexpr bool operator!=(const QuantRange& o) const { return !(*this == o); }
};

// Ranges wider than this cannot be represented exactly in float, which the
// kernels use for the integer grid.
inline constexpr int64_t kMaxQuantRangeMagnitude = int64_t{1} << 24;

}  // namespace qat

#endif  // QAT_QUANT_RANGE_H_
