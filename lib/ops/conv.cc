// Conv, for 1, 2 or 3 spatial dimensions, with pads, strides, dilations,
// groups and auto_pad.
//
// im2col + GEMM: for each group, the input patches of the whole batch become
// a [(channels_per_group * kernel_size) x (images * out_positions)] matrix;
// the group's weights [out_channels_per_group x same] times it give
// [out_channels_per_group x (images * out_positions)], which is copied into
// the NCHW output while the bias is added.  One GEMM covers the whole batch,
// so its many column tiles keep the thread pool busy even when a layer has
// few output channels.
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/gemm.h"
#include "ops/op_util.h"
#include "ops/spatial.h"
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
inline void CopyPiece(const void* src, void* dst) {
  if (src != nullptr) {
    std::memcpy(dst, src, kBytes);
  } else {
    std::memset(dst, 0, kBytes);
  }
}

// dst[0, n) = src[0, n), or zeros when src is null.  Im2Col's runs are a
// few dozen values, too short for a call to memmove or memset to pay off:
// this moves 32-byte pieces and ends with one that overlaps the previous
// one rather than with a scalar tail.
template <typename T>
inline void CopyRun(const T* src, int64_t n, T* dst) {
  constexpr int64_t kPiece = 32 / sizeof(T), kHalf = kPiece / 2;
  auto at = [src](int64_t o) { return src != nullptr ? src + o : nullptr; };
  if (n >= kPiece) {
    for (int64_t o = 0; o + kPiece <= n; o += kPiece) CopyPiece<32>(at(o), dst + o);
    if (n % kPiece != 0) CopyPiece<32>(at(n - kPiece), dst + n - kPiece);
  } else if (n >= kHalf) {
    CopyPiece<16>(at(0), dst);
    CopyPiece<16>(at(n - kHalf), dst + n - kHalf);
  } else {
    for (int64_t o = 0; o < n; ++o) dst[o] = src != nullptr ? src[o] : T(0);
  }
}

// Fills cols[(c * K + kk) * (batch * P) + n * P + p] for channels
// [0, channels) of every image: row (c, kk) holds, for every output
// position, the input value under kernel position kk.  Image n starts at
// x + n * image_stride.  The innermost loop runs along the last spatial
// dimension, where both the input and the row are contiguous.
template <typename T>
void Im2Col(ThreadPool* pool, const Window& w, const T* x, int64_t batch,
            int64_t image_stride, int64_t channels, T* cols) {
  const int dims = static_cast<int>(w.in.size());
  const int last = dims - 1;
  const int64_t P = w.out_size(), K = w.kernel_size(), in_size = w.in_size();
  const int64_t width = batch * P;
  const int64_t out_last = w.out[last], in_last = w.in[last];
  const std::vector<int64_t> in_strides = ContiguousStrides(w.in);
  const std::vector<int64_t> kernel_offsets = KernelOffsets(w);
  ParallelFor(pool, channels * K, [&](int64_t row) {
    const int64_t c = row / K;
    const int64_t* koff = &kernel_offsets[(row % K) * dims];
    const int64_t start = koff[last] - w.pad_begin[last];
    const int64_t stride = w.strides[last];
    // Outputs o in [lo, hi) read inside the row (o * stride + start in
    // [0, in_last)); the others read padding.
    const int64_t lo = start >= 0 ? 0 : std::min(out_last, (stride - 1 - start) / stride);
    const int64_t hi =
        std::max(lo, std::min(out_last, (in_last - start + stride - 1) / stride));
    // Each run of outputs along the last dimension (q counts them): where
    // its input row starts, or -1 when the row lies in the padding.
    const int64_t runs = P / out_last;  // a local: the stores below could alias P
    std::vector<int64_t> run_offsets(runs);
    for (int64_t q = 0; q < runs; ++q) {
      int64_t rem = q, offset = 0;
      bool inside = true;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t pos = (rem % w.out[d]) * w.strides[d] - w.pad_begin[d] + koff[d];
        rem /= w.out[d];
        inside = inside && pos >= 0 && pos < w.in[d];
        offset += pos * in_strides[d];
      }
      run_offsets[q] = inside ? offset : -1;
    }
    for (int64_t n = 0; n < batch; ++n) {
      const T* image = x + n * image_stride + c * in_size;
      for (int64_t q = 0; q < runs; ++q) {
        T* dst = cols + row * width + n * P + q * out_last;
        const int64_t offset = run_offsets[q];
        if (offset < 0) {
          CopyRun<T>(nullptr, out_last, dst);
          continue;
        }
        const T* src = image + offset + start;
        CopyRun<T>(nullptr, lo, dst);
        if (stride == 1) {
          CopyRun(src + lo, hi - lo, dst + lo);
        } else {
          for (int64_t o = lo; o < hi; ++o) dst[o] = src[o * stride];
        }
        CopyRun<T>(nullptr, out_last - hi, dst + hi);
      }
    }
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeConv(const NodeView& node) {
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
      // Images go through im2col and the GEMM a few at a time, so that the
      // column matrix (K * cg rows of P values per image) stays in L2.
      constexpr int64_t kColumnBytes = int64_t{512} << 10;
      const int64_t chunk = std::clamp<int64_t>(
          kColumnBytes / std::max<int64_t>(1, cg * K * P * int64_t{sizeof(T)}), 1,
          std::max<int64_t>(batch, 1));
      const int64_t width = chunk * P;
      scratch->cols.Resize(x.dtype(), {cg * K, width});
      scratch->product.Resize(x.dtype(), {mg, width});
      T* cols = scratch->cols.data<T>();
      T* product = scratch->product.data<T>();
      for (int64_t first = 0; first < batch; first += chunk) {
        const int64_t images = std::min(chunk, batch - first);
        const GemmShape shape{mg, cg * K, images * P, /*trans_a=*/false, /*trans_b=*/false};
        for (int64_t g = 0; g < groups; ++g) {
          Im2Col(ctx.pool, w, x.data<T>() + (first * in_channels + g * cg) * in_size, images,
                 in_channels * in_size, cg, cols);
          Gemm(ctx.pool, shape, weights.data<T>() + g * mg * cg * K, cols, product);
          // product[j, n * P + p] -> y[first + n, g * mg + j, p], plus the bias.
          ForEachIndex(ctx.pool, images * mg, [&](int64_t nj) {
            const int64_t n = nj / mg, j = nj % mg;
            const T b = bias != nullptr ? bias->data<T>()[g * mg + j] : T(0);
            T* out = y.data<T>() + ((first + n) * out_channels + g * mg + j) * P;
            const T* in = product + j * (images * P) + n * P;
            for (int64_t p = 0; p < P; ++p) out[p] = in[p] + b;
          });
        }
      }
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
