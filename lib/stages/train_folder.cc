#include "qat/train_folder.h"

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/model_internal.h"
#include "qat/checkpoint.h"
#include "qat/data_spec.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"

namespace qat {
namespace {

// The payload that marks a setting error (IsSettingError).
constexpr char kSettingErrorUrl[] = "type.libqat/setting-error";

absl::Status SettingError(const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kSettingErrorUrl, absl::Cord("1"));
  return status;
}

// Settings as the strings the checkpoint's metadata holds.
bool Parse(const std::string& s, int64_t* v) { return absl::SimpleAtoi(s, v); }
bool Parse(const std::string& s, uint64_t* v) { return absl::SimpleAtoi(s, v); }
bool Parse(const std::string& s, double* v) { return absl::SimpleAtod(s, v); }
bool Parse(const std::string& s, std::string* v) {
  *v = s;
  return true;
}
bool Parse(const std::string& s, bool* v) {
  if (s == "true" || s == "1") return *v = true;
  if (s == "false" || s == "0") return !(*v = false);
  return false;
}
bool Parse(const std::string& s, OptimizerKind* v) {
  auto kind = ParseOptimizerKind(s);
  if (kind.ok()) *v = *kind;
  return kind.ok();
}
bool Parse(const std::string& s, LrScheduleKind* v) {
  auto kind = ParseLrScheduleKind(s);
  if (kind.ok()) *v = *kind;
  return kind.ok();
}

std::string Format(int64_t v) { return absl::StrCat(v); }
std::string Format(uint64_t v) { return absl::StrCat(v); }
std::string Format(const std::string& v) { return v; }
std::string Format(bool v) { return v ? "true" : "false"; }
std::string Format(OptimizerKind v) { return OptimizerKindName(v); }
std::string Format(LrScheduleKind v) { return LrScheduleKindName(v); }
// The shortest text that reads back as the same double.
std::string Format(double v) {
  for (int digits = 1; digits < 17; ++digits) {
    const std::string s = absl::StrFormat("%.*g", digits, v);
    double back = 0;
    if (absl::SimpleAtod(s, &back) && back == v) return s;
  }
  return absl::StrFormat("%.17g", v);
}

// One stored run setting: its key ("run.<key>" in the metadata, "--<key>"
// for `qat train`) and how to read, write and compare it.
struct StoredSetting {
  const char* key;
  std::function<std::optional<std::string>(const TrainFolderOptions&)> text;
  std::function<bool(const std::string&, TrainFolderOptions*)> parse;
  std::function<bool(const TrainFolderOptions&, const TrainFolderOptions&)> equal;
};

template <typename T>
StoredSetting Stored(const char* key, std::optional<T> TrainFolderOptions::*member) {
  return {key,
          [member](const TrainFolderOptions& o) -> std::optional<std::string> {
            if (!(o.*member)) return std::nullopt;
            return Format(*(o.*member));
          },
          [member](const std::string& s, TrainFolderOptions* o) {
            T value{};
            if (!Parse(s, &value)) return false;
            o->*member = value;
            return true;
          },
          [member](const TrainFolderOptions& a, const TrainFolderOptions& b) {
            return a.*member == b.*member;
          }};
}

// In the order a resume checks them (it reports the first that differs), as
// `qat train` always did.
const std::vector<StoredSetting>& StoredSettings() {
  static const auto* settings = new std::vector<StoredSetting>{
      Stored("epochs", &TrainFolderOptions::epochs),
      Stored("batch", &TrainFolderOptions::batch),
      Stored("optimizer", &TrainFolderOptions::optimizer),
      Stored("lr", &TrainFolderOptions::lr),
      Stored("schedule", &TrainFolderOptions::schedule),
      Stored("warmup", &TrainFolderOptions::warmup),
      Stored("momentum", &TrainFolderOptions::momentum),
      Stored("nesterov", &TrainFolderOptions::nesterov),
      Stored("weight-decay", &TrainFolderOptions::weight_decay),
      Stored("max-grad-norm", &TrainFolderOptions::max_grad_norm),
      Stored("seed", &TrainFolderOptions::seed),
      Stored("data", &TrainFolderOptions::data),
      Stored("limit", &TrainFolderOptions::limit),
      Stored("observe-steps", &TrainFolderOptions::observe_steps),
      Stored("freeze-bn-steps", &TrainFolderOptions::freeze_bn_steps),
  };
  return *settings;
}

// A folder read, and the settings of the call resolved against it.
struct Run {
  std::string checkpoint_path;
  TrainingModels models;
  Checkpoint checkpoint;
  TrainSettings settings;
  std::map<std::string, std::string> metadata;  // what the checkpoints store
  std::shared_ptr<Collective> collective;       // data-parallel; null: one process
};

absl::Status CheckAtLeast(const char* key, double value, double min) {
  if (value >= min) return absl::OkStatus();
  return SettingError(absl::StrCat("--", key, " must be >= ", min, ", got ", value));
}

bool HasFakeQuant(const Model& model) {
  for (const auto& n : ModelAccess::Proto(model).graph().node()) {
    if (n.op_type() == "FakeQuant") return true;
  }
  return false;
}

absl::StatusOr<Run> Open(const std::string& folder, const TrainFolderOptions& given) {
  const std::string checkpoint_path = folder + "/" + kCheckpointFile;
  QAT_ASSIGN_OR_RETURN(TrainingModels models, LoadTrainingModels(folder));
  QAT_ASSIGN_OR_RETURN(Checkpoint checkpoint, LoadCheckpoint(checkpoint_path));
  Run run{checkpoint_path, std::move(models), std::move(checkpoint), {}, {}, given.collective};

  // With resume the interrupted run's settings win; a setting that says
  // otherwise is an error rather than a silent change.
  TrainFolderOptions o = given;
  std::map<std::string, std::string> stored_text;
  if (given.resume) {
    if (run.checkpoint.optimizer.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", run.checkpoint_path, "' holds no interrupted run to resume; drop --resume"));
    }
    for (const StoredSetting& s : StoredSettings()) {
      auto it = run.checkpoint.metadata.find(absl::StrCat("run.", s.key));
      if (it == run.checkpoint.metadata.end()) continue;
      TrainFolderOptions stored;
      if (!s.parse(it->second, &stored)) {
        return absl::DataLossError(absl::StrCat("'", run.checkpoint_path, "' stores run.",
                                                s.key, " '", it->second,
                                                "', which does not parse"));
      }
      if (const auto text = s.text(given); text && !s.equal(given, stored)) {
        return SettingError(absl::StrCat("--", s.key, " ", *text,
                                         " differs from the run being resumed (", it->second,
                                         ")"));
      }
      s.parse(it->second, &o);
      stored_text[s.key] = it->second;
    }
  }
  for (const StoredSetting& s : StoredSettings()) {
    if (auto it = stored_text.find(s.key); it != stored_text.end()) {
      run.metadata[absl::StrCat("run.", s.key)] = it->second;  // as the run stored it
    } else if (const auto text = s.text(o)) {
      run.metadata[absl::StrCat("run.", s.key)] = *text;
    }
  }

  TrainSettings& t = run.settings;
  // Fine-tuning a quantized model: 1e-4 with cosine decay, as a pair (a run
  // that sets its own lr keeps the constant schedule unless it sets one).
  if (!o.lr.has_value() && HasFakeQuant(run.models.training)) {
    t.lr = kQuantizedFolderLr;
    t.schedule = LrScheduleKind::kCosine;
  }
  t.epochs = o.epochs.value_or(t.epochs);
  t.batch = o.batch.value_or(t.batch);
  t.optimizer = o.optimizer.value_or(t.optimizer);
  t.lr = o.lr.value_or(t.lr);
  t.schedule = o.schedule.value_or(t.schedule);
  t.warmup = o.warmup.value_or(t.warmup);
  t.momentum = o.momentum.value_or(t.momentum);
  t.nesterov = o.nesterov.value_or(t.nesterov);
  t.weight_decay = o.weight_decay.value_or(t.weight_decay);
  t.max_grad_norm = o.max_grad_norm.value_or(t.max_grad_norm);
  t.seed = o.seed.value_or(t.seed);
  t.data = o.data.value_or(t.data);
  t.limit = o.limit.value_or(t.limit);
  t.observe_steps = o.observe_steps.value_or(t.observe_steps);
  t.freeze_bn_steps = o.freeze_bn_steps.value_or(t.freeze_bn_steps);
  t.threads = o.threads;
  t.batch_shards = o.batch_shards;
  t.sync_batch_norm = o.sync_batch_norm;
  t.save_every = o.save_every;
  t.resume = o.resume;
  run.metadata["run.epochs"] = Format(t.epochs);

  QAT_RETURN_IF_ERROR(CheckAtLeast("epochs", t.epochs, 1));
  QAT_RETURN_IF_ERROR(CheckAtLeast("batch", t.batch, 1));
  QAT_RETURN_IF_ERROR(CheckAtLeast("warmup", t.warmup, 0));
  QAT_RETURN_IF_ERROR(CheckAtLeast("threads", t.threads, 0));
  QAT_RETURN_IF_ERROR(CheckAtLeast("limit", t.limit, 0));
  QAT_RETURN_IF_ERROR(CheckAtLeast("save-every", t.save_every, 1));
  QAT_RETURN_IF_ERROR(CheckAtLeast("observe-steps", t.observe_steps, -1));
  QAT_RETURN_IF_ERROR(CheckAtLeast("freeze-bn-steps", t.freeze_bn_steps, -1));
  QAT_RETURN_IF_ERROR(CheckAtLeast("lr", t.lr, 0));
  if (!std::isfinite(t.lr)) return SettingError(absl::StrCat("--lr must be finite, got ", t.lr));
  QAT_RETURN_IF_ERROR(CheckAtLeast("momentum", t.momentum, 0));
  QAT_RETURN_IF_ERROR(CheckAtLeast("max-grad-norm", t.max_grad_norm, 0));
  if (run.collective && t.batch % run.collective->size() != 0) {
    return SettingError(absl::StrCat("--batch ", t.batch, " does not split evenly over ",
                                     run.collective->size(),
                                     " ranks: the global batch must divide by the rank count"));
  }
  if (o.observe_steps && !run.models.observe_quant_params) {
    return SettingError("--observe-steps needs a folder prepared with --quant-params observe");
  }
  return run;
}

// A new run starting from a checkpoint's parameters.  The observed
// quantization parameters and the BatchNorm running statistics belong to
// the model too; the observed-step count
// carries over, so freezing holds across runs.
Checkpoint NewRunStart(Checkpoint checkpoint, uint64_t seed) {
  Checkpoint start;
  start.parameters = std::move(checkpoint.parameters);
  start.quant_params = std::move(checkpoint.quant_params);
  start.observer_state = std::move(checkpoint.observer_state);
  start.observed_steps = checkpoint.observed_steps;
  start.running_stats = std::move(checkpoint.running_stats);
  start.progress.seed = seed;
  return start;
}

// Trains `run`: `train_epochs` runs the trainer's epochs (over a data set or a
// batch source), `steps_per_epoch` of them.
using EpochRunner = std::function<absl::Status(Trainer&, int64_t epochs, const StepCallback&)>;

absl::StatusOr<TrainFolderResult> Train(Run& run, int64_t steps_per_epoch,
                                        const EpochRunner& train_epochs,
                                        const TrainFolderHooks& hooks) {
  const TrainSettings& t = run.settings;
  TrainerOptions options;
  options.optimizer.kind = t.optimizer;
  options.optimizer.momentum = static_cast<float>(t.momentum);
  options.optimizer.nesterov = t.nesterov;
  options.optimizer.weight_decay = static_cast<float>(t.weight_decay);
  options.optimizer.max_grad_norm = static_cast<float>(t.max_grad_norm);
  options.num_threads = t.threads;
  options.batch_shards = t.batch_shards;
  options.sync_batch_norm = t.sync_batch_norm;
  options.seed = t.seed;
  options.observe.freeze_after_steps = t.observe_steps;
  options.freeze_bn_steps = t.freeze_bn_steps;
  options.collective = run.collective;
  int64_t total_steps = 0;
  if (__builtin_mul_overflow(t.epochs, steps_per_epoch, &total_steps)) {
    return SettingError(absl::StrCat("--epochs ", t.epochs, " of ", steps_per_epoch,
                                     " steps each is more steps than an int64 counts"));
  }
  options.schedule = {t.schedule, static_cast<float>(t.lr), 0.0f, t.warmup, total_steps};
  QAT_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(run.models, options));
  if (t.resume) {
    QAT_RETURN_IF_ERROR(trainer->RestoreCheckpoint(run.checkpoint));
  } else {
    QAT_RETURN_IF_ERROR(
        trainer->RestoreCheckpoint(NewRunStart(std::move(run.checkpoint), options.seed)));
  }
  {
    // The trainer holds copies of all it needs; the models' initializers
    // and a resumed checkpoint would stay in memory for the whole run (for
    // resnet18, 90 MB and 134 MB).  Nothing reads `run` from here on but
    // its settings, metadata, path and collective.
    TrainingModels models = std::move(run.models);
    Checkpoint checkpoint = std::move(run.checkpoint);
  }

