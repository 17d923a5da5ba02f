// The SIMD FakeQuant kernels, written once over an instruction-set traits
// class V and instantiated by fake_quant_sse2.cc, fake_quant_avx2.cc and
// fake_quant_avx512.cc.
//
// V provides the float vector F (V::kWidth lanes), the comparison mask M
// (a vector for SSE2 and AVX2, a k-register for AVX-512) and the operations
// used below.  Every operation rounds exactly as the scalar reference does,
// so the variants agree with it bit for bit:
//  - division, not multiplication by 1/scale;
//  - V::Round is round-half-to-even, as nearbyint in the default mode;
//  - V::Max(a, b) and V::Min(a, b) return b when either is NaN (x86
//    MAXPS/MINPS), so clamping with v as the second operand keeps NaN;
//  - the LSQ sums follow fake_quant_reference.h's tree: one float product
//    and one float add per term, lane k % kLsqLanes of a block of kLsqBlock
//    terms, folded into the lane totals at the end of each block (a vector
//    holds kWidth consecutive lanes, so the lanes are the reference's).
//
// This header must only be included with V in an anonymous namespace of a
// translation unit compiled for V's instruction set: no non-template inline
// function is defined or called here (the reference's AddLsqTerm is called
// as AddLsqTerm<V>, its own copy), so no code built for one instruction set
// can be linked into a caller built for another.
#ifndef QAT_LIB_KERNELS_FAKE_QUANT_SIMD_H_
#define QAT_LIB_KERNELS_FAKE_QUANT_SIMD_H_

#include <cstdint>

#include "qat/kernels/fake_quant_reference.h"

namespace qat {
namespace kernels {
namespace simd {

template <class V>
struct FakeQuantSimd {
  using F = typename V::F;
  using M = typename V::M;
  static constexpr int W = V::kWidth;
  static_assert(kLsqLanes % W == 0, "a lane group must hold whole vectors");
  static_assert(kLsqBlock % kLsqLanes == 0, "a block must hold whole groups");
  static constexpr int kVectorsPerGroup = kLsqLanes / W;

  // y and the in-range mask of one vector.
  static inline void Compute(F x, F s, F z, F lo, F hi, F* y, M* inside) {
    const F v = V::Add(V::Round(V::Div(x, s)), z);
    *inside = V::MaskAnd(V::CmpLe(lo, v), V::CmpLe(v, hi));
    const F c = V::Min(hi, V::Max(lo, v));  // v second: NaN stays NaN
    *y = V::Mul(V::Sub(c, z), s);
  }

  static void Forward(int64_t n, const float* x, float* y, bool* mask,
                      const FakeQuantGrid& g) {
    const F s = V::Set1(g.scale), z = V::Set1(g.zero_point);
    const F lo = V::Set1(g.quant_min), hi = V::Set1(g.quant_max);
    int64_t i = 0;
    if (mask != nullptr) {
      for (; i + 2 * W <= n; i += 2 * W) {
        F y0, y1;
        M m0, m1;
        Compute(V::Load(x + i), s, z, lo, hi, &y0, &m0);
        Compute(V::Load(x + i + W), s, z, lo, hi, &y1, &m1);
        V::Store(y + i, y0);
        V::Store(y + i + W, y1);
        V::StoreMask(mask + i, m0);
        V::StoreMask(mask + i + W, m1);
      }
    } else {
      for (; i + W <= n; i += W) {
        F yv;
        M m;
        Compute(V::Load(x + i), s, z, lo, hi, &yv, &m);
        V::Store(y + i, yv);
      }
    }
    for (; i < n; i += W) {
      const int count = static_cast<int>(n - i < W ? n - i : W);
      float xb[W] = {}, yb[W];
      bool mb[W];
      for (int j = 0; j < count; ++j) xb[j] = x[i + j];
      F yv;
      M m;
      Compute(V::Load(xb), s, z, lo, hi, &yv, &m);
      V::Store(yb, yv);
      V::StoreMask(mb, m);
      for (int j = 0; j < count; ++j) {
        y[i + j] = yb[j];
        if (mask != nullptr) mask[i + j] = mb[j];
      }
    }
  }

