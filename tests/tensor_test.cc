// Tensor storage, TensorProto conversion and .npy files.
#include "qat/tensor.h"

#include <cstdint>
#include <cstdio>
#include <limits>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "core/checked_size.h"
#include "core/onnx_tensor.h"
#include "qat/npy.h"

namespace qat {
namespace {

TEST(TensorTest, ZeroFilledAndAligned) {
  Tensor t(DataType::kFloat32, {2, 3});
  EXPECT_EQ(t.num_elements(), 6);
  EXPECT_EQ(t.num_bytes(), 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  for (float v : t.values<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(TensorTest, ScalarHasOneElement) {
  Tensor t = Tensor::Scalar<int64_t>(7);
  EXPECT_EQ(t.rank(), 0);
  EXPECT_EQ(t.num_elements(), 1);
  EXPECT_EQ(t.data<int64_t>()[0], 7);
}

TEST(TensorTest, ResizeKeepsAllocationWhenItFits) {
  Tensor t(DataType::kFloat32, {64});
  const void* before = t.raw_data();
  t.Resize(DataType::kInt8, {10, 5});
  EXPECT_EQ(t.raw_data(), before);
  EXPECT_EQ(t.dtype(), DataType::kInt8);
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{10, 5}));
  t.Resize(DataType::kFloat64, {1000});
  EXPECT_EQ(t.num_bytes(), 8000u);
}

TEST(TensorTest, CopyIsDeepAndMoveEmptiesTheSource) {
  Tensor a = Tensor::FromValues<float>({2}, {1.5f, -2.0f});
  Tensor b = a;
  b.data<float>()[0] = 9.0f;
  EXPECT_EQ(a.data<float>()[0], 1.5f);
  Tensor c = std::move(a);
  EXPECT_EQ(c.data<float>()[1], -2.0f);
  EXPECT_EQ(a.num_elements(), 0);  // NOLINT(bugprone-use-after-move)
}

TEST(TensorTest, ZeroSizedDimension) {
  Tensor t(DataType::kFloat32, {3, 0});
  EXPECT_EQ(t.num_elements(), 0);
  Tensor copy = t;
  EXPECT_EQ(copy.shape(), t.shape());
}

// ---- TensorProto ---------------------------------------------------------

template <typename T>
void ExpectRoundTrip(std::initializer_list<T> values) {
  Tensor t = Tensor::FromValues<T>({static_cast<int64_t>(values.size())}, values);
  auto bytes = SerializeTensorProto(t, "x");
  ASSERT_TRUE(bytes.ok());
  std::string name;
  auto back = ParseTensorProto(*bytes, &name);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(name, "x");
  EXPECT_EQ(back->dtype(), DataTypeOf<T>());
  EXPECT_EQ(back->shape(), t.shape());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(back->data<T>()[i], t.data<T>()[i]) << DataTypeName(t.dtype()) << " " << i;
  }
}

TEST(CheckedSizeTest, CountsFitOrAreRefused) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(*CheckedElementCount({}), 1);
  EXPECT_EQ(*CheckedElementCount({2, 3, 4}), 24);
  EXPECT_EQ(*CheckedElementCount({0, 5}), 0);
  EXPECT_EQ(*CheckedByteCount(DataType::kFloat64, {3, 5}), 120);
  EXPECT_EQ(*CheckedElementCount({kMax}), kMax);
  // Wrapping products: (2^60, 784) wraps to 0 in plain int64 arithmetic.
  EXPECT_FALSE(CheckedElementCount({int64_t{1} << 60, 784}).ok());
  EXPECT_FALSE(CheckedElementCount({kMax, 3}).ok());
  // The non-zero dims must fit even when a zero makes the count 0.
  EXPECT_FALSE(CheckedElementCount({0, int64_t{1} << 32, int64_t{1} << 32}).ok());
  EXPECT_FALSE(CheckedElementCount({3, -1}).ok());
  // Bytes: the count fits but its bytes (or their rounding to 64) do not.
  EXPECT_TRUE(CheckedElementCount({int64_t{1} << 62}).ok());
  EXPECT_FALSE(CheckedByteCount(DataType::kFloat32, {int64_t{1} << 62}).ok());
  EXPECT_FALSE(CheckedByteCount(DataType::kUInt8, {kMax - 10}).ok());
  EXPECT_TRUE(CheckedByteCount(DataType::kUInt8, {kMax - 64}).ok());
  EXPECT_EQ(*CheckedMul(3, 4, "x"), 12);
  EXPECT_FALSE(CheckedMul(kMax, 2, "x").ok());
  EXPECT_FALSE(CheckedAdd(kMax, 1, "x").ok());
  EXPECT_EQ(*CheckedAdd(kMax - 1, 1, "x"), kMax);
}

TEST(TensorProtoTest, DimsAndDataSizeAreCheckedBeforeAllocating) {
  onnx::TensorProto proto;
  proto.set_name("w");
  proto.set_data_type(onnx::TensorProto::FLOAT);
  proto.add_dims(int64_t{1} << 40);  // 4 TB declared
  proto.set_raw_data(std::string(4, '\0'));
  const absl::Status s = CheckTensorProto(proto);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find("'w'"), std::string::npos) << s;
  EXPECT_EQ(TensorFromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
  proto.clear_raw_data();
  proto.add_float_data(1.0f);
  EXPECT_EQ(CheckTensorProto(proto).code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorProtoTest, RawDataRoundTripsEveryType) {
  ExpectRoundTrip<float>({1.0f, -2.5f, 3e30f});
  ExpectRoundTrip<double>({1.0, -2.5e-300});
  ExpectRoundTrip<int64_t>({INT64_MIN, 0, INT64_MAX});
  ExpectRoundTrip<int32_t>({INT32_MIN, 7});
  ExpectRoundTrip<int8_t>({-128, 127});
  ExpectRoundTrip<uint8_t>({0, 255});
  ExpectRoundTrip<bool>({true, false, true});
}

TEST(TensorProtoTest, ReadsTypedFields) {
  onnx::TensorProto p;
  p.set_data_type(onnx::TensorProto::FLOAT);
  p.add_dims(2);
  p.add_float_data(1.0f);
  p.add_float_data(2.0f);
  auto t = TensorFromProto(p);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->data<float>()[1], 2.0f);

  onnx::TensorProto q;
  q.set_data_type(onnx::TensorProto::INT8);
  q.add_dims(2);
  q.add_int32_data(-5);
  q.add_int32_data(100);
  auto u = TensorFromProto(q);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->data<int8_t>()[0], -5);

