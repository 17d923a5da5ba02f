// Optimizers: SGD (momentum, Nesterov, weight decay) and AdamW, with
// PyTorch's semantics, plus gradient clipping by global norm.
//
//   SGD   g' = g + wd * p;  b = m * b + g' (b = g' on the first step);
//         step = nesterov ? g' + m * b : b   (b when m > 0, else g');
//         p -= lr * step
//   AdamW p *= 1 - lr * wd;  m1 = b1 m1 + (1 - b1) g;  m2 = b2 m2 + (1 - b2) g^2;
//         p -= (lr / (1 - b1^t)) * m1 / (sqrt(m2) / sqrt(1 - b2^t) + eps)
//
// State (momentum buffers, moments, the step count) is exposed by name so
// that checkpoints can save and restore it exactly.  Updates are computed
// element by element in float, in a fixed order: the same inputs give the
// same bits.
#ifndef QAT_OPTIMIZER_H_
#define QAT_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

enum class OptimizerKind { kSgd, kAdamW };

// "sgd", "adamw".
QAT_API absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name);
QAT_API const char* OptimizerKindName(OptimizerKind kind);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kAdamW;
  // SGD.
  float momentum = 0.0f;
  bool nesterov = false;
  // Both.  PyTorch's defaults: 0 for SGD, 0.01 for AdamW; a negative value
  // means "the default for the kind".
  float weight_decay = -1.0f;
  // AdamW.
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  // Clip the gradients' global L2 norm to this value first (0: off), as
  // torch.nn.utils.clip_grad_norm_.
  float max_grad_norm = 0.0f;
};

class QAT_API Optimizer {
 public:
  // InvalidArgument for options out of range (negative momentum, beta
  // outside [0, 1), Nesterov without momentum, ...).
  static absl::StatusOr<std::unique_ptr<Optimizer>> Create(
      const OptimizerOptions& options);
  virtual ~Optimizer() = default;

  const OptimizerOptions& options() const { return options_; }
  // Steps taken so far.
  int64_t step_count() const { return step_; }

  // Updates params[i] with grads[i] at learning rate lr.  `names` identify
  // the parameters' state across calls; shapes must match the state's.
  // The gradients may be scaled in place by clipping.  Returns the global
  // gradient norm before clipping.
  absl::StatusOr<double> Step(float lr, const std::vector<std::string>& names,
                              const std::vector<Tensor*>& params,
                              const std::vector<Tensor*>& grads);

  // The state by name: "<param>.<slot>" for per-parameter slots
  // (momentum_buffer, exp_avg, exp_avg_sq).
  const std::map<std::string, Tensor>& state() const { return state_; }
  // Restores state saved from an optimizer of the same kind.
  absl::Status Restore(int64_t step, std::map<std::string, Tensor> state);

 protected:
  explicit Optimizer(const OptimizerOptions& options) : options_(options) {}
  Tensor& Slot(const std::string& param, const char* slot, const Tensor& like);

  // Applies one step to one parameter; `step` counts from 1.
  virtual void Update(float lr, int64_t step, const std::string& name,
                      Tensor& param, const Tensor& grad) = 0;

  OptimizerOptions options_;
  int64_t step_ = 0;
  std::map<std::string, Tensor> state_;
};

}  // namespace qat

#endif  // QAT_OPTIMIZER_H_
