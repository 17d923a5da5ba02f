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
                   const FakeQuantGrid& grid, int64_t first, LsqLanes* lanes) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = LsqElement(x[i], dy[i], grid, first + i, lanes);
    if (dx != nullptr) dx[i] = g;
  }
}

// The reference's per-element steps (LsqElementTerms, then AddLsqTerm's
// lane and fold) on the lane-major accumulators of LsqColumns.
void LsqAccumulateRows(int64_t rows, int64_t columns, int64_t stride,
                       const float* x, const float* dy, float* dx,
                       const float* scales, const float* zero_points,
                       float quant_min, float quant_max, float* acc) {
  const int64_t plane = kLsqLanes * columns;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t lane_at = (r % kLsqLanes) * columns;
    for (int64_t c = 0; c < columns; ++c) {
      const FakeQuantGrid grid = {scales[c], zero_points[c], quant_min,
                                  quant_max};
      float ts, to;
      const float g =
          LsqElementTerms(x[r * stride + c], dy[r * stride + c], grid, &ts, &to);
      acc[2 * plane + lane_at + c] += ts;
      acc[3 * plane + lane_at + c] += to;
      if (dx != nullptr) dx[r * stride + c] = g;
    }
    if ((r + 1) % kLsqBlock == 0) {
      for (int64_t e = 0; e < plane; ++e) {
        acc[e] += acc[2 * plane + e];
        acc[plane + e] += acc[3 * plane + e];
        acc[2 * plane + e] = 0.0f;
        acc[3 * plane + e] = 0.0f;
      }
    }
  }
}

}  // namespace

const FakeQuantKernels kFakeQuant_scalar = {
    "scalar", Isa::kScalar, FakeQuantReference, ForwardRow,
    FakeQuantGradReference, LsqAccumulate, LsqAccumulateRows};

}  // namespace kernels
}  // namespace qat
