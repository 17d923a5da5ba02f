// Depthwise 2-D convolution of a run of planes (one image and consecutive
// channels of a Conv whose group equals its input and output channel
// counts), and its adjoint (the ConvTranspose of the same geometry: the data
// gradient), with no im2col and no GEMM of depth 1.  Kernel variants
// (kernels/sgemm_variants.h) implement both per instruction set; the
// references below are the definitions, and every variant gives their bits.
//
// Forward: each output is one chain of fused multiply-adds over (ky, kx) in
// increasing order, starting from zero, with padding read as zero: the chain
// of im2col + GEMM, so both paths give the same bits; then the bias and the
// activation, as the GEMM's epilogue applies them.
//
// Transpose: the result starts at the channel's bias; then, for output
// positions in increasing order and, for each, kernel taps in increasing
// order, the rounded product output * weight is added to the input position
// the tap lands on (when it lies inside): the order of ConvTransposeGemm's
// col2im after its GEMM of depth 1 (whose fma(g, w, +0) is g * w + 0), so
// again the same bits.
#ifndef QAT_LIB_KERNELS_DEPTHWISE_CONV_H_
#define QAT_LIB_KERNELS_DEPTHWISE_CONV_H_

#include <cmath>
#include <cstdint>

#include "kernels/activation.h"

namespace qat {
namespace kernels {

// The most channels a SIMD variant computes at once (one per lane), and so
// the run of planes a caller hands over for full vectors.
inline constexpr int64_t kDepthwiseLanes = 16;

// For channel c < channels:
// output[c][oy][ox] = sum over ky, kx of w[c][ky][kx] *
//   input[c][oy * stride_h + ky * dilation_h - pad_top][ox * stride_w + kx * dilation_w - pad_left]
struct DepthwiseConv {
  const float* w;  // channels x kernel_h x kernel_w
  // Forward reads `input` and writes `output`; Transpose reads `output` and
  // writes `input`.  Both hold `channels` consecutive planes.
  const float* in;    // what is read: input (forward) or output (transpose)
  float* out;         // what is written: output (forward) or input (transpose)
  // Per channel (null: none).  Forward adds it to each finished sum, then
  // applies `activation` (ApplyActivation's bits); Transpose starts every
  // sum at it.
  const float* bias;
  ActivationKind activation;  // Forward only
  float lo, hi;               // Clip's bounds
  int64_t channels;
  int64_t in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  int64_t pad_top, pad_left;  // may be negative (ConvTranspose's output_shape)
  // Scratch for the SIMD variants, at least DepthwiseScratchFloats(*this).
  float* scratch;
  // The same planes of further images: image i's planes of `in` and `out`
  // start in_image_stride and out_image_stride floats after image 0's.
  // One call for several images lays the weights out once.
  int64_t images = 1;
  int64_t in_image_stride = 0, out_image_stride = 0;
};

// `a` restricted to image i.
inline DepthwiseConv DepthwiseImage(const DepthwiseConv& a, int64_t i) {
  DepthwiseConv one = a;
  one.in = a.in + i * a.in_image_stride;
  one.out = a.out + i * a.out_image_stride;
  one.images = 1;
  return one;
}

// The rows and columns of the padded input that the windows reach: row r is
// input row r - pad_top, column j input column j - pad_left.
inline int64_t DepthwiseReachRows(const DepthwiseConv& a) {
  return (a.out_h - 1) * a.stride_h + (a.kernel_h - 1) * a.dilation_h + 1;
}
inline int64_t DepthwiseReachCols(const DepthwiseConv& a) {
  return (a.out_w - 1) * a.stride_w + (a.kernel_w - 1) * a.dilation_w + 1;
}

// The SIMD variants' scratch: the reached input, the output plane, the input
// plane and the weights, each with kDepthwiseLanes channels interleaved.
inline int64_t DepthwiseScratchFloats(const DepthwiseConv& a) {
  return kDepthwiseLanes * (DepthwiseReachRows(a) * DepthwiseReachCols(a) + a.out_h * a.out_w +
                            a.in_h * a.in_w + a.kernel_h * a.kernel_w);
}

inline void DepthwiseConvReference(const DepthwiseConv& all) {
  for (int64_t plane = 0; plane < all.images * all.channels; ++plane) {
    const DepthwiseConv a = DepthwiseImage(all, plane / all.channels);
    const int64_t c = plane % all.channels;
    const float* in = a.in + c * a.in_h * a.in_w;
    const float* w = a.w + c * a.kernel_h * a.kernel_w;
    float* out = a.out + c * a.out_h * a.out_w;
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      for (int64_t ox = 0; ox < a.out_w; ++ox) {
        float sum = 0.0f;
        for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
          for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
            const int64_t iy = oy * a.stride_h + ky * a.dilation_h - a.pad_top;
            const int64_t ix = ox * a.stride_w + kx * a.dilation_w - a.pad_left;
            const bool inside = iy >= 0 && iy < a.in_h && ix >= 0 && ix < a.in_w;
            sum = std::fma(w[ky * a.kernel_w + kx], inside ? in[iy * a.in_w + ix] : 0.0f, sum);
          }
        }
        out[oy * a.out_w + ox] = sum;
      }
    }
    ApplyActivation(a.activation, a.lo, a.hi, out, a.out_h * a.out_w, a.bias != nullptr,
                    a.bias != nullptr ? a.bias[c] : 0.0f);
  }
}

inline void DepthwiseConvTransposeReference(const DepthwiseConv& all) {
  for (int64_t plane = 0; plane < all.images * all.channels; ++plane) {
    const DepthwiseConv a = DepthwiseImage(all, plane / all.channels);
    const int64_t c = plane % all.channels;
    const float* g_plane = a.in + c * a.out_h * a.out_w;
    const float* w = a.w + c * a.kernel_h * a.kernel_w;
    float* out = a.out + c * a.in_h * a.in_w;
    const float bias = a.bias != nullptr ? a.bias[c] : 0.0f;
    for (int64_t i = 0; i < a.in_h * a.in_w; ++i) out[i] = bias;
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      for (int64_t ox = 0; ox < a.out_w; ++ox) {
        const float g = g_plane[oy * a.out_w + ox];
        for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
          for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
            const int64_t iy = oy * a.stride_h + ky * a.dilation_h - a.pad_top;
            const int64_t ix = ox * a.stride_w + kx * a.dilation_w - a.pad_left;
            if (iy >= 0 && iy < a.in_h && ix >= 0 && ix < a.in_w) {
              // + 0: the GEMM's fma(g, w, +0), which turns a product of -0 into +0.
              const float product = g * w[ky * a.kernel_w + kx] + 0.0f;
              out[iy * a.in_w + ix] += product;
            }
          }
        }
      }
    }
  }
}

}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_DEPTHWISE_CONV_H_
