// The public FakeQuant API: argument checking and the messages users see.
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/fake_quant.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

void ExpectInvalid(const absl::Status& s, const std::string& fragment) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(fragment));
}

TEST(FakeQuantApiTest, RejectsBadScale) {
  std::vector<float> x(4), y(4);
  for (float scale : {0.0f, -0.5f, kNaN, kInf, -kInf}) {
    SCOPED_TRACE(scale);
    const FakeQuantParams p{scale, 0.0f, QuantRange::Int8()};
    ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {}, p),
                  "scale must be positive and finite");
    ExpectInvalid(
        FakeQuantLsqGradPerTensor(x, x, absl::MakeSpan(y), p).status(),
        "scale must be positive and finite");
  }
}

TEST(FakeQuantApiTest, RejectsBadZeroPoint) {
  std::vector<float> x(4), y(4);
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, 256.0f, QuantRange::UInt8()}),
                "zero_point must be an integer in [0, 255], got 256");
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, -1.0f, QuantRange::UInt8()}),
                "got -1");
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, 2.5f, QuantRange::Int8()}),
                "must be an integer");
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, kNaN, QuantRange::Int8()}),
                "zero_point");
}

TEST(FakeQuantApiTest, RejectsBadRange) {
  std::vector<float> x(4), y(4);
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, 0.0f, QuantRange{5, 5}}),
                "quant_min < quant_max, got [5, 5]");
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, 0.0f, QuantRange{10, -10}}),
                "quant_min < quant_max");
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {},
                                   {0.1f, 0.0f, QuantRange{0, 1 << 25}}),
                "wider than float represents exactly");
}

TEST(FakeQuantApiTest, RejectsMismatchedSizes) {
  std::vector<float> x(4), y(3), dy(5);
  std::unique_ptr<bool[]> mask(new bool[4]);
  const FakeQuantParams p{0.1f, 0.0f, QuantRange::Int8()};
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y), {}, p),
                "output has 3 elements, expected 4");
  std::vector<float> y4(4);
  ExpectInvalid(FakeQuantPerTensor(x, absl::MakeSpan(y4),
                                   absl::Span<bool>(mask.get(), 2), p),
                "mask has 2 elements, expected 4");
  ExpectInvalid(FakeQuantGrad(dy, absl::Span<const bool>(mask.get(), 4),
                              absl::MakeSpan(y4)),
                "mask has 4 elements, expected 5");
  ExpectInvalid(FakeQuantLsqGradPerTensor(x, dy, {}, p).status(),
                "dy has 5 elements, expected 4");
}

TEST(FakeQuantApiTest, RejectsBadPerChannelArguments) {
  const std::vector<int64_t> shape = {2, 3};
  std::vector<float> x(6), y(6);
  std::vector<float> scales = {0.1f, 0.2f}, zps = {0.0f, 0.0f};
  PerChannelFakeQuantParams p{scales, zps, 0, QuantRange::Int8()};

  p.axis = 2;
  ExpectInvalid(FakeQuantPerChannel(shape, x, absl::MakeSpan(y), {}, p),
                "axis 2 is out of range for a tensor of rank 2");
  p.axis = -3;
  ExpectInvalid(FakeQuantPerChannel(shape, x, absl::MakeSpan(y), {}, p),
                "axis -3");
  p.axis = 1;  // 3 channels, but 2 scales
  ExpectInvalid(FakeQuantPerChannel(shape, x, absl::MakeSpan(y), {}, p),
                "scales has 2 elements, expected 3");
  p.axis = 0;
  std::vector<float> bad_scales = {0.1f, -0.2f};
  p.scales = bad_scales;
  ExpectInvalid(FakeQuantPerChannel(shape, x, absl::MakeSpan(y), {}, p),
                "scale[1] must be positive and finite, got -0.2");
  p.scales = scales;
  std::vector<float> bad_zps = {0.0f, 300.0f};
  p.zero_points = bad_zps;
  ExpectInvalid(FakeQuantPerChannel(shape, x, absl::MakeSpan(y), {}, p),
                "zero_point[1] must be an integer in [-128, 127], got 300");
  p.zero_points = zps;
  ExpectInvalid(FakeQuantPerChannel({2, 4}, x, absl::MakeSpan(y), {}, p),
                "input has 6 elements, expected 8");
  ExpectInvalid(FakeQuantPerChannel({}, x, absl::MakeSpan(y), {}, p),
                "rank >= 1");
  ExpectInvalid(FakeQuantPerChannel({2, -3}, x, absl::MakeSpan(y), {}, p),
                "negative dimension");
  std::vector<float> sg(3), zg(2);
  ExpectInvalid(FakeQuantLsqGradPerChannel(shape, x, x, {}, absl::MakeSpan(sg),
                                           absl::MakeSpan(zg), p),
                "scale_grads has 3 elements, expected 2");
}

