/* libqat's stable C ABI: quantization-aware training of ONNX models.
 *
 *   #include <qat/c_api.h>      (link with -lqat; pkg-config --libs qat)
 *
 * Pure C99.  Conventions (after ONNX Runtime, libgit2 and zstd):
 *  - Every call that can fail returns a QatStatus*: NULL means success;
 *    otherwise the caller owns the status and frees it with
 *    qat_status_free().  qat_status_code() and qat_status_message() read it.
 *  - Handles are opaque and come in create/free pairs; freeing NULL is a
 *    no-op.  Out parameters come first; the caller owns what it receives
 *    through them and frees it with the matching qat_*_free, never free().
 *    On failure a handle out parameter is set to NULL.
 *  - Options structs start with a `version` field: initialize them with their
 *    _INIT macro, then set fields, so that fields added later keep defaults.
 *    NULL options mean the defaults.
 *  - No C++ exception crosses this boundary.  Every handle, statuses
 *    included, starts with a magic number: a call given a freed handle, or a
 *    handle of another kind, is detected where it is cheap to and reported as
 *    QAT_INVALID_ARGUMENT (a qat_*_free of the wrong kind does nothing).  It
 *    is still undefined behaviour, so do not rely on it.
 *
 * Threading: calls on different handles may run on different threads at the
 * same time.  Models, calibration tables, data sets and tensors may be
 * shared for reading once created.  An executor or a trainer runs one call
 * at a time: a second thread calling into one while a call runs gets
 * QAT_FAILED_PRECONDITION (an atomic flag, not a lock: it does not wait).
 * The kernel functions, qat_version() and qat_kernel_variant() are
 * thread-safe.
 *
 * Compile-time version: QAT_C_API_VERSION_{MAJOR,MINOR,PATCH};
 * run-time: qat_version().  Only this C ABI is ABI-stable (within a major
 * version once 1.0 is out; at 0.x a minor version may break it); the C++
 * API exposes abseil types and is source-stable only.  docs/c_api.md is the
 * reference.
 */
#ifndef QAT_C_API_H_
#define QAT_C_API_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qat/api.h" /* QAT_API, the one export macro of C and C++ */

