// BatchNormalization (inference and training mode) and ai.libqat BatchMean
// (its gradient's batch means), Dropout (inference
// and training mode, with a seeded counter-based RNG), LayerNormalization,
// InstanceNormalization, LRN and MeanVarianceNormalization.
//
// The statistics of LayerNormalization and InstanceNormalization are
// computed in double, two passes (mean, then the mean of squared
// deviations), one row per task, so results do not depend on the thread
// count.
#include <algorithm>
#include <cmath>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {

namespace {

// x as [batch, channels, spatial...]: InvalidArgument below rank 2.
absl::Status ChannelLayout(const Tensor& x, int64_t* batch, int64_t* channels,
                           int64_t* spatial) {
  if (x.rank() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X must be [N, C, ...], got ", ShapeToString(x.shape())));
  }
  *batch = x.dim(0);
  *channels = x.dim(1);
  *spatial = Product(x.shape(), 2, x.shape().size());
  return absl::OkStatus();
}

// Per channel of x [batch, channels, spatial]: the sum of x (centre null)
// or of (x - centre[c])^2, in double, in a fixed order.
template <typename T>
void ChannelSums(const T* px, int64_t batch, int64_t channels, int64_t spatial,
                 const double* centre, double* sums) {
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    const double m = centre != nullptr ? centre[c] : 0.0;
    for (int64_t n = 0; n < batch; ++n) {
      const T* p = px + (n * channels + c) * spatial;
      if (centre == nullptr) {
        for (int64_t i = 0; i < spatial; ++i) sum += p[i];
      } else {
        for (int64_t i = 0; i < spatial; ++i) sum += (p[i] - m) * (p[i] - m);
      }
    }
    sums[c] = sum;
  }
}

// The per-channel means of x (or of (x - centre)^2) over the batch and the
// spatial axes, and with a batch reducer over every rank's batch: the
// ranks' sums and counts are added (in rank order), then divided.
template <typename T>
absl::Status BatchMeans(const KernelContext& ctx, BatchReduction kind, const T* px,
                        int64_t batch, int64_t channels, int64_t spatial, const double* centre,
                        std::vector<double>* means) {
  std::vector<double> sums(static_cast<size_t>(channels));
  ChannelSums(px, batch, channels, spatial, centre, sums.data());
  double count = static_cast<double>(batch * spatial);
  if (ctx.batch_reducer != nullptr) {
    std::vector<double> buffer(static_cast<size_t>(channels) + 1);
    buffer[0] = count;
    for (int64_t c = 0; c < channels; ++c) buffer[c + 1] = sums[c];
    QAT_RETURN_IF_ERROR((*ctx.batch_reducer)(absl::MakeSpan(buffer), kind));
    count = buffer[0];
    for (int64_t c = 0; c < channels; ++c) sums[c] = buffer[c + 1];
  }
  means->resize(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) (*means)[c] = count > 0 ? sums[c] / count : 0.0;
  return absl::OkStatus();
}

}  // namespace

