// The C ABI: its error paths (NULL arguments, freed handles and handles of
// the wrong kind, bad options, failures inside the C++ code all come back as
// statuses, never as crashes or exceptions), the executor handle, and the
// concurrency contract of executors and trainers.  (The whole pipeline runs
// in examples/c and examples/python.)
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/c_api.h"
#include "core/model_internal.h"
#include "qat/calibrate.h"
#include "qat/quantize.h"
#include "qat/checkpoint.h"
#include "qat/training_artifacts.h"
#include "qat/data_spec.h"
#include "qat/evaluate.h"
#include "qat/export.h"
#include "qat/model_zoo.h"
#include "qat/prepare.h"
#include "qat/train_folder.h"

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

// Starts `body` on 4 threads at once and waits for them.
template <typename Body>
void OnFourThreads(Body body) {
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      body();
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
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
  OnFourThreads([&] {
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
  });
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
  OnFourThreads([&] {
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
  });
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(refused.load(), 0) << "4 threads x 40 runs never overlapped";
  EXPECT_GT(ok.load(), 0);
  qat_tensor_free(expected);
  qat_tensor_free(x);
  qat_executor_free(executor);
  qat_model_free(model);
}

// ---- The stage calls ---------------------------------------------------------

std::string TempFolder(const std::string& name) {
  return ::testing::TempDir() + "/capi_" + name + "_" + std::to_string(::getpid());
}

