// BatchNormalization (inference and training mode) and Dropout (inference
// and training mode, with a seeded counter-based RNG).
#include <cmath>

#include "exec/ops/op_util.h"
#include "qat/status_macros.h"

namespace qat {
namespace exec {

// Training mode: the `training_mode` attribute since opset 14; before, asking
// for the running-statistics outputs.  In training mode Y uses the batch's
// mean and (population) variance, and the running statistics are updated as
// running = input * momentum + batch * (1 - momentum).
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
    if (x.rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "X must be [N, C, ...], got ", ShapeToString(x.shape())));
    }
    const int64_t batch = x.dim(0), channels = x.dim(1);
    const int64_t spatial = Product(x.shape(), 2, x.shape().size());
    for (int i = 1; i < 5; ++i) {
      QAT_RETURN_IF_ERROR(RequireSameType(x, ctx.input(i)));
      if (ctx.input(i).num_elements() != channels) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", i, " has ", ctx.input(i).num_elements(), " values for ",
            channels, " channels"));
      }
    }
    const bool training = opset >= 14 ? training_attr : ctx.has_output(1);
    return VisitFloat(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      const T* scale = ctx.input(1).data<T>();
      const T* bias = ctx.input(2).data<T>();
      const T* in_mean = ctx.input(3).data<T>();
      const T* in_var = ctx.input(4).data<T>();
      std::vector<T> mean(in_mean, in_mean + channels);
      std::vector<T> var(in_var, in_var + channels);
      if (training) {
        const double count = static_cast<double>(batch * spatial);
        for (int64_t c = 0; c < channels; ++c) {
          double sum = 0, sum_sq = 0;
          for (int64_t n = 0; n < batch; ++n) {
            const T* p = px + (n * channels + c) * spatial;
            for (int64_t i = 0; i < spatial; ++i) sum += p[i];
          }
          const double m = count > 0 ? sum / count : 0.0;
          for (int64_t n = 0; n < batch; ++n) {
            const T* p = px + (n * channels + c) * spatial;
            for (int64_t i = 0; i < spatial; ++i) sum_sq += (p[i] - m) * (p[i] - m);
          }
          mean[c] = static_cast<T>(m);
          var[c] = static_cast<T>(count > 0 ? sum_sq / count : 0.0);
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
      ForEachIndex(ctx.pool, batch * channels, [&](int64_t plane) {
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

}  // namespace exec
}  // namespace qat
