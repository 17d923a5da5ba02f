// Ops of detection models: GridSample (opset 16), RoiAlign (10; opset 16's
// coordinate_transformation_mode) and NonMaxSuppression (10).
//
// GridSample follows PyTorch's grid_sampler (which ONNX's definition and
// test data come from): unnormalize, then pad by clamping or reflecting the
// coordinate (bilinear, nearest) or each tap (bicubic), taps outside the
// image reading 0.  RoiAlign follows the Caffe2 kernel that ONNX Runtime
// and ONNX's reference share.  Everything is computed in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "exec/ops/interpolation.h"
#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {
namespace {

enum class SampleMode { kBilinear, kNearest, kBicubic };
enum class Padding { kZeros, kBorder, kReflection };

// Reflects x into [low, high] (twice_low and twice_high are twice the ends).
double Reflect(double x, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  const double low = twice_low / 2, span = (twice_high - twice_low) / 2;
  x = std::fabs(x - low);
  const double extra = std::fmod(x, span);
  const int64_t flips = static_cast<int64_t>(std::floor(x / span));
  return flips % 2 == 0 ? extra + low : span - extra + low;
}

struct Sampler {
  Padding padding;
  bool align_corners;

  // The pixel coordinate of a normalized one in [-1, 1] along an axis of `size`.
  double Unnormalize(double g, int64_t size) const {
    return align_corners ? (g + 1) / 2 * static_cast<double>(size - 1)
                         : ((g + 1) * static_cast<double>(size) - 1) / 2;
  }
  // Border and reflection padding move the coordinate into the image.
  double Pad(double x, int64_t size) const {
    const double last = static_cast<double>(size - 1);
    if (padding == Padding::kBorder) return std::clamp(x, 0.0, last);
    if (padding == Padding::kReflection) {
      x = align_corners ? Reflect(x, 0, 2 * last) : Reflect(x, -1, 2 * static_cast<double>(size) - 1);
      return std::clamp(x, 0.0, last);
    }
    return x;
  }
};

absl::StatusOr<Kernel> MakeGridSampleKernel(SampleMode mode, Sampler s) {
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    const Tensor& grid = ctx.input(1);
    if (x.rank() != 4 || grid.rank() != 4 || grid.dim(0) != x.dim(0) || grid.dim(3) != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GridSample needs X [N, C, H, W] and grid [N, H_out, W_out, 2], got ",
          ShapeToString(x.shape()), " and ", ShapeToString(grid.shape())));
    }
    QAT_RETURN_IF_ERROR(RequireSameType(x, grid));
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t ho = grid.dim(1), wo = grid.dim(2);
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), {n, c, ho, wo});
      const T* px = x.data<T>();
      const T* pg = grid.data<T>();
      T* py = y.data<T>();
      ForEachIndex(ctx.pool, n * ho * wo, [&](int64_t p) {
        const int64_t b = p / (ho * wo), at = p % (ho * wo);
        double gx = s.Unnormalize(static_cast<double>(pg[p * 2]), w);
        double gy = s.Unnormalize(static_cast<double>(pg[p * 2 + 1]), h);
        // Up to 16 taps (flat offsets within a plane, -1: outside) and weights.
        int64_t taps[16];
        double weights[16];
        int count = 0;
        auto tap = [&](int64_t ix, int64_t iy, double weight) {
          const bool inside = ix >= 0 && ix < w && iy >= 0 && iy < h;
          taps[count] = inside ? iy * w + ix : -1;
          weights[count++] = weight;
        };
        if (mode == SampleMode::kBicubic) {
          const double fx = std::floor(gx), fy = std::floor(gy);
          double wx[4], wy[4];
          CubicWeights(gx - fx, -0.75, wx);
          CubicWeights(gy - fy, -0.75, wy);
          for (int j = 0; j < 4; ++j) {
            for (int i = 0; i < 4; ++i) {
              // Padding applies to each tap's coordinate.
              const double tx = s.Pad(fx - 1 + i, w), ty = s.Pad(fy - 1 + j, h);
              tap(static_cast<int64_t>(tx), static_cast<int64_t>(ty), wx[i] * wy[j]);
            }
          }
        } else {
          gx = s.Pad(gx, w);
          gy = s.Pad(gy, h);
          if (mode == SampleMode::kNearest) {
            tap(static_cast<int64_t>(std::nearbyint(gx)), static_cast<int64_t>(std::nearbyint(gy)), 1);
          } else {
            const double fx = std::floor(gx), fy = std::floor(gy);
            const double lx = gx - fx, ly = gy - fy;
            const int64_t ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
            tap(ix, iy, (1 - lx) * (1 - ly));
            tap(ix + 1, iy, lx * (1 - ly));
            tap(ix, iy + 1, (1 - lx) * ly);
            tap(ix + 1, iy + 1, lx * ly);
          }
        }
        for (int64_t ch = 0; ch < c; ++ch) {
          const T* plane = px + (b * c + ch) * h * w;
          double acc = 0;
          for (int k = 0; k < count; ++k) {
            if (taps[k] >= 0) acc += weights[k] * static_cast<double>(plane[taps[k]]);
          }
          py[(b * c + ch) * ho * wo + at] = static_cast<T>(acc);
        }
      });
      return absl::OkStatus();
    });
  });
}

