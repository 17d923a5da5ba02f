#include "qat/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "qat/executor.h"
#include "qat/status_macros.h"
#include "qat/thread_pool.h"
#include "core/model_internal.h"
#include "qat/fake_quant.h"
#include "train/checkpoint_refs.h"
#include "train/classification.h"
#include "passes/fold_batch_norm_qat.h"
#include "train/parameters.h"
#include "train/training_graph_build.h"
#include "train/quant_param_observer.h"
#include "train/thread_group.h"

namespace qat {

struct Trainer::State {
  TrainerOptions options;
  std::vector<std::string> names;
  std::map<std::string, Tensor> params;
  std::unique_ptr<Executor> train;
  std::unique_ptr<Executor> eval;
  // With TrainerOptions::freeze_bn_steps: the training model whose
  // BatchNorms use the running statistics.
  std::unique_ptr<Executor> frozen_bn;
  std::unique_ptr<Optimizer> optimizer;
  // The last training step's outputs; their tensors are the next step's
  // buffers (Executor::Run swaps them), so a step allocates nothing.
  std::map<std::string, Tensor> outputs;
  TrainingProgress progress;
  std::string data_input;    // the model's (single) data input, if any
  std::vector<ValueInfo> data_inputs;  // every data input, as datasets bind to them
  bool needs_labels = false;           // the training model has a labels input
  // Learnable quantization parameters (LSQ): scales kept positive, zero
  // points fed rounded into their range.
  std::set<std::string> scales;
  std::map<std::string, QuantRange> zero_points;
  int64_t num_classes = -1;  // from the first model output, for label checks
  bool classification = false;
  // Observe mode: the observed scales and zero points (fed to both models),
  // in graph order, and the steps observed so far.
  std::optional<training::QuantParamObserver> observer;
  std::vector<std::string> quant_names;
  std::map<std::string, Tensor> quant;
  int64_t observed_steps = 0;
  // BatchNormalization running statistics (not trained: each step's
  // <name>_next output replaces them), fed to both models.
  std::vector<std::string> stat_names;
  std::map<std::string, Tensor> stats;
  // Data-parallel: the reduction over the ranks, whether the loss is a sum
  // over the examples (else a mean: shards weigh by their examples), and
  // the buffer the gradients are reduced in.
  std::shared_ptr<Collective> collective;
  bool loss_is_sum = false;
  std::vector<float> reduced;
  // One process with TrainerOptions::batch_shards > 1: shard k's batch and
  // its outputs (shard 0's are `outputs`), and a shard's reduction buffer.
  int batch_shards = 1;
  std::vector<std::map<std::string, Tensor>> shard_batches;
  std::vector<std::map<std::string, Tensor>> shard_outputs;
  std::vector<float> contribution;
  std::vector<bool> shard_ran;  // this step's shards that held examples
  // Synchronized BatchNorm (TrainerOptions::sync_batch_norm, with a
  // training-mode BatchNormalization): the executors reduce the batch
  // statistics over the ranks, or over the shards, which then run at once
  // as threads of `shard_group`, shard k > 0 on shard_train[k - 1].  The
  // weight of each shard's (or this rank's) gradient terms: its loss weight.
  bool sync_bn = false;
  std::shared_ptr<ThreadGroup> shard_group;
  std::vector<std::unique_ptr<ThreadGroupMember>> shard_members;
  std::vector<std::unique_ptr<Executor>> shard_train;
  std::vector<float> sync_weight;
};

namespace {

// The inputs of a model other than labels, parameters, observed
// quantization parameters and running statistics.
std::vector<std::string> DataInputs(const Model& model,
                                    const std::map<std::string, Tensor>& params,
                                    const std::map<std::string, Tensor>& observed,
                                    const std::map<std::string, Tensor>& stats) {
  std::vector<std::string> names;
  for (const ValueInfo& v : model.inputs()) {
    if (v.name != kLabelsInput && params.count(v.name) == 0 && observed.count(v.name) == 0 &&
        stats.count(v.name) == 0) {
      names.push_back(v.name);
    }
  }
  return names;
}

absl::Status CheckLabels(const Tensor& labels, int64_t classes) {
  if (labels.dtype() != DataType::kInt64 || classes <= 0) return absl::OkStatus();
  const auto v = labels.values<int64_t>();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < 0 || v[i] >= classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label ", v[i], " at position ", i, " of the batch is outside [0, ",
          classes, ")"));
    }
  }
  return absl::OkStatus();
}

// Finds the FakeQuant scales and zero points among the parameters.
void FindQuantParams(const Model& training, const std::map<std::string, Tensor>& params,
                     std::set<std::string>* scales,
                     std::map<std::string, QuantRange>* zero_points) {
  for (const auto& n : ModelAccess::Proto(training).graph().node()) {
    if (n.op_type() != "FakeQuant" || n.input_size() < 3) continue;
    QuantRange range{0, 255};
    for (const auto& a : n.attribute()) {
      if (a.name() == "quant_min") range.quant_min = static_cast<int32_t>(a.i());
      if (a.name() == "quant_max") range.quant_max = static_cast<int32_t>(a.i());
    }
    if (params.count(n.input(1)) != 0) scales->insert(n.input(1));
    if (params.count(n.input(2)) != 0) (*zero_points)[n.input(2)] = range;
  }
}

