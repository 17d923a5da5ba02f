#include "qat/data_spec.h"

#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"

namespace qat {

absl::StatusOr<Dataset> LoadDataSpec(const std::string& spec, const Model& model,
                                     const DataSpecOptions& options) {
  if (options.split != "train" && options.split != "test") {
    return absl::InvalidArgumentError(
        absl::StrCat("the split must be 'train' or 'test', got '", options.split, "'"));
  }
  if (options.limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("limit must be >= 0, got ", options.limit));
  }
  const size_t comma = spec.find(',');
  if (comma != std::string::npos) {
    QAT_ASSIGN_OR_RETURN(Dataset data,
                         Dataset::FromNpy(spec.substr(0, comma), spec.substr(comma + 1)));
    if (options.limit == 0 || options.limit >= data.size()) return data;
    std::vector<int64_t> first(static_cast<size_t>(options.limit));
    std::iota(first.begin(), first.end(), 0);
    Tensor features, labels;
    data.Gather(first, &features, &labels);
    return Dataset::Create(std::move(features), std::move(labels));
  }
  IdxOptions idx;
  idx.split = options.split;
  idx.limit = options.limit;
  idx.mean = options.mean;
  idx.std = options.std;
  const std::vector<ValueInfo> inputs = model.inputs();
  if (!inputs.empty() && inputs[0].shape.size() >= 2) {
    idx.example_shape.assign(inputs[0].shape.begin() + 1, inputs[0].shape.end());
  }
  return Dataset::FromIdx(spec, idx);
}

}  // namespace qat
