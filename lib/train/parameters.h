// Trainable parameters: which initializers of a model train (the default
// rule, and the --trainable / --frozen patterns), and detaching them: turning
// the chosen initializers into graph inputs and handing their values back as
// tensors.
//
// The trainer owns the parameter tensors and feeds them to the executor at
// every step; tests use the same mechanism to perturb a parameter for
// finite differences without rebuilding the model.
#ifndef QAT_LIB_TRAIN_PARAMETERS_H_
#define QAT_LIB_TRAIN_PARAMETERS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "onnx/onnx_pb.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {
namespace training {

// Whether `name` matches the glob `pattern`: '*' matches any run of
// characters ('/' and '.' included), '?' any one character, and every other
// character itself.
bool GlobMatch(absl::string_view pattern, absl::string_view name);

struct ParameterSelection {
  std::vector<std::string> trainable;  // patterns; empty: the default rule
  std::vector<std::string> frozen;     // patterns
  bool learn_quant_params = false;     // FakeQuant scales and zero points train
};

// The trainable parameters of `graph`, whose output `loss` training
// minimizes.
//
// Default rule: a float initializer trains when it reaches the loss through
// inputs that carry a gradient (gradient_rules.h, IsTrainableInput; so never
// a shape, an axis, Clip's bounds, running statistics or a constant that
// only feeds shape computations) and it is either
//  1. a weight or bias: inputs 1 and 2 of Conv and ConvTranspose, any input
//     of Gemm and MatMul, the scale and bias of BatchNormalization,
//     LayerNormalization and InstanceNormalization, the data of Gather (an
//     embedding); seen through FakeQuant and data-preserving ops (Identity,
//     Cast, Reshape, Flatten, Squeeze, Unsqueeze, Transpose) in between;
//     with learn_quant_params, also the scale and zero point of FakeQuant;
//  2. or any other tensor with more than one element (a class token, a
//     positional embedding, a PRelu slope).
// Scalars (one element, whether stored as [] or [1]: a Pow exponent, an
// epsilon, Hardswish's 3 and 6) never train by default.  The order is the
// initializers' order.
//
// With `trainable` patterns, the float initializers that match one of them
// train instead, scalars included, in the patterns' order (then the model's
// order within a pattern).  Whatever matches a `frozen` pattern does not
// train (frozen wins over a trainable glob; the same plain name in both
// lists is an error).
//
// InvalidArgument naming the pattern when a frozen pattern matches no
// initializer, a trainable pattern matches no float initializer, or when
// no parameter is left.
absl::StatusOr<std::vector<std::string>> ChooseParameters(const onnx::GraphProto& graph,
                                                          const std::string& loss,
                                                          const ParameterSelection& selection);

struct DetachedParameters {
  Model model;                           // the parameters are inputs here
  std::map<std::string, Tensor> values;  // their initial values
};

// InvalidArgument when a name is not an initializer of the model.
absl::StatusOr<DetachedParameters> DetachParameters(
    const Model& model, const std::vector<std::string>& names);

}  // namespace training
}  // namespace qat

#endif  // QAT_LIB_TRAIN_PARAMETERS_H_