#ifdef __cplusplus
extern "C" {
#endif

#define QAT_C_API_VERSION_MAJOR 0
#define QAT_C_API_VERSION_MINOR 2
#define QAT_C_API_VERSION_PATCH 0

/* The loaded library's version as "MAJOR.MINOR.PATCH" (static string). */
QAT_API const char* qat_version(void);
/* The FakeQuant kernel variant in use: "avx2", "sse2" or "scalar". */
QAT_API const char* qat_kernel_variant(void);

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
/* QAT_OK for NULL; QAT_INVALID_ARGUMENT for a pointer that is not a live
 * status. */
QAT_API QatStatusCode qat_status_code(const QatStatus* status);
/* "" for NULL; valid until the status is freed. */
QAT_API const char* qat_status_message(const QatStatus* status);
/* Frees a status; NULL, and anything that is not a live status, is left
 * alone. */
QAT_API void qat_status_free(QatStatus* status);

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
QAT_API QatStatus* qat_tensor_create(QatTensor** out, QatDataType type, const int64_t* shape,
                                     size_t rank, const void* data);
QAT_API QatDataType qat_tensor_type(const QatTensor* tensor);
QAT_API size_t qat_tensor_rank(const QatTensor* tensor);
QAT_API const int64_t* qat_tensor_shape(const QatTensor* tensor);
QAT_API size_t qat_tensor_num_elements(const QatTensor* tensor);
QAT_API const void* qat_tensor_data(const QatTensor* tensor);
QAT_API void qat_tensor_free(QatTensor* tensor);

/* ---- Models ------------------------------------------------------------- */

typedef struct QatModel QatModel;
/* Loads, checks (onnx::checker) and infers shapes. */
QAT_API QatStatus* qat_model_load(QatModel** out, const char* path);
QAT_API QatStatus* qat_model_load_from_memory(QatModel** out, const void* data, size_t size);
/* Writes atomically (a temporary file, then a rename). */
QAT_API QatStatus* qat_model_save(const QatModel* model, const char* path);
/* The serialized ModelProto; the caller frees *out_data with qat_free(). */
QAT_API QatStatus* qat_model_serialize(void** out_data, size_t* out_size, const QatModel* model);
QAT_API void qat_model_free(QatModel* model);
/* Frees memory the library returned through a void** out parameter. */
QAT_API void qat_free(void* data);

/* A reference model, PyTorch-initialized: "mlp" (784-500-10), "lenet5", or
   "resnet8" and "mobilenetv2" (training-mode BatchNormalization, opset 15). */
QAT_API QatStatus* qat_model_zoo(QatModel** out, const char* name, uint64_t seed);

/* ---- Executor -------------------------------------------------------------
 * Compiles a model once into a plan; then runs it any number of times.  The
 * executor keeps its own copy of what it needs: the model may be freed after
 * qat_executor_create. */

typedef struct QatExecutorOptions {
  uint32_t version;
  int num_threads; /* counting the caller; 0: one per core */
  uint64_t seed;   /* random ops without a seed attribute (Dropout) */
} QatExecutorOptions;
#define QAT_EXECUTOR_OPTIONS_VERSION 1
#define QAT_EXECUTOR_OPTIONS_INIT { QAT_EXECUTOR_OPTIONS_VERSION, 0, 0 }

typedef struct QatExecutor QatExecutor;
QAT_API QatStatus* qat_executor_create(QatExecutor** out, const QatModel* model,
                                       const QatExecutorOptions* options);
/* The graph inputs a run needs (initializers excluded) and the outputs it
 * can return, in the model's order.  Names stay valid while the executor
 * lives; NULL for an index out of range. */
QAT_API size_t qat_executor_num_inputs(const QatExecutor* executor);
QAT_API const char* qat_executor_input_name(const QatExecutor* executor, size_t index);
QAT_API size_t qat_executor_num_outputs(const QatExecutor* executor);
QAT_API const char* qat_executor_output_name(const QatExecutor* executor, size_t index);
/* One run.  inputs[i] feeds the graph input input_names[i]; every graph
 * input must be given, once.  outputs[i] receives a new tensor for the
 * output output_names[i]; with output_names NULL, the outputs are all of the
 * model's, in its order, and num_outputs must be qat_executor_num_outputs().
 * On failure every outputs[i] is NULL.  Errors: QAT_INVALID_ARGUMENT for a
 * missing, unknown or repeated name, a wrong type or shape (naming the
 * input or the node); QAT_FAILED_PRECONDITION while another thread runs the
 * same executor. */
QAT_API QatStatus* qat_executor_run(QatTensor** outputs, QatExecutor* executor,
                                    const char* const* input_names,
                                    const QatTensor* const* inputs, size_t num_inputs,
                                    const char* const* output_names, size_t num_outputs);
QAT_API void qat_executor_free(QatExecutor* executor);

/* One-shot: qat_executor_create, qat_executor_run, qat_executor_free.  Use
 * an executor to run a model more than once. */
QAT_API QatStatus* qat_model_run(QatTensor** outputs, const QatModel* model,
                                 const char* const* input_names,
                                 const QatTensor* const* inputs, size_t num_inputs,
                                 const char* const* output_names, size_t num_outputs,
                                 const QatExecutorOptions* options);

/* ---- Data sets --------------------------------------------------------------
 * Labelled examples for calibrate, train and evaluate.  Read-only once
 * created: one data set may be shared by calls on several threads. */

typedef struct QatDataset QatDataset;

typedef struct QatDatasetOptions {
  uint32_t version;
  const char* split; /* "train" (also for NULL) or "test" (IDX: the t10k files) */
  int64_t limit;     /* keep the first `limit` examples; 0: all */
  float mean;        /* IDX only: x -> (x / 255 - mean) / std, */
  float std;         /* Fashion-MNIST's statistics by default */
} QatDatasetOptions;
#define QAT_DATASET_OPTIONS_VERSION 1
#define QAT_DATASET_OPTIONS_INIT { QAT_DATASET_OPTIONS_VERSION, NULL, 0, 0.2860f, 0.3530f }

/* A data set named by a spec string, as `qat ... --data` takes it: an IDX
 * folder in MNIST's layout (the images shaped for `model`'s first input,
 * [N, 784] or [N, 1, 28, 28]), a folder of .npy files (one per model input,
 * plus labels.npy), an .npz, "FEATURES.npy" or "FEATURES.npy,LABELS.npy".  Errors:
 * QAT_NOT_FOUND naming the missing file, QAT_INVALID_ARGUMENT naming the
 * file that does not parse or whose shapes do not match. */
QAT_API QatStatus* qat_dataset_load(QatDataset** out, const char* spec, const QatModel* model,
                                    const QatDatasetOptions* options);
/* A data set holding copies of `features` (float32 [N, ...]) and `labels`
 * (int64, int32 or float32 [N, ...]; NULL: int64 zeros [N], enough to
 * calibrate). */
QAT_API QatStatus* qat_dataset_create(QatDataset** out, const QatTensor* features,
                                      const QatTensor* labels);
/* One batch of named inputs, as a QatNamedBatchCallback fills it: inputs[i]
 * feeds the model input names[i]; labels may be NULL.  The callback keeps
 * owning the names and tensors (they must stay valid until its next call). */
typedef struct QatNamedBatch {
  uint32_t version;
  size_t num_inputs;
  const char* const* names;
  const QatTensor* const* inputs;
  const QatTensor* labels;
} QatNamedBatch;
#define QAT_NAMED_BATCH_VERSION 1
#define QAT_NAMED_BATCH_INIT { QAT_NAMED_BATCH_VERSION, 0, NULL, NULL, NULL }
/* Fills *batch (which libqat initialized with QAT_NAMED_BATCH_INIT) and
 * returns 1, or returns 0 when done, or a negative number to abort (the
 * call then fails with QAT_CANCELLED). */
typedef int (*QatNamedBatchCallback)(void* user_data, QatNamedBatch* batch);
/* A data set from every batch of a callback, copied into memory and
 * concatenated along the first axis: named inputs (a multi-input model's,
 * any types: int64 token ids, bool masks) and labels when every batch has
 * them, for qat_calibrate, qat_train_folder and qat_evaluate (which feed
 * each model input by name).  Every batch must name the same inputs, with
 * the same types and trailing dimensions.  Errors: QAT_CANCELLED;
 * QAT_INVALID_ARGUMENT naming the batch and the input that differs, an
 * empty or repeated name, no batch at all. */
QAT_API QatStatus* qat_dataset_from_callback(QatDataset** out, QatNamedBatchCallback next_batch,
                                             void* user_data);
/* The number of examples (-1 for a bad handle). */
QAT_API int64_t qat_dataset_size(const QatDataset* data);
QAT_API void qat_dataset_free(QatDataset* data);

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
  int64_t batch_size;
  int num_threads;     /* 0: all cores */
  int64_t max_samples; /* version 2: the first examples only; 0: all */
  /* Version 3: the widths the table is for, 2..8 (MSE and entropy search
   * for that grid; 2- and 3-bit weights take the MSE clip). */
  int weight_bits;
  int activation_bits;
} QatCalibrateOptions;
#define QAT_CALIBRATE_OPTIONS_VERSION 3
#define QAT_CALIBRATE_OPTIONS_INIT \
  { QAT_CALIBRATE_OPTIONS_VERSION, QAT_CALIBRATION_MINMAX, false, false, 64, 0, 0, 8, 8 }

