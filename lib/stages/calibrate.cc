#include "qat/calibrate.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/catch_exceptions.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_index.h"
#include "qat/executor.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "qat/thread_pool.h"
#include "graph/pass_pipeline.h"
#include "passes/fold_batch_norm.h"
#include "passes/inline_control_flow.h"
#include "passes/insert_qdq.h"
#include "passes/node_selection.h"

namespace qat {
namespace {

// Observer settings that search for a `bits`-wide grid `range`: unchanged
// at 8 bits; below, MSE measures on `range` and entropy assumes
// 2^(bits - 1) levels on |x|.
ObserverOptions ForBits(ObserverOptions o, int bits, QuantRange range) {
  if (bits >= 8) return o;
  o.mse_quant_range = range;
  o.num_quantized_bins = 1 << (bits - 1);
  return o;
}

// The activation observers' options: the method's, per tensor.
ObserverOptions ActivationObserverOptions(const CalibrateOptions& options) {
  ObserverOptions act = ForBits(options.observer, options.activation_bits,
                                QuantRangeForBits(options.activation_type == QuantType::kInt8,
                                                  options.activation_bits,
                                                  options.symmetric_activations, false,
                                                  options.activation_range));
  act.method = options.method;
  act.axis.reset();
  act.symmetric = options.symmetric_activations;
  return act;
}

}  // namespace

struct Calibrator::State {
  CalibrateOptions options;
  onnx::GraphProto graph;  // the original model's graph (for the weights)
  std::vector<std::string> activations, weights;
  std::map<std::string, int64_t> weight_axes;
  std::string input;  // the single data input; empty for a multi-input model
  std::vector<ValueInfo> inputs;
  std::unique_ptr<Executor> executor;
  std::map<std::string, std::unique_ptr<Observer>> observers;
  // Activations that are not float32, which have no observed range and no
  // entry; every other observer's error is reported, never skipped.
  std::set<std::string> not_float;
  int64_t samples = 0;
};

Calibrator::Calibrator(std::unique_ptr<State> state) : state_(std::move(state)) {}
Calibrator::~Calibrator() = default;
int64_t Calibrator::samples() const { return state_->samples; }

absl::StatusOr<std::unique_ptr<Calibrator>> Calibrator::Create(
    const Model& given, const CalibrateOptions& options) {
  QAT_RETURN_IF_ERROR(CheckThreadCount(options.num_threads, "CalibrateOptions::num_threads"));
  QAT_RETURN_IF_ERROR(ValidateQuantBits(options.activation_bits, "activation bits"));
  QAT_RETURN_IF_ERROR(ValidateQuantBits(options.weight_bits, "weight bits"));
  // The graph is observed as quantize will quantize it: If and Loop fixed
  // by constants are inlined and inference BatchNormalizations folded into
  // the layer before them (the same passes on the same graph, so the same
  // names), so that the ops inside the branches get entries and a folded
  // layer's output its post-normalization range.
  std::optional<Model> owned;
  const onnx::GraphProto& given_graph = ModelAccess::Proto(given).graph();
  const bool has_batch_norm =
      std::any_of(given_graph.node().begin(), given_graph.node().end(),
                  [](const onnx::NodeProto& n) { return n.op_type() == "BatchNormalization"; });
  if (has_batch_norm ||
      std::any_of(given_graph.node().begin(), given_graph.node().end(), graph::HasSubgraph)) {
    ArenaModelProto proto = ModelAccess::CopyProto(given);
    passes::PassPipeline pipeline;
    pipeline.Add(std::make_unique<passes::InlineControlFlowPass>());
    pipeline.Add(std::make_unique<passes::FoldBatchNormPass>());
    QAT_ASSIGN_OR_RETURN(const bool changed, pipeline.Run(proto.get()));
    if (changed) {
      QAT_ASSIGN_OR_RETURN(owned,
                           ModelAccess::FromTransformedProto(std::move(proto), given.source()));
    }
  }
  const Model& model = owned ? *owned : given;
  auto s = std::make_unique<State>();
  s->options = options;
  s->graph = ModelAccess::Proto(model).graph();
  QAT_ASSIGN_OR_RETURN(quantization::NodeSelection selection,
                       quantization::NodeSelection::Create(s->graph, options.op_types,
                                                           options.include_nodes,
                                                           options.exclude_nodes));
  quantization::NodeSelection::Tensors tensors = selection.Collect(s->graph);
  s->activations = std::move(tensors.activations);
  s->weights = std::move(tensors.weights);
  // A weight that folding made (W·γ/σ) is not in the model that quantize
  // gets: quantize takes its grid from the folded values themselves.
  if (owned.has_value()) {
    const graph::GraphIndex original(given_graph);
    s->weights.erase(std::remove_if(s->weights.begin(), s->weights.end(),
                                    [&](const std::string& w) {
                                      return !original.IsInitializer(w);
                                    }),
                     s->weights.end());
  }
  for (const auto& n : s->graph.node()) {
    if (!selection.Selects(n) || n.input_size() < 2) continue;
    bool trans_b = false;
    for (const auto& a : n.attribute()) trans_b |= a.name() == "transB" && a.i() != 0;
    s->weight_axes.emplace(n.input(1), WeightChannelAxis(n.op_type(), trans_b));
  }
  const std::vector<ValueInfo> inputs = model.inputs();
  if (inputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration feeds data inputs, but '", model.source(), "' has none"));
  }
  if (inputs.size() == 1) s->input = inputs[0].name;
  s->inputs = inputs;
  // The observed activations as graph outputs, so that a run returns them.
  QAT_ASSIGN_OR_RETURN(Model exposed, model.WithOutputs(s->activations));
  ExecutorOptions exec;
  exec.num_threads = options.num_threads;
  QAT_ASSIGN_OR_RETURN(s->executor, Executor::Create(exposed, exec));
  const ObserverOptions act = ActivationObserverOptions(options);
  for (const std::string& t : s->activations) {
    QAT_ASSIGN_OR_RETURN(s->observers[t], MakeObserver(act));
  }
  return std::unique_ptr<Calibrator>(new Calibrator(std::move(s)));
}

absl::Status Calibrator::Observe(const Tensor& batch) {
  if (state_->input.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model has ", state_->inputs.size(), " data inputs: observe a batch of named inputs"));
  }
  return Observe({{state_->input, batch}});
}

absl::Status Calibrator::Observe(const std::map<std::string, Tensor>& batch) {
  State& s = *state_;
  if (batch.empty()) return absl::InvalidArgumentError("a calibration batch needs its inputs");
  QAT_ASSIGN_OR_RETURN(auto out, s.executor->Run(batch));
  const Tensor& any = batch.begin()->second;
  const int64_t first = s.samples, last = s.samples + (any.rank() > 0 ? any.dim(0) : 1);
  for (const std::string& t : s.activations) {
    const Tensor& v = out.at(t);
    if (v.dtype() != DataType::kFloat32) {
      s.not_float.insert(t);
      continue;
    }
    absl::Status status = s.observers.at(t)->Observe(v.values<float>());
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("tensor '", t, "' in samples [", first,
                                                      ", ", last, "): ", status.message()));
    }
  }
  s.samples = last;
  return absl::OkStatus();
}

