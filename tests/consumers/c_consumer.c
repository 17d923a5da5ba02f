/* A C program linked with plain cc and pkg-config against the installed C
 * ABI: <qat/c_api.h> from the installed include folder, an executor run. */
#include <stdio.h>
#include <string.h>

#include <qat/c_api.h>

static int failed(QatStatus* status, const char* what) {
  if (status == NULL) return 0;
  fprintf(stderr, "%s: %s\n", what, qat_status_message(status));
  qat_status_free(status);
  return 1;
}

int main(void) {
  char expected[32];
  QatModel* model = NULL;
  QatExecutor* executor = NULL;
  QatTensor* input = NULL;
  QatTensor* logits = NULL;
  const QatTensor* inputs[1];
  const char* name;
  const int64_t shape[2] = {2, 784};
  snprintf(expected, sizeof expected, "%d.%d.%d", QAT_C_API_VERSION_MAJOR,
           QAT_C_API_VERSION_MINOR, QAT_C_API_VERSION_PATCH);
  if (strcmp(qat_version(), expected) != 0) {
    fprintf(stderr, "version mismatch: %s vs %s\n", qat_version(), expected);
    return 1;
  }
  if (failed(qat_model_zoo(&model, "mlp", 0), "zoo") ||
      failed(qat_executor_create(&executor, model, NULL), "executor") ||
      failed(qat_tensor_create(&input, QAT_FLOAT32, shape, 2, NULL), "tensor")) {
    return 1;
  }
  name = qat_executor_input_name(executor, 0);
  inputs[0] = input;
  if (failed(qat_executor_run(&logits, executor, &name, inputs, 1, NULL, 1), "run")) return 1;
  if (qat_tensor_rank(logits) != 2 || qat_tensor_shape(logits)[0] != 2 ||
      qat_tensor_shape(logits)[1] != 10) {
    fprintf(stderr, "unexpected logits shape\n");
    return 1;
  }
  printf("C consumer OK: libqat %s, kernels %s, logits [2, 10]\n", qat_version(),
         qat_kernel_variant());
  qat_tensor_free(logits);
  qat_tensor_free(input);
  qat_executor_free(executor);
  qat_model_free(model);
  return 0;
}
