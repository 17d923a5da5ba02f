// TrainFolder: trains the folder that Prepare wrote, and keeps its
// checkpoint current, so that a run can stop at any moment and resume as if
// it had never stopped.  `qat train` is this function.
//
//   TrainFolderOptions options;
//   options.epochs = 3;
//   options.lr = 1e-3;
//   options.data = "x.npy,y.npy";      // a data spec (qat/data_spec.h)
//   QAT_ASSIGN_OR_RETURN(TrainFolderResult r, TrainFolder("qat_dir", options));
//
// The contract:
//  - Chaining.  A call without `resume` starts a new run from the folder's
//    checkpoint: its parameters, and in observe mode its observed scales and
//    zero points, the observers' moving averages and the observed-step count
//    (so freezing counts over chained runs).  The optimizer state and the
//    progress start afresh, with the shuffling seeded by `seed`.  So 3 epochs
//    at one rate, then 1 epoch at another, are two calls.
//  - Run settings.  Every setting below marked "stored" is kept in the
//    checkpoint's metadata as "run.<key>" (the key is the `qat train` flag's
//    name, e.g. "run.max-grad-norm"), as a string: a new run stores those
//    that were set, and always "run.epochs".  Checkpoints written by earlier
//    `qat train` versions, which stored the flags' strings, load the same.
//  - Resume.  With `resume`, the folder's checkpoint must hold an
//    interrupted (or finished) run: its optimizer state and progress are
//    restored, a stored setting that is unset here takes the stored value,
//    and one that is set must equal it (compared as values: 1e-3 equals
//    0.001).  The run then finishes exactly as the uninterrupted run would
//    have: the same batches (an epoch's order is a function of the seed and
//    the epoch), the same schedule, the same parameters bit for bit, for the
//    same thread count.
//  - Saving.  The checkpoint is written atomically after every `save_every`
//    optimizer steps (counted over the run), at the end of every epoch, at
//    the end of the call, and when a hook stops the run; so a kill at any
//    moment leaves a loadable checkpoint, and resuming from it is exact.
//
// Errors (absl::Status, naming the file or the setting; nothing is written
// before the settings are checked):
//  - NotFound / DataLoss / InvalidArgument from reading the folder, naming
//    the file (LoadTrainingModels, LoadCheckpoint);
//  - FailedPrecondition "'DIR/checkpoint' holds no interrupted run to
//    resume" for `resume` on a checkpoint that Prepare wrote;
//  - setting errors (IsSettingError() is true; the message names the setting
//    as "--<key>"): a value out of range, a setting that differs from the
//    run being resumed, observe_steps on a folder that does not observe, no
//    data;
//  - InvalidArgument from the data (LoadDataSpec) and from training (a
//    non-finite loss: the parameters are not updated); a hook's own error,
//    returned as it is after the checkpoint was saved.
// Determinism: for a given seed and thread count the checkpoint after a
// call is bit-identical, whether or not the run was stopped and resumed in
// between.
// Thread safety: one call per folder at a time; calls on different folders
// may run concurrently.
#ifndef QAT_TRAIN_FOLDER_H_
#define QAT_TRAIN_FOLDER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/collective.h"
#include "qat/dataset.h"
#include "qat/lr_schedule.h"
#include "qat/optimizer.h"
#include "qat/trainer.h"

