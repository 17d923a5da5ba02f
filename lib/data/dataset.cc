#include "qat/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "data/mapped_file.h"
#include "data/npy_header.h"
#include "data/npz.h"

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

// Labels as the trainer takes them: int64 (from int32, uint8 or int8) or float32.
absl::StatusOr<Tensor> WidenLabels(Tensor labels) {
  if (labels.dtype() == DataType::kInt32 || labels.dtype() == DataType::kUInt8 ||
      labels.dtype() == DataType::kInt8) {
    Tensor wide(DataType::kInt64, labels.shape());
    int64_t* dst = wide.data<int64_t>();
    for (int64_t i = 0; i < labels.num_elements(); ++i) {
      switch (labels.dtype()) {
        case DataType::kInt32: dst[i] = labels.data<int32_t>()[i]; break;
        case DataType::kUInt8: dst[i] = labels.data<uint8_t>()[i]; break;
        default: dst[i] = labels.data<int8_t>()[i]; break;
      }
    }
    return wide;
  }
  if (labels.dtype() != DataType::kInt64 && labels.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels must be integer or float32, got ", DataTypeName(labels.dtype())));
  }
  return labels;
}

// Integer and bool types widen to int64, float64 narrows to float32.
bool Converts(DataType from, DataType to) {
  if (from == to) return true;
  const bool integer = from == DataType::kInt32 || from == DataType::kInt8 ||
                       from == DataType::kUInt8 || from == DataType::kBool;
  return (to == DataType::kInt64 && integer) ||
         (to == DataType::kFloat32 && from == DataType::kFloat64);
}

// Element by element through memcpy: a row of a mapped .npy, or of an .npz
// member, need not be aligned for its type.
template <typename From, typename To>
void ConvertRow(const char* from, size_t count, char* to) {
  for (size_t i = 0; i < count; ++i) {
    From v;
    std::memcpy(&v, from + i * sizeof(From), sizeof(From));
    const To w = static_cast<To>(v);
    std::memcpy(to + i * sizeof(To), &w, sizeof(To));
  }
}

void Convert(DataType from, const char* src, size_t count, DataType to, char* dst) {
  if (to == DataType::kFloat32) return ConvertRow<double, float>(src, count, dst);
  switch (from) {
    case DataType::kInt32: return ConvertRow<int32_t, int64_t>(src, count, dst);
    case DataType::kInt8: return ConvertRow<int8_t, int64_t>(src, count, dst);
    case DataType::kUInt8: return ConvertRow<uint8_t, int64_t>(src, count, dst);
    default:  // bool: any nonzero byte is true
      for (size_t i = 0; i < count; ++i) {
        const int64_t w = src[i] != 0 ? 1 : 0;
        std::memcpy(dst + i * sizeof(int64_t), &w, sizeof(int64_t));
      }
      return;
  }
}

template <typename T>
int64_t FirstNotFinite(const char* row, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    T v;  // memcpy: a mapped row need not be aligned
    std::memcpy(&v, row + i * sizeof(T), sizeof(T));
    if (!std::isfinite(v)) return static_cast<int64_t>(i);
  }
  return -1;
}

void GatherRows(const char* src, DataType from, const std::vector<int64_t>& shape,
                absl::Span<const int64_t> indices, DataType type, Tensor* dst);

}  // namespace

// One input: [N, ...] rows, in a tensor or in a mapped file.
struct Dataset::Column {
  std::string name;
  std::string source;  // the file, for messages
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> shape;
  const char* data = nullptr;
  std::shared_ptr<const Tensor> tensor;   // in memory, or
  std::shared_ptr<const void> mapping;    // the mapped file or archive holding `data`
  struct Loaded {  // features() of a mapped column
    std::once_flag once;
    Tensor tensor;
  };
  std::unique_ptr<Loaded> loaded = std::make_unique<Loaded>();

  static Column InMemory(std::string name, std::string source, Tensor t) {
    Column c;
    c.name = std::move(name);
    c.source = std::move(source);
    c.tensor = std::make_shared<const Tensor>(std::move(t));
    c.dtype = c.tensor->dtype();
    c.shape = c.tensor->shape();
    c.data = static_cast<const char*>(c.tensor->raw_data());
    return c;
  }
};