namespace {

// Data-parallel: every activation observer (and the sample count) becomes
// the merge, in rank order, of the ranks' observers.
absl::Status MergeRanks(Collective& collective, const CalibrateOptions& options,
                        const std::vector<std::string>& activations,
                        std::map<std::string, std::unique_ptr<Observer>>* observers,
                        int64_t* samples) {
  std::vector<uint64_t> words = {static_cast<uint64_t>(*samples)};
  for (const std::string& t : activations) {
    QAT_ASSIGN_OR_RETURN(std::vector<uint64_t> state, observers->at(t)->SaveState());
    words.push_back(state.size());
    words.insert(words.end(), state.begin(), state.end());
  }
  QAT_ASSIGN_OR_RETURN(auto ranks, AllgatherWords(collective, words));
  const ObserverOptions act = ActivationObserverOptions(options);
  std::map<std::string, std::unique_ptr<Observer>> merged;
  int64_t total = 0;
  for (const std::vector<uint64_t>& rank : ranks) {
    absl::Span<const uint64_t> rest(rank);
    total += static_cast<int64_t>(rest[0]);
    rest.remove_prefix(1);
    for (const std::string& t : activations) {
      const uint64_t n = rest.empty() ? 0 : rest[0];
      if (rest.empty() || n > rest.size() - 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("the ranks' observers of '", t, "' do not match"));
      }
      QAT_ASSIGN_OR_RETURN(auto observer, Observer::FromState(act, rest.subspan(1, n)));
      rest.remove_prefix(1 + n);
      if (merged.count(t) == 0) {
        merged[t] = std::move(observer);
      } else {
        QAT_RETURN_IF_ERROR(merged[t]->Merge(*observer));
      }
    }
  }
  *observers = std::move(merged);
  *samples = total;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CalibrationTable> Calibrator::Finish() {
  State& s = *state_;
  const CalibrateOptions& options = s.options;
  if (options.collective) {
    QAT_RETURN_IF_ERROR(MergeRanks(*options.collective, options, s.activations, &s.observers,
                                   &s.samples));
  }
  if (s.samples == 0) {
    return absl::FailedPreconditionError(
        "calibration needs at least one sample; no batch was observed");
  }
  CalibrationTable table;
  for (const std::string& t : s.activations) {
    if (s.not_float.count(t) != 0) continue;
    // The same error for every method: a range that the search cannot
    // quantize (MSE's candidates) fails as minmax's entry does.
    absl::StatusOr<CalibrationEntry> e = [&]() -> absl::StatusOr<CalibrationEntry> {
      QAT_ASSIGN_OR_RETURN(auto ranges, s.observers.at(t)->Ranges());
      return MakeCalibrationEntry(TensorRole::kActivation, options.activation_type,
                                  options.activation_bits, options.activation_range,
                                  options.method, options.symmetric_activations, false,
                                  std::nullopt, ranges);
    }();
    if (!e.ok()) {
      return absl::Status(e.status().code(),
                          absl::StrCat("tensor '", t, "': ", e.status().message()));
    }
    QAT_RETURN_IF_ERROR(table.Set(t, *std::move(e)));
  }
  // Weights: observed once from their values with the same method.
  const graph::GraphIndex index(s.graph);
  for (const std::string& w : s.weights) {
    QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*index.FindInitializer(w)));
    if (value.dtype() != DataType::kFloat32) continue;
    const QuantRange weight_range =
        QuantRangeForBits(true, options.weight_bits, true, false, QuantRangeMode::kAuto);
    ObserverOptions wo = ForBits(options.observer, options.weight_bits, weight_range);
    const CalibrationMethod weight_method = passes::UsesMseWeightClip(options.weight_bits)
                                                ? CalibrationMethod::kMse
                                                : options.method;
    wo.method = weight_method;
    wo.symmetric = true;
    std::optional<int64_t> axis;
    auto it = s.weight_axes.find(w);
    if (options.per_channel_weights && it != s.weight_axes.end() && it->second >= 0 &&
        it->second < value.rank()) {
      axis = it->second;
    }
    wo.axis = axis;
    QAT_ASSIGN_OR_RETURN(auto observer, MakeObserver(wo));
    QAT_RETURN_IF_ERROR(observer->Observe(value.shape(), value.values<float>()));
    QAT_ASSIGN_OR_RETURN(auto ranges, observer->Ranges());
    QAT_ASSIGN_OR_RETURN(CalibrationEntry e,
                         MakeCalibrationEntry(TensorRole::kWeight, QuantType::kInt8,
                                              options.weight_bits, QuantRangeMode::kAuto,
                                              weight_method, true, false, axis, ranges));
    QAT_RETURN_IF_ERROR(table.Set(w, std::move(e)));
  }
  return table;
}