  TrainFolderResult result;
  result.settings = t;
  result.checkpoint = run.checkpoint_path;
  if (hooks.eval_data != nullptr && hooks.eval_before_training) {
    QAT_ASSIGN_OR_RETURN(result.eval_before,
                         trainer->Evaluate(*hooks.eval_data, hooks.eval_batch));
  }
  // `epoch_end`: the epoch's counters advance after the step callback; the
  // checkpoint holds the state as TrainEpochs will have it.
  // Data-parallel ranks hold the same state: rank 0 writes it.
  const bool writer = run.collective == nullptr || run.collective->rank() == 0;
  auto save = [&](bool epoch_end) {
    if (!writer) return absl::OkStatus();
    TrainingProgress progress = trainer->progress();
    if (epoch_end) {
      ++progress.epoch;
      progress.step_in_epoch = 0;
    }
    return trainer->SaveCheckpoint(run.checkpoint_path, progress, run.metadata);
  };
  double loss_sum = 0.0;
  int64_t loss_count = 0;
  const absl::Status trained = train_epochs(
      *trainer, t.epochs, [&](const StepReport& r) -> absl::Status {
        if (loss_count == 0 || r.step_in_epoch == 0) {
          loss_sum = 0.0;
          loss_count = 0;
        }
        loss_sum += r.loss;
        ++loss_count;
        const bool epoch_end = r.step_in_epoch + 1 == r.steps_per_epoch;
        bool saved = false;
        if (epoch_end || r.global_step % t.save_every == 0) {
          QAT_RETURN_IF_ERROR(save(epoch_end));
          saved = true;
        }
        // A hook that stops the run gets the state after this step saved.
        auto stop = [&](absl::Status status) {
          if (status.ok()) return status;
          if (!saved) {
            if (absl::Status s = save(epoch_end); !s.ok()) return s;
          }
          return status;
        };
        if (hooks.on_step) {
          QAT_RETURN_IF_ERROR(stop(hooks.on_step({r, t.epochs, loss_sum / loss_count})));
        }
        if (epoch_end) {
          TrainFolderEpoch e;
          e.epoch = r.epoch + 1;
          e.epochs = t.epochs;
          e.mean_train_loss = loss_sum / loss_count;
          if (hooks.eval_data != nullptr) {
            QAT_ASSIGN_OR_RETURN(e.eval, trainer->Evaluate(*hooks.eval_data, hooks.eval_batch));
          }
          if (hooks.on_epoch) QAT_RETURN_IF_ERROR(stop(hooks.on_epoch(e)));
        }
        return absl::OkStatus();
      });
  if (!trained.ok()) return trained;
  QAT_RETURN_IF_ERROR(save(false));
  result.epochs = trainer->progress().epoch;
  result.steps = trainer->progress().global_step;
  return result;
}

