#include "passes/stored_weights.h"

#include "absl/strings/str_cat.h"
#include "core/int4_packing.h"
#include "core/onnx_tensor.h"
#include "qat/quant_params.h"
#include "qat/status_macros.h"
#include "qat/kernels/fake_quant_reference.h"

namespace qat {
namespace passes {

absl::StatusOr<std::string> AddStoredWeight(training::GraphEditor& g, const Tensor& w,
                                            const StorageGrid& grid, const std::string& hint) {
  const int64_t channels = static_cast<int64_t>(grid.scale.size());
  int64_t inner = 1;
  int64_t length = 1, blocks = 1;  // per block: the axis's length and blocks
  if (grid.block_size > 0) {
    if (!grid.axis.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight '", hint, "': a block-wise grid needs an axis"));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> ps,
                         BlockedParamShape(w.shape(), *grid.axis, grid.block_size));
    const int64_t a = *grid.axis < 0 ? *grid.axis + w.rank() : *grid.axis;
    int64_t count = 1;
    for (int64_t d : ps) count *= d;
    if (count != channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight '", hint, "' of shape ", ShapeToString(w.shape()), " with blocks of ",
          grid.block_size, " along axis ", *grid.axis, " needs ", count, " scales, got ",
          channels));
    }
    length = w.dim(a);
    blocks = ps[a];
    for (int64_t d = a + 1; d < w.rank(); ++d) inner *= w.dim(d);
  } else if (grid.axis.has_value()) {
    const int64_t a = *grid.axis < 0 ? *grid.axis + w.rank() : *grid.axis;
    if (a < 0 || a >= w.rank() || (channels != 1 && w.dim(a) != channels)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight '", hint, "' of shape ", ShapeToString(w.shape()), " has no axis ",
          *grid.axis, " with ", channels, " channels"));
    }
    for (int64_t d = a + 1; d < w.rank(); ++d) inner *= w.dim(d);
  } else if (channels != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight '", hint, "': a per-tensor grid needs one scale"));
  }
  Tensor q(grid.storage, w.shape());
  const auto values = w.values<float>();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    int64_t c = grid.axis.has_value() ? (i / inner) % channels : 0;
    if (grid.block_size > 0) {
      const int64_t o = i / (length * inner), j = (i / inner) % length;
      c = (o * blocks + j / grid.block_size) * inner + i % inner;
    }
    const kernels::FakeQuantGrid fq = {grid.scale[c], grid.zero_point[c],
                                       static_cast<float>(grid.range.quant_min),
                                       static_cast<float>(grid.range.quant_max)};
    bool inside;
    const float v = kernels::QuantizeElement(values[i], fq, &inside);
    if (grid.storage == DataType::kUInt8) {
      q.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    } else {
      q.data<int8_t>()[i] = static_cast<int8_t>(v);
    }
  }
  if (!grid.packed_4bit) return g.Initializer(TensorToProto(q, hint + "_quantized"));
  QAT_ASSIGN_OR_RETURN(onnx::TensorProto packed, TensorToInt4Proto(q, hint + "_quantized"));
  return g.Initializer(packed);
}

}  // namespace passes
}  // namespace qat