// Training mode: the `training_mode` attribute since opset 14; before, asking
// for the running-statistics outputs.  In training mode Y uses the batch's
// mean and (population) variance, and the running statistics are updated as
// running = input * momentum + batch * (1 - momentum).  With a batch
// reducer (synchronized BatchNorm) the batch is every rank's.
absl::StatusOr<Kernel> MakeBatchNormalization(const NodeView& node) {
  // Opset 6 to 8 could also normalize per element (spatial=0).
  if (node.opset() < 9 && node.GetInt("spatial", 1) == 0) {
    return absl::UnimplementedError("BatchNormalization with spatial=0 is not supported");
  }
  const float epsilon = node.GetFloat("epsilon", 1e-5f);
  const float momentum = node.GetFloat("momentum", 0.9f);
  const int64_t opset = node.opset();
  const bool training_attr = node.GetInt("training_mode", 0) != 0;
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 5));
    const Tensor& x = ctx.input(0);
    int64_t batch = 0, channels = 0, spatial = 0;
    QAT_RETURN_IF_ERROR(ChannelLayout(x, &batch, &channels, &spatial));
    for (int i = 1; i < 5; ++i) {
      QAT_RETURN_IF_ERROR(RequireSameType(x, ctx.input(i)));
      if (ctx.input(i).num_elements() != channels) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", i, " has ", ctx.input(i).num_elements(), " values for ",
            channels, " channels"));
      }
    }
    const bool training = opset >= 14 ? training_attr : ctx.has_output(1);
    return VisitFloat(x.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      const T* px = x.data<T>();
      const T* scale = ctx.input(1).data<T>();
      const T* bias = ctx.input(2).data<T>();
      const T* in_mean = ctx.input(3).data<T>();
      const T* in_var = ctx.input(4).data<T>();
      std::vector<T> mean(in_mean, in_mean + channels);
      std::vector<T> var(in_var, in_var + channels);
      if (training) {
        std::vector<double> m, v;
        QAT_RETURN_IF_ERROR(BatchMeans(ctx, BatchReduction::kStatistic, px, batch, channels,
                                       spatial, nullptr, &m));
        QAT_RETURN_IF_ERROR(BatchMeans(ctx, BatchReduction::kStatistic, px, batch, channels,
                                       spatial, m.data(), &v));
        for (int64_t c = 0; c < channels; ++c) {
          mean[c] = static_cast<T>(m[c]);
          var[c] = static_cast<T>(v[c]);
        }
        const T mom = static_cast<T>(momentum);
        for (int i = 1; i <= 2; ++i) {
          if (!ctx.has_output(i)) continue;
          const T* running = i == 1 ? in_mean : in_var;
          const std::vector<T>& current = i == 1 ? mean : var;
          Tensor& out = ctx.output(i);
          out.Resize(x.dtype(), ctx.input(i + 2).shape());
          for (int64_t c = 0; c < channels; ++c) {
            out.data<T>()[c] = running[c] * mom + current[c] * (T(1) - mom);
          }
        }
        // Opset 9 to 13 also output the batch's statistics.
        for (int i = 3; i <= 4; ++i) {
          if (!ctx.has_output(i)) continue;
          const std::vector<T>& current = i == 3 ? mean : var;
          ctx.output(i) = Tensor::FromValues<T>({channels}, current);
        }
      }
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), x.shape());
      T* py = y.data<T>();
      ForEachRow(ctx.pool, batch * channels, spatial, [&](int64_t plane) {
        const int64_t c = plane % channels;
        const T a = scale[c] / std::sqrt(var[c] + static_cast<T>(epsilon));
        const T b = bias[c] - mean[c] * a;
        for (int64_t i = 0; i < spatial; ++i) {
          py[plane * spatial + i] = px[plane * spatial + i] * a + b;
        }
      });
      return absl::OkStatus();
    });
  });
}

// ai.libqat BatchMean(X [N, C, ...]) -> [1, C, 1, ...]: the per-channel
// mean over every axis but the channel, which training-mode
// BatchNormalization's gradient rule takes; with a batch reducer over
// every rank's batch (attribute `kind`: 0 the forward's statistics, 1 a
// gradient term), so that synchronized BatchNorm's gradient is the whole
// batch's.
absl::StatusOr<Kernel> MakeBatchMean(const NodeView& node) {
  const int64_t kind = node.GetInt("kind", 0);
  if (kind != 0 && kind != 1) {
    return absl::InvalidArgumentError(absl::StrCat("kind must be 0 or 1, got ", kind));
  }
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    int64_t batch = 0, channels = 0, spatial = 0;
    QAT_RETURN_IF_ERROR(ChannelLayout(x, &batch, &channels, &spatial));
    std::vector<int64_t> shape(x.shape().size(), 1);
    shape[1] = channels;
    return VisitFloat(x.dtype(), [&](auto tag) -> absl::Status {
      using T = decltype(tag);
      std::vector<double> means;
      QAT_RETURN_IF_ERROR(BatchMeans(ctx, static_cast<BatchReduction>(kind), x.data<T>(), batch,
                                     channels, spatial, nullptr, &means));
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), shape);
      for (int64_t c = 0; c < channels; ++c) y.data<T>()[c] = static_cast<T>(means[c]);
      return absl::OkStatus();
    });
  });
}

