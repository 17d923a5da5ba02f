/* libqat's stable C ABI: quantization-aware training of ONNX models.
 *
 * Pure C99.  Conventions (after ONNX Runtime, libgit2 and zstd):
 *  - Every call that can fail returns a QatStatus*: NULL means success;
 *    otherwise the caller owns the status and frees it with
 *    qat_status_free().  qat_status_code() and qat_status_message() read it.
 *  - Handles are opaque and come in create/free pairs; freeing NULL is a
 *    no-op.  The out parameter comes first; the caller owns what it receives
 *    through it and frees it with the matching qat_*_free, never free().
 *  - Options structs start with a `version` field: initialize them with their
 *    _INIT macro, then set fields, so that fields added later keep defaults.
 *  - No C++ exception crosses this boundary.  A call on a handle that was
 *    already freed is detected where it is cheap to (a handle checks a magic
 *    number) and reported as QAT_INVALID_ARGUMENT; it is still undefined
 *    behaviour, so do not rely on it.
 *
 * Threading: calls on different handles may run on different threads at the
 * same time.  One handle must not be used by two threads at once (models,
 * tables and tensors may be shared for reading once created).  The kernel
 * functions and qat_version() are thread-safe.
 *
 * Compile-time version: QAT_C_API_VERSION_{MAJOR,MINOR,PATCH};
 * run-time: qat_version().
 */
#ifndef QAT_C_API_H_
#define QAT_C_API_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(QAT_STATIC_DEFINE)
#define QAT_C_API
#elif defined(_WIN32)
#define QAT_C_API __declspec(dllimport)
#else
#define QAT_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define QAT_C_API_VERSION_MAJOR 0
#define QAT_C_API_VERSION_MINOR 1
#define QAT_C_API_VERSION_PATCH 0

/* The loaded library's version as "MAJOR.MINOR.PATCH" (static string). */
QAT_C_API const char* qat_version(void);
/* The FakeQuant kernel variant in use: "avx2", "sse2" or "scalar". */
QAT_C_API const char* qat_kernel_variant(void);

/* ---- Status ------------------------------------------------------------ */

/* The canonical codes of absl::Status. */
typedef enum QatStatusCode {
  QAT_OK = 0,
  QAT_CANCELLED = 1,
  QAT_UNKNOWN = 2,
  QAT_INVALID_ARGUMENT = 3,
  QAT_NOT_FOUND = 5,
  QAT_PERMISSION_DENIED = 7,
  QAT_RESOURCE_EXHAUSTED = 8,
  QAT_FAILED_PRECONDITION = 9,
  QAT_OUT_OF_RANGE = 11,
  QAT_UNIMPLEMENTED = 12,
  QAT_INTERNAL = 13,
  QAT_DATA_LOSS = 15
} QatStatusCode;

typedef struct QatStatus QatStatus;
/* QAT_OK for NULL. */
QAT_C_API QatStatusCode qat_status_code(const QatStatus* status);
/* "" for NULL; valid until the status is freed. */
QAT_C_API const char* qat_status_message(const QatStatus* status);
QAT_C_API void qat_status_free(QatStatus* status);

/* ---- Tensors ------------------------------------------------------------ */

/* ONNX TensorProto.DataType codes. */
typedef enum QatDataType {
  QAT_FLOAT32 = 1,
  QAT_UINT8 = 2,
  QAT_INT8 = 3,
  QAT_INT32 = 6,
  QAT_INT64 = 7,
  QAT_BOOL = 9,
  QAT_FLOAT64 = 11
} QatDataType;

typedef struct QatTensor QatTensor;
/* A tensor holding a copy of `data` (row-major; NULL for zeros). */
QAT_C_API QatStatus* qat_tensor_create(QatTensor** out, QatDataType type, const int64_t* shape,
                                       size_t rank, const void* data);
QAT_C_API QatDataType qat_tensor_type(const QatTensor* tensor);
QAT_C_API size_t qat_tensor_rank(const QatTensor* tensor);
QAT_C_API const int64_t* qat_tensor_shape(const QatTensor* tensor);
QAT_C_API size_t qat_tensor_num_elements(const QatTensor* tensor);
QAT_C_API const void* qat_tensor_data(const QatTensor* tensor);
QAT_C_API void qat_tensor_free(QatTensor* tensor);

/* ---- Models ------------------------------------------------------------- */

