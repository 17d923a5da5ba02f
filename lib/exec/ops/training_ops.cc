// Ops that training graphs use: Sign, Expand, Split, ScatterElements and
// ConvTranspose (ReduceProd is a Reduction kind in lib/ops/reduce.cc).
//
// Split takes its sizes as an attribute before opset 13 and as an optional
// input since; opset 18's uneven last chunk is accepted too.
// ScatterElements applies its updates in index order on one thread, so
// duplicate indices give the same result every run (the last write wins
// without a reduction).  ConvTranspose runs the GEMM + col2im version; the
// reference beside it is what the tests compare it with.  Two float shapes
// that Conv's data gradient makes take a shortcut with the same bits:
// pointwise (a 1x1 kernel, stride 1, no padding: one GEMM per image and
// group, no col2im) and depthwise (one channel per group: its own kernel,
// exec/ops/depthwise_planes.h, instead of GEMMs of depth 1).
#include "exec/ops/training_ops.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "exec/ops/depthwise_planes.h"
#include "exec/ops/gemm.h"
#include "exec/ops/op_util.h"
#include "exec/ops/scatter.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

// ---- Sign -------------------------------------------------------------------

template <typename T>
T SignOf(T v) {
  if constexpr (std::is_unsigned_v<T>) {
    return v > T(0) ? T(1) : T(0);
  } else {
    if (v > T(0)) return T(1);
    if (v < T(0)) return T(-1);
    return v;  // 0 stays 0, NaN stays NaN
  }
}

// ---- Split ------------------------------------------------------------------

// The sizes of the parts of a dimension of `size` cut into `parts`: equal
// parts, or (from opset 18) equal parts but a smaller last one.
absl::StatusOr<std::vector<int64_t>> EqualSplit(int64_t size, int64_t parts,
                                                bool uneven_last) {
  if (parts < 1) return absl::InvalidArgumentError("Split needs at least one output");
  if (size % parts != 0 && !uneven_last) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot split an axis of size ", size, " into ", parts, " equal parts"));
  }
  const int64_t chunk = (size + parts - 1) / parts;
  std::vector<int64_t> sizes;
  int64_t left = size;
  for (int64_t i = 0; i < parts; ++i) {
    sizes.push_back(std::min(chunk, left));
    left -= sizes.back();
  }
  return sizes;
}

absl::Status CheckSplitSizes(const std::vector<int64_t>& sizes, int64_t parts,
                             int64_t axis, int64_t size) {
  if (static_cast<int64_t>(sizes.size()) != parts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "split has ", sizes.size(), " sizes for ", parts, " outputs"));
  }
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) {
      return absl::InvalidArgumentError(absl::StrCat("split size ", s, " is negative"));
    }
    total += s;
  }
  if (total != size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "split sizes sum to ", total, " but axis ", axis, " has size ", size));
  }
  return absl::OkStatus();
}

// ---- ConvTranspose ----------------------------------------------------------

// `v`, or `dims` copies of `fallback` when v is empty.
absl::StatusOr<std::vector<int64_t>> PerDim(const std::vector<int64_t>& v, size_t dims,
                                            int64_t fallback, const char* name) {
  if (v.empty()) return std::vector<int64_t>(dims, fallback);
  if (v.size() != dims) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has ", v.size(), " values, expected ", dims));
  }
  return v;
}

}  // namespace

// ---- ConvTranspose geometry and implementations ---------------------------

ConvTransposeAttrs ConvTransposeAttrs::FromNode(const NodeView& node) {
  ConvTransposeAttrs attrs;
  attrs.window = WindowAttrs::FromNode(node);
  attrs.output_padding = node.GetInts("output_padding");
  attrs.output_shape = node.GetInts("output_shape");
  attrs.group = node.GetInt("group", 1);
  return attrs;
}

