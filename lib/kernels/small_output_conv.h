// A 2-D convolution of one image with one output channel and a small output
// map (a few rows, each no wider than a vector), all of whose outputs are
// summed at once: the shape of a depthwise layer's weight gradient, which
// the autodiff builds as a grouped Conv of X^T with dY^T as the kernel (so
// the "kernel" is the layer's output map and the output is its 3x3 kernel).
// Im2col would copy the input once per output position for a GEMM one row
// high; the direct kernel (kernels/direct_conv.h) would run one output row,
// a single dependent chain, at a time.  Kernel variants
// (kernels/sgemm_variants.h) implement it per instruction set.
//
// Each output is one chain of fused multiply-adds over (channel, ky, kx) in
// increasing order, starting from zero, with padding read as zero: the
// chain of im2col + GEMM, so all paths give the same bits
// (SmallOutputConvReference is the definition).
#ifndef QAT_LIB_KERNELS_SMALL_OUTPUT_CONV_H_
#define QAT_LIB_KERNELS_SMALL_OUTPUT_CONV_H_

#include <cmath>
#include <cstdint>

namespace qat {
namespace kernels {

// y[oy][ox] = sum over c, ky, kx of w[c][ky][kx] *
//   x[c][oy * stride_h + ky * dilation_h - pad_top][ox + kx * dilation_w - pad_left]
// (horizontal stride 1).
struct SmallOutputConv {
  const float* x;  // channels x in_h x in_w
  const float* w;  // channels x kernel_h x kernel_w
  float* y;        // out_h x out_w
  int64_t channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w;
  int64_t stride_h, dilation_h, dilation_w, pad_top, pad_left;
};

inline void SmallOutputConvReference(const SmallOutputConv& a) {
  for (int64_t oy = 0; oy < a.out_h; ++oy) {
    for (int64_t ox = 0; ox < a.out_w; ++ox) {
      float sum = 0.0f;
      for (int64_t c = 0; c < a.channels; ++c) {
        for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
          for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
            const int64_t iy = oy * a.stride_h + ky * a.dilation_h - a.pad_top;
            const int64_t ix = ox + kx * a.dilation_w - a.pad_left;
            const bool inside = iy >= 0 && iy < a.in_h && ix >= 0 && ix < a.in_w;
            const float v = inside ? a.x[(c * a.in_h + iy) * a.in_w + ix] : 0.0f;
            sum = std::fma(a.w[(c * a.kernel_h + ky) * a.kernel_w + kx], v, sum);
          }
        }
      }
      a.y[oy * a.out_w + ox] = sum;
    }
  }
}

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_SMALL_OUTPUT_CONV_H_
