// Conv, for 1, 2 or 3 spatial dimensions, with pads, strides, dilations,
// groups and auto_pad.  Float layers take one of four paths by shape
// (ChooseConvPath), all giving the same bits (each output one chain of fused
// multiply-adds over (channel, kernel position) in increasing order, from
// zero, then the bias):
//
// - pointwise (1x1 kernel, stride 1, no padding, maps of at least
//   kPointwiseMinPositions): per image and group, W [mg x cg] times the
//   image's X [cg x positions] straight into Y, no im2col;
// - whole window (one group, a kernel exactly the size of the unpadded
//   input, so one output position: a pointwise layer's weight gradient, whose
//   "images" are input channels and whose kernel is the output gradient):
//   Y [batch x out_channels] = X [batch x (channels * kernel)] times W^T,
//   one GEMM, no im2col, the same depth order as im2col's;
// - depthwise (one input and one output channel per group, 2-D):
//   kernels/depthwise_conv.h, one task per image and run of 16 channels;
// - small output (2-D, one output channel per group, horizontal stride 1, a
//   kernel larger than the output map of a few rows of one vector: a
//   depthwise layer's weight gradient): kernels/small_output_conv.h, one task
//   per image and group;
// - direct (2-D, horizontal stride 1, no dilation, rows short enough for the
//   SIMD kernel's registers, and few output channels per group):
//   kernels/direct_conv.h, one task per image and group, no copy of the input;
// - im2col + GEMM otherwise (many channels on small maps, strides, dilations,
//   the weight-gradient convolutions of training): for each group, the input
//   patches of a few images become a [(channels_per_group * kernel_size) x
//   (images * out_positions)] matrix, small enough to stay in L2 but at least
//   kMinGemmColumns wide; the group's weights [out_channels_per_group x same]
//   times it give [out_channels_per_group x (images * out_positions)], which
//   is copied into the NCHW output while the bias is added.
// Other types take im2col + GEMM.
//
// The executor may fuse the Conv's only consumer, a Relu or a Clip with
// constant bounds, into it (MakeConvWithActivation): every path then applies
// the activation where it adds the bias, on a row still in cache, and the
// separate pass and its buffer disappear.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/target_clones.h"
#include "exec/ops/conv_activation.h"
#include "exec/ops/depthwise_planes.h"
#include "exec/ops/gemm.h"
#include "exec/ops/op_util.h"
#include "exec/ops/spatial.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// Scratch matrices kept from one run to the next.
struct ConvScratch {
  Tensor cols;
  Tensor product;
};

// kBytes bytes of src, or zeros when src is null, to dst: a fixed size, so
// the compiler emits plain vector moves.
template <int kBytes>
QAT_ALWAYS_INLINE void CopyPiece(const void* src, void* dst) {
  if (src != nullptr) {
    std::memcpy(dst, src, kBytes);
  } else {
    std::memset(dst, 0, kBytes);
  }
}

// dst[0, n) = src[0, n), or zeros when src is null.  Im2Col's runs are a
// few dozen values, too short for a call to memmove or memset to pay off:
// this moves 64-byte pieces (or two overlapping smaller ones) and ends with
// a piece that overlaps the previous one rather than with a scalar tail.
template <typename T>
QAT_ALWAYS_INLINE void CopyRun(const T* src, int64_t n, T* dst) {
  constexpr int64_t k64 = 64 / sizeof(T), k32 = k64 / 2, k16 = k64 / 4;
  auto at = [src](int64_t o) { return src != nullptr ? src + o : nullptr; };
  if (n >= k64) {
    for (int64_t o = 0; o + k64 <= n; o += k64) CopyPiece<64>(at(o), dst + o);
    if (n % k64 != 0) CopyPiece<64>(at(n - k64), dst + n - k64);
  } else if (n >= k32) {
    CopyPiece<32>(at(0), dst);
    CopyPiece<32>(at(n - k32), dst + n - k32);
  } else if (n >= k16) {
    CopyPiece<16>(at(0), dst);
    CopyPiece<16>(at(n - k16), dst + n - k16);
  } else {
    for (int64_t o = 0; o < n; ++o) dst[o] = src != nullptr ? src[o] : T(0);
  }
}

