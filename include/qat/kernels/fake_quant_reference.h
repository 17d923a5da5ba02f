// Plain scalar reference kernels for FakeQuant.  They define the arithmetic
// bit for bit; every optimized variant is tested against them.
//
// Forward, for one element with scale s, zero point z and range [qmin, qmax]
// (ONNX QuantizeLinear followed by DequantizeLinear, in float):
//   u    = x / s                     (divide, as QuantizeLinear does)
//   v    = nearbyint(u) + z          (round half to even)
//   y    = (clamp(v, qmin, qmax) - z) * s
//   mask = qmin <= v <= qmax
// NaN stays NaN with mask false; +-Inf clamps to the range's ends with mask
// false.
//
// Backward (straight-through estimator): dx = mask ? dy : +0.
//
// LSQ / LSQ+ gradients (Esser et al. 2020; Bhalgat et al. 2020), with the
// straight-through estimator for the rounding, for one element:
//   d y / d s = nearbyint(u) - u   inside the range,
//               qmin - z           below it,    qmax - z   above it;
//   d y / d z = 0                  inside,      -s         outside.
// Summed over elements and multiplied by the caller's gradient scale g:
//   scale_grad = g * sum(dy * dy/ds)      zero_point_grad = g * sum(dy * dy/dz).
//
// Summation order.  Sums are part of the result, so the order is fixed here
// and every variant follows it: each product dy * (dy/ds) is formed exactly in
// double; a sequence of terms is cut into chunks of kLsqChunk terms; inside a
// chunk, term k goes to lane k % kLsqLanes; a chunk's lanes are combined as a
// balanced tree; chunk sums are added in order, starting from 0.  The
// zero-point sum adds dy (or 0 inside the range) the same way and multiplies
// by -s at the end.  Per channel, a channel's terms are taken in the order
// of its elements in memory; per block, likewise a block's.
//
// NaN results are NaN, but their sign and payload are unspecified (IEEE 754
// leaves them open, and compilers swap the operands of a commutative add).
//
// The kernels assume validated parameters (see qat/fake_quant.h).
#ifndef QAT_KERNELS_FAKE_QUANT_REFERENCE_H_
#define QAT_KERNELS_FAKE_QUANT_REFERENCE_H_

#include <cmath>
#include <cstdint>

namespace qat {
namespace kernels {

// Parameters of one quantization grid, already validated.
struct FakeQuantGrid {
  float scale;
  float zero_point;
  float quant_min;
  float quant_max;
};

inline constexpr int kLsqLanes = 8;
inline constexpr int64_t kLsqChunk = 8192;

// Accumulators of one chunk in the canonical order.
struct LsqLanes {
  double scale[kLsqLanes] = {};
  double outside[kLsqLanes] = {};
};

inline double CombineLsqLanes(const double (&lane)[kLsqLanes]) {
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
         ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// Running totals of the chunks seen so far.
struct LsqSums {
  double scale = 0.0;
  double outside = 0.0;

  void AddChunk(const LsqLanes& lanes) {
    scale += CombineLsqLanes(lanes.scale);
    outside += CombineLsqLanes(lanes.outside);
  }
};

// Applies the gradient scale g and turns the outside sum into the zero-point
// gradient.
inline float LsqScaleGrad(const LsqSums& sums, float grad_scale) {
  return static_cast<float>(sums.scale * static_cast<double>(grad_scale));
}
inline float LsqZeroPointGrad(const LsqSums& sums, const FakeQuantGrid& grid,
                              float grad_scale) {
  return static_cast<float>(sums.outside * -static_cast<double>(grid.scale) *
                            static_cast<double>(grad_scale));
}

// ONNX QuantizeLinear for one element: the integer clamp(nearbyint(x / s) +
// z, qmin, qmax), held in a float.  *inside receives the mask bit.
inline float QuantizeElement(float x, const FakeQuantGrid& g, bool* inside) {
  const float u = x / g.scale;
  const float v = std::nearbyint(u) + g.zero_point;
  *inside = v >= g.quant_min && v <= g.quant_max;
  float c = v;  // NaN fails both tests below and stays NaN
  if (v < g.quant_min) c = g.quant_min;
  if (v > g.quant_max) c = g.quant_max;
  return c;
}

// Forward for one element: QuantizeLinear, then DequantizeLinear.  Returns
// y; *inside receives the mask bit.
inline float FakeQuantElement(float x, const FakeQuantGrid& g, bool* inside) {
  return (QuantizeElement(x, g, inside) - g.zero_point) * g.scale;
}

// LSQ terms for one element; accumulates into lane `lane` and returns dx.
inline float LsqElement(float x, float dy, const FakeQuantGrid& g, int lane,
                        LsqLanes* acc) {
  const float u = x / g.scale;
  const float r = std::nearbyint(u);
  const float v = r + g.zero_point;
  const bool below = v < g.quant_min;
  const bool above = v > g.quant_max;
  const bool inside = v >= g.quant_min && v <= g.quant_max;
  float local = r - u;  // inside the range (and NaN for NaN input)
  if (below) local = g.quant_min - g.zero_point;
  if (above) local = g.quant_max - g.zero_point;
  acc->scale[lane] += static_cast<double>(dy) * static_cast<double>(local);
  acc->outside[lane] += (below || above) ? static_cast<double>(dy) : 0.0;
  return inside ? dy : 0.0f;
}

// y = FakeQuant(x) over n elements; mask may be null.
inline void FakeQuantReference(int64_t n, const float* x, float* y, bool* mask,
                               const FakeQuantGrid& grid) {
  for (int64_t i = 0; i < n; ++i) {
    bool inside;
    y[i] = FakeQuantElement(x[i], grid, &inside);
    if (mask != nullptr) mask[i] = inside;
  }
}

// Per channel: x has shape [outer, channels, inner] and channel c uses
// grids[c].
inline void FakeQuantPerChannelReference(int64_t outer, int64_t channels,
                                         int64_t inner, const float* x,
                                         float* y, bool* mask,
                                         const FakeQuantGrid* grids) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t base = (o * channels + c) * inner;
      FakeQuantReference(inner, x + base, y + base,
                         mask == nullptr ? nullptr : mask + base, grids[c]);
    }
  }
}

