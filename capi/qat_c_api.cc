// The C ABI over the C++ API.  Every entry point converts absl::Status into a
// QatStatus and catches whatever else escapes (QAT_C_API_BEGIN/END), so no
// exception crosses into C.
#include "qat/c_api.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qat/calibrate.h"
#include "qat/collective.h"
#include "qat/checkpoint.h"
#include "qat/data_spec.h"
#include "qat/evaluate.h"
#include "qat/executor.h"
#include "qat/export.h"
#include "qat/fake_quant.h"
#include "qat/model_zoo.h"
#include "qat/prepare.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "qat/train_folder.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "qat/version.h"

static_assert(QAT_C_API_VERSION_MAJOR == QAT_VERSION_MAJOR &&
                  QAT_C_API_VERSION_MINOR == QAT_VERSION_MINOR &&
                  QAT_C_API_VERSION_PATCH == QAT_VERSION_PATCH,
              "qat/c_api.h and the project version disagree");

namespace {

// Every handle starts with a magic number, one per kind, that its
// destructor overwrites: a call given a freed handle, or a handle of another
// kind, is usually caught (not guaranteed: the memory may be reused).  The
// magic is read as raw bytes, so reading it through the wrong handle type
// is only a 4-byte read at the handle's address.
constexpr uint32_t kDead = 0xdeadbeef;

template <uint32_t kMagic>
struct Handle {
  uint32_t magic = kMagic;
  bool live() const {
    uint32_t m;
    std::memcpy(&m, static_cast<const void*>(this), sizeof m);
    return m == kMagic;
  }
  ~Handle() { magic = kDead; }
};

// Marks a handle busy for the length of one call.  A second thread that
// enters while the flag is set fails instead of racing (the C header's
// concurrency contract); one atomic exchange, no lock, no waiting.
class Exclusive {
 public:
  explicit Exclusive(std::atomic<bool>& busy)
      : busy_(busy), owned_(!busy.exchange(true, std::memory_order_acquire)) {}
  ~Exclusive() {
    if (owned_) busy_.store(false, std::memory_order_release);
  }
  Exclusive(const Exclusive&) = delete;
  Exclusive& operator=(const Exclusive&) = delete;
  bool owned() const { return owned_; }

 private:
  std::atomic<bool>& busy_;
  const bool owned_;
};

}  // namespace

struct QatStatus : Handle<0x51415400> {
  QatStatus(QatStatusCode c, std::string m) : code(c), message(std::move(m)) {}
  QatStatusCode code;
  std::string message;
};

namespace {

// Returned when even a status cannot be allocated; qat_status_free knows it
// by its address.
QatStatus out_of_memory_status(QAT_RESOURCE_EXHAUSTED, "out of memory");

QatStatus* MakeStatus(QatStatusCode code, std::string message) {
  try {
    return new QatStatus(code, std::move(message));
  } catch (...) {
    return &out_of_memory_status;
  }
}

QatStatus* ToStatus(const absl::Status& s) {
  if (s.ok()) return nullptr;
  return MakeStatus(static_cast<QatStatusCode>(s.code()), std::string(s.message()));
}

QatStatus* Invalid(const std::string& message) {
  return MakeStatus(QAT_INVALID_ARGUMENT, message);
}

}  // namespace

struct QatTensor : Handle<0x51415401> {
  qat::Tensor tensor;
};
struct QatModel : Handle<0x51415402> {
  explicit QatModel(qat::Model m) : model(std::move(m)) {}
  qat::Model model;
};
struct QatCalibrationTable : Handle<0x51415403> {
  qat::CalibrationTable table;
};
struct QatTrainer : Handle<0x51415404> {
  QatTrainer(qat::TrainingModels m, std::unique_ptr<qat::Trainer> t, std::string input)
      : models(std::move(m)), trainer(std::move(t)), data_input(std::move(input)) {}
  qat::TrainingModels models;
  std::unique_ptr<qat::Trainer> trainer;
  std::string data_input;
  mutable std::atomic<bool> busy{false};
};
struct QatDataset : Handle<0x51415406> {
  explicit QatDataset(qat::Dataset d) : data(std::move(d)) {}
  qat::Dataset data;
};
struct QatExecutor : Handle<0x51415405> {
  explicit QatExecutor(std::unique_ptr<qat::Executor> e) : executor(std::move(e)) {}
  std::unique_ptr<qat::Executor> executor;
  std::atomic<bool> busy{false};
};

#define QAT_C_API_BEGIN try {
#define QAT_C_API_END                                                         \
  }                                                                           \
  catch (const std::bad_alloc&) {                                             \
    return MakeStatus(QAT_RESOURCE_EXHAUSTED, "out of memory");               \
  }                                                                           \
  catch (const std::exception& e) {                                           \
    return MakeStatus(QAT_INTERNAL, std::string("unexpected exception: ") + e.what()); \
  }                                                                           \
  catch (...) {                                                               \
    return MakeStatus(QAT_INTERNAL, "unexpected exception");                  \
  }

// Checks a handle argument: non-NULL and live.  (One statement, so that it
// can follow an `if`.)
#define QAT_CHECK_HANDLE(h, what)                                                 \
  do {                                                                            \
    if ((h) == nullptr) return Invalid(std::string(what) + " is NULL");           \
    if (!(h)->live()) {                                                           \
      return Invalid(std::string(what) +                                          \
                     " is not a live handle of its kind (freed, or another kind?)"); \
    }                                                                             \
  } while (0)
// Claims a trainer or an executor for the rest of the call.
#define QAT_ENTER(h, what)                                                              \
  Exclusive exclusive_call((h)->busy);                                                  \
  if (!exclusive_call.owned())                                                          \
  return MakeStatus(QAT_FAILED_PRECONDITION,                                            \
                    std::string(what) + " is in use by another thread: an executor or " \
                    "a trainer runs one call at a time")
#define QAT_CHECK_PTR(p, what)                                    \
  do {                                                            \
    if ((p) == nullptr) return Invalid(std::string(what) + " is NULL"); \
  } while (0)
// Checks an options struct's version.
#define QAT_CHECK_OPTIONS(o, expected, what)                                              \
  do {                                                                                    \
    if ((o) != nullptr && ((o)->version == 0 || (o)->version > (expected))) {             \
      return Invalid(absl::StrCat(what, " has version ", (o)->version, "; this libqat knows " \
                                  "1 to ", expected, " (initialize it with its _INIT macro)")); \
    }                                                                                     \
  } while (0)

extern "C" {

const char* qat_version(void) { return QAT_VERSION_STRING; }

const char* qat_kernel_variant(void) {
  try {
    return qat::FakeQuantKernelVariant();
  } catch (...) {
    return "unknown";
  }
}

QatStatusCode qat_status_code(const QatStatus* status) {
  if (status == nullptr) return QAT_OK;
  return status->live() ? status->code : QAT_INVALID_ARGUMENT;
}

const char* qat_status_message(const QatStatus* status) {
  if (status == nullptr) return "";
  return status->live() ? status->message.c_str()
                        : "not a live status handle (freed, or another kind of handle?)";
}

void qat_status_free(QatStatus* status) {
  if (status != nullptr && status != &out_of_memory_status && status->live()) delete status;
}

void qat_free(void* data) { std::free(data); }

// ---- Tensors ----------------------------------------------------------------

QatStatus* qat_tensor_create(QatTensor** out, QatDataType type, const int64_t* shape,
                             size_t rank, const void* data) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  if (!qat::IsSupportedDataType(static_cast<int32_t>(type))) {
    return Invalid(absl::StrCat("unsupported tensor type ", static_cast<int>(type)));
  }
  if (rank > 0 && shape == nullptr) return Invalid("shape is NULL for a tensor of rank > 0");
  std::vector<int64_t> dims(shape, shape + rank);
  // Checked before anything is allocated: a negative dimension or a count
  // that does not fit in 64 bits ({1 << 60, 784}) is InvalidArgument.
  absl::StatusOr<qat::Tensor> created =
      qat::Tensor::Create(static_cast<qat::DataType>(type), std::move(dims));
  if (!created.ok()) return ToStatus(created.status());
  auto t = std::make_unique<QatTensor>();
  t->tensor = *std::move(created);
  if (data != nullptr && t->tensor.num_bytes() > 0) {
    std::memcpy(t->tensor.raw_data(), data, t->tensor.num_bytes());
  }
  *out = t.release();
  return nullptr;
  QAT_C_API_END
}

