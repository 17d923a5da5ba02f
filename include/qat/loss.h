// The losses a training graph can end in (see qat/training_graph.h for the
// ops each one adds).
#ifndef QAT_LOSS_H_
#define QAT_LOSS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "qat/api.h"

namespace qat {

enum class LossKind { kCrossEntropy, kMse, kBceWithLogits, kL1 };
enum class LossReduction { kMean, kSum };

// "cross-entropy", "mse", "bce-with-logits", "l1".
QAT_API absl::StatusOr<LossKind> ParseLossKind(absl::string_view name);
QAT_API const char* LossKindName(LossKind kind);

// Input and output names the training graphs use.
inline constexpr char kLabelsInput[] = "labels";
inline constexpr char kLossOutput[] = "loss";
// The teacher's values in a distillation graph are "teacher/<name>".
inline constexpr char kTeacherPrefix[] = "teacher/";

// Distillation: the loss compares the student's tensors with a teacher's,
// which runs in the same graph on the same batch and gets no gradient.
//   mse      mean((s - t)^2)
//   kl       T^2 * mean over the other axes of
//            sum_c softmax(t/T)_c * (log_softmax(t/T)_c - log_softmax(s/T)_c),
//            the classes on the last axis (Hinton et al. 2015)
//   cosine   1 - mean over examples of cos(s_i, t_i), each example flattened
enum class DistillKind { kMse, kKl, kCosine };
// "mse", "kl", "cosine".
QAT_API absl::StatusOr<DistillKind> ParseDistillKind(absl::string_view name);
QAT_API const char* DistillKindName(DistillKind kind);

struct DistillTerm {
  std::string student;  // a student tensor: an output or an intermediate value
  std::string teacher;  // the teacher's tensor; empty: the same name
  DistillKind kind = DistillKind::kMse;
  float weight = 1.0f;
  float temperature = 1.0f;  // kl only; > 0
};

struct DistillOptions {
  // Empty (with a teacher): mse on each of the model's outputs, weight 1.
  std::vector<DistillTerm> terms;
  // > 0: adds label_weight times the labelled loss (LossOptions::kind on
  // LossOptions::output), so the graph takes labels too; 0: no labels.
  float label_weight = 0.0f;
};

struct LossOptions {
  LossKind kind = LossKind::kCrossEntropy;
  LossReduction reduction = LossReduction::kMean;
  // The model output the loss reads; empty means the first output.
  std::string output;
  // Cross-entropy only.
  std::optional<int64_t> ignore_index;
  std::vector<float> class_weights;  // empty: all classes weigh 1
  // Used when the graph holds a teacher (TrainingGraphOptions::teacher).
  DistillOptions distill;
};

}  // namespace qat

#endif  // QAT_LOSS_H_
