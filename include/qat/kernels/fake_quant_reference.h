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
// and every variant follows it.  Everything on the per-element path is float:
// each term dy * (dy/ds) is one float product; a sequence of terms is cut into
// chunks of kLsqChunk terms, and a chunk into blocks of kLsqBlock terms;
// term k of a chunk goes to lane k % kLsqLanes of its block, each lane
// adding its terms in order starting from +0; at the end of each block (and
// at the end of the chunk) every lane adds its block sum to the lane's
// total, and the block's lanes restart from +0; a chunk's lane totals are
// combined as a balanced tree in float.  Chunk sums (one per kLsqChunk
// terms, off the per-element path) are added in order, in double, starting
// from 0.  The zero-point sum adds dy (or +0 inside the range) the same way
// and multiplies by -s at the end.  Per channel, a channel's terms are taken
// in the order of its elements in memory; per block, likewise a block's.
// The blocks bound the float error: a lane adds at most kLsqBlock /
// kLsqLanes terms before folding, and kLsqChunk / kLsqBlock block sums.
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

inline constexpr int kLsqLanes = 16;
inline constexpr int64_t kLsqBlock = 256;   // 16 terms per lane
inline constexpr int64_t kLsqChunk = 4096;  // 16 blocks

// Accumulators of one chunk in the canonical order: the current block's
// lanes and the lane totals of the blocks already folded.
struct LsqLanes {
  float scale[kLsqLanes] = {};
  float outside[kLsqLanes] = {};
  float block_scale[kLsqLanes] = {};
  float block_outside[kLsqLanes] = {};
};

// Adds the current block into the lane totals and restarts it from +0.
// The ISA template parameter only gives each SIMD variant its own copy
// (instantiated with a type of its translation unit's anonymous namespace,
// so no copy built for a wider instruction set is linked into baseline
// code); the reference uses the default.
template <class Isa = void>
inline void FoldLsqBlock(LsqLanes* a) {
  for (int l = 0; l < kLsqLanes; ++l) {
    a->scale[l] += a->block_scale[l];
    a->outside[l] += a->block_outside[l];
    a->block_scale[l] = 0.0f;
    a->block_outside[l] = 0.0f;
  }
}

// Term k of a chunk (0 <= k < kLsqChunk): the scale term and the outside
// term (dy outside the range, else +0).
template <class Isa = void>
inline void AddLsqTerm(int64_t k, float scale_term, float outside_term,
                       LsqLanes* a) {
  const int lane = static_cast<int>(k % kLsqLanes);
  a->block_scale[lane] += scale_term;
  a->block_outside[lane] += outside_term;
  if ((k + 1) % kLsqBlock == 0) FoldLsqBlock<Isa>(a);
}

inline float CombineLsqLanes(const float (&l)[kLsqLanes]) {
  return (((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))) +
         (((l[8] + l[9]) + (l[10] + l[11])) +
          ((l[12] + l[13]) + (l[14] + l[15])));
}

// Running totals of the chunks seen so far.
struct LsqSums {
  double scale = 0.0;
  double outside = 0.0;

  // Folds the chunk's last block (always: an empty block adds +0) and adds
  // the chunk's combined lanes.
  void AddChunk(LsqLanes lanes) {
    FoldLsqBlock<>(&lanes);
    scale += static_cast<double>(CombineLsqLanes(lanes.scale));
    outside += static_cast<double>(CombineLsqLanes(lanes.outside));
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

// The LSQ terms of one element: *scale_term = dy * (dy/ds) and
// *outside_term = dy outside the range, else +0.  Returns dx.
inline float LsqElementTerms(float x, float dy, const FakeQuantGrid& g,
                             float* scale_term, float* outside_term) {
  const float u = x / g.scale;
  const float r = std::nearbyint(u);
  const float v = r + g.zero_point;
  const bool below = v < g.quant_min;
  const bool above = v > g.quant_max;
  const bool inside = v >= g.quant_min && v <= g.quant_max;
  float local = r - u;  // inside the range (and NaN for NaN input)
  if (below) local = g.quant_min - g.zero_point;
  if (above) local = g.quant_max - g.zero_point;
  *scale_term = dy * local;
  *outside_term = (below || above) ? dy : 0.0f;
  return inside ? dy : 0.0f;
}

// LSQ terms for one element, term k of its chunk; accumulates them and
// returns dx.
inline float LsqElement(float x, float dy, const FakeQuantGrid& g, int64_t k,
                        LsqLanes* acc) {
  float ts, to;
  const float dx = LsqElementTerms(x, dy, g, &ts, &to);
  AddLsqTerm<>(k, ts, to, acc);
  return dx;
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
        const float g =
            LsqElement(x[at], dy[at], grids[c], k % kLsqChunk, &lanes);
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
              LsqElement(x[at], dy[at], grids[entry], k % kLsqChunk, &lanes);
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
