// The SIMD depthwise convolution and its adjoint (kernels/depthwise_conv.h),
// written once over an instruction-set traits class V and instantiated by
// sgemm_avx2.cc and sgemm_avx512.cc.
//
// Both vectorize across channels: V::kWidth consecutive planes are
// interleaved into scratch, one channel per lane, so that a vector holds one
// spatial position of every channel and any plane size, stride and dilation
// fills whole vectors (MobileNet's late layers have 4x4 and 2x2 maps, which
// a vector along a row would mostly waste).  Channels past the run's end are
// zero lanes that are never written back.
//
// Forward: the input planes are interleaved (8 x 8 transposes, V's
// Transpose8x8) and copied into the reached input with the padding as zeros;
// each output vector is one chain of Fma over the taps from zero, as the
// reference, then the bias and activation; then the lanes go back to their
// planes.
// Transpose: the reached input starts at the bias and collects the products
// in the reference's order (output rows ascending; for one output row, each
// kernel row writes a different input row, and there each input column gets
// its products with the output column ascending, from kernel columns in
// decreasing order); then its rows inside the input, and the bias for input
// positions that no window reaches, go back to their planes.
//
// Besides the GEMM traits, V provides Add, Mul, Max, Min and Transpose8x8.
// Include only with V in an anonymous namespace of a translation unit built
// for V's instruction set (see sgemm_simd.h).
#ifndef QAT_LIB_KERNELS_DEPTHWISE_CONV_SIMD_H_
#define QAT_LIB_KERNELS_DEPTHWISE_CONV_SIMD_H_

#include <cstdint>
#include <cstring>

#include "kernels/activation_simd.h"
#include "kernels/depthwise_conv.h"

namespace qat {
namespace kernels {
namespace simd {

template <class V>
struct DepthwiseConvSimd {
  using F = typename V::F;
  static constexpr int64_t L = V::kWidth;
  static_assert(L <= kDepthwiseLanes, "the scratch holds kDepthwiseLanes lanes per position");
  static constexpr int kBlock = 4;  // independent output vectors at a time

  // The interleaved buffers in scratch, for the channels [c0, c0 + n).
  struct Block {
    int64_t c0, n, rows, cols, taps;
    float* reach;    // rows x cols x L: the reached input
    float* output;   // out_h x out_w x L: the output (forward) or its gradient
    float* input;    // in_h x in_w x L: the input (forward) or its gradient
    float* weights;  // taps x L
    static Block Of(const DepthwiseConv& a, int64_t c0) {
      Block b;
      b.c0 = c0;
      b.n = a.channels - c0 < L ? a.channels - c0 : L;
      b.rows = DepthwiseReachRows(a);
      b.cols = DepthwiseReachCols(a);
      b.taps = a.kernel_h * a.kernel_w;
      b.reach = a.scratch;
      b.output = b.reach + b.rows * b.cols * L;
      b.input = b.output + a.out_h * a.out_w * L;
      b.weights = b.input + a.in_h * a.in_w * L;
      for (int64_t t = 0; t < b.taps; ++t) {
        for (int64_t l = 0; l < L; ++l) {
          b.weights[t * L + l] = l < b.n ? a.w[(c0 + l) * b.taps + t] : 0.0f;
        }
      }
      return b;
    }
    // Between plane c0 + l of the planes (of `count` floats each) and lane l
    // of the interleaved positions, for l < n: kToLanes copies planes ->
    // lanes (and zeroes the lanes past n), else lanes -> planes.  Blocks of
    // 8 channels x 8 positions go through V::Transpose8x8.
    template <bool kToLanes>
    void Move(const float* src, int64_t count, float* dst) const {
      if (kToLanes && n < L) std::memset(dst, 0, static_cast<size_t>(count * L) * sizeof(float));
      if (kToLanes) {
        src += c0 * count;
      } else {
        dst += c0 * count;
      }
      // Strides by lane and by position on each side.
      const int64_t src_lane = kToLanes ? count : 1, src_pos = kToLanes ? 1 : L;
      const int64_t dst_lane = kToLanes ? 1 : count, dst_pos = kToLanes ? L : 1;
      int64_t l = 0;
      for (; l + 8 <= n; l += 8) {
        int64_t p = 0;
        for (; p + 8 <= count; p += 8) {
          V::Transpose8x8(src + l * src_lane + p * src_pos, kToLanes ? src_lane : src_pos,
                          dst + l * dst_lane + p * dst_pos, kToLanes ? dst_pos : dst_lane);
        }
        for (; p < count; ++p) {
          for (int64_t i = l; i < l + 8; ++i) {
            dst[i * dst_lane + p * dst_pos] = src[i * src_lane + p * src_pos];
          }
        }
      }
      for (; l < n; ++l) {
        for (int64_t p = 0; p < count; ++p) {
          dst[l * dst_lane + p * dst_pos] = src[l * src_lane + p * src_pos];
        }
      }
    }
  };

