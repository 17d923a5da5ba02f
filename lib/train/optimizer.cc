#include "qat/optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/target_clones.h"

namespace qat {
namespace {

// The AdamW update of n elements (PyTorch's order of operations).  A free
// function with unaliased pointers so that it vectorizes.
QAT_TARGET_CLONES void AdamWUpdate(int64_t n, float* __restrict p, const float* __restrict g,
                                   float* __restrict m1, float* __restrict m2, float b1,
                                   float b2, float decay, float c2_sqrt, float eps,
                                   float step_size) {
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= decay;
    m1[i] = b1 * m1[i] + (1.0f - b1) * g[i];
    m2[i] = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
    const float denom = std::sqrt(m2[i]) / c2_sqrt + eps;
    p[i] -= step_size * (m1[i] / denom);
  }
}

class Sgd : public Optimizer {
 public:
  explicit Sgd(const OptimizerOptions& o) : Optimizer(o) {}

 private:
  void Update(float lr, int64_t step, const std::string& name, Tensor& param,
              const Tensor& grad) override {
    const float wd = options_.weight_decay, m = options_.momentum;
    float* p = param.data<float>();
    const float* g = grad.data<float>();
    const int64_t n = param.num_elements();
    float* buf = m > 0.0f ? Slot(name, "momentum_buffer", param).data<float>()
                          : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      float d = g[i];
      if (wd != 0.0f) d += wd * p[i];
      if (buf != nullptr) {
        buf[i] = step == 1 ? d : m * buf[i] + d;
        d = options_.nesterov ? d + m * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

class AdamW : public Optimizer {
 public:
  explicit AdamW(const OptimizerOptions& o) : Optimizer(o) {}

 private:
  void Update(float lr, int64_t step, const std::string& name, Tensor& param,
              const Tensor& grad) override {
    const float b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
    // Bias corrections in double, as PyTorch computes them in Python floats.
    const double c1 = 1.0 - std::pow(static_cast<double>(b1), step);
    const double c2 = 1.0 - std::pow(static_cast<double>(b2), step);
    const float step_size = static_cast<float>(lr / c1);
    const float c2_sqrt = static_cast<float>(std::sqrt(c2));
    const float decay = 1.0f - lr * options_.weight_decay;
    float* p = param.data<float>();
    const float* g = grad.data<float>();
    float* m1 = Slot(name, "exp_avg", param).data<float>();
    float* m2 = Slot(name, "exp_avg_sq", param).data<float>();
    AdamWUpdate(param.num_elements(), p, g, m1, m2, b1, b2, decay, c2_sqrt, eps, step_size);
  }
};

// Sum of squares in double, over 8 independent lanes so that the additions
// do not wait on each other (the order is fixed, so the result is too).
double SumOfSquares(absl::Span<const float> v) {
  double lane[8] = {};
  size_t i = 0;
  for (; i + 8 <= v.size(); i += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(v[i + l]) * v[i + l];
  }
  for (; i < v.size(); ++i) lane[i % 8] += static_cast<double>(v[i]) * v[i];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

absl::Status Check(bool ok, const std::string& what) {
  return ok ? absl::OkStatus() : absl::InvalidArgumentError(what);
}

}  // namespace

absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adamw") return OptimizerKind::kAdamW;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown optimizer '", name, "'; expected sgd or adamw"));
}

const char* OptimizerKindName(OptimizerKind kind) {
  return kind == OptimizerKind::kSgd ? "sgd" : "adamw";
}

absl::StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(
    const OptimizerOptions& options) {
  OptimizerOptions o = options;
  if (o.weight_decay < 0.0f) {
    o.weight_decay = o.kind == OptimizerKind::kAdamW ? 0.01f : 0.0f;
  }
  absl::Status s = Check(std::isfinite(o.weight_decay), "weight_decay must be finite");
  if (s.ok()) s = Check(o.momentum >= 0.0f && o.momentum < 1.0f,
                        absl::StrCat("momentum must be in [0, 1), got ", o.momentum));
  if (s.ok()) s = Check(!o.nesterov || o.momentum > 0.0f,
                        "Nesterov momentum needs momentum > 0");
  if (s.ok()) s = Check(o.beta1 >= 0.0f && o.beta1 < 1.0f,
                        absl::StrCat("beta1 must be in [0, 1), got ", o.beta1));
  if (s.ok()) s = Check(o.beta2 >= 0.0f && o.beta2 < 1.0f,
                        absl::StrCat("beta2 must be in [0, 1), got ", o.beta2));
  if (s.ok()) s = Check(o.eps > 0.0f, absl::StrCat("eps must be > 0, got ", o.eps));
  if (s.ok()) s = Check(o.max_grad_norm >= 0.0f && std::isfinite(o.max_grad_norm),
                        "max_grad_norm must be >= 0 and finite");
  if (!s.ok()) return s;
  if (o.kind == OptimizerKind::kSgd) return std::unique_ptr<Optimizer>(new Sgd(o));
  return std::unique_ptr<Optimizer>(new AdamW(o));
}

Tensor& Optimizer::Slot(const std::string& param, const char* slot,
                        const Tensor& like) {
  const std::string key = absl::StrCat(param, ".", slot);
  auto it = state_.find(key);
  if (it == state_.end()) {
    it = state_.emplace(key, Tensor(DataType::kFloat32, like.shape())).first;
  }
  return it->second;
}

absl::StatusOr<double> Optimizer::Step(float lr,
                                       const std::vector<std::string>& names,
                                       const std::vector<Tensor*>& params,
                                       const std::vector<Tensor*>& grads) {
  if (names.size() != params.size() || names.size() != grads.size()) {
    return absl::InvalidArgumentError("names, params and grads differ in length");
  }
  if (!std::isfinite(lr) || lr < 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning rate must be finite and >= 0, got ", lr));
  }
  double sum_sq = 0.0;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = *params[i];
    const Tensor& g = *grads[i];
    if (p.dtype() != DataType::kFloat32 || g.dtype() != DataType::kFloat32 ||
        p.shape() != g.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter '", names[i], "' ", ShapeToString(p.shape()),
          " and its gradient ", ShapeToString(g.shape()),
          " must be float32 of the same shape"));
    }
    for (const char* slot : {"momentum_buffer", "exp_avg", "exp_avg_sq"}) {
      auto it = state_.find(absl::StrCat(names[i], ".", slot));
      if (it != state_.end() && it->second.shape() != p.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer state for '", names[i], "' has shape ",
            ShapeToString(it->second.shape()), ", the parameter ",
            ShapeToString(p.shape())));
      }
    }
    sum_sq += SumOfSquares(g.values<float>());
  }
  const double norm = std::sqrt(sum_sq);
  if (!std::isfinite(norm)) {
    // Only on failure: name the parameters whose gradients are to blame.
    std::vector<std::string> bad;
    for (size_t i = 0; i < grads.size(); ++i) {
      for (float v : grads[i]->values<float>()) {
        if (!std::isfinite(v)) {
          bad.push_back(absl::StrCat("'", names[i], "'"));
          break;
        }
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the gradients contain NaN or Inf at step ", step_ + 1, "; ",
        bad.empty() ? "their norm overflows float"
                    : absl::StrCat("not finite: the gradients of ", absl::StrJoin(bad, ", ")),
        "; the parameters were not updated"));
  }
  if (options_.max_grad_norm > 0.0f && norm > 0.0) {
    const double coef = options_.max_grad_norm / (norm + 1e-6);
    if (coef < 1.0) {
      const float c = static_cast<float>(coef);
      for (Tensor* g : grads) {
        for (float& v : g->values<float>()) v *= c;
      }
    }
  }
  ++step_;
  for (size_t i = 0; i < params.size(); ++i) {
    Update(lr, step_, names[i], *params[i], *grads[i]);
  }
  return norm;
}

absl::Status Optimizer::Restore(int64_t step, std::map<std::string, Tensor> state) {
  if (step < 0) return absl::InvalidArgumentError("negative optimizer step");
  for (const auto& [key, value] : state) {
    if (value.dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state '", key, "' is not float32"));
    }
  }
  step_ = step;
  state_ = std::move(state);
  return absl::OkStatus();
}

}  // namespace qat
