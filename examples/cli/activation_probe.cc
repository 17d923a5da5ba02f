#include "activation_probe.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "onnx/onnx_pb.h"
#include "qat/executor.h"

namespace qat_cli {
namespace {

absl::StatusOr<onnx::ModelProto> Proto(const qat::Model& model) {
  onnx::ModelProto proto;
  if (!proto.ParseFromString(model.Serialize())) {
    return absl::InternalError(absl::StrCat("cannot reparse '", model.source(), "'"));
  }
  return proto;
}

}  // namespace

absl::StatusOr<std::string> FirstHiddenActivation(const qat::Model& model,
                                                  const std::vector<std::string>& op_types) {
  auto proto = Proto(model);
  if (!proto.ok()) return proto.status();
  int seen = 0;
  for (const onnx::NodeProto& node : proto->graph().node()) {
    if (std::find(op_types.begin(), op_types.end(), node.op_type()) == op_types.end()) continue;
    if (++seen == 2 && node.input_size() > 0) return node.input(0);
  }
  return absl::NotFoundError(
      absl::StrCat("'", model.source(), "' has fewer than two quantizable nodes"));
}

absl::StatusOr<std::vector<float>> CollectActivation(const qat::Model& model,
                                                     const std::string& tensor,
                                                     const qat::Dataset& data,
                                                     int64_t samples, int threads) {
  auto proto = Proto(model);
  if (!proto.ok()) return proto.status();
  onnx::GraphProto* graph = proto->mutable_graph();
  bool is_output = false;
  for (const auto& out : graph->output()) is_output |= out.name() == tensor;
  if (!is_output) {
    onnx::ValueInfoProto* out = graph->add_output();
    out->set_name(tensor);
    bool typed = false;
    for (const auto& info : graph->value_info()) {
      if (info.name() == tensor) {
        *out = info;
        typed = true;
      }
    }
    if (!typed) out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  auto probe = qat::Model::FromBytes(proto->SerializeAsString(),
                                     absl::StrCat(model.source(), " (probe of ", tensor, ")"));
  if (!probe.ok()) return probe.status();
  qat::ExecutorOptions options;
  options.num_threads = threads;
  auto exec = qat::Executor::Create(*probe, options);
  if (!exec.ok()) return exec.status();
  const std::string input = probe->inputs()[0].name;
  const int64_t n = std::min(samples, data.size());
  const std::vector<int64_t> order = qat::EpochOrder(data.size(), 0, 0, false);
  std::vector<float> values;
  qat::Tensor x, y;
  for (int64_t begin = 0; begin < n; begin += 256) {
    const int64_t end = std::min(n, begin + 256);
    data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), &x, &y);
    auto out = (*exec)->Run({{input, x}});
    if (!out.ok()) return out.status();
    const qat::Tensor& t = out->at(tensor);
    const float* p = t.data<float>();
    values.insert(values.end(), p, p + t.num_elements());
  }
  return values;
}

}  // namespace qat_cli
