// The SIMD small-output convolution (kernels/small_output_conv.h), written
// once over an instruction-set traits class V and instantiated by
// sgemm_avx2.cc and sgemm_avx512.cc.
//
// Every output row is one vector of accumulators, all rows at once (several
// independent chains); for each (c, ky, kx) the input row under each output
// row, shifted by kx, is loaded with a mask (lanes in the padding read zero
// and are never touched) and multiplied by the broadcast weight.
//
// V provides what direct_conv_simd.h uses.  Include only with V in an
// anonymous namespace of a translation unit built for V's instruction set
// (see sgemm_simd.h).
#ifndef QAT_LIB_KERNELS_SMALL_OUTPUT_CONV_SIMD_H_
#define QAT_LIB_KERNELS_SMALL_OUTPUT_CONV_SIMD_H_

#include <cstdint>

#include "kernels/small_output_conv.h"

namespace qat {
namespace kernels {
namespace simd {

template <class V>
struct SmallOutputConvSimd {
  using F = typename V::F;
  using M = typename V::M;
  static constexpr int64_t kMaxRows = 8;
  static constexpr int64_t kMaxKernelWidth = 64;

  static bool Fits(const SmallOutputConv& a) {
    return a.out_h >= 1 && a.out_h <= kMaxRows && a.out_w >= 1 && a.out_w <= V::kWidth &&
           a.kernel_w <= kMaxKernelWidth;
  }

  template <int kRows>
  static void Rows(const SmallOutputConv& a, const M* masks) {
    F acc[kRows];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) acc[r] = V::Zero();
    for (int64_t c = 0; c < a.channels; ++c) {
      for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
        // Output row r's input row, offset so that lane l for kernel column
        // kx reads row[kx * dilation_w + l]; null in the padding.
        const float* row[kRows];
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          const int64_t iy = r * a.stride_h + ky * a.dilation_h - a.pad_top;
          row[r] = iy >= 0 && iy < a.in_h ? a.x + (c * a.in_h + iy) * a.in_w - a.pad_left
                                          : nullptr;
        }
        const float* wk = a.w + (c * a.kernel_h + ky) * a.kernel_w;
        for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
          const F w = V::Set1(wk[kx]);
          const int64_t shift = kx * a.dilation_w;
#pragma GCC unroll 8
          for (int r = 0; r < kRows; ++r) {
            const F v = row[r] != nullptr ? V::MaskLoad(row[r] + shift, masks[kx]) : V::Zero();
            acc[r] = V::Fma(w, v, acc[r]);
          }
        }
      }
    }
    const M store = V::Range(0, static_cast<int>(a.out_w));
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) V::MaskStore(a.y + r * a.out_w, store, acc[r]);
  }

  static void Run(const SmallOutputConv& a) {
    // Lanes ox whose input column ox + kx * dilation_w - pad_left is inside.
    M masks[kMaxKernelWidth];
    for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
      const int64_t shift = kx * a.dilation_w - a.pad_left;  // input column of lane 0
      int64_t lo = -shift, hi = a.in_w - shift;
      lo = lo < 0 ? 0 : lo > a.out_w ? a.out_w : lo;
      hi = hi < lo ? lo : hi > a.out_w ? a.out_w : hi;
      masks[kx] = V::Range(static_cast<int>(lo), static_cast<int>(hi));
    }
    switch (a.out_h) {
      case 1: Rows<1>(a, masks); break;
      case 2: Rows<2>(a, masks); break;
      case 3: Rows<3>(a, masks); break;
      case 4: Rows<4>(a, masks); break;
      case 5: Rows<5>(a, masks); break;
      case 6: Rows<6>(a, masks); break;
      case 7: Rows<7>(a, masks); break;
      default: Rows<8>(a, masks); break;
    }
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_SMALL_OUTPUT_CONV_SIMD_H_
