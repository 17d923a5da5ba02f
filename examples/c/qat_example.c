/* The whole QAT pipeline through libqat's C ABI: a model goes through
 * calibrate -> quantize -> prepare (trainer) -> a few training steps ->
 * export, and the int8 export is run once.
 *
 *   qat_example OUT_DIR [MODEL.onnx]
 *
 * Without MODEL.onnx it uses the library's 784-500-10 MLP.  The data are
 * synthetic, seeded: this shows the calls, not an accuracy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qat/c_api.h>

/* Prints a failed status and exits. */
static void check(QatStatus* status, const char* what) {
  if (status == NULL) return;
  fprintf(stderr, "qat_example: %s failed: %s\n", what, qat_status_message(status));
  qat_status_free(status);
  exit(1);
}

static unsigned int rng_state = 12345u;
static float uniform(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return (float)((rng_state >> 8) & 0xffffff) / 16777216.0f;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: qat_example OUT_DIR [MODEL.onnx]\n");
    return 2;
  }
  char path[4096];
  printf("libqat %s (kernels: %s)\n", qat_version(), qat_kernel_variant());

  QatModel* model = NULL;
  if (argc > 2) {
    check(qat_model_load(&model, argv[2]), "loading the model");
  } else {
    check(qat_model_zoo(&model, "mlp", 0), "building the MLP");
  }

  /* 256 samples of 784 features, labels in [0, 10). */
  enum { kSamples = 256, kFeatures = 784, kBatch = 32 };
  float* x = malloc(sizeof(float) * kSamples * kFeatures);
  int64_t* y = malloc(sizeof(int64_t) * kSamples);
  if (x == NULL || y == NULL) return 1;
  for (int i = 0; i < kSamples * kFeatures; ++i) x[i] = uniform();
  for (int i = 0; i < kSamples; ++i) y[i] = i % 10;

  QatTensor* features = NULL;
  const int64_t all_shape[2] = {kSamples, kFeatures};
  check(qat_tensor_create(&features, QAT_FLOAT32, all_shape, 2, x), "creating the features");

  QatCalibrateOptions calibrate = QAT_CALIBRATE_OPTIONS_INIT;
  calibrate.method = QAT_CALIBRATION_PERCENTILE;
  calibrate.per_channel_weights = true;
  QatCalibrationTable* table = NULL;
  check(qat_calibrate_arrays(&table, model, features, &calibrate), "calibrating");
  snprintf(path, sizeof path, "%s/table.json", argv[1]);
  check(qat_calibration_table_save(table, path), "saving the table");
  printf("calibrated %zu tensors -> %s\n", qat_calibration_table_size(table), path);

  QatQuantizeOptions quantize = QAT_QUANTIZE_OPTIONS_INIT;
  quantize.per_channel = true;
  QatModel* qdq = NULL;
  check(qat_quantize(&qdq, model, table, &quantize), "quantizing");

  QatTrainerOptions options = QAT_TRAINER_OPTIONS_INIT;
  options.learning_rate = 1e-4f;
  options.num_threads = 1;
  QatTrainer* trainer = NULL;
  check(qat_trainer_create(&trainer, qdq, &options), "preparing the trainer");

  for (int step = 0; step < 5; ++step) {
    const int first = (step * kBatch) % kSamples;
    QatTensor* inputs = NULL;
    QatTensor* labels = NULL;
    const int64_t x_shape[2] = {kBatch, kFeatures};
    const int64_t y_shape[1] = {kBatch};
    check(qat_tensor_create(&inputs, QAT_FLOAT32, x_shape, 2, x + first * kFeatures), "batch");
    check(qat_tensor_create(&labels, QAT_INT64, y_shape, 1, y + first), "labels");
    float loss = 0.0f;
    check(qat_trainer_train_step(&loss, trainer, inputs, labels), "a training step");
    printf("step %d: loss %.4f\n", step + 1, loss);
    qat_tensor_free(inputs);
    qat_tensor_free(labels);
  }
  snprintf(path, sizeof path, "%s/checkpoint", argv[1]);
  check(qat_trainer_save_checkpoint(trainer, path), "saving the checkpoint");

  QatModel* exported = NULL;
  check(qat_trainer_export(&exported, trainer, false), "exporting");
  snprintf(path, sizeof path, "%s/int8.onnx", argv[1]);
  check(qat_model_save(exported, path), "saving the export");
  void* bytes = NULL;
  size_t size = 0;
  check(qat_model_serialize(&bytes, &size, exported), "serializing the export");
  printf("exported int8 model: %s, %zu bytes\n", path, size);
  qat_free(bytes);

  QatTensor* logits = NULL;
  QatExecutorOptions run = QAT_EXECUTOR_OPTIONS_INIT;
  run.num_threads = 1;
  QatExecutor* executor = NULL;
  check(qat_executor_create(&executor, exported, &run), "compiling the export");
  const char* input_name = qat_executor_input_name(executor, 0);
  const QatTensor* inputs[1];
  inputs[0] = features;
  check(qat_executor_run(&logits, executor, &input_name, inputs, 1, NULL, 1), "running the export");
  qat_executor_free(executor);
  const int64_t* shape = qat_tensor_shape(logits);
  printf("logits [%lld, %lld]\n", (long long)shape[0], (long long)shape[1]);

  qat_tensor_free(logits);
  qat_model_free(exported);
  qat_trainer_free(trainer);
  qat_model_free(qdq);
  qat_calibration_table_free(table);
  qat_tensor_free(features);
  qat_model_free(model);
  free(x);
  free(y);
  return 0;
}