// 96 seeded examples of the MLP's 784 features, labels in [0, 10).
struct Examples {
  std::vector<float> x;
  std::vector<int64_t> y;
  explicit Examples(int n, unsigned seed = 7) : x(static_cast<size_t>(n) * 784), y(n) {
    for (int i = 0; i < n; ++i) {
      y[i] = i % 10;
      for (int j = 0; j < 784; ++j) {
        seed = seed * 1103515245u + 12345u;
        x[i * 784 + j] = (static_cast<float>(y[i]) - 4.5f) / 4.5f +
                         static_cast<float>((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
      }
    }
  }
  int n() const { return static_cast<int>(y.size()); }
};

QatDataset* MakeDataset(const Examples& e) {
  QatTensor* x = Floats({e.n(), 784}, e.x);
  const int64_t shape[1] = {e.n()};
  QatTensor* y = nullptr;
  EXPECT_EQ(qat_tensor_create(&y, QAT_INT64, shape, 1, e.y.data()), nullptr);
  QatDataset* data = nullptr;
  QatStatus* s = qat_dataset_create(&data, x, y);
  EXPECT_EQ(s, nullptr) << qat_status_message(s);
  qat_status_free(s);
  qat_tensor_free(x);
  qat_tensor_free(y);
  return data;
}

std::string Bytes(const QatModel* model) {
  void* data = nullptr;
  size_t size = 0;
  EXPECT_EQ(qat_model_serialize(&data, &size, model), nullptr);
  std::string bytes(static_cast<const char*>(data), size);
  qat_free(data);
  return bytes;
}

// The options' defaults are the library's.
TEST(CApiStagesTest, DefaultsAreTheLibrarys) {
  const QatDatasetOptions data = QAT_DATASET_OPTIONS_INIT;
  EXPECT_EQ(data.mean, qat::DataSpecOptions().mean);
  EXPECT_EQ(data.std, qat::DataSpecOptions().std);
  EXPECT_EQ(data.limit, qat::DataSpecOptions().limit);
  const QatTrainFolderOptions train = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  EXPECT_EQ(train.epochs, QAT_UNSET);
  EXPECT_EQ(train.lr, static_cast<double>(QAT_UNSET));
  EXPECT_EQ(train.data, nullptr);
  EXPECT_EQ(train.observe_steps, QAT_UNSET);
  EXPECT_EQ(train.save_every, 0);
  EXPECT_FALSE(train.resume);
  EXPECT_EQ(train.progress, nullptr);
}

// prepare -> train -> train (chained) -> export through the C ABI gives the
// bytes that the stages API gives: the calls are the stages, not copies.
TEST(CApiStagesTest, CallsAreTheStages) {
  const Examples examples(96);
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatDataset* data = MakeDataset(examples);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(qat_dataset_size(data), 96);

  const std::string c_folder = TempFolder("c_stages");
  ASSERT_EQ(qat_prepare(model, c_folder.c_str(), nullptr), nullptr);
  for (int call = 0; call < 2; ++call) {
    QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
    options.epochs = 1;
    options.batch = 32;
    options.lr = call == 0 ? 1e-3 : 5e-4;
    options.num_threads = 1;
    QatTrainResult result = QAT_TRAIN_RESULT_INIT;
    QatStatus* s = qat_train_folder(&result, c_folder.c_str(), data, &options);
    ASSERT_EQ(s, nullptr) << qat_status_message(s);
    EXPECT_EQ(result.epochs, 1);
    EXPECT_EQ(result.steps, 3);
  }
  QatModel* c_export = nullptr;
  ASSERT_EQ(qat_export_folder(&c_export, c_folder.c_str(), nullptr), nullptr);

  // The same through the C++ stages.
  auto mlp = qat::MakeMlp({});
  ASSERT_TRUE(mlp.ok());
  const std::string cc_folder = TempFolder("cc_stages");
  ASSERT_TRUE(qat::Prepare(*mlp, cc_folder).ok());
  auto dataset =
      qat::Dataset::Create(qat::Tensor::FromValues<float>({96, 784}, examples.x),
                           qat::Tensor::FromValues<int64_t>({96}, examples.y));
  ASSERT_TRUE(dataset.ok());
  for (double lr : {1e-3, 5e-4}) {
    qat::TrainFolderOptions options;
    options.epochs = 1;
    options.batch = 32;
    options.lr = lr;
    options.threads = 1;
    ASSERT_TRUE(qat::TrainFolder(cc_folder, *dataset, options).ok());
  }
  auto cc_export = qat::ExportFolder(cc_folder);
  ASSERT_TRUE(cc_export.ok());
  EXPECT_EQ(Bytes(c_export), cc_export->Serialize());

  // Evaluate: the C report is the stage's report.
  QatEvalReport report = QAT_EVAL_REPORT_INIT;
  QatEvaluateOptions evaluate = QAT_EVALUATE_OPTIONS_INIT;
  evaluate.num_threads = 1;
  ASSERT_EQ(qat_evaluate(&report, c_export, data, &evaluate), nullptr);
  qat::EvaluateOptions e;
  e.num_threads = 1;
  auto expected = qat::Evaluate(*cc_export, *dataset, e);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(report.examples, 96);
  EXPECT_EQ(report.correct, expected->correct);
  EXPECT_EQ(report.accuracy, expected->accuracy);
  EXPECT_EQ(report.mean_loss, expected->mean_loss);

  // To a file: the same bytes.
  const std::string path = c_folder + "/exported.onnx";
  ASSERT_EQ(qat_export_folder_to_file(c_folder.c_str(), path.c_str(), nullptr), nullptr);
  QatModel* loaded = nullptr;
  ASSERT_EQ(qat_model_load(&loaded, path.c_str()), nullptr);
  EXPECT_EQ(Bytes(loaded), Bytes(c_export));

  qat_model_free(loaded);
  qat_model_free(c_export);
  qat_dataset_free(data);
  qat_model_free(model);
}

struct StopAt {
  int64_t step;
  int64_t calls = 0;
};
int StopAtStep(void* user_data, const QatTrainProgress* p) {
  auto* stop = static_cast<StopAt*>(user_data);
  ++stop->calls;
  return p->global_step == stop->step ? 1 : 0;
}

// A callback that stops the run: QAT_CANCELLED, the checkpoint keeps the
// step, and a resume (settings left unset: the stored ones) ends where an
// uninterrupted run ends, bit for bit.
TEST(CApiStagesTest, StoppedRunResumesExactly) {
  const Examples examples(160);
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatDataset* data = MakeDataset(examples);
  auto train = [&](const std::string& folder, int64_t stop_at, bool resume, StopAt* stop) {
    QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
    if (!resume) {
      options.epochs = 2;
      options.batch = 32;
      options.seed = 5;
      options.schedule = QAT_SCHEDULE_COSINE;
      options.save_every = 3;
    }
    options.num_threads = 1;
    options.resume = resume;
    if (stop_at > 0) {
      stop->step = stop_at;
      options.progress = StopAtStep;
      options.user_data = stop;
    }
    return qat_train_folder(nullptr, folder.c_str(), data, &options);
  };
  const std::string whole = TempFolder("whole"), stopped = TempFolder("stopped");
  ASSERT_EQ(qat_prepare(model, whole.c_str(), nullptr), nullptr);
  ASSERT_EQ(qat_prepare(model, stopped.c_str(), nullptr), nullptr);
  ASSERT_EQ(train(whole, 0, false, nullptr), nullptr);

  StopAt stop{0};
  const std::string s = Take(train(stopped, 7, false, &stop));
  EXPECT_THAT(s, HasSubstr(std::to_string(QAT_CANCELLED) + ": "));
  EXPECT_THAT(s, HasSubstr("stopped training after step 7"));
  EXPECT_EQ(stop.calls, 7);
  ASSERT_EQ(train(stopped, 0, true, nullptr), nullptr);

  QatModel* a = nullptr;
  QatModel* b = nullptr;
  QatExportOptions keep = QAT_EXPORT_OPTIONS_INIT;
  keep.keep_float_weights = true;  // every trained bit
  ASSERT_EQ(qat_export_folder(&a, whole.c_str(), &keep), nullptr);
  ASSERT_EQ(qat_export_folder(&b, stopped.c_str(), &keep), nullptr);
  EXPECT_EQ(Bytes(a), Bytes(b));
  qat_model_free(a);
  qat_model_free(b);
  qat_dataset_free(data);
  qat_model_free(model);
}

// Batches for qat_train_folder_callback: the examples in the order that
// qat_train_folder's own shuffling gives (seed 5), 32 at a time; stops
// (returns `give_up`) at call `stop_at` when that is >= 0.
struct Batches {
  const Examples* examples;
  int64_t stop_at = -1;
  int give_up = 0;
  int64_t calls = 0;
  std::vector<std::pair<int64_t, int64_t>> asked;  // (epoch, step)
  QatTensor* x = nullptr;
  QatTensor* y = nullptr;
  ~Batches() {
    qat_tensor_free(x);
    qat_tensor_free(y);
  }
};
int NextBatch(void* user_data, int64_t epoch, int64_t step, const QatTensor** features,
              const QatTensor** labels) {
  auto* b = static_cast<Batches*>(user_data);
  if (b->calls++ == b->stop_at) return b->give_up;
  b->asked.emplace_back(epoch, step);
  const int64_t n = b->examples->n();
  const std::vector<int64_t> order = qat::EpochOrder(n, 5, epoch, true);
  const int64_t begin = step * 32, end = std::min<int64_t>(n, begin + 32);
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = begin; i < end; ++i) {
    const float* row = b->examples->x.data() + order[i] * 784;
    x.insert(x.end(), row, row + 784);
    y.push_back(b->examples->y[order[i]]);
  }
  qat_tensor_free(b->x);
  qat_tensor_free(b->y);
  const int64_t xs[2] = {end - begin, 784}, ys[1] = {end - begin};
  if (qat_tensor_create(&b->x, QAT_FLOAT32, xs, 2, x.data()) != nullptr) return -1;
  if (qat_tensor_create(&b->y, QAT_INT64, ys, 1, y.data()) != nullptr) return -1;
  *features = b->x;
  *labels = b->y;
  return 1;
}

// Batches from a callback train exactly as the same batches from a data
// set; a callback that gives too few is InvalidArgument, one that aborts is
// Cancelled; a stopped run resumes at the step it stopped at.
TEST(CApiStagesTest, TrainFolderCallbackIsTheDatasetRun) {
  const Examples examples(96);
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatDataset* data = MakeDataset(examples);
  QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  options.epochs = 2;
  options.batch = 32;
  options.seed = 5;
  options.schedule = QAT_SCHEDULE_COSINE;
  options.num_threads = 1;
  const std::string by_data = TempFolder("by_data"), by_callback = TempFolder("by_callback");
  ASSERT_EQ(qat_prepare(model, by_data.c_str(), nullptr), nullptr);
  ASSERT_EQ(qat_prepare(model, by_callback.c_str(), nullptr), nullptr);
  ASSERT_EQ(qat_train_folder(nullptr, by_data.c_str(), data, &options), nullptr);

  Batches batches{&examples};
  QatTrainResult result = QAT_TRAIN_RESULT_INIT;
  QatStatus* s = qat_train_folder_callback(&result, by_callback.c_str(), NextBatch, &batches, 3,
                                           &options);
  ASSERT_EQ(s, nullptr) << qat_status_message(s);
  EXPECT_EQ(result.steps, 6);
  EXPECT_EQ(result.epochs, 2);
  const std::vector<std::pair<int64_t, int64_t>> in_order = {{0, 0}, {0, 1}, {0, 2},
                                                             {1, 0}, {1, 1}, {1, 2}};
  EXPECT_EQ(batches.asked, in_order);
  QatExportOptions keep = QAT_EXPORT_OPTIONS_INIT;
  keep.keep_float_weights = true;
  QatModel* a = nullptr;
  QatModel* b = nullptr;
  ASSERT_EQ(qat_export_folder(&a, by_data.c_str(), &keep), nullptr);
  ASSERT_EQ(qat_export_folder(&b, by_callback.c_str(), &keep), nullptr);
  EXPECT_EQ(Bytes(a), Bytes(b));
  qat_model_free(b);

  // Too few batches, an abort, a bad count, no callback.
  Batches short_epoch{&examples, 4, 0};
  EXPECT_THAT(Take(qat_train_folder_callback(nullptr, by_callback.c_str(), NextBatch,
                                             &short_epoch, 3, &options)),
              HasSubstr(std::to_string(QAT_INVALID_ARGUMENT) +
                        ": the batch callback gave no batch for step 1 of epoch 1"));
  Batches abort{&examples, 1, -1};
  EXPECT_THAT(Take(qat_train_folder_callback(nullptr, by_callback.c_str(), NextBatch, &abort,
                                             3, &options)),
              HasSubstr(std::to_string(QAT_CANCELLED) + ": the batch callback stopped"));
  EXPECT_THAT(Take(qat_train_folder_callback(nullptr, by_callback.c_str(), NextBatch, &abort,
                                             0, &options)),
              HasSubstr("steps per epoch must be >= 1, not 0"));
  EXPECT_THAT(Take(qat_train_folder_callback(nullptr, by_callback.c_str(), nullptr, nullptr, 3,
                                             &options)),
              HasSubstr("next_batch is NULL"));

  // Stopped by the progress callback after step 4, then resumed: the
  // resume asks for step 1 of epoch 1 first and ends bit-identical.
  const std::string resumed = TempFolder("resumed");
  ASSERT_EQ(qat_prepare(model, resumed.c_str(), nullptr), nullptr);
  StopAt stop{4};
  QatTrainFolderOptions stopping = options;
  stopping.progress = StopAtStep;
  stopping.user_data = &stop;
  Batches first{&examples};
  EXPECT_THAT(Take(qat_train_folder_callback(nullptr, resumed.c_str(), NextBatch, &first, 3,
                                             &stopping)),
              HasSubstr("stopped training after step 4"));
  QatTrainFolderOptions resume = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  resume.resume = true;
  resume.num_threads = 1;
  Batches rest{&examples};
  ASSERT_EQ(qat_train_folder_callback(nullptr, resumed.c_str(), NextBatch, &rest, 3, &resume),
            nullptr);
  const std::vector<std::pair<int64_t, int64_t>> the_rest = {{1, 1}, {1, 2}};
  EXPECT_EQ(rest.asked, the_rest);
  ASSERT_EQ(qat_export_folder(&b, resumed.c_str(), &keep), nullptr);
  EXPECT_EQ(Bytes(a), Bytes(b));
  qat_model_free(b);
  qat_model_free(a);
  qat_dataset_free(data);
  qat_model_free(model);
}

// A trainer opened on a folder starts from its checkpoint, and steps taken
// through it, saved to FOLDER/checkpoint, are what a folder run of the same
// batches at a constant rate gives.
TEST(CApiStagesTest, TrainerOpensAFolder) {
  const Examples examples(96);
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  const std::string by_run = TempFolder("by_run"), by_steps = TempFolder("by_steps");
  ASSERT_EQ(qat_prepare(model, by_run.c_str(), nullptr), nullptr);
  ASSERT_EQ(qat_prepare(model, by_steps.c_str(), nullptr), nullptr);
  QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  options.seed = 5;
  options.num_threads = 1;
  Batches run_batches{&examples};
  ASSERT_EQ(qat_train_folder_callback(nullptr, by_run.c_str(), NextBatch, &run_batches, 3,
                                      &options),
            nullptr);

  QatTrainerOptions trainer_options = QAT_TRAINER_OPTIONS_INIT;
  trainer_options.num_threads = 1;
  trainer_options.seed = 5;
  QatTrainer* trainer = nullptr;
  QatStatus* s = qat_trainer_open_folder(&trainer, by_steps.c_str(), &trainer_options);
  ASSERT_EQ(s, nullptr) << qat_status_message(s);
  Batches step_batches{&examples};
  for (int64_t step = 0; step < 3; ++step) {
    const QatTensor* x = nullptr;
    const QatTensor* y = nullptr;
    ASSERT_EQ(NextBatch(&step_batches, 0, step, &x, &y), 1);
    float loss = 0;
    ASSERT_EQ(qat_trainer_train_step(&loss, trainer, x, y), nullptr);
    EXPECT_GT(loss, 0.0f);
  }
  EXPECT_EQ(qat_trainer_step_count(trainer), 3);
  ASSERT_EQ(qat_trainer_save_checkpoint(trainer, (by_steps + "/checkpoint").c_str()), nullptr);
  QatExportOptions keep = QAT_EXPORT_OPTIONS_INIT;
  keep.keep_float_weights = true;
  QatModel* a = nullptr;
  QatModel* b = nullptr;
  ASSERT_EQ(qat_export_folder(&a, by_run.c_str(), &keep), nullptr);
  ASSERT_EQ(qat_export_folder(&b, by_steps.c_str(), &keep), nullptr);
  EXPECT_EQ(Bytes(a), Bytes(b));

  QatTrainer* none = nullptr;
  EXPECT_THAT(Take(qat_trainer_open_folder(&none, "/no/such/folder", nullptr)),
              HasSubstr("/no/such/folder"));
  EXPECT_EQ(none, nullptr);
  qat_model_free(a);
  qat_model_free(b);
  qat_trainer_free(trainer);
  qat_model_free(model);
}

// Version 2 of QatPrepareOptions carries trainable globs; frozen wins, and
// an unmatched glob is an error naming it.  Version 1 callers are unchanged.
TEST(CApiStagesTest, PrepareTakesTrainableAndFrozenGlobs) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  const char* trainable[] = {"fc*"};
  const char* frozen[] = {"*.bias"};
  QatPrepareOptions options = QAT_PREPARE_OPTIONS_INIT;
  options.trainable = trainable;
  options.num_trainable = 1;
  options.frozen = frozen;
  options.num_frozen = 1;
  const std::string folder = TempFolder("globs");
  ASSERT_EQ(qat_prepare(model, folder.c_str(), &options), nullptr);
  auto checkpoint = qat::LoadCheckpoint(folder + "/" + qat::kCheckpointFile);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_FALSE(checkpoint->parameters.empty());
  for (const auto& [name, value] : checkpoint->parameters) {
    EXPECT_EQ(name.rfind("fc", 0), 0u) << name;
    EXPECT_EQ(name.find(".bias"), std::string::npos) << name;
  }
  const char* nothing[] = {"decoder.*"};
  options.trainable = nothing;
  EXPECT_THAT(Take(qat_prepare(model, folder.c_str(), &options)),
              HasSubstr("trainable pattern 'decoder.*'"));
  options.version = 1;  // the trainable fields are not read
  EXPECT_EQ(qat_prepare(model, folder.c_str(), &options), nullptr);
  qat_model_free(model);
}