typedef struct QatCalibrationTable QatCalibrationTable;
/* The calibrate stage over a data set (from a spec string or from arrays;
 * its labels are not used).  Errors: an empty data set, a NaN or infinite
 * value (naming the tensor), a bad method. */
QAT_API QatStatus* qat_calibrate(QatCalibrationTable** out, const QatModel* model,
                                 const QatDataset* data, const QatCalibrateOptions* options);
/* The same over `features`, which holds all samples along its first axis. */
QAT_API QatStatus* qat_calibrate_arrays(QatCalibrationTable** out, const QatModel* model,
                                        const QatTensor* features,
                                        const QatCalibrateOptions* options);
/* Batches from a callback: it sets *batch to a tensor it keeps owning and
 * returns 1, or returns 0 when done, or a negative number to abort (the
 * call then fails with QAT_CANCELLED).  batch_size and max_samples do not
 * apply: the callback decides. */
typedef int (*QatBatchCallback)(void* user_data, const QatTensor** batch);
QAT_API QatStatus* qat_calibrate_callback(QatCalibrationTable** out, const QatModel* model,
                                          QatBatchCallback next_batch, void* user_data,
                                          const QatCalibrateOptions* options);
QAT_API QatStatus* qat_calibration_table_load(QatCalibrationTable** out, const char* path);
QAT_API QatStatus* qat_calibration_table_save(const QatCalibrationTable* table,
                                              const char* path);
QAT_API size_t qat_calibration_table_size(const QatCalibrationTable* table);
QAT_API void qat_calibration_table_free(QatCalibrationTable* table);

/* ---- Quantization --------------------------------------------------------- */

