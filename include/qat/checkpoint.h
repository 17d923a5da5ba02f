// Checkpoints: the parameters and the full training state, in one file.
//
// A checkpoint holds the trainable parameters (in training order), the
// optimizer's kind, step count and state, the position in the run (epoch,
// step within the epoch, global step, seed) and free-form metadata.  With
// observed quantization parameters (TrainingModels::observe_quant_params) it
// also holds the FakeQuant scales and zero points as observed so far, the
// moving averages behind them and the number of steps observed.  It is
// written atomically (a temporary file, then a rename), so a reader sees the
// previous checkpoint or the new one, never a torn file; and it ends with a
// checksum, so a truncated or corrupted file is an error, not garbage.
// docs/training.md describes the layout.
#ifndef QAT_CHECKPOINT_H_
#define QAT_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

struct TrainingProgress {
  int64_t epoch = 0;          // epochs completed
  int64_t step_in_epoch = 0;  // batches done in the current epoch
  int64_t global_step = 0;    // optimizer steps in the whole run
  uint64_t seed = 0;          // the run's seed (shuffling, dropout)
};

struct Checkpoint {
  std::vector<std::pair<std::string, Tensor>> parameters;
  std::string optimizer;  // "" before any training
  int64_t optimizer_step = 0;
  std::map<std::string, Tensor> optimizer_state;
  TrainingProgress progress;
  std::map<std::string, std::string> metadata;
  // Observe mode only (empty otherwise).  `quant_params`: the FakeQuant
  // scale and zero-point initializers, by name, as observed; the export
  // writes them over the model's.  `observer_state`: the moving averages,
  // "<scale>.min_val" and "<scale>.max_val" for each activation FakeQuant.
  // `observed_steps`: how many steps updated them (freezing counts these).
  std::vector<std::pair<std::string, Tensor>> quant_params;
  std::map<std::string, Tensor> observer_state;
  int64_t observed_steps = 0;
  // The running mean and variance of training-mode BatchNormalizations,
  // by name, as the last step left them (format version 3; empty for a
  // model without them).  The export writes them over the model's.
  std::vector<std::pair<std::string, Tensor>> running_stats;
};

QAT_API absl::Status SaveCheckpoint(const std::string& path,
                                    const Checkpoint& checkpoint);

// NotFound for a missing file; DataLoss, naming the file, for a file that is
// not a checkpoint, is truncated, fails its checksum, or comes from a newer
// format version.
QAT_API absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace qat

#endif  // QAT_CHECKPOINT_H_