std::vector<int64_t> ConvTransposeShape::OutputShape() const {
  std::vector<int64_t> shape = {batch, out_channels};
  shape.insert(shape.end(), window.in.begin(), window.in.end());
  return shape;
}

absl::StatusOr<ConvTransposeShape> ComputeConvTransposeShape(
    const ConvTransposeAttrs& attrs, const std::vector<int64_t>& x_shape,
    const std::vector<int64_t>& w_shape) {
  if (x_shape.size() < 3 || w_shape.size() != x_shape.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ConvTranspose needs X and W of the same rank, at least 3, got ",
        ShapeToString(x_shape), " and ", ShapeToString(w_shape)));
  }
  const int64_t groups = attrs.group;
  if (groups < 1) return absl::InvalidArgumentError("group must be positive");
  ConvTransposeShape s;
  s.batch = x_shape[0];
  s.in_channels = x_shape[1];
  s.groups = groups;
  s.out_channels = w_shape[1] * groups;
  if (w_shape[0] != s.in_channels || s.in_channels % groups != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X ", ShapeToString(x_shape), " and W ", ShapeToString(w_shape),
        " do not fit group=", groups, " (W must be [C, M/group, k...])"));
  }
  const size_t dims = x_shape.size() - 2;
  const std::vector<int64_t> in(x_shape.begin() + 2, x_shape.end());
  const std::vector<int64_t> kernel(w_shape.begin() + 2, w_shape.end());
  if (!attrs.window.kernel_shape.empty() && attrs.window.kernel_shape != kernel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kernel_shape ", ShapeToString(attrs.window.kernel_shape),
        " does not match W's shape ", ShapeToString(w_shape)));
  }
  QAT_ASSIGN_OR_RETURN(const auto strides, PerDim(attrs.window.strides, dims, 1, "strides"));
  QAT_ASSIGN_OR_RETURN(const auto dilations,
                       PerDim(attrs.window.dilations, dims, 1, "dilations"));
  QAT_ASSIGN_OR_RETURN(const auto output_padding,
                       PerDim(attrs.output_padding, dims, 0, "output_padding"));
  QAT_ASSIGN_OR_RETURN(const auto pads, PerDim(attrs.window.pads, 2 * dims, 0, "pads"));
  std::vector<int64_t> output_shape = attrs.output_shape;
  if (output_shape.size() == dims + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  if (!output_shape.empty() && output_shape.size() != dims) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_shape has ", output_shape.size(), " values, expected ", dims));
  }
  const std::string& mode = attrs.window.auto_pad;
  if (mode != "NOTSET" && mode != "VALID" && mode != "SAME_UPPER" && mode != "SAME_LOWER") {
    return absl::InvalidArgumentError(absl::StrCat("unknown auto_pad '", mode, "'"));
  }
  Window& w = s.window;
  w.out = in;
  w.kernel = kernel;
  w.strides = strides;
  w.dilations = dilations;
  for (size_t d = 0; d < dims; ++d) {
    if (kernel[d] < 1 || strides[d] < 1 || dilations[d] < 1) {
      return absl::InvalidArgumentError(
          "kernel dimensions, strides and dilations must be positive");
    }
    if (output_padding[d] < 0 || pads[d] < 0 || pads[d + dims] < 0) {
      return absl::InvalidArgumentError("pads and output_padding must not be negative");
    }
    // The output size with no padding at all.
    const int64_t full =
        strides[d] * (in[d] - 1) + output_padding[d] + dilations[d] * (kernel[d] - 1) + 1;
    int64_t out = full, begin = 0;
    if (!output_shape.empty() || mode == "SAME_UPPER" || mode == "SAME_LOWER") {
      out = output_shape.empty() ? in[d] * strides[d] : output_shape[d];
      // The padding that gives `out`, split as ONNX specifies.  A negative
      // total (a larger output than `full`) adds the extra positions at the
      // end, as output_padding does.
      const int64_t total = full - out;
      begin = total < 0 ? 0 : mode == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else if (mode == "NOTSET") {
      begin = pads[d];
      out = full - pads[d] - pads[d + dims];
    }
    if (out < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the output size on spatial axis ", d, " would be ", out));
    }
    w.in.push_back(out);
    w.pad_begin.push_back(begin);
    w.pad_end.push_back(full - out - begin);
  }
  return s;
}