// One row (c, kk) of Im2Col for every image: image n's output runs go to
// dst + n * P, run q (along the last spatial dimension) reading the input
// row at run_offsets[q] (-1: all padding); output o of a run reads
// start + o * stride when o is in [lo, hi), padding otherwise.
template <typename T>
struct Im2ColRow {
  const T* plane;  // channel c of image 0
  int64_t image_stride, batch, P, runs, out_last, start, stride, lo, hi;
  const int64_t* run_offsets;
  T* dst;
};

template <typename T>
QAT_ALWAYS_INLINE void FillIm2ColRow(const Im2ColRow<T>& r) {
  for (int64_t n = 0; n < r.batch; ++n) {
    for (int64_t q = 0; q < r.runs; ++q) {
      T* dst = r.dst + n * r.P + q * r.out_last;
      const int64_t offset = r.run_offsets[q];
      if (offset < 0) {
        CopyRun<T>(nullptr, r.out_last, dst);
        continue;
      }
      const T* src = r.plane + n * r.image_stride + offset + r.start;
      CopyRun<T>(nullptr, r.lo, dst);
      if (r.stride == 1) {
        CopyRun(src + r.lo, r.hi - r.lo, dst + r.lo);
      } else {
        for (int64_t o = r.lo; o < r.hi; ++o) dst[o] = src[o * r.stride];
      }
      CopyRun<T>(nullptr, r.out_last - r.hi, dst + r.hi);
    }
  }
}

// The float rows, cloned per instruction set: these copies are most of
// im2col's time, and wider moves shorten them.  A copy is a copy: every
// clone writes the same bits.
QAT_TARGET_CLONES void FillIm2ColRowFloat(const Im2ColRow<float>& r) { FillIm2ColRow(r); }

// A 1x1 kernel, stride 1 and no padding: im2col would copy X unchanged.
bool IsPointwise(const Window& w) {
  for (size_t d = 0; d < w.in.size(); ++d) {
    if (w.kernel[d] != 1 || w.strides[d] != 1 || w.pad_begin[d] != 0 || w.pad_end[d] != 0) {
      return false;
    }
  }
  return true;
}

// Output rows up to this long take im2col by a gather table.
constexpr int64_t kShortRun = 4;

