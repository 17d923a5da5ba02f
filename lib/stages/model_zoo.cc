#include "qat/model_zoo.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "qat/status_macros.h"
#include "graph/graph_editor.h"

namespace qat {
namespace {

using training::AttrInt;
using training::AttrInts;
using training::GraphEditor;
using training::MakeFloatTensor;

// Uniform floats in [-bound, bound) from a 64-bit Mersenne Twister, with the
// conversion written out so that every standard library gives the same
// numbers (std::uniform_real_distribution does not promise that).
class UniformInit {
 public:
  explicit UniformInit(uint64_t seed) : rng_(seed) {}
  std::vector<float> Draw(int64_t n, double bound) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) {
      const double unit = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
      x = static_cast<float>((2.0 * unit - 1.0) * bound);
    }
    return v;
  }

 private:
  std::mt19937_64 rng_;
};

onnx::ModelProto NewModel(int64_t opset, const std::string& name) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("libqat");
  m.mutable_graph()->set_name(name);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  return m;
}


// y = x W^T + b, as torch.nn.Linear exports it.
std::string Linear(GraphEditor& g, UniformInit& init, const std::string& x,
                   int64_t in, int64_t out, const std::string& name) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  const std::string w = g.Initializer(
      MakeFloatTensor(name + ".weight", {out, in}, init.Draw(out * in, bound)));
  const std::string b = g.Initializer(
      MakeFloatTensor(name + ".bias", {out}, init.Draw(out, bound)));
  return g.Add("Gemm", {x, w, b}, name + "_out",
               {training::AttrFloat("alpha", 1.0f),
                training::AttrFloat("beta", 1.0f), AttrInt("transB", 1)});
}

std::string Conv(GraphEditor& g, UniformInit& init, const std::string& x,
                 int64_t in, int64_t out, int64_t k, int64_t pad,
                 const std::string& name) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * k * k));
  const std::string w = g.Initializer(MakeFloatTensor(
      name + ".weight", {out, in, k, k}, init.Draw(out * in * k * k, bound)));
  const std::string b = g.Initializer(
      MakeFloatTensor(name + ".bias", {out}, init.Draw(out, bound)));
  return g.Add("Conv", {x, w, b}, name + "_out",
               {AttrInts("kernel_shape", {k, k}),
                AttrInts("pads", {pad, pad, pad, pad}),
                AttrInts("strides", {1, 1}), AttrInts("dilations", {1, 1}),
                AttrInt("group", 1)});
}

// Conv2d(bias=False) with the given stride and groups, as a ResNet or
// MobileNet has them before a BatchNormalization.
std::string ConvNoBias(GraphEditor& g, UniformInit& init, const std::string& x, int64_t in,
                       int64_t out, int64_t k, int64_t stride, int64_t groups,
                       const std::string& name) {
  const int64_t per_group = in / groups;
  const double bound = 1.0 / std::sqrt(static_cast<double>(per_group * k * k));
  const std::string w = g.Initializer(MakeFloatTensor(
      name + ".weight", {out, per_group, k, k}, init.Draw(out * per_group * k * k, bound)));
  const int64_t pad = k / 2;
  return g.Add("Conv", {x, w}, name + "_out",
               {AttrInts("kernel_shape", {k, k}), AttrInts("pads", {pad, pad, pad, pad}),
                AttrInts("strides", {stride, stride}), AttrInts("dilations", {1, 1}),
                AttrInt("group", groups)});
}

// BatchNormalization in training mode, freshly initialized.
std::string BatchNorm(GraphEditor& g, const std::string& x, int64_t channels,
                      const std::string& name) {
  auto filled = [&](const std::string& what, float v) {
    return g.Initializer(MakeFloatTensor(name + "." + what, {channels},
                                         std::vector<float>(static_cast<size_t>(channels), v)));
  };
  const std::string gamma = filled("weight", 1.0f), beta = filled("bias", 0.0f);
  const std::string mean = filled("running_mean", 0.0f), var = filled("running_var", 1.0f);
  // Training mode has the running-statistics outputs (ONNX requires them).
  const std::string y = g.FreshName(name + "_out");
  g.AddNode("BatchNormalization", "", {x, gamma, beta, mean, var},
            {y, g.FreshName(name + ".running_mean_out"), g.FreshName(name + ".running_var_out")},
            {training::AttrFloat("epsilon", 1e-5f), training::AttrFloat("momentum", 0.9f),
             AttrInt("training_mode", 1)});
  return y;
}