namespace {

// Exporters often fix the batch at 1.  When the one data input has a static
// batch of 1 and the batches are larger, the model is calibrated with that
// dimension (and the outputs' batch of 1) made symbolic; nullopt when the
// relaxed model does not load (its graph fixes the batch inside).
absl::StatusOr<std::optional<Model>> WithSymbolicBatch(const Model& model) {
  const std::vector<ValueInfo> inputs = model.inputs();
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  auto relax = [](onnx::ValueInfoProto& v) {
    if (!v.type().tensor_type().has_shape()) return;
    auto* shape = v.mutable_type()->mutable_tensor_type()->mutable_shape();
    if (shape->dim_size() > 0 && shape->dim(0).has_dim_value() && shape->dim(0).dim_value() == 1) {
      shape->mutable_dim(0)->set_dim_param("batch");
    }
  };
  for (auto& v : *proto->mutable_graph()->mutable_input()) {
    if (v.name() == inputs[0].name) relax(v);
  }
  for (auto& v : *proto->mutable_graph()->mutable_output()) relax(v);
  absl::StatusOr<Model> relaxed =
      ModelAccess::FromTransformedProto(std::move(proto), model.source());
  if (!relaxed.ok()) return std::optional<Model>();  // a graph that fixes the batch inside
  return std::optional<Model>(*std::move(relaxed));
}

absl::StatusOr<CalibrationTable> CalibrateUnguarded(const Model& model, const Dataset& data,
                                                    const CalibrateOptions& options) {
  if (options.batch_size <= 0) return absl::InvalidArgumentError("batch size must be > 0");
  const int64_t samples = options.max_samples > 0
                              ? std::min(options.max_samples, data.size())
                              : data.size();
  if (samples == 0) {
    return absl::InvalidArgumentError("calibration needs at least one sample; the dataset is empty");
  }
  std::optional<Model> relaxed;
  const std::vector<ValueInfo> inputs = model.inputs();
  const bool batch_of_one = std::min(samples, options.batch_size) > 1 && inputs.size() == 1 &&
                            !inputs[0].shape.empty() && inputs[0].shape[0] == 1;
  if (batch_of_one) {
    QAT_ASSIGN_OR_RETURN(relaxed, WithSymbolicBatch(model));
  }
  QAT_ASSIGN_OR_RETURN(auto calibrator,
                       Calibrator::Create(relaxed ? *relaxed : model, options));
  const std::vector<int64_t> order = EpochOrder(data.size(), 0, 0, false);
  // This rank's shard of the samples (all of them in one process).
  const Shard shard = options.collective ? ShardOf(samples, options.collective->rank(),
                                                   options.collective->size())
                                         : Shard{0, samples};
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(inputs, /*labels=*/false));
  std::map<std::string, Tensor> batch;
  for (int64_t begin = shard.begin; begin < shard.end; begin += options.batch_size) {
    const int64_t end = std::min(shard.end, begin + options.batch_size);
    QAT_RETURN_IF_ERROR(
        data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), binding, &batch));
    if (absl::Status s = calibrator->Observe(batch); !s.ok()) {
      if (!batch_of_one) return s;
      // The graph fixes the batch somewhere (a Reshape to [1, ...], say).
      return absl::Status(s.code(), absl::StrCat(s.message(), "; '", model.source(),
                                                  "' has a static batch of 1: calibrate with "
                                                  "--batch 1 (CalibrateOptions::batch_size)"));
    }
    if (options.progress) options.progress(end - shard.begin, shard.end - shard.begin);
  }
  return calibrator->Finish();
}

}  // namespace

absl::StatusOr<CalibrationTable> Calibrate(const Model& model, const Dataset& data,
                                           const CalibrateOptions& options) {
  // Batches and observers allocate in proportion to the data: running out
  // of memory is a Status, never an abort.
  return CatchExceptions(absl::StrCat("calibrating '", model.source(), "'"),
                         [&] { return CalibrateUnguarded(model, data, options); });
}

}  // namespace qat
