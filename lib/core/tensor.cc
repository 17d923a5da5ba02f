#include "qat/tensor.h"

#include <cassert>
#include <cstdlib>
#include <new>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"
#include "core/onnx_tensor.h"

namespace qat {
namespace {

constexpr size_t kAlignment = 64;

}  // namespace

size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kFloat32: return 4;
    case DataType::kFloat64: return 8;
    case DataType::kInt64: return 8;
    case DataType::kInt32: return 4;
    case DataType::kInt8: return 1;
    case DataType::kUInt8: return 1;
    case DataType::kBool: return 1;
    case DataType::kUndefined: return 0;
  }
  return 0;
}

const char* DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32: return "float32";
    case DataType::kFloat64: return "float64";
    case DataType::kInt64: return "int64";
    case DataType::kInt32: return "int32";
    case DataType::kInt8: return "int8";
    case DataType::kUInt8: return "uint8";
    case DataType::kBool: return "bool";
    case DataType::kUndefined: return "undefined";
  }
  return "undefined";
}

bool IsSupportedDataType(int32_t onnx_code) {
  const DataType type = static_cast<DataType>(onnx_code);
  return type != DataType::kUndefined && DataTypeSize(type) != 0;
}

int64_t NumElements(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// ---- Tensor -----------------------------------------------------------------

Tensor::Tensor() : shape_{0} {}

Tensor::Tensor(DataType type, std::vector<int64_t> shape) {
  Resize(type, std::move(shape));
  if (num_bytes() > 0) std::memset(data_, 0, num_bytes());
}

Tensor::Tensor(const Tensor& other)
    : dtype_(other.dtype_), shape_(other.shape_),
      num_elements_(other.num_elements_) {
  Allocate(num_bytes());
  if (num_bytes() > 0) std::memcpy(data_, other.data_, num_bytes());
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this == &other) return *this;
  Resize(other.dtype_, other.shape_);
  if (num_bytes() > 0) std::memcpy(data_, other.data_, num_bytes());
  return *this;
}

Tensor::Tensor(Tensor&& other) noexcept
    : dtype_(other.dtype_), shape_(std::move(other.shape_)),
      num_elements_(other.num_elements_), data_(other.data_),
      capacity_(other.capacity_) {
  other.shape_ = {0};
  other.num_elements_ = 0;
  other.data_ = nullptr;
  other.capacity_ = 0;
}

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this == &other) return *this;
  std::free(data_);
  dtype_ = other.dtype_;
  shape_ = std::move(other.shape_);
  num_elements_ = other.num_elements_;
  data_ = other.data_;
  capacity_ = other.capacity_;
  other.shape_ = {0};
  other.num_elements_ = 0;
  other.data_ = nullptr;
  other.capacity_ = 0;
  return *this;
}

Tensor::~Tensor() { std::free(data_); }

void Tensor::Allocate(size_t bytes) {
  if (bytes <= capacity_) return;
  std::free(data_);
  // aligned_alloc wants a multiple of the alignment.
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
  capacity_ = rounded;
}

void Tensor::Resize(DataType type, std::vector<int64_t> shape) {
  for ([[maybe_unused]] int64_t d : shape) assert(d >= 0);
  dtype_ = type;
  shape_ = std::move(shape);
  num_elements_ = NumElements(shape_);
  Allocate(num_bytes());
}

void Tensor::Reshape(std::vector<int64_t> shape) {
  assert(NumElements(shape) == num_elements_);
  shape_ = std::move(shape);
}

void Tensor::CheckType(DataType type) const {
  assert(type == dtype_ && "Tensor::data<T>() with the wrong T");
  (void)type;
}

// ---- TensorProto ------------------------------------------------------------