std::string ConvBn(GraphEditor& g, UniformInit& init, const std::string& x, int64_t in,
                   int64_t out, int64_t k, int64_t stride, int64_t groups, bool relu,
                   const std::string& name) {
  std::string y = BatchNorm(g, ConvNoBias(g, init, x, in, out, k, stride, groups, name + ".conv"),
                            out, name + ".bn");
  return relu ? g.Add("Relu", {y}, name + ".relu") : y;
}

std::string MaxPool2(GraphEditor& g, const std::string& x,
                     const std::string& name) {
  return g.Add("MaxPool", {x}, name + "_out",
               {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})});
}

absl::StatusOr<Model> Finish(onnx::ModelProto& m, const std::string& logits,
                             int64_t outputs, const std::string& name) {
  auto* out = m.mutable_graph()->add_output();
  out->set_name("logits");
  auto* t = out->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param("N");
  t->mutable_shape()->add_dim()->set_dim_value(outputs);
  // Rename the last node's output to the graph output's name.
  for (auto& node : *m.mutable_graph()->mutable_node()) {
    for (auto& o : *node.mutable_output()) {
      if (o == logits) o = "logits";
    }
  }
  return ModelAccess::FromProto(std::move(m), name);
}

absl::Status CheckBatchNormSpec(int64_t opset, std::vector<int64_t> sizes) {
  if (opset < 14 || opset > 17) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model zoo writes BatchNorm models at opset 14 to 17, not ", opset));
  }
  for (int64_t v : sizes) {
    if (v <= 0) return absl::InvalidArgumentError("model sizes must be positive");
  }
  return absl::OkStatus();
}

absl::Status CheckOpset(int64_t opset) {
  if (opset < 13 || opset > 17) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model zoo writes opset 13 to 17, not ", opset));
  }
  return absl::OkStatus();
}

void AddBatchInput(onnx::ModelProto& m, std::vector<int64_t> dims) {
  auto* in = m.mutable_graph()->add_input();
  in->set_name("input");
  auto* t = in->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param("N");
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
}

}  // namespace

absl::StatusOr<Model> MakeMlp(const MlpSpec& spec) {
  QAT_RETURN_IF_ERROR(CheckOpset(spec.opset));
  if (spec.inputs <= 0 || spec.outputs <= 0) {
    return absl::InvalidArgumentError("MLP sizes must be positive");
  }
  for (int64_t h : spec.hidden) {
    if (h <= 0) return absl::InvalidArgumentError("MLP sizes must be positive");
  }
  onnx::ModelProto m = NewModel(spec.opset, "mlp");
  AddBatchInput(m, {spec.inputs});
  GraphEditor g(&m);
  UniformInit init(spec.seed);
  std::string x = "input";
  int64_t width = spec.inputs;
  for (size_t i = 0; i < spec.hidden.size(); ++i) {
    x = Linear(g, init, x, width, spec.hidden[i], absl::StrCat("fc", i + 1));
    x = g.Add("Relu", {x}, absl::StrCat("relu", i + 1));
    width = spec.hidden[i];
  }
  x = Linear(g, init, x, width, spec.outputs,
             absl::StrCat("fc", spec.hidden.size() + 1));
  return Finish(m, x, spec.outputs, "mlp");
}

absl::StatusOr<Model> MakeLeNet5(const LeNet5Spec& spec) {
  QAT_RETURN_IF_ERROR(CheckOpset(spec.opset));
  onnx::ModelProto m = NewModel(spec.opset, "lenet5");
  AddBatchInput(m, {1, 28, 28});
  GraphEditor g(&m);
  UniformInit init(spec.seed);
  std::string x = Conv(g, init, "input", 1, 6, 5, 2, "conv1");
  x = MaxPool2(g, g.Add("Relu", {x}, "relu1"), "pool1");
  x = Conv(g, init, x, 6, 16, 5, 0, "conv2");
  x = MaxPool2(g, g.Add("Relu", {x}, "relu2"), "pool2");
  x = g.Add("Flatten", {x}, "flatten", {AttrInt("axis", 1)});
  x = g.Add("Relu", {Linear(g, init, x, 16 * 5 * 5, 120, "fc1")}, "relu3");
  x = g.Add("Relu", {Linear(g, init, x, 120, 84, "fc2")}, "relu4");
  x = Linear(g, init, x, 84, 10, "fc3");
  return Finish(m, x, 10, "lenet5");
}