absl::StatusOr<TrainFolderResult> TrainOn(Run& run, const Dataset& data,
                                          const TrainFolderHooks& hooks) {
  QAT_ASSIGN_OR_RETURN(const int64_t steps_per_epoch,
                       StepsPerEpoch(data.size(), run.settings.batch));
  const int64_t batch = run.settings.batch;
  return Train(run, steps_per_epoch,
               [&](Trainer& trainer, int64_t epochs, const StepCallback& on_step) {
                 return trainer.TrainEpochs(data, epochs, batch, on_step);
               },
               hooks);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> OpenFolderTrainer(const std::string& folder,
                                                           const TrainingModels& models,
                                                           const TrainerOptions& options) {
  QAT_ASSIGN_OR_RETURN(Checkpoint checkpoint, LoadCheckpoint(folder + "/" + kCheckpointFile));
  QAT_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(models, options));
  QAT_RETURN_IF_ERROR(
      trainer->RestoreCheckpoint(NewRunStart(std::move(checkpoint), options.seed)));
  return trainer;
}

bool IsSettingError(const absl::Status& status) {
  return status.GetPayload(kSettingErrorUrl).has_value();
}

absl::StatusOr<TrainSettings> ResolveTrainSettings(const std::string& folder,
                                                   const TrainFolderOptions& options) {
  QAT_ASSIGN_OR_RETURN(Run run, Open(folder, options));
  return run.settings;
}