QatDataType qat_tensor_type(const QatTensor* t) {
  return t != nullptr && t->live() ? static_cast<QatDataType>(t->tensor.dtype()) : QAT_FLOAT32;
}
size_t qat_tensor_rank(const QatTensor* t) {
  return t != nullptr && t->live() ? t->tensor.shape().size() : 0;
}
const int64_t* qat_tensor_shape(const QatTensor* t) {
  return t != nullptr && t->live() ? t->tensor.shape().data() : nullptr;
}
size_t qat_tensor_num_elements(const QatTensor* t) {
  return t != nullptr && t->live() ? static_cast<size_t>(t->tensor.num_elements()) : 0;
}
const void* qat_tensor_data(const QatTensor* t) {
  return t != nullptr && t->live() ? t->tensor.raw_data() : nullptr;
}
void qat_tensor_free(QatTensor* t) {
  if (t != nullptr && t->live()) delete t;
}

// ---- Models -----------------------------------------------------------------

static QatStatus* WrapModel(QatModel** out, absl::StatusOr<qat::Model> m) {
  if (!m.ok()) return ToStatus(m.status());
  *out = new QatModel(*std::move(m));
  return nullptr;
}

QatStatus* qat_model_load(QatModel** out, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(path, "path");
  return WrapModel(out, qat::Model::Load(path));
  QAT_C_API_END
}

QatStatus* qat_model_load_from_memory(QatModel** out, const void* data, size_t size) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(data, "data");
  return WrapModel(out, qat::Model::FromBytes(
                            absl::string_view(static_cast<const char*>(data), size), "<memory>"));
  QAT_C_API_END
}

QatStatus* qat_model_save(const QatModel* model, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_PTR(path, "path");
  return ToStatus(qat::SaveModel(model->model, path));
  QAT_C_API_END
}

QatStatus* qat_model_serialize(void** out_data, size_t* out_size, const QatModel* model) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out_data, "out_data");
  *out_data = nullptr;
  QAT_CHECK_PTR(out_size, "out_size");
  *out_size = 0;
  QAT_CHECK_HANDLE(model, "model");
  const std::string bytes = model->model.Serialize();
  void* copy = std::malloc(bytes.size() == 0 ? 1 : bytes.size());
  if (copy == nullptr) return MakeStatus(QAT_RESOURCE_EXHAUSTED, "out of memory");
  std::memcpy(copy, bytes.data(), bytes.size());
  *out_data = copy;
  *out_size = bytes.size();
  return nullptr;
  QAT_C_API_END
}

void qat_model_free(QatModel* model) {
  if (model != nullptr && model->live()) delete model;
}

QatStatus* qat_model_zoo(QatModel** out, const char* name, uint64_t seed) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(name, "name");
  return WrapModel(out, qat::MakeZooModel(name, seed));
  QAT_C_API_END
}

// ---- Executor -----------------------------------------------------------------

QatStatus* qat_executor_create(QatExecutor** out, const QatModel* model,
                               const QatExecutorOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_OPTIONS(options, QAT_EXECUTOR_OPTIONS_VERSION, "QatExecutorOptions");
  qat::ExecutorOptions e;
  if (options != nullptr) {
    e.num_threads = options->num_threads;
    e.seed = options->seed;
  }
  auto exec = qat::Executor::Create(model->model, e);
  if (!exec.ok()) return ToStatus(exec.status());
  *out = new QatExecutor(*std::move(exec));
  return nullptr;
  QAT_C_API_END
}

size_t qat_executor_num_inputs(const QatExecutor* e) {
  return e != nullptr && e->live() ? e->executor->inputs().size() : 0;
}
const char* qat_executor_input_name(const QatExecutor* e, size_t index) {
  if (e == nullptr || !e->live() || index >= e->executor->inputs().size()) return nullptr;
  return e->executor->inputs()[index].name.c_str();
}
size_t qat_executor_num_outputs(const QatExecutor* e) {
  return e != nullptr && e->live() ? e->executor->outputs().size() : 0;
}
const char* qat_executor_output_name(const QatExecutor* e, size_t index) {
  if (e == nullptr || !e->live() || index >= e->executor->outputs().size()) return nullptr;
  return e->executor->outputs()[index].name.c_str();
}

QatStatus* qat_executor_run(QatTensor** outputs, QatExecutor* executor,
                            const char* const* input_names, const QatTensor* const* inputs,
                            size_t num_inputs, const char* const* output_names,
                            size_t num_outputs) {
  QAT_C_API_BEGIN
  if (num_outputs > 0) QAT_CHECK_PTR(outputs, "outputs");
  for (size_t i = 0; i < num_outputs; ++i) outputs[i] = nullptr;
  QAT_CHECK_HANDLE(executor, "executor");
  if (num_inputs > 0) {
    QAT_CHECK_PTR(input_names, "input_names");
    QAT_CHECK_PTR(inputs, "inputs");
  }
  QAT_ENTER(executor, "the executor");
  std::map<std::string, const qat::Tensor*> feeds;
  for (size_t i = 0; i < num_inputs; ++i) {
    if (input_names[i] == nullptr) return Invalid(absl::StrCat("input_names[", i, "] is NULL"));
    const QatTensor* t = inputs[i];
    if (t == nullptr || !t->live()) {
      return Invalid(absl::StrCat("inputs[", i, "] (for '", input_names[i],
                                  "') is not a live tensor"));
    }
    if (!feeds.emplace(input_names[i], &t->tensor).second) {
      return Invalid(absl::StrCat("input '", input_names[i], "' is given twice"));
    }
  }
  // The names asked for, checked before the run so that a typo costs nothing.
  const std::vector<qat::ValueInfo>& model_outputs = executor->executor->outputs();
  std::vector<std::string> wanted;
  if (output_names == nullptr) {
    if (num_outputs != model_outputs.size()) {
      return Invalid(absl::StrCat("output_names is NULL (all outputs), so num_outputs must be ",
                                  model_outputs.size(), ", not ", num_outputs));
    }
    for (const qat::ValueInfo& v : model_outputs) wanted.push_back(v.name);
  } else {
    std::set<std::string> known;
    for (const qat::ValueInfo& v : model_outputs) known.insert(v.name);
    for (size_t i = 0; i < num_outputs; ++i) {
      if (output_names[i] == nullptr) {
        return Invalid(absl::StrCat("output_names[", i, "] is NULL"));
      }
      if (known.count(output_names[i]) == 0) {
        return Invalid(absl::StrCat("the model has no output '", output_names[i], "'"));
      }
      wanted.emplace_back(output_names[i]);
    }
  }
  std::map<std::string, qat::Tensor> results;
  if (absl::Status s = executor->executor->Run(feeds, &results); !s.ok()) return ToStatus(s);
  std::vector<std::unique_ptr<QatTensor>> made(wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    made[i] = std::make_unique<QatTensor>();
    // An output asked for twice is copied; otherwise it is moved out.
    auto later = std::find(wanted.begin() + i + 1, wanted.end(), wanted[i]);
    if (later != wanted.end()) {
      made[i]->tensor = results.at(wanted[i]);
    } else {
      made[i]->tensor = std::move(results.at(wanted[i]));
    }
  }
  for (size_t i = 0; i < wanted.size(); ++i) outputs[i] = made[i].release();
  return nullptr;
  QAT_C_API_END
}

