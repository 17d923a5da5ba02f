// Finite-difference checks of training graphs.
//
// GradientCheck runs a training model (loss, then <param>_grad outputs) on
// the executor with its parameters detached into inputs, and compares each
// gradient entry with the central difference (L(p + h) - L(p - h)) / 2h.
//
// Tolerances: the executor computes in float32, so a central difference of
// a loss of size |L| carries a rounding error of about eps * |L| / h
// (eps = 6e-8).  With h = 1e-2 and |L| <= 100 that is below 1e-3, and the
// truncation error h^2 f''' / 6 is of the same order for the smooth parts.
// The default tolerance is therefore abs 2e-3 + rel 1e-2.
//
// Kinks: a step of h can carry a ReLU input across 0 (or a max-pool window
// across a tie), where the one-sided slopes differ and no finite difference
// equals the gradient.  An entry whose forward and backward slopes disagree
// by more than the tolerance is such a crossing; it is skipped and counted,
// and at most a quarter of the entries may be skipped.
#ifndef QAT_TESTS_GRADIENT_CHECK_H_
#define QAT_TESTS_GRADIENT_CHECK_H_

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "qat/executor.h"
#include "qat/tensor.h"
#include "train/parameters.h"

namespace qat {
namespace testing {

struct GradientCheckOptions {
  float h = 1e-2f;
  float atol = 2e-3f;
  float rtol = 1e-2f;
  int max_entries_per_param = 24;  // entries checked per parameter
  uint32_t seed = 1;
};

class GradientCheck {
 public:
  // `training` has outputs loss, <param>_grad...; `feeds` holds its other
  // inputs (data, labels).
  GradientCheck(const Model& training, std::vector<std::string> params,
                std::map<std::string, Tensor> feeds)
      : params_(std::move(params)), feeds_(std::move(feeds)) {
    auto detached = training::DetachParameters(training, params_);
    EXPECT_TRUE(detached.ok()) << detached.status();
    if (!detached.ok()) return;
    values_ = detached->values;
    ExecutorOptions options;
    options.num_threads = 1;
    auto exec = Executor::Create(detached->model, options);
    EXPECT_TRUE(exec.ok()) << exec.status();
    if (exec.ok()) executor_ = std::move(*exec);
  }

  bool ok() const { return executor_ != nullptr; }
  std::map<std::string, Tensor>& values() { return values_; }

  // Loss and gradients at the current values.
  absl::StatusOr<std::map<std::string, Tensor>> Run() {
    if (!ok()) return absl::FailedPreconditionError("no executor");
    std::map<std::string, Tensor> inputs = feeds_;
    for (const auto& [name, value] : values_) inputs[name] = value;
    return executor_->Run(inputs);
  }

  absl::StatusOr<float> Loss() {
    auto out = Run();
    if (!out.ok()) return out.status();
    return out->at("loss").values<float>()[0];
  }

  // Checks up to options.max_entries_per_param entries of every gradient.
  void ExpectMatchesFiniteDifferences(const GradientCheckOptions& options = {}) {
    ASSERT_TRUE(ok());
    auto out = Run();
    ASSERT_TRUE(out.ok()) << out.status();
    std::mt19937 rng(options.seed);
    int checked = 0, skipped = 0;
    for (const std::string& p : params_) {
      const Tensor grad = out->at(p + "_grad");
      Tensor& value = values_.at(p);
      ASSERT_EQ(grad.shape(), value.shape()) << p;
      const int64_t n = value.num_elements();
      std::vector<int64_t> entries;
      if (n <= options.max_entries_per_param) {
        for (int64_t i = 0; i < n; ++i) entries.push_back(i);
      } else {
        std::uniform_int_distribution<int64_t> pick(0, n - 1);
        for (int k = 0; k < options.max_entries_per_param; ++k) {
          entries.push_back(pick(rng));
        }
      }
      auto center = Loss();
      ASSERT_TRUE(center.ok()) << center.status();
      for (int64_t i : entries) {
        float* v = value.data<float>() + i;
        const float saved = *v;
        *v = saved + options.h;
        auto plus = Loss();
        *v = saved - options.h;
        auto minus = Loss();
        *v = saved;
        ASSERT_TRUE(plus.ok() && minus.ok());
        const double fd = (static_cast<double>(*plus) - *minus) /
                          (2.0 * options.h);
        const double tol = options.atol + options.rtol * std::fabs(fd);
        const double forward = (static_cast<double>(*plus) - *center) / options.h;
        const double backward = (static_cast<double>(*center) - *minus) / options.h;
        if (std::fabs(forward - backward) > 2 * tol) {
          ++skipped;
          continue;
        }
        const double g = grad.values<float>()[i];
        EXPECT_NEAR(g, fd, tol) << "d loss / d " << p << "[" << i << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 0);
    EXPECT_LE(skipped, (checked + skipped) / 4)
        << skipped << " entries sat on a kink; too many to trust the check";
  }

 private:
  std::vector<std::string> params_;
  std::map<std::string, Tensor> feeds_;
  std::map<std::string, Tensor> values_;
  std::unique_ptr<Executor> executor_;
};

// A float tensor with values uniform in [lo, hi), away from 0 by `gap` when
// gap > 0 (to stay off ReLU's kink).
inline Tensor RandomTensor(std::vector<int64_t> shape, uint32_t seed,
                           float lo = -1.0f, float hi = 1.0f, float gap = 0.0f) {
  Tensor t(DataType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& v : t.values<float>()) {
    do {
      v = u(rng);
    } while (gap > 0 && std::fabs(v) < gap);
  }
  return t;
}

}  // namespace testing
}  // namespace qat

#endif  // QAT_TESTS_GRADIENT_CHECK_H_