namespace {

// The classifier head of the BatchNorm models.
std::string PoolAndClassify(GraphEditor& g, UniformInit& init, const std::string& x,
                            int64_t channels, int64_t classes) {
  std::string y = g.Add("GlobalAveragePool", {x}, "pool");
  y = g.Add("Flatten", {y}, "flatten", {AttrInt("axis", 1)});
  return Linear(g, init, y, channels, classes, "fc");
}

}  // namespace

absl::StatusOr<Model> MakeResNet8(const ResNet8Spec& spec) {
  QAT_RETURN_IF_ERROR(CheckBatchNormSpec(
      spec.opset, {spec.channels_in, spec.image, spec.width, spec.classes}));
  onnx::ModelProto m = NewModel(spec.opset, "resnet8");
  AddBatchInput(m, {spec.channels_in, spec.image, spec.image});
  GraphEditor g(&m);
  UniformInit init(spec.seed);
  std::string x = ConvBn(g, init, "input", spec.channels_in, spec.width, 3, 1, 1, true, "stem");
  int64_t in = spec.width;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out = spec.width << stage;
    const int64_t stride = stage == 0 ? 1 : 2;
    const std::string name = absl::StrCat("layer", stage + 1);
    std::string y = ConvBn(g, init, x, in, out, 3, stride, 1, true, name + ".0");
    y = ConvBn(g, init, y, out, out, 3, 1, 1, false, name + ".1");
    const std::string shortcut =
        stride == 1 && in == out
            ? x
            : ConvBn(g, init, x, in, out, 1, stride, 1, false, name + ".downsample");
    x = g.Add("Relu", {g.Add("Add", {y, shortcut}, name + ".add")}, name + ".relu");
    in = out;
  }
  return Finish(m, PoolAndClassify(g, init, x, in, spec.classes), spec.classes, "resnet8");
}

absl::StatusOr<Model> MakeMobileNetV2(const MobileNetV2Spec& spec) {
  QAT_RETURN_IF_ERROR(CheckBatchNormSpec(spec.opset, {spec.channels_in, spec.image, spec.width,
                                                      spec.expansion, spec.classes}));
  onnx::ModelProto m = NewModel(spec.opset, "mobilenetv2");
  AddBatchInput(m, {spec.channels_in, spec.image, spec.image});
  GraphEditor g(&m);
  UniformInit init(spec.seed);
  std::string x = ConvBn(g, init, "input", spec.channels_in, spec.width, 3, 1, 1, true, "stem");
  int64_t in = spec.width;
  const int64_t widths[] = {spec.width, 2 * spec.width, 2 * spec.width, 4 * spec.width};
  const int64_t strides[] = {1, 2, 1, 2};
  for (int b = 0; b < 4; ++b) {
    const int64_t out = widths[b], hidden = in * spec.expansion;
    const std::string name = absl::StrCat("block", b + 1);
    std::string y = ConvBn(g, init, x, in, hidden, 1, 1, 1, true, name + ".expand");
    y = ConvBn(g, init, y, hidden, hidden, 3, strides[b], hidden, true, name + ".depthwise");
    y = ConvBn(g, init, y, hidden, out, 1, 1, 1, false, name + ".project");
    x = strides[b] == 1 && in == out ? g.Add("Add", {y, x}, name + ".add") : y;
    in = out;
  }
  return Finish(m, PoolAndClassify(g, init, x, in, spec.classes), spec.classes, "mobilenetv2");
}

absl::StatusOr<Model> MakeZooModel(const std::string& name, uint64_t seed, int64_t opset) {
  // Each spec's own default opset unless one is given.
  auto with = [&](auto spec) {
    spec.seed = seed;
    if (opset != 0) spec.opset = opset;
    return spec;
  };
  if (name == "mlp") return MakeMlp(with(MlpSpec{}));
  if (name == "lenet5") return MakeLeNet5(with(LeNet5Spec{}));
  if (name == "resnet8") return MakeResNet8(with(ResNet8Spec{}));
  if (name == "mobilenetv2") return MakeMobileNetV2(with(MobileNetV2Spec{}));
  return absl::InvalidArgumentError(
      absl::StrCat("unknown zoo model '", name, "'; mlp, lenet5, resnet8 or mobilenetv2"));
}

}  // namespace qat