void qat_executor_free(QatExecutor* executor) {
  if (executor != nullptr && executor->live()) delete executor;
}

QatStatus* qat_model_run(QatTensor** outputs, const QatModel* model,
                         const char* const* input_names, const QatTensor* const* inputs,
                         size_t num_inputs, const char* const* output_names, size_t num_outputs,
                         const QatExecutorOptions* options) {
  QAT_C_API_BEGIN
  if (num_outputs > 0) QAT_CHECK_PTR(outputs, "outputs");
  for (size_t i = 0; i < num_outputs; ++i) outputs[i] = nullptr;
  QatExecutor* executor = nullptr;
  if (QatStatus* s = qat_executor_create(&executor, model, options)) return s;
  std::unique_ptr<QatExecutor> owned(executor);
  return qat_executor_run(outputs, executor, input_names, inputs, num_inputs, output_names,
                          num_outputs);
  QAT_C_API_END
}

// ---- Data sets --------------------------------------------------------------

static QatStatus* WrapDataset(QatDataset** out, absl::StatusOr<qat::Dataset> d) {
  if (!d.ok()) return ToStatus(d.status());
  *out = new QatDataset(*std::move(d));
  return nullptr;
}

QatStatus* qat_dataset_load(QatDataset** out, const char* spec, const QatModel* model,
                            const QatDatasetOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(spec, "spec");
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_OPTIONS(options, QAT_DATASET_OPTIONS_VERSION, "QatDatasetOptions");
  qat::DataSpecOptions d;
  if (options != nullptr) {
    if (options->split != nullptr) d.split = options->split;
    d.limit = options->limit;
    d.mean = options->mean;
    d.std = options->std;
  }
  return WrapDataset(out, qat::LoadDataSpec(spec, model->model, d));
  QAT_C_API_END
}

QatStatus* qat_dataset_create(QatDataset** out, const QatTensor* features,
                              const QatTensor* labels) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(features, "features");
  if (labels != nullptr) {
    QAT_CHECK_HANDLE(labels, "labels");
    return WrapDataset(out, qat::Dataset::Create(features->tensor, labels->tensor));
  }
  const qat::Tensor& x = features->tensor;
  qat::Tensor zeros(qat::DataType::kInt64, {x.rank() > 0 ? x.dim(0) : 0});
  return WrapDataset(out, qat::Dataset::Create(x, std::move(zeros)));
  QAT_C_API_END
}

namespace {

// Concatenates same-typed [n_i, ...] parts along the first axis.
absl::StatusOr<qat::Tensor> Concatenate(const std::vector<qat::Tensor>& parts) {
  std::vector<int64_t> shape = parts.front().shape();
  int64_t n = 0;
  for (const qat::Tensor& p : parts) n += p.dim(0);
  shape[0] = n;
  QAT_ASSIGN_OR_RETURN(qat::Tensor out, qat::Tensor::Create(parts.front().dtype(), shape));
  char* to = static_cast<char*>(out.raw_data());
  for (const qat::Tensor& p : parts) {
    if (p.num_bytes() > 0) std::memcpy(to, p.raw_data(), p.num_bytes());
    to += p.num_bytes();
  }
  return out;
}

// The trailing dimensions and type of `t` match `first`'s.
bool SameKind(const qat::Tensor& t, const qat::Tensor& first) {
  return t.dtype() == first.dtype() && t.rank() == first.rank() && t.rank() >= 1 &&
         std::equal(t.shape().begin() + 1, t.shape().end(), first.shape().begin() + 1);
}

// Checks what a QatNamedBatchCallback filled for batch `b`: its version,
// names and live tensors of rank >= 1.
absl::Status CheckNamedBatch(const QatNamedBatch& batch, int64_t b) {
  if (batch.version != QAT_NAMED_BATCH_VERSION || batch.num_inputs == 0 ||
      batch.names == nullptr || batch.inputs == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch ", b, ": the callback gave no inputs (or a QatNamedBatch of another version)"));
  }
  for (size_t i = 0; i < batch.num_inputs; ++i) {
    if (batch.names[i] == nullptr || batch.names[i][0] == '\0') {
      return absl::InvalidArgumentError(absl::StrCat("batch ", b, ": input ", i, " has no name"));
    }
    const QatTensor* t = batch.inputs[i];
    if (t == nullptr || !t->live()) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch ", b, ": input '", batch.names[i], "' is not a tensor"));
    }
    if (t->tensor.rank() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch ", b, ": input '", batch.names[i], "' is a scalar"));
    }
  }
  if (batch.labels != nullptr && !batch.labels->live()) {
    return absl::InvalidArgumentError(absl::StrCat("batch ", b, ": bad labels tensor"));
  }
  return absl::OkStatus();
}

}  // namespace

QatStatus* qat_dataset_from_callback(QatDataset** out, QatNamedBatchCallback next_batch,
                                     void* user_data) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(next_batch, "next_batch");
  std::vector<std::string> names;
  std::vector<std::vector<qat::Tensor>> parts;
  std::vector<qat::Tensor> labels;
  for (int64_t b = 0;; ++b) {
    QatNamedBatch batch = QAT_NAMED_BATCH_INIT;
    const int r = next_batch(user_data, &batch);
    if (r == 0) break;
    if (r < 0) return MakeStatus(QAT_CANCELLED, "the batch callback stopped reading the data");
    if (absl::Status s = CheckNamedBatch(batch, b); !s.ok()) return ToStatus(s);
    if (b > 0 && batch.num_inputs != names.size()) {
      return Invalid(absl::StrCat("batch ", b, " has ", batch.num_inputs, " inputs, batch 0 has ",
                                  names.size()));
    }
    if (b > 0 && (batch.labels != nullptr) != !labels.empty()) {
      return Invalid(absl::StrCat("batch ", b, " differs from batch 0 in having labels"));
    }
    for (size_t i = 0; i < batch.num_inputs; ++i) {
      const QatTensor* t = batch.inputs[i];
      if (b == 0) {
        if (std::find(names.begin(), names.end(), batch.names[i]) != names.end()) {
          return Invalid(absl::StrCat("batch 0 names the input '", batch.names[i], "' twice"));
        }
        names.push_back(batch.names[i]);
        parts.emplace_back();
      } else if (names[i] != batch.names[i] || !SameKind(t->tensor, parts[i].front())) {
        return Invalid(absl::StrCat("batch ", b, ": input ", i, " '", batch.names[i],
                                    "' differs from batch 0's (name, type or trailing shape)"));
      }
      parts[i].push_back(t->tensor);
    }
    if (batch.labels != nullptr) {
      if (!labels.empty() && !SameKind(batch.labels->tensor, labels.front())) {
        return Invalid(absl::StrCat("batch ", b, ": labels differ from batch 0's"));
      }
      labels.push_back(batch.labels->tensor);
    }
  }
  if (names.empty()) return Invalid("the batch callback gave no batch");
  std::vector<std::pair<std::string, qat::Tensor>> inputs;
  for (size_t i = 0; i < names.size(); ++i) {
    auto whole = Concatenate(parts[i]);
    if (!whole.ok()) return ToStatus(whole.status());
    inputs.emplace_back(names[i], *std::move(whole));
  }
  std::optional<qat::Tensor> all_labels;
  if (!labels.empty()) {
    auto whole = Concatenate(labels);
    if (!whole.ok()) return ToStatus(whole.status());
    all_labels = *std::move(whole);
  }
  return WrapDataset(out, qat::Dataset::FromInputs(std::move(inputs), std::move(all_labels)));
  QAT_C_API_END
}

