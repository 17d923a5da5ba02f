#include "core/int4_packing.h"

#include "absl/strings/str_cat.h"

namespace qat {

std::string PackInt4(const uint8_t* values, int64_t n) {
  std::string packed(static_cast<size_t>(PackedInt4Bytes(n)), '\0');
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t nibble = values[i] & 0x0F;
    packed[i / 2] = static_cast<char>(static_cast<uint8_t>(packed[i / 2]) |
                                      (i % 2 == 0 ? nibble : nibble << 4));
  }
  return packed;
}

void UnpackInt4(const char* packed, int64_t n, bool is_signed, uint8_t* values) {
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t byte = static_cast<uint8_t>(packed[i / 2]);
    const uint8_t nibble = i % 2 == 0 ? (byte & 0x0F) : (byte >> 4);
    // Sign extension: bit 3 set means nibble - 16.
    values[i] = is_signed && (nibble & 0x08) ? static_cast<uint8_t>(nibble | 0xF0) : nibble;
  }
}

absl::StatusOr<onnx::TensorProto> TensorToInt4Proto(const Tensor& tensor,
                                                    const std::string& name) {
  const bool is_signed = tensor.dtype() == DataType::kInt8;
  if (!is_signed && tensor.dtype() != DataType::kUInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' is ", DataTypeName(tensor.dtype()),
        "; only int8 and uint8 tensors store as INT4 / UINT4"));
  }
  const int64_t n = tensor.num_elements();
  const auto* bytes = static_cast<const uint8_t*>(tensor.raw_data());
  for (int64_t i = 0; i < n; ++i) {
    const int v = is_signed ? static_cast<int8_t>(bytes[i]) : bytes[i];
    if (v < (is_signed ? -8 : 0) || v > (is_signed ? 7 : 15)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' element ", i, " is ", v, ", outside ",
          is_signed ? "INT4's [-8, 7]" : "UINT4's [0, 15]"));
    }
  }
  onnx::TensorProto proto;
  proto.set_name(name);
  proto.set_data_type(is_signed ? kOnnxInt4 : kOnnxUInt4);
  for (int64_t d : tensor.shape()) proto.add_dims(d);
  proto.set_raw_data(PackInt4(bytes, n));
  return proto;
}

}  // namespace qat