template <typename T>
void ConvTransposeReference(const ConvTransposeShape& s, const T* x, const T* w,
                            const T* bias, T* y) {
  const Window& win = s.window;
  const size_t dims = win.in.size();
  const int64_t in_size = win.out_size(), out_size = win.in_size();
  const int64_t kernel_size = win.kernel_size();
  const int64_t cg = s.in_channels / s.groups, mg = s.out_channels / s.groups;
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t m = 0; m < s.out_channels; ++m) {
      T* plane = y + (n * s.out_channels + m) * out_size;
      std::fill(plane, plane + out_size, bias != nullptr ? bias[m] : T(0));
    }
  }
  std::vector<int64_t> xi(dims), ki(dims);
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t c = 0; c < s.in_channels; ++c) {
      const int64_t g = c / cg;
      for (int64_t p = 0; p < in_size; ++p) {
        for (int64_t r = p, d = static_cast<int64_t>(dims) - 1; d >= 0; --d) {
          xi[d] = r % win.out[d];
          r /= win.out[d];
        }
        const T xv = x[(n * s.in_channels + c) * in_size + p];
        for (int64_t j = 0; j < mg; ++j) {
          T* plane = y + (n * s.out_channels + g * mg + j) * out_size;
          const T* wk = w + (c * mg + j) * kernel_size;
          for (int64_t kk = 0; kk < kernel_size; ++kk) {
            for (int64_t r = kk, d = static_cast<int64_t>(dims) - 1; d >= 0; --d) {
              ki[d] = r % win.kernel[d];
              r /= win.kernel[d];
            }
            int64_t o = 0;
            bool inside = true;
            for (size_t d = 0; d < dims; ++d) {
              const int64_t pos =
                  xi[d] * win.strides[d] + ki[d] * win.dilations[d] - win.pad_begin[d];
              inside = inside && pos >= 0 && pos < win.in[d];
              o = o * win.in[d] + pos;
            }
            if (inside) plane[o] += xv * wk[kk];
          }
        }
      }
    }
  }
}