// Fills cols[(c * K + kk) * (batch * P) + n * P + p] for channels
// [0, channels) of every image: row (c, kk) holds, for every output
// position, the input value under kernel position kk.  Image n starts at
// x + n * image_stride.
template <typename T>
void Im2Col(ThreadPool* pool, const Window& w, const T* x, int64_t batch,
            int64_t image_stride, int64_t channels, T* cols) {
  const int dims = static_cast<int>(w.in.size());
  const int last = dims - 1;
  const int64_t P = w.out_size(), K = w.kernel_size(), in_size = w.in_size();
  const int64_t out_last = w.out[last], in_last = w.in[last];
  if (IsPointwise(w)) {
    // Row c holds channel c of each image in turn (small-map pointwise
    // layers: wider GEMMs than one per image).
    ParallelFor(pool, channels, [&](int64_t c) {
      for (int64_t n = 0; n < batch; ++n) {
        CopyRun(x + c * in_size + n * image_stride, P, cols + (c * batch + n) * P);
      }
    });
    return;
  }
  const std::vector<int64_t> in_strides = ContiguousStrides(w.in);
  const std::vector<int64_t> kernel_offsets = KernelOffsets(w);
  // For each kernel position kk and run q of outputs along the last spatial
  // dimension: where the run's input row starts, or -1 when it lies in the
  // padding.  The same for every channel and image.
  const int64_t runs = P / out_last;
  std::vector<int64_t> run_offsets(K * runs);
  for (int64_t kk = 0; kk < K; ++kk) {
    const int64_t* koff = &kernel_offsets[kk * dims];
    for (int64_t q = 0; q < runs; ++q) {
      int64_t rem = q, offset = 0;
      bool inside = true;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t pos = (rem % w.out[d]) * w.strides[d] - w.pad_begin[d] + koff[d];
        rem /= w.out[d];
        inside = inside && pos >= 0 && pos < w.in[d];
        offset += pos * in_strides[d];
      }
      run_offsets[kk * runs + q] = inside ? offset : -1;
    }
  }
  if (out_last <= kShortRun) {
    // Rows of a few outputs (ResNet's 4x4, 2x2 and 1x1 maps): runs of 1 to
    // 4 values cost more in bookkeeping than in copying, so each kernel
    // position gets a table of the input offset every output reads (-1:
    // padding), and each image of a row is one pass over it.
    std::vector<int64_t> gather(K * P);
    for (int64_t kk = 0; kk < K; ++kk) {
      const int64_t start = kernel_offsets[kk * dims + last] - w.pad_begin[last];
      for (int64_t q = 0; q < runs; ++q) {
        const int64_t offset = run_offsets[kk * runs + q];
        for (int64_t o = 0; o < out_last; ++o) {
          const int64_t pos = start + o * w.strides[last];
          const bool inside = offset >= 0 && pos >= 0 && pos < in_last;
          gather[kk * P + q * out_last + o] = inside ? offset + pos : -1;
        }
      }
    }
    ParallelFor(pool, channels * K, [&](int64_t row) {
      const int64_t c = row / K, kk = row % K;
      const int64_t* from = &gather[kk * P];
      T* dst = cols + row * batch * P;
      for (int64_t n = 0; n < batch; ++n) {
        const T* src = x + c * in_size + n * image_stride;
        for (int64_t p = 0; p < P; ++p) dst[n * P + p] = from[p] >= 0 ? src[from[p]] : T(0);
      }
    });
    return;
  }
  ParallelFor(pool, channels * K, [&](int64_t row) {
    const int64_t c = row / K, kk = row % K;
    Im2ColRow<T> r;
    r.plane = x + c * in_size;
    r.image_stride = image_stride;
    r.batch = batch;
    r.P = P;
    r.runs = runs;
    r.out_last = out_last;
    r.start = kernel_offsets[kk * dims + last] - w.pad_begin[last];
    r.stride = w.strides[last];
    const OutputRange inside = InsideOutputs(r.start, r.stride, in_last, out_last);
    r.lo = inside.lo;
    r.hi = inside.hi;
    r.run_offsets = &run_offsets[kk * runs];
    r.dst = cols + row * batch * P;
    // Runs that are whole input rows, one after another (a kernel one tap
    // wide with unit strides and no padding, such as a k x 1 kernel), are
    // one run of P.
    bool adjacent = r.stride == 1 && r.lo == 0 && r.hi == out_last && out_last == in_last;
    for (int64_t q = 0; adjacent && q < runs; ++q) {
      adjacent = r.run_offsets[q] == r.run_offsets[0] + q * in_last && r.run_offsets[0] >= 0;
    }
    if (adjacent) {
      r.runs = 1;
      r.out_last = P;
      r.hi = P;
    }
    if constexpr (std::is_same_v<T, float>) {
      FillIm2ColRowFloat(r);
    } else {
      FillIm2ColRow(r);
    }
  });
}

// The direct convolution's description of one image and group.
kernels::DirectConv DirectConvOf(const Window& w, int64_t channels, int64_t out_channels) {
  kernels::DirectConv d{};
  d.channels = channels;
  d.in_h = w.in[0];
  d.in_w = w.in[1];
  d.out_channels = out_channels;
  d.out_h = w.out[0];
  d.out_w = w.out[1];
  d.kernel_h = w.kernel[0];
  d.kernel_w = w.kernel[1];
  d.stride_h = w.strides[0];
  d.pad_top = w.pad_begin[0];
  d.pad_left = w.pad_begin[1];
  return d;
}

// Whether the kernel variant's direct convolution takes this layer: 2-D,
// horizontal stride 1, no dilation, and what the variant accepts (rows short
// enough for the SIMD registers).
// It gives the same bits as im2col + GEMM (kernels/direct_conv.h) and does
// not copy the input once per kernel position.
bool DirectConvFits(const Window& w, int64_t channels, int64_t out_channels) {
  if (w.in.size() != 2 || w.strides[1] != 1 || w.dilations[0] != 1 || w.dilations[1] != 1) {
    return false;
  }
  return kernels::SelectedSgemmKernels().direct_conv_fits(DirectConvOf(w, channels, out_channels));
}

