#include "qat/dataset.h"

#include <cstring>
#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "qat/idx.h"
#include "qat/npy.h"
#include "qat/status_macros.h"

namespace qat {
namespace {

// SplitMix64: a small, portable generator, so that every platform shuffles
// the same way (std::shuffle's algorithm is unspecified).
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), without modulo bias.
  uint64_t Below(uint64_t bound) {
    const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % bound);
    uint64_t v;
    do {
      v = Next();
    } while (v >= limit);
    return v % bound;
  }

 private:
  uint64_t state_;
};

std::string FindIdx(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem, stem + ".gz"}) {
    const std::string path = dir + "/" + name;
    if (std::ifstream(path).good()) return path;
  }
  return dir + "/" + stem;  // ReadIdx reports it missing
}

}  // namespace

absl::StatusOr<Dataset> Dataset::Create(Tensor features, Tensor labels) {
  // Any tensor type: float images and audio, int64 token ids and masks.
  // The executor checks the type against the model's input when a batch is
  // fed, and names both.
  if (features.dtype() == DataType::kUndefined || features.rank() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "features must be a tensor of rank >= 1, got ",
        DataTypeName(features.dtype()), " ", ShapeToString(features.shape())));
  }
  if (labels.rank() < 1 || labels.dim(0) != features.dim(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels ", ShapeToString(labels.shape()), " do not match features ",
        ShapeToString(features.shape()), " in their first dimension"));
  }
  if (labels.dtype() == DataType::kInt32) {
    Tensor wide(DataType::kInt64, labels.shape());
    const int32_t* src = labels.data<int32_t>();
    int64_t* dst = wide.data<int64_t>();
    for (int64_t i = 0; i < labels.num_elements(); ++i) dst[i] = src[i];
    labels = std::move(wide);
  } else if (labels.dtype() == DataType::kUInt8) {
    Tensor wide(DataType::kInt64, labels.shape());
    for (int64_t i = 0; i < labels.num_elements(); ++i) {
      wide.data<int64_t>()[i] = labels.data<uint8_t>()[i];
    }
    labels = std::move(wide);
  }
  if (labels.dtype() != DataType::kInt64 && labels.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels must be integer or float32, got ", DataTypeName(labels.dtype())));
  }
  return Dataset(std::move(features), std::move(labels));
}

absl::StatusOr<Dataset> Dataset::FromIdx(const std::string& dir,
                                         const IdxOptions& options) {
  if (options.split != "train" && options.split != "test") {
    return absl::InvalidArgumentError(absl::StrCat(
        "IDX split must be 'train' or 'test', got '", options.split, "'"));
  }
  if (!(options.std > 0.0f)) {
    return absl::InvalidArgumentError("IDX normalization std must be > 0");
  }
  const std::string prefix = options.split == "train" ? "train" : "t10k";
  // Only the first `limit` records are read (and a gzip bomb is never
  // inflated past them).
  QAT_ASSIGN_OR_RETURN(Tensor images,
                       ReadIdx(FindIdx(dir, prefix + "-images-idx3-ubyte"), options.limit));
  QAT_ASSIGN_OR_RETURN(Tensor labels,
                       ReadIdx(FindIdx(dir, prefix + "-labels-idx1-ubyte"), options.limit));
  if (images.rank() < 2 || labels.rank() != 1 || images.dim(0) != labels.dim(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "IDX images ", ShapeToString(images.shape()), " and labels ",
        ShapeToString(labels.shape()), " in '", dir, "' do not match"));
  }
  int64_t n = images.dim(0);
  if (options.limit > 0 && options.limit < n) n = options.limit;
  const int64_t per_example = images.num_elements() / std::max<int64_t>(1, images.dim(0));
  std::vector<int64_t> shape = {n};
  if (options.example_shape.empty()) {
    shape.insert(shape.end(), images.shape().begin() + 1, images.shape().end());
  } else {
    if (NumElements(options.example_shape) != per_example) {
      return absl::InvalidArgumentError(absl::StrCat(
          "IDX examples in '", dir, "' have ", per_example,
          " values, which do not fit the shape ",
          ShapeToString(options.example_shape)));
    }
    shape.insert(shape.end(), options.example_shape.begin(),
                 options.example_shape.end());
  }
  QAT_ASSIGN_OR_RETURN(Tensor features, Tensor::Create(DataType::kFloat32, shape));
  const uint8_t* src = images.data<uint8_t>();
  float* dst = features.data<float>();
  for (int64_t i = 0; i < n * per_example; ++i) {
    dst[i] = (static_cast<float>(src[i]) / 255.0f - options.mean) / options.std;
  }
  QAT_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(DataType::kInt64, {n}));
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = labels.data<uint8_t>()[i];
  return Create(std::move(features), std::move(y));
}

absl::StatusOr<Dataset> Dataset::FromNpy(const std::string& features_path,
                                         const std::string& labels_path) {
  QAT_ASSIGN_OR_RETURN(Tensor features, ReadNpy(features_path));
  QAT_ASSIGN_OR_RETURN(Tensor labels, ReadNpy(labels_path));
  auto d = Create(std::move(features), std::move(labels));
  if (!d.ok()) {
    return absl::Status(d.status().code(),
                        absl::StrCat(features_path, " and ", labels_path, ": ",
                                     d.status().message()));
  }
  return d;
}

void Dataset::Gather(absl::Span<const int64_t> indices, Tensor* features,
                     Tensor* labels) const {
  auto gather = [&](const Tensor& src, Tensor* dst) {
    std::vector<int64_t> shape = src.shape();
    shape[0] = static_cast<int64_t>(indices.size());
    dst->Resize(src.dtype(), shape);
    const size_t row = src.num_bytes() / static_cast<size_t>(std::max<int64_t>(1, src.dim(0)));
    const char* from = static_cast<const char*>(src.raw_data());
    char* to = static_cast<char*>(dst->raw_data());
    for (size_t k = 0; k < indices.size(); ++k) {
      std::memcpy(to + k * row, from + static_cast<size_t>(indices[k]) * row, row);
    }
  };
  gather(features_, features);
  gather(labels_, labels);
}

std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch,
                                bool shuffle) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  SplitMix rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    std::swap(order[i], order[rng.Below(static_cast<uint64_t>(i) + 1)]);
  }
  return order;
}

}  // namespace qat