// The inputs of a step: the batch and the parameters, read in place, except
// learned zero points, which the graphs see rounded (copies kept in
// *rounded), the observed scales and zero points (observe mode) and the
// running statistics.
std::map<std::string, const Tensor*> StepInputs(
    const std::map<std::string, Tensor>& batch, const std::map<std::string, Tensor>& params,
    const std::map<std::string, QuantRange>& zero_points,
    const std::map<std::string, Tensor>& observed, const std::map<std::string, Tensor>& stats,
    std::map<std::string, Tensor>* rounded) {
  std::map<std::string, const Tensor*> inputs;
  for (const auto& [name, value] : batch) inputs[name] = &value;
  for (const auto& [name, value] : params) inputs[name] = &value;
  for (const auto& [name, range] : zero_points) {
    Tensor& z = (*rounded)[name] = params.at(name);
    for (float& v : z.values<float>()) v = RoundZeroPoint(v, range);
    inputs[name] = &z;
  }
  for (const auto& [name, value] : observed) inputs.emplace(name, &value);
  for (const auto& [name, value] : stats) inputs.emplace(name, &value);
  return inputs;
}

// Whether the training model's loss sums over the examples (a ReduceSum or
// a loss op with reduction "sum" makes it, through Identity nodes) rather
// than averaging them.
bool LossIsSum(const Model& training) {
  const auto& graph = ModelAccess::Proto(training).graph();
  std::string value = kLossOutput;
  for (int hops = 0; hops < graph.node_size(); ++hops) {
    const onnx::NodeProto* producer = nullptr;
    for (const auto& n : graph.node()) {
      for (const auto& out : n.output()) {
        if (out == value) producer = &n;
      }
    }
    if (producer == nullptr) return false;
    if (producer->op_type() == "Identity" && producer->input_size() == 1) {
      value = producer->input(0);
      continue;
    }
    if (producer->op_type() == "ReduceSum") return true;
    for (const auto& a : producer->attribute()) {
      if (a.name() == "reduction") return a.s() == "sum";
    }
    return false;
  }
  return false;
}

// A batch's example count: the leading dimension of its labels (or of its
// first tensor).
int64_t BatchExamples(const std::map<std::string, Tensor>& batch) {
  auto it = batch.find(kLabelsInput);
  if (it == batch.end()) it = batch.begin();
  if (it == batch.end() || it->second.shape().empty()) return 1;
  return it->second.dim(0);
}

// Whether the training model's BatchNorm gradients take their batch means
// with ai.libqat BatchMean nodes (graphs built before them used ReduceMean,
// which synchronized BatchNorm cannot reduce over the ranks).
bool HasBatchMeans(const Model& training) {
  for (const auto& n : ModelAccess::Proto(training).graph().node()) {
    if (n.op_type() == "BatchMean" && n.domain() == "ai.libqat") return true;
  }
  return false;
}

// Synchronized BatchNorm's reducer over `collective`: the ranks' double
// sums, gathered exactly (AllgatherWords) and added in rank order.
// Statistics are summed as they are; gradient terms, each the gradient of
// its rank's own loss, are weighted as the ranks' gradients are (the rank's
// loss weight *weight, its examples for a mean loss) and unweighted after
// the sum, so that once the trainer weighs this rank's gradients they are
// the global batch's.
BatchReducer SyncBatchReducer(Collective* collective, const float* weight) {
  return [collective, weight](absl::Span<double> values,
                              BatchReduction kind) -> absl::Status {
    const bool gradient = kind == BatchReduction::kGradient;
    std::vector<uint64_t> words(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      const double v = gradient && i > 0 ? values[i] * *weight : values[i];
      std::memcpy(&words[i], &v, sizeof(double));
    }
    QAT_ASSIGN_OR_RETURN(const auto all, AllgatherWords(*collective, words));
    for (size_t i = 0; i < values.size(); ++i) {
      double sum = 0.0;
      for (const std::vector<uint64_t>& rank : all) {
        double v = 0.0;
        std::memcpy(&v, &rank[i], sizeof(double));
        sum += v;
      }
      values[i] = gradient && i > 0 ? sum / *weight : sum;
    }
    return absl::OkStatus();
  };
}

// The running statistics of the training model's BatchNormalizations: the
// initializers X, not trained, that it returns as X_next.
std::vector<std::string> RunningStatistics(const Model& training,
                                           const std::vector<std::string>& params) {
  const auto& graph = ModelAccess::Proto(training).graph();
  std::set<std::string> initializers;
  for (const auto& t : graph.initializer()) initializers.insert(t.name());
  const std::string suffix = passes::kRunningStatSuffix;
  std::vector<std::string> names;
  for (const auto& o : graph.output()) {
    if (o.name().size() <= suffix.size() ||
        o.name().compare(o.name().size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const std::string stat = o.name().substr(0, o.name().size() - suffix.size());
    if (initializers.count(stat) != 0 &&
        std::find(params.begin(), params.end(), stat) == params.end()) {
      names.push_back(stat);
    }
  }
  return names;
}

// Observe mode: `model` also returning the activations the observer reads
// (those that are not inputs already).
absl::StatusOr<Model> ReturningObserved(const Model& model,
                                        const training::QuantParamObserver& observer) {
  std::set<std::string> inputs;
  for (const ValueInfo& v : model.inputs()) inputs.insert(v.name);
  std::vector<std::string> seen;
  for (const std::string& x : observer.activation_names()) {
    if (inputs.count(x) == 0) seen.push_back(x);
  }
  return model.WithOutputs(seen);
}

// Rows [begin, end) of every tensor of `batch` (each [N, ...]) into *shard.
absl::Status SliceBatch(const std::map<std::string, Tensor>& batch, int64_t begin, int64_t end,
                        std::map<std::string, Tensor>* shard) {
  for (const auto& [name, whole] : batch) {
    if (whole.rank() == 0 || whole.dim(0) < end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch shards cut every input along its first axis at ", end, "; '", name,
          "' is ", ShapeToString(whole.shape())));
    }
    std::vector<int64_t> shape = whole.shape();
    const size_t row = whole.num_bytes() / static_cast<size_t>(shape[0]);
    shape[0] = end - begin;
    Tensor& part = (*shard)[name];
    part.Resize(whole.dtype(), std::move(shape));
    std::memcpy(part.raw_data(), static_cast<const char*>(whole.raw_data()) + begin * row,
                part.num_bytes());
  }
  return absl::OkStatus();
}