/* Whether a grid keeps its type's lone extreme value (docs/quantization.md):
 * AUTO is ONNX Runtime's choice (narrow for symmetric 8-bit, else full). */
typedef enum QatRangeMode {
  QAT_RANGE_AUTO = 0,
  QAT_RANGE_NARROW = 1,
  QAT_RANGE_FULL = 2
} QatRangeMode;

/* One node's exception to the widths (version 2 of QatQuantizeOptions). */
typedef struct QatNodeOverride {
  const char* node;    /* the node's name */
  bool keep_float;     /* leave it unquantized */
  int weight_bits;     /* 2..8; 0: the options' */
  int activation_bits; /* 2..8; 0: the options' */
} QatNodeOverride;

typedef struct QatQuantizeOptions {
  uint32_t version;
  int weight_bits;                /* 2..8 (version 1: 8 or 4) */
  QatDataType activation_type;    /* QAT_UINT8 or QAT_INT8 */
  bool per_channel;
  bool weights_as_int8;           /* deployment form */
  bool symmetric_activations;
  const char* const* exclude_nodes; /* node names, may be NULL */
  size_t num_exclude_nodes;
  /* Version 2 (issue 15's bit widths): */
  int activation_bits;            /* 2..8 */
  bool unsigned_weights;          /* uint8 storage instead of int8 */
  bool affine_weights;            /* a zero point instead of symmetric */
  QatRangeMode weight_range;
  QatRangeMode activation_range;
  const QatNodeOverride* node_overrides; /* may be NULL */
  size_t num_node_overrides;
  /* Version 3 (issue 18): > 0 quantizes the 4-bit weights of MatMul and
   * Gemm per block of this many along the reduction axis (`qat quantize
   * --block-size`; the model is raised to opset 21); needs weight_bits 4.
   * 0: per tensor or per channel. */
  int64_t block_size;
  /* Version 4: block scales snapped to uint8 codes times a power-of-two
   * step per output channel (`qat quantize --uint8-block-scales`), which
   * the export stores in a quarter of the bytes; needs block_size > 0. */
  bool uint8_block_scales;
} QatQuantizeOptions;
#define QAT_QUANTIZE_OPTIONS_VERSION 4
#define QAT_QUANTIZE_OPTIONS_INIT                                                  \
  { QAT_QUANTIZE_OPTIONS_VERSION, 8, QAT_UINT8, false, false, false, NULL, 0, 8, \
    false, false, QAT_RANGE_AUTO, QAT_RANGE_AUTO, NULL, 0, 0, false }

QAT_API QatStatus* qat_quantize(QatModel** out, const QatModel* model,
                                const QatCalibrationTable* table,
                                const QatQuantizeOptions* options);

/* ---- Prepare, train, export, evaluate: the folder stages -----------------
 * prepare writes a training folder (FOLDER/training.onnx, FOLDER/eval.onnx,
 * FOLDER/checkpoint); train trains it in place, in as many chained calls as
 * wanted, and a killed run resumes exactly; export turns it into the
 * inference model (int8 QDQ when quantized).  `qat prepare`, `qat train` and
 * `qat export` are the same functions.  Calls on different folders may run
 * concurrently; one folder takes one call at a time. */

typedef enum QatLoss {
  QAT_LOSS_CROSS_ENTROPY = 0,
  QAT_LOSS_MSE = 1,
  QAT_LOSS_BCE_WITH_LOGITS = 2,
  QAT_LOSS_L1 = 3
} QatLoss;

/* What happens to the FakeQuant scales and zero points while training. */
typedef enum QatQuantParams {
  QAT_QUANT_PARAMS_FIXED = 0,  /* the calibrated ones stay */
  QAT_QUANT_PARAMS_LEARN = 1,  /* trained (LSQ / LSQ+) */
  QAT_QUANT_PARAMS_OBSERVE = 2 /* moving-average min/max of what training sees */
} QatQuantParams;

/* The distillation losses (qat/loss.h): mse, KL divergence of the
 * softmaxes at a temperature (classes on the last axis), 1 - cosine. */
typedef enum QatDistillKind {
  QAT_DISTILL_MSE = 0,
  QAT_DISTILL_KL = 1,
  QAT_DISTILL_COSINE = 2
} QatDistillKind;