TEST(FakeQuantApiTest, BlockedParamShapeIsOpset21s) {
  auto s = BlockedParamShape({70, 5}, 0, 32);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<int64_t>{3, 5}));  // ceil(70 / 32)
  s = BlockedParamShape({5, 64}, -1, 32);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<int64_t>{5, 2}));
  ExpectInvalid(BlockedParamShape({5, 64}, 1, 0).status(), "block_size >= 1");
  ExpectInvalid(BlockedParamShape({5, 64}, 2, 4).status(), "out of range");
  ExpectInvalid(BlockedParamShape({}, 0, 4).status(), "got a scalar");
}

TEST(FakeQuantApiTest, RejectsBadPerBlockArguments) {
  std::vector<float> x(70 * 5), y(70 * 5);
  std::vector<float> s3(15, 0.1f), z3(15, 0.0f), s2(10, 0.1f), z2(10, 0.0f);
  BlockFakeQuantParams p{s3, z3, 0, 32, QuantRange::Int4()};
  EXPECT_TRUE(FakeQuantPerBlock({70, 5}, x, absl::MakeSpan(y), {}, p).ok());
  // Scales shaped for blocks of 35 (2 blocks), not 32 (3 blocks).
  BlockFakeQuantParams wrong{s2, z2, 0, 32, QuantRange::Int4()};
  ExpectInvalid(FakeQuantPerBlock({70, 5}, x, absl::MakeSpan(y), {}, wrong),
                "scales has 10 elements, expected 15");
  p.block_size = -1;
  ExpectInvalid(FakeQuantPerBlock({70, 5}, x, absl::MakeSpan(y), {}, p),
                "block_size >= 1");
  p.block_size = 32;
  z3[4] = 9.0f;  // outside int4
  ExpectInvalid(FakeQuantPerBlock({70, 5}, x, absl::MakeSpan(y), {}, p),
                "zero_point[4] must be an integer in [-8, 7]");
  z3[4] = 0.0f;
  s3[14] = 0.0f;
  std::vector<float> g(15);
  ExpectInvalid(FakeQuantLsqGradPerBlock({70, 5}, x, x, absl::MakeSpan(y),
                                         absl::MakeSpan(g), absl::MakeSpan(g), p),
                "scale[14] must be positive and finite");
}