TEST(CApiStagesTest, SettingErrorsNameTheSetting) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  const Examples examples(32);
  QatDataset* data = MakeDataset(examples);
  const std::string folder = TempFolder("settings");
  ASSERT_EQ(qat_prepare(model, folder.c_str(), nullptr), nullptr);
  QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  options.num_threads = 1;

  options.resume = true;  // nothing to resume yet
  const std::string nothing = Take(qat_train_folder(nullptr, folder.c_str(), data, &options));
  EXPECT_THAT(nothing, HasSubstr(std::to_string(QAT_FAILED_PRECONDITION) + ": "));
  EXPECT_THAT(nothing, HasSubstr("no interrupted run to resume"));
  options.resume = false;

  options.batch = 0;
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), data, &options)),
              HasSubstr("--batch"));
  options.batch = QAT_UNSET;
  options.optimizer = 7;
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), data, &options)),
              HasSubstr("unknown optimizer 7"));
  options.optimizer = QAT_UNSET;
  options.nesterov = 2;
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), data, &options)),
              HasSubstr("nesterov must be 0 or 1"));
  options.nesterov = QAT_UNSET;
  options.seed = -3;
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), data, &options)),
              HasSubstr("seed must be >= 0"));
  options.seed = QAT_UNSET;
  // No data set and no data spec.
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), nullptr, &options)),
              HasSubstr("--data"));

  // A stopped run, then a resume that asks for another rate.
  options.lr = 1e-3;
  options.batch = 8;
  StopAt stop{2};
  options.progress = StopAtStep;
  options.user_data = &stop;
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), data, &options)),
              HasSubstr("stopped training after step 2"));
  options.progress = nullptr;
  options.resume = true;
  options.lr = 1e-2;
  EXPECT_THAT(Take(qat_train_folder(nullptr, folder.c_str(), data, &options)),
              HasSubstr("--lr"));
  options.lr = 1e-3;  // the stored value: accepted
  QatTrainResult result = QAT_TRAIN_RESULT_INIT;
  ASSERT_EQ(qat_train_folder(&result, folder.c_str(), data, &options), nullptr);
  EXPECT_EQ(result.steps, 4);

  // Folders and files that are not there, and results without a version.
  EXPECT_THAT(Take(qat_train_folder(nullptr, "/no/such/folder", data, &options)),
              HasSubstr("/no/such/folder"));
  QatModel* exported = nullptr;
  EXPECT_THAT(Take(qat_export_folder(&exported, "/no/such/folder", nullptr)),
              HasSubstr("/no/such/folder"));
  EXPECT_EQ(exported, nullptr);
  QatTrainResult unversioned;
  std::memset(&unversioned, 0, sizeof unversioned);
  EXPECT_THAT(Take(qat_train_folder(&unversioned, folder.c_str(), data, &options)),
              HasSubstr("QatTrainResult has version 0"));
  QatEvalReport report;
  std::memset(&report, 0, sizeof report);
  EXPECT_THAT(Take(qat_evaluate(&report, model, data, nullptr)),
              HasSubstr("QatEvalReport has version 0"));
  QatDataset* missing = nullptr;
  const std::string not_found = Take(qat_dataset_load(&missing, "/no/such/data", model, nullptr));
  EXPECT_THAT(not_found, HasSubstr("/no/such/data"));
  EXPECT_EQ(missing, nullptr);
  qat_dataset_free(data);
  qat_model_free(model);
}