absl::StatusOr<Dataset> Dataset::Make(std::vector<Column> inputs, std::optional<Tensor> labels,
                                      std::string source) {
  if (inputs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", source, "' holds no inputs"));
  }
  Dataset d;
  d.source_ = std::move(source);
  std::set<std::string> names;
  for (Column& c : inputs) {
    if (c.dtype == DataType::kUndefined || c.shape.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", c.source, "': an input must be a tensor of rank >= 1, got ",
          DataTypeName(c.dtype), " ", ShapeToString(c.shape)));
    }
    if (!names.insert(c.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", d.source_, "': the input '", c.name, "' is given twice"));
    }
    if (c.shape[0] != inputs[0].shape[0]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", c.source, "' has ", c.shape[0], " examples ", ShapeToString(c.shape), " but '",
          inputs[0].source, "' has ", inputs[0].shape[0], " ", ShapeToString(inputs[0].shape)));
    }
  }
  d.size_ = inputs[0].shape[0];
  if (labels.has_value()) {
    if (labels->rank() < 1 || labels->dim(0) != d.size_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "labels ", ShapeToString(labels->shape()), " do not match features ",
          ShapeToString(inputs[0].shape), " in their first dimension"));
    }
    QAT_ASSIGN_OR_RETURN(d.labels_, WidenLabels(*std::move(labels)));
    d.has_labels_ = true;
  } else {
    d.labels_ = Tensor(DataType::kInt64, {0});
  }
  for (Column& c : inputs) d.inputs_.push_back(std::make_shared<const Column>(std::move(c)));
  return d;
}

absl::StatusOr<Dataset> Dataset::Create(Tensor features, Tensor labels) {
  // Any tensor type: float images and audio, int64 token ids and masks.
  std::vector<Column> inputs;
  inputs.push_back(Column::InMemory("", "features", std::move(features)));
  return Make(std::move(inputs), std::move(labels), "features");
}

absl::StatusOr<Dataset> Dataset::FromInputs(std::vector<std::pair<std::string, Tensor>> inputs,
                                            std::optional<Tensor> labels) {
  std::vector<Column> columns;
  for (auto& [name, t] : inputs) {
    if (name.empty()) return absl::InvalidArgumentError("a dataset input needs a name");
    columns.push_back(Column::InMemory(name, absl::StrCat("input '", name, "'"), std::move(t)));
  }
  return Make(std::move(columns), std::move(labels), "inputs");
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
  std::vector<Column> inputs;
  inputs.push_back(Column::InMemory("", dir, std::move(features)));
  return Make(std::move(inputs), std::move(y), dir);
}

absl::StatusOr<Dataset::Column> Dataset::MappedColumn(std::string name, std::string source,
                                                      absl::string_view bytes,
                                                      std::shared_ptr<const void> keep) {
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(bytes);
  if (!h.ok()) {
    return absl::Status(h.status().code(), absl::StrCat("'", source, "': ", h.status().message()));
  }
  if (h->shape.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", source, "' holds a scalar; an input needs the examples along its first axis"));
  }
  if (h->shape[0] == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", source, "' holds no examples (shape ",
                                                   ShapeToString(h->shape), ")"));
  }
  Column c;
  c.name = std::move(name);
  c.source = std::move(source);
  c.dtype = h->dtype;
  c.shape = h->shape;
  c.data = bytes.data() + h->data_offset;
  c.mapping = std::move(keep);
  return c;
}

namespace {

// Reads a labels file whole (labels are small), naming the file on error.
absl::StatusOr<Tensor> ReadLabels(const std::string& path) {
  QAT_ASSIGN_OR_RETURN(Tensor labels, ReadNpy(path));
  absl::StatusOr<Tensor> wide = WidenLabels(std::move(labels));
  if (!wide.ok()) {
    return absl::Status(wide.status().code(), absl::StrCat("'", path, "': ", wide.status().message()));
  }
  return wide;
}

// The .npy files directly in `dir`, sorted by name.
absl::StatusOr<std::vector<std::string>> ListNpyFiles(const std::string& dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("cannot read the folder '", dir, "': ", error.message()));
  }
  std::vector<std::string> files;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".npy") && name.size() > 4) files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

absl::StatusOr<Dataset> Dataset::FromNpy(const std::string& features_path,
                                         const std::string& labels_path) {
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(features_path));
  std::vector<Column> inputs;
  QAT_ASSIGN_OR_RETURN(Column c, MappedColumn("", features_path, file->bytes(), file));
  inputs.push_back(std::move(c));
  std::optional<Tensor> labels;
  if (!labels_path.empty()) {
    QAT_ASSIGN_OR_RETURN(labels, ReadLabels(labels_path));
  }
  auto d = Make(std::move(inputs), std::move(labels), features_path);
  if (!d.ok() && !labels_path.empty()) {
    return absl::Status(d.status().code(), absl::StrCat(features_path, " and ", labels_path,
                                                        ": ", d.status().message()));
  }
  return d;
}