namespace qat {

inline constexpr double kQuantizedFolderLr = 1e-4;

// Unset: the default (after the colon) for a new run, the stored value on
// resume.
struct TrainFolderOptions {
  std::optional<int64_t> epochs;           // stored; 1; >= 1, counted over the run
  std::optional<int64_t> batch;            // stored; 64; >= 1
  std::optional<OptimizerKind> optimizer;  // stored; adamw
  // A folder prepared from a QDQ model (its graph holds FakeQuant) defaults
  // to kQuantizedFolderLr with cosine decay when lr is unset (a few steps at
  // 1e-3 undo what calibration found); with lr set, the schedule defaults
  // to constant.  An fp32 folder defaults to 1e-3, constant.
  std::optional<double> lr;                // stored; 1e-3 or 1e-4 (above); >= 0
  std::optional<LrScheduleKind> schedule;  // stored; constant or cosine (above)
  std::optional<int64_t> warmup;           // stored; 0 steps
  std::optional<double> momentum;          // stored; 0 (SGD)
  std::optional<bool> nesterov;            // stored; false (SGD)
  std::optional<double> weight_decay;      // stored "weight-decay"; < 0: the optimizer's default
  std::optional<double> max_grad_norm;     // stored "max-grad-norm"; 0: no clipping
  std::optional<uint64_t> seed;            // stored; 0 (shuffling, dropout)
  std::optional<std::string> data;         // stored; the data spec
  std::optional<int64_t> limit;            // stored; 0: every training example
  std::optional<int64_t> observe_steps;    // stored "observe-steps"; -1: never freeze
  // stored "freeze-bn-steps"; -1: never (TrainerOptions::freeze_bn_steps)
  std::optional<int64_t> freeze_bn_steps;
  // Not stored.
  int threads = 0;          // 0: one per core
  int64_t save_every = 100;  // >= 1
  bool resume = false;
  // TrainerOptions::batch_shards: one process computing each batch as that
  // many ranks would (bit for bit); 1 under mpirun (the ranks are the
  // shards) or the rank count.
  int batch_shards = 1;
  // TrainerOptions::sync_batch_norm: synchronized BatchNorm over the ranks
  // or batch shards (pass it again on resume).
  bool sync_batch_norm = false;
  // Data-parallel training (qat/collective.h, TrainerOptions::collective):
  // every rank calls TrainFolder on the same folder and data; `batch` is the
  // global batch and must divide by the rank count.  Rank 0 alone writes the
  // checkpoint; every rank reads it on resume (resume with the same rank
  // count for a bit-identical finish).
  std::shared_ptr<Collective> collective;
};

// The settings of a call, every one resolved.
struct TrainSettings {
  int64_t epochs = 1;
  int64_t batch = 64;
  OptimizerKind optimizer = OptimizerKind::kAdamW;
  double lr = 1e-3;
  LrScheduleKind schedule = LrScheduleKind::kConstant;
  int64_t warmup = 0;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = -1.0;
  double max_grad_norm = 0.0;
  uint64_t seed = 0;
  std::string data;  // "" when none was given
  int64_t limit = 0;
  int64_t observe_steps = -1;
  int64_t freeze_bn_steps = -1;
  int threads = 0;
  int64_t save_every = 100;
  bool resume = false;
  int batch_shards = 1;
  bool sync_batch_norm = false;
};

// After every optimizer step.
struct TrainFolderStep {
  StepReport step;            // epoch (0-based), step in epoch, global step, loss, lr
  int64_t epochs = 0;         // of the whole run
  double epoch_mean_loss = 0;  // mean loss of this epoch's steps in this call so far
};

// After every epoch.
struct TrainFolderEpoch {
  int64_t epoch = 0;           // epochs completed, 1-based
  int64_t epochs = 0;          // of the whole run
  double mean_train_loss = 0;  // mean over this epoch's steps in this call
  std::optional<EvalMetrics> eval;  // on TrainFolderHooks::eval_data
};

struct TrainFolderHooks {
  // A hook that returns an error stops the run: the checkpoint is saved (a
  // resume continues with the next step) and the error is returned.
  std::function<absl::Status(const TrainFolderStep&)> on_step;
  std::function<absl::Status(const TrainFolderEpoch&)> on_epoch;
  // When set, evaluated (Trainer::Evaluate, eval model, in batches of
  // eval_batch) after every epoch, and before the first step when
  // eval_before_training.
  const Dataset* eval_data = nullptr;
  int64_t eval_batch = 256;
  bool eval_before_training = false;
};

struct TrainFolderResult {
  TrainSettings settings;
  int64_t epochs = 0;          // epochs completed in the run
  int64_t steps = 0;           // optimizer steps in the run
  std::string checkpoint;      // FOLDER/checkpoint
  std::optional<EvalMetrics> eval_before;  // eval_before_training
};

// The settings a call would use: `options` over the stored run's (with
// resume) or over the defaults.  Errors as TrainFolder's, without training.
QAT_API absl::StatusOr<TrainSettings> ResolveTrainSettings(const std::string& folder,
                                                           const TrainFolderOptions& options);

// Trains on the data that the (resolved) data spec names: its "train" split
// shaped for the training model, with `limit`.
QAT_API absl::StatusOr<TrainFolderResult> TrainFolder(const std::string& folder,
                                                      const TrainFolderOptions& options,
                                                      const TrainFolderHooks& hooks = {});

// Trains on `data`, which the caller loaded: `data` and `limit` are stored
// (and compared on resume) as given, but not applied.
QAT_API absl::StatusOr<TrainFolderResult> TrainFolder(const std::string& folder,
                                                      const Dataset& data,
                                                      const TrainFolderOptions& options,
                                                      const TrainFolderHooks& hooks = {});

// Trains on batches that `batches` gives, `steps_per_epoch` (>= 1) per
// epoch: the caller's own data (the C ABI's batch callback, Python's
// iterators), shuffled or not as the caller likes.  `batch`, `data` and
// `limit` are stored (and compared on resume) as given, but not applied; a
// resume asks for the batches from the step the run stopped at.
QAT_API absl::StatusOr<TrainFolderResult> TrainFolder(const std::string& folder,
                                                      const Trainer::BatchSource& batches,
                                                      int64_t steps_per_epoch,
                                                      const TrainFolderOptions& options,
                                                      const TrainFolderHooks& hooks = {});

// A trainer over `models` (LoadTrainingModels(folder)) that starts where a
// TrainFolder call without resume starts: the folder's checkpoint's
// parameters and observed quantization parameters, a fresh optimizer and
// progress.  For callers that drive the steps themselves (the C ABI's
// qat_trainer_open_folder).  Errors: the checkpoint's, naming the file.
QAT_API absl::StatusOr<std::unique_ptr<Trainer>> OpenFolderTrainer(const std::string& folder,
                                                                   const TrainingModels& models,
                                                                   const TrainerOptions& options);

// True for an error about the caller's settings (see above): the CLI
// reports it as a usage error.
QAT_API bool IsSettingError(const absl::Status& status);

}  // namespace qat

#endif  // QAT_TRAIN_FOLDER_H_