typedef struct QatPrepareOptions {
  uint32_t version;
  QatLoss loss;
  QatQuantParams quant_params;
  const char* const* frozen; /* parameter name globs kept constant, may be NULL */
  size_t num_frozen;
  /* Version 2: parameter name globs that train instead of the default set
   * (scalars included when named); may be NULL.  Frozen wins. */
  const char* const* trainable;
  size_t num_trainable;
  /* Version 3: distillation, as `qat prepare --teacher/--distill`.  On when
   * `teacher` is set, or `distill` is true (the teacher is then the fp32
   * model that quantize recorded: QAT_NOT_FOUND when it recorded none).  The
   * teacher's graph joins the training graph (frozen) and the loss compares
   * the student's tensors with its; no labels unless label_weight > 0. */
  const QatModel* teacher;            /* read during the call only */
  bool distill;
  QatDistillKind distill_kind;        /* for every distilled output */
  float temperature;                  /* > 0; KL only */
  const char* const* distill_outputs; /* NULL: every model output */
  size_t num_distill_outputs;
  const float* distill_weights;       /* num_distill_outputs weights (>= 0); NULL: 1 */
  const char* const* distill_tensors; /* intermediate tensors, mse, weight 1; may be NULL */
  size_t num_distill_tensors;
  float label_weight;                 /* > 0: adds label_weight x the labelled `loss` */
} QatPrepareOptions;
#define QAT_PREPARE_OPTIONS_VERSION 3
#define QAT_PREPARE_OPTIONS_INIT                                                        \
  { QAT_PREPARE_OPTIONS_VERSION, QAT_LOSS_CROSS_ENTROPY, QAT_QUANT_PARAMS_FIXED, NULL, 0, \
    NULL, 0, NULL, false, QAT_DISTILL_MSE, 1.0f, NULL, 0, NULL, NULL, 0, 0.0f }

/* The prepare stage: fuses QDQ pairs into FakeQuant (a float model trains
 * as it is), adds the loss and the gradients, and writes `folder` (created
 * if needed; each file atomically).  Errors: an op without a gradient rule
 * (QAT_UNIMPLEMENTED, naming it), a frozen or trainable glob that matches
 * no parameter (naming it),
 * QAT_PERMISSION_DENIED naming what cannot be written. */
QAT_API QatStatus* qat_prepare(const QatModel* model, const char* folder,
                               const QatPrepareOptions* options);

typedef enum QatOptimizer { QAT_OPTIMIZER_ADAMW = 0, QAT_OPTIMIZER_SGD = 1 } QatOptimizer;
typedef enum QatSchedule {
  QAT_SCHEDULE_CONSTANT = 0,
  QAT_SCHEDULE_LINEAR = 1, /* warmup, then linear decay over the run */
  QAT_SCHEDULE_COSINE = 2  /* warmup, then cosine decay over the run */
} QatSchedule;

/* An unset run setting (an int64_t or a double field of
 * QatTrainFolderOptions). */
#define QAT_UNSET INT64_MIN

/* What the progress callback sees after every optimizer step. */
typedef struct QatTrainProgress {
  int64_t epoch;           /* 0-based */
  int64_t epochs;          /* of the whole run */
  int64_t step_in_epoch;   /* 1-based */
  int64_t steps_per_epoch;
  int64_t global_step;     /* optimizer steps in the run so far */
  float loss;              /* of this step, before the update */
  float lr;
  double epoch_mean_loss;  /* of this epoch's steps in this call so far */
} QatTrainProgress;
/* Returns 0 to go on; anything else stops the run: the checkpoint is saved
 * (a resume continues with the next step) and the call returns
 * QAT_CANCELLED. */
typedef int (*QatTrainCallback)(void* user_data, const QatTrainProgress* progress);

/* Data-parallel training over the caller's own transport: replace
 * values[0..count) on every rank by the elementwise reduction over the
 * ranks.  QAT_REDUCE_SUM must add the ranks' buffers in rank order,
 * ((b0 + b1) + b2) + ..., so that every rank gets the same bits; MIN and
 * MAX are exact in any order.  Every rank calls it the same number of times
 * with the same counts.  Return 0 on success; anything else stops training
 * with an error (the last checkpoint survives). */
typedef enum QatReduceOp {
  QAT_REDUCE_SUM = 0,
  QAT_REDUCE_MIN = 1,
  QAT_REDUCE_MAX = 2
} QatReduceOp;
typedef int (*QatAllreduceFn)(void* user_data, float* values, size_t count, QatReduceOp op);

