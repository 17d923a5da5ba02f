// A direct 2-D convolution for one image: no im2col, for the small layers
// where copying the input K times costs more than the arithmetic.  Kernel
// variants (kernels/sgemm_variants.h) implement it per instruction set.
//
// Each output is one chain of fused multiply-adds over (channel, ky, kx) in
// increasing order, starting from zero, with padding read as zero: the same
// chain as im2col followed by the GEMM kernels, so both give the same bits
// (DirectConvReference is the definition).
#ifndef QAT_LIB_KERNELS_DIRECT_CONV_H_
#define QAT_LIB_KERNELS_DIRECT_CONV_H_

#include <cmath>
#include <cstdint>

namespace qat {
namespace kernels {

// y[o][oy][ox] = sum over c, ky, kx of w[o][c][ky][kx] *
//   x[c][oy * stride_h - pad_top + ky][ox - pad_left + kx]
// for o < out_channels: horizontal stride and all dilations 1.
struct DirectConv {
  const float* x;  // channels x in_h x in_w
  const float* w;  // out_channels x channels x kernel_h x kernel_w
  // The same weights as (channels * kernel_h * kernel_w) x out_channels, for
  // the SIMD kernels: one (c, ky, kx) then holds every output channel's
  // weight side by side.
  const float* w_transposed;
  float* y;        // out_channels x out_h x out_w
  int64_t channels, in_h, in_w;
  int64_t out_channels, out_h, out_w;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, pad_top, pad_left;
};

inline void DirectConvReference(const DirectConv& a) {
  for (int64_t o = 0; o < a.out_channels; ++o) {
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      for (int64_t ox = 0; ox < a.out_w; ++ox) {
        float sum = 0.0f;
        for (int64_t c = 0; c < a.channels; ++c) {
          for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
            for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
              const int64_t iy = oy * a.stride_h - a.pad_top + ky, ix = ox - a.pad_left + kx;
              const bool inside = iy >= 0 && iy < a.in_h && ix >= 0 && ix < a.in_w;
              const float v = inside ? a.x[(c * a.in_h + iy) * a.in_w + ix] : 0.0f;
              sum = std::fma(a.w[((o * a.channels + c) * a.kernel_h + ky) * a.kernel_w + kx], v,
                             sum);
            }
          }
        }
        a.y[(o * a.out_h + oy) * a.out_w + ox] = sum;
      }
    }
  }
}

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_DIRECT_CONV_H_
