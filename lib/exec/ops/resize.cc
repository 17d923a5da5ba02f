// Resize (opset 10 on), Upsample (7 to 9) and their gradient, ai.libqat
// ResizeGrad, sharing one implementation.
//
// Every mode of Resize is separable: the output is the input interpolated
// along one axis after the other (ONNX's reference goes from the last axis
// to the first, and so does this kernel, so tf_crop_and_resize's
// extrapolated values mix the same way).  Along one axis, output index o
// reads at most four input taps with fixed weights (AxisTaps), computed in
// double exactly as the reference computes them: the coordinate transform,
// the taps nearest the point (the edge value repeated past the ends), the
// nearest/linear/cubic weights, exclude_outside's renormalization.  So the
// whole op is a linear map (plus tf_crop_and_resize's constant outside the
// crop), and ResizeGrad is its adjoint: the same taps, scattered back, axis
// by axis in the opposite order.
//
// ResizeGrad(dY, X's shape, roi, scales, sizes) takes Resize's attributes
// (those of opset 11, which the gradient rule fills in for Upsample and
// Resize-10) and outputs dX.  Its decomposition into standard ops is one
// MatMul per resized axis with the axis's dense [out, in] weight matrix,
// transposed.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <type_traits>

#include "core/checked_size.h"
#include "exec/ops/interpolation.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize
};
enum class Rounding { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

struct ResizeAttrs {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Rounding rounding = Rounding::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
};

// Reads the attributes.  `legacy`: Upsample and Resize-10, which have only
// `mode` and sample at x / scale, rounding down.
absl::StatusOr<ResizeAttrs> ParseAttrs(const NodeView& node, bool legacy) {
  ResizeAttrs a;
  const std::string mode = node.GetString("mode", "nearest");
  if (mode == "nearest") {
    a.mode = Mode::kNearest;
  } else if (mode == "linear" || mode == "bilinear") {  // Upsample-7 spells it bilinear too
    a.mode = Mode::kLinear;
  } else if (mode == "cubic" && !legacy) {
    a.mode = Mode::kCubic;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown mode '", mode, "'"));
  }
  if (legacy) {
    a.coord = Coord::kAsymmetric;
    a.rounding = Rounding::kFloor;
    return a;
  }
  const std::string coord = node.GetString("coordinate_transformation_mode", "half_pixel");
  if (coord == "half_pixel") {
    a.coord = Coord::kHalfPixel;
  } else if (coord == "pytorch_half_pixel") {
    a.coord = Coord::kPytorchHalfPixel;
  } else if (coord == "align_corners") {
    a.coord = Coord::kAlignCorners;
  } else if (coord == "asymmetric") {
    a.coord = Coord::kAsymmetric;
  } else if (coord == "tf_half_pixel_for_nn") {
    a.coord = Coord::kTfHalfPixelForNn;
  } else if (coord == "tf_crop_and_resize") {
    a.coord = Coord::kTfCropAndResize;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown coordinate_transformation_mode '", coord, "'"));
  }
  const std::string rounding = node.GetString("nearest_mode", "round_prefer_floor");
  if (rounding == "round_prefer_floor") {
    a.rounding = Rounding::kRoundPreferFloor;
  } else if (rounding == "round_prefer_ceil") {
    a.rounding = Rounding::kRoundPreferCeil;
  } else if (rounding == "floor") {
    a.rounding = Rounding::kFloor;
  } else if (rounding == "ceil") {
    a.rounding = Rounding::kCeil;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown nearest_mode '", rounding, "'"));
  }
  // Opset 18's additions are refused rather than ignored.
  if (node.HasAttr("axes") || node.GetInt("antialias", 0) != 0 ||
      node.GetString("keep_aspect_ratio_policy", "stretch") != "stretch") {
    return absl::UnimplementedError(
        "Resize's axes, antialias and keep_aspect_ratio_policy (opset 18) are not supported");
  }
  a.cubic_a = node.GetFloat("cubic_coeff_a", -0.75f);
  a.exclude_outside = node.GetInt("exclude_outside", 0) != 0;
  a.extrapolation = node.GetFloat("extrapolation_value", 0.0f);
  return a;
}

// The interpolation along one axis: output index o reads input indices
// index[o * width + k] (clamped into the axis) with weights weight[...], or
// is `extrapolation` when outside[o] (tf_crop_and_resize).
struct AxisTaps {
  int64_t in = 0, out = 0;
  int width = 1;
  std::vector<int64_t> index;
  std::vector<double> weight;
  std::vector<char> outside;
  bool identity = false;  // every output reads its own index with weight 1
};

// `out_length` is the reference's output_width, scale * in (with sizes, the
// size itself), which align_corners divides by.
AxisTaps ComputeTaps(const ResizeAttrs& a, int64_t in, int64_t out, double scale,
                     double out_length, double roi_start, double roi_end) {
  AxisTaps t;
  t.in = in;
  t.out = out;
  t.width = a.mode == Mode::kNearest ? 1 : a.mode == Mode::kLinear ? 2 : 4;
  t.index.assign(out * t.width, 0);
  t.weight.assign(out * t.width, 0.0);
  t.outside.assign(out, 0);
  t.identity = in == out;
  for (int64_t o = 0; o < out; ++o) {
    const double x_out = static_cast<double>(o);
    double x = 0;
    switch (a.coord) {
      case Coord::kHalfPixel: x = (x_out + 0.5) / scale - 0.5; break;
      case Coord::kPytorchHalfPixel:
        x = out_length == 1 ? -0.5 : (x_out + 0.5) / scale - 0.5;
        break;
      case Coord::kAlignCorners:
        x = out_length == 1 ? 0.0 : x_out * static_cast<double>(in - 1) / (out_length - 1);
        break;
      case Coord::kAsymmetric: x = x_out / scale; break;
      case Coord::kTfHalfPixelForNn: x = (x_out + 0.5) / scale; break;
      case Coord::kTfCropAndResize: {
        const double span = static_cast<double>(in - 1);
        x = out_length == 1 ? (roi_end - roi_start) * span / 2
                            : x_out * (roi_end - roi_start) * span / (out_length - 1);
        x += roi_start * span;
        if (x < 0 || x > span) {
          t.outside[o] = 1;
          t.identity = false;
          continue;
        }
        break;
      }
    }
    int64_t* idx = &t.index[o * t.width];
    double* w = &t.weight[o * t.width];
    const double fl = std::floor(x);
    if (a.mode == Mode::kNearest) {
      const double ratio = x - fl;
      double pick = fl;
      if (ratio != 0) {
        switch (a.rounding) {
          case Rounding::kRoundPreferFloor: pick = ratio <= 0.5 ? fl : fl + 1; break;
          case Rounding::kRoundPreferCeil: pick = ratio < 0.5 ? fl : fl + 1; break;
          case Rounding::kFloor: pick = fl; break;
          case Rounding::kCeil: pick = fl + 1; break;
        }
      }
      const int64_t i = std::clamp<int64_t>(static_cast<int64_t>(pick), 0, in - 1);
      idx[0] = i;
      w[0] = 1;
      t.identity = t.identity && i == o;
      continue;
    }
    // The tap left of x (the one before x when x is whole, with ratio 1, as
    // the reference's tie between the two neighbours goes to the lower);
    // the reference pads the axis with width / 2 edge values, so the taps
    // stay within that padding.
    double left = std::ceil(x) - 1;
    const double ratio = x - left;
    left = std::clamp(left, -1.0, static_cast<double>(in - 1));
    double coeffs[4] = {1 - ratio, ratio, 0, 0};
    int64_t first = static_cast<int64_t>(left);
    if (a.mode == Mode::kCubic) {
      CubicWeights(ratio, a.cubic_a, coeffs);
      first -= 1;
    }
    double sum = 0;
    for (int k = 0; k < t.width; ++k) {
      const int64_t pos = first + k;
      if (a.exclude_outside && (pos < 0 || pos >= in)) coeffs[k] = 0;
      sum += coeffs[k];
    }
    for (int k = 0; k < t.width; ++k) {
      const int64_t pos = first + k;
      idx[k] = std::clamp<int64_t>(pos, 0, in - 1);
      w[k] = a.exclude_outside && sum != 0 ? coeffs[k] / sum : coeffs[k];
      t.identity = t.identity && (idx[k] == o ? w[k] == 1 : w[k] == 0);
    }
  }
  return t;
}

// Where the node's roi, scales and sizes are (-1: it has none).
struct ParamInputs {
  int roi = -1, scales = -1, sizes = -1;
};

// The output shape and the taps of every axis, from the input's shape and
// the roi, scales and sizes inputs (or Upsample-7's scales attribute).
absl::StatusOr<std::vector<AxisTaps>> Plan(const ResizeAttrs& a,
                                           const std::vector<int64_t>& in_shape,
                                           const KernelContext& ctx, ParamInputs p,
                                           const std::vector<float>& attr_scales) {
  const size_t rank = in_shape.size();
  auto present = [&](int i) { return i >= 0 && ctx.has_input(i) && ctx.input(i).num_elements() > 0; };
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  if (present(p.sizes)) {
    QAT_ASSIGN_OR_RETURN(sizes, ReadInts(ctx.input(p.sizes), "sizes"));
    if (present(p.scales)) {
      return absl::InvalidArgumentError("only one of scales and sizes may be given");
    }
    if (sizes.size() != rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sizes has ", sizes.size(), " values for an input of rank ", rank));
    }
  } else if (present(p.scales)) {
    QAT_ASSIGN_OR_RETURN(scales, ReadReals(ctx.input(p.scales), "scales"));
  } else if (p.scales < 0) {
    scales.assign(attr_scales.begin(), attr_scales.end());
  } else {
    return absl::InvalidArgumentError("one of scales and sizes is required");
  }
  if (sizes.empty() && scales.size() != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scales has ", scales.size(), " values for an input of rank ", rank));
  }
  if (a.coord == Coord::kTfCropAndResize && present(p.roi)) {
    QAT_ASSIGN_OR_RETURN(roi, ReadReals(ctx.input(p.roi), "roi"));
    if (roi.size() != 2 * rank) {
      return absl::InvalidArgumentError(absl::StrCat(
          "roi has ", roi.size(), " values for an input of rank ", rank));
    }
  }
  std::vector<AxisTaps> axes;
  std::vector<int64_t> out_shape(rank);
  std::vector<double> axis_scale(rank), axis_length(rank);
  for (size_t d = 0; d < rank; ++d) {
    const int64_t in = in_shape[d];
    double scale = 0, out_length = 0;
    int64_t out = 0;
    if (!sizes.empty()) {
      if (sizes[d] < 0 || (in == 0 && sizes[d] != 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sizes[", d, "] = ", sizes[d], " for an axis of size ", in));
      }
      out = sizes[d];
      scale = in > 0 ? static_cast<double>(out) / static_cast<double>(in) : 1.0;
      out_length = static_cast<double>(out);
    } else {
      scale = scales[d];
      if (!(scale > 0) || !std::isfinite(scale)) {
        return absl::InvalidArgumentError(
            absl::StrCat("scales[", d, "] = ", scale, " is not positive and finite"));
      }
      out_length = scale * static_cast<double>(in);
      if (out_length >= 0x1p62) {
        return absl::InvalidArgumentError(absl::StrCat(
            "scales[", d, "] = ", scale, " makes axis ", d, " too large"));
      }
      out = static_cast<int64_t>(out_length);
    }
    if (out > 0 && in == 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot resize an empty axis ", d));
    }
    out_shape[d] = out;
    axis_scale[d] = scale;
    axis_length[d] = out_length;
  }
  // Before the taps, which take memory in proportion to the output's axes.
  QAT_RETURN_IF_ERROR(CheckedByteCount(DataType::kFloat64, out_shape).status());
  for (size_t d = 0; d < rank; ++d) {
    const double start = roi.empty() ? 0.0 : roi[d], end = roi.empty() ? 1.0 : roi[d + rank];
    axes.push_back(ComputeTaps(a, in_shape[d], out_shape[d], axis_scale[d], axis_length[d],
                               start, end));
  }
  return axes;
}

// Rows of `inner` elements per task.
int64_t RowsPerTask(int64_t inner, int width) {
  return std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(1, inner * width));
}

// One output row of the last axis: y[o] = sum of the taps of o, kWidth of
// them (a compile-time width, so that the tap loop unrolls).
template <int kWidth, typename T, typename W>
void InterpolateRow(const AxisTaps& t, const W* weights, T extrapolation, const T* src, T* y) {
  for (int64_t o = 0; o < t.out; ++o) {
    const int64_t* idx = &t.index[o * kWidth];
    const W* w = weights + o * kWidth;
    W acc = 0;
    for (int k = 0; k < kWidth; ++k) acc += w[k] * static_cast<W>(src[idx[k]]);
    y[o] = t.outside[o] ? extrapolation : static_cast<T>(acc);
  }
}

// dst [outer, t.out, inner] = src [outer, t.in, inner] interpolated along
// the middle axis.  Float data interpolates in float (the weights are
// exact to float's rounding, far inside the reference's tolerance).
template <typename T>
void ForwardAxis(ThreadPool* pool, const AxisTaps& t, int64_t outer, int64_t inner,
                 T extrapolation, const T* src, T* dst) {
  using W = std::conditional_t<std::is_floating_point_v<T>, T, double>;
  const std::vector<W> weights(t.weight.begin(), t.weight.end());
  if (inner == 1) {
    // The last axis: a gather along each row.
    const int64_t per_task = RowsPerTask(t.out, t.width);
    ParallelFor(pool, (outer + per_task - 1) / per_task, [&](int64_t task) {
      const int64_t end = std::min(outer, (task + 1) * per_task);
      for (int64_t b = task * per_task; b < end; ++b) {
        const T* row = src + b * t.in;
        T* y = dst + b * t.out;
        if (t.width == 1) {
          for (int64_t o = 0; o < t.out; ++o) {
            y[o] = t.outside[o] ? extrapolation : row[t.index[o]];
          }
        } else if (t.width == 2) {
          InterpolateRow<2>(t, weights.data(), extrapolation, row, y);
        } else {
          InterpolateRow<4>(t, weights.data(), extrapolation, row, y);
        }
      }
    });
    return;
  }
  // An outer axis: each output row is a weighted sum of whole input rows.
  const int64_t rows = outer * t.out, per_task = RowsPerTask(inner, t.width);
  ParallelFor(pool, (rows + per_task - 1) / per_task, [&](int64_t task) {
    const int64_t end = std::min(rows, (task + 1) * per_task);
    for (int64_t r = task * per_task; r < end; ++r) {
      const int64_t b = r / t.out, o = r % t.out;
      T* __restrict y = dst + r * inner;
      if (t.outside[o]) {
        std::fill(y, y + inner, extrapolation);
        continue;
      }
      const T* base = src + b * t.in * inner;
      const int64_t* idx = &t.index[o * t.width];
      const W* w = &weights[o * t.width];
      if (t.width == 1) {
        std::copy_n(base + idx[0] * inner, inner, y);
        continue;
      }
      const T* __restrict first = base + idx[0] * inner;
      for (int64_t i = 0; i < inner; ++i) y[i] = static_cast<T>(w[0] * static_cast<W>(first[i]));
      for (int k = 1; k < t.width; ++k) {
        const T* __restrict in = base + idx[k] * inner;
        const W wk = w[k];
        for (int64_t i = 0; i < inner; ++i) {
          y[i] = static_cast<T>(static_cast<W>(y[i]) + wk * static_cast<W>(in[i]));
        }
      }
    }
  });
}

// The adjoint: dst [outer, t.in, inner] = the taps' weights times src
// [outer, t.out, inner], summed per input index (extrapolated outputs send
// nothing back).  Tasks own whole outer blocks, so sums never race.
template <typename T>
void BackwardAxis(ThreadPool* pool, const AxisTaps& t, int64_t outer, int64_t inner,
                  const T* src, T* dst) {
  const int64_t per_task = std::max<int64_t>(1, RowsPerTask(inner, t.width) / std::max<int64_t>(1, t.out));
  ParallelFor(pool, (outer + per_task - 1) / per_task, [&](int64_t task) {
    const int64_t end = std::min(outer, (task + 1) * per_task);
    std::vector<double> acc;
    for (int64_t b = task * per_task; b < end; ++b) {
      acc.assign(t.in * inner, 0.0);
      const T* g = src + b * t.out * inner;
      for (int64_t o = 0; o < t.out; ++o) {
        if (t.outside[o]) continue;
        for (int k = 0; k < t.width; ++k) {
          const double w = t.weight[o * t.width + k];
          double* a = &acc[t.index[o * t.width + k] * inner];
          for (int64_t i = 0; i < inner; ++i) a[i] += w * static_cast<double>(g[o * inner + i]);
        }
      }
      T* x = dst + b * t.in * inner;
      for (int64_t i = 0; i < t.in * inner; ++i) x[i] = static_cast<T>(acc[i]);
    }
  });
}

// Runs the axes' passes, forward (last axis first) or backward (first axis
// first); the last pass writes `out`, the others alternate between the two
// scratch tensors (kept from run to run).
template <typename T>
void RunPasses(ThreadPool* pool, const std::vector<AxisTaps>& axes, bool backward,
               T extrapolation, const Tensor& in, Tensor& out, Tensor scratch[2]) {
  const size_t rank = axes.size();
  std::vector<size_t> order;
  for (size_t step = 0; step < rank; ++step) {
    const size_t d = backward ? step : rank - 1 - step;
    if (!axes[d].identity) order.push_back(d);
  }
  if (order.empty()) {
    out = in;
    return;
  }
  std::vector<int64_t> shape(rank);
  for (size_t d = 0; d < rank; ++d) shape[d] = backward ? axes[d].out : axes[d].in;
  const Tensor* current = &in;
  for (size_t j = 0; j < order.size(); ++j) {
    const size_t d = order[j];
    const AxisTaps& t = axes[d];
    const int64_t outer = Product(shape, 0, d), inner = Product(shape, d + 1, rank);
    shape[d] = backward ? t.in : t.out;
    Tensor& dst = j + 1 == order.size() ? out : scratch[j % 2];
    dst.Resize(in.dtype(), shape);
    if (backward) {
      BackwardAxis<T>(pool, t, outer, inner, current->data<T>(), dst.data<T>());
    } else {
      ForwardAxis<T>(pool, t, outer, inner, extrapolation, current->data<T>(), dst.data<T>());
    }
    current = &dst;
  }
}

absl::StatusOr<Kernel> MakeResizeLike(const NodeView& node, bool legacy, ParamInputs p,
                                      bool gradient) {
  QAT_ASSIGN_OR_RETURN(const ResizeAttrs a, ParseAttrs(node, legacy));
  std::vector<float> attr_scales;
  if (p.scales < 0) {
    attr_scales = node.GetFloats("scales");
    if (attr_scales.empty()) return absl::InvalidArgumentError("the scales attribute is required");
  }
  // Intermediate results between the axes' passes, reused by later runs.
  auto scratch = std::make_shared<std::array<Tensor, 2>>();
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> in_shape = x.shape();
    if (gradient) {
      QAT_RETURN_IF_ERROR(RequireInput(ctx, 1));
      QAT_ASSIGN_OR_RETURN(in_shape, ReadInts(ctx.input(1), "the input's shape"));
      QAT_RETURN_IF_ERROR(CheckedByteCount(DataType::kFloat64, in_shape).status());
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<AxisTaps> axes, Plan(a, in_shape, ctx, p, attr_scales));
    if (gradient) {
      for (size_t d = 0; d < axes.size(); ++d) {
        if (x.rank() != static_cast<int64_t>(axes.size()) || x.dim(d) != axes[d].out) {
          return absl::InvalidArgumentError(absl::StrCat(
              "dY has shape ", ShapeToString(x.shape()), ", not the resized shape of ",
              ShapeToString(in_shape)));
        }
      }
      return VisitFloat(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        RunPasses<T>(ctx.pool, axes, true, T(0), x, ctx.output(0), scratch->data());
        return absl::OkStatus();
      });
    }
    auto run = [&](auto tag) {
      using T = decltype(tag);
      RunPasses<T>(ctx.pool, axes, false, static_cast<T>(a.extrapolation), x, ctx.output(0),
                   scratch->data());
      return absl::OkStatus();
    };
    if (a.mode == Mode::kNearest) return VisitAll(x.dtype(), run);
    return VisitFloat(x.dtype(), run);
  });
}

}  // namespace

absl::StatusOr<Kernel> MakeResize(const NodeView& node) {
  if (node.opset() < 11) return MakeResizeLike(node, true, {-1, 1, -1}, false);
  return MakeResizeLike(node, false, {1, 2, 3}, false);
}

absl::StatusOr<Kernel> MakeUpsample(const NodeView& node) {
  if (node.opset() < 9) return MakeResizeLike(node, true, {-1, -1, -1}, false);
  return MakeResizeLike(node, true, {-1, 1, -1}, false);
}

absl::StatusOr<Kernel> MakeResizeGrad(const NodeView& node) {
  return MakeResizeLike(node, false, {2, 3, 4}, true);
}

}  // namespace exec
}  // namespace qat