// Per-image GEMMs narrower than this lose to im2col's images side by side
// (a few micro-tiles wide at least).
constexpr int64_t kPointwiseMinPositions = 64;
// The im2col GEMM gets at least this many columns when the batch has them:
// narrower products leave the micro-tiles mostly empty (a weight-gradient
// convolution has as few columns per "image" as the kernel has taps).
constexpr int64_t kMinGemmColumns = 256;
// The direct kernel broadcasts one weight per multiply-add and copies
// nothing; im2col + GEMM copies the input once per tap but then reuses each
// copy for every output channel from packed register tiles.  So direct for
// few output channels per group (LeNet-5's 6 and 16), GEMM for many
// (ResNet's 64 and more).  The threshold is a rule of thumb, not tuned.
constexpr int64_t kDirectMaxOutChannels = 32;

enum class ConvPath { kPointwise, kWholeWindow, kDepthwise, kSmallOutput, kDirect, kIm2col };

// The only window covers the whole input, unpadded and undilated, so that
// im2col would copy each image into one column in its own order.
bool IsWholeWindow(const Window& w, int64_t groups) {
  bool whole = groups == 1 && w.out_size() == 1;
  for (size_t d = 0; d < w.in.size(); ++d) {
    whole = whole && w.kernel[d] == w.in[d] && w.pad_begin[d] == 0 && w.dilations[d] == 1;
  }
  return whole;
}

// Whole-window Conv: Y [batch x M] = X [batch x depth] * W^T ([M x depth]
// stored), then the bias and activation of each output.
void WholeWindowConv(ThreadPool* pool, int64_t depth, const float* x, const float* weights,
                     const float* bias, int64_t batch, int64_t out_channels,
                     const ConvActivation& act, float* y) {
  const GemmShape shape{batch, depth, out_channels, /*trans_a=*/false, /*trans_b=*/true};
  Gemm<float>(pool, shape, x, weights, y);
  if (bias == nullptr && act.none()) return;
  ForEachRow(pool, batch, out_channels, [&](int64_t n) {
    for (int64_t j = 0; j < out_channels; ++j) {
      act.Apply(y + n * out_channels + j, 1, bias != nullptr, bias != nullptr ? bias[j] : 0.0f);
    }
  });
}

// The small-output kernel's description of one image and group.
kernels::SmallOutputConv SmallOutputConvOf(const Window& w, int64_t channels) {
  kernels::SmallOutputConv s{};
  s.channels = channels;
  s.in_h = w.in[0];
  s.in_w = w.in[1];
  s.out_h = w.out[0];
  s.out_w = w.out[1];
  s.kernel_h = w.kernel[0];
  s.kernel_w = w.kernel[1];
  s.stride_h = w.strides[0];
  s.dilation_h = w.dilations[0];
  s.dilation_w = w.dilations[1];
  s.pad_top = w.pad_begin[0];
  s.pad_left = w.pad_begin[1];
  return s;
}

// One output channel per group, a kernel larger than the output map, and
// what the variant accepts: a depthwise layer's weight gradient.
bool SmallOutputFits(const Window& w, int64_t cg, int64_t mg) {
  if (w.in.size() != 2 || mg != 1 || cg < 2 || w.strides[1] != 1 ||
      w.kernel_size() < w.out_size()) {
    return false;
  }
  return kernels::SelectedSgemmKernels().small_output_conv_fits(SmallOutputConvOf(w, cg));
}

// Small-output Conv, one task per image and group, then the bias.
void SmallOutputConvAll(ThreadPool* pool, const Window& w, const float* x, const float* weights,
                        const float* bias, int64_t batch, int64_t groups, int64_t cg,
                        const ConvActivation& act, float* y) {
  const kernels::SgemmKernels& kernel = kernels::SelectedSgemmKernels();
  const int64_t in_size = w.in_size(), P = w.out_size(), K = w.kernel_size();
  ParallelFor(pool, batch * groups, [&](int64_t task) {
    const int64_t g = task % groups;
    kernels::SmallOutputConv s = SmallOutputConvOf(w, cg);
    s.x = x + task * cg * in_size;
    s.w = weights + g * cg * K;
    s.y = y + task * P;
    kernel.small_output_conv(s);
    act.Apply(s.y, P, bias != nullptr, bias != nullptr ? bias[g] : 0.0f);
  });
}

