// Fluent testers that run one FakeQuant kernel variant through the internal
// entry points and compare it bit for bit with the scalar reference:
//
//   FakeQuantTester().inputs(x).scale(0.1f).range(QuantRange::Int8()).Test(k);
//
// Outputs are pre-filled with a sentinel so that an element a kernel forgets
// to write shows up.  A mismatch names the index and the input's bits.
#ifndef QAT_TESTS_FAKE_QUANT_TESTER_H_
#define QAT_TESTS_FAKE_QUANT_TESTER_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "kernels/fake_quant_internal.h"
#include "gtest/gtest.h"
#include "qat/kernels/fake_quant_reference.h"

namespace qat {
namespace testing {

inline uint32_t Bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// Bit-for-bit equality, except that all NaNs are equal: IEEE 754 leaves the
// sign and payload of a NaN result unspecified, and compilers reorder
// operands of a commutative add freely.
inline bool SameBits(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || Bits(a) == Bits(b);
}

inline std::string Describe(float v) {
  return absl::StrFormat("%.9g (0x%08x)", v, Bits(v));
}

constexpr float kSentinel = -12345.678f;

// bool storage that is not std::vector<bool>.
using BoolBuffer = std::unique_ptr<bool[]>;
inline BoolBuffer MakeBools(size_t n, bool fill) {
  BoolBuffer b(new bool[n == 0 ? 1 : n]);
  for (size_t i = 0; i < n; ++i) b[i] = fill;
  return b;
}

inline void ExpectSameFloats(const std::vector<float>& want,
                             const std::vector<float>& got,
                             const std::vector<float>& input,
                             const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(SameBits(want[i], got[i]))
        << what << " differs at index " << i << " for input "
        << Describe(input[i]) << ": reference " << Describe(want[i])
        << ", kernel " << Describe(got[i]);
  }
}

inline void ExpectSameMasks(const bool* want, const bool* got, size_t n,
                            const std::vector<float>& input) {
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(want[i], got[i]) << "mask differs at index " << i
                               << " for input " << Describe(input[i]);
  }
}

// The LSQ gradients of every channel (or block entry) against the
// reference sums, multiplied by g; `what` names the unit in messages.
inline void ExpectSameLsqGrads(const std::vector<kernels::LsqSums>& want,
                               const std::vector<kernels::FakeQuantGrid>& grids,
                               float g, const std::vector<float>& scale_grads,
                               const std::vector<float>& zero_point_grads,
                               const char* what) {
  for (size_t c = 0; c < want.size(); ++c) {
    ASSERT_TRUE(SameBits(kernels::LsqScaleGrad(want[c], g), scale_grads[c]))
        << "scale grad of " << what << " " << c;
    ASSERT_TRUE(SameBits(kernels::LsqZeroPointGrad(want[c], grids[c], g),
                         zero_point_grads[c]))
        << "zero-point grad of " << what << " " << c;
  }
}

inline kernels::FakeQuantGrid GridOf(float scale, float zero_point,
                                     QuantRange r) {
  return {scale, zero_point, static_cast<float>(r.quant_min),
          static_cast<float>(r.quant_max)};
}

class FakeQuantTester {
 public:
  FakeQuantTester& inputs(std::vector<float> x) {
    x_ = std::move(x);
    return *this;
  }
  FakeQuantTester& scale(float s) {
    params_.scale = s;
    return *this;
  }
  FakeQuantTester& zero_point(float z) {
    params_.zero_point = z;
    return *this;
  }
  FakeQuantTester& range(QuantRange r) {
    params_.range = r;
    return *this;
  }
  FakeQuantTester& pool(ThreadPool* p) {
    pool_ = p;
    return *this;
  }

