// Tensor: a dense, row-major, n-dimensional array that owns its storage.
//
// Tensors are the values that flow through the executor and in and out of the
// public API.  They are plain values: copying a Tensor copies its elements,
// moving one moves its storage.  Storage is 64-byte aligned so that SIMD
// kernels and Eigen maps can use aligned loads.
//
// A tensor of rank 0 is a scalar and holds one element; a tensor with a zero
// dimension holds none.  Resize() keeps the allocation when the new size
// fits, which is how the executor reuses buffers from one run to the next.
//
// Conversion to and from ONNX's TensorProto goes through its serialized bytes
// here, so that this header does not expose ONNX's generated types.
#ifndef QAT_TENSOR_H_
#define QAT_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "qat/api.h"

namespace qat {

// Element types.  The values are ONNX's TensorProto.DataType codes.
enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kInt32 = 6,
  kInt64 = 7,
  kBool = 9,
  kFloat64 = 11,
};

// Size of one element in bytes; 0 for kUndefined.
QAT_API size_t DataTypeSize(DataType type);
// "float32", "int64", ... as numpy names them.
QAT_API const char* DataTypeName(DataType type);
// True for the codes above, false for any other int (for checking input).
QAT_API bool IsSupportedDataType(int32_t onnx_code);

// The DataType of a C++ element type: DataTypeOf<float>() == kFloat32.
template <typename T>
constexpr DataType DataTypeOf();
template <> constexpr DataType DataTypeOf<float>() { return DataType::kFloat32; }
template <> constexpr DataType DataTypeOf<double>() { return DataType::kFloat64; }
template <> constexpr DataType DataTypeOf<int64_t>() { return DataType::kInt64; }
template <> constexpr DataType DataTypeOf<int32_t>() { return DataType::kInt32; }
template <> constexpr DataType DataTypeOf<int8_t>() { return DataType::kInt8; }
template <> constexpr DataType DataTypeOf<uint8_t>() { return DataType::kUInt8; }
template <> constexpr DataType DataTypeOf<bool>() { return DataType::kBool; }

// Number of elements of a shape: the product of its dimensions (1 for a
// scalar).  -1 when a dimension is negative or the product does not fit in
// int64 (never a wrapped count); such a shape is not a valid tensor shape.
QAT_API int64_t NumElements(absl::Span<const int64_t> shape);
// "[2,3,4]"
QAT_API std::string ShapeToString(absl::Span<const int64_t> shape);

class QAT_API Tensor {
 public:
  // An empty float32 tensor of shape [0].
  Tensor();

  // A zero-filled tensor, for dimensions that come from outside the library
  // (files, C ABI callers, a graph's computed shapes).  InvalidArgument for
  // an unsupported type, a negative dimension, or an element or byte count
  // that does not fit in int64 (the product of the non-zero dimensions
  // must fit, so that every partial product does); ResourceExhausted when
  // the memory cannot be allocated.  Nothing is allocated before the checks.
  static absl::StatusOr<Tensor> Create(DataType type, std::vector<int64_t> shape);

  // A zero-filled tensor, for dimensions the caller has already validated
  // (a shape taken from an existing tensor, or a constant).  Dimensions that
  // Create() would refuse throw std::length_error, and a failed allocation
  // std::bad_alloc, as std::vector does: never a wrapped size.  The
  // library's entry points turn both into a Status.
  Tensor(DataType type, std::vector<int64_t> shape);

  // A tensor holding a copy of `values`, which must have NumElements(shape)
  // elements.
  template <typename T>
  static Tensor FromValues(std::vector<int64_t> shape,
                           absl::Span<const T> values) {
    Tensor t(DataTypeOf<T>(), std::move(shape));
    if (!values.empty()) std::memcpy(t.raw_data(), values.data(), t.num_bytes());
    return t;
  }
  template <typename T>
  static Tensor FromValues(std::vector<int64_t> shape,
                           std::initializer_list<T> values) {
    return FromValues<T>(std::move(shape),
                         absl::Span<const T>(values.begin(), values.size()));
  }
  template <typename T>
  static Tensor Scalar(T value) {
    return FromValues<T>({}, absl::Span<const T>(&value, 1));
  }

  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  ~Tensor();

  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t num_elements() const { return num_elements_; }
  size_t num_bytes() const {
    return static_cast<size_t>(num_elements_) * DataTypeSize(dtype_);
  }
  // The bytes allocated for the values: at least num_bytes(), more after a
  // Resize() to a smaller shape.
  size_t capacity_bytes() const { return capacity_; }

  // Changes type and shape.  Keeps the allocation when it is large enough;
  // the contents are then unspecified (not zeroed).  Throws as the
  // constructor does: std::length_error for a shape that Create() would
  // refuse (the tensor is left as it was), std::bad_alloc when memory runs
  // out (the tensor is left empty).
  void Resize(DataType type, std::vector<int64_t> shape);
  // Changes the shape only; the element count must stay the same (a shape
  // whose count does not fit throws std::length_error).
  void Reshape(std::vector<int64_t> shape);

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }

  // Typed access.  T must match dtype() (checked with assert in debug builds).
  template <typename T>
  T* data() {
    CheckType(DataTypeOf<T>());
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    CheckType(DataTypeOf<T>());
    return static_cast<const T*>(data_);
  }
  template <typename T>
  absl::Span<T> values() {
    return absl::Span<T>(data<T>(), static_cast<size_t>(num_elements_));
  }
  template <typename T>
  absl::Span<const T> values() const {
    return absl::Span<const T>(data<T>(), static_cast<size_t>(num_elements_));
  }

 private:
  void CheckType(DataType type) const;
  // Makes room for `bytes` (already checked to fit, see checked_size.h);
  // false when the allocation fails, with the tensor then empty.
  bool TryAllocate(size_t bytes);
  // TryAllocate, throwing std::bad_alloc on failure.
  void Allocate(size_t bytes);

  DataType dtype_ = DataType::kFloat32;
  std::vector<int64_t> shape_;
  int64_t num_elements_ = 0;
  void* data_ = nullptr;
  size_t capacity_ = 0;  // bytes allocated at data_
};

// Parses a serialized onnx.TensorProto.  Reads typed fields (float_data,
// int32_data, int64_data, double_data) and raw_data (little-endian).  Returns
// InvalidArgument for an unsupported data type, dims that Tensor::Create
// refuses, a size that disagrees with the dims (checked before anything is
// allocated), or malformed bytes; Unimplemented for external data;
// ResourceExhausted when the memory cannot be allocated.  The tensor's
// name, if any, goes to *name.
QAT_API absl::StatusOr<Tensor> ParseTensorProto(absl::string_view bytes,
                                                std::string* name = nullptr);

// Reads a file holding one serialized onnx.TensorProto (as ONNX's test data
// sets do); errors name the file.
QAT_API absl::StatusOr<Tensor> ReadTensorProtoFile(const std::string& path);

// Serializes `tensor` as an onnx.TensorProto with the given name, storing the
// elements in raw_data.
QAT_API absl::StatusOr<std::string> SerializeTensorProto(const Tensor& tensor,
                                                         const std::string& name);

}  // namespace qat

#endif  // QAT_TENSOR_H_