int64_t qat_dataset_size(const QatDataset* data) {
  return data != nullptr && data->live() ? data->data.size() : -1;
}

void qat_dataset_free(QatDataset* data) {
  if (data != nullptr && data->live()) delete data;
}

// ---- Calibration ------------------------------------------------------------

static absl::StatusOr<qat::CalibrateOptions> ToCalibrateOptions(const QatCalibrateOptions* o) {
  QatCalibrateOptions d = QAT_CALIBRATE_OPTIONS_INIT;
  if (o == nullptr) o = &d;
  if (o->method < QAT_CALIBRATION_MINMAX || o->method > QAT_CALIBRATION_MSE) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown calibration method ", static_cast<int>(o->method)));
  }
  qat::CalibrateOptions c;
  const qat::CalibrationMethod methods[] = {
      qat::CalibrationMethod::kMinMax, qat::CalibrationMethod::kMovingAverage,
      qat::CalibrationMethod::kPercentile, qat::CalibrationMethod::kEntropy,
      qat::CalibrationMethod::kMse};
  c.method = methods[o->method];
  c.per_channel_weights = o->per_channel_weights;
  c.symmetric_activations = o->symmetric_activations;
  if (o->symmetric_activations) c.activation_type = qat::QuantType::kInt8;
  c.batch_size = o->batch_size;
  c.num_threads = o->num_threads;
  if (o->version >= 2) {  // max_samples came with version 2
    if (o->max_samples < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_samples must be >= 0, not ", o->max_samples));
    }
    c.max_samples = o->max_samples;
  }
  if (o->version >= 3) {  // the widths came with version 3
    c.weight_bits = o->weight_bits;
    c.activation_bits = o->activation_bits;
  }
  return c;
}

static QatStatus* WrapTable(QatCalibrationTable** out,
                            absl::StatusOr<qat::CalibrationTable> table) {
  if (!table.ok()) return ToStatus(table.status());
  auto t = std::make_unique<QatCalibrationTable>();
  t->table = *std::move(table);
  *out = t.release();
  return nullptr;
}

QatStatus* qat_calibrate(QatCalibrationTable** out, const QatModel* model,
                         const QatDataset* data, const QatCalibrateOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_HANDLE(data, "data");
  QAT_CHECK_OPTIONS(options, QAT_CALIBRATE_OPTIONS_VERSION, "QatCalibrateOptions");
  auto c = ToCalibrateOptions(options);
  if (!c.ok()) return ToStatus(c.status());
  return WrapTable(out, qat::Calibrate(model->model, data->data, *c));
  QAT_C_API_END
}

QatStatus* qat_calibrate_arrays(QatCalibrationTable** out, const QatModel* model,
                                const QatTensor* features, const QatCalibrateOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QatDataset* data = nullptr;
  if (QatStatus* s = qat_dataset_create(&data, features, nullptr)) return s;
  std::unique_ptr<QatDataset> owned(data);
  return qat_calibrate(out, model, data, options);
  QAT_C_API_END
}

QatStatus* qat_calibrate_callback(QatCalibrationTable** out, const QatModel* model,
                                  QatBatchCallback next_batch, void* user_data,
                                  const QatCalibrateOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_PTR(next_batch, "next_batch");
  QAT_CHECK_OPTIONS(options, QAT_CALIBRATE_OPTIONS_VERSION, "QatCalibrateOptions");
  auto c = ToCalibrateOptions(options);
  if (!c.ok()) return ToStatus(c.status());
  auto calibrator = qat::Calibrator::Create(model->model, *c);
  if (!calibrator.ok()) return ToStatus(calibrator.status());
  for (;;) {
    const QatTensor* batch = nullptr;
    const int r = next_batch(user_data, &batch);
    if (r == 0) break;
    if (r < 0) return MakeStatus(QAT_CANCELLED, "the batch callback stopped calibration");
    if (batch == nullptr || !batch->live()) {
      return Invalid("the batch callback returned 1 without a live tensor");
    }
    if (absl::Status s = (*calibrator)->Observe(batch->tensor); !s.ok()) return ToStatus(s);
  }
  return WrapTable(out, (*calibrator)->Finish());
  QAT_C_API_END
}

QatStatus* qat_calibration_table_load(QatCalibrationTable** out, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(path, "path");
  return WrapTable(out, qat::CalibrationTable::Load(path));
  QAT_C_API_END
}

QatStatus* qat_calibration_table_save(const QatCalibrationTable* table, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(table, "table");
  QAT_CHECK_PTR(path, "path");
  return ToStatus(table->table.Save(path));
  QAT_C_API_END
}

size_t qat_calibration_table_size(const QatCalibrationTable* table) {
  return table != nullptr && table->live() ? table->table.entries().size() : 0;
}

void qat_calibration_table_free(QatCalibrationTable* table) {
  if (table != nullptr && table->live()) delete table;
}

// ---- Quantization -------------------------------------------------------------

static std::vector<std::string> Names(const char* const* names, size_t count) {
  std::vector<std::string> out;
  for (size_t i = 0; names != nullptr && i < count; ++i) {
    if (names[i] != nullptr) out.emplace_back(names[i]);
  }
  return out;
}

QatStatus* qat_quantize(QatModel** out, const QatModel* model, const QatCalibrationTable* table,
                        const QatQuantizeOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_HANDLE(table, "table");
  QAT_CHECK_OPTIONS(options, QAT_QUANTIZE_OPTIONS_VERSION, "QatQuantizeOptions");
  QatQuantizeOptions d = QAT_QUANTIZE_OPTIONS_INIT;
  if (options == nullptr) options = &d;
  qat::QuantizeOptions q;
  q.weight_bits = options->weight_bits;
  if (options->activation_type != QAT_UINT8 && options->activation_type != QAT_INT8) {
    return Invalid("activation_type must be QAT_UINT8 or QAT_INT8");
  }
  q.activation_type = options->activation_type == QAT_INT8 ? qat::QuantType::kInt8
                                                           : qat::QuantType::kUInt8;
  q.per_channel = options->per_channel;
  q.weights_as_int8 = options->weights_as_int8;
  q.symmetric_activations = options->symmetric_activations;
  q.exclude_nodes = Names(options->exclude_nodes, options->num_exclude_nodes);
  if (options->version >= 2) {  // the widths came with version 2
    q.activation_bits = options->activation_bits;
    q.weight_signed = !options->unsigned_weights;
    q.symmetric_weights = !options->affine_weights;
    const qat::QuantRangeMode modes[] = {qat::QuantRangeMode::kAuto, qat::QuantRangeMode::kNarrow,
                                         qat::QuantRangeMode::kFull};
    for (QatRangeMode m : {options->weight_range, options->activation_range}) {
      if (m < QAT_RANGE_AUTO || m > QAT_RANGE_FULL) {
        return Invalid(absl::StrCat("unknown range mode ", static_cast<int>(m)));
      }
    }
    q.weight_range = modes[options->weight_range];
    q.activation_range = modes[options->activation_range];
    if (options->num_node_overrides > 0 && options->node_overrides == nullptr) {
      return Invalid("node_overrides is NULL but num_node_overrides is not 0");
    }
    for (size_t i = 0; i < options->num_node_overrides; ++i) {
      const QatNodeOverride& o = options->node_overrides[i];
      if (o.node == nullptr) return Invalid(absl::StrCat("node_overrides[", i, "].node is NULL"));
      q.node_overrides[o.node] = {o.keep_float, o.weight_bits, o.activation_bits};
    }
  }
  if (options->version >= 3) q.block_size = options->block_size;  // came with version 3
  if (options->version >= 4) q.uint8_block_scales = options->uint8_block_scales;
  return WrapModel(out, qat::QuantizeModel(model->model, table->table, q));
  QAT_C_API_END
}

