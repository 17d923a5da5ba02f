// Small reference models, generated in code: the models that libqat's tests,
// benchmarks and Fashion-MNIST pipeline train, so that no model file has to
// be downloaded.
//
// They are laid out as PyTorch's exporter writes the same torch.nn modules
// (Linear -> Gemm with transB=1, Conv2d -> Conv, Flatten), and initialized
// like them: weights and biases uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]
// (PyTorch's Kaiming-uniform default), drawn from a seeded generator that
// gives the same numbers on every platform.
//
// Inputs and outputs: "input" (float, batch dimension "N") and "logits".
#ifndef QAT_MODEL_ZOO_H_
#define QAT_MODEL_ZOO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/model.h"

namespace qat {

// A multi-layer perceptron: input [N, inputs] -> Linear -> ReLU -> ... ->
// Linear -> logits [N, outputs].
struct MlpSpec {
  int64_t inputs = 784;
  std::vector<int64_t> hidden = {500};
  int64_t outputs = 10;
  uint64_t seed = 0;
  int64_t opset = 13;
};
QAT_API absl::StatusOr<Model> MakeMlp(const MlpSpec& spec = {});

// LeNet-5 for 28x28 single-channel images: input [N, 1, 28, 28] ->
// Conv(6, 5x5, pad 2) -> ReLU -> MaxPool(2) -> Conv(16, 5x5) -> ReLU ->
// MaxPool(2) -> Flatten -> Linear(120) -> ReLU -> Linear(84) -> ReLU ->
// Linear(10).
struct LeNet5Spec {
  uint64_t seed = 0;
  int64_t opset = 13;
};
QAT_API absl::StatusOr<Model> MakeLeNet5(const LeNet5Spec& spec = {});

// Models with BatchNormalization in training mode (training_mode=1, as
// PyTorch exports a module in train mode), for QAT's BatchNorm folding:
// Conv (no bias, Kaiming-uniform) -> BatchNormalization (scale 1, bias 0,
// mean 0, variance 1, epsilon 1e-5, momentum 0.9: PyTorch's 0.1) -> ReLU.
// Opset 14 to 17.
//
// ResNet-8: input [N, channels_in, image, image] -> conv3x3(width) -> BN ->
// ReLU -> three stages of one basic block each (conv3x3 -> BN -> ReLU ->
// conv3x3 -> BN, plus the input, or a strided conv1x1 -> BN shortcut when
// the shape changes, -> ReLU) at width, 2·width (stride 2), 4·width
// (stride 2) -> GlobalAveragePool -> Flatten -> Linear(classes).
struct ResNet8Spec {
  int64_t channels_in = 1;
  int64_t image = 28;
  int64_t width = 16;
  int64_t classes = 10;
  uint64_t seed = 0;
  int64_t opset = 15;
};
QAT_API absl::StatusOr<Model> MakeResNet8(const ResNet8Spec& spec = {});

// A MobileNetV2-style net: conv3x3(width, stride 1) -> BN -> ReLU, then
// inverted residual blocks (conv1x1 expand x6 -> BN -> ReLU -> depthwise
// conv3x3 (group = channels) -> BN -> ReLU -> conv1x1 project -> BN, plus
// the input when the shape is kept) at width (stride 1), 2·width
// (stride 2), 2·width (stride 1), 4·width (stride 2) -> GlobalAveragePool
// -> Flatten -> Linear(classes).  ReLU where MobileNetV2 has ReLU6.
struct MobileNetV2Spec {
  int64_t channels_in = 1;
  int64_t image = 28;
  int64_t width = 8;
  int64_t expansion = 6;
  int64_t classes = 10;
  uint64_t seed = 0;
  int64_t opset = 15;
};
QAT_API absl::StatusOr<Model> MakeMobileNetV2(const MobileNetV2Spec& spec = {});

// The zoo model called `name` ("mlp", "lenet5", "resnet8" or
// "mobilenetv2"; the one list that the CLI, the pipeline and the C ABI
// accept), with `seed`, at `opset` (0: its spec's default, 13 or 15).
// InvalidArgument naming the known models for another name.
QAT_API absl::StatusOr<Model> MakeZooModel(const std::string& name, uint64_t seed = 0,
                                           int64_t opset = 0);

}  // namespace qat

#endif  // QAT_MODEL_ZOO_H_
