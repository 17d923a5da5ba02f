// Every FakeQuant kernel variant against the scalar reference, bit for bit.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fake_quant_tester.h"
#include "gtest/gtest.h"
#include "kernels/fake_quant_variants.h"

namespace qat {
namespace testing {
namespace {

using kernels::FakeQuantKernels;

std::vector<float> RandomInputs(size_t n, float stddev, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// x / scale = k + 0.5 exactly, for k in [-count, count).
std::vector<float> Ties(float scale, int count) {
  std::vector<float> x;
  for (int k = -count; k < count; ++k) x.push_back((k + 0.5f) * scale);
  return x;
}

std::vector<float> SpecialValues() {
  const float inf = std::numeric_limits<float>::infinity();
  const float denorm = std::numeric_limits<float>::denorm_min();
  return {0.0f,
          -0.0f,
          std::numeric_limits<float>::quiet_NaN(),
          -std::numeric_limits<float>::quiet_NaN(),
          inf,
          -inf,
          denorm,
          -denorm,
          std::numeric_limits<float>::min(),
          -std::numeric_limits<float>::min(),
          std::numeric_limits<float>::max(),
          std::numeric_limits<float>::lowest(),
          1e-30f,
          -1e-30f,
          8388608.0f,
          -8388609.0f,
          1e20f,
          -1e20f};
}

const std::vector<QuantRange>& AllRanges() {
  static const std::vector<QuantRange> ranges = {
      QuantRange::Int4(),  QuantRange::UInt4(),      QuantRange::Int8(),
      QuantRange::UInt8(), QuantRange::Int8Narrow(), QuantRange::Int16(),
      QuantRange::UInt16(), {-3, 5}};
  return ranges;
}

// A zero point that is valid for the range and not trivially zero.
float ZeroPointFor(QuantRange r) {
  return static_cast<float>(r.quant_min + (r.quant_max - r.quant_min) / 3);
}

class FakeQuantKernelsTest
    : public ::testing::TestWithParam<const FakeQuantKernels*> {
 protected:
  const FakeQuantKernels& kernels() const { return *GetParam(); }
};

TEST_P(FakeQuantKernelsTest, RandomDataEveryRange) {
  for (QuantRange r : AllRanges()) {
    SCOPED_TRACE(absl::StrFormat("range [%d, %d]", r.quant_min, r.quant_max));
    // Spread so that both ends saturate for the narrow ranges.
    FakeQuantTester()
        .inputs(RandomInputs(4099, 2.0f, 7))
        .scale(0.037f)
        .zero_point(ZeroPointFor(r))
        .range(r)
        .Test(kernels());
  }
}

TEST_P(FakeQuantKernelsTest, ExactTiesRoundToEven) {
  for (float scale : {1.0f, 0.5f, 0.25f, 0.125f, 2.0f, 0.0078125f}) {
    SCOPED_TRACE(absl::StrFormat("scale %g", scale));
    FakeQuantTester()
        .inputs(Ties(scale, 200))
        .scale(scale)
        .range(QuantRange::Int16())
        .Test(kernels());
  }
  // Ties must go to even: 0.5 -> 0, 1.5 -> 2, -0.5 -> -0, -1.5 -> -2.
  std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f};
  std::vector<float> y(x.size());
  ASSERT_TRUE(internal::FakeQuantPerTensor(
                  kernels(), x, absl::MakeSpan(y), {},
                  FakeQuantParams{1.0f, 0.0f, QuantRange::Int8()}, nullptr)
                  .ok());
  EXPECT_EQ(y, (std::vector<float>{0.0f, 2.0f, 2.0f, 0.0f, -2.0f, -2.0f}));
}

TEST_P(FakeQuantKernelsTest, SaturatesAtBothEnds) {
  std::vector<float> x;
  for (int k = -300; k <= 300; ++k) x.push_back(k * 0.5f);
  for (QuantRange r : AllRanges()) {
    FakeQuantTester().inputs(x).scale(0.5f).zero_point(ZeroPointFor(r)).range(r)
        .Test(kernels());
  }
  // Check the saturated values themselves for one case.
  std::vector<float> y(3);
  auto mask = MakeBools(3, true);
  const std::vector<float> xs = {-1000.0f, 1000.0f, 3.0f};
  ASSERT_TRUE(internal::FakeQuantPerTensor(
                  kernels(), xs, absl::MakeSpan(y),
                  absl::Span<bool>(mask.get(), 3),
                  FakeQuantParams{0.5f, 3.0f, QuantRange::UInt8()}, nullptr)
                  .ok());
  EXPECT_EQ(y[0], (0 - 3) * 0.5f);
  EXPECT_EQ(y[1], (255 - 3) * 0.5f);
  EXPECT_EQ(y[2], 3.0f);
  EXPECT_FALSE(mask[0]);
  EXPECT_FALSE(mask[1]);
  EXPECT_TRUE(mask[2]);
}

TEST_P(FakeQuantKernelsTest, NanInfDenormalsAndNegativeZero) {
  for (QuantRange r : AllRanges()) {
    FakeQuantTester().inputs(SpecialValues()).scale(0.1f)
        .zero_point(ZeroPointFor(r)).range(r).Test(kernels());
    FakeQuantTester().inputs(SpecialValues()).scale(1e-38f).range(r)
        .zero_point(ZeroPointFor(r)).Test(kernels());
  }
  // The documented semantics, not only agreement with the reference.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {std::nanf(""), inf, -inf};
  std::vector<float> y(3);
  auto mask = MakeBools(3, true);
  ASSERT_TRUE(internal::FakeQuantPerTensor(
                  kernels(), x, absl::MakeSpan(y),
                  absl::Span<bool>(mask.get(), 3),
                  FakeQuantParams{0.5f, 0.0f, QuantRange::Int8()}, nullptr)
                  .ok());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 127 * 0.5f);
  EXPECT_EQ(y[2], -128 * 0.5f);
  EXPECT_FALSE(mask[0]);
  EXPECT_FALSE(mask[1]);
  EXPECT_FALSE(mask[2]);
}

TEST_P(FakeQuantKernelsTest, SizesAroundVectorWidthAndThreadSplit) {
  ThreadPool pool(3);
  // Below, at and above every vector width (4, 8, 16, 32 with unrolling),
  // the LSQ block (256) and chunk (4096), and the parallel threshold (65536).
  const std::vector<size_t> sizes = {0,     1,     3,     4,     5,    7,
                                     8,     9,     15,    16,    17,   31,
                                     32,    33,    255,   256,   257,  4095,
                                     4096,  4097,  8193,  65535, 65536,
                                     65537, 3 * 65536 + 77};
  for (size_t n : sizes) {
    SCOPED_TRACE(absl::StrFormat("n = %d", n));
    FakeQuantTester().inputs(RandomInputs(n, 5.0f, static_cast<uint32_t>(n)))
        .scale(0.05f).zero_point(3.0f).range(QuantRange::Int8())
        .Test(kernels());
    FakeQuantTester().inputs(RandomInputs(n, 5.0f, static_cast<uint32_t>(n)))
        .scale(0.05f).zero_point(3.0f).range(QuantRange::Int8()).pool(&pool)
        .Test(kernels());
  }
}

TEST_P(FakeQuantKernelsTest, UnalignedPointers) {
  // Views that start one float into a buffer: no alignment is assumed.
  const std::vector<float> base = RandomInputs(1027, 3.0f, 11);
  for (size_t offset = 1; offset < 4; ++offset) {
    FakeQuantTester().inputs({base.begin() + offset, base.end()})
        .scale(0.02f).range(QuantRange::Int8()).Test(kernels());
  }
}

TEST_P(FakeQuantKernelsTest, BitIdenticalForAnyThreadCount) {
  const std::vector<float> x = RandomInputs((1 << 18) + 13, 4.0f, 3);
  for (int threads : {1, 2, 3, 5, 8}) {
    SCOPED_TRACE(absl::StrFormat("%d threads", threads));
    ThreadPool pool(threads);
    FakeQuantTester().inputs(x).scale(0.03f).zero_point(-5.0f)
        .range(QuantRange::Int8()).pool(&pool).Test(kernels());
    PerChannelTester().shape({64, 37, 113}).axis(1).pool(&pool).Test(kernels());
    PerChannelTester().shape({1031, 300}).axis(1).pool(&pool).Test(kernels());
  }
}

TEST_P(FakeQuantKernelsTest, PerChannelEveryAxisOfOneToFourD) {
  const std::vector<std::vector<int64_t>> shapes = {
      {1}, {7}, {33}, {3, 5}, {16, 9}, {2, 3, 4}, {5, 8, 17},
      {2, 3, 4, 5}, {4, 1, 3, 16}, {3, 6, 7, 9}};
  uint32_t seed = 1;
  for (const auto& shape : shapes) {
    for (int64_t axis = -static_cast<int64_t>(shape.size());
         axis < static_cast<int64_t>(shape.size()); ++axis) {
      SCOPED_TRACE(absl::StrFormat("shape rank %d, axis %d", shape.size(),
                                   axis));
      PerChannelTester().shape(shape).axis(axis).seed(seed++).Test(kernels());
      PerChannelTester().shape(shape).axis(axis).seed(seed++)
          .range(QuantRange::UInt4()).Test(kernels());
    }
  }
}

TEST_P(FakeQuantKernelsTest, PerChannelLsqAcrossChunks) {
  // Channels longer than one LSQ chunk, with runs that do not start on a
  // lane boundary (inner = 3, 13).
  PerChannelTester().shape({3, 9000}).axis(0).Test(kernels());
  PerChannelTester().shape({2800, 4, 3}).axis(1).Test(kernels());
  PerChannelTester().shape({700, 2, 13}).axis(1).Test(kernels());
  // Channels last (the rows kernel): rows across blocks and chunks, column
  // counts below, at and above the vector widths and the column tile (64).
  PerChannelTester().shape({9000, 5}).axis(1).Test(kernels());
  PerChannelTester().shape({300, 16}).axis(-1).Test(kernels());
  PerChannelTester().shape({257, 17}).axis(1).Test(kernels());
  PerChannelTester().shape({784, 130}).axis(1).Test(kernels());
  PerChannelTester().shape({2, 3, 65}).axis(2).Test(kernels());
}

TEST_P(FakeQuantKernelsTest, PerBlockDividingAndPartialLastBlock) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t axis, block;
  };
  const std::vector<Case> cases = {
      {{64, 5}, 0, 32},     // MatMul weight [K, N], blocks divide K
      {{70, 5}, 0, 32},     // last block of 6
      {{5, 70}, 1, 32},     // Gemm transB weight [N, K]: contiguous blocks
      {{5, 64}, -1, 16},    // contiguous, dividing
      {{7}, 0, 3},          // 1-D, partial
      {{3, 7, 9}, 1, 4},    // middle axis, partial
      {{2, 9, 4, 3}, 1, 9}, // one block: per-channel-like
      {{2, 5, 3}, 1, 64},   // block larger than the axis
      {{9000, 2}, 0, 8500}, // a block longer than one LSQ chunk, strided
      {{2, 9000}, 1, 8500}, // and contiguous
  };
  uint32_t seed = 7;
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrFormat("rank %d axis %d block %d", c.shape.size(),
                                 c.axis, c.block));
    PerBlockTester().shape(c.shape).axis(c.axis).block_size(c.block)
        .seed(seed++).Test(kernels());
    PerBlockTester().shape(c.shape).axis(c.axis).block_size(c.block)
        .range(QuantRange::UInt4()).seed(seed++).Test(kernels());
  }
}