int NextBatch(void* user_data, const QatTensor** batch) {
  auto* batches = static_cast<std::vector<QatTensor*>*>(user_data);
  if (batches->empty()) return 0;
  *batch = batches->back();
  batches->pop_back();
  return 1;
}

// The three ways to calibrate give one table for the same samples.
TEST(CApiStagesTest, CalibrateFromADatasetArraysOrACallback) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  const Examples examples(64);
  QatDataset* data = MakeDataset(examples);
  QatTensor* features = Floats({64, 784}, examples.x);
  QatCalibrateOptions options = QAT_CALIBRATE_OPTIONS_INIT;
  options.batch_size = 64;  // one batch, as the callback gives it
  options.num_threads = 1;

  QatCalibrationTable* from_data = nullptr;
  QatCalibrationTable* from_arrays = nullptr;
  QatCalibrationTable* from_callback = nullptr;
  ASSERT_EQ(qat_calibrate(&from_data, model, data, &options), nullptr);
  ASSERT_EQ(qat_calibrate_arrays(&from_arrays, model, features, &options), nullptr);
  std::vector<QatTensor*> batches = {features};
  ASSERT_EQ(qat_calibrate_callback(&from_callback, model, NextBatch, &batches, &options),
            nullptr);
  const std::string dir = TempFolder("tables");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST, true);
  auto saved = [&](const QatCalibrationTable* t, const std::string& name) {
    const std::string path = dir + "/" + name;
    EXPECT_EQ(qat_calibration_table_save(t, path.c_str()), nullptr);
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(qat_calibration_table_size(from_data), 6u);
  const std::string table = saved(from_data, "data.json");
  EXPECT_EQ(saved(from_arrays, "arrays.json"), table);
  EXPECT_EQ(saved(from_callback, "callback.json"), table);

  // max_samples keeps the first examples only: another table.
  options.max_samples = 10;
  QatCalibrationTable* first10 = nullptr;
  ASSERT_EQ(qat_calibrate(&first10, model, data, &options), nullptr);
  EXPECT_NE(saved(first10, "first10.json"), table);
  options.max_samples = -1;
  QatCalibrationTable* bad = nullptr;
  EXPECT_THAT(Take(qat_calibrate(&bad, model, data, &options)), HasSubstr("max_samples"));

  qat_calibration_table_free(first10);
  qat_calibration_table_free(from_data);
  qat_calibration_table_free(from_arrays);
  qat_calibration_table_free(from_callback);
  qat_tensor_free(features);
  qat_dataset_free(data);
  qat_model_free(model);
}

