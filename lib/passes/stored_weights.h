// Weights stored as integers behind a DequantizeLinear: the one loop that
// both insert_qdq (weights_as_int8) and fake_quant_to_qdq (export) use, so
// that a stored weight dequantizes to exactly what FakeQuant computes.
#ifndef QAT_LIB_PASSES_STORED_WEIGHTS_H_
#define QAT_LIB_PASSES_STORED_WEIGHTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph_editor.h"
#include "qat/quant_range.h"
#include "qat/tensor.h"

namespace qat {
namespace passes {

// The grid a weight is stored on: one scale and zero point per tensor
// (axis unset), or one per channel along `axis` (negative: from the end).
struct StorageGrid {
  std::vector<float> scale;
  std::vector<float> zero_point;
  std::optional<int64_t> axis;
  QuantRange range;
  DataType storage = DataType::kInt8;  // kInt8 or kUInt8
  // > 0: blocks of this many along `axis`, scale and zero point laid out as
  // opset 21 defines (BlockedParamShape); needs `axis`.
  int64_t block_size = 0;
  // Store as INT4 (kInt8) or UINT4 (kUInt8), two values per byte (opset 21;
  // core/int4_packing.h); the range must fit 4 bits.
  bool packed_4bit = false;
};

// Quantizes the float weight `w` element by element with FakeQuant's
// arithmetic (kernels::QuantizeElement: divide, round half to even, add the
// zero point, clamp) and adds the integers as an initializer named from
// `hint`; returns its name.  InvalidArgument when the axis is outside the
// weight's rank, or there are several channels and not as many as the
// axis's size (per block: not the blocked count), or a 4-bit store of a
// range wider than 4 bits.
absl::StatusOr<std::string> AddStoredWeight(training::GraphEditor& g, const Tensor& w,
                                            const StorageGrid& grid, const std::string& hint);

}  // namespace passes
}  // namespace qat

#endif  // QAT_LIB_PASSES_STORED_WEIGHTS_H_