TEST_P(FakeQuantKernelsTest, PerBlockBitIdenticalForAnyThreadCount) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    PerBlockTester().shape({1024, 96}).axis(0).block_size(32).pool(&pool)
        .Test(kernels());
    PerBlockTester().shape({96, 1000}).axis(1).block_size(128).pool(&pool)
        .Test(kernels());
  }
}

std::string VariantName(
    const ::testing::TestParamInfo<const FakeQuantKernels*>& info) {
  return info.param->name;
}

// The AVX-512 variant runs every case above when this CPU has AVX-512F; the
// skip says so plainly when it does not.
TEST(FakeQuantVariantsTest, Avx512RunsWhereTheCpuHasIt) {
  bool listed = false;
  for (const FakeQuantKernels* k : kernels::SupportedFakeQuantVariants()) {
    listed = listed || std::string(k->name) == "avx512";
  }
#if defined(QAT_HAVE_AVX2_KERNELS)
  if (!kernels::CpuSupports(kernels::Isa::kAvx512)) {
    EXPECT_FALSE(listed);
    GTEST_SKIP() << "this CPU has no AVX-512F: the avx512 FakeQuant variant was not tested";
  }
  EXPECT_TRUE(listed) << "the CPU has AVX-512F but the avx512 variant is not supported";
#else
  EXPECT_FALSE(listed);
  GTEST_SKIP() << "built without the x86 SIMD variants (QAT_ENABLE_AVX2=OFF): no avx512 variant";
#endif
}