  static void ForwardRow(int64_t n, const float* x, float* y, bool* mask,
                         const float* scales, const float* zero_points,
                         float quant_min, float quant_max) {
    const F lo = V::Set1(quant_min), hi = V::Set1(quant_max);
    for (int64_t i = 0; i < n; i += W) {
      const int count = static_cast<int>(n - i < W ? n - i : W);
      F yv;
      M m;
      if (count == W) {
        Compute(V::Load(x + i), V::Load(scales + i), V::Load(zero_points + i),
                lo, hi, &yv, &m);
        V::Store(y + i, yv);
        if (mask != nullptr) V::StoreMask(mask + i, m);
        continue;
      }
      float xb[W] = {}, sb[W], zb[W] = {}, yb[W];
      bool mb[W];
      for (int j = 0; j < W; ++j) sb[j] = 1.0f;
      for (int j = 0; j < count; ++j) {
        xb[j] = x[i + j];
        sb[j] = scales[i + j];
        zb[j] = zero_points[i + j];
      }
      Compute(V::Load(xb), V::Load(sb), V::Load(zb), lo, hi, &yv, &m);
      V::Store(yb, yv);
      V::StoreMask(mb, m);
      for (int j = 0; j < count; ++j) {
        y[i + j] = yb[j];
        if (mask != nullptr) mask[i + j] = mb[j];
      }
    }
  }

  static void SteBackward(int64_t n, const float* dy, const bool* mask,
                          float* dx) {
    int64_t i = 0;
    for (; i + W <= n; i += W) {
      V::Store(dx + i, V::Keep(V::Load(dy + i), V::LoadMask(mask + i)));
    }
    for (; i < n; ++i) {
      float d = dy[i];
      if (!mask[i]) d = 0.0f;
      dx[i] = d;
    }
  }

  // The per-element LSQ quantities of one vector: dx, the scale term
  // dy * (dy/ds), and dy where the element is outside the range (else +0),
  // as LsqElementTerms computes them.
  static inline void LsqTerms(F x, F dy, F s, F z, F lo, F hi, F* dx,
                              F* scale_term, F* outside_term) {
    const F u = V::Div(x, s);
    const F r = V::Round(u);
    const F v = V::Add(r, z);
    const M below = V::CmpLt(v, lo);
    const M above = V::CmpLt(hi, v);
    const M inside = V::MaskAnd(V::CmpLe(lo, v), V::CmpLe(v, hi));
    F l = V::Sub(r, u);
    l = V::Select(below, V::Sub(lo, z), l);
    l = V::Select(above, V::Sub(hi, z), l);
    *scale_term = V::Mul(dy, l);
    *dx = V::Keep(dy, inside);
    *outside_term = V::Keep(dy, V::MaskOr(below, above));
  }

  // `count` elements, terms k, k + 1, ... of the chunk, all in one lane
  // group (k % kLsqLanes + count <= kLsqLanes), through the reference's
  // AddLsqTerm (its copy for V).
  static void LsqPartialGroup(int count, const float* x, const float* dy,
                              float* dx, const FakeQuantGrid& g, int64_t k,
                              LsqLanes* lanes) {
    const int lane_begin = static_cast<int>(k % kLsqLanes);
    float xb[kLsqLanes] = {}, dyb[kLsqLanes] = {}, dxb[kLsqLanes];
    float ts[kLsqLanes], to[kLsqLanes];
    for (int j = 0; j < count; ++j) {
      xb[lane_begin + j] = x[j];
      dyb[lane_begin + j] = dy[j];
    }
    const F s = V::Set1(g.scale), z = V::Set1(g.zero_point);
    const F lo = V::Set1(g.quant_min), hi = V::Set1(g.quant_max);
    for (int h = 0; h < kVectorsPerGroup; ++h) {
      F dxv, tsv, tov;
      LsqTerms(V::Load(xb + h * W), V::Load(dyb + h * W), s, z, lo, hi, &dxv,
               &tsv, &tov);
      V::Store(dxb + h * W, dxv);
      V::Store(ts + h * W, tsv);
      V::Store(to + h * W, tov);
    }
    for (int j = 0; j < count; ++j) {
      const int l = lane_begin + j;
      AddLsqTerm<V>(k + j, ts[l], to[l], lanes);
      if (dx != nullptr) dx[j] = dxb[l];
    }
  }