// `parts` (each [n_k, ...], the same trailing dimensions) stacked along
// the first axis: a value the batch's shards computed, for the observer.
Tensor StackRows(const std::vector<const Tensor*>& parts) {
  std::vector<int64_t> shape = parts[0]->shape();
  shape[0] = 0;
  for (const Tensor* p : parts) shape[0] += p->dim(0);
  Tensor all(parts[0]->dtype(), std::move(shape));
  char* at = static_cast<char*>(all.raw_data());
  for (const Tensor* p : parts) {
    std::memcpy(at, p->raw_data(), p->num_bytes());
    at += p->num_bytes();
  }
  return all;
}

// InvalidArgument unless `stored` holds `names`, in that order, with the
// shapes and types of `mine`.
absl::Status CheckStoredTensors(const std::string& what,
                                const std::vector<std::pair<std::string, Tensor>>& stored,
                                const std::vector<std::string>& names,
                                const std::map<std::string, Tensor>& mine) {
  if (stored.size() != names.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the checkpoint holds ", stored.size(), " ", what, "s, the model has ", names.size(),
        ": it comes from another model"));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& [name, value] = stored[i];
    const Tensor& expected = mine.at(names[i]);
    if (name != names[i] || value.shape() != expected.shape() ||
        value.dtype() != expected.dtype()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", what, " ", i, " is '", name, "' ", ShapeToString(value.shape()),
          ", the model expects '", names[i], "' ", ShapeToString(expected.shape()),
          ": it comes from another model"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> StepsPerEpoch(int64_t examples, int64_t batch_size) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1, got ", batch_size));
  }
  if (examples < 0) {
    return absl::InvalidArgumentError(absl::StrCat("example count must be >= 0, got ", examples));
  }
  // Not (examples + batch_size - 1) / batch_size, which overflows.
  return examples / batch_size + (examples % batch_size != 0 ? 1 : 0);
}

