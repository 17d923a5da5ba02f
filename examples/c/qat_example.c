/* The whole QAT pipeline through libqat's C ABI, one call per stage:
 *
 *   data -> calibrate -> quantize -> prepare FOLDER -> train FOLDER (1 epoch)
 *        -> train FOLDER (1 more epoch, chained) -> export -> evaluate
 *
 *   qat_example pipeline DIR            every stage, in one process
 *   qat_example prepare DIR             calibrate, quantize, prepare DIR/qat
 *   qat_example train DIR first|second [--resume] [--pause-at STEP]
 *                                       one of the two chained training calls
 *   qat_example export DIR              export DIR/int8.onnx, evaluate it
 *
 * The stages one by one give the same files as `pipeline`.  --pause-at makes
 * the progress callback stop at that optimizer step and wait on stdin, so a
 * test can SIGKILL the process there; `train ... --resume` then finishes the
 * run as if it had never stopped (tests/capi/c_pipeline.sh compares the
 * exports byte for byte).
 *
 * Data: Fashion-MNIST (QAT_EXAMPLE_DATA, default
 * /usr/share/datasets/fashion-mnist), the first 2048 training and 1000 test
 * images; without it, seeded synthetic data.  The model is the library's
 * 784-500-10 MLP.  One thread, so that every run gives the same bits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qat/c_api.h>

enum { kTrainExamples = 2048, kTestExamples = 1000, kFeatures = 784, kClasses = 10 };
static const char* const kDefaultData = "/usr/share/datasets/fashion-mnist";

/* Prints a failed status and exits. */
static void check(QatStatus* status, const char* what) {
  if (status == NULL) return;
  fprintf(stderr, "qat_example: %s failed (code %d): %s\n", what, (int)qat_status_code(status),
          qat_status_message(status));
  qat_status_free(status);
  exit(1);
}

static void join(char* out, size_t size, const char* dir, const char* name) {
  if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size) {
    fprintf(stderr, "qat_example: path too long: %s/%s\n", dir, name);
    exit(1);
  }
}

/* ---- Data ----------------------------------------------------------------- */

static const char* data_spec(void) {
  const char* env = getenv("QAT_EXAMPLE_DATA");
  return env != NULL && env[0] != '\0' ? env : kDefaultData;
}

/* Synthetic examples, seeded: the pixels of class c are noise around
 * (c - 4.5) / 4.5. */
