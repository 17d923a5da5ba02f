// The SIMD direct convolution (kernels/direct_conv.h), written once over an
// instruction-set traits class V and instantiated by sgemm_avx2.cc and
// sgemm_avx512.cc.
//
// An output row of up to kVectors * V::kWidth positions lives in registers
// for kBlock output channels at a time; for every (c, ky, kx), the input row
// shifted by kx is loaded with a mask (lanes in the padding read zero, and
// are never touched), and multiplied into every channel's accumulators.
//
// Besides the GEMM traits, V provides M (a lane mask), Range(lo, hi) (lanes
// [lo, hi) set), MaskLoad(p, m) (zero where m is clear) and MaskStore.  The
// same rules as sgemm_simd.h hold: include only with V in an anonymous
// namespace of a translation unit built for V's instruction set.
#ifndef QAT_LIB_KERNELS_DIRECT_CONV_SIMD_H_
#define QAT_LIB_KERNELS_DIRECT_CONV_SIMD_H_

#include <cstdint>

#include "kernels/direct_conv.h"
#include "kernels/sgemm_simd.h"  // Sequence

namespace qat {
namespace kernels {
namespace simd {

template <class V, int kVectors, int kBlock>
struct DirectConvSimd {
  using F = typename V::F;
  using M = typename V::M;
  static constexpr int64_t kMaxWidth = kVectors * V::kWidth;
  static constexpr int64_t kMaxKernelWidth = 16;

  static int64_t Clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

  // Whether Run handles a: the row must fit in the registers.
  static bool Fits(const DirectConv& a) {
    return a.out_w >= 1 && a.out_w <= kMaxWidth && a.kernel_w <= kMaxKernelWidth;
  }

  template <int kUsed>
  static void Block(const DirectConv& a, int64_t o0, const M (*load_masks)[kVectors],
                    const M* store_masks) {
    const int64_t w_channel = a.kernel_h * a.kernel_w;
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      F acc[kUsed][kVectors];
#pragma GCC unroll 16
      for (int o = 0; o < kUsed; ++o) {
#pragma GCC unroll 2
        for (int v = 0; v < kVectors; ++v) acc[o][v] = V::Zero();
      }
      for (int64_t c = 0; c < a.channels; ++c) {
        for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
          const int64_t iy = oy * a.stride_h - a.pad_top + ky;
          const bool row_inside = iy >= 0 && iy < a.in_h;
          // The input row (null in the padding), offset so that lane l of
          // vector v for kernel column kx reads row[kx + v * kWidth + l];
          // the masks keep every access inside the row.
          const float* row = row_inside ? a.x + (c * a.in_h + iy) * a.in_w - a.pad_left : nullptr;
          // Row (c, ky, kx) of the transposed weights, from output channel o0.
          const float* wk =
              a.w_transposed + ((c * w_channel) + ky * a.kernel_w) * a.out_channels + o0;
          for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
            F in[kVectors];
#pragma GCC unroll 2
            for (int v = 0; v < kVectors; ++v) {
              in[v] = row_inside ? V::MaskLoad(row + kx + v * V::kWidth, load_masks[kx][v])
                                 : V::Zero();
            }
#pragma GCC unroll 16
            for (int o = 0; o < kUsed; ++o) {
              const F wv = V::Set1(wk[kx * a.out_channels + o]);
#pragma GCC unroll 2
              for (int v = 0; v < kVectors; ++v) acc[o][v] = V::Fma(wv, in[v], acc[o][v]);
            }
          }
        }
      }
#pragma GCC unroll 16
      for (int o = 0; o < kUsed; ++o) {
        float* out = a.y + ((o0 + o) * a.out_h + oy) * a.out_w;
#pragma GCC unroll 2
        for (int v = 0; v < kVectors; ++v) {
          V::MaskStore(out + v * V::kWidth, store_masks[v], acc[o][v]);
        }
      }
    }
  }

  template <int... kIndex>
  static void BlockOf(int used, const DirectConv& a, int64_t o0,
                      const M (*load_masks)[kVectors], const M* store_masks,
                      Sequence<kIndex...>) {
    using Fn = void (*)(const DirectConv&, int64_t, const M (*)[kVectors], const M*);
    static constexpr Fn table[] = {&Block<kIndex + 1>...};
    table[used - 1](a, o0, load_masks, store_masks);
  }

  static void Run(const DirectConv& a) {
    // Lane l of vector v is output position ox = v * kWidth + l; for kernel
    // column kx it reads input column ox - pad_left + kx.
    M load_masks[kMaxKernelWidth][kVectors];
    M store_masks[kVectors];
    for (int v = 0; v < kVectors; ++v) {
      const int64_t first = v * V::kWidth;
      const int64_t valid = Clamp(a.out_w - first, 0, V::kWidth);
      store_masks[v] = V::Range(0, static_cast<int>(valid));
      for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
        const int64_t shift = kx - a.pad_left + first;  // input column of lane 0
        const int64_t lo = Clamp(-shift, 0, valid), hi = Clamp(a.in_w - shift, lo, valid);
        load_masks[kx][v] = V::Range(static_cast<int>(lo), static_cast<int>(hi));
      }
    }
    for (int64_t o0 = 0; o0 < a.out_channels; o0 += kBlock) {
      const int used = static_cast<int>(Clamp(a.out_channels - o0, 1, kBlock));
      BlockOf(used, a, o0, load_masks, store_masks, typename MakeSequenceImpl<kBlock>::Type());
    }
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_DIRECT_CONV_SIMD_H_