// Issue 15's widths through the C ABI: calibrate (version 3) and quantize
// (version 2) give the bytes the stages API gives; a version-1 quantize
// struct still reads as 8 bits; bad widths fail, naming the setting.
TEST(CApiStagesTest, BitWidthsAndNodeOverrides) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  const Examples examples(64);
  QatDataset* data = MakeDataset(examples);
  QatCalibrateOptions co = QAT_CALIBRATE_OPTIONS_INIT;
  co.method = QAT_CALIBRATION_MSE;
  co.weight_bits = 3;
  co.activation_bits = 3;
  co.num_threads = 1;
  QatCalibrationTable* table = nullptr;
  ASSERT_EQ(qat_calibrate(&table, model, data, &co), nullptr);

  auto zoo = qat::MakeMlp();
  ASSERT_TRUE(zoo.ok());
  qat::CalibrateOptions cpp_co;
  cpp_co.method = qat::CalibrationMethod::kMse;
  cpp_co.weight_bits = 3;
  cpp_co.activation_bits = 3;
  cpp_co.num_threads = 1;
  auto dataset = qat::Dataset::Create(
      [&] {
        qat::Tensor x(qat::DataType::kFloat32, {64, 784});
        std::copy(examples.x.begin(), examples.x.end(), x.values<float>().begin());
        return x;
      }(),
      [&] {
        qat::Tensor y(qat::DataType::kInt64, {64});
        std::copy(examples.y.begin(), examples.y.end(), y.values<int64_t>().begin());
        return y;
      }());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  auto cpp_table = qat::Calibrate(*zoo, *dataset, cpp_co);
  ASSERT_TRUE(cpp_table.ok()) << cpp_table.status();
  std::string first_gemm;
  for (const auto& n : qat::ModelAccess::Proto(*zoo).graph().node()) {
    if (n.op_type() == "Gemm") {
      first_gemm = n.name();
      break;
    }
  }
  ASSERT_FALSE(first_gemm.empty());

  QatQuantizeOptions qo = QAT_QUANTIZE_OPTIONS_INIT;
  qo.weight_bits = 3;
  qo.activation_bits = 3;
  qo.per_channel = true;
  const QatNodeOverride keep8 = {first_gemm.c_str(), false, 8, 8};
  qo.node_overrides = &keep8;
  qo.num_node_overrides = 1;
  QatModel* q = nullptr;
  ASSERT_EQ(qat_quantize(&q, model, table, &qo), nullptr);
  qat::QuantizeOptions cpp_qo;
  cpp_qo.weight_bits = 3;
  cpp_qo.activation_bits = 3;
  cpp_qo.per_channel = true;
  cpp_qo.node_overrides[first_gemm] = {false, 8, 8};
  auto cpp_q = qat::QuantizeModel(*zoo, *cpp_table, cpp_qo);
  ASSERT_TRUE(cpp_q.ok()) << cpp_q.status();
  void* bytes = nullptr;
  size_t size = 0;
  ASSERT_EQ(qat_model_serialize(&bytes, &size, q), nullptr);
  EXPECT_EQ(std::string(static_cast<const char*>(bytes), size), cpp_q->Serialize());
  qat_free(bytes);
  qat_model_free(q);

  // Version 1 knows no activation_bits: 8-bit activations whatever follows.
  QatQuantizeOptions v1 = QAT_QUANTIZE_OPTIONS_INIT;
  v1.version = 1;
  v1.activation_bits = 3;
  ASSERT_EQ(qat_quantize(&q, model, table, &v1), nullptr);
  auto cpp_v1 = qat::QuantizeModel(*zoo, *cpp_table, {});
  ASSERT_TRUE(cpp_v1.ok()) << cpp_v1.status();
  ASSERT_EQ(qat_model_serialize(&bytes, &size, q), nullptr);
  EXPECT_EQ(std::string(static_cast<const char*>(bytes), size), cpp_v1->Serialize());
  qat_free(bytes);
  qat_model_free(q);
  QatQuantizeOptions bad = QAT_QUANTIZE_OPTIONS_INIT;
  bad.weight_bits = 9;
  EXPECT_THAT(Take(qat_quantize(&q, model, table, &bad)), HasSubstr("weight bits must be from 2 to 8"));
  bad = QAT_QUANTIZE_OPTIONS_INIT;
  bad.num_node_overrides = 1;
  EXPECT_THAT(Take(qat_quantize(&q, model, table, &bad)), HasSubstr("node_overrides is NULL"));
  co.activation_bits = 1;
  QatCalibrationTable* none = nullptr;
  EXPECT_THAT(Take(qat_calibrate(&none, model, data, &co)), HasSubstr("activation bits"));
  qat_calibration_table_free(table);
  qat_dataset_free(data);
  qat_model_free(model);
}

