#include "qat/tensor.h"

#include <cassert>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/checked_size.h"
#include "core/file_util.h"
#include "core/onnx_tensor.h"
#include "core/int4_packing.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

constexpr size_t kAlignment = 64;

// The byte count of a shape that the constructor, Resize or Reshape were
// given without validation: refused as std::vector refuses a size it cannot
// hold, so that a wrapped count never reaches an allocation.
int64_t ByteCountOrThrow(DataType type, absl::Span<const int64_t> shape) {
  absl::StatusOr<int64_t> bytes = CheckedByteCount(type, shape);
  if (!bytes.ok()) throw std::length_error(std::string(bytes.status().message()));
  return *bytes;
}

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
  absl::StatusOr<int64_t> n = CheckedElementCount(shape);
  return n.ok() ? *n : -1;
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// ---- Tensor -----------------------------------------------------------------

Tensor::Tensor() : shape_{0} {}

absl::StatusOr<Tensor> Tensor::Create(DataType type, std::vector<int64_t> shape) {
  if (DataTypeSize(type) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor type ", static_cast<int>(type), " is not supported"));
  }
  QAT_ASSIGN_OR_RETURN(const int64_t bytes, CheckedByteCount(type, shape));
  Tensor tensor;
  if (!tensor.TryAllocate(static_cast<size_t>(bytes))) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: cannot allocate ", bytes, " bytes for a ",
                     DataTypeName(type), " tensor of shape ", ShapeToString(shape)));
  }
  tensor.dtype_ = type;
  tensor.shape_ = std::move(shape);
  tensor.num_elements_ = NumElements(tensor.shape_);
  if (bytes > 0) std::memset(tensor.data_, 0, static_cast<size_t>(bytes));
  return tensor;
}

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

bool Tensor::TryAllocate(size_t bytes) {
  if (bytes <= capacity_) return true;
  std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
  // aligned_alloc wants a multiple of the alignment (the byte count leaves
  // room for the rounding: CheckedByteCount).
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded);
  if (data_ == nullptr) return false;
  capacity_ = rounded;
  return true;
}

void Tensor::Allocate(size_t bytes) {
  if (!TryAllocate(bytes)) throw std::bad_alloc();
}

void Tensor::Resize(DataType type, std::vector<int64_t> shape) {
  const int64_t bytes = ByteCountOrThrow(type, shape);
  if (static_cast<size_t>(bytes) > capacity_) {
    // On failure the tensor is left empty rather than half-changed.
    const bool allocated = TryAllocate(static_cast<size_t>(bytes));
    if (!allocated) {
      shape_ = {0};
      num_elements_ = 0;
      throw std::bad_alloc();
    }
  }
  dtype_ = type;
  shape_ = std::move(shape);
  num_elements_ = NumElements(shape_);
}

void Tensor::Reshape(std::vector<int64_t> shape) {
  const int64_t bytes = ByteCountOrThrow(dtype_, shape);
  assert(bytes == static_cast<int64_t>(num_bytes()));
  (void)bytes;
  shape_ = std::move(shape);
}

void Tensor::CheckType(DataType type) const {
  assert(type == dtype_ && "Tensor::data<T>() with the wrong T");
  (void)type;
}

// ---- TensorProto ------------------------------------------------------------

namespace {

// Copies a repeated typed field into the tensor, converting each element
// (CheckTensorProto has checked its size).
template <typename T, typename Field>
void CopyTypedField(const Field& field, Tensor& tensor) {
  T* out = tensor.data<T>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<T>(field.Get(i));
}

// The typed field that holds a `type` tensor's values without raw_data, and
// how many it holds.
std::pair<const char*, int64_t> TypedField(const onnx::TensorProto& proto, DataType type) {
  switch (type) {
    case DataType::kFloat32: return {"float_data", proto.float_data_size()};
    case DataType::kFloat64: return {"double_data", proto.double_data_size()};
    case DataType::kInt64: return {"int64_data", proto.int64_data_size()};
    case DataType::kInt32:
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool: return {"int32_data", proto.int32_data_size()};
    case DataType::kUndefined: break;
  }
  return {"no field", 0};
}

}  // namespace

std::string ExternalDataLocation(const onnx::TensorProto& proto) {
  for (const auto& entry : proto.external_data()) {
    if (entry.key() == "location") return entry.value();
  }
  return "";
}