// Before opset 12 the ratio was an attribute and Dropout only ran in
// inference mode; since, ratio and training_mode are optional inputs.
absl::StatusOr<Kernel> MakeDropout(const NodeView& node) {
  const bool from_attr = node.opset() < 12;
  const float ratio_attr = node.GetFloat("ratio", 0.5f);
  const bool has_seed = node.HasAttr("seed");
  const uint64_t seed_attr = static_cast<uint64_t>(node.GetInt("seed", 0));
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    double ratio = ratio_attr;
    bool training = false;
    if (!from_attr) {
      if (ctx.has_input(1)) {
        QAT_ASSIGN_OR_RETURN(ratio, ReadScalar(ctx.input(1), "ratio"));
      }
      if (ctx.has_input(2)) {
        QAT_RETURN_IF_ERROR(RequireType(ctx.input(2), DataType::kBool, "training_mode"));
        QAT_ASSIGN_OR_RETURN(const double flag, ReadScalar(ctx.input(2), "training_mode"));
        training = flag != 0;
      }
    }
    if (!(ratio >= 0 && ratio < 1)) {
      return absl::InvalidArgumentError(absl::StrCat("ratio must be in [0, 1), got ", ratio));
    }
    const bool drop = training && ratio > 0;
    const uint64_t seed = has_seed ? SplitMix64(seed_attr) : ctx.seed;
    Tensor* mask = ctx.has_output(1) ? &ctx.output(1) : nullptr;
    if (mask != nullptr) mask->Resize(DataType::kBool, x.shape());
    bool* pm = mask != nullptr ? mask->data<bool>() : nullptr;
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if (!drop) {
        ctx.output(0) = x;
        if (pm != nullptr) std::fill(pm, pm + x.num_elements(), true);
        return absl::OkStatus();
      }
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), x.shape());
      const T* px = x.data<T>();
      T* py = y.data<T>();
      const T keep_scale = static_cast<T>(1.0 / (1.0 - ratio));
      ForEachIndex(ctx.pool, x.num_elements(), [&](int64_t i) {
        // A uniform double in [0, 1) from the top 53 bits of the hash.
        const double u = static_cast<double>(
                             SplitMix64(seed ^ static_cast<uint64_t>(i) * 0xd1b54a32d192ed03ULL) >> 11) *
                         0x1.0p-53;
        const bool keep = u >= ratio;
        py[i] = keep ? px[i] * keep_scale : T(0);
        if (pm != nullptr) pm[i] = keep;
      });
      return absl::OkStatus();
    });
  });
}

namespace {

// Normalizes `rows` contiguous rows of `length` values: y = (x - mean) *
// inv_std, then affine(row, i, value) (the op's scale and bias); the rows'
// mean and 1 / sqrt(var + epsilon) go to mean_out and inv_std_out when not
// null.
// InstanceNormalization and LRN take X as [N, C, D1, ...].
absl::Status RequireSpatial(const Tensor& x) {
  if (x.rank() >= 3) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("X must be [N, C, D1, ...], got ", ShapeToString(x.shape())));
}

template <typename T, typename U, typename Affine>
void NormalizeRows(ThreadPool* pool, int64_t rows, int64_t length, double epsilon,
                   const T* x, T* y, U* mean_out, U* inv_std_out, Affine affine) {
  const int64_t per_task = std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(1, length));
  ParallelFor(pool, (rows + per_task - 1) / per_task, [&](int64_t task) {
    const int64_t end = std::min(rows, (task + 1) * per_task);
    for (int64_t r = task * per_task; r < end; ++r) {
      const T* px = x + r * length;
      double sum = 0;
      for (int64_t i = 0; i < length; ++i) sum += static_cast<double>(px[i]);
      const double mean = length > 0 ? sum / static_cast<double>(length) : 0.0;
      double sq = 0;
      for (int64_t i = 0; i < length; ++i) {
        const double d = static_cast<double>(px[i]) - mean;
        sq += d * d;
      }
      const double var = length > 0 ? sq / static_cast<double>(length) : 0.0;
      const double inv_std = 1.0 / std::sqrt(var + epsilon);
      if (mean_out != nullptr) mean_out[r] = static_cast<U>(mean);
      if (inv_std_out != nullptr) inv_std_out[r] = static_cast<U>(inv_std);
      T* py = y + r * length;
      for (int64_t i = 0; i < length; ++i) {
        py[i] = static_cast<T>(affine(r, i, (static_cast<double>(px[i]) - mean) * inv_std));
      }
    }
  });
}

}  // namespace

