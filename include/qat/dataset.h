// Datasets for calibration, training and evaluation: named input arrays
// (one per model input, examples along the first axis) and optional labels,
// read from IDX folders (MNIST, Fashion-MNIST), .npy files, folders of .npy
// files or .npz archives, and cut into batches in a seeded order.
//
// .npy inputs are memory-mapped: a batch copies the rows it needs, so a
// 10 GB array is never loaded whole.  Labels are held in memory.
//
// The order of epoch e is a pure function of (seed, e): a resumed run sees
// the same batches as an uninterrupted one.  Every format batches the same
// way: EpochOrder, then consecutive slices, the last one possibly smaller.
//
// Thread safety: a Dataset is immutable; const methods may be called from
// several threads at once.
#ifndef QAT_DATASET_H_
#define QAT_DATASET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "qat/api.h"
#include "qat/model.h"
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

// How a dataset's inputs feed a model's data inputs (Dataset::Bind): checked
// once, then used for every batch.
struct InputBinding {
  std::vector<std::string> names;  // the model input each dataset input feeds
  std::vector<DataType> types;     // the type the model wants (a batch is converted)
  bool labels = false;             // batches carry "labels" too
};

class QAT_API Dataset {
 public:
  // One input (unnamed: it feeds a model's single data input).  features
  // [N, ...] of any type (float32 for images and audio, int64 for token
  // ids); labels [N, ...] int64 (int32 and uint8 are converted) or float32.
  // InvalidArgument when N differs or types are wrong.
  static absl::StatusOr<Dataset> Create(Tensor features, Tensor labels);
  // Named inputs, each [N, ...], and labels when given.  InvalidArgument for
  // no inputs, an empty or repeated name, or first dimensions that differ.
  static absl::StatusOr<Dataset> FromInputs(std::vector<std::pair<std::string, Tensor>> inputs,
                                            std::optional<Tensor> labels);
  // Reads <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
  static absl::StatusOr<Dataset> FromIdx(const std::string& dir,
                                         const IdxOptions& options = {});
  // One unnamed input; labels_path may be empty (a set without labels).
  static absl::StatusOr<Dataset> FromNpy(const std::string& features_path,
                                         const std::string& labels_path);
  // <dir>/<input name>.npy for every input, and <dir>/labels.npy when the
  // set has labels; every other file is ignored.
  static absl::StatusOr<Dataset> FromNpyFolder(const std::string& dir);
  // The same names as members of an .npz archive.
  static absl::StatusOr<Dataset> FromNpz(const std::string& path);

  // The first `n` examples (all when n >= size()); mapped inputs stay mapped.
  Dataset Head(int64_t n) const;

  int64_t size() const { return size_; }
  int64_t num_inputs() const { return static_cast<int64_t>(inputs_.size()); }
  // "" for the one unnamed input of Create, FromIdx and FromNpy.
  const std::string& input_name(int64_t i) const;
  DataType input_dtype(int64_t i) const;
  const std::vector<int64_t>& input_shape(int64_t i) const;  // [N, ...]
  bool has_labels() const { return has_labels_; }
  // Where the data came from (a file or a folder), for messages.
  const std::string& source() const { return source_; }

  // The first input as a tensor (a mapped input is copied into memory, once).
  const Tensor& features() const;
  // [N, ...]; an empty int64 [0] when !has_labels().
  const Tensor& labels() const { return labels_; }

  // Copies the examples at `indices` of the first input and the labels into
  // *features and *labels (resized).
  void Gather(absl::Span<const int64_t> indices, Tensor* features,
              Tensor* labels) const;

  // Matches the inputs to a model's data inputs: by name, or the one input
  // to the one model input.  InvalidArgument naming the file for an input
  // the model does not have, a model input the data does not have, a shape
  // that does not match the model's fixed dimensions, or a type that does
  // not convert (integers widen to int64 and float64 narrows to float32;
  // nothing else converts).  `labels`: batches must carry labels;
  // InvalidArgument when the set has none.
  absl::StatusOr<InputBinding> Bind(absl::Span<const ValueInfo> model_inputs,
                                    bool labels) const;
  // The examples at `indices`, named as `binding` says, converted to the
  // model's types, into *batch (tensors reused).  InvalidArgument naming the
  // file and the example for NaN or Inf in a float input.
  absl::Status Gather(absl::Span<const int64_t> indices, const InputBinding& binding,
                      std::map<std::string, Tensor>* batch) const;

 private:
  struct Column;
  Dataset() = default;
  static absl::StatusOr<Column> MappedColumn(std::string name, std::string source,
                                            absl::string_view bytes,
                                            std::shared_ptr<const void> keep);
  static absl::StatusOr<Dataset> Make(std::vector<Column> inputs, std::optional<Tensor> labels,
                                      std::string source);
  std::vector<std::shared_ptr<const Column>> inputs_;
  Tensor labels_;
  bool has_labels_ = false;
  int64_t size_ = 0;
  std::string source_;
};

// The order of the examples in epoch `epoch`: 0..n-1, shuffled with a
// generator seeded by (seed, epoch) when `shuffle`.
QAT_API std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed,
                                        int64_t epoch, bool shuffle);

}  // namespace qat

#endif  // QAT_DATASET_H_
