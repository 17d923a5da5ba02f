// Conversion between qat::Tensor and onnx::TensorProto, for the library's
// own use (the public API takes serialized bytes; see qat/tensor.h).
#ifndef QAT_LIB_CORE_ONNX_TENSOR_H_
#define QAT_LIB_CORE_ONNX_TENSOR_H_

#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"
#include "qat/tensor.h"

namespace qat {

// See ParseTensorProto in qat/tensor.h for the rules and the errors.
absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto);

// Stores the elements in raw_data.
onnx::TensorProto TensorToProto(const Tensor& tensor, const std::string& name);

}  // namespace qat

#endif  // QAT_LIB_CORE_ONNX_TENSOR_H_
