#include "train/quant_param_observer.h"

#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_index.h"
#include "qat/observer.h"
#include "qat/quant_params.h"
#include "qat/status_macros.h"
#include "graph/graph_editor.h"

namespace qat {
namespace training {
namespace {

std::string MinName(const std::string& scale) { return scale + ".min_val"; }
std::string MaxName(const std::string& scale) { return scale + ".max_val"; }

}  // namespace

absl::StatusOr<QuantParamObserver> QuantParamObserver::Create(
    const Model& training, const std::vector<std::string>& params,
    float averaging_constant) {
  if (!(averaging_constant > 0.0f && averaging_constant <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the observers' averaging constant must be in (0, 1], got ", averaging_constant));
  }
  const onnx::GraphProto& graph = ModelAccess::Proto(training).graph();
  const graph::GraphIndex index(graph);
  const std::set<std::string> trainable(params.begin(), params.end());
  std::map<std::string, std::string> owner;  // scale or zero point -> node
  QuantParamObserver observer;
  observer.averaging_constant_ = averaging_constant;
  for (const auto& n : graph.node()) {
    if (n.op_type() != "FakeQuant") continue;
    const std::string node = DescribeNode(n);
    if (n.input_size() < 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(node, " needs a scale and a zero point to be observed"));
    }
    Site site;
    site.node = node;
    site.x = n.input(0);
    site.scale = n.input(1);
    site.zero_point = n.input(2);
    site.weight = trainable.count(site.x) != 0;
    if (!site.weight && index.IsInitializer(site.x)) continue;  // a constant
    Tensor zp;
    for (int slot : {1, 2}) {
      const std::string& name = n.input(slot);
      const onnx::TensorProto* init = index.FindInitializer(name);
      if (init == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            node, " has a ", slot == 1 ? "scale" : "zero point", " '", name,
            "' that is not an initializer; observe mode updates initializers"));
      }
      auto [previous, fresh] = owner.emplace(name, node);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(
            previous->second, " and ", node, " share the ", slot == 1 ? "scale" : "zero point",
            " '", name, "'; observe mode needs one per FakeQuant node"));
      }
      QAT_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(*init));
      if (value.dtype() != DataType::kFloat32) {
        return absl::InvalidArgumentError(
            absl::StrCat(node, ": '", name, "' is not float"));
      }
      if (slot == 1) site.channels = value.num_elements();
      else zp = std::move(value);
    }
    if (zp.num_elements() != site.channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          node, ": the scale has ", site.channels, " values, the zero point ",
          zp.num_elements()));
    }
    site.range = {static_cast<int32_t>(GetAttrInt(n, "quant_min", 0)),
                  static_cast<int32_t>(GetAttrInt(n, "quant_max", 255))};
    for (const auto& a : n.attribute()) {
      if (a.name() == "axis") site.axis = a.i();
    }
    // Symmetric when every zero point is the symmetric one of the range.
    QAT_ASSIGN_OR_RETURN(QuantParams centred,
                         ComputeQuantParams(-1.0f, 1.0f, site.range, /*symmetric=*/true));
    site.symmetric = true;
    for (float z : zp.values<float>()) site.symmetric &= z == centred.zero_point;
    observer.quant_names_.push_back(site.scale);
    observer.quant_names_.push_back(site.zero_point);
    observer.sites_.push_back(std::move(site));
  }
  return observer;
}

std::vector<std::string> QuantParamObserver::activation_names() const {
  std::vector<std::string> names;
  for (const Site& s : sites_) {
    if (!s.weight) names.push_back(s.x);
  }
  return names;
}