// The float path for a layer (see the top of this file).
ConvPath ChooseConvPath(const Window& w, int64_t groups, int64_t cg, int64_t mg) {
  if (IsPointwise(w) && w.out_size() >= kPointwiseMinPositions) return ConvPath::kPointwise;
  if (IsWholeWindow(w, groups)) return ConvPath::kWholeWindow;
  if (cg == 1 && mg == 1 && groups > 1 && w.in.size() == 2) return ConvPath::kDepthwise;
  if (SmallOutputFits(w, cg, mg)) return ConvPath::kSmallOutput;
  if (mg <= kDirectMaxOutChannels && DirectConvFits(w, cg, mg)) return ConvPath::kDirect;
  return ConvPath::kIm2col;
}

// Pointwise Conv: Y[n, group g] = W_g [mg x cg] * X[n, group g] [cg x P],
// one task per image and group; each GEMM tile adds the bias and applies
// the activation as it finishes.
void PointwiseConvAll(ThreadPool* pool, int64_t P, const float* x, const float* weights,
                      const float* bias, int64_t batch, int64_t groups, int64_t cg, int64_t mg,
                      const ConvActivation& act, float* y) {
  const GemmShape shape{mg, cg, P, /*trans_a=*/false, /*trans_b=*/false};
  ParallelFor(pool, batch * groups, [&](int64_t task) {
    const int64_t n = task / groups, g = task % groups;
    const kernels::SgemmEpilogue epilogue =
        act.Epilogue(bias != nullptr ? bias + g * mg : nullptr);
    GemmWithEpilogue(nullptr, shape, weights + g * mg * cg, x + (n * groups + g) * cg * P,
                     y + (n * groups + g) * mg * P, epilogue);
  });
}

// Conv by the direct kernel, one task per image and group, then the bias
// (added after the sum, as the GEMM path adds it).
void DirectConvAll(ThreadPool* pool, const Window& w, const float* x, const float* weights,
                   const float* bias, int64_t batch, int64_t groups, int64_t cg, int64_t mg,
                   const ConvActivation& act, float* y) {
  const kernels::SgemmKernels& kernel = kernels::SelectedSgemmKernels();
  const int64_t in_size = w.in_size(), P = w.out_size(), depth = cg * w.kernel_size();
  // Each group's weights as depth x mg (see DirectConv::w_transposed).
  std::vector<float> transposed(groups * depth * mg);
  for (int64_t g = 0; g < groups; ++g) {
    TransposeMatrix(pool, depth, mg, weights + g * mg * depth, transposed.data() + g * depth * mg);
  }
  ParallelFor(pool, batch * groups, [&](int64_t task) {
    const int64_t n = task / groups, g = task % groups;
    kernels::DirectConv d = DirectConvOf(w, cg, mg);
    d.x = x + (n * groups + g) * cg * in_size;
    d.w = weights + g * mg * depth;
    d.w_transposed = transposed.data() + g * depth * mg;
    d.y = y + (n * groups + g) * mg * P;
    kernel.direct_conv(d);
    for (int64_t j = 0; (bias != nullptr || !act.none()) && j < mg; ++j) {
      act.Apply(d.y + j * P, P, bias != nullptr, bias != nullptr ? bias[g * mg + j] : 0.0f);
    }
  });
}

// One image's run of `len` columns (kLen when it is not 0: a constant, so
// that the copy and the activation unroll into a few vector moves).
template <int64_t kLen, typename T>
QAT_ALWAYS_INLINE void ScatterRun(const T* in, int64_t ld, int64_t rows, int64_t len, int64_t P,
                                  const T* bias, const ConvActivation& act, T* out) {
  const int64_t n = kLen > 0 ? kLen : len;
  for (int64_t i = 0; i < rows; ++i) {
    const T b = bias != nullptr ? bias[i] : T(0);
    T* dst = out + i * P;
    for (int64_t q = 0; q < n; ++q) dst[q] = in[i * ld + q] + b;
    act.Apply(dst, n, /*has_bias=*/false, T(0));
  }
}

