#include "passes/stored_weights.h"

#include "absl/strings/str_cat.h"
#include "core/onnx_tensor.h"
#include "qat/kernels/fake_quant_reference.h"

namespace qat {
namespace passes {

absl::StatusOr<std::string> AddStoredWeight(training::GraphEditor& g, const Tensor& w,
                                            const StorageGrid& grid, const std::string& hint) {
  const int64_t channels = static_cast<int64_t>(grid.scale.size());
  int64_t inner = 1;
  if (grid.axis.has_value()) {
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
    const int64_t c = grid.axis.has_value() ? (i / inner) % channels : 0;
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
  return g.Initializer(TensorToProto(q, hint + "_quantized"));
}

}  // namespace passes
}  // namespace qat