absl::Status QuantParamObserver::Update(
    const std::function<const Tensor*(const std::string&)>& value_of,
    std::map<std::string, Tensor>* quant, const RangeReducer& reduce) {
  // Each site's batch extremes per channel, flat, in site order (an empty
  // value contributes +inf / -inf, which any other rank's range replaces).
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::vector<float> batch_lo, batch_hi;
  for (const Site& s : sites_) {
    const Tensor* x = value_of(s.x);
    if (x == nullptr || x->dtype() != DataType::kFloat32) {
      return absl::InternalError(absl::StrCat(s.node, ": no float value of '", s.x,
                                              "' to observe"));
    }
    if (x->num_elements() == 0) {
      batch_lo.insert(batch_lo.end(), s.channels, kInf);
      batch_hi.insert(batch_hi.end(), s.channels, -kInf);
      continue;
    }
    ObserverOptions options;
    options.method = CalibrationMethod::kMinMax;
    options.axis = s.axis;
    QAT_ASSIGN_OR_RETURN(auto observer, MakeObserver(options));
    absl::Status seen = observer->Observe(x->shape(), x->values<float>());
    if (!seen.ok()) {
      return absl::Status(seen.code(), absl::StrCat("observing '", s.x, "' at ", s.node,
                                                    ": ", seen.message()));
    }
    QAT_ASSIGN_OR_RETURN(std::vector<ObservedRange> ranges, observer->Ranges());
    if (static_cast<int64_t>(ranges.size()) != s.channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          s.node, ": '", s.x, "' has ", ranges.size(), " channels, the scale has ",
          s.channels, " values"));
    }
    for (const ObservedRange& r : ranges) {
      batch_lo.push_back(r.data_min);
      batch_hi.push_back(r.data_max);
    }
  }
  if (reduce) QAT_RETURN_IF_ERROR(reduce(absl::MakeSpan(batch_lo), absl::MakeSpan(batch_hi)));

  // Computed aside, then committed: an error changes nothing.
  std::map<std::string, Tensor> new_quant, new_state;
  size_t at = 0;
  for (const Site& s : sites_) {
    const size_t first = at;
    at += s.channels;
    if (batch_lo[first] == kInf) continue;  // nothing observed
    const std::vector<int64_t> shape = quant->at(s.scale).shape();
    Tensor lo(DataType::kFloat32, shape), hi(DataType::kFloat32, shape);
    auto old_lo = state_.find(MinName(s.scale));
    auto old_hi = state_.find(MaxName(s.scale));
    for (int64_t c = 0; c < s.channels; ++c) {
      float rmin = batch_lo[first + c], rmax = batch_hi[first + c];
      if (!s.weight && old_lo != state_.end()) {
        rmin = MovingAverageStep(old_lo->second.values<float>()[c], rmin, averaging_constant_);
        rmax = MovingAverageStep(old_hi->second.values<float>()[c], rmax, averaging_constant_);
      }
      lo.values<float>()[c] = rmin;
      hi.values<float>()[c] = rmax;
    }
    Tensor scale(DataType::kFloat32, shape), zp(DataType::kFloat32, shape);
    for (int64_t c = 0; c < s.channels; ++c) {
      auto params = ComputeQuantParams(lo.values<float>()[c], hi.values<float>()[c],
                                       s.range, s.symmetric);
      if (!params.ok()) {
        return absl::Status(params.status().code(),
                            absl::StrCat(s.node, ": the observed range of '", s.x, "': ",
                                         params.status().message()));
      }
      scale.values<float>()[c] = params->scale;
      zp.values<float>()[c] = static_cast<float>(params->zero_point);
    }
    new_quant[s.scale] = std::move(scale);
    new_quant[s.zero_point] = std::move(zp);
    if (!s.weight) {
      new_state[MinName(s.scale)] = std::move(lo);
      new_state[MaxName(s.scale)] = std::move(hi);
    }
  }
  for (auto& [name, value] : new_quant) (*quant)[name] = std::move(value);
  for (auto& [name, value] : new_state) state_[name] = std::move(value);
  return absl::OkStatus();
}

absl::Status QuantParamObserver::RestoreState(const std::map<std::string, Tensor>& state) {
  std::map<std::string, int64_t> expected;
  for (const Site& s : sites_) {
    if (s.weight) continue;
    expected[MinName(s.scale)] = s.channels;
    expected[MaxName(s.scale)] = s.channels;
  }
  for (const auto& [name, value] : state) {
    auto it = expected.find(name);
    if (it == expected.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "observer state '", name, "' belongs to no activation FakeQuant of this model"));
    }
    if (value.dtype() != DataType::kFloat32 || value.num_elements() != it->second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "observer state '", name, "' has ", value.num_elements(), " values, expected ",
          it->second, " floats"));
    }
  }
  for (const auto& [name, channels] : expected) {
    if (!state.empty() && state.count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("observer state '", name, "' is missing"));
    }
  }
  state_ = state;
  return absl::OkStatus();
}

}  // namespace training
}  // namespace qat