template <typename T>
void ConvTransposeGemm(ThreadPool* pool, const ConvTransposeShape& s, const T* x,
                       const T* w, const T* bias, T* y, Tensor& scratch) {
  const Window& win = s.window;
  const size_t dims = win.in.size();
  const int64_t in_size = win.out_size(), out_size = win.in_size();
  const int64_t K = win.kernel_size();
  const int64_t cg = s.in_channels / s.groups, mg = s.out_channels / s.groups;
  const int64_t row = mg * K;  // one column row: every (j, kk) of one input position
  const std::vector<int64_t> kernel_offsets = KernelOffsets(win);
  const std::vector<int64_t> out_strides = ContiguousStrides(win.in);
  // The column buffer, then x's channels of one group as [cg x (batch *
  // in_size)], so that one GEMM covers every image (as many rows as the
  // batch has positions, instead of one GEMM per image as high as a small
  // map).  Each column value is the same chain over c either way.
  const int64_t positions = s.batch * in_size;
  scratch.Resize(DataTypeOf<T>(), {positions * row + cg * positions});
  T* cols = scratch.data<T>();
  T* xt = cols + positions * row;
  const GemmShape shape{positions, cg, row, /*trans_a=*/true, /*trans_b=*/false};
  std::vector<int64_t> corners(in_size * dims);  // WindowCorner of every input position
  for (int64_t p = 0; p < in_size; ++p) WindowCorner(win, p, &corners[p * dims]);
  for (int64_t g = 0; g < s.groups; ++g) {
    // cols[n * in_size + p, j * K + kk] = sum_c x[n, g * cg + c, p] * w[g * cg + c, j, kk]
    ParallelFor(pool, cg, [&](int64_t c) {
      for (int64_t n = 0; n < s.batch; ++n) {
        std::copy_n(x + (n * s.in_channels + g * cg + c) * in_size, in_size,
                    xt + c * positions + n * in_size);
      }
    });
    Gemm<T>(pool, shape, xt, w + g * cg * row, cols);
    // col2im: one task per output plane, so every sum has a fixed order.
    ParallelFor(pool, s.batch * mg, [&](int64_t nj) {
      const int64_t n = nj / mg, j = nj % mg;
      T* plane = y + (n * s.out_channels + g * mg + j) * out_size;
      std::fill(plane, plane + out_size, bias != nullptr ? bias[g * mg + j] : T(0));
      if (dims == 2) {
        // The loop below with 2-D index arithmetic: the same additions in
        // the same order (p, then kernel rows, then kernel columns).
        const int64_t H = win.in[0], W = win.in[1];
        const int64_t KH = win.kernel[0], KW = win.kernel[1];
        const int64_t DH = win.dilations[0], DW = win.dilations[1];
        for (int64_t p = 0; p < in_size; ++p) {
          const int64_t h0 = corners[p * 2], w0 = corners[p * 2 + 1];
          const T* col = cols + (n * in_size + p) * row + j * K;
          for (int64_t kh = 0; kh < KH; ++kh) {
            const int64_t h = h0 + kh * DH;
            if (h < 0 || h >= H) continue;
            T* line = plane + h * W;
            const T* c = col + kh * KW;
            for (int64_t kw = 0; kw < KW; ++kw) {
              const int64_t w_pos = w0 + kw * DW;
              if (w_pos >= 0 && w_pos < W) line[w_pos] += c[kw];
            }
          }
        }
        return;
      }
      for (int64_t p = 0; p < in_size; ++p) {
        const int64_t* corner = &corners[p * dims];  // where x[p]'s kernel starts in y
        const T* col = cols + (n * in_size + p) * row + j * K;
        for (int64_t kk = 0; kk < K; ++kk) {
          int64_t offset = 0;
          bool inside = true;
          for (size_t d = 0; d < dims; ++d) {
            const int64_t pos = corner[d] + kernel_offsets[kk * dims + d];
            inside = inside && pos >= 0 && pos < win.in[d];
            offset += pos * out_strides[d];
          }
          if (inside) plane[offset] += col[kk];
        }
      }
    });
  }
}

template void ConvTransposeReference<float>(const ConvTransposeShape&, const float*,
                                            const float*, const float*, float*);
template void ConvTransposeReference<double>(const ConvTransposeShape&, const double*,
                                             const double*, const double*, double*);
template void ConvTransposeGemm<float>(ThreadPool*, const ConvTransposeShape&, const float*,
                                       const float*, const float*, float*, Tensor&);
template void ConvTransposeGemm<double>(ThreadPool*, const ConvTransposeShape&,
                                        const double*, const double*, const double*,
                                        double*, Tensor&);

// ---- Factories ----------------------------------------------------------------