// ---- The folder stages: prepare, train, export, evaluate ------------------------

static absl::StatusOr<qat::LossKind> ToLoss(QatLoss loss) {
  const qat::LossKind losses[] = {qat::LossKind::kCrossEntropy, qat::LossKind::kMse,
                                  qat::LossKind::kBceWithLogits, qat::LossKind::kL1};
  if (loss < QAT_LOSS_CROSS_ENTROPY || loss > QAT_LOSS_L1) {
    return absl::InvalidArgumentError(absl::StrCat("unknown loss ", static_cast<int>(loss)));
  }
  return losses[loss];
}

// Version 3 of QatPrepareOptions as the loss's DistillOptions: a term per
// distilled output (every model output by default), then an mse term per
// intermediate tensor.  The loss pass checks the values (temperature,
// weights, names).
static absl::StatusOr<qat::DistillOptions> ToDistillOptions(const QatPrepareOptions& o,
                                                            const qat::Model& model) {
  const qat::DistillKind kinds[] = {qat::DistillKind::kMse, qat::DistillKind::kKl,
                                    qat::DistillKind::kCosine};
  if (o.distill_kind < QAT_DISTILL_MSE || o.distill_kind > QAT_DISTILL_COSINE) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown distill_kind ", static_cast<int>(o.distill_kind)));
  }
  // distill_weights is read only beside named outputs: it has no count.
  if (o.distill_weights != nullptr && (o.distill_outputs == nullptr || o.num_distill_outputs == 0)) {
    return absl::InvalidArgumentError(
        "distill_weights needs distill_outputs: one weight per named output");
  }
  std::vector<std::string> outputs;
  for (size_t i = 0; o.distill_outputs != nullptr && i < o.num_distill_outputs; ++i) {
    if (o.distill_outputs[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("distill_outputs[", i, "] is NULL"));
    }
    outputs.emplace_back(o.distill_outputs[i]);
  }
  if (outputs.empty()) {
    for (const qat::ValueInfo& v : model.outputs()) outputs.push_back(v.name);
  }
  qat::DistillOptions d;
  for (size_t i = 0; i < outputs.size(); ++i) {
    qat::DistillTerm term;
    term.student = outputs[i];
    term.kind = kinds[o.distill_kind];
    term.temperature = o.temperature;
    if (o.distill_weights != nullptr) term.weight = o.distill_weights[i];
    d.terms.push_back(std::move(term));
  }
  for (std::string& t : Names(o.distill_tensors, o.num_distill_tensors)) {
    qat::DistillTerm term;
    term.student = std::move(t);
    d.terms.push_back(std::move(term));
  }
  d.label_weight = o.label_weight;
  return d;
}

QatStatus* qat_prepare(const QatModel* model, const char* folder,
                       const QatPrepareOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_PTR(folder, "folder");
  QAT_CHECK_OPTIONS(options, QAT_PREPARE_OPTIONS_VERSION, "QatPrepareOptions");
  QatPrepareOptions d = QAT_PREPARE_OPTIONS_INIT;
  if (options == nullptr) options = &d;
  auto loss = ToLoss(options->loss);
  if (!loss.ok()) return ToStatus(loss.status());
  if (options->quant_params < QAT_QUANT_PARAMS_FIXED ||
      options->quant_params > QAT_QUANT_PARAMS_OBSERVE) {
    return Invalid(absl::StrCat("unknown quant_params mode ",
                                static_cast<int>(options->quant_params)));
  }
  qat::PrepareOptions p;
  p.graph.loss.kind = *loss;
  p.graph.learn_quant_params = options->quant_params == QAT_QUANT_PARAMS_LEARN;
  p.graph.observe_quant_params = options->quant_params == QAT_QUANT_PARAMS_OBSERVE;
  p.graph.frozen = Names(options->frozen, options->num_frozen);
  if (options->version >= 2) p.graph.trainable = Names(options->trainable, options->num_trainable);
  std::optional<qat::Model> recorded_teacher;
  if (options->version >= 3 && (options->teacher != nullptr || options->distill)) {
    if (options->teacher != nullptr) {
      QAT_CHECK_HANDLE(options->teacher, "options->teacher");
      p.graph.teacher = &options->teacher->model;
    } else {
      auto path = qat::RecordedTeacher(model->model);
      if (!path.ok()) return ToStatus(path.status());
      auto loaded = qat::Model::Load(*path);
      if (!loaded.ok()) return ToStatus(loaded.status());
      recorded_teacher = *std::move(loaded);
      p.graph.teacher = &*recorded_teacher;
    }
    auto distill = ToDistillOptions(*options, model->model);
    if (!distill.ok()) return ToStatus(distill.status());
    p.graph.loss.distill = *std::move(distill);
  }
  auto summary = qat::Prepare(model->model, folder, p);
  return summary.ok() ? nullptr : ToStatus(summary.status());
  QAT_C_API_END
}

// The C options' run settings as the stage's optionals: QAT_UNSET stays
// unset; enums and flags are range-checked here, numbers by the stage.
namespace {

// QatTrainFolderOptions::allreduce as a Collective (qat/collective.h).
class HookCollective final : public qat::Collective {
 public:
  HookCollective(QatAllreduceFn fn, void* user_data, int rank, int size)
      : fn_(fn), user_data_(user_data), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status Allreduce(absl::Span<float> values, qat::ReduceOp op) override {
    const int rc = fn_(user_data_, values.data(), values.size(), static_cast<QatReduceOp>(op));
    if (rc == 0) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(
        "rank ", rank_, " of ", size_, ": the allreduce hook returned ", rc,
        " (the last checkpoint holds the run: resume to go on)"));
  }

 private:
  QatAllreduceFn fn_;
  void* user_data_;
  int rank_, size_;
};

absl::StatusOr<std::shared_ptr<qat::Collective>> ToCollective(const QatTrainFolderOptions& o) {
  if (o.version < 2) return std::shared_ptr<qat::Collective>();
  if (o.allreduce != nullptr && o.mpi_comm != nullptr) {
    return absl::InvalidArgumentError(
        "QatTrainFolderOptions: set allreduce or mpi_comm, not both");
  }
  if (o.allreduce != nullptr) {
    if (o.num_ranks < 1 || o.rank < 0 || o.rank >= o.num_ranks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "QatTrainFolderOptions: rank ", o.rank, " is not in [0, num_ranks ", o.num_ranks, ")"));
    }
    return std::shared_ptr<qat::Collective>(
        new HookCollective(o.allreduce, o.allreduce_user_data, o.rank, o.num_ranks));
  }
  if (o.mpi_comm != nullptr) {
    return qat::MpiCommunicator(o.mpi_comm,
                                o.mpi_timeout_seconds > 0 ? o.mpi_timeout_seconds : 20.0);
  }
  return std::shared_ptr<qat::Collective>();
}

}  // namespace

