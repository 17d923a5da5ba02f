// The C ABI's error paths: NULL arguments, freed handles, bad options and
// failures inside the C++ code all come back as statuses, never as crashes
// or exceptions.  (The happy path runs in examples/c and examples/python.)
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat_c_api.h"

namespace {

using ::testing::HasSubstr;

// Takes ownership of a status and returns "CODE: message".
std::string Take(QatStatus* s) {
  const std::string out = std::to_string(qat_status_code(s)) + ": " + qat_status_message(s);
  qat_status_free(s);
  return out;
}

TEST(CApiTest, NullStatusIsOk) {
  EXPECT_EQ(qat_status_code(nullptr), QAT_OK);
  EXPECT_STREQ(qat_status_message(nullptr), "");
  qat_status_free(nullptr);  // a no-op
  qat_model_free(nullptr);
  qat_tensor_free(nullptr);
  qat_trainer_free(nullptr);
  qat_calibration_table_free(nullptr);
  qat_free(nullptr);
}

TEST(CApiTest, VersionMatchesTheHeader) {
  const std::string v = std::to_string(QAT_C_API_VERSION_MAJOR) + "." +
                        std::to_string(QAT_C_API_VERSION_MINOR) + "." +
                        std::to_string(QAT_C_API_VERSION_PATCH);
  EXPECT_EQ(v, qat_version());
}

TEST(CApiTest, NullArgumentsAreNamed) {
  EXPECT_THAT(Take(qat_model_load(nullptr, "x.onnx")), HasSubstr("out is NULL"));
  QatModel* model = nullptr;
  EXPECT_THAT(Take(qat_model_load(&model, nullptr)), HasSubstr("path is NULL"));
  EXPECT_EQ(model, nullptr);
  EXPECT_THAT(Take(qat_model_save(nullptr, "x.onnx")), HasSubstr("model is NULL"));
  QatTensor* out = nullptr;
  EXPECT_THAT(Take(qat_model_run(&out, nullptr, nullptr, 1)), HasSubstr("model is NULL"));
  QatCalibrationTable* table = nullptr;
  EXPECT_THAT(Take(qat_calibrate_arrays(&table, nullptr, nullptr, nullptr)),
              HasSubstr("model is NULL"));
  QatModel* q = nullptr;
  EXPECT_THAT(Take(qat_quantize(&q, nullptr, nullptr, nullptr)), HasSubstr("model is NULL"));
  QatTrainer* trainer = nullptr;
  EXPECT_THAT(Take(qat_trainer_create(&trainer, nullptr, nullptr)), HasSubstr("model is NULL"));
  EXPECT_THAT(Take(qat_trainer_train_step(nullptr, nullptr, nullptr, nullptr)),
              HasSubstr("trainer is NULL"));
  EXPECT_THAT(Take(qat_trainer_export(&q, nullptr, false)), HasSubstr("trainer is NULL"));
  float y[2];
  EXPECT_THAT(Take(qat_fake_quant(nullptr, 2, y, nullptr, nullptr)), HasSubstr("x is NULL"));
  const float x[2] = {1, 2};
  EXPECT_THAT(Take(qat_fake_quant(x, 2, y, nullptr, nullptr)), HasSubstr("params is NULL"));
  float sg, zg;
  EXPECT_THAT(Take(qat_fake_quant_lsq_grad(x, x, 2, nullptr, nullptr, 1.0f, nullptr, &zg)),
              HasSubstr("scale_grad is NULL"));
  (void)sg;
}

TEST(CApiTest, FailuresInsideTheLibraryBecomeStatuses) {
  QatModel* model = nullptr;
  const char garbage[] = "this is not an ONNX model";
  const std::string s = Take(qat_model_load_from_memory(&model, garbage, sizeof garbage));
  EXPECT_THAT(s, HasSubstr("3: "));
  EXPECT_EQ(model, nullptr);
  EXPECT_THAT(Take(qat_model_load(&model, "/no/such/model.onnx")),
              HasSubstr("/no/such/model.onnx"));
  EXPECT_THAT(Take(qat_model_zoo(&model, "resnet", 0)), HasSubstr("unknown zoo model 'resnet'"));

  // A model, a table for another model: quantize names the missing tensor.
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatCalibrationTable* table = nullptr;
  EXPECT_THAT(Take(qat_calibration_table_load(&table, "/no/such/table.json")),
              HasSubstr("/no/such/table.json"));
  QatFakeQuantParams bad = QAT_FAKE_QUANT_PARAMS_INIT;
  bad.scale = -1.0f;
  float x[1] = {0.5f}, y[1];
  EXPECT_THAT(Take(qat_fake_quant(x, 1, y, nullptr, &bad)),
              HasSubstr("scale must be positive and finite"));
  qat_model_free(model);
}

TEST(CApiTest, OptionsWithoutAVersionAreRefused) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatTrainerOptions options;
  std::memset(&options, 0, sizeof options);  // forgot QAT_TRAINER_OPTIONS_INIT
  QatTrainer* trainer = nullptr;
  EXPECT_THAT(Take(qat_trainer_create(&trainer, model, &options)),
              HasSubstr("initialize it with its _INIT macro"));
  QatFakeQuantParams params;
  std::memset(&params, 0, sizeof params);
  float x[1] = {0.5f}, y[1];
  EXPECT_THAT(Take(qat_fake_quant(x, 1, y, nullptr, &params)),
              HasSubstr("QAT_FAKE_QUANT_PARAMS_INIT"));
  qat_model_free(model);
}

TEST(CApiTest, TrainerReportsBadLabels) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatTrainerOptions options = QAT_TRAINER_OPTIONS_INIT;
  options.num_threads = 1;
  QatTrainer* trainer = nullptr;
  ASSERT_EQ(qat_trainer_create(&trainer, model, &options), nullptr);
  const int64_t xs[2] = {2, 784}, ys[1] = {2};
  QatTensor* x = nullptr;
  QatTensor* y = nullptr;
  ASSERT_EQ(qat_tensor_create(&x, QAT_FLOAT32, xs, 2, nullptr), nullptr);
  const int64_t labels[2] = {3, 42};
  ASSERT_EQ(qat_tensor_create(&y, QAT_INT64, ys, 1, labels), nullptr);
  float loss = -1.0f;
  EXPECT_THAT(Take(qat_trainer_train_step(trainer, x, y, &loss)), HasSubstr("label 42"));
  EXPECT_EQ(qat_trainer_step_count(trainer), 0);
  qat_tensor_free(x);
  qat_tensor_free(y);
  qat_trainer_free(trainer);
  qat_model_free(model);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QAT_TEST_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define QAT_TEST_UNDER_ASAN 1
#endif

#if !defined(QAT_TEST_UNDER_ASAN)
// Reading a freed handle is undefined behaviour; the magic number catches
// the common case cheaply.  (AddressSanitizer builds skip this on purpose.)
TEST(CApiTest, UseAfterFreeIsDetectedWhenCheap) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  qat_model_free(model);
  EXPECT_THAT(Take(qat_model_save(model, "/tmp/never.onnx")), HasSubstr("not a live handle"));
}
#endif

}  // namespace
