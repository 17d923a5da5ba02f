// Detaching parameters: turns chosen initializers of a model into graph
// inputs, and hands their values back as tensors.
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
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {
namespace training {

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