absl::StatusOr<TrainFolderResult> TrainFolder(const std::string& folder,
                                              const TrainFolderOptions& options,
                                              const TrainFolderHooks& hooks) {
  QAT_ASSIGN_OR_RETURN(Run run, Open(folder, options));
  if (run.settings.data.empty()) {
    return SettingError("train needs --data DIR (IDX or .npy files), DATA.npz or FEATURES.npy[,LABELS.npy]");
  }
  DataSpecOptions spec;
  spec.split = "train";
  spec.limit = run.settings.limit;
  QAT_ASSIGN_OR_RETURN(Dataset data, LoadDataSpec(run.settings.data, run.models.training, spec));
  return TrainOn(run, data, hooks);
}

absl::StatusOr<TrainFolderResult> TrainFolder(const std::string& folder, const Dataset& data,
                                              const TrainFolderOptions& options,
                                              const TrainFolderHooks& hooks) {
  QAT_ASSIGN_OR_RETURN(Run run, Open(folder, options));
  return TrainOn(run, data, hooks);
}

absl::StatusOr<TrainFolderResult> TrainFolder(const std::string& folder,
                                              const Trainer::BatchSource& batches,
                                              int64_t steps_per_epoch,
                                              const TrainFolderOptions& options,
                                              const TrainFolderHooks& hooks) {
  QAT_ASSIGN_OR_RETURN(Run run, Open(folder, options));
  if (steps_per_epoch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps per epoch must be >= 1, not ", steps_per_epoch));
  }
  return Train(run, steps_per_epoch,
               [&](Trainer& trainer, int64_t epochs, const StepCallback& on_step) {
                 return trainer.TrainEpochs(batches, steps_per_epoch, epochs, on_step);
               },
               hooks);
}

}  // namespace qat
