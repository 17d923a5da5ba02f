// A checkpoint's contents by reference, for writing a training state as it
// lies in memory: a Checkpoint holds copies, which for resnet18 with AdamW
// are 134 MB more at every save (issue 16).
#ifndef QAT_LIB_TRAIN_CHECKPOINT_REFS_H_
#define QAT_LIB_TRAIN_CHECKPOINT_REFS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "qat/checkpoint.h"
#include "qat/tensor.h"

namespace qat {

struct CheckpointRefs {
  // Name and tensor, in the order they are written.
  using Tensors = std::vector<std::pair<const std::string*, const Tensor*>>;
  Tensors parameters;
  std::string optimizer;
  int64_t optimizer_step = 0;
  Tensors optimizer_state;
  TrainingProgress progress;
  const std::map<std::string, std::string>* metadata = nullptr;  // null: none
  Tensors quant_params;
  Tensors observer_state;
  int64_t observed_steps = 0;
  Tensors running_stats;
};

// `checkpoint` by reference; it must outlive the result.
CheckpointRefs RefsOf(const Checkpoint& checkpoint);
// A Checkpoint holding copies of what `refs` refers to.
Checkpoint CopyOf(const CheckpointRefs& refs);

// SaveCheckpoint's file, written a piece at a time: one tensor's bytes at
// most are copied at once, and no payload string is built.
absl::Status SaveCheckpointRefs(const std::string& path, const CheckpointRefs& refs);

}  // namespace qat

#endif  // QAT_LIB_TRAIN_CHECKPOINT_REFS_H_
