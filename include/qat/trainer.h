// Trainer: runs training steps on the executor and updates the parameters.
//
//   QAT_ASSIGN_OR_RETURN(auto models, BuildTrainingModels(model, {}));
//   TrainerOptions options;
//   options.schedule.lr = 1e-3f;
//   QAT_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(models, options));
//   QAT_ASSIGN_OR_RETURN(auto data, Dataset::FromIdx(kFashionMnistDir));
//   QAT_RETURN_IF_ERROR(trainer->TrainEpochs(data, /*epochs=*/3, /*batch=*/64));
//
// The trainer owns the parameters (initialized from the training model's
// initializers, or restored from a checkpoint), an Optimizer and the run's
// progress.  A step feeds the batch and the parameters to the training
// model, checks that the loss and the gradients are finite (otherwise it
// returns InvalidArgument and leaves the parameters untouched), and applies
// the optimizer at the schedule's learning rate.
//
// Determinism: for a given seed and thread count, a run gives bit-identical
// parameters, and so does a run restored from any of its checkpoints.
//
// Thread safety: one Trainer per thread.
#ifndef QAT_TRAINER_H_
#define QAT_TRAINER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/checkpoint.h"
#include "qat/collective.h"
#include "qat/dataset.h"
#include "qat/api.h"
#include "qat/lr_schedule.h"
#include "qat/optimizer.h"
#include "qat/tensor.h"
#include "qat/training_graph.h"

namespace qat {

struct CheckpointRefs;  // lib/train/checkpoint_refs.h

// Observe mode (TrainingModels::observe_quant_params): after every step the
// trainer sets each activation FakeQuant's scale and zero point from a
// moving average of the min and max it saw, and each weight FakeQuant's from
// the weight's current min and max (lib/training/quant_param_observer.h).
// The step itself ran with the parameters observed before it; the first
// step runs with the calibrated ones.
struct ObserveOptions {
  // PyTorch's MovingAverageMinMaxObserver default.
  float averaging_constant = 0.01f;
  // The parameters stay fixed once this many steps were observed, counted
  // over chained runs (the checkpoint keeps the count); -1: never freeze.
  int64_t freeze_after_steps = -1;
};

struct TrainerOptions {
  OptimizerOptions optimizer;
  ObserveOptions observe;
  LrSchedule schedule;
  // Training-mode BatchNormalization: from this global step on, the
  // running statistics stay as they are and normalize in training too
  // (PyTorch's freeze_bn_stats), counted in the run's global steps (a
  // resumed run counts on; a chained run starts at 0).  -1: never.
  int64_t freeze_bn_steps = -1;
  int num_threads = 0;  // 0: one per core; at most kMaxThreads (qat/thread_pool.h)
  uint64_t seed = 0;    // shuffling (and dropout)
  bool shuffle = true;
  // Data-parallel training (qat/collective.h); null: this process alone.
  // Every rank creates its Trainer from the same models and options and
  // calls TrainEpochs with the same data: each takes its shard (ShardOf) of
  // every global batch of `batch_size`, which must divide by the rank count.
  // A step sums the gradients (and the loss), weighted by the shards'
  // example counts for a mean loss, over the ranks before the optimizer
  // runs, and in observe mode reduces the batch ranges with min / max: so
  // every rank holds the same parameters, those of one process on the
  // global batch up to float rounding (docs/training.md).  TrainStep called
  // directly takes this rank's shard.
  std::shared_ptr<Collective> collective;
  // One process only (no collective): compute each batch's gradient as N
  // ranks would, from `batch_shards` shards (ShardOf), run one after the
  // other and summed in shard order with the ranks' weights.  The float
  // sums then associate as on N = batch_shards ranks, so one process with
  // batch_shards N equals N ranks bit for bit (for one thread count), where
  // a whole-batch step (1, the default) differs in the last bits
  // (docs/training.md).  Costs the speed of smaller GEMMs (measured there).
  // InvalidArgument: < 1, or set with a collective of another size.  A
  // model with BatchNormalization in training mode needs sync_batch_norm
  // with more than one shard (FailedPrecondition without); its shards then
  // run at once, as threads (one training executor per shard).
  int batch_shards = 1;
  // Synchronized BatchNorm over the ranks (or the batch shards): a
  // training-mode BatchNormalization normalizes with the global batch's
  // mean and variance, and its gradient's batch means are the global
  // batch's too, so a step is the whole batch's up to float rounding, and
  // every rank keeps the same running statistics (no averaging).  Off (as
  // PyTorch's DDP without SyncBatchNorm): each rank normalizes with its own
  // shard's statistics and the running statistics are averaged after each
  // step.  Costs two reductions of C + 1 floats per BatchNormalization in
  // the forward and four in the backward.  Every rank must get examples in
  // every batch: a last batch shorter than the rank (or shard) count is
  // InvalidArgument.  Not stored in checkpoints: a resumed run passes it
  // again.  No effect in one process with one shard.
  bool sync_batch_norm = false;
};

struct EvalMetrics {
  double loss = 0.0;      // mean over examples
  double accuracy = -1.0;  // classification only: argmax over axis 1 of the
                           // first model output; -1 otherwise
  int64_t examples = 0;
};

// Called after every training step.
struct StepReport {
  int64_t epoch = 0;  // 0-based
  int64_t step_in_epoch = 0;
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;
  float loss = 0.0f;
  float lr = 0.0f;
};
using StepCallback = std::function<absl::Status(const StepReport&)>;

// The batches in an epoch of `examples` examples: ceil(examples /
// batch_size), computed without overflow (any batch_size >= 1 works, and a
// batch larger than the data set is one batch).  InvalidArgument for
// batch_size < 1 or examples < 0.
QAT_API absl::StatusOr<int64_t> StepsPerEpoch(int64_t examples, int64_t batch_size);

class QAT_API Trainer {
 public:
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainingModels& models, const TrainerOptions& options);
  ~Trainer();