typedef struct QatTrainFolderOptions {
  uint32_t version;
  /* Run settings, kept in the folder's checkpoint.  QAT_UNSET gives the
   * default (in brackets) to a new run and the stored value to a resumed
   * one; on resume a value that is set must equal the stored one. */
  int64_t epochs;        /* [1] epochs of the run, >= 1 */
  int64_t batch;         /* [64] */
  int64_t optimizer;     /* a QatOptimizer [ADAMW] */
  double lr;             /* [1e-3] */
  int64_t schedule;      /* a QatSchedule [CONSTANT] */
  int64_t warmup;        /* [0] steps */
  double momentum;       /* [0] SGD */
  int64_t nesterov;      /* 0 or 1 [0] SGD */
  double weight_decay;   /* [negative: the optimizer's default] */
  double max_grad_norm;  /* [0: no clipping] */
  int64_t seed;          /* [0] >= 0: shuffling, dropout */
  const char* data;      /* a data spec as qat_dataset_load takes it [NULL] */
  int64_t limit;         /* [0: every training example] */
  int64_t observe_steps; /* QAT_QUANT_PARAMS_OBSERVE: freeze after [-1: never] */
  /* Per call, not stored. */
  int num_threads;       /* 0: all cores; results depend on it */
  int64_t save_every;    /* steps between checkpoints; 0: 100 */
  bool resume;           /* finish the interrupted run in the folder */
  QatTrainCallback progress; /* may be NULL */
  void* user_data;           /* for progress */
  /* Version 2: data-parallel training (docs/training.md): every rank calls
   * qat_train_folder on the same folder and data; `batch` is the global
   * batch and must divide by the rank count; rank 0 writes the checkpoint.
   * Either a hook (allreduce, with rank in [0, num_ranks)) or mpi_comm,
   * a pointer to an MPI_Comm of the MPI this libqat was built with
   * (QAT_UNIMPLEMENTED without MPI); neither: one process. */
  QatAllreduceFn allreduce;
  void* allreduce_user_data;
  int32_t rank;
  int32_t num_ranks;
  const void* mpi_comm;
  double mpi_timeout_seconds; /* 0: 20 s */
  /* Version 3, stored: training-mode BatchNormalization uses and keeps its
   * running statistics from this step of the run on [-1: never]. */
  int64_t freeze_bn_steps;
  /* Version 4, per call (docs/training.md): batch_shards, one process
   * computing each batch as that many ranks would, bit for bit (1: whole
   * batches; with ranks: 1 or the rank count); sync_batch_norm:
   * training-mode BatchNormalization normalizes with the statistics of the
   * whole batch over every rank or shard, and its gradient is the whole
   * batch's (needed for batch_shards > 1 on such a model). */
  int32_t batch_shards;
  bool sync_batch_norm;
} QatTrainFolderOptions;
#define QAT_TRAIN_FOLDER_OPTIONS_VERSION 4
#define QAT_TRAIN_FOLDER_OPTIONS_INIT                                                     \
  { QAT_TRAIN_FOLDER_OPTIONS_VERSION, QAT_UNSET, QAT_UNSET, QAT_UNSET, QAT_UNSET,         \
    QAT_UNSET, QAT_UNSET, QAT_UNSET, QAT_UNSET, QAT_UNSET, QAT_UNSET, QAT_UNSET, NULL,    \
    QAT_UNSET, QAT_UNSET, 0, 0, false, NULL, NULL, NULL, NULL, 0, 0, NULL, 0.0,          \
    QAT_UNSET, 1, false }

typedef struct QatTrainResult {
  uint32_t version;
  int64_t epochs; /* epochs completed in the run */
  int64_t steps;  /* optimizer steps in the run */
} QatTrainResult;
#define QAT_TRAIN_RESULT_VERSION 1
#define QAT_TRAIN_RESULT_INIT { QAT_TRAIN_RESULT_VERSION, 0, 0 }

/* The train stage on a prepared folder, on `data` (NULL: the data set that
 * options->data names, its train split with options->limit).  Without
 * `resume` a call starts a new run from the folder's parameters, so calls
 * chain (3 epochs at one rate, then 1 at another, are two calls).  With
 * `resume` it finishes the run a kill or a stop interrupted, bit for bit as
 * if it had not stopped (same seed, same num_threads).  The checkpoint is
 * saved every save_every steps, after every epoch and at the end.  *result
 * (may be NULL; initialize it with QAT_TRAIN_RESULT_INIT) receives the
 * run's progress.  Errors: QAT_INVALID_ARGUMENT naming the setting (as
 * `qat train`'s flag, e.g. "--lr") that is out of range or differs from
 * the run being resumed; QAT_FAILED_PRECONDITION for resume on a folder
 * that holds no run; QAT_CANCELLED when the callback stopped the run; the
 * folder's and the data's errors, naming the file. */
