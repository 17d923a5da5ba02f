// ONNX's 4-bit integer storage (IR version 10, opset 21): INT4 (data type
// 22) and UINT4 (21) tensors hold two values per byte, the first element in
// the 4 low bits, the second in the 4 high bits; an odd count pads the last
// byte's high nibble with 0.  libqat has no 4-bit Tensor type: reading such
// a tensor gives an int8 (INT4) or uint8 (UINT4) Tensor of the same shape,
// one value per byte, and writing packs such a Tensor again.
#ifndef QAT_LIB_CORE_INT4_PACKING_H_
#define QAT_LIB_CORE_INT4_PACKING_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "onnx/onnx_pb.h"
#include "qat/tensor.h"

namespace qat {

inline constexpr int32_t kOnnxUInt4 = 21;
inline constexpr int32_t kOnnxInt4 = 22;

inline bool IsOnnx4BitType(int32_t onnx_code) {
  return onnx_code == kOnnxUInt4 || onnx_code == kOnnxInt4;
}

// Bytes that n packed 4-bit values take: ceil(n / 2).
inline int64_t PackedInt4Bytes(int64_t n) { return n / 2 + n % 2; }

// Packs n values (each in [-8, 7] when is_signed, else [0, 15]; not checked
// here) two per byte.
std::string PackInt4(const uint8_t* values, int64_t n);

// Unpacks n values from ceil(n / 2) bytes, sign-extending when is_signed.
void UnpackInt4(const char* packed, int64_t n, bool is_signed, uint8_t* values);

// A TensorProto of type INT4 (int8 tensor) or UINT4 (uint8 tensor) with
// packed raw_data.  InvalidArgument, naming the tensor and the index, for
// another type or a value outside the 4-bit range.
absl::StatusOr<onnx::TensorProto> TensorToInt4Proto(const Tensor& tensor,
                                                    const std::string& name);

}  // namespace qat

#endif  // QAT_LIB_CORE_INT4_PACKING_H_