typedef struct QatModel QatModel;
/* Loads, checks (onnx::checker) and infers shapes. */
QAT_C_API QatStatus* qat_model_load(QatModel** out, const char* path);
QAT_C_API QatStatus* qat_model_load_from_memory(QatModel** out, const void* data, size_t size);
/* Writes atomically (a temporary file, then a rename). */
QAT_C_API QatStatus* qat_model_save(const QatModel* model, const char* path);
/* The serialized ModelProto; the caller frees *out_data with qat_free(). */
QAT_C_API QatStatus* qat_model_serialize(const QatModel* model, void** out_data, size_t* out_size);
/* Runs the model on its single input; *out receives its first output. */
QAT_C_API QatStatus* qat_model_run(QatTensor** out, const QatModel* model, const QatTensor* input,
                                   int num_threads);
QAT_C_API void qat_model_free(QatModel* model);
/* Frees memory the library returned through a void** out parameter. */
QAT_C_API void qat_free(void* data);

/* A reference model: "mlp" (784-500-10) or "lenet5", PyTorch-initialized. */
QAT_C_API QatStatus* qat_model_zoo(QatModel** out, const char* name, uint64_t seed);

/* ---- Calibration ---------------------------------------------------------- */

typedef enum QatCalibrationMethod {
  QAT_CALIBRATION_MINMAX = 0,
  QAT_CALIBRATION_MOVING_AVERAGE = 1,
  QAT_CALIBRATION_PERCENTILE = 2,
  QAT_CALIBRATION_ENTROPY = 3,
  QAT_CALIBRATION_MSE = 4
} QatCalibrationMethod;

typedef struct QatCalibrateOptions {
  uint32_t version;
  QatCalibrationMethod method;
  bool per_channel_weights;
  bool symmetric_activations; /* int8 activations when set, else uint8 */
  int64_t batch_size;         /* for qat_calibrate_arrays */
  int num_threads;            /* 0: all cores */
} QatCalibrateOptions;
#define QAT_CALIBRATE_OPTIONS_VERSION 1
#define QAT_CALIBRATE_OPTIONS_INIT \
  { QAT_CALIBRATE_OPTIONS_VERSION, QAT_CALIBRATION_MINMAX, false, false, 64, 0 }

typedef struct QatCalibrationTable QatCalibrationTable;
/* `features` holds all samples along its first axis. */
QAT_C_API QatStatus* qat_calibrate_arrays(QatCalibrationTable** out, const QatModel* model,
                                          const QatTensor* features,
                                          const QatCalibrateOptions* options);
/* Batches from a callback: it sets *batch to a tensor it keeps owning and
 * returns 1, or returns 0 when done, or a negative number to abort (the
 * call then fails with QAT_CANCELLED). */
typedef int (*QatBatchCallback)(void* user_data, const QatTensor** batch);
QAT_C_API QatStatus* qat_calibrate_callback(QatCalibrationTable** out, const QatModel* model,
                                            QatBatchCallback next_batch, void* user_data,
                                            const QatCalibrateOptions* options);
QAT_C_API QatStatus* qat_calibration_table_load(QatCalibrationTable** out, const char* path);
QAT_C_API QatStatus* qat_calibration_table_save(const QatCalibrationTable* table,
                                                const char* path);
QAT_C_API size_t qat_calibration_table_size(const QatCalibrationTable* table);
QAT_C_API void qat_calibration_table_free(QatCalibrationTable* table);

/* ---- Quantization --------------------------------------------------------- */

typedef struct QatQuantizeOptions {
  uint32_t version;
  int weight_bits;                /* 8 or 4 */
  QatDataType activation_type;    /* QAT_UINT8 or QAT_INT8 */
  bool per_channel;
  bool weights_as_int8;           /* deployment form */
  bool symmetric_activations;
  const char* const* exclude_nodes; /* node names, may be NULL */
  size_t num_exclude_nodes;
} QatQuantizeOptions;
#define QAT_QUANTIZE_OPTIONS_VERSION 1
#define QAT_QUANTIZE_OPTIONS_INIT \
  { QAT_QUANTIZE_OPTIONS_VERSION, 8, QAT_UINT8, false, false, false, NULL, 0 }

QAT_C_API QatStatus* qat_quantize(QatModel** out, const QatModel* model,
                                  const QatCalibrationTable* table,
                                  const QatQuantizeOptions* options);

/* ---- Training ------------------------------------------------------------- */

typedef enum QatLoss {
  QAT_LOSS_CROSS_ENTROPY = 0,
  QAT_LOSS_MSE = 1,
  QAT_LOSS_BCE_WITH_LOGITS = 2,
  QAT_LOSS_L1 = 3
} QatLoss;

