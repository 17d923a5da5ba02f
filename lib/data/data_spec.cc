#include "qat/data_spec.h"

#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

bool IsDir(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_directory(path, error);
}

bool HasIdx(const std::string& dir) {
  std::error_code error;
  for (const char* name : {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                           "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"}) {
    if (std::filesystem::exists(absl::StrCat(dir, "/", name), error)) return true;
  }
  return false;
}

absl::StatusOr<Dataset> LoadFiles(const std::string& spec, const Model& model,
                                  const DataSpecOptions& options) {
  const size_t comma = spec.find(',');
  if (comma != std::string::npos) {
    return Dataset::FromNpy(spec.substr(0, comma), spec.substr(comma + 1));
  }
  if (absl::EndsWith(spec, ".npy")) return Dataset::FromNpy(spec, "");
  if (absl::EndsWith(spec, ".npz")) return Dataset::FromNpz(spec);
  if (IsDir(spec) && !HasIdx(spec)) {
    // A folder of .npy files, or one with a train/ and a test/ folder of them.
    const std::string split = absl::StrCat(spec, "/", options.split);
    return Dataset::FromNpyFolder(IsDir(split) ? split : spec);
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

}  // namespace

absl::StatusOr<Dataset> LoadDataSpec(const std::string& spec, const Model& model,
                                     const DataSpecOptions& options) {
  if (options.split != "train" && options.split != "test") {
    return absl::InvalidArgumentError(
        absl::StrCat("the split must be 'train' or 'test', got '", options.split, "'"));
  }
  if (options.limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("limit must be >= 0, got ", options.limit));
  }
  QAT_ASSIGN_OR_RETURN(Dataset data, LoadFiles(spec, model, options));
  return options.limit > 0 ? data.Head(options.limit) : data;
}

}  // namespace qat