  static void LsqAccumulate(int64_t n, const float* x, const float* dy,
                            float* dx, const FakeQuantGrid& g, int64_t first,
                            LsqLanes* lanes) {
    int64_t i = 0;
    int64_t k = first;
    if (k % kLsqLanes != 0) {  // finish the group that an earlier call began
      const int64_t room = kLsqLanes - k % kLsqLanes;
      const int count = static_cast<int>(n < room ? n : room);
      LsqPartialGroup(count, x, dy, dx, g, k, lanes);
      i = count;
      k += count;
    }
    const F s = V::Set1(g.scale), z = V::Set1(g.zero_point);
    const F lo = V::Set1(g.quant_min), hi = V::Set1(g.quant_max);
    F bs[kVectorsPerGroup], bo[kVectorsPerGroup];
    for (int h = 0; h < kVectorsPerGroup; ++h) {
      bs[h] = V::Load(lanes->block_scale + h * W);
      bo[h] = V::Load(lanes->block_outside + h * W);
    }
    for (; i + kLsqLanes <= n; i += kLsqLanes, k += kLsqLanes) {
      for (int h = 0; h < kVectorsPerGroup; ++h) {
        F dxv, tsv, tov;
        LsqTerms(V::Load(x + i + h * W), V::Load(dy + i + h * W), s, z, lo,
                 hi, &dxv, &tsv, &tov);
        if (dx != nullptr) V::Store(dx + i + h * W, dxv);
        bs[h] = V::Add(bs[h], tsv);
        bo[h] = V::Add(bo[h], tov);
      }
      if ((k + kLsqLanes) % kLsqBlock == 0) {  // the block ends: fold it
        for (int h = 0; h < kVectorsPerGroup; ++h) {
          V::Store(lanes->scale + h * W,
                   V::Add(V::Load(lanes->scale + h * W), bs[h]));
          V::Store(lanes->outside + h * W,
                   V::Add(V::Load(lanes->outside + h * W), bo[h]));
          bs[h] = V::Zero();
          bo[h] = V::Zero();
        }
      }
    }
    for (int h = 0; h < kVectorsPerGroup; ++h) {
      V::Store(lanes->block_scale + h * W, bs[h]);
      V::Store(lanes->block_outside + h * W, bo[h]);
    }
    if (i < n) {
      LsqPartialGroup(static_cast<int>(n - i), x + i, dy + i,
                      dx == nullptr ? nullptr : dx + i, g, k, lanes);
    }
  }

  // Channels-last rows (FakeQuantKernels::lsq_accumulate_rows): row r adds
  // its terms to lane r % kLsqLanes of every column's current block.
  static void LsqAccumulateRows(int64_t rows, int64_t columns, int64_t stride,
                                const float* x, const float* dy, float* dx,
                                const float* scales, const float* zero_points,
                                float quant_min, float quant_max, float* acc) {
    const int64_t plane = kLsqLanes * columns;
    float* total_scale = acc;
    float* total_outside = acc + plane;
    float* block_scale = acc + 2 * plane;
    float* block_outside = acc + 3 * plane;
    const F lo = V::Set1(quant_min), hi = V::Set1(quant_max);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t lane_at = (r % kLsqLanes) * columns;
      float* bs = block_scale + lane_at;
      float* bo = block_outside + lane_at;
      const float* xr = x + r * stride;
      const float* dyr = dy + r * stride;
      float* dxr = dx == nullptr ? nullptr : dx + r * stride;
      int64_t c = 0;
      for (; c + W <= columns; c += W) {
        F dxv, tsv, tov;
        LsqTerms(V::Load(xr + c), V::Load(dyr + c), V::Load(scales + c),
                 V::Load(zero_points + c), lo, hi, &dxv, &tsv, &tov);
        if (dxr != nullptr) V::Store(dxr + c, dxv);
        V::Store(bs + c, V::Add(V::Load(bs + c), tsv));
        V::Store(bo + c, V::Add(V::Load(bo + c), tov));
      }
      if (c < columns) {
        const int count = static_cast<int>(columns - c);
        float xb[W] = {}, dyb[W] = {}, sb[W], zb[W] = {}, dxb[W], ts[W], to[W];
        for (int j = 0; j < W; ++j) sb[j] = 1.0f;
        for (int j = 0; j < count; ++j) {
          xb[j] = xr[c + j];
          dyb[j] = dyr[c + j];
          sb[j] = scales[c + j];
          zb[j] = zero_points[c + j];
        }
        F dxv, tsv, tov;
        LsqTerms(V::Load(xb), V::Load(dyb), V::Load(sb), V::Load(zb), lo, hi,
                 &dxv, &tsv, &tov);
        V::Store(dxb, dxv);
        V::Store(ts, tsv);
        V::Store(to, tov);
        for (int j = 0; j < count; ++j) {
          bs[c + j] += ts[j];
          bo[c + j] += to[j];
          if (dxr != nullptr) dxr[c + j] = dxb[j];
        }
      }
      if ((r + 1) % kLsqBlock == 0) {  // the block ends: fold every column
        for (int64_t e = 0; e < plane; ++e) {
          total_scale[e] += block_scale[e];
          total_outside[e] += block_outside[e];
          block_scale[e] = 0.0f;
          block_outside[e] = 0.0f;
        }
      }
    }
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_FAKE_QUANT_SIMD_H_
