// The SIMD depthwise convolution and its adjoint (kernels/depthwise_conv.h),
// written once over an instruction-set traits class V and instantiated by
// sgemm_avx2.cc and sgemm_avx512.cc.
//
// Both split the rows of the input plane by column phase: phase r of a row
// holds columns r, r + stride_w, r + 2 * stride_w, ... (counted from the
// padding's start), so that kernel column kx of the outputs ox, ox + 1, ...
// reads (or, for the adjoint, writes) consecutive values of phase
// (kx * dilation_w) % stride_w from (kx * dilation_w) / stride_w on: plain
// vector loads for any stride and dilation.
//
// Forward: the phases are a zero-padded copy of the input, and each vector
// of outputs is one chain of Fma over the taps, as the reference.
// Transpose: the phases start at the bias and collect the products in the
// reference's order (output rows ascending; for one output row, each kernel
// row writes a different input row, and its kernel columns go in decreasing
// order, so that every input position receives its products with the output
// column ascending); then they are copied into the input plane.
//
// Besides the GEMM traits, V provides Add, Mul, M, Range, MaskStore.  Include
// only with V in an anonymous namespace of a translation unit built for V's
// instruction set (see sgemm_simd.h).
#ifndef QAT_LIB_KERNELS_DEPTHWISE_CONV_SIMD_H_
#define QAT_LIB_KERNELS_DEPTHWISE_CONV_SIMD_H_

#include <cstdint>

#include "kernels/depthwise_conv.h"

namespace qat {
namespace kernels {
namespace simd {

template <class V>
struct DepthwiseConvSimd {
  using F = typename V::F;
  static constexpr int kBlock = 4;  // independent output vectors at a time

  // The phase buffers: `phases` of `rows` x `width` floats; row r is input row
  // r - pad_top, entry j of phase p is input column j * stride_w + p - pad_left.
  struct Layout {
    int64_t rows, width, vectors;
    static Layout Of(const DepthwiseConv& a) {
      Layout l;
      l.vectors = (a.out_w + V::kWidth - 1) / V::kWidth;
      l.rows = (a.out_h - 1) * a.stride_h + (a.kernel_h - 1) * a.dilation_h + 1;
      l.width = l.vectors * V::kWidth + (a.kernel_w - 1) * a.dilation_w / a.stride_w + 1;
      return l;
    }
    int64_t Index(int64_t phase, int64_t row, int64_t j) const {
      return (phase * rows + row) * width + j;
    }
  };

  template <int kUsed>
  static void ForwardBlock(const DepthwiseConv& a, const Layout& l, const int64_t* job_row, const int64_t* job_col) {
    F acc[kUsed];
#pragma GCC unroll 4
    for (int b = 0; b < kUsed; ++b) acc[b] = V::Zero();
    for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
        const int64_t phase = kx * a.dilation_w % a.stride_w, shift = kx * a.dilation_w / a.stride_w;
        const F w = V::Set1(a.w[ky * a.kernel_w + kx]);
#pragma GCC unroll 4
        for (int b = 0; b < kUsed; ++b) {
          const int64_t row = job_row[b] * a.stride_h + ky * a.dilation_h;
          acc[b] = V::Fma(w, V::Load(a.scratch + l.Index(phase, row, job_col[b] + shift)), acc[b]);
        }
      }
    }
#pragma GCC unroll 4
    for (int b = 0; b < kUsed; ++b) {
      const int64_t valid = a.out_w - job_col[b];
      float* out = a.out + job_row[b] * a.out_w + job_col[b];
      if (valid >= V::kWidth) {
        V::Store(out, acc[b]);
      } else {
        V::MaskStore(out, V::Range(0, static_cast<int>(valid)), acc[b]);
      }
    }
  }