Trainer::Trainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const TrainingModels& models, const TrainerOptions& options) {
  QAT_RETURN_IF_ERROR(options.schedule.Validate());
  auto state = std::make_unique<State>();
  state->options = options;
  state->names = models.params;
  // Observe mode detaches the observed scales and zero points too, and
  // makes the training model return the activations they observe.
  std::vector<std::string> detached = models.params;
  if (models.observe_quant_params) {
    QAT_ASSIGN_OR_RETURN(state->observer,
                         training::QuantParamObserver::Create(
                             models.training, models.params,
                             options.observe.averaging_constant));
    state->quant_names = state->observer->quant_param_names();
    detached.insert(detached.end(), state->quant_names.begin(), state->quant_names.end());
  }
  state->stat_names = RunningStatistics(models.training, models.params);
  detached.insert(detached.end(), state->stat_names.begin(), state->stat_names.end());
  QAT_ASSIGN_OR_RETURN(training::DetachedParameters train,
                       training::DetachParameters(models.training, detached));
  QAT_ASSIGN_OR_RETURN(training::DetachedParameters eval,
                       training::DetachParameters(models.eval, detached));
  for (const std::string& name : state->quant_names) {
    state->quant[name] = std::move(train.values.at(name));
    train.values.erase(name);
  }
  for (const std::string& name : state->stat_names) {
    state->stats[name] = std::move(train.values.at(name));
    train.values.erase(name);
  }
  state->params = std::move(train.values);
  if (state->observer) {
    QAT_ASSIGN_OR_RETURN(train.model, ReturningObserved(train.model, *state->observer));
  }
  FindQuantParams(models.training, state->params, &state->scales, &state->zero_points);
  QAT_RETURN_IF_ERROR(CheckThreadCount(options.num_threads, "TrainerOptions::num_threads"));
  ExecutorOptions exec;
  exec.num_threads = options.num_threads;
  exec.seed = options.seed;
  const int ranks = options.collective ? options.collective->size() : 1;
  if (options.batch_shards < 1 || (ranks > 1 && options.batch_shards != 1 &&
                                   options.batch_shards != ranks)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainerOptions::batch_shards must be >= 1, and with ", ranks,
        " ranks 1 or ", ranks, " (each rank computes one shard); got ", options.batch_shards));
  }
  state->batch_shards = ranks > 1 ? 1 : options.batch_shards;
  state->loss_is_sum = LossIsSum(models.training);
  const bool training_bn = passes::HasTrainingBatchNorm(ModelAccess::Proto(models.training));
  const int parts = std::max(ranks, state->batch_shards);
  // Without synchronized statistics a shard's BatchNormalization would
  // normalize with the shard's own statistics: a different model from the
  // whole batch's, so batch shards, which promise the ranks' result in one
  // process, refuse it.  Ranks do train it, each with its own batch
  // statistics (the running statistics are averaged after each step).
  if (state->batch_shards > 1 && training_bn && !options.sync_batch_norm) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BatchNormalization in training mode computes its statistics over the batch, and ",
        state->batch_shards, " shards would each see only their shard: train with "
        "synchronized BatchNorm (sync_batch_norm, --sync-bn) or batch_shards 1"));
  }
  state->sync_bn = options.sync_batch_norm && training_bn && parts > 1;
  if (state->sync_bn && !HasBatchMeans(models.training)) {
    return absl::FailedPreconditionError(
        "synchronized BatchNorm needs a training model whose BatchNorm gradients use "
        "ai.libqat BatchMean nodes; this one was built by an older libqat: prepare it again");
  }
  ExecutorOptions train_exec = exec;
  if (state->sync_bn) {
    state->sync_weight.assign(static_cast<size_t>(parts), 1.0f);
    if (ranks > 1) {
      train_exec.batch_reducer =
          SyncBatchReducer(options.collective.get(), &state->sync_weight[0]);
    } else {
      state->shard_group = std::make_shared<ThreadGroup>(parts);
      for (int k = 0; k < parts; ++k) {
        state->shard_members.push_back(
            std::make_unique<ThreadGroupMember>(state->shard_group.get(), k));
        ExecutorOptions shard_exec = exec;
        shard_exec.batch_reducer =
            SyncBatchReducer(state->shard_members.back().get(), &state->sync_weight[k]);
        if (k == 0) {
          train_exec = shard_exec;
        } else {
          QAT_ASSIGN_OR_RETURN(std::unique_ptr<Executor> shard,
                               Executor::Create(train.model, shard_exec));
          state->shard_train.push_back(std::move(shard));
        }
      }
    }
  }
  QAT_ASSIGN_OR_RETURN(state->train, Executor::Create(train.model, train_exec));
  QAT_ASSIGN_OR_RETURN(state->eval, Executor::Create(eval.model, exec));
  if (options.freeze_bn_steps >= 0 && !state->stat_names.empty()) {
    QAT_ASSIGN_OR_RETURN(Model frozen, training::BuildFrozenBatchNormTraining(models));
    QAT_ASSIGN_OR_RETURN(training::DetachedParameters detached_frozen,
                         training::DetachParameters(frozen, detached));
    if (state->observer) {
      QAT_ASSIGN_OR_RETURN(detached_frozen.model,
                           ReturningObserved(detached_frozen.model, *state->observer));
    }
    QAT_ASSIGN_OR_RETURN(state->frozen_bn, Executor::Create(detached_frozen.model, exec));
  }
  QAT_ASSIGN_OR_RETURN(state->optimizer, Optimizer::Create(options.optimizer));
  state->progress.seed = options.seed;
  state->collective = options.collective;
  state->shard_batches.resize(static_cast<size_t>(state->batch_shards));
  state->shard_outputs.resize(static_cast<size_t>(state->batch_shards - 1));
  const std::vector<std::string> data = DataInputs(train.model, state->params, state->quant, state->stats);
  if (data.size() == 1) state->data_input = data[0];
  for (const ValueInfo& v : train.model.inputs()) {
    if (std::find(data.begin(), data.end(), v.name) != data.end()) state->data_inputs.push_back(v);
    if (v.name == kLabelsInput) state->needs_labels = true;
  }
  // Classification: int64 labels and logits [N, C, ...] with a static C.
  for (const ValueInfo& v : train.model.inputs()) {
    if (v.name == kLabelsInput) state->classification = v.dtype == DataType::kInt64;
  }
  const std::vector<ValueInfo> outs = eval.model.outputs();
  if (state->classification && outs.size() > 1 && outs[1].shape.size() >= 2) {
    state->num_classes = outs[1].shape[1];
  }
  return std::unique_ptr<Trainer>(new Trainer(std::move(state)));
}

const std::vector<std::string>& Trainer::param_names() const { return state_->names; }
const Tensor& Trainer::param(const std::string& name) const {
  return state_->params.at(name);
}
const TrainingProgress& Trainer::progress() const { return state_->progress; }
const Optimizer& Trainer::optimizer() const { return *state_->optimizer; }

absl::Status Trainer::SetSchedule(const LrSchedule& schedule) {
  QAT_RETURN_IF_ERROR(schedule.Validate());
  state_->options.schedule = schedule;
  return absl::OkStatus();
}

absl::StatusOr<float> Trainer::TrainStep(const std::map<std::string, Tensor>& batch) {
  return Step(&batch);
}

namespace {

// A shard's (or a rank's) part of a step's reduction, appended to *buffer:
// [examples, loss, every gradient], the loss and gradients multiplied by the
// examples for a mean loss.  No batch: zeros (a rank without examples).
absl::Status AppendContribution(const std::vector<std::string>& names,
                                const std::map<std::string, Tensor>& params, bool loss_is_sum,
                                const std::map<std::string, Tensor>* batch, float loss,
                                std::map<std::string, Tensor>* outputs,
                                std::vector<float>* buffer) {
  const int64_t examples = batch != nullptr ? BatchExamples(*batch) : 0;
  const float weight = loss_is_sum ? 1.0f : static_cast<float>(examples);
  buffer->assign({static_cast<float>(examples), batch != nullptr ? weight * loss : 0.0f});
  for (const std::string& name : names) {
    Tensor& g = (*outputs)[name + "_grad"];
    const Tensor& p = params.at(name);
    if (batch == nullptr) g = Tensor(p.dtype(), p.shape());  // zeros
    if (g.dtype() != DataType::kFloat32 || g.shape() != p.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data-parallel training reduces float gradients; '", name, "_grad' is ",
          ShapeToString(g.shape()), " for a parameter of ", ShapeToString(p.shape())));
    }
    for (float v : g.values<float>()) buffer->push_back(batch != nullptr ? weight * v : 0.0f);
  }
  return absl::OkStatus();
}