absl::StatusOr<Kernel> MakeSign(const NodeView& node) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    return VisitNumeric(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      MapUnary<T, T>(ctx.pool, x, ctx.output(0), SignOf<T>);
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeExpand(const NodeView& node) {
  return Kernel([](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, ReadInts(ctx.input(1), "shape"));
    for (int64_t d : shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "shape ", ShapeToString(shape), " has a negative dimension"));
      }
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> out_shape,
                         BroadcastShapes({&x.shape(), &shape}));
    const std::array<std::vector<int64_t>, 1> strides = {BroadcastStrides(x.shape(), out_shape)};
    return VisitAll(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0);
      out.Resize(x.dtype(), out_shape);
      const T* px = x.data<T>();
      T* po = out.data<T>();
      ForEachBroadcast<1>(ctx.pool, out_shape, strides,
                          [&](int64_t i, const std::array<int64_t, 1>& o) { po[i] = px[o[0]]; });
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<Kernel> MakeSplit(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", 0);
  const bool sizes_from_input = node.opset() >= 13;
  const std::vector<int64_t> split_attr = node.GetInts("split");
  const bool uneven_last = node.opset() >= 18;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
    const int64_t parts = static_cast<int64_t>(ctx.outputs.size());
    std::vector<int64_t> sizes = sizes_from_input ? std::vector<int64_t>() : split_attr;
    if (sizes_from_input && ctx.has_input(1)) {
      QAT_ASSIGN_OR_RETURN(sizes, ReadInts(ctx.input(1), "split"));
    }
    if (sizes.empty()) {
      QAT_ASSIGN_OR_RETURN(sizes, EqualSplit(x.dim(axis), parts, uneven_last));
    }
    QAT_RETURN_IF_ERROR(CheckSplitSizes(sizes, parts, axis, x.dim(axis)));
    const size_t elem = DataTypeSize(x.dtype());
    const int64_t outer = Product(x.shape(), 0, axis);
    const size_t inner = static_cast<size_t>(Product(x.shape(), axis + 1, x.shape().size())) * elem;
    const size_t in_row = static_cast<size_t>(x.dim(axis)) * inner;
    const char* src = static_cast<const char*>(x.raw_data());
    size_t column = 0;
    for (int64_t i = 0; i < parts; ++i) {
      std::vector<int64_t> shape = x.shape();
      shape[axis] = sizes[i];
      Tensor& out = ctx.output(static_cast<int>(i));
      out.Resize(x.dtype(), shape);
      const size_t out_row = static_cast<size_t>(sizes[i]) * inner;
      char* dst = static_cast<char*>(out.raw_data());
      if (out_row > 0) {
        for (int64_t o = 0; o < outer; ++o) {
          std::memcpy(dst + o * out_row, src + o * in_row + column, out_row);
        }
      }
      column += out_row;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Kernel> MakeScatterElements(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", 0);
  QAT_ASSIGN_OR_RETURN(const ScatterReduction reduction,
                       ParseScatterReduction(node.GetString("reduction", "none")));
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& data = ctx.input(0);
    const Tensor& indices_t = ctx.input(1);
    const Tensor& updates = ctx.input(2);
    QAT_RETURN_IF_ERROR(RequireSameType(data, updates));
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, data.rank()));
    QAT_RETURN_IF_ERROR(CheckElementIndexShapes(data, indices_t, axis));
    if (updates.shape() != indices_t.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "updates ", ShapeToString(updates.shape()), " must have the shape of indices ",
          ShapeToString(indices_t.shape())));
    }
    QAT_ASSIGN_OR_RETURN(std::vector<int64_t> indices, ReadIndices(indices_t, "indices"));
    const int64_t n = data.dim(axis);
    QAT_RETURN_IF_ERROR(WrapIndices(axis, n, &indices));
    // Offsets into data of every index position, but for the axis.
    std::vector<int64_t> strides = ContiguousStrides(data.shape());
    const int64_t axis_stride = strides[axis];
    strides[axis] = 0;
    const DataType dtype = data.dtype();
    // The output starts as data: its very buffer when this node is data's
    // last reader (a gradient's zeros), so `data` is not read after this.
    ForwardInput(ctx, 0, data.shape());
    return VisitAll(dtype, [&](auto tag) {
      using T = decltype(tag);
      T* po = ctx.output(0).data<T>();
      const T* pu = updates.data<T>();
      ForEachBroadcast<1>(nullptr, indices_t.shape(), {strides},
                          [&](int64_t i, const std::array<int64_t, 1>& o) {
                            ScatterOne(reduction, pu[i], po[o[0] + indices[i] * axis_stride]);
                          });
      return absl::OkStatus();
    });
  });
}