static absl::StatusOr<qat::TrainFolderOptions> ToTrainFolderOptions(
    const QatTrainFolderOptions& o) {
  constexpr int64_t kUnset = QAT_UNSET;
  qat::TrainFolderOptions t;
  auto set_int = [&](int64_t v, std::optional<int64_t>* field) {
    if (v != kUnset) *field = v;
  };
  auto set_double = [&](double v, std::optional<double>* field) {
    if (v != static_cast<double>(kUnset)) *field = v;
  };
  set_int(o.epochs, &t.epochs);
  set_int(o.batch, &t.batch);
  set_int(o.warmup, &t.warmup);
  set_int(o.limit, &t.limit);
  set_int(o.observe_steps, &t.observe_steps);
  if (o.version >= 3) set_int(o.freeze_bn_steps, &t.freeze_bn_steps);  // came with version 3
  set_double(o.lr, &t.lr);
  set_double(o.momentum, &t.momentum);
  set_double(o.weight_decay, &t.weight_decay);
  set_double(o.max_grad_norm, &t.max_grad_norm);
  if (o.optimizer != kUnset) {
    if (o.optimizer != QAT_OPTIMIZER_ADAMW && o.optimizer != QAT_OPTIMIZER_SGD) {
      return absl::InvalidArgumentError(absl::StrCat("unknown optimizer ", o.optimizer));
    }
    t.optimizer = o.optimizer == QAT_OPTIMIZER_SGD ? qat::OptimizerKind::kSgd
                                                   : qat::OptimizerKind::kAdamW;
  }
  if (o.schedule != kUnset) {
    const qat::LrScheduleKind kinds[] = {qat::LrScheduleKind::kConstant,
                                         qat::LrScheduleKind::kLinear,
                                         qat::LrScheduleKind::kCosine};
    if (o.schedule < QAT_SCHEDULE_CONSTANT || o.schedule > QAT_SCHEDULE_COSINE) {
      return absl::InvalidArgumentError(absl::StrCat("unknown schedule ", o.schedule));
    }
    t.schedule = kinds[o.schedule];
  }
  if (o.nesterov != kUnset) {
    if (o.nesterov != 0 && o.nesterov != 1) {
      return absl::InvalidArgumentError(absl::StrCat("nesterov must be 0 or 1, not ", o.nesterov));
    }
    t.nesterov = o.nesterov == 1;
  }
  if (o.seed != kUnset) {
    if (o.seed < 0) {
      return absl::InvalidArgumentError(absl::StrCat("seed must be >= 0, not ", o.seed));
    }
    t.seed = static_cast<uint64_t>(o.seed);
  }
  if (o.data != nullptr) t.data = std::string(o.data);
  t.threads = o.num_threads;
  if (o.save_every != 0) t.save_every = o.save_every;
  t.resume = o.resume;
  if (o.version >= 4) {  // came with version 4
    t.batch_shards = o.batch_shards;
    t.sync_batch_norm = o.sync_batch_norm;
  }
  return t;
}

// What qat_train_folder and qat_train_folder_callback share: the options,
// the progress hook, the result.  `train` runs the stage.
static QatStatus* TrainFolderCall(
    QatTrainResult* result, const char* folder, const QatTrainFolderOptions* options,
    const std::function<absl::StatusOr<qat::TrainFolderResult>(
        const qat::TrainFolderOptions&, const qat::TrainFolderHooks&)>& train) {
  if (result != nullptr) {
    QAT_CHECK_OPTIONS(result, QAT_TRAIN_RESULT_VERSION, "QatTrainResult");
  }
  QAT_CHECK_PTR(folder, "folder");
  QAT_CHECK_OPTIONS(options, QAT_TRAIN_FOLDER_OPTIONS_VERSION, "QatTrainFolderOptions");
  QatTrainFolderOptions d = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  if (options == nullptr) options = &d;
  auto t = ToTrainFolderOptions(*options);
  if (!t.ok()) return ToStatus(t.status());
  auto collective = ToCollective(*options);
  if (!collective.ok()) return ToStatus(collective.status());
  t->collective = *std::move(collective);
  qat::TrainFolderHooks hooks;
  if (options->progress != nullptr) {
    const QatTrainCallback progress = options->progress;
    void* const user_data = options->user_data;
    hooks.on_step = [progress, user_data](const qat::TrainFolderStep& s) -> absl::Status {
      QatTrainProgress p;
      p.epoch = s.step.epoch;
      p.epochs = s.epochs;
      p.step_in_epoch = s.step.step_in_epoch + 1;
      p.steps_per_epoch = s.step.steps_per_epoch;
      p.global_step = s.step.global_step;
      p.loss = s.step.loss;
      p.lr = s.step.lr;
      p.epoch_mean_loss = s.epoch_mean_loss;
      if (progress(user_data, &p) == 0) return absl::OkStatus();
      return absl::CancelledError(absl::StrCat(
          "the progress callback stopped training after step ", p.global_step,
          " (the checkpoint holds it: resume to go on)"));
    };
  }
  auto r = train(*t, hooks);
  if (!r.ok()) return ToStatus(r.status());
  if (result != nullptr) {
    result->epochs = r->epochs;
    result->steps = r->steps;
  }
  return nullptr;
}

QatStatus* qat_train_folder(QatTrainResult* result, const char* folder, const QatDataset* data,
                            const QatTrainFolderOptions* options) {
  QAT_C_API_BEGIN
  if (data != nullptr) QAT_CHECK_HANDLE(data, "data");
  return TrainFolderCall(result, folder, options,
                         [&](const qat::TrainFolderOptions& t, const qat::TrainFolderHooks& h) {
                           return data != nullptr ? qat::TrainFolder(folder, data->data, t, h)
                                                  : qat::TrainFolder(folder, t, h);
                         });
  QAT_C_API_END
}

QatStatus* qat_train_folder_callback(QatTrainResult* result, const char* folder,
                                     QatTrainBatchCallback next_batch, void* user_data,
                                     int64_t steps_per_epoch,
                                     const QatTrainFolderOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(next_batch, "next_batch");
  auto batches = [next_batch, user_data](int64_t epoch, int64_t step, qat::Tensor* x,
                                         qat::Tensor* y) -> absl::Status {
    const QatTensor* features = nullptr;
    const QatTensor* labels = nullptr;
    const int r = next_batch(user_data, epoch, step, &features, &labels);
    if (r < 0) {
      return absl::CancelledError(absl::StrCat("the batch callback stopped training at step ",
                                               step, " of epoch ", epoch));
    }
    if (r == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the batch callback gave no batch for step ", step, " of epoch ", epoch,
          ": an epoch is steps_per_epoch batches"));
    }
    if (features == nullptr || !features->live() || labels == nullptr || !labels->live()) {
      return absl::InvalidArgumentError(
          "the batch callback returned 1 without live features and labels tensors");
    }
    *x = features->tensor;
    *y = labels->tensor;
    return absl::OkStatus();
  };
  return TrainFolderCall(result, folder, options,
                         [&](const qat::TrainFolderOptions& t, const qat::TrainFolderHooks& h) {
                           return qat::TrainFolder(folder, batches, steps_per_epoch, t, h);
                         });
  QAT_C_API_END
}

static qat::ExportOptions ToExportOptions(const QatExportOptions* options) {
  qat::ExportOptions e;
  if (options != nullptr) {
    e.keep_float_weights = options->keep_float_weights;
    if (options->version >= 2) e.opset = options->opset;  // came with version 2
    if (options->version >= 3) e.uint8_block_scales = options->uint8_block_scales;
  }
  return e;
}

