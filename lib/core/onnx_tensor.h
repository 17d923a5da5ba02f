// Conversion between qat::Tensor and onnx::TensorProto, for the library's
// own use (the public API takes serialized bytes; see qat/tensor.h).
#ifndef QAT_LIB_CORE_ONNX_TENSOR_H_
#define QAT_LIB_CORE_ONNX_TENSOR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"
#include "qat/tensor.h"

namespace qat {

// Checks, without allocating, that TensorFromProto would accept `proto`:
// data stored inside (Unimplemented for external data or segments), a
// supported type, dims whose element and byte counts fit (checked_size.h),
// and exactly the data the dims declare.  Model loading calls it on every
// initializer, so that every stage refuses a lying tensor the same way.
absl::Status CheckTensorProto(const onnx::TensorProto& proto);

// The 'location' entry of a tensor's external data ("" if none).
std::string ExternalDataLocation(const onnx::TensorProto& proto);

// See ParseTensorProto in qat/tensor.h for the rules and the errors:
// CheckTensorProto first, then the allocation (ResourceExhausted when it
// fails).
absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto);

// Stores the elements in raw_data.
onnx::TensorProto TensorToProto(const Tensor& tensor, const std::string& name);

// Moves `from` into `*to`, which may live on another protobuf arena: there
// an assignment or Swap copies, and raw_data (the bulk of a weight) is
// moved on its own so that it is not.
void MoveTensorProto(onnx::TensorProto&& from, onnx::TensorProto* to);

}  // namespace qat

#endif  // QAT_LIB_CORE_ONNX_TENSOR_H_