// Normalizes over the axes from `axis` on; Scale and B broadcast to those
// axes.  Mean and InvStdDev have X's shape with those axes 1, in float
// (stash_type 1, the only one ONNX defines for float inputs).
absl::StatusOr<Kernel> MakeLayerNormalization(const NodeView& node) {
  const int64_t axis_attr = node.GetInt("axis", -1);
  const double epsilon = node.GetFloat("epsilon", 1e-5f);
  if (node.GetInt("stash_type", 1) != 1) {
    return absl::UnimplementedError("LayerNormalization supports stash_type 1 (float) only");
  }
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 2));
    const Tensor& x = ctx.input(0);
    QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(axis_attr, x.rank()));
    const std::vector<int64_t> inner(x.shape().begin() + axis, x.shape().end());
    const int64_t rows = Product(x.shape(), 0, axis), length = NumElements(inner);
    for (int i = 1; i <= 2; ++i) {
      if (!ctx.has_input(i)) continue;
      const Tensor& p = ctx.input(i);
      QAT_RETURN_IF_ERROR(RequireSameType(x, p));
      const auto b = BroadcastShapes({&p.shape(), &inner});
      if (!b.ok() || *b != inner) {
        return absl::InvalidArgumentError(absl::StrCat(
            i == 1 ? "Scale" : "B", " of shape ", ShapeToString(p.shape()),
            " does not broadcast to the normalized shape ", ShapeToString(inner)));
      }
    }
    // Flat offsets into Scale and B of each position of a row.
    auto offsets = [&](int i) {
      std::vector<int64_t> off(length, 0);
      if (!ctx.has_input(i)) return off;
      const std::vector<int64_t> st = BroadcastStrides(ctx.input(i).shape(), inner);
      const std::vector<int64_t> cs = ContiguousStrides(inner);
      for (int64_t k = 0; k < length; ++k) {
        for (size_t d = 0; d < inner.size(); ++d) off[k] += (k / cs[d]) % inner[d] * st[d];
      }
      return off;
    };
    const std::vector<int64_t> scale_at = offsets(1), bias_at = offsets(2);
    std::vector<int64_t> stat_shape = x.shape();
    for (size_t d = axis; d < stat_shape.size(); ++d) stat_shape[d] = 1;
    float* mean = nullptr;
    float* inv_std = nullptr;
    if (ctx.has_output(1)) {
      ctx.output(1).Resize(DataType::kFloat32, stat_shape);
      mean = ctx.output(1).data<float>();
    }
    if (ctx.has_output(2)) {
      ctx.output(2).Resize(DataType::kFloat32, stat_shape);
      inv_std = ctx.output(2).data<float>();
    }
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* scale = ctx.input(1).data<T>();
      const T* bias = ctx.has_input(2) ? ctx.input(2).data<T>() : nullptr;
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), x.shape());
      NormalizeRows<T, float>(ctx.pool, rows, length, epsilon, x.data<T>(), y.data<T>(), mean,
                              inv_std, [&](int64_t, int64_t i, double v) {
                                v *= static_cast<double>(scale[scale_at[i]]);
                                return bias != nullptr ? v + static_cast<double>(bias[bias_at[i]])
                                                       : v;
                              });
      return absl::OkStatus();
    });
  });
}

// Per sample and channel, over the spatial axes; scale and B per channel.
absl::StatusOr<Kernel> MakeInstanceNormalization(const NodeView& node) {
  const double epsilon = node.GetFloat("epsilon", 1e-5f);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInputs(ctx, 3));
    const Tensor& x = ctx.input(0);
    QAT_RETURN_IF_ERROR(RequireSpatial(x));
    const int64_t channels = x.dim(1);
    for (int i = 1; i <= 2; ++i) {
      QAT_RETURN_IF_ERROR(RequireSameType(x, ctx.input(i)));
      if (ctx.input(i).rank() != 1 || ctx.input(i).dim(0) != channels) {
        return absl::InvalidArgumentError(absl::StrCat(
            i == 1 ? "scale" : "B", " must be [", channels, "], got ",
            ShapeToString(ctx.input(i).shape())));
      }
    }
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* scale = ctx.input(1).data<T>();
      const T* bias = ctx.input(2).data<T>();
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), x.shape());
      NormalizeRows<T, T>(ctx.pool, x.dim(0) * channels, Product(x.shape(), 2, x.shape().size()),
                          epsilon, x.data<T>(), y.data<T>(), nullptr, nullptr,
                          [&](int64_t row, int64_t, double v) {
                            const int64_t c = row % channels;
                            return v * static_cast<double>(scale[c]) + static_cast<double>(bias[c]);
                          });
      return absl::OkStatus();
    });
  });
}