QatStatus* qat_export_folder(QatModel** out, const char* folder,
                             const QatExportOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(folder, "folder");
  QAT_CHECK_OPTIONS(options, QAT_EXPORT_OPTIONS_VERSION, "QatExportOptions");
  return WrapModel(out, qat::ExportFolder(folder, ToExportOptions(options)));
  QAT_C_API_END
}

QatStatus* qat_export_folder_to_file(const char* folder, const char* path,
                                     const QatExportOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(folder, "folder");
  QAT_CHECK_PTR(path, "path");
  QAT_CHECK_OPTIONS(options, QAT_EXPORT_OPTIONS_VERSION, "QatExportOptions");
  auto model = qat::ExportFolder(folder, ToExportOptions(options));
  if (!model.ok()) return ToStatus(model.status());
  return ToStatus(model->Save(path));
  QAT_C_API_END
}

// What qat_evaluate and qat_evaluate_callback share: the report's, the
// model's and the options' checks, and the report filled from what
// `evaluate` returns.
static QatStatus* EvaluateCall(
    QatEvalReport* report, const QatModel* model, const QatEvaluateOptions* options,
    const std::function<absl::StatusOr<qat::EvalReport>(const qat::EvaluateOptions&)>&
        evaluate) {
  QAT_CHECK_PTR(report, "report");
  QAT_CHECK_OPTIONS(report, QAT_EVAL_REPORT_VERSION, "QatEvalReport");
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_OPTIONS(options, QAT_EVALUATE_OPTIONS_VERSION, "QatEvaluateOptions");
  qat::EvaluateOptions e;
  if (options != nullptr) {
    if (options->batch_size < 0) {
      return Invalid(absl::StrCat("batch_size must be >= 0, not ", options->batch_size));
    }
    if (options->batch_size > 0) e.batch_size = options->batch_size;
    e.num_threads = options->num_threads;
    if (options->input != nullptr) e.input = options->input;
    if (options->output != nullptr) e.output = options->output;
  }
  const absl::StatusOr<qat::EvalReport> r = evaluate(e);
  if (!r.ok()) return ToStatus(r.status());
  report->examples = r->examples;
  report->correct = r->correct;
  report->accuracy = r->accuracy;
  report->mean_loss = r->mean_loss;
  report->seconds = r->seconds;
  return nullptr;
}

QatStatus* qat_evaluate(QatEvalReport* report, const QatModel* model, const QatDataset* data,
                        const QatEvaluateOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(data, "data");
  return EvaluateCall(report, model, options, [&](const qat::EvaluateOptions& e) {
    return qat::Evaluate(model->model, data->data, e);
  });
  QAT_C_API_END
}

QatStatus* qat_evaluate_callback(QatEvalReport* report, const QatModel* model,
                                 QatNamedBatchCallback next_batch, void* user_data,
                                 const QatEvaluateOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(next_batch, "next_batch");
  int64_t b = 0;
  auto next = [&]() -> absl::StatusOr<std::optional<qat::Dataset>> {
    QatNamedBatch batch = QAT_NAMED_BATCH_INIT;
    const int r = next_batch(user_data, &batch);
    if (r == 0) {
      if (b == 0) return absl::InvalidArgumentError("the batch callback gave no batch");
      return std::nullopt;
    }
    if (r < 0) {
      return absl::CancelledError(
          absl::StrCat("the batch callback stopped the evaluation at batch ", b));
    }
    QAT_RETURN_IF_ERROR(CheckNamedBatch(batch, b));
    if (batch.labels == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch ", b, " has no labels: accuracy needs them"));
    }
    std::vector<std::pair<std::string, qat::Tensor>> inputs;
    for (size_t i = 0; i < batch.num_inputs; ++i) {
      inputs.emplace_back(batch.names[i], batch.inputs[i]->tensor);
    }
    auto part = qat::Dataset::FromInputs(std::move(inputs), batch.labels->tensor);
    if (!part.ok()) {
      return absl::Status(part.status().code(),
                          absl::StrCat("batch ", b, ": ", part.status().message()));
    }
    ++b;
    return std::optional<qat::Dataset>(*std::move(part));
  };
  return EvaluateCall(report, model, options, [&](const qat::EvaluateOptions& e) {
    return qat::EvaluateBatches(model->model, next, e);
  });
  QAT_C_API_END
}

// ---- Trainer ----------------------------------------------------------------------

// The trainer settings of QatTrainerOptions (its loss and frozen names are
// the caller's business: they shape the graph).
static absl::StatusOr<qat::TrainerOptions> ToTrainerOptions(const QatTrainerOptions& o) {
  if (o.optimizer != QAT_OPTIMIZER_ADAMW && o.optimizer != QAT_OPTIMIZER_SGD) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown optimizer ", static_cast<int>(o.optimizer)));
  }
  qat::TrainerOptions t;
  t.optimizer.kind =
      o.optimizer == QAT_OPTIMIZER_SGD ? qat::OptimizerKind::kSgd : qat::OptimizerKind::kAdamW;
  t.optimizer.momentum = o.momentum;
  t.optimizer.nesterov = o.nesterov;
  t.optimizer.weight_decay = o.weight_decay;
  t.optimizer.max_grad_norm = o.max_grad_norm;
  t.schedule.lr = o.learning_rate;
  t.num_threads = o.num_threads;
  t.seed = o.seed;
  return t;
}

// The data input a QatTrainer feeds: the first input that is not the labels.
static std::string DataInput(const qat::Model& model) {
  for (const qat::ValueInfo& v : model.inputs()) {
    if (v.name != qat::kLabelsInput) return v.name;
  }
  return "";
}

