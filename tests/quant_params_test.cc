// Quantized types, their ranges, and ComputeQuantParams against worked
// examples computed by hand (ONNX Runtime's compute_scale_zp semantics).
#include "qat/quant_params.h"

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();
const float kTiny = std::numeric_limits<float>::min();  // 2^-126

void ExpectParams(float rmin, float rmax, QuantRange range, bool symmetric,
                  float scale, int32_t zero_point) {
  SCOPED_TRACE(testing::Message() << "[" << rmin << ", " << rmax << "] on ["
                                  << range.quant_min << ", " << range.quant_max
                                  << "] symmetric=" << symmetric);
  auto p = ComputeQuantParams(rmin, rmax, range, symmetric);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->scale, scale);
  EXPECT_EQ(p->zero_point, zero_point);
}

TEST(QuantTypeTest, NamesRoundTrip) {
  for (QuantType t : {QuantType::kInt8, QuantType::kUInt8, QuantType::kInt4,
                      QuantType::kUInt4, QuantType::kInt16, QuantType::kUInt16}) {
    auto parsed = ParseQuantType(QuantTypeName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_STREQ(QuantTypeName(QuantType::kUInt16), "uint16");
  auto bad = ParseQuantType("int9");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("unknown quantized type 'int9'"));
  EXPECT_FALSE(ParseQuantType("INT8").ok());  // names are lower case
}

TEST(QuantTypeTest, Bits) {
  EXPECT_EQ(QuantTypeBits(QuantType::kInt4), 4);
  EXPECT_EQ(QuantTypeBits(QuantType::kUInt8), 8);
  EXPECT_EQ(QuantTypeBits(QuantType::kInt16), 16);
}

struct RangeCase {
  QuantType type;
  bool symmetric, reduce_range;
  int32_t qmin, qmax;
};

TEST(QuantTypeTest, RangesFollowOnnxRuntime) {
  const RangeCase cases[] = {
      {QuantType::kInt8, false, false, -128, 127},
      {QuantType::kInt8, true, false, -127, 127},
      {QuantType::kInt8, false, true, -64, 64},
      {QuantType::kInt8, true, true, -64, 64},  // reduce_range wins
      {QuantType::kUInt8, false, false, 0, 255},
      {QuantType::kUInt8, true, false, 0, 254},
      {QuantType::kUInt8, false, true, 0, 127},
      {QuantType::kInt16, false, false, -32768, 32767},
      {QuantType::kInt16, true, false, -32767, 32767},
      {QuantType::kInt16, false, true, -16384, 16384},
      {QuantType::kUInt16, true, false, 0, 65534},
      {QuantType::kUInt16, false, true, 0, 32767},
      {QuantType::kInt4, false, false, -8, 7},
      {QuantType::kInt4, true, false, -8, 7},  // no narrow 4-bit range
      {QuantType::kInt4, false, true, -4, 3},
      {QuantType::kUInt4, false, false, 0, 15},
      {QuantType::kUInt4, true, true, 0, 7},
  };
  for (const RangeCase& c : cases) {
    SCOPED_TRACE(testing::Message() << QuantTypeName(c.type) << " symmetric="
                                    << c.symmetric << " reduce=" << c.reduce_range);
    const QuantRange r = QuantRangeFor(c.type, c.symmetric, c.reduce_range);
    EXPECT_EQ(r.quant_min, c.qmin);
    EXPECT_EQ(r.quant_max, c.qmax);
  }
  EXPECT_EQ(QuantTypeRange(QuantType::kUInt16).quant_max, 65535);
}

TEST(ComputeQuantParamsTest, AsymmetricUint8) {
  // [-1, 2]: scale = 3 / 255 = 0.0117647...; zp = round(0 - (-1) / scale)
  // = round(85) = 85.
  ExpectParams(-1.0f, 2.0f, QuantRange::UInt8(), false,
               static_cast<float>(3.0 / 255.0), 85);
  // [0.5, 3] is widened to [0, 3]: same scale, zp = round(0 - 0) = 0.
  ExpectParams(0.5f, 3.0f, QuantRange::UInt8(), false,
               static_cast<float>(3.0 / 255.0), 0);
  // [-4, -1] is widened to [-4, 0]: scale = 4 / 255, zp = round(4 / scale)
  // = 255.
  ExpectParams(-4.0f, -1.0f, QuantRange::UInt8(), false,
               static_cast<float>(4.0 / 255.0), 255);
}

TEST(ComputeQuantParamsTest, AsymmetricInt8) {
  // [-1, 3] on [-128, 127]: scale = 4 / 255; zp = round(-128 + 1 / scale)
  // = round(-128 + 63.75) = round(-64.25) = -64.
  ExpectParams(-1.0f, 3.0f, QuantRange::Int8(), false,
               static_cast<float>(4.0 / 255.0), -64);
}

TEST(ComputeQuantParamsTest, SymmetricInt8) {
  // [-0.5, 2] becomes [-2, 2] on [-127, 127]: scale = 4 / 254,
  // zp = round((-127 + 127) / 2) = 0.
  ExpectParams(-0.5f, 2.0f, QuantRange::Int8Narrow(), true,
               static_cast<float>(4.0 / 254.0), 0);
  // A one-sided range is mirrored too: [0, 1] -> [-1, 1], scale = 2 / 254.
  ExpectParams(0.0f, 1.0f, QuantRange::Int8Narrow(), true,
               static_cast<float>(2.0 / 254.0), 0);
}

TEST(ComputeQuantParamsTest, SymmetricUnsignedCentresTheZeroPoint) {
  // ORT's symmetric uint8 range [0, 254]: zp = round(254 / 2) = 127.
  ExpectParams(-1.0f, 1.0f, QuantRange{0, 254}, true,
               static_cast<float>(2.0 / 254.0), 127);
  // The full [0, 255]: zp = round(127.5) = 128 (half to even).
  ExpectParams(-1.0f, 1.0f, QuantRange::UInt8(), true,
               static_cast<float>(2.0 / 255.0), 128);
}

TEST(ComputeQuantParamsTest, RoundsHalfToEven) {
  // Symmetric on [-1, 6]: zp = round((-1 + 6) / 2) = round(2.5) = 2, where
  // rounding half away from zero would give 3.  scale = 2 / 7.
  ExpectParams(-1.0f, 1.0f, QuantRange{-1, 6}, true,
               static_cast<float>(2.0 / 7.0), 2);
  // Asymmetric [-1.25, 126.25] on [0, 255]: scale = 127.5 / 255 = 0.5
  // exactly, zp = round(1.25 / 0.5) = round(2.5) = 2.
  ExpectParams(-1.25f, 126.25f, QuantRange::UInt8(), false, 0.5f, 2);
  // int4 symmetric [-1, 0.5] -> [-1, 1] on [-8, 7]: scale = 2 / 15,
  // zp = round(-0.5) = 0.
  ExpectParams(-1.0f, 0.5f, QuantRange::Int4(), true,
               static_cast<float>(2.0 / 15.0), 0);
}

TEST(ComputeQuantParamsTest, ReduceRange) {
  // int8 reduce_range [-64, 64], [-1, 1]: scale = 2 / 128 = 0.015625,
  // zp = round(-64 + 1 / 0.015625) = 0.
  ExpectParams(-1.0f, 1.0f, QuantRangeFor(QuantType::kInt8, false, true), false,
               0.015625f, 0);
  // uint8 reduce_range [0, 127], [-1, 1]: scale = 2 / 127,
  // zp = round(127 / 2) = round(63.5) = 64.
  ExpectParams(-1.0f, 1.0f, QuantRangeFor(QuantType::kUInt8, false, true), false,
               static_cast<float>(2.0 / 127.0), 64);
}

TEST(ComputeQuantParamsTest, DividesInDoubleAsOnnxRuntimeDoes) {
  // rmin = -0.1f = -0.100000001490116..., rmax = 2.9f; the width rounds to
  // 3.0f in float.  In double, scale = 3 / 255 = 0.01176470588235294 and
  // 0.100000001490116 / scale = 8.50000012666, so zp = 9.  Had the division
  // been done with the float scale 0.0117647061, the quotient would round to
  // 8.5f and zp would be 8.
  ExpectParams(-0.1f, 2.9f, QuantRange::UInt8(), false,
               static_cast<float>(3.0 / 255.0), 9);
}

TEST(ComputeQuantParamsTest, TinyScaleBecomesOne) {
  ExpectParams(0.0f, 0.0f, QuantRange::UInt8(), false, 1.0f, 0);
  ExpectParams(0.0f, 0.0f, QuantRange::Int8Narrow(), true, 1.0f, 0);
  // 254 * 2^-126 / 255 is below 2^-126: scale 1, zp 0.
  ExpectParams(0.0f, 254.0f * kTiny, QuantRange::UInt8(), false, 1.0f, 0);
  // 255 * 2^-126 / 255 = 2^-126 exactly, which is not below it.
  ExpectParams(0.0f, 255.0f * kTiny, QuantRange::UInt8(), false, kTiny, 0);
}

TEST(ComputeQuantParamsTest, RejectsBadInput) {
  auto expect_invalid = [](float rmin, float rmax, QuantRange r,
                           const std::string& fragment) {
    auto p = ComputeQuantParams(rmin, rmax, r, false);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument)
        << rmin << " " << rmax;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(fragment));
  };
  expect_invalid(kNaN, 1.0f, QuantRange::UInt8(), "must be finite, got [nan, 1]");
  expect_invalid(-1.0f, kInf, QuantRange::UInt8(), "must be finite");
  expect_invalid(-kInf, 0.0f, QuantRange::UInt8(), "must be finite");
  expect_invalid(2.0f, 1.0f, QuantRange::UInt8(),
                 "rmin must not exceed rmax, got [2, 1]");
  expect_invalid(-3e38f, 3e38f, QuantRange::UInt8(), "wider than float");
  expect_invalid(-1.0f, 1.0f, QuantRange{1, 5}, "quant_min <= 0 <= quant_max");
  expect_invalid(-1.0f, 1.0f, QuantRange{0, 0}, "got [0, 0]");
}

}  // namespace
}  // namespace qat