typedef enum QatOptimizer { QAT_OPTIMIZER_ADAMW = 0, QAT_OPTIMIZER_SGD = 1 } QatOptimizer;

typedef struct QatTrainerOptions {
  uint32_t version;
  QatLoss loss;
  QatOptimizer optimizer;
  float learning_rate;
  float momentum;     /* SGD */
  bool nesterov;      /* SGD */
  float weight_decay; /* negative: PyTorch's default for the optimizer */
  float max_grad_norm; /* 0: no clipping */
  int num_threads;     /* 0: all cores */
  uint64_t seed;
  const char* const* frozen; /* parameter names, may be NULL */
  size_t num_frozen;
} QatTrainerOptions;
#define QAT_TRAINER_OPTIONS_VERSION 1
#define QAT_TRAINER_OPTIONS_INIT                                                         \
  { QAT_TRAINER_OPTIONS_VERSION, QAT_LOSS_CROSS_ENTROPY, QAT_OPTIMIZER_ADAMW, 1e-3f, 0.0f, \
    false, -1.0f, 0.0f, 0, 0, NULL, 0 }

typedef struct QatTrainer QatTrainer;
/* Prepares a model for training: QDQ pairs become FakeQuant, the loss and the
 * gradient graph are added.  `model` may be fp32 or QDQ. */
QAT_C_API QatStatus* qat_trainer_create(QatTrainer** out, const QatModel* model,
                                        const QatTrainerOptions* options);
/* One optimizer step; `labels` are int64 [N] for cross-entropy. */
QAT_C_API QatStatus* qat_trainer_train_step(QatTrainer* trainer, const QatTensor* inputs,
                                            const QatTensor* labels, float* loss);
/* The eval model: the loss and, when out_logits is not NULL, the first
 * model output. */
QAT_C_API QatStatus* qat_trainer_eval_step(QatTrainer* trainer, const QatTensor* inputs,
                                           const QatTensor* labels, float* loss,
                                           QatTensor** out_logits);
QAT_C_API QatStatus* qat_trainer_set_learning_rate(QatTrainer* trainer, float learning_rate);
QAT_C_API int64_t qat_trainer_step_count(const QatTrainer* trainer);
QAT_C_API QatStatus* qat_trainer_save_checkpoint(const QatTrainer* trainer, const char* path);
QAT_C_API QatStatus* qat_trainer_load_checkpoint(QatTrainer* trainer, const char* path);
/* The trained inference model: int8 QDQ when the model was quantized. */
QAT_C_API QatStatus* qat_trainer_export(QatModel** out, const QatTrainer* trainer,
                                        bool keep_float_weights);
QAT_C_API void qat_trainer_free(QatTrainer* trainer);

/* ---- FakeQuant kernels on raw buffers ---------------------------------------
 * For runtimes that embed the kernels.  Semantics in docs/kernels.md. */

typedef struct QatFakeQuantParams {
  uint32_t version;
  float scale;
  float zero_point; /* an integer value in [quant_min, quant_max] */
  int32_t quant_min;
  int32_t quant_max;
} QatFakeQuantParams;
#define QAT_FAKE_QUANT_PARAMS_VERSION 1
#define QAT_FAKE_QUANT_PARAMS_INIT { QAT_FAKE_QUANT_PARAMS_VERSION, 1.0f, 0.0f, -128, 127 }

/* y = FakeQuant(x); mask may be NULL. */
QAT_C_API QatStatus* qat_fake_quant(const float* x, size_t n, float* y, bool* mask,
                                    const QatFakeQuantParams* params);
/* Per channel along `axis` of a row-major tensor; mask may be NULL. */
QAT_C_API QatStatus* qat_fake_quant_per_channel(const float* x, const int64_t* shape,
                                                size_t rank, int64_t axis,
                                                const float* scales, const float* zero_points,
                                                int32_t quant_min, int32_t quant_max,
                                                float* y, bool* mask);
/* Straight-through estimator: dx = mask ? dy : 0. */
QAT_C_API QatStatus* qat_fake_quant_grad(const float* dy, const bool* mask, size_t n, float* dx);
/* LSQ / LSQ+ gradients of the scale and zero point (times grad_scale), and dx
 * (may be NULL). */
QAT_C_API QatStatus* qat_fake_quant_lsq_grad(const float* x, const float* dy, size_t n,
                                             float* dx, const QatFakeQuantParams* params,
                                             float grad_scale, float* scale_grad,
                                             float* zero_point_grad);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QAT_C_API_H_ */