QatStatus* qat_trainer_create(QatTrainer** out, const QatModel* model,
                              const QatTrainerOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_OPTIONS(options, QAT_TRAINER_OPTIONS_VERSION, "QatTrainerOptions");
  QatTrainerOptions d = QAT_TRAINER_OPTIONS_INIT;
  if (options == nullptr) options = &d;
  auto loss = ToLoss(options->loss);
  if (!loss.ok()) return ToStatus(loss.status());
  auto t = ToTrainerOptions(*options);
  if (!t.ok()) return ToStatus(t.status());
  qat::PrepareOptions prepare;
  prepare.graph.loss.kind = *loss;
  prepare.graph.frozen = Names(options->frozen, options->num_frozen);
  auto models = qat::PrepareModels(model->model, prepare);
  if (!models.ok()) return ToStatus(models.status());
  auto trainer = qat::Trainer::Create(*models, *t);
  if (!trainer.ok()) return ToStatus(trainer.status());
  *out = new QatTrainer(*std::move(models), *std::move(trainer),
                        model->model.inputs().empty() ? "" : model->model.inputs()[0].name);
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_trainer_open_folder(QatTrainer** out, const char* folder,
                                   const QatTrainerOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(folder, "folder");
  QAT_CHECK_OPTIONS(options, QAT_TRAINER_OPTIONS_VERSION, "QatTrainerOptions");
  QatTrainerOptions d = QAT_TRAINER_OPTIONS_INIT;
  if (options == nullptr) options = &d;
  auto t = ToTrainerOptions(*options);
  if (!t.ok()) return ToStatus(t.status());
  auto models = qat::LoadTrainingModels(folder);
  if (!models.ok()) return ToStatus(models.status());
  auto trainer = qat::OpenFolderTrainer(folder, *models, *t);
  if (!trainer.ok()) return ToStatus(trainer.status());
  std::string input = DataInput(models->eval);
  *out = new QatTrainer(*std::move(models), *std::move(trainer), std::move(input));
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_trainer_train_step(float* loss, QatTrainer* trainer, const QatTensor* inputs,
                                  const QatTensor* labels) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_HANDLE(inputs, "inputs");
  QAT_CHECK_HANDLE(labels, "labels");
  QAT_ENTER(trainer, "the trainer");
  auto l = trainer->trainer->TrainStep(
      {{trainer->data_input, inputs->tensor}, {qat::kLabelsInput, labels->tensor}});
  if (!l.ok()) return ToStatus(l.status());
  if (loss != nullptr) *loss = *l;
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_trainer_eval_step(float* loss, QatTensor** out_logits, QatTrainer* trainer,
                                 const QatTensor* inputs, const QatTensor* labels) {
  QAT_C_API_BEGIN
  if (out_logits != nullptr) *out_logits = nullptr;
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_HANDLE(inputs, "inputs");
  QAT_CHECK_HANDLE(labels, "labels");
  QAT_ENTER(trainer, "the trainer");
  auto out = trainer->trainer->EvalStep(
      {{trainer->data_input, inputs->tensor}, {qat::kLabelsInput, labels->tensor}});
  if (!out.ok()) return ToStatus(out.status());
  if (loss != nullptr) *loss = out->at(qat::kLossOutput).values<float>()[0];
  if (out_logits != nullptr) {
    const std::vector<qat::ValueInfo> outs = trainer->models.eval.outputs();
    if (outs.size() > 1) {
      auto t = std::make_unique<QatTensor>();
      t->tensor = out->at(outs[1].name);
      *out_logits = t.release();
    }
  }
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_trainer_set_learning_rate(QatTrainer* trainer, float learning_rate) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_ENTER(trainer, "the trainer");
  qat::LrSchedule s;
  s.lr = learning_rate;
  return ToStatus(trainer->trainer->SetSchedule(s));
  QAT_C_API_END
}

int64_t qat_trainer_step_count(const QatTrainer* trainer) {
  if (trainer == nullptr || !trainer->live()) return -1;
  Exclusive exclusive_call(trainer->busy);
  return exclusive_call.owned() ? trainer->trainer->progress().global_step : -1;
}

QatStatus* qat_trainer_save_checkpoint(const QatTrainer* trainer, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_PTR(path, "path");
  QAT_ENTER(trainer, "the trainer");
  return ToStatus(trainer->trainer->SaveCheckpoint(path, trainer->trainer->progress(), {}));
  QAT_C_API_END
}

QatStatus* qat_trainer_load_checkpoint(QatTrainer* trainer, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_PTR(path, "path");
  QAT_ENTER(trainer, "the trainer");
  auto c = qat::LoadCheckpoint(path);
  if (!c.ok()) return ToStatus(c.status());
  return ToStatus(trainer->trainer->RestoreCheckpoint(*c));
  QAT_C_API_END
}

QatStatus* qat_trainer_export(QatModel** out, const QatTrainer* trainer,
                              bool keep_float_weights) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_ENTER(trainer, "the trainer");
  const std::map<std::string, qat::Tensor> params =
      qat::ExportedParameters(trainer->trainer->MakeCheckpoint());
  qat::ExportOptions options;
  options.keep_float_weights = keep_float_weights;
  return WrapModel(out, qat::ExportQuantizedModel(trainer->models.eval, params, options));
  QAT_C_API_END
}

void qat_trainer_free(QatTrainer* trainer) {
  if (trainer != nullptr && trainer->live()) delete trainer;
}

// ---- Kernels --------------------------------------------------------------------

static absl::StatusOr<qat::FakeQuantParams> ToParams(const QatFakeQuantParams* p) {
  if (p == nullptr) return absl::InvalidArgumentError("params is NULL");
  if (p->version == 0 || p->version > QAT_FAKE_QUANT_PARAMS_VERSION) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QatFakeQuantParams has version ", p->version,
        " (initialize it with QAT_FAKE_QUANT_PARAMS_INIT)"));
  }
  return qat::FakeQuantParams{p->scale, p->zero_point, {p->quant_min, p->quant_max}};
}

QatStatus* qat_fake_quant(float* y, bool* mask, const float* x, size_t n,
                          const QatFakeQuantParams* params) {
  QAT_C_API_BEGIN
  if (n > 0) {
    QAT_CHECK_PTR(x, "x");
    QAT_CHECK_PTR(y, "y");
  }
  auto p = ToParams(params);
  if (!p.ok()) return ToStatus(p.status());
  return ToStatus(qat::FakeQuantPerTensor(
      absl::Span<const float>(x, n), absl::Span<float>(y, n),
      mask == nullptr ? absl::Span<bool>() : absl::Span<bool>(mask, n), *p));
  QAT_C_API_END
}

QatStatus* qat_fake_quant_per_channel(float* y, bool* mask, const float* x, const int64_t* shape,
                                      size_t rank, int64_t axis, const float* scales,
                                      const float* zero_points, int32_t quant_min,
                                      int32_t quant_max) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(x, "x");
  QAT_CHECK_PTR(y, "y");
  QAT_CHECK_PTR(scales, "scales");
  QAT_CHECK_PTR(zero_points, "zero_points");
  if (rank > 0) QAT_CHECK_PTR(shape, "shape");
  const std::vector<int64_t> dims(shape, shape + rank);
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return Invalid(absl::StrCat("negative dimension ", d));
    n *= d;
  }
  const int64_t a = axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
  if (a < 0 || a >= static_cast<int64_t>(rank)) {
    return Invalid(absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  const size_t channels = static_cast<size_t>(dims[a]);
  const qat::PerChannelFakeQuantParams p{absl::Span<const float>(scales, channels),
                                         absl::Span<const float>(zero_points, channels), axis,
                                         {quant_min, quant_max}};
  return ToStatus(qat::FakeQuantPerChannel(
      dims, absl::Span<const float>(x, n), absl::Span<float>(y, n),
      mask == nullptr ? absl::Span<bool>() : absl::Span<bool>(mask, n), p));
  QAT_C_API_END
}

QatStatus* qat_fake_quant_grad(float* dx, const float* dy, const bool* mask, size_t n) {
  QAT_C_API_BEGIN
  if (n > 0) {
    QAT_CHECK_PTR(dy, "dy");
    QAT_CHECK_PTR(mask, "mask");
    QAT_CHECK_PTR(dx, "dx");
  }
  return ToStatus(qat::FakeQuantGrad(absl::Span<const float>(dy, n),
                                     absl::Span<const bool>(mask, n), absl::Span<float>(dx, n)));
  QAT_C_API_END
}

QatStatus* qat_fake_quant_lsq_grad(float* scale_grad, float* zero_point_grad, float* dx,
                                   const float* x, const float* dy, size_t n,
                                   const QatFakeQuantParams* params, float grad_scale) {
  QAT_C_API_BEGIN
  if (n > 0) {
    QAT_CHECK_PTR(x, "x");
    QAT_CHECK_PTR(dy, "dy");
  }
  QAT_CHECK_PTR(scale_grad, "scale_grad");
  QAT_CHECK_PTR(zero_point_grad, "zero_point_grad");
  auto p = ToParams(params);
  if (!p.ok()) return ToStatus(p.status());
  auto g = qat::FakeQuantLsqGradPerTensor(
      absl::Span<const float>(x, n), absl::Span<const float>(dy, n),
      dx == nullptr ? absl::Span<float>() : absl::Span<float>(dx, n), *p, grad_scale);
  if (!g.ok()) return ToStatus(g.status());
  *scale_grad = g->scale;
  *zero_point_grad = g->zero_point;
  return nullptr;
  QAT_C_API_END
}

}  // extern "C"