QAT_API QatStatus* qat_train_folder(QatTrainResult* result, const char* folder,
                                    const QatDataset* data,
                                    const QatTrainFolderOptions* options);

/* Added in 0.2.x (additive; look the symbol up to detect it): the train
 * stage on batches that a callback gives, for callers that bring their own
 * data (the Python package's iterators).  For step `step` (0-based) of
 * epoch `epoch` (0-based) the callback sets *features and *labels to
 * tensors it keeps owning until its next call or the end of the call, and
 * returns 1; anything else stops the run: 0 fails with
 * QAT_INVALID_ARGUMENT (it gave fewer than steps_per_epoch batches), a
 * negative number with QAT_CANCELLED.  The steps of an epoch are asked for
 * in order, steps_per_epoch (>= 1) of them; a resumed run starts at the
 * step it stopped at.  Shuffling is the callback's: options->seed seeds
 * only dropout, and options->batch, data and limit are stored in the
 * checkpoint as given, not applied.  Otherwise as qat_train_folder.  The
 * callback runs on the calling thread. */
typedef int (*QatTrainBatchCallback)(void* user_data, int64_t epoch, int64_t step,
                                     const QatTensor** features, const QatTensor** labels);
QAT_API QatStatus* qat_train_folder_callback(QatTrainResult* result, const char* folder,
                                             QatTrainBatchCallback next_batch, void* user_data,
                                             int64_t steps_per_epoch,
                                             const QatTrainFolderOptions* options);

typedef struct QatExportOptions {
  uint32_t version;
  bool keep_float_weights; /* weights stay float behind their QDQ pair */
  /* Version 2 (issue 18): the default-domain opset of the export, as `qat
   * export --opset`: 13, or 21 (packed INT4 weights behind
   * DequantizeLinear-21, blocks as its block_size); 0 picks 21 when a weight
   * is 4-bit or block-wise, else 13. */
  int opset;
  /* Version 3: snap block scales that training moved to uint8 codes times
   * a power-of-two step per output channel (`qat export
   * --uint8-block-scales`; lossy for them); scales already of that form are
   * stored so without it. */
  bool uint8_block_scales;
} QatExportOptions;
#define QAT_EXPORT_OPTIONS_VERSION 3
#define QAT_EXPORT_OPTIONS_INIT { QAT_EXPORT_OPTIONS_VERSION, false, 0, false }

/* The export stage: the folder's eval model with its checkpoint's
 * parameters, as the inference model (int8 QDQ when it was quantized).
 * Errors: QAT_NOT_FOUND naming the missing file, QAT_DATA_LOSS for a
 * corrupt checkpoint. */
QAT_API QatStatus* qat_export_folder(QatModel** out, const char* folder,
                                     const QatExportOptions* options);
/* The same, written to `path` atomically. */
QAT_API QatStatus* qat_export_folder_to_file(const char* folder, const char* path,
                                             const QatExportOptions* options);

typedef struct QatEvaluateOptions {
  uint32_t version;
  int64_t batch_size; /* 0: 64 */
  int num_threads;    /* 0: all cores */
  const char* input;  /* NULL: the model's only input */
  const char* output; /* NULL: the model's first output (logits [N, classes]) */
} QatEvaluateOptions;
#define QAT_EVALUATE_OPTIONS_VERSION 1
#define QAT_EVALUATE_OPTIONS_INIT { QAT_EVALUATE_OPTIONS_VERSION, 0, 0, NULL, NULL }

typedef struct QatEvalReport {
  uint32_t version;
  int64_t examples;  /* evaluated */
  int64_t correct;   /* argmax of the logits equals the label */
  double accuracy;   /* correct / examples */
  double mean_loss;  /* softmax cross-entropy, mean over the examples */
  double seconds;    /* in the executor */
} QatEvalReport;
#define QAT_EVAL_REPORT_VERSION 1
#define QAT_EVAL_REPORT_INIT { QAT_EVAL_REPORT_VERSION, 0, 0, 0.0, 0.0, 0.0 }

/* The evaluate stage: a classifier's accuracy and loss on a labelled data
 * set (int64 labels).  *report must be initialized with
 * QAT_EVAL_REPORT_INIT.  Deterministic for a given thread count and batch
 * size.  Errors: a model without exactly one input (unless options->input
 * names one), an output that is not float32 [N, classes], labels that are
 * not int64. */