  // The bias and activation of a run of channels, lane by lane.
  struct Finish {
    F bias;
    bool has_bias;
    VectorActivation<V> activation;
    static Finish Of(const DepthwiseConv& a, const Block& b) {
      float bias[L];
      for (int64_t l = 0; l < L; ++l) {
        bias[l] = l < b.n && a.bias != nullptr ? a.bias[b.c0 + l] : 0.0f;
      }
      return {V::Load(bias), a.bias != nullptr, VectorActivation<V>(a.activation, a.lo, a.hi)};
    }
    F operator()(F v) const { return activation(has_bias ? V::Add(v, bias) : v); }
  };

  template <int kUsed>
  static void ForwardBlock(const DepthwiseConv& a, const Block& b, const Finish& finish,
                           int64_t oy, int64_t ox) {
    F acc[kUsed];
#pragma GCC unroll 4
    for (int u = 0; u < kUsed; ++u) acc[u] = V::Zero();
    for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
      const float* row = b.reach + (oy * a.stride_h + ky * a.dilation_h) * b.cols * L;
      for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
        const F w = V::Load(b.weights + (ky * a.kernel_w + kx) * L);
        const float* x = row + (ox * a.stride_w + kx * a.dilation_w) * L;
#pragma GCC unroll 4
        for (int u = 0; u < kUsed; ++u) acc[u] = V::Fma(w, V::Load(x + u * a.stride_w * L), acc[u]);
      }
    }
#pragma GCC unroll 4
    for (int u = 0; u < kUsed; ++u) {
      V::Store(b.output + (oy * a.out_w + ox + u) * L, finish(acc[u]));
    }
  }

  // Columns [lo, hi) of the reached input lie inside the input rows.
  static void InsideColumns(const DepthwiseConv& a, const Block& b, int64_t* lo, int64_t* hi) {
    *lo = a.pad_left < 0 ? 0 : a.pad_left < b.cols ? a.pad_left : b.cols;
    const int64_t end = a.in_w + a.pad_left;
    *hi = end < *lo ? *lo : end < b.cols ? end : b.cols;
  }

  static void Forward(const DepthwiseConv& all) {
    for (int64_t c0 = 0; c0 < all.channels; c0 += L) {
      const Block b = Block::Of(all, c0);  // the weights once for every image
      const Finish finish = Finish::Of(all, b);
      for (int64_t image = 0; image < all.images; ++image) {
        ForwardImage(DepthwiseImage(all, image), b, finish);
      }
    }
  }

