// The C ABI: its error paths (NULL arguments, freed handles and handles of
// the wrong kind, bad options, failures inside the C++ code all come back as
// statuses, never as crashes or exceptions), the executor handle, and the
// concurrency contract of executors and trainers.  (The whole pipeline runs
// in examples/c and examples/python.)
#include <atomic>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/c_api.h"

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
  qat_executor_free(nullptr);
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
  EXPECT_THAT(Take(qat_model_run(&out, nullptr, nullptr, nullptr, 0, nullptr, 1, nullptr)),
              HasSubstr("model is NULL"));
  QatExecutor* executor = nullptr;
  EXPECT_THAT(Take(qat_executor_create(&executor, nullptr, nullptr)), HasSubstr("model is NULL"));
  EXPECT_THAT(Take(qat_executor_run(&out, nullptr, nullptr, nullptr, 0, nullptr, 1)),
              HasSubstr("executor is NULL"));
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
  EXPECT_THAT(Take(qat_fake_quant(y, nullptr, nullptr, 2, nullptr)), HasSubstr("x is NULL"));
  const float x[2] = {1, 2};
  EXPECT_THAT(Take(qat_fake_quant(y, nullptr, x, 2, nullptr)), HasSubstr("params is NULL"));
  float sg, zg;
  EXPECT_THAT(Take(qat_fake_quant_lsq_grad(nullptr, &zg, nullptr, x, x, 2, nullptr, 1.0f)),
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
  EXPECT_THAT(Take(qat_fake_quant(y, nullptr, x, 1, &bad)),
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
  EXPECT_THAT(Take(qat_fake_quant(y, nullptr, x, 1, &params)),
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
  EXPECT_THAT(Take(qat_trainer_train_step(&loss, trainer, x, y)), HasSubstr("label 42"));
  EXPECT_EQ(qat_trainer_step_count(trainer), 0);
  qat_tensor_free(x);
  qat_tensor_free(y);
  qat_trainer_free(trainer);
  qat_model_free(model);
}

// Two inputs, two outputs: sum = a + b, product = a * b, over [N, 3].
QatModel* TwoByTwoModel() {
  qat::GraphBuilder g;
  g.Input("a", 1, {-1, 3}).Input("b", 1, {-1, 3});
  g.Output("sum", 1, {-1, 3}).Output("product", 1, {-1, 3});
  g.Node("Add", {"a", "b"}, {"sum"});
  g.Node("Mul", {"a", "b"}, {"product"});
  const std::string bytes = g.proto().SerializeAsString();
  QatModel* model = nullptr;
  QatStatus* s = qat_model_load_from_memory(&model, bytes.data(), bytes.size());
  EXPECT_EQ(s, nullptr) << qat_status_message(s);
  qat_status_free(s);
  return model;
}

QatTensor* Floats(std::vector<int64_t> shape, const std::vector<float>& values) {
  QatTensor* t = nullptr;
  QatStatus* s = qat_tensor_create(&t, QAT_FLOAT32, shape.data(), shape.size(), values.data());
  EXPECT_EQ(s, nullptr) << qat_status_message(s);
  qat_status_free(s);
  return t;
}

std::vector<float> Values(const QatTensor* t) {
  const float* p = static_cast<const float*>(qat_tensor_data(t));
  return std::vector<float>(p, p + qat_tensor_num_elements(t));
}

TEST(CApiExecutorTest, RunsManyTimesWithNamedInputsAndOutputs) {
  QatModel* model = TwoByTwoModel();
  ASSERT_NE(model, nullptr);
  QatExecutorOptions options = QAT_EXECUTOR_OPTIONS_INIT;
  options.num_threads = 1;
  QatExecutor* executor = nullptr;
  ASSERT_EQ(qat_executor_create(&executor, model, &options), nullptr);
  qat_model_free(model);  // the executor keeps what it needs

  ASSERT_EQ(qat_executor_num_inputs(executor), 2u);
  EXPECT_STREQ(qat_executor_input_name(executor, 0), "a");
  EXPECT_STREQ(qat_executor_input_name(executor, 1), "b");
  ASSERT_EQ(qat_executor_num_outputs(executor), 2u);
  EXPECT_STREQ(qat_executor_output_name(executor, 0), "sum");
  EXPECT_STREQ(qat_executor_output_name(executor, 1), "product");
  EXPECT_EQ(qat_executor_output_name(executor, 2), nullptr);

  // Inputs in any order, a different batch size each run.
  for (int run = 1; run <= 3; ++run) {
    std::vector<float> a(3 * run), b(3 * run);
    for (int i = 0; i < 3 * run; ++i) {
      a[i] = static_cast<float>(i + run);
      b[i] = 0.5f * static_cast<float>(i - run);
    }
    QatTensor* ta = Floats({run, 3}, a);
    QatTensor* tb = Floats({run, 3}, b);
    const char* names[2] = {"b", "a"};
    const QatTensor* inputs[2] = {tb, ta};
    // One output by name...
    QatTensor* product = nullptr;
    const char* wanted[1] = {"product"};
    ASSERT_EQ(qat_executor_run(&product, executor, names, inputs, 2, wanted, 1), nullptr);
    // ...and all of them.
    QatTensor* all[2] = {nullptr, nullptr};
    ASSERT_EQ(qat_executor_run(all, executor, names, inputs, 2, nullptr, 2), nullptr);
    std::vector<float> sum(a.size()), prod(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      sum[i] = a[i] + b[i];
      prod[i] = a[i] * b[i];
    }
    EXPECT_EQ(Values(product), prod);
    EXPECT_EQ(Values(all[0]), sum);
    EXPECT_EQ(Values(all[1]), prod);
    ASSERT_EQ(qat_tensor_rank(all[0]), 2u);
    EXPECT_EQ(qat_tensor_shape(all[0])[0], run);
    qat_tensor_free(product);
    qat_tensor_free(all[0]);
    qat_tensor_free(all[1]);
    qat_tensor_free(ta);
    qat_tensor_free(tb);
  }
  qat_executor_free(executor);
}

TEST(CApiExecutorTest, ModelRunIsOneExecutorRun) {
  QatModel* model = TwoByTwoModel();
  ASSERT_NE(model, nullptr);
  QatTensor* ta = Floats({1, 3}, {1, 2, 3});
  QatTensor* tb = Floats({1, 3}, {4, 5, 6});
  const char* names[2] = {"a", "b"};
  const QatTensor* inputs[2] = {ta, tb};
  const char* wanted[2] = {"product", "sum"};
  QatTensor* out[2] = {nullptr, nullptr};
  ASSERT_EQ(qat_model_run(out, model, names, inputs, 2, wanted, 2, nullptr), nullptr);
  EXPECT_EQ(Values(out[0]), (std::vector<float>{4, 10, 18}));
  EXPECT_EQ(Values(out[1]), (std::vector<float>{5, 7, 9}));
  qat_tensor_free(out[0]);
  qat_tensor_free(out[1]);
  qat_tensor_free(ta);
  qat_tensor_free(tb);
  qat_model_free(model);
}

TEST(CApiExecutorTest, BadNamesAreRefusedAndOutputsStayNull) {
  QatModel* model = TwoByTwoModel();
  ASSERT_NE(model, nullptr);
  QatExecutor* executor = nullptr;
  ASSERT_EQ(qat_executor_create(&executor, model, nullptr), nullptr);
  QatTensor* ta = Floats({1, 3}, {1, 2, 3});
  QatTensor* tb = Floats({1, 3}, {4, 5, 6});
  QatTensor* sentinel = reinterpret_cast<QatTensor*>(0x1);
  QatTensor* out[2] = {sentinel, sentinel};

  const char* ab[2] = {"a", "b"};
  const char* aa[2] = {"a", "a"};
  const QatTensor* inputs[2] = {ta, tb};
  const char* typo[1] = {"summ"};
  EXPECT_THAT(Take(qat_executor_run(out, executor, ab, inputs, 2, typo, 1)),
              HasSubstr("no output 'summ'"));
  EXPECT_EQ(out[0], nullptr);
  out[0] = sentinel;
  EXPECT_THAT(Take(qat_executor_run(out, executor, aa, inputs, 2, nullptr, 2)),
              HasSubstr("input 'a' is given twice"));
  EXPECT_EQ(out[0], nullptr);
  EXPECT_EQ(out[1], nullptr);
  // A missing input: the executor names it.
  EXPECT_THAT(Take(qat_executor_run(out, executor, ab, inputs, 1, nullptr, 2)),
              HasSubstr("'b'"));
  EXPECT_THAT(Take(qat_executor_run(out, executor, ab, inputs, 2, nullptr, 1)),
              HasSubstr("num_outputs must be 2"));
  // A handle of another kind where a tensor belongs.
  const QatTensor* wrong[2] = {ta, reinterpret_cast<const QatTensor*>(model)};
  EXPECT_THAT(Take(qat_executor_run(out, executor, ab, wrong, 2, nullptr, 2)),
              HasSubstr("inputs[1] (for 'b') is not a live tensor"));
  EXPECT_THAT(Take(qat_executor_run(out, reinterpret_cast<QatExecutor*>(model), ab, inputs, 2,
                                    nullptr, 2)),
              HasSubstr("executor is not a live handle"));
  // Options without a version.
  QatExecutorOptions options;
  std::memset(&options, 0, sizeof options);
  QatExecutor* other = nullptr;
  EXPECT_THAT(Take(qat_executor_create(&other, model, &options)),
              HasSubstr("initialize it with its _INIT macro"));
  EXPECT_EQ(other, nullptr);
  qat_tensor_free(ta);
  qat_tensor_free(tb);
  qat_executor_free(executor);
  qat_model_free(model);
}

// A status is a handle like the others: freeing something else as a status
// does nothing, and reading it says what it is not.
TEST(CApiStatusTest, WrongHandleIsDetected) {
  QatTensor* t = Floats({2}, {1.0f, 2.0f});
  ASSERT_NE(t, nullptr);
  QatStatus* not_a_status = reinterpret_cast<QatStatus*>(t);
  qat_status_free(not_a_status);  // must neither crash nor free the tensor
  EXPECT_EQ(qat_status_code(not_a_status), QAT_INVALID_ARGUMENT);
  EXPECT_THAT(qat_status_message(not_a_status), HasSubstr("not a live status handle"));
  EXPECT_EQ(qat_tensor_num_elements(t), 2u);  // still live
  EXPECT_EQ(Values(t), (std::vector<float>{1.0f, 2.0f}));
  qat_tensor_free(t);
}

// std::bad_alloc inside a call becomes QAT_RESOURCE_EXHAUSTED "out of
// memory"; that status is allocated like any other, and freed.
int ThrowBadAlloc(void*, const QatTensor**) { throw std::bad_alloc(); }

TEST(CApiStatusTest, OutOfMemoryBecomesAStatus) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatCalibrationTable* table = nullptr;
  QatStatus* s = qat_calibrate_callback(&table, model, ThrowBadAlloc, nullptr, nullptr);
  EXPECT_EQ(qat_status_code(s), QAT_RESOURCE_EXHAUSTED);
  EXPECT_STREQ(qat_status_message(s), "out of memory");
  EXPECT_EQ(table, nullptr);
  qat_status_free(s);  // LeakSanitizer builds see a leak here if it is not freed
  qat_model_free(model);
}

// One trainer driven from 4 threads: only one call runs at a time, the others
// get QAT_FAILED_PRECONDITION, and the trainer's state is exactly that of
// the successful steps taken in sequence.
TEST(CApiConcurrencyTest, TrainerRefusesASecondThread) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatTrainerOptions options = QAT_TRAINER_OPTIONS_INIT;
  options.num_threads = 1;
  QatTrainer* shared = nullptr;
  ASSERT_EQ(qat_trainer_create(&shared, model, &options), nullptr);
  std::vector<float> xs(16 * 784);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 37) % 101) / 101.0f;
  QatTensor* x = Floats({16, 784}, xs);
  std::vector<int64_t> ys(16);
  for (int i = 0; i < 16; ++i) ys[i] = i % 10;
  const int64_t y_shape[1] = {16};
  QatTensor* y = nullptr;
  ASSERT_EQ(qat_tensor_create(&y, QAT_INT64, y_shape, 1, ys.data()), nullptr);

  std::atomic<int> ok{0}, refused{0}, other{0};
  std::atomic<bool> go{false};
  auto drive = [&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 40; ++i) {
      QatStatus* s = qat_trainer_train_step(nullptr, shared, x, y);
      if (s == nullptr) {
        ++ok;
      } else if (qat_status_code(s) == QAT_FAILED_PRECONDITION &&
                 std::string(qat_status_message(s)).find("in use by another thread") !=
                     std::string::npos) {
        ++refused;
      } else {
        ++other;
      }
      qat_status_free(s);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(drive);
  go = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(refused.load(), 0) << "4 threads x 40 steps never overlapped";
  EXPECT_EQ(ok.load() + refused.load(), 160);
  EXPECT_EQ(qat_trainer_step_count(shared), ok.load());

  // The same number of steps on one thread gives bit-identical parameters,
  // seen through the loss of one more (evaluation) step.
  QatTrainer* alone = nullptr;
  ASSERT_EQ(qat_trainer_create(&alone, model, &options), nullptr);
  for (int i = 0; i < ok.load(); ++i) {
    ASSERT_EQ(qat_trainer_train_step(nullptr, alone, x, y), nullptr);
  }
  float shared_loss = -1.0f, alone_loss = -2.0f;
  ASSERT_EQ(qat_trainer_eval_step(&shared_loss, nullptr, shared, x, y), nullptr);
  ASSERT_EQ(qat_trainer_eval_step(&alone_loss, nullptr, alone, x, y), nullptr);
  EXPECT_EQ(shared_loss, alone_loss);

  qat_trainer_free(alone);
  qat_trainer_free(shared);
  qat_tensor_free(x);
  qat_tensor_free(y);
  qat_model_free(model);
}

