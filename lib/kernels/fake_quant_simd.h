// The SIMD FakeQuant kernels, written once over an instruction-set traits
// class V and instantiated by fake_quant_sse2.cc and fake_quant_avx2.cc.
//
// V provides the float vector F (V::kWidth lanes), the double vector D, and
// the operations used below.  Every operation rounds exactly as the scalar
// reference does, so the variants agree with it bit for bit:
//  - division, not multiplication by 1/scale;
//  - V::Round is round-half-to-even, as nearbyint in the default mode;
//  - V::Max(a, b) and V::Min(a, b) return b when either is NaN (x86
//    MAXPS/MINPS), so clamping with v as the second operand keeps NaN;
//  - products are formed in double, where they are exact.
//
// This header must only be included with V in an anonymous namespace of a
// translation unit compiled for V's instruction set: no non-template inline
// function is defined or called here, so no code built for one instruction
// set can be linked into a caller built for another.
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
  using D = typename V::D;
  static constexpr int W = V::kWidth;
  static_assert(kLsqLanes % W == 0, "a lane block must hold whole vectors");
  static constexpr int kVectorsPerBlock = kLsqLanes / W;

  // y and the in-range mask of one vector.
  static inline void Compute(F x, F s, F z, F lo, F hi, F* y, F* inside) {
    const F v = V::Add(V::Round(V::Div(x, s)), z);
    *inside = V::And(V::CmpLe(lo, v), V::CmpLe(v, hi));
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
        F y0, m0, y1, m1;
        Compute(V::Load(x + i), s, z, lo, hi, &y0, &m0);
        Compute(V::Load(x + i + W), s, z, lo, hi, &y1, &m1);
        V::Store(y + i, y0);
        V::Store(y + i + W, y1);
        V::StoreMask(mask + i, m0);
        V::StoreMask(mask + i + W, m1);
      }
    } else {
      for (; i + W <= n; i += W) {
        F yv, m;
        Compute(V::Load(x + i), s, z, lo, hi, &yv, &m);
        V::Store(y + i, yv);
      }
    }
    for (; i < n; i += W) {
      const int count = static_cast<int>(n - i < W ? n - i : W);
      float xb[W] = {}, yb[W];
      bool mb[W];
      for (int j = 0; j < count; ++j) xb[j] = x[i + j];
      F yv, m;
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
      F yv, m;
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
      V::Store(dx + i, V::And(V::Load(dy + i), V::LoadMask(mask + i)));
    }
    for (; i < n; ++i) {
      float d = dy[i];
      if (!mask[i]) d = 0.0f;
      dx[i] = d;
    }
  }

  // The per-element LSQ quantities of one vector: dx, the scale factor
  // dy/ds, and dy where the element is outside the range (else 0).
  static inline void LsqTerms(F x, F dy, const FakeQuantGrid& g, F* dx,
                              F* local, F* dy_outside) {
    const F s = V::Set1(g.scale), z = V::Set1(g.zero_point);
    const F lo = V::Set1(g.quant_min), hi = V::Set1(g.quant_max);
    const F u = V::Div(x, s);
    const F r = V::Round(u);
    const F v = V::Add(r, z);
    const F below = V::CmpLt(v, lo);
    const F above = V::CmpLt(hi, v);
    const F inside = V::And(V::CmpLe(lo, v), V::CmpLe(v, hi));
    F l = V::Sub(r, u);
    l = V::Select(below, V::Sub(lo, z), l);
    l = V::Select(above, V::Sub(hi, z), l);
    *local = l;
    *dx = V::And(dy, inside);
    *dy_outside = V::And(dy, V::Or(below, above));
  }

  // `count` elements that go to lanes lane_begin, lane_begin + 1, ... of the
  // current block.  Scalar adds leave the other lanes untouched.
  static void LsqPartialBlock(int count, const float* x, const float* dy,
                              float* dx, const FakeQuantGrid& g,
                              int lane_begin, LsqLanes* lanes) {
    float xb[kLsqLanes] = {}, dyb[kLsqLanes] = {}, dxb[kLsqLanes];
    double ts[kLsqLanes], to[kLsqLanes];
    for (int j = 0; j < count; ++j) {
      xb[lane_begin + j] = x[j];
      dyb[lane_begin + j] = dy[j];
    }
    for (int h = 0; h < kVectorsPerBlock; ++h) {
      F dxv, local, out;
      LsqTerms(V::Load(xb + h * W), V::Load(dyb + h * W), g, &dxv, &local,
               &out);
      V::Store(dxb + h * W, dxv);
      V::StoreProducts(ts + h * W, V::Load(dyb + h * W), local);
      V::StoreWidened(to + h * W, out);
    }
    for (int j = 0; j < count; ++j) {
      const int l = lane_begin + j;
      lanes->scale[l] += ts[l];
      lanes->outside[l] += to[l];
      if (dx != nullptr) dx[j] = dxb[l];
    }
  }

  static void LsqAccumulate(int64_t n, const float* x, const float* dy,
                            float* dx, const FakeQuantGrid& g, int first_lane,
                            LsqLanes* lanes) {
    int64_t i = 0;
    if (first_lane != 0) {  // finish the block that an earlier call began
      const int count = static_cast<int>(
          n < kLsqLanes - first_lane ? n : kLsqLanes - first_lane);
      LsqPartialBlock(count, x, dy, dx, g, first_lane, lanes);
      i = count;
    }
    D acc_scale[V::kAccRegs], acc_outside[V::kAccRegs];
    V::LoadAcc(acc_scale, lanes->scale);
    V::LoadAcc(acc_outside, lanes->outside);
    for (; i + kLsqLanes <= n; i += kLsqLanes) {
      for (int h = 0; h < kVectorsPerBlock; ++h) {
        const F dyv = V::Load(dy + i + h * W);
        F dxv, local, out;
        LsqTerms(V::Load(x + i + h * W), dyv, g, &dxv, &local, &out);
        if (dx != nullptr) V::Store(dx + i + h * W, dxv);
        V::AccumulateProducts(acc_scale, h, dyv, local);
        V::AccumulateWidened(acc_outside, h, out);
      }
    }
    V::StoreAcc(lanes->scale, acc_scale);
    V::StoreAcc(lanes->outside, acc_outside);
    if (i < n) {
      LsqPartialBlock(static_cast<int>(n - i), x + i, dy + i,
                      dx == nullptr ? nullptr : dx + i, g, 0, lanes);
    }
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_FAKE_QUANT_SIMD_H_