// The reduced [examples, loss, gradients] back into the gradients of
// *outputs; returns the global batch's loss.
float TakeReduced(const std::vector<std::string>& names, bool loss_is_sum,
                  const std::vector<float>& buffer, std::map<std::string, Tensor>* outputs) {
  const float total = loss_is_sum ? 1.0f : buffer[0];
  size_t at = 2;
  for (const std::string& name : names) {
    for (float& v : outputs->at(name + "_grad").values<float>()) v = buffer[at++] / total;
  }
  return buffer[1] / total;
}

}  // namespace

absl::Status Trainer::RunTrainingGraph(const std::map<std::string, Tensor>& batch,
                                       std::map<std::string, Tensor>* outputs, float* loss,
                                       int shard) {
  State& s = *state_;
  if (auto it = batch.find(kLabelsInput); it != batch.end()) {
    QAT_RETURN_IF_ERROR(CheckLabels(it->second, s.num_classes));
  }
  std::map<std::string, Tensor> rounded;
  const bool frozen = s.frozen_bn != nullptr && s.progress.global_step >= s.options.freeze_bn_steps;
  Executor* model = frozen ? s.frozen_bn.get() : s.train.get();
  if (shard > 0 && !frozen) model = s.shard_train[shard - 1].get();
  QAT_RETURN_IF_ERROR(
      model->Run(StepInputs(batch, s.params, s.zero_points, s.quant, s.stats, &rounded), outputs));
  *loss = outputs->at(kLossOutput).values<float>()[0];
  return absl::OkStatus();
}