// Per block (ONNX opset 21's blocked quantization): x has shape [outer, n,
// inner], cut along n into blocks of block_size (the last may be shorter);
// with blocks = ceil(n / block_size), element (o, j, i) uses
// grids[(o * blocks + j / block_size) * inner + i].
inline void FakeQuantPerBlockReference(int64_t outer, int64_t n, int64_t inner,
                                       int64_t block_size, const float* x,
                                       float* y, bool* mask,
                                       const FakeQuantGrid* grids) {
  const int64_t blocks = (n + block_size - 1) / block_size;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t at = (o * n + j) * inner + i;
        bool inside;
        y[at] = FakeQuantElement(
            x[at], grids[(o * blocks + j / block_size) * inner + i], &inside);
        if (mask != nullptr) mask[at] = inside;
      }
    }
  }
}

// dx = mask ? dy : +0.
inline void FakeQuantGradReference(int64_t n, const float* dy, const bool* mask,
                                   float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = mask[i] ? dy[i] : 0.0f;
}

// LSQ backward over a per-channel layout [outer, channels, inner]; a single
// channel with outer = inner-run is the per-tensor case.  Writes dx (if not
// null) and the unscaled sums of every channel into sums[c].
inline void LsqBackwardPerChannelReference(int64_t outer, int64_t channels,
                                           int64_t inner, const float* x,
                                           const float* dy, float* dx,
                                           const FakeQuantGrid* grids,
                                           LsqSums* sums) {
  for (int64_t c = 0; c < channels; ++c) {
    LsqSums total;
    LsqLanes lanes;
    int64_t k = 0;  // index of the term within this channel
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i, ++k) {
        const int64_t at = (o * channels + c) * inner + i;
        const float g = LsqElement(x[at], dy[at], grids[c],
                                   static_cast<int>(k % kLsqChunk % kLsqLanes),
                                   &lanes);
        if (dx != nullptr) dx[at] = g;
        if ((k + 1) % kLsqChunk == 0) {
          total.AddChunk(lanes);
          lanes = LsqLanes();
        }
      }
    }
    if (k % kLsqChunk != 0) total.AddChunk(lanes);
    sums[c] = total;
  }
}

// LSQ backward per block, the layout of FakeQuantPerBlockReference.  The
// terms of block entry (o, b, i) are taken in the order of its elements in
// memory (j ascending); sums[(o * blocks + b) * inner + i] receives them.
inline void LsqBackwardPerBlockReference(int64_t outer, int64_t n,
                                         int64_t inner, int64_t block_size,
                                         const float* x, const float* dy,
                                         float* dx, const FakeQuantGrid* grids,
                                         LsqSums* sums) {
  const int64_t blocks = (n + block_size - 1) / block_size;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t end = n < (b + 1) * block_size ? n : (b + 1) * block_size;
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t entry = (o * blocks + b) * inner + i;
        LsqSums total;
        LsqLanes lanes;
        int64_t k = 0;  // index of the term within this block
        for (int64_t j = b * block_size; j < end; ++j, ++k) {
          const int64_t at = (o * n + j) * inner + i;
          const float g =
              LsqElement(x[at], dy[at], grids[entry],
                         static_cast<int>(k % kLsqChunk % kLsqLanes), &lanes);
          if (dx != nullptr) dx[at] = g;
          if ((k + 1) % kLsqChunk == 0) {
            total.AddChunk(lanes);
            lanes = LsqLanes();
          }
        }
        if (k % kLsqChunk != 0) total.AddChunk(lanes);
        sums[entry] = total;
      }
    }
  }
}

inline void LsqBackwardReference(int64_t n, const float* x, const float* dy,
                                 float* dx, const FakeQuantGrid& grid,
                                 LsqSums* sums) {
  LsqBackwardPerChannelReference(1, 1, n, x, dy, dx, &grid, sums);
}

}  // namespace kernels
}  // namespace qat

#endif  // QAT_KERNELS_FAKE_QUANT_REFERENCE_H_