TEST(FakeQuantApiTest, OneBlockOverTheAxisIsPerChannelOnTheOthers) {
  // Blocks of the whole axis 0 of [K, N]: scale [1, N], which is per
  // channel along axis 1.
  const int64_t k = 9, n = 4;
  std::vector<float> x(k * n);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.37f * (static_cast<float>(i) - 17.0f);
  const std::vector<float> scales = {0.1f, 0.5f, 1.5f, 0.03f};
  const std::vector<float> zps = {0.0f, -3.0f, 2.0f, 7.0f};
  std::vector<float> yb(x.size()), yc(x.size());
  ASSERT_TRUE(FakeQuantPerBlock({k, n}, x, absl::MakeSpan(yb), {},
                                {scales, zps, 0, k, QuantRange::Int4()})
                  .ok());
  ASSERT_TRUE(FakeQuantPerChannel({k, n}, x, absl::MakeSpan(yc), {},
                                  {scales, zps, 1, QuantRange::Int4()})
                  .ok());
  EXPECT_EQ(yb, yc);
  // With blocks of 4 the second block row has its own scales: results differ.
  std::vector<float> s2(12), z2(12, 0.0f), y4(x.size());
  for (int i = 0; i < 12; ++i) s2[i] = 0.05f * static_cast<float>(i + 1);
  ASSERT_TRUE(FakeQuantPerBlock({k, n}, x, absl::MakeSpan(y4), {},
                                {s2, z2, 0, 4, QuantRange::Int4()})
                  .ok());
  // Element (5, 0) is in block 1 and uses scale s2[4] = 0.25.
  EXPECT_EQ(y4[5 * n], std::nearbyint(x[5 * n] / 0.25f) * 0.25f);
}

TEST(FakeQuantApiTest, RejectsBadGradScale) {
  std::vector<float> x(4);
  const FakeQuantParams p{0.1f, 0.0f, QuantRange::Int8()};
  for (float g : {0.0f, -1.0f, kNaN, kInf}) {
    ExpectInvalid(FakeQuantLsqGradPerTensor(x, x, {}, p, g).status(),
                  "grad_scale must be positive and finite");
  }
}

TEST(FakeQuantApiTest, LsqGradScale) {
  auto g = LsqGradScale(500 * 784, 127);
  ASSERT_TRUE(g.ok());
  EXPECT_FLOAT_EQ(*g, static_cast<float>(1.0 / std::sqrt(500.0 * 784 * 127)));
  EXPECT_EQ(LsqGradScale(0, 127).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LsqGradScale(10, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FakeQuantApiTest, EmptyTensorsAreFine) {
  std::vector<float> empty;
  const FakeQuantParams p{0.1f, 0.0f, QuantRange::Int8()};
  EXPECT_TRUE(FakeQuantPerTensor(empty, absl::MakeSpan(empty), {}, p).ok());
  auto g = FakeQuantLsqGradPerTensor(empty, empty, {}, p);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->scale, 0.0f);
  EXPECT_EQ(g->zero_point, 0.0f);
}

TEST(FakeQuantApiTest, ReportsAVariant) {
  const std::string v = FakeQuantKernelVariant();
  EXPECT_TRUE(v == "scalar" || v == "sse2" || v == "avx2" || v == "avx512") << v;
}

TEST(FakeQuantApiTest, PerChannelMatchesPerTensorPerSlice) {
  // Channel c of a per-channel call equals a per-tensor call on that slice.
  const std::vector<int64_t> shape = {3, 4, 5};
  std::vector<float> x(60);
  for (int i = 0; i < 60; ++i) x[i] = (i - 30) * 0.173f;
  std::vector<float> scales = {0.05f, 0.1f, 0.2f, 0.4f};
  std::vector<float> zps = {-3.0f, 0.0f, 5.0f, 127.0f};
  std::vector<float> y(60);
  ASSERT_TRUE(FakeQuantPerChannel(shape, x, absl::MakeSpan(y), {},
                                  {scales, zps, 1, QuantRange::Int8()})
                  .ok());
  for (int o = 0; o < 3; ++o) {
    for (int c = 0; c < 4; ++c) {
      const int base = (o * 4 + c) * 5;
      std::vector<float> slice(x.begin() + base, x.begin() + base + 5), ys(5);
      ASSERT_TRUE(FakeQuantPerTensor(slice, absl::MakeSpan(ys), {},
                                     {scales[c], zps[c], QuantRange::Int8()})
                      .ok());
      for (int i = 0; i < 5; ++i) EXPECT_EQ(y[base + i], ys[i]);
    }
  }
}

}  // namespace
}  // namespace qat