INSTANTIATE_TEST_SUITE_P(AllVariants, FakeQuantKernelsTest,
                         ::testing::ValuesIn(
                             kernels::SupportedFakeQuantVariants()),
                         VariantName);

}  // namespace

void PerChannelTester::Test(const kernels::FakeQuantKernels& k) const {
  const int64_t rank = static_cast<int64_t>(shape_.size());
  const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
  int64_t outer = 1, inner = 1, n = 1;
  for (int64_t d = 0; d < rank; ++d) {
    n *= shape_[d];
    if (d < axis) outer *= shape_[d];
    if (d > axis) inner *= shape_[d];
  }
  const int64_t channels = shape_[axis];
  std::mt19937 rng(seed_);
  std::uniform_real_distribution<float> scale_dist(0.01f, 0.2f);
  std::uniform_int_distribution<int32_t> zp_dist(range_.quant_min,
                                                 range_.quant_max);
  std::vector<float> scales(channels), zps(channels);
  std::vector<kernels::FakeQuantGrid> grids(channels);
  for (int64_t c = 0; c < channels; ++c) {
    scales[c] = scale_dist(rng);
    zps[c] = static_cast<float>(zp_dist(rng));
    grids[c] = GridOf(scales[c], zps[c], range_);
  }
  std::vector<float> x = RandomInputs(n, 4.0f, seed_ + 1000);
  if (n > 2) {  // a few specials among the random values
    x[0] = std::numeric_limits<float>::quiet_NaN();
    x[n / 2] = -std::numeric_limits<float>::infinity();
    x[n - 1] = -0.0f;
  }
  const PerChannelFakeQuantParams params{scales, zps, axis_, range_};

  std::vector<float> want_y(n);
  BoolBuffer want_mask = MakeBools(n, false);
  kernels::FakeQuantPerChannelReference(outer, channels, inner, x.data(),
                                        want_y.data(), want_mask.get(),
                                        grids.data());
  std::vector<float> y(n, kSentinel);
  BoolBuffer mask = MakeBools(n, true);
  const absl::Status st = internal::FakeQuantPerChannel(
      k, shape_, x, absl::MakeSpan(y), absl::Span<bool>(mask.get(), n), params,
      pool_);
  ASSERT_TRUE(st.ok()) << st;
  ExpectSameFloats(want_y, y, x, "per-channel y");
  ExpectSameMasks(want_mask.get(), mask.get(), n, x);

  // LSQ per channel, with NaN removed from x so that the sums are finite.
  if (n > 2) x[0] = 0.3f;
  std::vector<float> dy = RandomInputs(n, 1.0f, seed_ + 2000);
  std::vector<kernels::LsqSums> want_sums(channels);
  std::vector<float> want_dx(n), dx(n, kSentinel);
  kernels::LsqBackwardPerChannelReference(outer, channels, inner, x.data(),
                                          dy.data(), want_dx.data(),
                                          grids.data(), want_sums.data());
  std::vector<float> sg(channels, kSentinel), zg(channels, kSentinel);
  const float g = 0.5f;
  const absl::Status lst = internal::FakeQuantLsqGradPerChannel(
      k, shape_, x, dy, absl::MakeSpan(dx), absl::MakeSpan(sg),
      absl::MakeSpan(zg), params, g, pool_);
  ASSERT_TRUE(lst.ok()) << lst;
  ExpectSameFloats(want_dx, dx, x, "per-channel LSQ dx");
  ExpectSameLsqGrads(want_sums, grids, g, sg, zg, "channel");
}

}  // namespace testing
}  // namespace qat

