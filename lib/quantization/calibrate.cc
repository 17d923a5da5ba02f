#include "qat/calibrate.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "model_internal.h"
#include "qat/executor.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "quantization/node_selection.h"

namespace qat {
namespace {

// The model with the observed activations added as graph outputs.
absl::StatusOr<Model> ExposeTensors(const Model& model,
                                    const std::vector<std::string>& names) {
  onnx::ModelProto proto = ModelAccess::Proto(model);
  onnx::GraphProto* g = proto.mutable_graph();
  std::map<std::string, const onnx::ValueInfoProto*> infos;
  for (const auto* list : {&g->input(), &g->output(), &g->value_info()}) {
    for (const auto& v : *list) infos[v.name()] = &v;
  }
  std::set<std::string> outputs;
  for (const auto& o : g->output()) outputs.insert(o.name());
  for (const std::string& name : names) {
    if (outputs.count(name) != 0) continue;
    auto it = infos.find(name);
    onnx::ValueInfoProto* out = g->add_output();
    if (it != infos.end()) {
      *out = *it->second;
    } else {
      out->set_name(name);
      out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
  }
  ModelLoadOptions load;
  load.check = false;  // the model was checked when loaded
  return Model::FromBytes(proto.SerializeAsString(), model.source(), load);
}

}  // namespace

absl::StatusOr<CalibrationTable> Calibrate(const Model& model, const Dataset& data,
                                           const CalibrateOptions& options) {
  const onnx::GraphProto& graph = ModelAccess::Proto(model).graph();
  QAT_ASSIGN_OR_RETURN(quantization::NodeSelection selection,
                       quantization::NodeSelection::Create(graph, options.op_types,
                                                           options.include_nodes,
                                                           options.exclude_nodes));
  const quantization::NodeSelection::Tensors tensors = selection.Collect(graph);
  if (options.batch_size <= 0) return absl::InvalidArgumentError("batch size must be > 0");
  const int64_t samples = options.max_samples > 0
                              ? std::min(options.max_samples, data.size())
                              : data.size();
  if (samples == 0) {
    return absl::InvalidArgumentError("calibration needs at least one sample; the dataset is empty");
  }
  const std::vector<ValueInfo> inputs = model.inputs();
  if (inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration feeds one data input, but '", model.source(), "' has ", inputs.size()));
  }
  QAT_ASSIGN_OR_RETURN(Model exposed, ExposeTensors(model, tensors.activations));
  ExecutorOptions exec;
  exec.num_threads = options.num_threads;
  QAT_ASSIGN_OR_RETURN(auto executor, Executor::Create(exposed, exec));

  std::map<std::string, std::unique_ptr<Observer>> observers;
  ObserverOptions act = options.observer;
  act.method = options.method;
  act.axis.reset();
  act.symmetric = options.symmetric_activations;
  for (const std::string& t : tensors.activations) {
    QAT_ASSIGN_OR_RETURN(observers[t], MakeObserver(act));
  }
  const std::vector<int64_t> order = EpochOrder(data.size(), 0, 0, false);
  Tensor x, y;
  for (int64_t begin = 0; begin < samples; begin += options.batch_size) {
    const int64_t end = std::min(samples, begin + options.batch_size);
    data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), &x, &y);
    QAT_ASSIGN_OR_RETURN(auto out, executor->Run({{inputs[0].name, x}}));
    for (const std::string& t : tensors.activations) {
      const Tensor& v = out.at(t);
      if (v.dtype() != DataType::kFloat32) continue;
      absl::Status s = observers.at(t)->Observe(v.values<float>());
      if (!s.ok()) {
        return absl::Status(s.code(), absl::StrCat("tensor '", t, "' in samples [", begin,
                                                   ", ", end, "): ", s.message()));
      }
    }
    if (options.progress) options.progress(end, samples);
  }

  CalibrationTable table;
  for (const std::string& t : tensors.activations) {
    if (observers.at(t)->Ranges().ok()) {
      QAT_ASSIGN_OR_RETURN(auto ranges, observers.at(t)->Ranges());
      QAT_ASSIGN_OR_RETURN(CalibrationEntry e,
                           MakeCalibrationEntry(TensorRole::kActivation, options.activation_type,
                                                options.method, options.symmetric_activations,
                                                false, std::nullopt, ranges));
      QAT_RETURN_IF_ERROR(table.Set(t, std::move(e)));
    }
  }
  // Weights: observed once from their values with the same method.
  std::map<std::string, int64_t> axes;
  for (const auto& n : graph.node()) {
    if (!selection.Selects(n) || n.input_size() < 2) continue;
    axes.emplace(n.input(1), WeightChannelAxis(n.op_type(), [&] {
                   for (const auto& a : n.attribute()) {
                     if (a.name() == "transB") return a.i() != 0;
                   }
                   return false;
                 }()));
  }
  for (const std::string& w : tensors.weights) {
    const onnx::TensorProto* proto = nullptr;
    for (const auto& t : graph.initializer()) {
      if (t.name() == w) proto = &t;
    }
    QAT_ASSIGN_OR_RETURN(Tensor value, ParseTensorProto(proto->SerializeAsString()));
    if (value.dtype() != DataType::kFloat32) continue;
    ObserverOptions wo = options.observer;
    wo.method = options.method;
    wo.symmetric = true;
    std::optional<int64_t> axis;
    if (options.per_channel_weights && axes.count(w) != 0 && axes.at(w) >= 0 &&
        axes.at(w) < value.rank()) {
      axis = axes.at(w);
    }
    wo.axis = axis;
    QAT_ASSIGN_OR_RETURN(auto observer, MakeObserver(wo));
    QAT_RETURN_IF_ERROR(observer->Observe(value.shape(), value.values<float>()));
    QAT_ASSIGN_OR_RETURN(auto ranges, observer->Ranges());
    QAT_ASSIGN_OR_RETURN(CalibrationEntry e,
                         MakeCalibrationEntry(TensorRole::kWeight, QuantType::kInt8,
                                              options.method, true, false, axis, ranges));
    QAT_RETURN_IF_ERROR(table.Set(w, std::move(e)));
  }
  return table;
}

}  // namespace qat