  // Forward (with and without mask), STE backward and LSQ, all against the
  // reference.
  void Test(const kernels::FakeQuantKernels& k) const {
    const size_t n = x_.size();
    const kernels::FakeQuantGrid grid =
        GridOf(params_.scale, params_.zero_point, params_.range);

    std::vector<float> want_y(n);
    BoolBuffer want_mask = MakeBools(n, false);
    kernels::FakeQuantReference(static_cast<int64_t>(n), x_.data(),
                                want_y.data(), want_mask.get(), grid);

    std::vector<float> y(n, kSentinel);
    BoolBuffer mask = MakeBools(n, true);
    ASSERT_TRUE(internal::FakeQuantPerTensor(k, x_, absl::MakeSpan(y),
                                             absl::Span<bool>(mask.get(), n),
                                             params_, pool_)
                    .ok());
    ExpectSameFloats(want_y, y, x_, "y");
    ExpectSameMasks(want_mask.get(), mask.get(), n, x_);

    std::vector<float> y_only(n, kSentinel);
    ASSERT_TRUE(internal::FakeQuantPerTensor(k, x_, absl::MakeSpan(y_only), {},
                                             params_, pool_)
                    .ok());
    ExpectSameFloats(want_y, y_only, x_, "y without mask");

    // Backward with a dy that varies in sign and size.
    std::vector<float> dy(n);
    for (size_t i = 0; i < n; ++i) {
      dy[i] = static_cast<float>(static_cast<int64_t>(i % 13) - 6) * 0.37f;
    }
    std::vector<float> want_dx(n), dx(n, kSentinel);
    kernels::FakeQuantGradReference(static_cast<int64_t>(n), dy.data(),
                                    want_mask.get(), want_dx.data());
    ASSERT_TRUE(internal::FakeQuantGrad(
                    k, dy, absl::Span<const bool>(want_mask.get(), n),
                    absl::MakeSpan(dx), pool_)
                    .ok());
    ExpectSameFloats(want_dx, dx, x_, "STE dx");

    kernels::LsqSums want_sums;
    std::vector<float> want_lsq_dx(n), lsq_dx(n, kSentinel);
    kernels::LsqBackwardReference(static_cast<int64_t>(n), x_.data(),
                                  dy.data(), want_lsq_dx.data(), grid,
                                  &want_sums);
    const float g = 0.25f;
    auto got = internal::FakeQuantLsqGradPerTensor(
        k, x_, dy, absl::MakeSpan(lsq_dx), params_, g, pool_);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameFloats(want_lsq_dx, lsq_dx, x_, "LSQ dx");
    EXPECT_TRUE(SameBits(kernels::LsqScaleGrad(want_sums, g), got->scale))
        << "scale grad: reference "
        << Describe(kernels::LsqScaleGrad(want_sums, g)) << ", kernel "
        << Describe(got->scale);
    EXPECT_TRUE(SameBits(kernels::LsqZeroPointGrad(want_sums, grid, g),
                         got->zero_point))
        << "zero-point grad: reference "
        << Describe(kernels::LsqZeroPointGrad(want_sums, grid, g))
        << ", kernel " << Describe(got->zero_point);
  }

 private:
  std::vector<float> x_;
  FakeQuantParams params_;
  ThreadPool* pool_ = nullptr;
};

class PerChannelTester {
 public:
  PerChannelTester& shape(std::vector<int64_t> s) {
    shape_ = std::move(s);
    return *this;
  }
  PerChannelTester& axis(int64_t a) {
    axis_ = a;
    return *this;
  }
  PerChannelTester& range(QuantRange r) {
    range_ = r;
    return *this;
  }
  PerChannelTester& seed(uint32_t s) {
    seed_ = s;
    return *this;
  }
  PerChannelTester& pool(ThreadPool* p) {
    pool_ = p;
    return *this;
  }

  void Test(const kernels::FakeQuantKernels& k) const;

 private:
  std::vector<int64_t> shape_;
  int64_t axis_ = 0;
  QuantRange range_ = QuantRange::Int8();
  uint32_t seed_ = 1;
  ThreadPool* pool_ = nullptr;
};

// Per block: random scales and zero points shaped as opset 21 defines, the
// forward (with mask) and LSQ against the reference.
class PerBlockTester {
 public:
  PerBlockTester& shape(std::vector<int64_t> s) {
    shape_ = std::move(s);
    return *this;
  }
  PerBlockTester& axis(int64_t a) {
    axis_ = a;
    return *this;
  }
  PerBlockTester& block_size(int64_t b) {
    block_size_ = b;
    return *this;
  }
  PerBlockTester& range(QuantRange r) {
    range_ = r;
    return *this;
  }
  PerBlockTester& seed(uint32_t s) {
    seed_ = s;
    return *this;
  }
  PerBlockTester& pool(ThreadPool* p) {
    pool_ = p;
    return *this;
  }

  void Test(const kernels::FakeQuantKernels& k) const;

 private:
  std::vector<int64_t> shape_;
  int64_t axis_ = 0;
  int64_t block_size_ = 32;
  QuantRange range_ = QuantRange::Int4();
  uint32_t seed_ = 1;
  ThreadPool* pool_ = nullptr;
};

}  // namespace testing
}  // namespace qat

#endif  // QAT_TESTS_FAKE_QUANT_TESTER_H_