// Rows [row, row + rows) and columns [col, col + cols) of an im2col
// product (row j: output channel j of the group; column n * P + p: image n,
// position p), given at tile (row i at tile + i * ld), into the group's NCHW
// output y (image n, channel j at y + n * image_stride + j * P), each value
// plus its channel's bias (if any), then the activation.  Image by image:
// one image's rows of the tile are consecutive in y.
template <typename T>
QAT_ALWAYS_INLINE void ScatterProductColumns(const T* tile, int64_t ld, int64_t row, int64_t col,
                                             int64_t rows, int64_t cols, int64_t P,
                                             int64_t image_stride, const T* bias,
                                             const ConvActivation& act, T* y) {
  const T* row_bias = bias != nullptr ? bias + row : nullptr;
  int64_t n = col / P, p = col % P;  // where the next run of columns starts
  for (int64_t done = 0; done < cols; done += P - p, ++n, p = 0) {
    const int64_t len = std::min(P - p, cols - done);
    T* out = y + n * image_stride + row * P + p;
    const T* in = tile + done;
    // Whole runs of the small maps' common sizes (4x4, 2x2, 1x1).
    if (len == 16) {
      ScatterRun<16>(in, ld, rows, len, P, row_bias, act, out);
    } else if (len == 4) {
      ScatterRun<4>(in, ld, rows, len, P, row_bias, act, out);
    } else if (len == 1) {
      ScatterRun<1>(in, ld, rows, len, P, row_bias, act, out);
    } else {
      ScatterRun<0>(in, ld, rows, len, P, row_bias, act, out);
    }
  }
}

// The float scatter, cloned per instruction set (additions and the
// activation's selects: every clone writes the same bits).
QAT_TARGET_CLONES void ScatterProductColumnsFloat(const float* tile, int64_t ld, int64_t row,
                                                  int64_t col, int64_t rows, int64_t cols,
                                                  int64_t P, int64_t image_stride,
                                                  const float* bias, const ConvActivation& act,
                                                  float* y) {
  ScatterProductColumns(tile, ld, row, col, rows, cols, P, image_stride, bias, act, y);
}

}  // namespace

absl::StatusOr<Kernel> MakeConv(const NodeView& node) {
  return MakeConvWithActivation(node, ConvActivation{});
}