absl::StatusOr<float> Trainer::Step(const std::map<std::string, Tensor>* batch) {
  State& s = *state_;
  std::map<std::string, Tensor>& outputs = s.outputs;
  const bool frozen = s.frozen_bn != nullptr && s.progress.global_step >= s.options.freeze_bn_steps;
  float loss = 0.0f;
  if (s.sync_bn && !frozen && (batch == nullptr || BatchExamples(*batch) < s.batch_shards)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synchronized BatchNorm needs examples on every rank and shard; step ",
        s.progress.global_step + 1, " gives this ", s.collective ? "rank" : "process",
        batch == nullptr ? " none" : absl::StrCat(BatchExamples(*batch), " for ",
                                                   s.batch_shards, " shards")));
  }
  if (s.batch_shards > 1 && batch != nullptr) {
    // Shard by shard, summed in shard order as the ranks' buffers are
    // (((b0 + b1) + b2) + ..., Collective::Allreduce): the same floats, the
    // same additions, so the same bits as batch_shards ranks.
    const int64_t n = BatchExamples(*batch);
    s.shard_ran.assign(static_cast<size_t>(s.batch_shards), false);
    std::vector<float> shard_loss(static_cast<size_t>(s.batch_shards), 0.0f);
    auto output_of = [&](int k) { return k == 0 ? &outputs : &s.shard_outputs[k - 1]; };
    for (int k = 0; k < s.batch_shards; ++k) {
      const Shard shard = ShardOf(n, k, s.batch_shards);
      s.shard_ran[k] = shard.end != shard.begin;
      if (s.shard_ran[k]) {
        QAT_RETURN_IF_ERROR(SliceBatch(*batch, shard.begin, shard.end, &s.shard_batches[k]));
      }
    }
    if (s.sync_bn && !frozen) {
      // The shards exchange their batch statistics mid-graph, so they run
      // at once, each on its executor, as ranks do.
      for (int k = 0; k < s.batch_shards; ++k) {
        s.sync_weight[k] =
            s.loss_is_sum ? 1.0f : static_cast<float>(BatchExamples(s.shard_batches[k]));
      }
      s.shard_group->Reset();
      std::vector<absl::Status> status(static_cast<size_t>(s.batch_shards));
      auto run = [&](int k) {
        status[k] = RunTrainingGraph(s.shard_batches[k], output_of(k), &shard_loss[k], k);
        if (!status[k].ok()) s.shard_group->Abort();
      };
      std::vector<std::thread> threads;
      for (int k = 1; k < s.batch_shards; ++k) threads.emplace_back(run, k);
      run(0);
      for (std::thread& t : threads) t.join();
      // The first failure, not the others' Cancelled that it caused.
      for (const absl::Status& st : status) {
        if (!st.ok() && !absl::IsCancelled(st)) return st;
      }
      for (const absl::Status& st : status) QAT_RETURN_IF_ERROR(st);
    } else {
      for (int k = 0; k < s.batch_shards; ++k) {
        if (s.shard_ran[k]) {
          QAT_RETURN_IF_ERROR(
              RunTrainingGraph(s.shard_batches[k], output_of(k), &shard_loss[k]));
        }
      }
    }
    for (int k = 0; k < s.batch_shards; ++k) {
      std::vector<float>& mine = k == 0 ? s.reduced : s.contribution;
      QAT_RETURN_IF_ERROR(AppendContribution(s.names, s.params, s.loss_is_sum,
                                             s.shard_ran[k] ? &s.shard_batches[k] : nullptr,
                                             shard_loss[k], output_of(k), &mine));
      if (k > 0) {
        for (size_t i = 0; i < mine.size(); ++i) s.reduced[i] += mine[i];
      }
    }
    loss = TakeReduced(s.names, s.loss_is_sum, s.reduced, &outputs);
  } else {
    if (s.sync_bn && batch != nullptr) {
      s.sync_weight[0] = s.loss_is_sum ? 1.0f : static_cast<float>(BatchExamples(*batch));
    }
    if (batch != nullptr) QAT_RETURN_IF_ERROR(RunTrainingGraph(*batch, &outputs, &loss));
    if (s.collective) {
      // One buffer: [examples, loss, every gradient], summed in rank order;
      // a mean loss weighs each shard by its examples.  A non-finite loss on
      // any rank makes the sum non-finite, so every rank stops together.
      QAT_RETURN_IF_ERROR(AppendContribution(s.names, s.params, s.loss_is_sum, batch, loss,
                                             &outputs, &s.reduced));
      QAT_RETURN_IF_ERROR(s.collective->Allreduce(absl::MakeSpan(s.reduced), ReduceOp::kSum));
      loss = TakeReduced(s.names, s.loss_is_sum, s.reduced, &outputs);
    }
  }
  if (!std::isfinite(loss)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the loss is ", loss, " at step ", s.progress.global_step + 1,
        "; the parameters were not updated (check the data for NaN or Inf)"));
  }
  std::vector<Tensor*> params, grads;
  for (const std::string& name : s.names) {
    params.push_back(&s.params.at(name));
    grads.push_back(&outputs.at(name + "_grad"));
  }
  const float lr = s.options.schedule.At(s.progress.global_step);
  QAT_RETURN_IF_ERROR(s.optimizer->Step(lr, s.names, params, grads).status());
  // LSQ keeps scales positive (PyTorch clamps them to 1e-8 the same way).
  for (const std::string& name : s.scales) {
    for (float& v : s.params.at(name).values<float>()) v = std::max(v, 1e-8f);
  }
  ++s.progress.global_step;
  // BatchNormalization: the running statistics this step computed.  Data-
  // parallel ranks average theirs, weighted by their examples, so that they
  // keep one model (the statistics scale the folded weights); synchronized,
  // they computed the same ones.
  if (!frozen && !s.stat_names.empty()) {
    if (batch != nullptr) {
      for (const std::string& name : s.stat_names) {
        s.stats[name] = outputs.at(name + passes::kRunningStatSuffix);
      }
    }
    if (s.collective && !s.sync_bn) {
      const float examples = batch != nullptr ? static_cast<float>(BatchExamples(*batch)) : 0.0f;
      std::vector<float>& buffer = s.reduced;
      buffer.assign({examples});
      for (const std::string& name : s.stat_names) {
        for (float v : s.stats.at(name).values<float>()) buffer.push_back(examples * v);
      }
      QAT_RETURN_IF_ERROR(s.collective->Allreduce(absl::MakeSpan(buffer), ReduceOp::kSum));
      if (buffer[0] > 0) {
        size_t at = 1;
        for (const std::string& name : s.stat_names) {
          for (float& v : s.stats.at(name).values<float>()) v = buffer[at++] / buffer[0];
        }
      }
    }
  }
  // Observe mode: the activations this step saw, the weights it produced.
  const int64_t freeze = s.options.observe.freeze_after_steps;
  if (s.observer && (freeze < 0 || s.observed_steps < freeze)) {
    // A rank without examples saw no activations: empty ones.
    static const Tensor* const kNothing = new Tensor(DataType::kFloat32, {0});
    std::map<std::string, Tensor> stacked;
    auto value_of = [&](const std::string& name) -> const Tensor* {
      if (auto it = s.params.find(name); it != s.params.end()) return &it->second;
      if (batch == nullptr) return kNothing;
      if (s.batch_shards > 1) {
        // The whole batch's value, from its shards' (the batch's own inputs
        // are whole already).
        auto whole = stacked.find(name);
        if (whole != stacked.end()) return &whole->second;
        if (auto it = batch->find(name); it != batch->end()) return &it->second;
        std::vector<const Tensor*> parts;
        for (int k = 0; k < s.batch_shards; ++k) {
          if (!s.shard_ran[k]) continue;  // an empty shard saw nothing, as an idle rank
          const auto& out = k == 0 ? outputs : s.shard_outputs[k - 1];
          auto it = out.find(name);
          if (it != out.end() && it->second.rank() > 0) parts.push_back(&it->second);
        }
        if (parts.empty()) return kNothing;
        return &(stacked[name] = StackRows(parts));
      }
      using Values = const std::map<std::string, Tensor>*;
      for (Values m : {Values{&outputs}, Values{batch}}) {
        if (auto it = m->find(name); it != m->end()) return &it->second;
      }
      return nullptr;
    };
    training::QuantParamObserver::RangeReducer reduce;
    if (s.collective) {
      reduce = [&](absl::Span<float> mins, absl::Span<float> maxs) {
        QAT_RETURN_IF_ERROR(s.collective->Allreduce(mins, ReduceOp::kMin));
        return s.collective->Allreduce(maxs, ReduceOp::kMax);
      };
    }
    absl::Status observed = s.observer->Update(value_of, &s.quant, reduce);
    if (!observed.ok()) {
      return absl::Status(observed.code(),
                          absl::StrCat("step ", s.progress.global_step,
                                       " (the parameters were updated, the quantization "
                                       "parameters were not): ", observed.message()));
    }
    ++s.observed_steps;
  }
  return loss;
}

absl::StatusOr<std::map<std::string, Tensor>> Trainer::EvalStep(
    const std::map<std::string, Tensor>& batch) {
  std::map<std::string, Tensor> rounded, outputs;
  QAT_RETURN_IF_ERROR(state_->eval->Run(
      StepInputs(batch, state_->params, state_->zero_points, state_->quant, state_->stats,
                 &rounded),
      &outputs));
  return outputs;
}

namespace {

// Labels outside the classifier's range, named by the data's file.
absl::Status CheckBatchLabels(const Dataset& data, const std::map<std::string, Tensor>& batch,
                              int64_t classes) {
  auto it = batch.find(kLabelsInput);
  if (it == batch.end()) return absl::OkStatus();
  absl::Status s = CheckLabels(it->second, classes);
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("'", data.source(), "': ", s.message()));
}

}  // namespace