// The same for an executor: concurrent runs are refused, and every run that
// went through gave the right answer.
TEST(CApiConcurrencyTest, ExecutorRefusesASecondThread) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatExecutorOptions options = QAT_EXECUTOR_OPTIONS_INIT;
  options.num_threads = 1;
  QatExecutor* executor = nullptr;
  ASSERT_EQ(qat_executor_create(&executor, model, &options), nullptr);
  std::vector<float> xs(64 * 784);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 13) % 97) / 97.0f;
  QatTensor* x = Floats({64, 784}, xs);
  const char* name = qat_executor_input_name(executor, 0);
  const QatTensor* inputs[1] = {x};
  QatTensor* expected = nullptr;
  ASSERT_EQ(qat_executor_run(&expected, executor, &name, inputs, 1, nullptr, 1), nullptr);
  const std::vector<float> want = Values(expected);

  std::atomic<int> ok{0}, refused{0}, wrong{0};
  std::atomic<bool> go{false};
  auto drive = [&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 40; ++i) {
      QatTensor* out = nullptr;
      QatStatus* s = qat_executor_run(&out, executor, &name, inputs, 1, nullptr, 1);
      if (s == nullptr) {
        ++ok;
        if (Values(out) != want) ++wrong;
      } else if (qat_status_code(s) == QAT_FAILED_PRECONDITION) {
        ++refused;
        if (out != nullptr) ++wrong;
      } else {
        ++wrong;
      }
      qat_tensor_free(out);
      qat_status_free(s);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(drive);
  go = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(refused.load(), 0) << "4 threads x 40 runs never overlapped";
  EXPECT_GT(ok.load(), 0);
  qat_tensor_free(expected);
  qat_tensor_free(x);
  qat_executor_free(executor);
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

// A heap status whose text is "out of memory" is freed like any other (only
// the static status kept for a failed allocation is not): after the free it
// is no longer a live status.
TEST(CApiStatusTest, OutOfMemoryStatusIsFreed) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatCalibrationTable* table = nullptr;
  QatStatus* s = qat_calibrate_callback(&table, model, ThrowBadAlloc, nullptr, nullptr);
  ASSERT_STREQ(qat_status_message(s), "out of memory");
  qat_status_free(s);
  EXPECT_EQ(qat_status_code(s), QAT_INVALID_ARGUMENT);
  qat_model_free(model);
}
#endif

}  // namespace
