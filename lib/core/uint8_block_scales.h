// Block scales stored as uint8 codes times one power-of-two step per row
// ("double-quantized" scales): a block-wise 4-bit weight at block 32 with
// float scales spends 1 bit per weight on its scales, a fifth of the file;
// uint8 codes spend 0.25.  The export writes
//
//   codes (uint8) ─> DequantizeLinear(steps, axis) ─> block scale
//                    ─> DequantizeLinear(w_int4, ·, block_size) ─> W'
//
// which is standard opset 21 and exact: code * 2^k is a float product with
// no rounding, in libqat, ONNX Runtime or any other runtime.
//
// The scale tensor is 2-D (a MatMul / Gemm weight or a Gather table,
// blocked along `block_axis`); its entries are grouped along the other axis
// (one group per output channel), and each group gets the step
//   step = the least power of two >= max(group) / 255,
// so codes land in [128, 255] for the group's largest scale, [1, 255] for
// the rest.  Snapping is idempotent: scales already of this form come back
// bit for bit, which is how an export recognizes them (ExactUint8BlockScales).
#ifndef QAT_LIB_CORE_UINT8_BLOCK_SCALES_H_
#define QAT_LIB_CORE_UINT8_BLOCK_SCALES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qat {

struct Uint8BlockScales {
  std::vector<uint8_t> codes;  // the scale tensor's shape, row-major
  std::vector<float> steps;    // one per index along `axis`
  // The axis of the scale tensor that the steps run along: the
  // DequantizeLinear axis that recovers the scales (1 - block_axis).
  int64_t axis = 0;
};

// Snaps the [rows, cols] block scales of a weight blocked along block_axis
// (0 or 1): code = round(scale / step) clamped to [1, 255].  Entries marked
// in `ignore` (optional; all-zero blocks, whose scale is arbitrary) do not
// set their group's step and get code 1 (unless the whole group is
// ignored).  InvalidArgument for a non-positive or non-finite scale, a
// shape that does not match, or a step below float's smallest normal.
absl::StatusOr<Uint8BlockScales> SnapToUint8BlockScales(absl::Span<const float> scales,
                                                        int64_t rows, int64_t cols,
                                                        int64_t block_axis,
                                                        const std::vector<bool>& ignore = {});

// code * step for every entry, as DequantizeLinear computes it.
std::vector<float> DequantizeBlockScales(const Uint8BlockScales& s, int64_t rows, int64_t cols);

// The uint8 form when the scales already have it exactly, else nullopt.
std::optional<Uint8BlockScales> ExactUint8BlockScales(absl::Span<const float> scales,
                                                      int64_t rows, int64_t cols,
                                                      int64_t block_axis);

}  // namespace qat

#endif  // QAT_LIB_CORE_UINT8_BLOCK_SCALES_H_