QAT_API QatStatus* qat_evaluate(QatEvalReport* report, const QatModel* model,
                                const QatDataset* data, const QatEvaluateOptions* options);
/* Added in 0.2.x (additive; look the symbol up to detect it): the same over
 * the batches of a callback (QatNamedBatch, labels required), each scored as
 * it comes and not kept, so the data never has to fit in memory.  Each batch
 * is evaluated in pieces of batch_size; batches that concatenate to a data
 * set give qat_evaluate's report on it when each but the last is a multiple
 * of batch_size long.  The callback runs on the calling thread.  Errors: as
 * qat_evaluate's; QAT_INVALID_ARGUMENT naming the batch that is malformed
 * or has no labels, or for no batch at all; QAT_CANCELLED when the callback
 * returns a negative number. */
QAT_API QatStatus* qat_evaluate_callback(QatEvalReport* report, const QatModel* model,
                                         QatNamedBatchCallback next_batch, void* user_data,
                                         const QatEvaluateOptions* options);

/* ---- Trainer: training step by step, in memory ----------------------------
 * For callers that feed their own batches; the folder stages above are the
 * pipeline's way. */

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
QAT_API QatStatus* qat_trainer_create(QatTrainer** out, const QatModel* model,
                                      const QatTrainerOptions* options);
/* Added in 0.2.x (additive): a trainer over a folder that qat_prepare wrote,
 * starting from its checkpoint's parameters (and observed quantization
 * parameters) with a fresh optimizer, as a new qat_train_folder run does.
 * The folder fixes the loss and the frozen parameters: options->loss,
 * frozen and num_frozen are not used.  qat_trainer_save_checkpoint to
 * FOLDER/checkpoint hands the trained parameters back to the folder
 * stages. */
QAT_API QatStatus* qat_trainer_open_folder(QatTrainer** out, const char* folder,
                                           const QatTrainerOptions* options);
/* One optimizer step; `labels` are int64 [N] for cross-entropy.  *loss
 * (when loss is not NULL) receives the loss before the update. */
QAT_API QatStatus* qat_trainer_train_step(float* loss, QatTrainer* trainer,
                                          const QatTensor* inputs, const QatTensor* labels);
/* The eval model: the loss and, when out_logits is not NULL, the first
 * model output. */
QAT_API QatStatus* qat_trainer_eval_step(float* loss, QatTensor** out_logits,
                                         QatTrainer* trainer, const QatTensor* inputs,
                                         const QatTensor* labels);
QAT_API QatStatus* qat_trainer_set_learning_rate(QatTrainer* trainer, float learning_rate);
QAT_API int64_t qat_trainer_step_count(const QatTrainer* trainer);
QAT_API QatStatus* qat_trainer_save_checkpoint(const QatTrainer* trainer, const char* path);
QAT_API QatStatus* qat_trainer_load_checkpoint(QatTrainer* trainer, const char* path);
/* The trained inference model: int8 QDQ when the model was quantized. */
QAT_API QatStatus* qat_trainer_export(QatModel** out, const QatTrainer* trainer,
                                      bool keep_float_weights);
QAT_API void qat_trainer_free(QatTrainer* trainer);

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

/* y = FakeQuant(x) over n floats; mask may be NULL. */
QAT_API QatStatus* qat_fake_quant(float* y, bool* mask, const float* x, size_t n,
                                  const QatFakeQuantParams* params);
/* Per channel along `axis` of a row-major tensor; mask may be NULL. */
QAT_API QatStatus* qat_fake_quant_per_channel(float* y, bool* mask, const float* x,
                                              const int64_t* shape, size_t rank, int64_t axis,
                                              const float* scales, const float* zero_points,
                                              int32_t quant_min, int32_t quant_max);
/* Straight-through estimator: dx = mask ? dy : 0. */
QAT_API QatStatus* qat_fake_quant_grad(float* dx, const float* dy, const bool* mask, size_t n);
/* LSQ / LSQ+ gradients of the scale and zero point (times grad_scale), and dx
 * (may be NULL). */
QAT_API QatStatus* qat_fake_quant_lsq_grad(float* scale_grad, float* zero_point_grad, float* dx,
                                           const float* x, const float* dy, size_t n,
                                           const QatFakeQuantParams* params, float grad_scale);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QAT_C_API_H_ */
