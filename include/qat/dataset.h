// Datasets for training and evaluation: examples held in memory, read from
// IDX folders (MNIST, Fashion-MNIST) or .npy arrays, and cut into batches in
// a seeded order.
//
// The order of epoch e is a pure function of (seed, e): a resumed run sees
// the same batches as an uninterrupted one.
#ifndef QAT_DATASET_H_
#define QAT_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/api.h"
#include "qat/tensor.h"

namespace qat {

// The Debian package dataset-fashion-mnist installs here.
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

struct IdxOptions {
  std::string split = "train";  // "train" or "test" (t10k files)
  // x -> (x / 255 - mean) / std; Fashion-MNIST's statistics by default.
  float mean = 0.2860f;
  float std = 0.3530f;
  int64_t limit = 0;  // keep the first `limit` examples (0: all)
  // Shape of one example, e.g. {784} or {1, 28, 28}; empty: the file's.
  std::vector<int64_t> example_shape = {784};
};

class QAT_API Dataset {
 public:
  // features [N, ...] of any type (float32 for images and audio, int64 for
  // token ids); labels [N, ...] int64 (int32 is converted)
  // or float32.  InvalidArgument when N differs or types are wrong.
  static absl::StatusOr<Dataset> Create(Tensor features, Tensor labels);
  // Reads <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
  static absl::StatusOr<Dataset> FromIdx(const std::string& dir,
                                         const IdxOptions& options = {});
  static absl::StatusOr<Dataset> FromNpy(const std::string& features_path,
                                         const std::string& labels_path);

  int64_t size() const { return features_.dim(0); }
  const Tensor& features() const { return features_; }
  const Tensor& labels() const { return labels_; }

  // Copies the examples at `indices` into *features and *labels (resized).
  void Gather(absl::Span<const int64_t> indices, Tensor* features,
              Tensor* labels) const;

 private:
  Dataset(Tensor features, Tensor labels)
      : features_(std::move(features)), labels_(std::move(labels)) {}
  Tensor features_;
  Tensor labels_;
};

// The order of the examples in epoch `epoch`: 0..n-1, shuffled with a
// generator seeded by (seed, epoch) when `shuffle`.
QAT_API std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed,
                                        int64_t epoch, bool shuffle);

}  // namespace qat

#endif  // QAT_DATASET_H_