absl::Status Trainer::TrainEpochs(const Dataset& data, int64_t epochs,
                                  int64_t batch_size, const StepCallback& on_step) {
  State& s = *state_;
  if (batch_size <= 0) return absl::InvalidArgumentError("batch size must be > 0");
  if (s.data_inputs.empty()) {
    return absl::FailedPreconditionError("TrainEpochs needs a model with a data input");
  }
  if (data.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset '", data.source(), "' is empty"));
  }
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(s.data_inputs, s.needs_labels));
  QAT_ASSIGN_OR_RETURN(const int64_t steps, StepsPerEpoch(data.size(), batch_size));
  const int ranks = s.collective ? s.collective->size() : 1;
  const int rank = s.collective ? s.collective->rank() : 0;
  if (batch_size % ranks != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the global batch of ", batch_size, " examples does not split evenly over ", ranks,
        " ranks: choose a batch size that divides by ", ranks));
  }
  if (batch_size % s.batch_shards != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the batch of ", batch_size, " examples does not split evenly into ", s.batch_shards,
        " shards: choose a batch size that divides by ", s.batch_shards));
  }
  if (s.sync_bn) {
    // Every rank exchanges batch statistics mid-graph: one without examples
    // would leave the others waiting, so all refuse before the first step.
    const int parts = std::max(ranks, s.batch_shards);
    const int64_t last = data.size() % batch_size;
    if (last != 0 && last < parts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "synchronized BatchNorm needs examples on every one of the ", parts,
          " ranks or shards, and the last batch of an epoch of ", data.size(), " holds ", last,
          ": choose a batch size or a --limit that leaves at least ", parts));
    }
  }
  // The order of an epoch, made when its first batch is asked for.
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  auto gather = [&](int64_t epoch, int64_t step, std::map<std::string, Tensor>* batch) {
    if (epoch != order_epoch) {
      order = EpochOrder(data.size(), s.progress.seed, epoch, s.options.shuffle);
      order_epoch = epoch;
    }
    const int64_t begin = step * batch_size;
    const int64_t end = std::min(data.size(), begin + batch_size);
    // This rank's shard of the global batch (all of it in one process).
    const Shard shard = ShardOf(end - begin, rank, ranks);
    QAT_RETURN_IF_ERROR(data.Gather(
        absl::MakeConstSpan(order).subspan(begin + shard.begin, shard.end - shard.begin),
        binding, batch));
    return CheckBatchLabels(data, *batch, s.num_classes);
  };
  return RunEpochs(gather, steps, epochs, on_step);
}

absl::Status Trainer::TrainEpochs(const BatchSource& next, int64_t steps, int64_t epochs,
                                  const StepCallback& on_step) {
  State& s = *state_;
  if (steps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("steps per epoch must be >= 1, not ", steps));
  }
  if (s.data_input.empty()) {
    return absl::FailedPreconditionError(
        "training on batches of features and labels needs a model with exactly one data input");
  }
  auto features_and_labels = [&](int64_t epoch, int64_t step,
                                 std::map<std::string, Tensor>* batch) {
    Tensor& x = (*batch)[s.data_input];
    QAT_RETURN_IF_ERROR(next(epoch, step, &x, &(*batch)[kLabelsInput]));
    if (x.num_elements() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the batch of step ", step, " of epoch ", epoch, " is empty"));
    }
    return absl::OkStatus();
  };
  return RunEpochs(features_and_labels, steps, epochs, on_step);
}

absl::Status Trainer::RunEpochs(const NamedBatchSource& next, int64_t steps, int64_t epochs,
                                const StepCallback& on_step) {
  State& s = *state_;
  std::map<std::string, Tensor> batch;
  while (s.progress.epoch < epochs) {
    while (s.progress.step_in_epoch < steps) {
      QAT_RETURN_IF_ERROR(next(s.progress.epoch, s.progress.step_in_epoch, &batch));
      const float lr = s.options.schedule.At(s.progress.global_step);
      float loss = 0.0f;
      // A rank whose shard of a short last batch is empty still joins the
      // step's reductions.
      if (!batch.empty() && BatchExamples(batch) > 0) {
        QAT_ASSIGN_OR_RETURN(loss, Step(&batch));
      } else {
        QAT_ASSIGN_OR_RETURN(loss, Step(nullptr));
      }
      ++s.progress.step_in_epoch;
      if (on_step) {
        QAT_RETURN_IF_ERROR(on_step({s.progress.epoch, s.progress.step_in_epoch - 1,
                                     steps, s.progress.global_step, loss, lr}));
      }
    }
    ++s.progress.epoch;
    s.progress.step_in_epoch = 0;
  }
  return absl::OkStatus();
}