namespace {

// INT4 / UINT4 (core/int4_packing.h): packed raw_data of exactly ceil(n / 2)
// bytes.  (The external-data and segment checks ran before.)
absl::Status Check4BitTensorProto(const onnx::TensorProto& proto) {
  const std::string& name = proto.name();
  const char* type = proto.data_type() == kOnnxInt4 ? "INT4" : "UINT4";
  const std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  const absl::StatusOr<int64_t> count = CheckedElementCount(dims);
  if (!count.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ", count.status().message()));
  }
  if (!proto.has_raw_data()) {
    return absl::UnimplementedError(absl::StrCat(
        "tensor '", name, "' is ", type, " without raw_data; libqat reads 4-bit "
        "tensors packed in raw_data only"));
  }
  const int64_t want = PackedInt4Bytes(*count);
  if (static_cast<int64_t>(proto.raw_data().size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "': ", type, " raw_data holds ", proto.raw_data().size(),
        " bytes but dims ", ShapeToString(dims), " need ", want,
        " (two 4-bit values per byte)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTensorProto(const onnx::TensorProto& proto) {
  const std::string& name = proto.name();
  if (proto.data_location() == onnx::TensorProto::EXTERNAL ||
      proto.external_data_size() > 0) {
    return absl::UnimplementedError(absl::StrCat(
        "tensor '", name, "' stores its data externally (location '",
        ExternalDataLocation(proto), "'), which is not supported; save the model "
        "with its data inside"));
  }
  if (proto.has_segment()) {
    return absl::UnimplementedError(
        absl::StrCat("tensor '", name, "' is segmented, which is not supported"));
  }
  if (IsOnnx4BitType(proto.data_type())) return Check4BitTensorProto(proto);
  if (!IsSupportedDataType(proto.data_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' has ONNX data type ", proto.data_type(),
        ", which is not supported (float32, float64, int64, int32, int8, "
        "uint8 and bool are)"));
  }
  const DataType type = static_cast<DataType>(proto.data_type());
  const std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  const absl::StatusOr<int64_t> bytes = CheckedByteCount(type, dims);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ", bytes.status().message()));
  }
  // The data must be what the dims declare, checked before anything is
  // allocated: a few bytes cannot make the reader allocate gigabytes.
  if (proto.has_raw_data()) {
    if (static_cast<int64_t>(proto.raw_data().size()) != *bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "': raw_data holds ", proto.raw_data().size(),
          " bytes but ", DataTypeName(type), " dims ", ShapeToString(dims),
          " need ", *bytes));
    }
    return absl::OkStatus();
  }
  const int64_t elements = *bytes / static_cast<int64_t>(DataTypeSize(type));
  const auto [field, size] = TypedField(proto, type);
  if (size != elements) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "': ", field, " holds ", size, " values but its dims ",
        ShapeToString(dims), " need ", elements));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto) {
  QAT_RETURN_IF_ERROR(CheckTensorProto(proto));
  const std::string& name = proto.name();
  const bool four_bit = IsOnnx4BitType(proto.data_type());
  // 4-bit values are read one per byte (core/int4_packing.h).
  const DataType type = four_bit ? (proto.data_type() == kOnnxInt4 ? DataType::kInt8
                                                                   : DataType::kUInt8)
                                 : static_cast<DataType>(proto.data_type());
  absl::StatusOr<Tensor> created =
      Tensor::Create(type, std::vector<int64_t>(proto.dims().begin(), proto.dims().end()));
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat("tensor '", name, "': ", created.status().message()));
  }
  Tensor tensor = *std::move(created);
  if (four_bit) {
    UnpackInt4(proto.raw_data().data(), tensor.num_elements(), type == DataType::kInt8,
               static_cast<uint8_t*>(tensor.raw_data()));
    return tensor;
  }
  if (proto.has_raw_data()) {
    if (tensor.num_bytes() > 0) {
      std::memcpy(tensor.raw_data(), proto.raw_data().data(), tensor.num_bytes());
    }
    return tensor;
  }
  switch (type) {
    case DataType::kFloat32: CopyTypedField<float>(proto.float_data(), tensor); break;
    case DataType::kFloat64: CopyTypedField<double>(proto.double_data(), tensor); break;
    case DataType::kInt64: CopyTypedField<int64_t>(proto.int64_data(), tensor); break;
    case DataType::kInt32: CopyTypedField<int32_t>(proto.int32_data(), tensor); break;
    case DataType::kInt8: CopyTypedField<int8_t>(proto.int32_data(), tensor); break;
    case DataType::kUInt8: CopyTypedField<uint8_t>(proto.int32_data(), tensor); break;
    case DataType::kBool: CopyTypedField<bool>(proto.int32_data(), tensor); break;
    case DataType::kUndefined: break;
  }
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

void MoveTensorProto(onnx::TensorProto&& from, onnx::TensorProto* to) {
  const bool has_raw = from.has_raw_data();
  std::string raw = std::move(*from.mutable_raw_data());
  from.clear_raw_data();
  *to = std::move(from);
  if (has_raw) to->set_raw_data(std::move(raw));
}

}  // namespace qat