  onnx::TensorProto b;
  b.set_data_type(onnx::TensorProto::BOOL);
  b.add_int32_data(1);  // a scalar
  auto v = TensorFromProto(b);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->data<bool>()[0]);
}

TEST(TensorProtoTest, Errors) {
  onnx::TensorProto p;
  p.set_name("w");
  p.set_data_type(onnx::TensorProto::FLOAT);
  p.add_dims(3);
  p.set_raw_data(std::string(8, '\0'));
  auto short_raw = TensorFromProto(p);
  EXPECT_EQ(short_raw.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_raw.status().message().find("'w'"), absl::string_view::npos);

  p.clear_raw_data();
  p.add_float_data(1.0f);
  EXPECT_EQ(TensorFromProto(p).status().code(), absl::StatusCode::kInvalidArgument);

  onnx::TensorProto half;
  half.set_data_type(onnx::TensorProto::FLOAT16);
  EXPECT_EQ(TensorFromProto(half).status().code(), absl::StatusCode::kInvalidArgument);

  onnx::TensorProto external;
  external.set_name("big");
  external.set_data_type(onnx::TensorProto::FLOAT);
  external.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* entry = external.add_external_data();
  entry->set_key("location");
  entry->set_value("weights.bin");
  EXPECT_EQ(TensorFromProto(external).status().code(), absl::StatusCode::kUnimplemented);

  EXPECT_EQ(ParseTensorProto("\xff\xff\xff").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- .npy ----------------------------------------------------------------

template <typename T>
void ExpectNpyRoundTrip(std::vector<int64_t> shape, std::initializer_list<T> values) {
  Tensor t = Tensor::FromValues<T>(shape, values);
  auto back = ParseNpy(SerializeNpy(t));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->dtype(), t.dtype());
  EXPECT_EQ(back->shape(), t.shape());
  if (t.num_bytes() > 0) {
    EXPECT_EQ(std::memcmp(back->raw_data(), t.raw_data(), t.num_bytes()), 0);
  }
}

TEST(NpyTest, RoundTripsEveryTypeAndRank) {
  ExpectNpyRoundTrip<float>({2, 2}, {1, 2, 3, 4});
  ExpectNpyRoundTrip<double>({1}, {0.5});
  ExpectNpyRoundTrip<int64_t>({}, {42});
  ExpectNpyRoundTrip<int32_t>({3}, {1, -2, 3});
  ExpectNpyRoundTrip<int8_t>({1, 2}, {-1, 1});
  ExpectNpyRoundTrip<uint8_t>({2}, {0, 255});
  ExpectNpyRoundTrip<bool>({2}, {true, false});
  ExpectNpyRoundTrip<float>({0, 3}, {});
}

TEST(NpyTest, HeaderIsNumpysVersion1Layout) {
  const std::string bytes = SerializeNpy(Tensor::FromValues<float>({3}, {1, 2, 3}));
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_NE(bytes.find("'descr': '<f4', 'fortran_order': False, 'shape': (3,)"),
            std::string::npos);
}

TEST(NpyTest, RejectsBadFiles) {
  EXPECT_EQ(ParseNpy("not numpy").status().code(), absl::StatusCode::kInvalidArgument);
  std::string good = SerializeNpy(Tensor::FromValues<float>({2}, {1, 2}));
  auto truncated = ParseNpy(good.substr(0, good.size() - 1), "t.npy");
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(truncated.status().message().find("t.npy"), absl::string_view::npos);
  std::string half = good;
  half.replace(half.find("<f4"), 3, "<f2");
  EXPECT_EQ(ParseNpy(half).status().code(), absl::StatusCode::kInvalidArgument);
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_EQ(ParseNpy(fortran).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NpyTest, FileRoundTripAndMissingFile) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "qat_tensor_test.npy").string();
  Tensor t = Tensor::FromValues<int32_t>({2}, {5, 6});
  ASSERT_TRUE(WriteNpy(path, t).ok());
  auto back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->data<int32_t>()[1], 6);
  std::remove(path.c_str());
  EXPECT_EQ(ReadNpy(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qat