absl::StatusOr<EvalMetrics> Trainer::Evaluate(const Dataset& data, int64_t batch_size) {
  State& s = *state_;
  if (batch_size <= 0) return absl::InvalidArgumentError("batch size must be > 0");
  if (s.data_inputs.empty()) {
    return absl::FailedPreconditionError("Evaluate needs a model with a data input");
  }
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(s.data_inputs, s.needs_labels));
  EvalMetrics m;
  double loss_sum = 0.0;
  int64_t correct = 0;
  const std::vector<int64_t> order = EpochOrder(data.size(), 0, 0, false);
  const std::vector<ValueInfo> outs = s.eval->outputs();
  const std::string logits = outs.size() > 1 ? outs[1].name : "";
  std::map<std::string, Tensor> batch;
  // Data-parallel: each rank evaluates a contiguous share of the batches
  // (the batches of one process, so the same per-batch results).
  QAT_ASSIGN_OR_RETURN(const int64_t batches, StepsPerEpoch(data.size(), batch_size));
  const Shard mine = s.collective ? ShardOf(batches, s.collective->rank(), s.collective->size())
                                  : Shard{0, batches};
  for (int64_t b = mine.begin; b < mine.end; ++b) {
    const int64_t begin = b * batch_size;
    const int64_t end = std::min(data.size(), begin + batch_size);
    QAT_RETURN_IF_ERROR(
        data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), binding, &batch));
    if (s.classification) QAT_RETURN_IF_ERROR(CheckBatchLabels(data, batch, s.num_classes));
    QAT_ASSIGN_OR_RETURN(auto out, EvalStep(batch));
    const int64_t n = end - begin;
    // The eval loss is a mean over the batch (or a sum); weigh by examples.
    loss_sum += static_cast<double>(out.at(kLossOutput).values<float>()[0]) * n;
    if (s.classification && !logits.empty()) {
      const Tensor& z = out.at(logits);
      correct += CountCorrect(z.data<float>(), n, z.dim(1), batch.at(kLabelsInput).data<int64_t>());
    }
  }
  if (s.collective) {
    // The ranks' sums, exactly (a double's bits and a count as words),
    // added in rank order: the correct count is one process's, the loss sum
    // associates otherwise in the last bits of a double.
    uint64_t words[2] = {0, static_cast<uint64_t>(correct)};
    std::memcpy(&words[0], &loss_sum, sizeof(double));
    QAT_ASSIGN_OR_RETURN(const auto all, AllgatherWords(*s.collective, words));
    loss_sum = 0.0;
    correct = 0;
    for (const std::vector<uint64_t>& w : all) {
      double part = 0.0;
      std::memcpy(&part, &w[0], sizeof(double));
      loss_sum += part;
      correct += static_cast<int64_t>(w[1]);
    }
  }
  m.examples = data.size();
  m.loss = data.size() > 0 ? loss_sum / data.size() : 0.0;
  if (s.classification && !logits.empty() && data.size() > 0) {
    m.accuracy = static_cast<double>(correct) / data.size();
  }
  return m;
}

CheckpointRefs Trainer::Refs() const {
  const State& s = *state_;
  auto refs = [](const std::vector<std::string>& names, const std::map<std::string, Tensor>& in) {
    CheckpointRefs::Tensors out;
    for (const std::string& name : names) out.emplace_back(&name, &in.at(name));
    return out;
  };
  CheckpointRefs c;
  c.parameters = refs(s.names, s.params);
  c.optimizer = OptimizerKindName(s.optimizer->options().kind);
  c.optimizer_step = s.optimizer->step_count();
  for (const auto& [name, t] : s.optimizer->state()) c.optimizer_state.emplace_back(&name, &t);
  c.progress = s.progress;
  c.running_stats = refs(s.stat_names, s.stats);
  if (s.observer) {
    c.quant_params = refs(s.quant_names, s.quant);
    for (const auto& [name, t] : s.observer->state()) c.observer_state.emplace_back(&name, &t);
    c.observed_steps = s.observed_steps;
  }
  return c;
}

Checkpoint Trainer::MakeCheckpoint() const { return CopyOf(Refs()); }

absl::Status Trainer::SaveCheckpoint(const std::string& path, const TrainingProgress& progress,
                                     const std::map<std::string, std::string>& metadata) const {
  CheckpointRefs c = Refs();
  c.progress = progress;
  c.metadata = &metadata;
  return SaveCheckpointRefs(path, c);
}

absl::Status Trainer::RestoreCheckpoint(const Checkpoint& c) {
  State& s = *state_;
  QAT_RETURN_IF_ERROR(CheckStoredTensors("parameter", c.parameters, s.names, s.params));
  if (!c.optimizer.empty() &&
      c.optimizer != OptimizerKindName(s.optimizer->options().kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the checkpoint was trained with ", c.optimizer, ", this run uses ",
        OptimizerKindName(s.optimizer->options().kind)));
  }
  if (!s.observer && (!c.quant_params.empty() || !c.observer_state.empty())) {
    return absl::InvalidArgumentError(
        "the checkpoint holds observed quantization parameters, but this model does not "
        "observe them (prepare it with observe_quant_params / --quant-params observe)");
  }
  if (!c.quant_params.empty()) {
    QAT_RETURN_IF_ERROR(CheckStoredTensors("quantization parameter", c.quant_params,
                                           s.quant_names, s.quant));
  }
  // A checkpoint from before running statistics were kept (format 1-2)
  // holds none: the model's own values stay.
  if (!c.running_stats.empty()) {
    QAT_RETURN_IF_ERROR(
        CheckStoredTensors("running statistic", c.running_stats, s.stat_names, s.stats));
  }
  std::optional<training::QuantParamObserver> observer = s.observer;
  if (observer) QAT_RETURN_IF_ERROR(observer->RestoreState(c.observer_state));
  QAT_RETURN_IF_ERROR(s.optimizer->Restore(c.optimizer_step, c.optimizer_state));
  s.observer = std::move(observer);
  for (const auto& [name, value] : c.parameters) s.params[name] = value;
  for (const auto& [name, value] : c.quant_params) s.quant[name] = value;
  for (const auto& [name, value] : c.running_stats) s.stats[name] = value;
  s.observed_steps = c.observed_steps;
  s.progress = c.progress;
  return absl::OkStatus();
}

}  // namespace qat