  static void Forward(const DepthwiseConv& a) {
    const Layout l = Layout::Of(a);
    for (int64_t p = 0; p < a.stride_w; ++p) {
      // Entries [lo, hi) of this phase lie inside the row: j * stride_w + p -
      // pad_left in [0, in_w).
      const int64_t first = a.pad_left - p, last = a.in_w + a.pad_left - p;
      int64_t lo = first <= 0 ? 0 : (first + a.stride_w - 1) / a.stride_w;
      int64_t hi = last <= 0 ? 0 : (last + a.stride_w - 1) / a.stride_w;
      lo = lo < l.width ? lo : l.width;
      hi = hi < lo ? lo : hi < l.width ? hi : l.width;
      for (int64_t r = 0; r < l.rows; ++r) {
        const int64_t iy = r - a.pad_top;
        float* dst = a.scratch + l.Index(p, r, 0);
        if (iy < 0 || iy >= a.in_h) {
          for (int64_t j = 0; j < l.width; ++j) dst[j] = 0.0f;
          continue;
        }
        const float* src = a.in + iy * a.in_w + p - a.pad_left;
        for (int64_t j = 0; j < lo; ++j) dst[j] = 0.0f;
        if (a.stride_w == 1) {
          for (int64_t j = lo; j < hi; ++j) dst[j] = src[j];
        } else {
          for (int64_t j = lo; j < hi; ++j) dst[j] = src[j * a.stride_w];
        }
        for (int64_t j = hi; j < l.width; ++j) dst[j] = 0.0f;
      }
    }
    // Jobs: (output row, first column of a vector), kBlock at a time.
    const int64_t jobs = a.out_h * l.vectors;
    for (int64_t first = 0; first < jobs; first += kBlock) {
      int64_t job_row[kBlock], job_col[kBlock];
      const int used = static_cast<int>(jobs - first < kBlock ? jobs - first : kBlock);
      for (int b = 0; b < used; ++b) {
        job_row[b] = (first + b) / l.vectors;
        job_col[b] = (first + b) % l.vectors * V::kWidth;
      }
      switch (used) {
        case 4: ForwardBlock<4>(a, l, job_row, job_col); break;
        case 3: ForwardBlock<3>(a, l, job_row, job_col); break;
        case 2: ForwardBlock<2>(a, l, job_row, job_col); break;
        default: ForwardBlock<1>(a, l, job_row, job_col); break;
      }
    }
  }

  static void Transpose(const DepthwiseConv& a) {
    const Layout l = Layout::Of(a);
    const int64_t total = a.stride_w * l.rows * l.width;
    for (int64_t i = 0; i < total; ++i) a.scratch[i] = a.bias;
    const F zero = V::Zero();
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      const float* g = a.in + oy * a.out_w;
      for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
        const int64_t row = oy * a.stride_h + ky * a.dilation_h;
        for (int64_t kx = a.kernel_w - 1; kx >= 0; --kx) {
          const int64_t phase = kx * a.dilation_w % a.stride_w, shift = kx * a.dilation_w / a.stride_w;
          const F w = V::Set1(a.w[ky * a.kernel_w + kx]);
          float* acc = a.scratch + l.Index(phase, row, shift);
          for (int64_t ox = 0; ox < a.out_w; ox += V::kWidth) {
            const int64_t valid = a.out_w - ox;
            if (valid >= V::kWidth) {
              // + 0: the reference's g * w + 0 (the GEMM's fma(g, w, +0)).
              const F product = V::Add(V::Mul(V::Load(g + ox), w), zero);
              V::Store(acc + ox, V::Add(V::Load(acc + ox), product));
            } else {
              // Lanes past the row's end must not touch the sums.
              const typename V::M m = V::Range(0, static_cast<int>(valid));
              const F product = V::Add(V::Mul(V::MaskLoad(g + ox, m), w), zero);
              V::MaskStore(acc + ox, m, V::Add(V::Load(acc + ox), product));
            }
          }
        }
      }
    }
    // Input positions no window reaches keep the bias.
    for (int64_t iy = 0; iy < a.in_h; ++iy) {
      const int64_t r = iy + a.pad_top;
      for (int64_t ix = 0; ix < a.in_w; ++ix) {
        const int64_t c = ix + a.pad_left;
        const int64_t p = c % a.stride_w, j = c / a.stride_w;
        const bool covered = r >= 0 && r < l.rows && c >= 0 && j < l.width;
        a.out[iy * a.in_w + ix] = covered ? a.scratch[l.Index(p, r, j)] : a.bias;
      }
    }
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_DEPTHWISE_CONV_SIMD_H_