absl::StatusOr<Dataset> Dataset::FromNpyFolder(const std::string& dir) {
  std::vector<std::string> files;
  QAT_ASSIGN_OR_RETURN(files, ListNpyFiles(dir));
  std::vector<Column> inputs;
  std::optional<Tensor> labels;
  for (const std::string& file : files) {
    const std::string path = absl::StrCat(dir, "/", file);
    const std::string name = file.substr(0, file.size() - 4);
    if (name == "labels") {
      QAT_ASSIGN_OR_RETURN(labels, ReadLabels(path));
      continue;
    }
    QAT_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> mapped, MappedFile::Open(path));
    QAT_ASSIGN_OR_RETURN(Column c, MappedColumn(name, path, mapped->bytes(), mapped));
    inputs.push_back(std::move(c));
  }
  if (inputs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", dir, "' holds no input .npy files (one per model input, named after it)"));
  }
  return Make(std::move(inputs), std::move(labels), dir);
}

absl::StatusOr<Dataset> Dataset::FromNpz(const std::string& path) {
  QAT_ASSIGN_OR_RETURN(std::shared_ptr<const NpzArchive> archive, OpenNpz(path));
  std::vector<Column> inputs;
  std::optional<Tensor> labels;
  for (const NpzMember& m : archive->members) {
    const std::string source = absl::StrCat(path, ":", m.name, ".npy");
    if (m.name == "labels") {
      absl::StatusOr<Tensor> t = ParseNpy(m.bytes, source);
      QAT_RETURN_IF_ERROR(t.status());
      absl::StatusOr<Tensor> wide = WidenLabels(*std::move(t));
      if (!wide.ok()) {
        return absl::Status(wide.status().code(),
                            absl::StrCat("'", source, "': ", wide.status().message()));
      }
      labels = *std::move(wide);
      continue;
    }
    QAT_ASSIGN_OR_RETURN(Column c, MappedColumn(m.name, source, m.bytes, archive));
    inputs.push_back(std::move(c));
  }
  if (inputs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no input arrays"));
  }
  return Make(std::move(inputs), std::move(labels), path);
}

Dataset Dataset::Head(int64_t n) const {
  if (n >= size_ || n < 0) return *this;
  std::vector<int64_t> first(static_cast<size_t>(n));
  std::iota(first.begin(), first.end(), 0);
  Dataset d = *this;
  d.size_ = n;
  for (auto& column : d.inputs_) {
    const Column& c = *column;
    Column head;
    head.name = c.name;
    head.source = c.source;
    head.dtype = c.dtype;
    head.shape = c.shape;
    head.shape[0] = n;
    if (c.tensor) {
      Tensor rows;
      GatherRows(c.data, c.dtype, c.shape, first, c.dtype, &rows);
      head = Column::InMemory(c.name, c.source, std::move(rows));
    } else {
      head.data = c.data;
      head.mapping = c.mapping;
    }
    column = std::make_shared<const Column>(std::move(head));
  }
  if (has_labels_) {
    GatherRows(static_cast<const char*>(labels_.raw_data()), labels_.dtype(), labels_.shape(),
               first, labels_.dtype(), &d.labels_);
  }
  return d;
}

const std::string& Dataset::input_name(int64_t i) const { return inputs_.at(i)->name; }
DataType Dataset::input_dtype(int64_t i) const { return inputs_.at(i)->dtype; }
const std::vector<int64_t>& Dataset::input_shape(int64_t i) const { return inputs_.at(i)->shape; }

const Tensor& Dataset::features() const {
  const Column& c = *inputs_.front();
  if (c.tensor) return *c.tensor;
  std::call_once(c.loaded->once, [&] {
    c.loaded->tensor = Tensor(c.dtype, c.shape);
    if (c.loaded->tensor.num_bytes() > 0) {
      std::memcpy(c.loaded->tensor.raw_data(), c.data, c.loaded->tensor.num_bytes());
    }
  });
  return c.loaded->tensor;
}

namespace {

// Copies rows `indices` of [N, ...] data into *dst (resized, converted to `type`).
void GatherRows(const char* src, DataType from, const std::vector<int64_t>& shape,
                absl::Span<const int64_t> indices, DataType type, Tensor* dst) {
  std::vector<int64_t> out_shape = shape;
  out_shape[0] = static_cast<int64_t>(indices.size());
  dst->Resize(type, out_shape);
  const size_t per_row = static_cast<size_t>(
      shape[0] == 0 ? 0 : NumElements(shape) / shape[0]);
  const size_t row = per_row * DataTypeSize(from), out_row = per_row * DataTypeSize(type);
  char* to = static_cast<char*>(dst->raw_data());
  for (size_t k = 0; k < indices.size(); ++k) {
    const char* from_row = src + static_cast<size_t>(indices[k]) * row;
    if (from == type) {
      std::memcpy(to + k * out_row, from_row, row);
    } else {
      Convert(from, from_row, per_row, type, to + k * out_row);
    }
  }
}

}  // namespace

