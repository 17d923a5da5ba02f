// The scalar variant: the reference kernels behind the variant table, for
// CPUs without a SIMD variant.
#include "kernels/fake_quant_variants.h"

namespace qat {
namespace kernels {
namespace {

void ForwardRow(int64_t n, const float* x, float* y, bool* mask,
                const float* scales, const float* zero_points, float quant_min,
                float quant_max) {
  for (int64_t i = 0; i < n; ++i) {
    const FakeQuantGrid grid = {scales[i], zero_points[i], quant_min,
                                quant_max};
    bool inside;
    y[i] = FakeQuantElement(x[i], grid, &inside);
    if (mask != nullptr) mask[i] = inside;
  }
}

void LsqAccumulate(int64_t n, const float* x, const float* dy, float* dx,
                   const FakeQuantGrid& grid, int first_lane,
                   LsqLanes* lanes) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = LsqElement(x[i], dy[i], grid,
                               static_cast<int>((first_lane + i) % kLsqLanes),
                               lanes);
    if (dx != nullptr) dx[i] = g;
  }
}

}  // namespace

const FakeQuantKernels kFakeQuant_scalar = {
    "scalar", Isa::kScalar, FakeQuantReference, ForwardRow,
    FakeQuantGradReference, LsqAccumulate};

}  // namespace kernels
}  // namespace qat