absl::StatusOr<Kernel> MakeConvWithActivation(const NodeView& node,
                                              const ConvActivation& act) {
  const WindowAttrs attrs = WindowAttrs::FromNode(node);
  const int64_t groups = node.GetInt("group", 1);
  if (groups < 1) return absl::InvalidArgumentError("group must be positive");
  auto scratch = std::make_shared<ConvScratch>();
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor& weights = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(x, weights));
    if (x.rank() < 3 || x.rank() > 5 || weights.rank() != x.rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Conv needs X and W of the same rank 3 to 5, got ", ShapeToString(x.shape()),
          " and ", ShapeToString(weights.shape())));
    }
    const int64_t batch = x.dim(0), in_channels = x.dim(1);
    const int64_t out_channels = weights.dim(0);
    if (in_channels % groups != 0 || out_channels % groups != 0 ||
        weights.dim(1) * groups != in_channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "X ", ShapeToString(x.shape()), " and W ", ShapeToString(weights.shape()),
          " do not fit group=", groups));
    }
    const std::vector<int64_t> in(x.shape().begin() + 2, x.shape().end());
    const std::vector<int64_t> kernel(weights.shape().begin() + 2, weights.shape().end());
    if (!attrs.kernel_shape.empty() && attrs.kernel_shape != kernel) {
      return absl::InvalidArgumentError("kernel_shape does not match W's shape");
    }
    QAT_ASSIGN_OR_RETURN(const Window w, ComputeWindow(attrs, in, kernel));
    const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (bias != nullptr) {
      QAT_RETURN_IF_ERROR(RequireSameType(x, *bias));
      if (bias->num_elements() != out_channels) {
        return absl::InvalidArgumentError(absl::StrCat(
            "B has ", bias->num_elements(), " values for ", out_channels, " output channels"));
      }
    }
    std::vector<int64_t> out_shape = {batch, out_channels};
    out_shape.insert(out_shape.end(), w.out.begin(), w.out.end());
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), out_shape);
      const int64_t cg = in_channels / groups, mg = out_channels / groups;
      const int64_t P = w.out_size(), K = w.kernel_size(), in_size = w.in_size();
      if (!std::is_same_v<T, float> && act.float_tensor_bounds) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the fused Clip's min and max are float32, X is ", DataTypeName(x.dtype())));
      }
      if constexpr (std::is_same_v<T, float>) {
        const float* b = bias != nullptr ? bias->data<float>() : nullptr;
        switch (ChooseConvPath(w, groups, cg, mg)) {
          case ConvPath::kPointwise:
            PointwiseConvAll(ctx.pool, P, x.data<float>(), weights.data<float>(), b, batch,
                             groups, cg, mg, act, y.data<float>());
            return absl::OkStatus();
          case ConvPath::kWholeWindow:
            WholeWindowConv(ctx.pool, cg * K, x.data<float>(), weights.data<float>(), b, batch,
                            out_channels, act, y.data<float>());
            return absl::OkStatus();
          case ConvPath::kDepthwise:
            DepthwisePlanes(ctx.pool, w, /*transpose=*/false, x.data<float>(),
                            weights.data<float>(), b, batch, groups, y.data<float>(), act);
            return absl::OkStatus();
          case ConvPath::kSmallOutput:
            SmallOutputConvAll(ctx.pool, w, x.data<float>(), weights.data<float>(), b, batch,
                               groups, cg, act, y.data<float>());
            return absl::OkStatus();
          case ConvPath::kDirect:
            DirectConvAll(ctx.pool, w, x.data<float>(), weights.data<float>(), b, batch, groups,
                          cg, mg, act, y.data<float>());
            return absl::OkStatus();
          case ConvPath::kIm2col:
            break;
        }
      }
      // Images go through im2col and the GEMM a few at a time, so that the
      // column matrix (K * cg rows of P values per image) stays in L2, but
      // enough of them for kMinGemmColumns columns.
      constexpr int64_t kColumnBytes = int64_t{512} << 10;
      const int64_t by_bytes = kColumnBytes / std::max<int64_t>(1, cg * K * P * int64_t{sizeof(T)});
      const int64_t by_width = (kMinGemmColumns + std::max<int64_t>(P, 1) - 1) / std::max<int64_t>(P, 1);
      const int64_t chunk =
          std::clamp<int64_t>(std::max(by_bytes, by_width), 1, std::max<int64_t>(batch, 1));
      const int64_t width = chunk * P;
      scratch->cols.Resize(x.dtype(), {cg * K, width});
      // Floats never hold the whole product (SgemmToStore).
      if (!std::is_same_v<T, float>) scratch->product.Resize(x.dtype(), {mg, width});
      T* cols = scratch->cols.data<T>();
      T* product = std::is_same_v<T, float> ? nullptr : scratch->product.data<T>();
      for (int64_t first = 0; first < batch; first += chunk) {
        const int64_t images = std::min(chunk, batch - first);
        const GemmShape shape{mg, cg * K, images * P, /*trans_a=*/false, /*trans_b=*/false};
        for (int64_t g = 0; g < groups; ++g) {
          Im2Col(ctx.pool, w, x.data<T>() + (first * in_channels + g * cg) * in_size, images,
                 in_channels * in_size, cg, cols);
          // product[j, n * P + p] -> y[first + n, g * mg + j, p], plus the bias.
          T* y_group = y.data<T>() + (first * out_channels + g * mg) * P;
          const T* b_group = bias != nullptr ? bias->data<T>() + g * mg : nullptr;
          if constexpr (std::is_same_v<T, float>) {
            // Each tile of the product goes to y while it is in cache.
            SgemmToStore(ctx.pool, shape, weights.data<float>() + g * mg * cg * K, cols,
                         [&](int64_t row, int64_t col, int64_t rows, int64_t n_cols,
                             const float* tile, int64_t ld) {
                           ScatterProductColumnsFloat(tile, ld, row, col, rows, n_cols, P,
                                                      out_channels * P, b_group, act, y_group);
                         });
            continue;
          }
          Gemm(ctx.pool, shape, weights.data<T>() + g * mg * cg * K, cols, product);
          ForEachRow(ctx.pool, images * mg, P, [&](int64_t nj) {
            const int64_t n = nj / mg, j = nj % mg;
            ScatterProductColumns(product + j * (images * P) + n * P, images * P, j, n * P, 1,
                                  P, P, out_channels * P, b_group, act, y_group);
          });
        }
      }
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