namespace {

// The float shortcuts (see the top of this file); false when neither fits.
bool ConvTransposeByShape(ThreadPool* pool, const ConvTransposeShape& s, const float* x,
                          const float* w, const float* bias, float* y) {
  const Window& win = s.window;
  const int64_t cg = s.in_channels / s.groups, mg = s.out_channels / s.groups;
  bool pointwise = win.in == win.out;
  for (size_t d = 0; d < win.in.size(); ++d) {
    pointwise = pointwise && win.kernel[d] == 1 && win.strides[d] == 1 && win.pad_begin[d] == 0;
  }
  if (pointwise) {
    // y[n, g] [mg x P] = w_g^T (w_g stored [cg x mg]) * x[n, g] [cg x P]: the
    // col2im GEMM's chain over the input channels, then the bias (col2im
    // starts from it: b + chain is chain + b).
    const int64_t P = win.in_size();
    // w_g^T once, not once per image: the GEMM reads it in place (the same
    // values in the same order as packing w_g transposed: the same bits).
    std::vector<float> w_t(static_cast<size_t>(s.groups * mg * cg));
    for (int64_t g = 0; g < s.groups; ++g) {
      TransposeMatrix(pool, mg, cg, w + g * cg * mg, w_t.data() + g * mg * cg);
    }
    const GemmShape shape{mg, cg, P, /*trans_a=*/false, /*trans_b=*/false};
    ParallelFor(pool, s.batch * s.groups, [&](int64_t task) {
      const int64_t n = task / s.groups, g = task % s.groups;
      float* out = y + (n * s.groups + g) * mg * P;
      Gemm<float>(nullptr, shape, w_t.data() + g * mg * cg, x + (n * s.groups + g) * cg * P, out);
      for (int64_t j = 0; bias != nullptr && j < mg; ++j) {
        const float b = bias[g * mg + j];
        for (int64_t p = 0; p < P; ++p) out[j * P + p] += b;
      }
    });
    return true;
  }
  if (cg == 1 && mg == 1 && s.groups > 1 && win.in.size() == 2) {
    DepthwisePlanes(pool, win, /*transpose=*/true, x, w, bias, s.batch, s.groups, y);
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<Kernel> MakeConvTranspose(const NodeView& node) {
  const ConvTransposeAttrs attrs = ConvTransposeAttrs::FromNode(node);
  if (attrs.group < 1) return absl::InvalidArgumentError("group must be positive");
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    // The column buffer, one per thread for every ConvTranspose node: one
    // per node kept 38 MB for resnet18's data gradients (issue 16).
    thread_local Tensor scratch;
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor& weights = ctx.input(1);
    QAT_RETURN_IF_ERROR(RequireSameType(x, weights));
    QAT_ASSIGN_OR_RETURN(const ConvTransposeShape s,
                         ComputeConvTransposeShape(attrs, x.shape(), weights.shape()));
    const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (bias != nullptr) {
      QAT_RETURN_IF_ERROR(RequireSameType(x, *bias));
      if (bias->rank() != 1 || bias->dim(0) != s.out_channels) {
        return absl::InvalidArgumentError(absl::StrCat(
            "B has shape ", ShapeToString(bias->shape()), ", expected [", s.out_channels, "]"));
      }
    }
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), s.OutputShape());
      if constexpr (std::is_same_v<T, float>) {
        if (ConvTransposeByShape(ctx.pool, s, x.data<float>(), weights.data<float>(),
                                 bias != nullptr ? bias->data<float>() : nullptr,
                                 y.data<float>())) {
          return absl::OkStatus();
        }
      }
      ConvTransposeGemm<T>(ctx.pool, s, x.data<T>(), weights.data<T>(),
                           bias != nullptr ? bias->data<T>() : nullptr, y.data<T>(),
                           scratch);
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