// A box as NonMaxSuppression reads it: corners in either order
// (center_point_box 0) or centre and size (1), as min and max corners.
struct Box {
  double y1, x1, y2, x2;
};

Box ReadBox(const double* v, bool center) {
  if (center) {
    return {v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2};
  }
  return {std::min(v[0], v[2]), std::min(v[1], v[3]), std::max(v[0], v[2]), std::max(v[1], v[3])};
}

double IntersectionOverUnion(const Box& a, const Box& b) {
  const double ih = std::max(0.0, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const double iw = std::max(0.0, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const double inter = ih * iw;
  const double uni = (a.y2 - a.y1) * (a.x2 - a.x1) + (b.y2 - b.y1) * (b.x2 - b.x1) - inter;
  return uni > 0 ? inter / uni : 0.0;
}

}  // namespace

absl::StatusOr<Kernel> MakeGridSample(const NodeView& node) {
  const std::string mode = node.GetString("mode", "bilinear");
  const std::string padding = node.GetString("padding_mode", "zeros");
  SampleMode m;
  if (mode == "bilinear") {
    m = SampleMode::kBilinear;
  } else if (mode == "nearest") {
    m = SampleMode::kNearest;
  } else if (mode == "bicubic") {
    m = SampleMode::kBicubic;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown mode '", mode, "'"));
  }
  Sampler s{Padding::kZeros, node.GetInt("align_corners", 0) != 0};
  if (padding == "zeros") {
    s.padding = Padding::kZeros;
  } else if (padding == "border") {
    s.padding = Padding::kBorder;
  } else if (padding == "reflection") {
    s.padding = Padding::kReflection;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown padding_mode '", padding, "'"));
  }
  return MakeGridSampleKernel(m, s);
}

// Each RoI's bins average (or take the max of) bilinear samples on a grid of
// sampling_ratio (or ceil(bin size)) points per axis.
absl::StatusOr<Kernel> MakeRoiAlign(const NodeView& node) {
  const std::string mode = node.GetString("mode", "avg");
  if (mode != "avg" && mode != "max") {
    return absl::InvalidArgumentError(absl::StrCat("unknown mode '", mode, "'"));
  }
  const bool max_mode = mode == "max";
  const int64_t out_h = node.GetInt("output_height", 1), out_w = node.GetInt("output_width", 1);
  const int64_t sampling = node.GetInt("sampling_ratio", 0);
  const double spatial_scale = node.GetFloat("spatial_scale", 1.0f);
  const std::string coord = node.GetString(
      "coordinate_transformation_mode", node.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (coord != "half_pixel" && coord != "output_half_pixel") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown coordinate_transformation_mode '", coord, "'"));
  }
  if (out_h < 1 || out_w < 1 || out_h > (int64_t{1} << 20) || out_w > (int64_t{1} << 20) ||
      sampling < 0 || sampling > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_height ", out_h, ", output_width ", out_w, " and sampling_ratio ", sampling,
        " must be positive (sampling_ratio may be 0) and not huge"));
  }
  const bool half_pixel = coord == "half_pixel";
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& x = ctx.input(0);
    const Tensor& rois = ctx.input(1);
    if (x.rank() != 4 || rois.rank() != 2 || rois.dim(1) != 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RoiAlign needs X [N, C, H, W] and rois [num_rois, 4], got ",
          ShapeToString(x.shape()), " and ", ShapeToString(rois.shape())));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<int64_t> batch, ReadIndices(ctx.input(2), "batch_indices"));
    const int64_t num_rois = rois.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    if (static_cast<int64_t>(batch.size()) != num_rois) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch_indices has ", batch.size(), " values for ", num_rois, " rois"));
    }
    for (int64_t b : batch) {
      if (b < 0 || b >= x.dim(0)) {
        return absl::InvalidArgumentError(absl::StrCat("batch index ", b, " is out of range"));
      }
    }
    QAT_RETURN_IF_ERROR(RequireSameType(x, rois));
    QAT_ASSIGN_OR_RETURN(const std::vector<double> boxes, ReadReals(rois, "rois"));
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), {num_rois, c, out_h, out_w});
      const T* px = x.data<T>();
      T* py = y.data<T>();
      const double offset = half_pixel ? 0.5 : 0.0;
      ForEachIndex(ctx.pool, num_rois, [&](int64_t r) {
        const double* box = &boxes[r * 4];
        const double x1 = box[0] * spatial_scale - offset, y1 = box[1] * spatial_scale - offset;
        double roi_w = box[2] * spatial_scale - offset - x1;
        double roi_h = box[3] * spatial_scale - offset - y1;
        if (!half_pixel) {
          roi_w = std::max(roi_w, 1.0);
          roi_h = std::max(roi_h, 1.0);
        }
        const double bin_h = roi_h / static_cast<double>(out_h);
        const double bin_w = roi_w / static_cast<double>(out_w);
        // A NaN or huge box would ask for an absurd sample grid: cap it.
        auto grid_of = [&](double bin) -> int64_t {
          if (sampling > 0) return sampling;
          const double g = std::ceil(bin);
          return std::isfinite(g) ? std::clamp<int64_t>(static_cast<int64_t>(g), 1, 1 << 12) : 1;
        };
        const int64_t gh = grid_of(bin_h), gw = grid_of(bin_w);
        const double count = static_cast<double>(std::max<int64_t>(gh * gw, 1));
        for (int64_t ch = 0; ch < c; ++ch) {
          const T* plane = px + (batch[r] * c + ch) * h * w;
          for (int64_t ph = 0; ph < out_h; ++ph) {
            for (int64_t pw = 0; pw < out_w; ++pw) {
              double acc = max_mode ? std::numeric_limits<double>::lowest() : 0.0;
              for (int64_t iy = 0; iy < gh; ++iy) {
                double yy = y1 + ph * bin_h + (iy + 0.5) * bin_h / static_cast<double>(gh);
                for (int64_t ix = 0; ix < gw; ++ix) {
                  double xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / static_cast<double>(gw);
                  double v[4] = {0, 0, 0, 0};
                  if (!(yy < -1.0 || yy > h || xx < -1.0 || xx > w) && h > 0 && w > 0) {
                    double sy = std::max(yy, 0.0), sx = std::max(xx, 0.0);
                    int64_t ylo = static_cast<int64_t>(sy), xlo = static_cast<int64_t>(sx);
                    int64_t yhi = ylo + 1, xhi = xlo + 1;
                    if (ylo >= h - 1) sy = static_cast<double>(yhi = ylo = h - 1);
                    if (xlo >= w - 1) sx = static_cast<double>(xhi = xlo = w - 1);
                    const double ly = sy - ylo, lx = sx - xlo;
                    v[0] = (1 - ly) * (1 - lx) * static_cast<double>(plane[ylo * w + xlo]);
                    v[1] = (1 - ly) * lx * static_cast<double>(plane[ylo * w + xhi]);
                    v[2] = ly * (1 - lx) * static_cast<double>(plane[yhi * w + xlo]);
                    v[3] = ly * lx * static_cast<double>(plane[yhi * w + xhi]);
                  }
                  if (max_mode) {
                    acc = std::max(acc, std::max(std::max(v[0], v[1]), std::max(v[2], v[3])));
                  } else {
                    acc += v[0] + v[1] + v[2] + v[3];
                  }
                }
              }
              py[((r * c + ch) * out_h + ph) * out_w + pw] =
                  static_cast<T>(max_mode ? acc : acc / count);
            }
          }
        }
      });
      return absl::OkStatus();
    });
  });
}