namespace {

// Copies a repeated typed field into the tensor, converting each element.
template <typename T, typename Field>
absl::Status CopyTypedField(const Field& field, const std::string& what,
                            const std::string& name, Tensor& tensor) {
  if (static_cast<int64_t>(field.size()) != tensor.num_elements()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "': ", what, " holds ", field.size(),
        " values but its dims ", ShapeToString(tensor.shape()), " need ",
        tensor.num_elements()));
  }
  T* out = tensor.data<T>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<T>(field.Get(i));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto) {
  const std::string& name = proto.name();
  if (proto.data_location() == onnx::TensorProto::EXTERNAL ||
      proto.external_data_size() > 0) {
    return absl::UnimplementedError(absl::StrCat(
        "tensor '", name, "' stores its data externally, which is not "
        "supported; save the model with its data inside"));
  }
  if (proto.has_segment()) {
    return absl::UnimplementedError(
        absl::StrCat("tensor '", name, "' is segmented, which is not supported"));
  }
  if (!IsSupportedDataType(proto.data_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' has ONNX data type ", proto.data_type(),
        ", which is not supported (float32, float64, int64, int32, int8, "
        "uint8 and bool are)"));
  }
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  for (int64_t d : dims) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' has a negative dimension: ", ShapeToString(dims)));
    }
  }
  const DataType type = static_cast<DataType>(proto.data_type());
  Tensor tensor(type, dims);
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != tensor.num_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "': raw_data holds ", proto.raw_data().size(),
          " bytes but ", DataTypeName(type), " dims ", ShapeToString(dims),
          " need ", tensor.num_bytes()));
    }
    if (tensor.num_bytes() > 0) {
      std::memcpy(tensor.raw_data(), proto.raw_data().data(), tensor.num_bytes());
    }
    return tensor;
  }
  absl::Status status;
  switch (type) {
    case DataType::kFloat32:
      status = CopyTypedField<float>(proto.float_data(), "float_data", name, tensor);
      break;
    case DataType::kFloat64:
      status = CopyTypedField<double>(proto.double_data(), "double_data", name, tensor);
      break;
    case DataType::kInt64:
      status = CopyTypedField<int64_t>(proto.int64_data(), "int64_data", name, tensor);
      break;
    case DataType::kInt32:
      status = CopyTypedField<int32_t>(proto.int32_data(), "int32_data", name, tensor);
      break;
    case DataType::kInt8:
      status = CopyTypedField<int8_t>(proto.int32_data(), "int32_data", name, tensor);
      break;
    case DataType::kUInt8:
      status = CopyTypedField<uint8_t>(proto.int32_data(), "int32_data", name, tensor);
      break;
    case DataType::kBool:
      status = CopyTypedField<bool>(proto.int32_data(), "int32_data", name, tensor);
      break;
    case DataType::kUndefined:
      break;
  }
  if (!status.ok()) return status;
  return tensor;
}

onnx::TensorProto TensorToProto(const Tensor& tensor, const std::string& name) {
  onnx::TensorProto proto;
  proto.set_name(name);
  proto.set_data_type(static_cast<int32_t>(tensor.dtype()));
  for (int64_t d : tensor.shape()) proto.add_dims(d);
  proto.set_raw_data(tensor.raw_data(), tensor.num_bytes());
  return proto;
}

absl::StatusOr<Tensor> ParseTensorProto(absl::string_view bytes,
                                        std::string* name) {
  onnx::TensorProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("bytes are not a valid onnx.TensorProto");
  }
  if (name != nullptr) *name = proto.name();
  return TensorFromProto(proto);
}

absl::StatusOr<Tensor> ReadTensorProtoFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Tensor> tensor = ParseTensorProto(*bytes);
  if (!tensor.ok()) {
    return absl::Status(tensor.status().code(),
                        absl::StrCat("'", path, "': ", tensor.status().message()));
  }
  return tensor;
}

absl::StatusOr<std::string> SerializeTensorProto(const Tensor& tensor,
                                                 const std::string& name) {
  std::string bytes;
  if (!TensorToProto(tensor, name).SerializeToString(&bytes)) {
    return absl::InternalError(
        absl::StrCat("could not serialize tensor '", name, "'"));
  }
  return bytes;
}

}  // namespace qat