void Dataset::Gather(absl::Span<const int64_t> indices, Tensor* features,
                     Tensor* labels) const {
  const Column& c = *inputs_.front();
  GatherRows(c.data, c.dtype, c.shape, indices, c.dtype, features);
  if (has_labels_) {
    GatherRows(static_cast<const char*>(labels_.raw_data()), labels_.dtype(), labels_.shape(),
               indices, labels_.dtype(), labels);
  } else {
    labels->Resize(DataType::kInt64, {0});
  }
}

absl::StatusOr<InputBinding> Dataset::Bind(absl::Span<const ValueInfo> model_inputs,
                                           bool labels) const {
  InputBinding b;
  b.labels = labels;
  if (labels && !has_labels_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", source_, "' has no labels (labels.npy), and the model's loss needs them; "
        "prepare with a teacher to train without labels"));
  }
  std::vector<const ValueInfo*> fed(inputs_.size(), nullptr);
  if (inputs_.size() == 1 && model_inputs.size() == 1) {
    fed[0] = &model_inputs[0];  // one array, one input: the name need not match
  } else {
    std::set<std::string> taken;
    for (size_t i = 0; i < inputs_.size(); ++i) {
      for (const ValueInfo& v : model_inputs) {
        if (v.name == inputs_[i]->name) fed[i] = &v;
      }
      if (fed[i] == nullptr) {
        std::vector<std::string> names;
        for (const ValueInfo& v : model_inputs) names.push_back(v.name);
        if (inputs_[i]->name.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "'", inputs_[i]->source, "' is one unnamed array, which feeds a single-input model; "
              "this model has ", model_inputs.size(), " data inputs (", absl::StrJoin(names, ", "),
              "): give a folder (or an .npz) with one .npy per input, named after it"));
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "'", inputs_[i]->source, "': the model has no input '", inputs_[i]->name,
            "' (its data inputs: ", absl::StrJoin(names, ", "), ")"));
      }
      taken.insert(fed[i]->name);
    }
    for (const ValueInfo& v : model_inputs) {
      if (taken.count(v.name) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", source_, "' has no data for the model input '", v.name, "' (give ", v.name,
            ".npy)"));
      }
    }
  }
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const Column& c = *inputs_[i];
    const ValueInfo& v = *fed[i];
    if (v.has_shape) {
      bool fits = v.shape.size() == c.shape.size();
      for (size_t k = 1; fits && k < c.shape.size(); ++k) {
        fits = v.shape[k] < 0 || v.shape[k] == c.shape[k];
      }
      if (!fits) {
        std::vector<std::string> dims;
        for (int64_t d : v.shape) dims.push_back(d < 0 ? "?" : absl::StrCat(d));
        return absl::InvalidArgumentError(absl::StrCat(
            "'", c.source, "' holds ", ShapeToString(c.shape), ", which does not fit the model input '",
            v.name, "' [", absl::StrJoin(dims, ","), "] (the first axis is the examples)"));
      }
    }
    const DataType want = v.dtype == DataType::kUndefined ? c.dtype : v.dtype;
    if (!Converts(c.dtype, want)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", c.source, "' holds ", DataTypeName(c.dtype), ", but the model input '", v.name,
          "' is ", DataTypeName(want)));
    }
    b.names.push_back(v.name);
    b.types.push_back(want);
  }
  return b;
}

absl::Status Dataset::Gather(absl::Span<const int64_t> indices, const InputBinding& binding,
                             std::map<std::string, Tensor>* batch) const {
  if (binding.names.size() != inputs_.size()) {
    return absl::FailedPreconditionError("the input binding is not this dataset's");
  }
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const Column& c = *inputs_[i];
    Tensor& out = (*batch)[binding.names[i]];
    GatherRows(c.data, c.dtype, c.shape, indices, binding.types[i], &out);
    if (out.dtype() != DataType::kFloat32 && out.dtype() != DataType::kFloat64) continue;
    const size_t per_row = indices.empty() ? 0 : static_cast<size_t>(out.num_elements()) / indices.size();
    const size_t row_bytes = per_row * DataTypeSize(out.dtype());
    for (size_t k = 0; k < indices.size(); ++k) {
      const char* row = static_cast<const char*>(out.raw_data()) + k * row_bytes;
      const int64_t at = out.dtype() == DataType::kFloat32 ? FirstNotFinite<float>(row, per_row)
                                                           : FirstNotFinite<double>(row, per_row);
      if (at >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", c.source, "': example ", indices[k], " holds a NaN or Inf (element ", at, ")"));
      }
    }
  }
  if (binding.labels) {
    GatherRows(static_cast<const char*>(labels_.raw_data()), labels_.dtype(), labels_.shape(),
               indices, labels_.dtype(), &(*batch)["labels"]);
  }
  return absl::OkStatus();
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
