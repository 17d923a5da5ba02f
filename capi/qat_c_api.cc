// The C ABI over the C++ API.  Every entry point converts absl::Status into a
// QatStatus and catches whatever else escapes (QAT_C_API_BEGIN/END), so no
// exception crosses into C.
#include "qat_c_api.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qat/calibrate.h"
#include "qat/checkpoint.h"
#include "qat/fake_quant.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "qat/version.h"

static_assert(QAT_C_API_VERSION_MAJOR == QAT_VERSION_MAJOR &&
                  QAT_C_API_VERSION_MINOR == QAT_VERSION_MINOR &&
                  QAT_C_API_VERSION_PATCH == QAT_VERSION_PATCH,
              "qat_c_api.h and the project version disagree");

struct QatStatus {
  QatStatusCode code;
  std::string message;
};

namespace {

// Handles carry a magic number that free() overwrites, so that a call on a
// freed handle is usually caught (not guaranteed: the memory may be reused).
constexpr uint32_t kDead = 0xdeadbeef;

template <uint32_t kMagic>
struct Handle {
  uint32_t magic = kMagic;
  bool live() const { return magic == kMagic; }
  ~Handle() { magic = kDead; }
};

QatStatus* MakeStatus(QatStatusCode code, std::string message) {
  try {
    return new QatStatus{code, std::move(message)};
  } catch (...) {
    // Out of memory while reporting an error: a static status.
    static QatStatus out_of_memory{QAT_RESOURCE_EXHAUSTED, "out of memory"};
    return &out_of_memory;
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

// Checks a handle argument: non-NULL and live.
#define QAT_CHECK_HANDLE(h, what)                                                       \
  if ((h) == nullptr) return Invalid(std::string(what) + " is NULL");                   \
  if (!(h)->live()) return Invalid(std::string(what) + " is not a live handle (freed?)")
#define QAT_CHECK_PTR(p, what) \
  if ((p) == nullptr) return Invalid(std::string(what) + " is NULL")
// Checks an options struct's version.
#define QAT_CHECK_OPTIONS(o, expected, what)                                          \
  if ((o) != nullptr && ((o)->version == 0 || (o)->version > (expected)))             \
  return Invalid(absl::StrCat(what, " has version ", (o)->version, "; this libqat knows " \
                              "1 to ", expected, " (initialize it with its _INIT macro)"))

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
  return status == nullptr ? QAT_OK : status->code;
}

const char* qat_status_message(const QatStatus* status) {
  return status == nullptr ? "" : status->message.c_str();
}

void qat_status_free(QatStatus* status) {
  if (status != nullptr && status->message != "out of memory") delete status;
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

QatStatus* qat_model_serialize(const QatModel* model, void** out_data, size_t* out_size) {
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

QatStatus* qat_model_run(QatTensor** out, const QatModel* model, const QatTensor* input,
                         int num_threads) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_HANDLE(input, "input");
  const std::vector<qat::ValueInfo> inputs = model->model.inputs();
  if (inputs.size() != 1) return Invalid("qat_model_run needs a model with one input");
  qat::ExecutorOptions options;
  options.num_threads = num_threads;
  auto exec = qat::Executor::Create(model->model, options);
  if (!exec.ok()) return ToStatus(exec.status());
  auto outputs = (*exec)->Run({{inputs[0].name, input->tensor}});
  if (!outputs.ok()) return ToStatus(outputs.status());
  auto t = std::make_unique<QatTensor>();
  t->tensor = outputs->at(model->model.outputs()[0].name);
  *out = t.release();
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
  if (std::strcmp(name, "mlp") == 0) {
    qat::MlpSpec spec;
    spec.seed = seed;
    return WrapModel(out, qat::MakeMlp(spec));
  }
  if (std::strcmp(name, "lenet5") == 0) return WrapModel(out, qat::MakeLeNet5({seed, 13}));
  return Invalid(absl::StrCat("unknown zoo model '", name, "'; expected mlp or lenet5"));
  QAT_C_API_END
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
  return c;
}

QatStatus* qat_calibrate_arrays(QatCalibrationTable** out, const QatModel* model,
                                const QatTensor* features, const QatCalibrateOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_HANDLE(features, "features");
  QAT_CHECK_OPTIONS(options, QAT_CALIBRATE_OPTIONS_VERSION, "QatCalibrateOptions");
  auto c = ToCalibrateOptions(options);
  if (!c.ok()) return ToStatus(c.status());
  const qat::Tensor& x = features->tensor;
  auto data = qat::Dataset::Create(x, qat::Tensor(qat::DataType::kInt64,
                                                  {x.rank() > 0 ? x.dim(0) : 0}));
  if (!data.ok()) return ToStatus(data.status());
  auto table = qat::Calibrate(model->model, *data, *c);
  if (!table.ok()) return ToStatus(table.status());
  auto t = std::make_unique<QatCalibrationTable>();
  t->table = *std::move(table);
  *out = t.release();
  return nullptr;
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
  auto table = (*calibrator)->Finish();
  if (!table.ok()) return ToStatus(table.status());
  auto t = std::make_unique<QatCalibrationTable>();
  t->table = *std::move(table);
  *out = t.release();
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_calibration_table_load(QatCalibrationTable** out, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_PTR(path, "path");
  auto table = qat::CalibrationTable::Load(path);
  if (!table.ok()) return ToStatus(table.status());
  auto t = std::make_unique<QatCalibrationTable>();
  t->table = *std::move(table);
  *out = t.release();
  return nullptr;
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
  return WrapModel(out, qat::QuantizeModel(model->model, table->table, q));
  QAT_C_API_END
}

// ---- Training -------------------------------------------------------------------

QatStatus* qat_trainer_create(QatTrainer** out, const QatModel* model,
                              const QatTrainerOptions* options) {
  QAT_C_API_BEGIN
  QAT_CHECK_PTR(out, "out");
  *out = nullptr;
  QAT_CHECK_HANDLE(model, "model");
  QAT_CHECK_OPTIONS(options, QAT_TRAINER_OPTIONS_VERSION, "QatTrainerOptions");
  QatTrainerOptions d = QAT_TRAINER_OPTIONS_INIT;
  if (options == nullptr) options = &d;
  if (options->loss < QAT_LOSS_CROSS_ENTROPY || options->loss > QAT_LOSS_L1) {
    return Invalid(absl::StrCat("unknown loss ", static_cast<int>(options->loss)));
  }
  if (options->optimizer != QAT_OPTIMIZER_ADAMW && options->optimizer != QAT_OPTIMIZER_SGD) {
    return Invalid(absl::StrCat("unknown optimizer ", static_cast<int>(options->optimizer)));
  }
  auto fused = qat::FuseQdqToFakeQuant(model->model);
  if (!fused.ok()) return ToStatus(fused.status());
  qat::TrainingGraphOptions graph;
  const qat::LossKind losses[] = {qat::LossKind::kCrossEntropy, qat::LossKind::kMse,
                                  qat::LossKind::kBceWithLogits, qat::LossKind::kL1};
  graph.loss.kind = losses[options->loss];
  graph.frozen = Names(options->frozen, options->num_frozen);
  auto models = qat::BuildTrainingModels(*fused, graph);
  if (!models.ok()) return ToStatus(models.status());
  qat::TrainerOptions t;
  t.optimizer.kind = options->optimizer == QAT_OPTIMIZER_SGD ? qat::OptimizerKind::kSgd
                                                             : qat::OptimizerKind::kAdamW;
  t.optimizer.momentum = options->momentum;
  t.optimizer.nesterov = options->nesterov;
  t.optimizer.weight_decay = options->weight_decay;
  t.optimizer.max_grad_norm = options->max_grad_norm;
  t.schedule.lr = options->learning_rate;
  t.num_threads = options->num_threads;
  t.seed = options->seed;
  auto trainer = qat::Trainer::Create(*models, t);
  if (!trainer.ok()) return ToStatus(trainer.status());
  *out = new QatTrainer(*std::move(models), *std::move(trainer),
                        model->model.inputs().empty() ? "" : model->model.inputs()[0].name);
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_trainer_train_step(QatTrainer* trainer, const QatTensor* inputs,
                                  const QatTensor* labels, float* loss) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_HANDLE(inputs, "inputs");
  QAT_CHECK_HANDLE(labels, "labels");
  auto l = trainer->trainer->TrainStep(
      {{trainer->data_input, inputs->tensor}, {qat::kLabelsInput, labels->tensor}});
  if (!l.ok()) return ToStatus(l.status());
  if (loss != nullptr) *loss = *l;
  return nullptr;
  QAT_C_API_END
}

QatStatus* qat_trainer_eval_step(QatTrainer* trainer, const QatTensor* inputs,
                                 const QatTensor* labels, float* loss, QatTensor** out_logits) {
  QAT_C_API_BEGIN
  if (out_logits != nullptr) *out_logits = nullptr;
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_HANDLE(inputs, "inputs");
  QAT_CHECK_HANDLE(labels, "labels");
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
  qat::LrSchedule s;
  s.lr = learning_rate;
  return ToStatus(trainer->trainer->SetSchedule(s));
  QAT_C_API_END
}

int64_t qat_trainer_step_count(const QatTrainer* trainer) {
  return trainer != nullptr && trainer->live() ? trainer->trainer->progress().global_step : -1;
}

QatStatus* qat_trainer_save_checkpoint(const QatTrainer* trainer, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_PTR(path, "path");
  return ToStatus(qat::SaveCheckpoint(path, trainer->trainer->MakeCheckpoint()));
  QAT_C_API_END
}

QatStatus* qat_trainer_load_checkpoint(QatTrainer* trainer, const char* path) {
  QAT_C_API_BEGIN
  QAT_CHECK_HANDLE(trainer, "trainer");
  QAT_CHECK_PTR(path, "path");
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

QatStatus* qat_fake_quant(const float* x, size_t n, float* y, bool* mask,
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

QatStatus* qat_fake_quant_per_channel(const float* x, const int64_t* shape, size_t rank,
                                      int64_t axis, const float* scales,
                                      const float* zero_points, int32_t quant_min,
                                      int32_t quant_max, float* y, bool* mask) {
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

QatStatus* qat_fake_quant_grad(const float* dy, const bool* mask, size_t n, float* dx) {
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

QatStatus* qat_fake_quant_lsq_grad(const float* x, const float* dy, size_t n, float* dx,
                                   const QatFakeQuantParams* params, float grad_scale,
                                   float* scale_grad, float* zero_point_grad) {
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