// y = x / (bias + alpha / size * sum of x^2 over the `size` channels
// around)^beta, the window from c - floor((size - 1) / 2) to c +
// ceil((size - 1) / 2).
absl::StatusOr<Kernel> MakeLRN(const NodeView& node) {
  const int64_t size = node.GetInt("size", 0);
  if (size < 1) return absl::InvalidArgumentError(absl::StrCat("size must be positive, got ", size));
  const double alpha = node.GetFloat("alpha", 1e-4f), beta = node.GetFloat("beta", 0.75f);
  const double bias = node.GetFloat("bias", 1.0f);
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    QAT_RETURN_IF_ERROR(RequireSpatial(x));
    const int64_t channels = x.dim(1), spatial = Product(x.shape(), 2, x.shape().size());
    const int64_t before = (size - 1) / 2, after = size - 1 - before;
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), x.shape());
      T* py = y.data<T>();
      ForEachRow(ctx.pool, x.dim(0) * channels, spatial * size, [&](int64_t plane) {
        const int64_t n = plane / channels, c = plane % channels;
        const int64_t lo = std::max<int64_t>(0, c - before);
        const int64_t hi = std::min(channels - 1, c + after);
        for (int64_t i = 0; i < spatial; ++i) {
          double sq = 0;
          for (int64_t k = lo; k <= hi; ++k) {
            const double v = static_cast<double>(px[(n * channels + k) * spatial + i]);
            sq += v * v;
          }
          const int64_t at = plane * spatial + i;
          py[at] = static_cast<T>(static_cast<double>(px[at]) /
                                  std::pow(bias + alpha / static_cast<double>(size) * sq, beta));
        }
      });
      return absl::OkStatus();
    });
  });
}

// y = (x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9) over `axes` (default
// 0, 2, 3), as ONNX's function body defines it.
absl::StatusOr<Kernel> MakeMeanVarianceNormalization(const NodeView& node) {
  const std::vector<int64_t> axes_attr =
      node.HasAttr("axes") ? node.GetInts("axes") : std::vector<int64_t>{0, 2, 3};
  return Kernel([=](KernelContext& ctx) -> absl::Status {
    QAT_RETURN_IF_ERROR(RequireInput(ctx, 0));
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> group_shape = x.shape();  // the statistics' shape
    for (int64_t a : axes_attr) {
      QAT_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(a, x.rank()));
      group_shape[axis] = 1;
    }
    const std::vector<int64_t> strides = BroadcastStrides(group_shape, x.shape());
    const int64_t groups = NumElements(group_shape), n = x.num_elements();
    const double count = groups > 0 ? static_cast<double>(n / groups) : 0.0;
    // Each element's group, by walking its coordinates.
    std::vector<int64_t> group(n, 0);
    {
      std::vector<int64_t> idx(x.rank(), 0);
      for (int64_t i = 0; i < n; ++i) {
        int64_t g = 0;
        for (int64_t d = 0; d < x.rank(); ++d) g += idx[d] * strides[d];
        group[i] = g;
        for (int64_t d = x.rank() - 1; d >= 0 && ++idx[d] == x.dim(d); --d) idx[d] = 0;
      }
    }
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      std::vector<double> mean(groups, 0.0), sq(groups, 0.0);
      for (int64_t i = 0; i < n; ++i) mean[group[i]] += static_cast<double>(px[i]);
      for (double& m : mean) m /= count;
      for (int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(px[i]) - mean[group[i]];
        sq[group[i]] += d * d;
      }
      Tensor& y = ctx.output(0);
      y.Resize(x.dtype(), x.shape());
      T* py = y.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        const int64_t g = group[i];
        py[i] = static_cast<T>((static_cast<double>(px[i]) - mean[g]) /
                               (std::sqrt(sq[g] / count) + 1e-9));
      }
      return absl::OkStatus();
    });
  });
}

}  // namespace exec
}  // namespace qat
