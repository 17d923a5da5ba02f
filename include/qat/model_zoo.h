// Small reference models, generated in code: the models that libqat's tests,
// benchmarks and Fashion-MNIST pipeline train, so that no model file has to
// be downloaded.
//
// Both are laid out as PyTorch's exporter writes the same torch.nn modules
// (Linear -> Gemm with transB=1, Conv2d -> Conv, Flatten), and initialized
// like them: weights and biases uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)]
// (PyTorch's Kaiming-uniform default), drawn from a seeded generator that
// gives the same numbers on every platform.
//
// Inputs and outputs: "input" (float, batch dimension "N") and "logits".
#ifndef QAT_MODEL_ZOO_H_
#define QAT_MODEL_ZOO_H_

#include <cstdint>
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

}  // namespace qat

#endif  // QAT_MODEL_ZOO_H_