static QatDataset* synthetic(int64_t n, unsigned seed) {
  float* x = malloc(sizeof(float) * (size_t)n * kFeatures);
  int64_t* y = malloc(sizeof(int64_t) * (size_t)n);
  QatTensor* features = NULL;
  QatTensor* labels = NULL;
  QatDataset* data = NULL;
  const int64_t x_shape[2] = {n, kFeatures};
  const int64_t y_shape[1] = {n};
  unsigned state = seed;
  int64_t i;
  if (x == NULL || y == NULL) exit(1);
  for (i = 0; i < n; ++i) {
    int64_t j;
    y[i] = i % kClasses;
    for (j = 0; j < kFeatures; ++j) {
      state = state * 1103515245u + 12345u;
      x[i * kFeatures + j] = ((float)y[i] - 4.5f) / 4.5f +
                             (float)((state >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
  }
  check(qat_tensor_create(&features, QAT_FLOAT32, x_shape, 2, x), "creating the features");
  check(qat_tensor_create(&labels, QAT_INT64, y_shape, 1, y), "creating the labels");
  check(qat_dataset_create(&data, features, labels), "creating the data set");
  qat_tensor_free(features);
  qat_tensor_free(labels);
  free(x);
  free(y);
  return data;
}

/* The split of the data set, or NULL with *use_synthetic set when the
 * Fashion-MNIST files are not there. */
static QatDataset* load_split(const QatModel* model, const char* split, int64_t limit,
                              int* use_synthetic) {
  QatDatasetOptions options = QAT_DATASET_OPTIONS_INIT;
  QatDataset* data = NULL;
  QatStatus* status;
  options.split = split;
  options.limit = limit;
  status = qat_dataset_load(&data, data_spec(), model, &options);
  if (qat_status_code(status) == QAT_NOT_FOUND) {
    qat_status_free(status);
    *use_synthetic = 1;
    return synthetic(limit, strcmp(split, "train") == 0 ? 1u : 2u);
  }
  check(status, "loading the data");
  *use_synthetic = 0;
  return data;
}

/* ---- Stages --------------------------------------------------------------- */

static void prepare(const char* dir) {
  char path[4096];
  QatModel* model = NULL;
  QatDataset* train = NULL;
  QatCalibrationTable* table = NULL;
  QatModel* qdq = NULL;
  QatCalibrateOptions calibrate = QAT_CALIBRATE_OPTIONS_INIT;
  QatQuantizeOptions quantize = QAT_QUANTIZE_OPTIONS_INIT;
  QatPrepareOptions options = QAT_PREPARE_OPTIONS_INIT;
  int synthetic_data = 0;

  check(qat_model_zoo(&model, "mlp", 0), "building the MLP");
  join(path, sizeof path, dir, "fp32.onnx");
  check(qat_model_save(model, path), "saving the fp32 model");
  train = load_split(model, "train", kTrainExamples, &synthetic_data);
  printf("data: %s, %lld training examples\n",
         synthetic_data ? "synthetic" : data_spec(), (long long)qat_dataset_size(train));

  calibrate.method = QAT_CALIBRATION_PERCENTILE;
  calibrate.per_channel_weights = true;
  calibrate.max_samples = 512;
  calibrate.num_threads = 1;
  check(qat_calibrate(&table, model, train, &calibrate), "calibrating");
  join(path, sizeof path, dir, "table.json");
  check(qat_calibration_table_save(table, path), "saving the table");
  printf("calibrate: %zu tensors -> %s\n", qat_calibration_table_size(table), path);

  quantize.per_channel = true;
  check(qat_quantize(&qdq, model, table, &quantize), "quantizing");
  join(path, sizeof path, dir, "qdq.onnx");
  check(qat_model_save(qdq, path), "saving the QDQ model");
  printf("quantize: -> %s\n", path);

  join(path, sizeof path, dir, "qat");
  check(qat_prepare(qdq, path, &options), "preparing");
  printf("prepare: -> %s\n", path);

  qat_model_free(qdq);
  qat_calibration_table_free(table);
  qat_dataset_free(train);
  qat_model_free(model);
}

/* The progress callback's state. */
typedef struct Progress {
  int64_t pause_at; /* 0: never */
  int64_t first_step;
  int64_t last_step;
  float last_loss;
} Progress;

static int on_step(void* user_data, const QatTrainProgress* p) {
  Progress* progress = user_data;
  if (progress->first_step == 0) progress->first_step = p->global_step;
  progress->last_step = p->global_step;
  progress->last_loss = p->loss;
  if (p->step_in_epoch == p->steps_per_epoch) {
    printf("  epoch %lld/%lld: mean loss %.4f\n", (long long)(p->epoch + 1),
           (long long)p->epochs, p->epoch_mean_loss);
  }
  if (p->global_step == progress->pause_at) {
    /* Wait here for the test's SIGKILL (or for a line on stdin). */
    printf("paused at step %lld\n", (long long)p->global_step);
    fflush(stdout);
    (void)getchar();
  }
  return 0;
}

/* One training call: "first" trains 1 epoch at lr 1e-3 from the prepared
 * parameters; "second" chains 1 more epoch at 5e-4 from the first's. */
static void train(const char* dir, const char* which, int resume, int64_t pause_at) {
  char folder[4096];
  QatModel* model = NULL;
  QatDataset* data = NULL;
  QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  QatTrainResult result = QAT_TRAIN_RESULT_INIT;
  Progress progress = {0, 0, 0, 0.0f};
  int synthetic_data = 0;
  int second = strcmp(which, "second") == 0;

  if (!second && strcmp(which, "first") != 0) {
    fprintf(stderr, "qat_example: train takes first or second, not %s\n", which);
    exit(2);
  }
  join(folder, sizeof folder, dir, "qat");
  options.epochs = 1;
  options.batch = 64;
  options.lr = second ? 5e-4 : 1e-3;
  options.seed = second ? 2 : 1;
  options.save_every = 8;
  options.num_threads = 1;
  options.resume = resume;
  options.progress = on_step;
  options.user_data = &progress;
  progress.pause_at = pause_at;

  /* The data: by its spec (stored in the checkpoint, so a resume could
   * leave it unset), or synthetic arrays passed as a data set. */
  check(qat_model_zoo(&model, "mlp", 0), "building the MLP");
  data = load_split(model, "train", kTrainExamples, &synthetic_data);
  if (!synthetic_data) {
    qat_dataset_free(data);
    data = NULL;
    options.data = data_spec();
    options.limit = kTrainExamples;
  }
  check(qat_train_folder(&result, folder, data, &options), "training");
  printf("train %s%s: steps %lld to %lld of %lld, last loss %.4f\n", which,
         resume ? " (resumed)" : "", (long long)progress.first_step,
         (long long)progress.last_step, (long long)result.steps, progress.last_loss);
  qat_dataset_free(data);
  qat_model_free(model);
}

static void evaluate(const char* name, const QatModel* model, const QatDataset* test) {
  QatEvaluateOptions options = QAT_EVALUATE_OPTIONS_INIT;
  QatEvalReport report = QAT_EVAL_REPORT_INIT;
  options.batch_size = 250;
  options.num_threads = 1;
  check(qat_evaluate(&report, model, test, &options), "evaluating");
  printf("evaluate %s: accuracy %.4f (%lld/%lld), mean loss %.4f\n", name, report.accuracy,
         (long long)report.correct, (long long)report.examples, report.mean_loss);
}

static void export_and_evaluate(const char* dir) {
  char path[4096];
  char folder[4096];
  QatModel* fp32 = NULL;
  QatModel* int8 = NULL;
  QatDataset* test = NULL;
  QatExecutor* executor = NULL;
  QatExecutorOptions run = QAT_EXECUTOR_OPTIONS_INIT;
  QatExportOptions keep_float = QAT_EXPORT_OPTIONS_INIT;
  QatTensor* logits = NULL;
  const QatTensor* inputs[1];
  const char* input_name;
  void* bytes = NULL;
  size_t size = 0;
  int synthetic_data = 0;

  join(folder, sizeof folder, dir, "qat");
  /* With float weights too, which keep every trained bit. */
  join(path, sizeof path, dir, "float_weights.onnx");
  keep_float.keep_float_weights = true;
  check(qat_export_folder_to_file(folder, path, &keep_float), "exporting (float weights)");
  join(path, sizeof path, dir, "int8.onnx");
  check(qat_export_folder_to_file(folder, path, NULL), "exporting");
  check(qat_model_load(&int8, path), "loading the export");
  check(qat_model_serialize(&bytes, &size, int8), "serializing the export");
  printf("export: exported int8 model %s, %zu bytes\n", path, size);
  qat_free(bytes);

  join(path, sizeof path, dir, "fp32.onnx");
  check(qat_model_load(&fp32, path), "loading the fp32 model");
  test = load_split(fp32, "test", kTestExamples, &synthetic_data);
  evaluate("fp32", fp32, test);
  evaluate("int8", int8, test);

  /* The export on the executor: compiled once, run on one batch. */
  {
    QatTensor* features = NULL;
    const int64_t shape[2] = {4, kFeatures};
    float* x = calloc(4 * kFeatures, sizeof(float));
    if (x == NULL) exit(1);
    check(qat_tensor_create(&features, QAT_FLOAT32, shape, 2, x), "creating a batch");
    run.num_threads = 1;
    check(qat_executor_create(&executor, int8, &run), "compiling the export");
    input_name = qat_executor_input_name(executor, 0);
    inputs[0] = features;
    check(qat_executor_run(&logits, executor, &input_name, inputs, 1, NULL, 1),
          "running the export");
    printf("executor: %s -> %s [%lld, %lld]\n", input_name, qat_executor_output_name(executor, 0),
           (long long)qat_tensor_shape(logits)[0], (long long)qat_tensor_shape(logits)[1]);
    qat_tensor_free(logits);
    qat_executor_free(executor);
    qat_tensor_free(features);
    free(x);
  }
  qat_dataset_free(test);
  qat_model_free(fp32);
  qat_model_free(int8);
}

static int usage(void) {
  fprintf(stderr,
          "usage: qat_example pipeline|prepare|export DIR\n"
          "       qat_example train DIR first|second [--resume] [--pause-at STEP]\n");
  return 2;
}

int main(int argc, char** argv) {
  const char* mode;
  const char* dir;
  if (argc < 3) return usage();
  mode = argv[1];
  dir = argv[2];
  printf("libqat %s (kernels: %s)\n", qat_version(), qat_kernel_variant());
  if (strcmp(mode, "pipeline") == 0) {
    prepare(dir);
    train(dir, "first", 0, 0);
    train(dir, "second", 0, 0);
    export_and_evaluate(dir);
  } else if (strcmp(mode, "prepare") == 0) {
    prepare(dir);
  } else if (strcmp(mode, "train") == 0) {
    int resume = 0;
    int64_t pause_at = 0;
    int i;
    if (argc < 4) return usage();
    for (i = 4; i < argc; ++i) {
      if (strcmp(argv[i], "--resume") == 0) {
        resume = 1;
      } else if (strcmp(argv[i], "--pause-at") == 0 && i + 1 < argc) {
        pause_at = atoll(argv[++i]);
      } else {
        return usage();
      }
    }
    train(dir, argv[3], resume, pause_at);
  } else if (strcmp(mode, "export") == 0) {
    export_and_evaluate(dir);
  } else {
    return usage();
  }
  return 0;
}