  static void ForwardImage(const DepthwiseConv& a, const Block& b, const Finish& finish) {
    b.template Move<true>(a.in, a.in_h * a.in_w, b.input);
    int64_t lo, hi;
    InsideColumns(a, b, &lo, &hi);
    for (int64_t r = 0; r < b.rows; ++r) {
      const int64_t iy = r - a.pad_top;
      float* dst = b.reach + r * b.cols * L;
      if (iy < 0 || iy >= a.in_h || hi == lo) {
        std::memset(dst, 0, static_cast<size_t>(b.cols * L) * sizeof(float));
        continue;
      }
      std::memset(dst, 0, static_cast<size_t>(lo * L) * sizeof(float));
      std::memcpy(dst + lo * L, b.input + (iy * a.in_w + lo - a.pad_left) * L,
                  static_cast<size_t>((hi - lo) * L) * sizeof(float));
      std::memset(dst + hi * L, 0, static_cast<size_t>((b.cols - hi) * L) * sizeof(float));
    }
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      int64_t ox = 0;
      for (; ox + kBlock <= a.out_w; ox += kBlock) ForwardBlock<kBlock>(a, b, finish, oy, ox);
      switch (a.out_w - ox) {
        case 3: ForwardBlock<3>(a, b, finish, oy, ox); break;
        case 2: ForwardBlock<2>(a, b, finish, oy, ox); break;
        case 1: ForwardBlock<1>(a, b, finish, oy, ox); break;
        default: break;
      }
    }
    b.template Move<false>(b.output, a.out_h * a.out_w, a.out);
  }

  static void Transpose(const DepthwiseConv& all) {
    for (int64_t c0 = 0; c0 < all.channels; c0 += L) {
      const Block b = Block::Of(all, c0);  // the weights once for every image
      float bias[L];
      for (int64_t l = 0; l < L; ++l) {
        bias[l] = l < b.n && all.bias != nullptr ? all.bias[c0 + l] : 0.0f;
      }
      const F bias_v = V::Load(bias);
      for (int64_t image = 0; image < all.images; ++image) {
        TransposeImage(DepthwiseImage(all, image), b, bias_v);
      }
    }
  }

  static void TransposeImage(const DepthwiseConv& a, const Block& b, F bias_v) {
    const F zero = V::Zero();
    for (int64_t i = 0; i < b.rows * b.cols; ++i) V::Store(b.reach + i * L, bias_v);
    b.template Move<true>(a.in, a.out_h * a.out_w, b.output);
    for (int64_t oy = 0; oy < a.out_h; ++oy) {
      for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
        float* row = b.reach + (oy * a.stride_h + ky * a.dilation_h) * b.cols * L;
        const float* g = b.output + oy * a.out_w * L;
        // Kernel columns in decreasing order, each a pass along the row:
        // an input column then receives its products with the output
        // column ascending, and no pass adds twice to one position.
        for (int64_t kx = a.kernel_w - 1; kx >= 0; --kx) {
          const F w = V::Load(b.weights + (ky * a.kernel_w + kx) * L);
          float* acc = row + kx * a.dilation_w * L;
          for (int64_t ox = 0; ox < a.out_w; ++ox) {
            // + 0: the reference's g * w + 0 (the GEMM's fma(g, w, +0)).
            float* p = acc + ox * a.stride_w * L;
            V::Store(p, V::Add(V::Load(p), V::Add(V::Mul(V::Load(g + ox * L), w), zero)));
          }
        }
      }
    }
    int64_t lo, hi;
    InsideColumns(a, b, &lo, &hi);
    for (int64_t iy = 0; iy < a.in_h; ++iy) {
      const int64_t r = iy + a.pad_top;
      const bool covered_row = r >= 0 && r < b.rows;
      // Input columns [lo - pad_left, hi - pad_left) are covered.
      float* dst = b.input + iy * a.in_w * L;
      for (int64_t ix = 0; ix < a.in_w; ++ix) {
        const int64_t j = ix + a.pad_left;
        if (covered_row && j >= lo && j < hi) {
          std::memcpy(dst + ix * L, b.reach + (r * b.cols + j) * L, sizeof(float) * L);
        } else {
          V::Store(dst + ix * L, bias_v);
        }
      }
    }
    b.template Move<false>(b.input, a.in_h * a.in_w, a.out);
  }
};

}  // namespace simd
}  // namespace kernels
}  // namespace qat

#endif  // QAT_LIB_KERNELS_DEPTHWISE_CONV_SIMD_H_