// Named batches from a callback: batches of 24 + 24 + 16 examples of the
// MLP's input, with labels, in one data set.
struct NamedBatches {
  std::vector<QatTensor*> inputs, labels;
  size_t next = 0;
  const char* name = "input";
  bool drop_labels_at_1 = false;
};

int NextNamedBatch(void* user_data, QatNamedBatch* batch) {
  auto* b = static_cast<NamedBatches*>(user_data);
  if (b->next == b->inputs.size()) return 0;
  batch->num_inputs = 1;
  batch->names = &b->name;
  batch->inputs = &b->inputs[b->next];
  batch->labels = b->drop_labels_at_1 && b->next == 1 ? nullptr : b->labels[b->next];
  ++b->next;
  return 1;
}

TEST(CApiStagesTest, DatasetFromNamedBatchesCalibratesAndEvaluatesAsTheSameData) {
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  const Examples examples(64);
  QatDataset* data = MakeDataset(examples);
  NamedBatches batches;
  for (int begin : {0, 24, 48}) {
    const int n = begin == 48 ? 16 : 24;
    batches.inputs.push_back(Floats({n, 784}, std::vector<float>(examples.x.begin() + begin * 784,
                                                                examples.x.begin() + (begin + n) * 784)));
    const int64_t shape[1] = {n};
    QatTensor* y = nullptr;
    ASSERT_EQ(qat_tensor_create(&y, QAT_INT64, shape, 1, examples.y.data() + begin), nullptr);
    batches.labels.push_back(y);
  }
  QatDataset* from_callback = nullptr;
  ASSERT_EQ(qat_dataset_from_callback(&from_callback, NextNamedBatch, &batches), nullptr);
  EXPECT_EQ(qat_dataset_size(from_callback), 64);

  QatCalibrateOptions options = QAT_CALIBRATE_OPTIONS_INIT;
  options.num_threads = 1;
  QatCalibrationTable* a = nullptr;
  QatCalibrationTable* b = nullptr;
  ASSERT_EQ(qat_calibrate(&a, model, data, &options), nullptr);
  ASSERT_EQ(qat_calibrate(&b, model, from_callback, &options), nullptr);
  EXPECT_EQ(qat_calibration_table_size(a), qat_calibration_table_size(b));
  const std::string path_a = TempFolder("named_a.json"), path_b = TempFolder("named_b.json");
  ASSERT_EQ(qat_calibration_table_save(a, path_a.c_str()), nullptr);
  ASSERT_EQ(qat_calibration_table_save(b, path_b.c_str()), nullptr);
  std::ifstream in_a(path_a), in_b(path_b);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in_a), {}),
            std::string(std::istreambuf_iterator<char>(in_b), {}));
  QatEvalReport r1 = QAT_EVAL_REPORT_INIT, r2 = QAT_EVAL_REPORT_INIT;
  ASSERT_EQ(qat_evaluate(&r1, model, data, nullptr), nullptr);
  ASSERT_EQ(qat_evaluate(&r2, model, from_callback, nullptr), nullptr);
  EXPECT_EQ(r1.correct, r2.correct);
  EXPECT_EQ(r1.examples, 64);
  // Scored batch by batch (qat_evaluate_callback): the data set's report
  // in batches of 24, and nothing kept.
  QatEvaluateOptions by24 = QAT_EVALUATE_OPTIONS_INIT;
  by24.batch_size = 24;
  QatEvalReport whole = QAT_EVAL_REPORT_INIT, streamed = QAT_EVAL_REPORT_INIT;
  ASSERT_EQ(qat_evaluate(&whole, model, data, &by24), nullptr);
  batches.next = 0;
  ASSERT_EQ(qat_evaluate_callback(&streamed, model, NextNamedBatch, &batches, &by24), nullptr);
  EXPECT_EQ(streamed.examples, 64);
  EXPECT_EQ(streamed.correct, whole.correct);
  EXPECT_EQ(streamed.mean_loss, whole.mean_loss);

  // Errors: labels in some batches only; a callback that stops.
  batches.next = 0;
  batches.drop_labels_at_1 = true;
  QatDataset* bad = nullptr;
  EXPECT_THAT(Take(qat_dataset_from_callback(&bad, NextNamedBatch, &batches)),
              HasSubstr("batch 1 differs from batch 0 in having labels"));
  EXPECT_EQ(bad, nullptr);
  auto stop = [](void*, QatNamedBatch*) { return -1; };
  EXPECT_THAT(Take(qat_dataset_from_callback(&bad, stop, nullptr)), HasSubstr("stopped"));
  batches.next = 0;
  EXPECT_THAT(Take(qat_evaluate_callback(&streamed, model, NextNamedBatch, &batches, nullptr)),
              HasSubstr("batch 1 has no labels"));
  EXPECT_THAT(Take(qat_evaluate_callback(&streamed, model, stop, nullptr, nullptr)),
              HasSubstr("stopped"));
  auto none = [](void*, QatNamedBatch*) { return 0; };
  EXPECT_THAT(Take(qat_evaluate_callback(&streamed, model, none, nullptr, nullptr)),
              HasSubstr("no batch"));

  qat_calibration_table_free(a);
  qat_calibration_table_free(b);
  for (QatTensor* t : batches.inputs) qat_tensor_free(t);
  for (QatTensor* t : batches.labels) qat_tensor_free(t);
  qat_dataset_free(from_callback);
  qat_dataset_free(data);
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

