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

struct LossOptions {
  LossKind kind = LossKind::kCrossEntropy;
  LossReduction reduction = LossReduction::kMean;
  // The model output the loss reads; empty means the first output.
  std::string output;
  // Cross-entropy only.
  std::optional<int64_t> ignore_index;
  std::vector<float> class_weights;  // empty: all classes weigh 1
};

}  // namespace qat

#endif  // QAT_LOSS_H_