  const std::vector<std::string>& param_names() const;
  const Tensor& param(const std::string& name) const;
  const TrainingProgress& progress() const;
  const Optimizer& optimizer() const;

  // Replaces the learning-rate schedule (it is a function of the global
  // step, so a new one takes effect at the next step).
  absl::Status SetSchedule(const LrSchedule& schedule);

  // One optimizer step.  `batch` holds the model's data inputs and
  // `labels`.  Returns the loss before the update.
  absl::StatusOr<float> TrainStep(const std::map<std::string, Tensor>& batch);

  // Runs the eval model: "loss" and the model's outputs.
  absl::StatusOr<std::map<std::string, Tensor>> EvalStep(
      const std::map<std::string, Tensor>& batch);

  // Trains until `epochs` epochs are complete (counting those a restored
  // checkpoint already completed), in batches of `batch_size`; the last
  // batch of an epoch may be smaller.  `on_step` may stop the run by
  // returning an error, which TrainEpochs returns.
  absl::Status TrainEpochs(const Dataset& data, int64_t epochs,
                           int64_t batch_size, const StepCallback& on_step = {});

  // Fills *features and *labels with the batch of step `step` (0-based) of
  // epoch `epoch`.  The steps of an epoch are asked for in order; a restored
  // run starts at the step it stopped at.
  using BatchSource = std::function<absl::Status(int64_t epoch, int64_t step,
                                                 Tensor* features, Tensor* labels)>;
  // The same over batches that `next` gives, `steps_per_epoch` (>= 1) of
  // them per epoch: for callers that bring their own data (the C ABI's
  // batch callback, the Python package's iterators).  An error from `next`
  // stops the run and is returned.
  absl::Status TrainEpochs(const BatchSource& next, int64_t steps_per_epoch, int64_t epochs,
                           const StepCallback& on_step = {});

  // Mean loss and accuracy over a dataset, with the eval model.  With a
  // collective every rank calls it with the same data: each evaluates its
  // share of the batches (ShardOf over the batch count) and the sums are
  // gathered, so every rank returns one process's accuracy exactly and its
  // loss up to the association of a double sum.
  absl::StatusOr<EvalMetrics> Evaluate(const Dataset& data, int64_t batch_size);

  // The parameters, optimizer state and progress, and back; in observe mode
  // also the observed scales and zero points and the observers' state.
  Checkpoint MakeCheckpoint() const;
  // SaveCheckpoint(path, MakeCheckpoint()) with `progress` and `metadata`
  // in place of the trainer's, written from the state itself: no copy of
  // it is made (for resnet18 with AdamW that copy is 134 MB).
  absl::Status SaveCheckpoint(const std::string& path, const TrainingProgress& progress,
                              const std::map<std::string, std::string>& metadata) const;
  // InvalidArgument when the checkpoint's parameters do not match this
  // model's (names, order, shapes), its optimizer is of another kind, or its
  // observed quantization parameters are not this model's.  A checkpoint
  // without observed parameters (the one `prepare` writes) keeps the
  // calibrated ones.
  absl::Status RestoreCheckpoint(const Checkpoint& checkpoint);

 private:
  struct State;
  explicit Trainer(std::unique_ptr<State> state);
  // What MakeCheckpoint copies, by reference.
  CheckpointRefs Refs() const;
  // TrainStep on this rank's shard; null: a rank without examples in this
  // (last, short) batch, which still takes part in the reductions.
  absl::StatusOr<float> Step(const std::map<std::string, Tensor>* batch);
  // The training graph on `batch` (labels checked) into *outputs; `shard`
  // > 0: on that shard's executor (synchronized BatchNorm's batch shards).
  absl::Status RunTrainingGraph(const std::map<std::string, Tensor>& batch,
                                std::map<std::string, Tensor>* outputs, float* loss,
                                int shard = 0);
  // The epoch loop of both TrainEpochs: `next` fills the named inputs of
  // step `step` of epoch `epoch` (no examples: this rank sits the step out).
  using NamedBatchSource = std::function<absl::Status(
      int64_t epoch, int64_t step, std::map<std::string, Tensor>* batch)>;
  absl::Status RunEpochs(const NamedBatchSource& next, int64_t steps, int64_t epochs,
                         const StepCallback& on_step);
  std::unique_ptr<State> state_;
};

}  // namespace qat

#endif  // QAT_TRAINER_H_