// Data-parallel training through QatTrainFolderOptions' allreduce hook, with
// ranks as threads (thread_collective.h): the ranks share one folder, a run
// that every rank stops at step 7 resumes to the uninterrupted run's bits,
// and a failing hook or a bad rank is an error.
#include "thread_collective.h"

namespace {

int ThreadAllreduce(void* user_data, float* values, size_t count, QatReduceOp op) {
  auto* c = static_cast<qat::Collective*>(user_data);
  return c->Allreduce(absl::MakeSpan(values, count), static_cast<qat::ReduceOp>(op)).ok() ? 0
                                                                                       : 1;
}

int FailingAllreduce(void*, float*, size_t, QatReduceOp) { return 42; }

TEST(CApiDistributedTest, HookRanksShareAFolderAndResumeExactly) {
  const Examples examples(160);
  QatModel* model = nullptr;
  ASSERT_EQ(qat_model_zoo(&model, "mlp", 0), nullptr);
  QatDataset* data = MakeDataset(examples);
  // Every rank trains `folder`; with stop_at, each stops after that step.
  auto train_ranks = [&](const std::string& folder, int64_t stop_at, bool resume) {
    std::vector<std::string> errors(2);
    qat::RunRanks(2, [&](int rank, std::shared_ptr<qat::Collective> c) {
      QatTrainFolderOptions options = QAT_TRAIN_FOLDER_OPTIONS_INIT;
      if (!resume) {
        options.epochs = 2;
        options.batch = 32;
        options.seed = 5;
        options.save_every = 3;
      }
      options.num_threads = 1;
      options.resume = resume;
      options.allreduce = ThreadAllreduce;
      options.allreduce_user_data = c.get();
      options.rank = rank;
      options.num_ranks = 2;
      StopAt stop{stop_at};
      if (stop_at > 0) {
        options.progress = StopAtStep;
        options.user_data = &stop;
      }
      QatStatus* s = qat_train_folder(nullptr, folder.c_str(), data, &options);
      if (s != nullptr) errors[rank] = Take(s);
    });
    return errors;
  };
  const std::string whole = TempFolder("ranks_whole"), stopped = TempFolder("ranks_stopped"),
                    single = TempFolder("ranks_single");
  for (const std::string& f : {whole, stopped, single}) {
    ASSERT_EQ(qat_prepare(model, f.c_str(), nullptr), nullptr);
  }
  EXPECT_EQ(train_ranks(whole, 0, false), std::vector<std::string>(2));
  const std::vector<std::string> stop = train_ranks(stopped, 7, false);
  for (const std::string& e : stop) EXPECT_THAT(e, HasSubstr("stopped training after step 7"));
  EXPECT_EQ(train_ranks(stopped, 0, true), std::vector<std::string>(2));

  QatExportOptions keep = QAT_EXPORT_OPTIONS_INIT;
  keep.keep_float_weights = true;
  QatModel* a = nullptr;
  QatModel* b = nullptr;
  ASSERT_EQ(qat_export_folder(&a, whole.c_str(), &keep), nullptr);
  ASSERT_EQ(qat_export_folder(&b, stopped.c_str(), &keep), nullptr);
  EXPECT_EQ(Bytes(a), Bytes(b));

  // One process on the same global batches: the same parameters up to the
  // rounding of the gradient sums (docs/training.md).
  QatTrainFolderOptions one = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  one.epochs = 2;
  one.batch = 32;
  one.seed = 5;
  one.num_threads = 1;
  ASSERT_EQ(qat_train_folder(nullptr, single.c_str(), data, &one), nullptr);
  auto x = qat::LoadCheckpoint(whole + "/" + qat::kCheckpointFile);
  auto y = qat::LoadCheckpoint(single + "/" + qat::kCheckpointFile);
  ASSERT_TRUE(x.ok() && y.ok());
  ASSERT_EQ(x->parameters.size(), y->parameters.size());
  float worst = 0;
  for (size_t i = 0; i < x->parameters.size(); ++i) {
    const auto u = x->parameters[i].second.values<float>();
    const auto v = y->parameters[i].second.values<float>();
    ASSERT_EQ(u.size(), v.size());
    for (size_t j = 0; j < u.size(); ++j) worst = std::max(worst, std::fabs(u[j] - v[j]));
  }
  EXPECT_LT(worst, 1e-4f);
  EXPECT_EQ(x->progress.global_step, y->progress.global_step);

  // batch_shards (version 4): one process computing each batch as the 2
  // ranks do ends with their export byte for byte.  A version-3 caller's
  // struct ends before it, so the field is not read (7 shards would not
  // divide the batch): that run is the whole-batch one.
  const std::string sharded = TempFolder("ranks_sharded"), v3 = TempFolder("ranks_v3");
  for (const std::string& f : {sharded, v3}) {
    ASSERT_EQ(qat_prepare(model, f.c_str(), nullptr), nullptr);
  }
  QatTrainFolderOptions shards = one;
  shards.batch_shards = 2;
  ASSERT_EQ(qat_train_folder(nullptr, sharded.c_str(), data, &shards), nullptr);
  shards.version = 3;
  shards.batch_shards = 7;
  ASSERT_EQ(qat_train_folder(nullptr, v3.c_str(), data, &shards), nullptr);
  QatModel* from_shards = nullptr;
  QatModel* from_v3 = nullptr;
  QatModel* from_single = nullptr;
  ASSERT_EQ(qat_export_folder(&from_shards, sharded.c_str(), &keep), nullptr);
  ASSERT_EQ(qat_export_folder(&from_v3, v3.c_str(), &keep), nullptr);
  ASSERT_EQ(qat_export_folder(&from_single, single.c_str(), &keep), nullptr);
  EXPECT_EQ(Bytes(from_shards), Bytes(a));
  EXPECT_EQ(Bytes(from_v3), Bytes(from_single));
  EXPECT_NE(Bytes(from_v3), Bytes(a));
  shards.version = 4;
  EXPECT_THAT(Take(qat_train_folder(nullptr, v3.c_str(), data, &shards)),
              HasSubstr("does not split evenly into 7 shards"));
  qat_model_free(from_shards);
  qat_model_free(from_v3);
  qat_model_free(from_single);

  // A hook that fails stops the run with its code; a rank out of range and
  // a batch that does not divide are errors before any step.
  QatTrainFolderOptions bad = QAT_TRAIN_FOLDER_OPTIONS_INIT;
  bad.num_threads = 1;
  bad.allreduce = FailingAllreduce;
  bad.rank = 0;
  bad.num_ranks = 2;
  EXPECT_THAT(Take(qat_train_folder(nullptr, single.c_str(), data, &bad)),
              HasSubstr("the allreduce hook returned 42"));
  bad.rank = 2;
  EXPECT_THAT(Take(qat_train_folder(nullptr, single.c_str(), data, &bad)),
              HasSubstr("rank 2 is not in [0, num_ranks 2)"));
  bad.rank = 1;
  bad.batch = 33;
  EXPECT_THAT(Take(qat_train_folder(nullptr, single.c_str(), data, &bad)),
              HasSubstr("--batch 33 does not split evenly over 2 ranks"));
  bad.mpi_comm = &bad;  // both transports
  EXPECT_THAT(Take(qat_train_folder(nullptr, single.c_str(), data, &bad)),
              HasSubstr("not both"));
  qat_model_free(a);
  qat_model_free(b);
  qat_dataset_free(data);
  qat_model_free(model);
}

}  // namespace