// Per batch and class: the boxes above score_threshold by falling score
// (ties by index), each kept unless its IoU with one kept before is above
// iou_threshold, at most max_output_boxes_per_class of them.  Output rows
// are [batch, class, box].
absl::StatusOr<Kernel> MakeNonMaxSuppression(const NodeView& node) {
  const bool center = node.GetInt("center_point_box", 0) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& boxes_t = ctx.input(0);
    const Tensor& scores_t = ctx.input(1);
    if (boxes_t.rank() != 3 || boxes_t.dim(2) != 4 || scores_t.rank() != 3 ||
        scores_t.dim(0) != boxes_t.dim(0) || scores_t.dim(2) != boxes_t.dim(1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "NonMaxSuppression needs boxes [batches, boxes, 4] and scores [batches, classes, "
          "boxes], got ",
          ShapeToString(boxes_t.shape()), " and ", ShapeToString(scores_t.shape())));
    }
    int64_t max_out = 0;
    double iou_threshold = 0;
    double score_threshold = -std::numeric_limits<double>::infinity();
    if (ctx.has_input(2) && ctx.input(2).num_elements() > 0) {
      QAT_ASSIGN_OR_RETURN(const double m, ReadScalar(ctx.input(2), "max_output_boxes_per_class"));
      max_out = m > 0 ? static_cast<int64_t>(std::min(m, 9e18)) : 0;
    }
    if (ctx.has_input(3) && ctx.input(3).num_elements() > 0) {
      QAT_ASSIGN_OR_RETURN(iou_threshold, ReadScalar(ctx.input(3), "iou_threshold"));
    }
    const bool has_score_threshold = ctx.has_input(4) && ctx.input(4).num_elements() > 0;
    if (has_score_threshold) {
      QAT_ASSIGN_OR_RETURN(score_threshold, ReadScalar(ctx.input(4), "score_threshold"));
    }
    QAT_ASSIGN_OR_RETURN(const std::vector<double> boxes, ReadReals(boxes_t, "boxes"));
    QAT_ASSIGN_OR_RETURN(const std::vector<double> scores, ReadReals(scores_t, "scores"));
    const int64_t batches = boxes_t.dim(0), count = boxes_t.dim(1), classes = scores_t.dim(1);
    std::vector<int64_t> selected;
    std::vector<Box> box(count);
    for (int64_t b = 0; b < batches; ++b) {
      for (int64_t i = 0; i < count; ++i) box[i] = ReadBox(&boxes[(b * count + i) * 4], center);
      for (int64_t k = 0; k < classes; ++k) {
        const double* s = &scores[(b * classes + k) * count];
        std::vector<int64_t> order;
        for (int64_t i = 0; i < count; ++i) {
          if (!has_score_threshold || s[i] > score_threshold) order.push_back(i);
        }
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t l, int64_t r) { return s[l] > s[r]; });
        std::vector<int64_t> kept;
        for (int64_t i : order) {
          if (static_cast<int64_t>(kept.size()) >= max_out) break;
          bool keep = true;
          for (int64_t j : kept) keep = keep && !(IntersectionOverUnion(box[i], box[j]) > iou_threshold);
          if (!keep) continue;
          kept.push_back(i);
          selected.insert(selected.end(), {b, k, i});
        }
      }
    }
    const int64_t rows = static_cast<int64_t>(selected.size() / 3);
    ctx.output(0) = Tensor::FromValues<int64_t>({rows, 3}, selected);
    return absl::OkStatus();
  });
}

}  // namespace exec
}  // namespace qat