namespace qat {
namespace testing {

void PerBlockTester::Test(const kernels::FakeQuantKernels& k) const {
  const int64_t rank = static_cast<int64_t>(shape_.size());
  const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
  int64_t outer = 1, inner = 1, n = 1;
  for (int64_t d = 0; d < rank; ++d) {
    n *= shape_[d];
    if (d < axis) outer *= shape_[d];
    if (d > axis) inner *= shape_[d];
  }
  const int64_t len = shape_[axis];
  const int64_t blocks = (len + block_size_ - 1) / block_size_;
  const int64_t entries = outer * blocks * inner;
  auto pshape = BlockedParamShape(shape_, axis_, block_size_);
  ASSERT_TRUE(pshape.ok()) << pshape.status();
  ASSERT_EQ((*pshape)[axis], blocks);
  std::mt19937 rng(seed_);
  std::uniform_real_distribution<float> scale_dist(0.05f, 1.0f);
  std::uniform_int_distribution<int32_t> zp_dist(range_.quant_min,
                                                 range_.quant_max);
  std::vector<float> scales(entries), zps(entries);
  std::vector<kernels::FakeQuantGrid> grids(entries);
  for (int64_t e = 0; e < entries; ++e) {
    scales[e] = scale_dist(rng);
    zps[e] = static_cast<float>(zp_dist(rng));
    grids[e] = GridOf(scales[e], zps[e], range_);
  }
  std::vector<float> x = RandomInputs(n, 4.0f, seed_ + 1000);
  if (n > 2) {
    x[0] = std::numeric_limits<float>::quiet_NaN();
    x[n / 2] = std::numeric_limits<float>::infinity();
    x[n - 1] = -0.0f;
  }
  const BlockFakeQuantParams params{scales, zps, axis_, block_size_, range_};

  std::vector<float> want_y(n);
  BoolBuffer want_mask = MakeBools(n, false);
  kernels::FakeQuantPerBlockReference(outer, len, inner, block_size_, x.data(),
                                      want_y.data(), want_mask.get(),
                                      grids.data());
  std::vector<float> y(n, kSentinel);
  BoolBuffer mask = MakeBools(n, true);
  const absl::Status st = internal::FakeQuantPerBlock(
      k, shape_, x, absl::MakeSpan(y), absl::Span<bool>(mask.get(), n), params,
      pool_);
  ASSERT_TRUE(st.ok()) << st;
  ExpectSameFloats(want_y, y, x, "per-block y");
  ExpectSameMasks(want_mask.get(), mask.get(), n, x);

  // LSQ, with NaN and Inf removed so that the sums are finite.
  if (n > 2) x[0] = 0.3f, x[n / 2] = -2.0f;
  std::vector<float> dy = RandomInputs(n, 1.0f, seed_ + 2000);
  std::vector<kernels::LsqSums> want_sums(entries);
  std::vector<float> want_dx(n), dx(n, kSentinel);
  kernels::LsqBackwardPerBlockReference(outer, len, inner, block_size_,
                                        x.data(), dy.data(), want_dx.data(),
                                        grids.data(), want_sums.data());
  std::vector<float> sg(entries, kSentinel), zg(entries, kSentinel);
  const float g = 0.5f;
  const absl::Status lst = internal::FakeQuantLsqGradPerBlock(
      k, shape_, x, dy, absl::MakeSpan(dx), absl::MakeSpan(sg),
      absl::MakeSpan(zg), params, g, pool_);
  ASSERT_TRUE(lst.ok()) << lst;
  ExpectSameFloats(want_dx, dx, x, "per-block LSQ dx");
  ExpectSameLsqGrads(want_sums, grids, g, sg, zg, "block entry");
}

}  // namespace testing
}  // namespace qat
