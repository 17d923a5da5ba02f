// Depthwise convolution (Conv with one input and one output channel per
// group) and its adjoint (the ConvTranspose of the same shape, which is
// Conv's data gradient) over a whole batch: one task per few images and run
// of kernels::kDepthwiseLanes channels, each on the selected kernel variant of
// kernels/depthwise_conv.h.  The bits do not depend on the thread count.
#ifndef QAT_LIB_EXEC_OPS_DEPTHWISE_PLANES_H_
#define QAT_LIB_EXEC_OPS_DEPTHWISE_PLANES_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "exec/ops/conv_activation.h"
#include "exec/ops/spatial.h"
#include "kernels/sgemm_variants.h"
#include "qat/thread_pool.h"

namespace qat {
namespace exec {

// `w` is the Conv's window (for ConvTranspose: the window of the Conv it is
// the adjoint of, whose `in` is ConvTranspose's output).  Forward reads
// planes of w.in and writes planes of w.out, then adds the bias (may be
// null) and applies `act` (a fused Relu or Clip, conv_activation.h), both
// inside the kernel; transpose reads planes of w.out and writes planes of
// w.in, starting every sum at the bias.  Plane t of `in` and `out` is
// image t / channels, channel t % channels.
inline void DepthwisePlanes(ThreadPool* pool, const Window& w, bool transpose, const float* in,
                            const float* weights, const float* bias, int64_t batch,
                            int64_t channels, float* out, const ConvActivation& act = {}) {
  const kernels::SgemmKernels& kernel = kernels::SelectedSgemmKernels();
  const int64_t in_plane = transpose ? w.out_size() : w.in_size();
  const int64_t out_plane = transpose ? w.in_size() : w.out_size();
  const int64_t taps = w.kernel_size();
  const int64_t runs = (channels + kernels::kDepthwiseLanes - 1) / kernels::kDepthwiseLanes;
  // A task takes a run of channels in several images, so that the kernel
  // lays the run's weights out once for all of them (on small maps that
  // took as long as the convolution).
  constexpr int64_t kImagesPerTask = 8;
  const int64_t chunks = (batch + kImagesPerTask - 1) / kImagesPerTask;
  ParallelFor(pool, chunks * runs, [&](int64_t task) {
    const int64_t n = task / runs * kImagesPerTask, c0 = task % runs * kernels::kDepthwiseLanes;
    const int64_t count = std::min(kernels::kDepthwiseLanes, channels - c0);
    const int64_t plane = n * channels + c0;  // the run's first plane
    kernels::DepthwiseConv d{};
    d.images = std::min(kImagesPerTask, batch - n);
    d.in_image_stride = channels * in_plane;
    d.out_image_stride = channels * out_plane;
    d.channels = count;
    d.in_h = w.in[0];
    d.in_w = w.in[1];
    d.out_h = w.out[0];
    d.out_w = w.out[1];
    d.kernel_h = w.kernel[0];
    d.kernel_w = w.kernel[1];
    d.stride_h = w.strides[0];
    d.stride_w = w.strides[1];
    d.dilation_h = w.dilations[0];
    d.dilation_w = w.dilations[1];
    d.pad_top = w.pad_begin[0];
    d.pad_left = w.pad_begin[1];
    d.w = weights + c0 * taps;
    d.in = in + plane * in_plane;
    d.out = out + plane * out_plane;
    d.bias = bias != nullptr ? bias + c0 : nullptr;
    d.activation = act.kind;
    d.lo = act.low<float>();
    d.hi = act.high<float>();
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(kernels::DepthwiseScratchFloats(d)));
    d.scratch = scratch.data();
    if (transpose) {
      kernel.depthwise_conv_transpose(d);
    } else {
      kernel.depthwise_conv(d);  // with the bias and activation
    }
  });
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_DEPTHWISE_PLANES_H_
