// The executor's plan and errors, ops the ONNX node tests do not cover
// (libqat's FakeQuant family, seeded Dropout), determinism, float GEMM and
// Conv against the reference kernels, and the Eigen GEMM (other types)
// against its reference.
#include "qat/executor.h"

#include <cmath>
#include <limits>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "graph/graph_editor.h"
#include "graph_builder.h"
#include "core/model_internal.h"
#include "exec/ops/gemm.h"
#include "graph/graph_index.h"
#include "passes/prune_unused_initializers.h"
#include "qat/model.h"

namespace qat {
namespace {

std::unique_ptr<Executor> MustCreate(const absl::StatusOr<Model>& model,
                                     ExecutorOptions options = {}) {
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  auto executor = Executor::Create(*model, options);
  EXPECT_TRUE(executor.ok()) << executor.status();
  return executor.ok() ? *std::move(executor) : nullptr;
}

// y = relu(x @ w + b) with a symbolic batch dimension.
absl::StatusOr<Model> TinyMlp() {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 2}).Output("y", kFloat, {-1, 2});
  g.Initializer("w", Tensor::FromValues<float>({2, 2}, {1, 2, 3, 4}));
  g.Initializer("b", Tensor::FromValues<float>({2}, {-10, 0}));
  g.Node("MatMul", {"x", "w"}, {"xw"});
  g.Node("Add", {"xw", "b"}, {"z"});
  g.Node("Relu", {"z"}, {"y"});
  return g.Build();
}

TEST(ExecutorTest, RunsWithADynamicBatchManyTimes) {
  auto executor = MustCreate(TinyMlp());
  ASSERT_NE(executor, nullptr);
  ASSERT_EQ(executor->inputs().size(), 1u);
  EXPECT_EQ(executor->inputs()[0].shape, (std::vector<int64_t>{-1, 2}));
  for (int64_t batch : {1, 3, 2}) {
    std::vector<float> x;
    for (int64_t i = 0; i < batch; ++i) {
      x.push_back(static_cast<float>(i));
      x.push_back(1.0f);
    }
    auto out = executor->Run({{"x", Tensor::FromValues<float>({batch, 2}, x)}});
    ASSERT_TRUE(out.ok()) << out.status();
    const Tensor& y = out->at("y");
    ASSERT_EQ(y.shape(), (std::vector<int64_t>{batch, 2}));
    for (int64_t i = 0; i < batch; ++i) {
      // [i, 1] @ [[1,2],[3,4]] + [-10, 0] = [i + 3 - 10, 2i + 4]
      EXPECT_EQ(y.data<float>()[2 * i], std::max(0.0f, i + 3.0f - 10.0f));
      EXPECT_EQ(y.data<float>()[2 * i + 1], 2.0f * i + 4.0f);
    }
  }
}

TEST(ExecutorTest, RejectsBadInputs) {
  auto executor = MustCreate(TinyMlp());
  ASSERT_NE(executor, nullptr);
  auto wrong_type = executor->Run({{"x", Tensor(DataType::kFloat64, {1, 2})}});
  EXPECT_EQ(wrong_type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_type.status().message().find("float32"), absl::string_view::npos);
  auto wrong_shape = executor->Run({{"x", Tensor(DataType::kFloat32, {1, 3})}});
  EXPECT_EQ(wrong_shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_shape.status().message().find("[?,2]"), absl::string_view::npos);
  auto wrong_rank = executor->Run({{"x", Tensor(DataType::kFloat32, {2})}});
  EXPECT_EQ(wrong_rank.status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = executor->Run({});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  auto unknown = executor->Run({{"x", Tensor(DataType::kFloat32, {1, 2})},
                                {"nope", Tensor(DataType::kFloat32, {1})}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExecutorTest, ShapeMismatchAtRunTimeNamesTheNode) {
  GraphBuilder g;
  g.Input("a", kFloat, {-1}).Input("b", kFloat, {-1}).Output("c", kFloat, {-1});
  g.Node("Add", {"a", "b"}, {"c"}).set_name("the_add");
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  auto out = executor->Run({{"a", Tensor(DataType::kFloat32, {3})},
                            {"b", Tensor(DataType::kFloat32, {4})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("the_add"), absl::string_view::npos);
  EXPECT_NE(out.status().message().find("broadcast"), absl::string_view::npos);
}

// A random op: libqat leaves those out.
TEST(ExecutorTest, UnsupportedOpIsUnimplementedAndNamed) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("RandomUniformLike", {"x"}, {"y"}).set_name("my_random");
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_EQ(executor.status().code(), absl::StatusCode::kUnimplemented);
  const std::string message(executor.status().message());
  for (const char* part :
       {"RandomUniformLike", "ai.onnx", "opset 17", "my_random", "test.onnx"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << " not in " << message;
  }
}

TEST(ExecutorTest, UnimportedDomainIsUnimplemented) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Thing", {"x"}, {"y"}, "com.example");
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(Executor::Create(*model).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ExecutorTest, CycleIsAnError) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("b", kFloat, {2});
  g.Node("Add", {"x", "b"}, {"a"}).set_name("first");
  g.Node("Relu", {"a"}, {"b"}).set_name("second");
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok());
  auto executor = Executor::Create(*model);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(executor.status().message().find("cycle"), absl::string_view::npos);
  EXPECT_NE(executor.status().message().find("first"), absl::string_view::npos);
}

TEST(ExecutorTest, DanglingInputIsAnError) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Add", {"x", "ghost"}, {"y"});
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok());
  auto executor = Executor::Create(*model);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(executor.status().message().find("'ghost'"), absl::string_view::npos);
}

TEST(ExecutorTest, NodesOutOfOrderAreSorted) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Relu", {"a"}, {"y"});
  g.Node("Neg", {"x"}, {"a"});
  auto executor = MustCreate(g.Build(/*check=*/false));
  ASSERT_NE(executor, nullptr);
  auto out = executor->Run({{"x", Tensor::FromValues<float>({2}, {1, -1})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").data<float>()[0], 0.0f);
  EXPECT_EQ(out->at("y").data<float>()[1], 1.0f);
}

// Buffers are shared between values whose lifetimes do not overlap; a value
// still to be read, or a graph output, must never be overwritten.
TEST(ExecutorTest, SharedBuffersKeepLiveValues) {
  GraphBuilder g;
  g.Input("x", kFloat, {3}).Output("y", kFloat, {3}).Output("a", kFloat, {3});
  g.Node("Neg", {"x"}, {"a"});      // a = -x      (a graph output)
  g.Node("Relu", {"a"}, {"b"});     // b = relu(a) (read again at the end)
  g.Node("Add", {"a", "b"}, {"c"});
  g.Node("Neg", {"c"}, {"d"});      // c is dead from here: its buffer is free
  g.Node("Exp", {"d"}, {"e"});
  g.Node("Mul", {"b", "e"}, {"y"});
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  for (int run = 0; run < 2; ++run) {
    auto out = executor->Run({{"x", Tensor::FromValues<float>({3}, {1, -2, 3})}});
    ASSERT_TRUE(out.ok()) << out.status();
    const float x[3] = {1, -2, 3};
    for (int i = 0; i < 3; ++i) {
      const float a = -x[i], b = std::max(a, 0.0f), e = std::exp(-(a + b));
      EXPECT_FLOAT_EQ(out->at("a").data<float>()[i], a);
      EXPECT_FLOAT_EQ(out->at("y").data<float>()[i], b * e);
    }
  }
}

// After a run the buffers are planned again for the sizes it measured (and
// again when a value grows); the first run frees each value after its last
// reader.  Whatever the batch sequence, every run gives a fresh executor's
// bits, and values of very different sizes (a wide hidden layer, a reshaped
// copy that may take its input's buffer, a small head) never overwrite one
// another.
TEST(ExecutorTest, ReplannedBuffersGiveAFreshExecutorsResults) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 4}).Output("y", kFloat, {-1, 2}).Output("wide", kFloat, {-1, 64});
  std::vector<float> w1(4 * 64), w2(64 * 2);
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = std::cos(0.11f * static_cast<float>(i));
  g.Initializer("w1", Tensor::FromValues<float>({4, 64}, w1));
  g.Initializer("w2", Tensor::FromValues<float>({64, 2}, w2));
  g.Initializer("flat", Tensor::FromValues<int64_t>({2}, {-1, 8}));
  g.Initializer("back", Tensor::FromValues<int64_t>({2}, {-1, 64}));
  g.Node("Neg", {"x"}, {"a"});
  g.Node("MatMul", {"a", "w1"}, {"h"});     // [N, 64]
  g.Node("Relu", {"h"}, {"r"});
  g.Node("Reshape", {"h", "flat"}, {"f"});  // [8N, 8], h's last reader
  g.Node("Exp", {"f"}, {"e"});
  g.Node("Reshape", {"e", "back"}, {"wide"});
  g.Node("MatMul", {"r", "w2"}, {"m"});     // [N, 2]
  g.Node("Sigmoid", {"m"}, {"y"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = MustCreate(model);
  ASSERT_NE(executor, nullptr);
  for (int64_t batch : {3, 1, 5, 5, 2, 9, 9, 4}) {
    SCOPED_TRACE(::testing::Message() << "batch " << batch);
    std::vector<float> x(static_cast<size_t>(batch) * 4);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(static_cast<float>(batch + 3 * i));
    const std::map<std::string, Tensor> feed = {{"x", Tensor::FromValues<float>({batch, 4}, x)}};
    auto out = executor->Run(feed);
    ASSERT_TRUE(out.ok()) << out.status();
    auto fresh = MustCreate(model);
    ASSERT_NE(fresh, nullptr);
    auto want = fresh->Run(feed);
    ASSERT_TRUE(want.ok()) << want.status();
    for (const char* name : {"y", "wide"}) {
      const Tensor& got = out->at(name);
      const Tensor& ref = want->at(name);
      ASSERT_EQ(got.shape(), ref.shape()) << name;
      EXPECT_EQ(std::memcmp(got.raw_data(), ref.raw_data(), got.num_bytes()), 0) << name;
    }
    // And a plain computation of y's first row.
    for (int j = 0; j < 2; ++j) {
      float m = 0;
      for (int k = 0; k < 64; ++k) {
        float h = 0;
        for (int i = 0; i < 4; ++i) h += -x[i] * w1[i * 64 + k];
        m += std::max(h, 0.0f) * w2[k * 2 + j];
      }
      EXPECT_NEAR(out->at("y").data<float>()[j], 1.0f / (1.0f + std::exp(-m)), 1e-5f);
    }
  }
}

TEST(ModelTest, LoadErrorsNameTheFile) {
  auto missing = Model::Load("/nonexistent/model.onnx");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto garbage = Model::FromBytes("\x08\xff\xff", "junk.onnx");
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find("junk.onnx"), absl::string_view::npos);
  GraphBuilder g;  // Add with one input fails the checker
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Add", {"x"}, {"y"});
  auto bad = g.Build();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("checker"), absl::string_view::npos);
}

TEST(ExecutorTest, FakeQuantPerTensorAndGrad) {
  GraphBuilder g;
  g.AddOpset("com.microsoft", 1);
  g.Input("x", kFloat, {4}).Input("dy", kFloat, {4});
  g.Output("y", kFloat, {4}).Output("mask", kBool, {4}).Output("dx", kFloat, {4});
  g.Initializer("scale", Tensor::Scalar<float>(0.1f));
  g.Initializer("zp", Tensor::Scalar<float>(0.0f));
  auto& fq = g.Node("FakeQuant", {"x", "scale", "zp"}, {"y", "mask"}, "com.microsoft");
  SetInt(fq, "quant_min", -128);
  SetInt(fq, "quant_max", 127);
  g.Node("FakeQuantGrad", {"dy", "mask"}, {"dx"}, "com.microsoft");
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  auto out = executor->Run({{"x", Tensor::FromValues<float>({4}, {-1.0f, 0.26f, 0.25f, 100.0f})},
                            {"dy", Tensor::FromValues<float>({4}, {1, 2, 3, 4})}});
  ASSERT_TRUE(out.ok()) << out.status();
  const float* y = out->at("y").data<float>();
  EXPECT_FLOAT_EQ(y[0], -1.0f);
  EXPECT_FLOAT_EQ(y[1], 0.3f);
  EXPECT_FLOAT_EQ(y[2], 0.2f);  // 2.5 rounds half to even
  EXPECT_FLOAT_EQ(y[3], 12.7f);
  const bool* mask = out->at("mask").data<bool>();
  EXPECT_TRUE(mask[0] && mask[1] && mask[2]);
  EXPECT_FALSE(mask[3]);
  const float* dx = out->at("dx").data<float>();
  EXPECT_EQ(dx[0], 1.0f);
  EXPECT_EQ(dx[3], 0.0f);
}

TEST(ExecutorTest, FakeQuantPerChannel) {
  GraphBuilder g;
  g.AddOpset("ai.libqat", 1);
  g.Input("x", kFloat, {2, 2}).Output("y", kFloat, {2, 2});
  g.Initializer("scale", Tensor::FromValues<float>({2}, {1.0f, 0.5f}));
  g.Initializer("zp", Tensor::FromValues<float>({2}, {0.0f, 1.0f}));
  auto& fq = g.Node("FakeQuant", {"x", "scale", "zp"}, {"y"}, "ai.libqat");
  SetInt(fq, "axis", 0);
  SetInt(fq, "quant_min", 0);
  SetInt(fq, "quant_max", 3);
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  auto out = executor->Run({{"x", Tensor::FromValues<float>({2, 2}, {1.2f, 5.0f, 0.3f, -2.0f})}});
  ASSERT_TRUE(out.ok()) << out.status();
  const float* y = out->at("y").data<float>();
  EXPECT_FLOAT_EQ(y[0], 1.0f);   // channel 0: round(1.2) = 1
  EXPECT_FLOAT_EQ(y[1], 3.0f);   // clamps at 3
  EXPECT_FLOAT_EQ(y[2], 0.5f);   // channel 1: (round(0.6) + 1 - 1) * 0.5
  EXPECT_FLOAT_EQ(y[3], -0.5f);  // q = clamp(-4 + 1, 0, 3) = 0 -> (0 - 1) * 0.5
}

TEST(ExecutorTest, FakeQuantRejectsABadScale) {
  GraphBuilder g;
  g.AddOpset("com.microsoft", 1);
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Initializer("scale", Tensor::Scalar<float>(-1.0f));
  g.Initializer("zp", Tensor::Scalar<float>(0.0f));
  g.Node("FakeQuant", {"x", "scale", "zp"}, {"y"}, "com.microsoft");
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  auto out = executor->Run({{"x", Tensor(DataType::kFloat32, {2})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
}

// Dropout in training mode: seeded, different each run, and the right rate.
absl::StatusOr<Model> TrainingDropout() {
  GraphBuilder g;
  g.Input("x", kFloat, {10000}).Output("y", kFloat, {10000}).Output("mask", kBool, {10000});
  g.Initializer("ratio", Tensor::Scalar<float>(0.25f));
  g.Initializer("training", Tensor::Scalar<bool>(true));
  g.Node("Dropout", {"x", "ratio", "training"}, {"y", "mask"});
  return g.Build();
}

TEST(ExecutorTest, DropoutTrainingModeIsSeededAndScaled) {
  ExecutorOptions options;
  options.seed = 42;
  auto a = MustCreate(TrainingDropout(), options);
  auto b = MustCreate(TrainingDropout(), options);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Tensor x(DataType::kFloat32, {10000});
  for (float& v : x.values<float>()) v = 3.0f;
  auto a1 = a->Run({{"x", x}});
  auto a2 = a->Run({{"x", x}});
  auto b1 = b->Run({{"x", x}});
  ASSERT_TRUE(a1.ok() && a2.ok() && b1.ok());
  const Tensor& mask = a1->at("mask");
  int kept = 0;
  for (int i = 0; i < 10000; ++i) {
    const bool k = mask.data<bool>()[i];
    kept += k;
    EXPECT_FLOAT_EQ(a1->at("y").data<float>()[i], k ? 4.0f : 0.0f);
  }
  EXPECT_NEAR(kept, 7500, 200);
  EXPECT_EQ(std::memcmp(mask.raw_data(), b1->at("mask").raw_data(), 10000), 0)
      << "same seed, same run index: same mask";
  EXPECT_NE(std::memcmp(mask.raw_data(), a2->at("mask").raw_data(), 10000), 0)
      << "the next run draws a new mask";
}

// A matrix product big enough to be split into tasks: results must not
// depend on the thread count.
TEST(ExecutorTest, ResultsAreBitIdenticalAcrossThreadCounts) {
  GraphBuilder g;
  g.Input("a", kFloat, {-1, 300}).Input("b", kFloat, {300, 70}).Output("c", kFloat, {-1, 70});
  g.Node("MatMul", {"a", "b"}, {"m"});
  g.Node("Softmax", {"m"}, {"c"});
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  Tensor a(DataType::kFloat32, {333, 300}), b(DataType::kFloat32, {300, 70});
  for (float& v : a.values<float>()) v = normal(rng);
  for (float& v : b.values<float>()) v = normal(rng);
  std::vector<Tensor> results;
  for (int threads : {1, 2, 3}) {
    ExecutorOptions options;
    options.num_threads = threads;
    auto executor = MustCreate(g.Build(), options);
    ASSERT_NE(executor, nullptr);
    EXPECT_EQ(executor->num_threads(), threads);
    auto out = executor->Run({{"a", a}, {"b", b}});
    ASSERT_TRUE(out.ok()) << out.status();
    results.push_back(out->at("c"));
  }
  for (size_t i = 1; i < results.size(); ++i) {
    EXPECT_EQ(std::memcmp(results[0].raw_data(), results[i].raw_data(),
                          results[0].num_bytes()),
              0);
  }
}

// C of one row-major m x k by k x n product, by the reference kernel.
std::vector<float> ReferenceProduct(const float* a, const float* b, int64_t m, int64_t k,
                                    int64_t n) {
  std::vector<float> c(m * n);
  kernels::SgemmTile t{};
  t.rows = m;
  t.cols = n;
  t.depth = k;
  t.a = a;
  t.a_row = k;
  t.a_col = 1;
  t.b = b;
  t.b_row = n;
  t.b_col = 1;
  t.c = c.data();
  t.ldc = n;
  kernels::SgemmReference(t);
  return c;
}

// Batched MatMul takes three paths: one B for a contiguous batch of A is
// one product with the batch in its rows (a constant B packed ahead, or an
// input); products of one tile each run one per task (attention's scores);
// larger ones one after another.  Each gives SgemmReference's bits for every
// product, at 1 and 2 threads.
TEST(GemmTest, BatchedMatMulGivesEachProductsReferenceBits) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  auto random = [&](std::vector<int64_t> shape) {
    Tensor t(DataType::kFloat32, std::move(shape));
    for (float& v : t.values<float>()) v = uniform(rng);
    return t;
  };
  // [3, 37, 300] x [300, 70]: folded into one [111 x 300] product.
  // [6, 20, 16] x [6, 16, 20]: one tile per product.
  // [2, 1, 70, 40] x [3, 40, 150]: broadcast batch, two tiles per product.
  const Tensor a1 = random({3, 37, 300}), w = random({300, 70});
  const Tensor a2 = random({6, 20, 16}), b2 = random({6, 16, 20});
  const Tensor a3 = random({2, 1, 70, 40}), b3 = random({3, 40, 150});
  GraphBuilder g;
  g.Input("a1", kFloat, {3, 37, 300}).Input("w_in", kFloat, {300, 70});
  g.Input("a2", kFloat, {6, 20, 16}).Input("b2", kFloat, {6, 16, 20});
  g.Input("a3", kFloat, {2, 1, 70, 40}).Input("b3", kFloat, {3, 40, 150});
  g.Output("folded", kFloat, {3, 37, 70}).Output("folded_in", kFloat, {3, 37, 70});
  g.Output("small", kFloat, {6, 20, 20}).Output("broadcast", kFloat, {2, 3, 70, 150});
  g.Initializer("w", w);
  g.Node("MatMul", {"a1", "w"}, {"folded"});
  g.Node("MatMul", {"a1", "w_in"}, {"folded_in"});
  g.Node("MatMul", {"a2", "b2"}, {"small"});
  g.Node("MatMul", {"a3", "b3"}, {"broadcast"});
  auto expect_product = [&](const Tensor& c, int64_t index, const float* a, const float* b,
                            int64_t m, int64_t k, int64_t n, const char* name) {
    const std::vector<float> want = ReferenceProduct(a, b, m, k, n);
    EXPECT_EQ(std::memcmp(c.data<float>() + index * m * n, want.data(), want.size() * 4), 0)
        << name << " product " << index;
  };
  for (int threads : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << threads << " threads");
    ExecutorOptions options;
    options.num_threads = threads;
    auto executor = MustCreate(g.Build(), options);
    ASSERT_NE(executor, nullptr);
    for (int run = 0; run < 2; ++run) {  // the second run reuses the packed B
      auto out = executor->Run(
          {{"a1", a1}, {"w_in", w}, {"a2", a2}, {"b2", b2}, {"a3", a3}, {"b3", b3}});
      ASSERT_TRUE(out.ok()) << out.status();
      for (int64_t i = 0; i < 3; ++i) {
        for (const char* name : {"folded", "folded_in"}) {
          expect_product(out->at(name), i, a1.data<float>() + i * 37 * 300, w.data<float>(), 37,
                         300, 70, name);
        }
      }
      for (int64_t i = 0; i < 6; ++i) {
        expect_product(out->at("small"), i, a2.data<float>() + i * 20 * 16,
                       b2.data<float>() + i * 16 * 20, 20, 16, 20, "small");
      }
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t j = 0; j < 3; ++j) {
          expect_product(out->at("broadcast"), i * 3 + j, a3.data<float>() + i * 70 * 40,
                         b3.data<float>() + j * 40 * 150, 70, 40, 150, "broadcast");
        }
      }
    }
  }
}

// Float MatMul (B constant and packed ahead, or an input) and Conv (rows
// that the SIMD direct kernel takes, and rows too wide for it, which go
// through im2col) give the bits of SgemmReference and DirectConvReference,
// whichever kernel variant runs: the default one for this CPU, or the scalar
// fallback (ctest runs this binary again with QAT_KERNEL_VARIANT=scalar, and
// a build with QAT_ENABLE_AVX2=OFF has nothing else).
TEST(GemmTest, FloatMatMulAndConvGiveTheReferenceBits) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  auto random = [&](std::vector<int64_t> shape) {
    Tensor t(DataType::kFloat32, std::move(shape));
    for (float& v : t.values<float>()) v = uniform(rng);
    return t;
  };
  const Tensor a = random({7, 300}), b = random({300, 70});
  const Tensor x1 = random({2, 3, 9, 9}), w1 = random({4, 3, 3, 3}), b1 = random({4});
  const Tensor x2 = random({1, 2, 5, 40}), w2 = random({3, 2, 3, 3});
  GraphBuilder g;
  g.Input("a", kFloat, {7, 300}).Input("b_in", kFloat, {300, 70});
  g.Input("x1", kFloat, {2, 3, 9, 9}).Input("x2", kFloat, {1, 2, 5, 40});
  g.Output("packed", kFloat, {7, 70}).Output("unpacked", kFloat, {7, 70});
  g.Output("y1", kFloat, {2, 4, 9, 9}).Output("y2", kFloat, {1, 3, 3, 38});
  g.Initializer("b", b).Initializer("w1", w1).Initializer("b1", b1).Initializer("w2", w2);
  g.Node("MatMul", {"a", "b"}, {"packed"});
  g.Node("MatMul", {"a", "b_in"}, {"unpacked"});
  auto& conv = g.Node("Conv", {"x1", "w1", "b1"}, {"y1"});
  auto* pads = conv.add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  g.Node("Conv", {"x2", "w2"}, {"y2"});
  ExecutorOptions options;
  options.num_threads = 2;
  auto executor = MustCreate(g.Build(), options);
  ASSERT_NE(executor, nullptr);
  for (int run = 0; run < 2; ++run) {  // the second run reuses the packed B
    auto out = executor->Run({{"a", a}, {"b_in", b}, {"x1", x1}, {"x2", x2}});
    ASSERT_TRUE(out.ok()) << out.status();

    const std::vector<float> c = ReferenceProduct(a.data<float>(), b.data<float>(), 7, 300, 70);
    for (const char* name : {"packed", "unpacked"}) {
      EXPECT_EQ(std::memcmp(out->at(name).raw_data(), c.data(), c.size() * sizeof(float)), 0)
          << name << " with " << kernels::SelectedSgemmKernels().name;
    }

    // Conv, image by image, then the bias (as the executor adds it).
    struct ConvCase {
      const char* y;
      const Tensor *x, *w, *bias;
      int64_t pad;
    };
    for (const ConvCase& cc :
         {ConvCase{"y1", &x1, &w1, &b1, 1}, ConvCase{"y2", &x2, &w2, nullptr, 0}}) {
      const Tensor& y = out->at(cc.y);
      std::vector<float> want(y.num_elements());
      kernels::DirectConv d{};
      d.channels = cc.x->dim(1);
      d.in_h = cc.x->dim(2);
      d.in_w = cc.x->dim(3);
      d.out_channels = y.dim(1);
      d.out_h = y.dim(2);
      d.out_w = y.dim(3);
      d.kernel_h = cc.w->dim(2);
      d.kernel_w = cc.w->dim(3);
      d.stride_h = 1;
      d.pad_top = d.pad_left = cc.pad;
      d.w = cc.w->data<float>();
      const int64_t per_image = d.out_channels * d.out_h * d.out_w;
      for (int64_t n = 0; n < cc.x->dim(0); ++n) {
        d.x = cc.x->data<float>() + n * d.channels * d.in_h * d.in_w;
        d.y = want.data() + n * per_image;
        kernels::DirectConvReference(d);
        for (int64_t o = 0; cc.bias != nullptr && o < d.out_channels; ++o) {
          for (int64_t p = 0; p < d.out_h * d.out_w; ++p) {
            d.y[o * d.out_h * d.out_w + p] += cc.bias->data<float>()[o];
          }
        }
      }
      EXPECT_EQ(std::memcmp(y.raw_data(), want.data(), want.size() * sizeof(float)), 0)
          << cc.y << " with " << kernels::SelectedSgemmKernels().name;
    }
  }
}

TEST(GemmTest, EigenMatchesTheReference) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(-1, 1);
  ThreadPool pool(2);
  for (int64_t m : {1, 64, 130}) {
    for (int64_t n : {19, 128, 300}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const exec::GemmShape s{m, 37, n, ta, tb};
        std::vector<double> a(s.m * s.k), b(s.k * s.n), c(s.m * s.n, -1), ref(s.m * s.n);
        for (double& v : a) v = uniform(rng);
        for (double& v : b) v = uniform(rng);
        exec::Gemm(&pool, s, a.data(), b.data(), c.data());
        exec::GemmReference(s, a.data(), b.data(), ref.data());
        for (size_t i = 0; i < c.size(); ++i) {
          ASSERT_NEAR(c[i], ref[i], 1e-12) << "m=" << m << " n=" << n << " ta=" << ta
                                           << " tb=" << tb;
        }
      }
    }
    }
  }
}

}  // namespace
}  // namespace qat

namespace qat {
namespace {

// x -> QuantizeLinear -> DequantizeLinear with one scale and zero point,
// given either per tensor (the vectorized path) or per axis with the same
// value repeated (the general path).
absl::StatusOr<Model> QdqModel(bool per_axis, int64_t channels, int zp_type, float scale,
                               int zero_point) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, channels}).Output("q", zp_type, {-1, channels});
  g.Output("y", kFloat, {-1, channels});
  const int64_t n = per_axis ? channels : 1;
  const std::vector<int64_t> dims = per_axis ? std::vector<int64_t>{n} : std::vector<int64_t>{};
  g.Initializer("s", Tensor::FromValues<float>(dims, std::vector<float>(n, scale)));
  if (zp_type == kUint8) {
    g.Initializer("z", Tensor::FromValues<uint8_t>(
                           dims, std::vector<uint8_t>(n, static_cast<uint8_t>(zero_point))));
  } else {
    g.Initializer("z", Tensor::FromValues<int8_t>(
                           dims, std::vector<int8_t>(n, static_cast<int8_t>(zero_point))));
  }
  g.Node("QuantizeLinear", {"x", "s", "z"}, {"q"});
  g.Node("DequantizeLinear", {"q", "s", "z"}, {"y"});
  return g.Build();
}

TEST(QuantizeLinearTest, PerTensorFastPathMatchesThePerAxisPathBitForBit) {
  constexpr int64_t kChannels = 37;
  std::vector<float> x;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-40.0f, 40.0f);
  for (int i = 0; i < 200 * kChannels; ++i) x.push_back(u(rng));
  // Ties at the scale 0.5 (round half to even), saturation, NaN and +-Inf.
  const float specials[] = {0.25f, 0.75f, -0.25f, -1.25f, 1e9f, -1e9f, std::nanf(""),
                            INFINITY, -INFINITY, -0.0f};
  for (float v : specials) x.push_back(v);
  while (x.size() % kChannels != 0) x.push_back(0.5f);
  const int64_t rows = static_cast<int64_t>(x.size()) / kChannels;
  const Tensor input = Tensor::FromValues<float>({rows, kChannels}, x);
  for (int type : {kUint8, kInt8}) {
    const int zero_point = type == kUint8 ? 128 : -3;
    auto fast = MustCreate(QdqModel(false, kChannels, type, 0.5f, zero_point));
    auto general = MustCreate(QdqModel(true, kChannels, type, 0.5f, zero_point));
    ASSERT_NE(fast, nullptr);
    ASSERT_NE(general, nullptr);
    auto a = fast->Run({{"x", input}});
    auto b = general->Run({{"x", input}});
    ASSERT_TRUE(a.ok() && b.ok());
    for (const char* name : {"q", "y"}) {
      const Tensor& ta = a->at(name);
      const Tensor& tb = b->at(name);
      ASSERT_EQ(ta.num_bytes(), tb.num_bytes());
      EXPECT_EQ(std::memcmp(ta.raw_data(), tb.raw_data(), ta.num_bytes()), 0) << name;
    }
    // NaN quantizes to 0, whatever the CPU.
    const size_t nan_at = 200 * kChannels + 6;
    const Tensor& q = a->at("q");
    const int32_t nan_q = type == kUint8 ? q.data<uint8_t>()[nan_at] : q.data<int8_t>()[nan_at];
    EXPECT_EQ(nan_q, 0);
  }
}

// DequantizeLinear of constant int8 weights is folded into a constant when
// the executor is created; every run gives what computing it would.
TEST(ExecutorTest, ConstantStepsGiveTheSameResultOnEveryRun) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 3}).Output("y", kFloat, {-1, 2});
  g.Initializer("wq", Tensor::FromValues<int8_t>({3, 2}, {1, -2, 3, -4, 5, -6}));
  g.Initializer("ws", Tensor::FromValues<float>({}, {0.5f}));
  g.Initializer("wz", Tensor::FromValues<int8_t>({}, {1}));
  g.Node("DequantizeLinear", {"wq", "ws", "wz"}, {"w"});
  g.Node("MatMul", {"x", "w"}, {"y"});
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  for (int run = 0; run < 2; ++run) {
    auto out = executor->Run({{"x", Tensor::FromValues<float>({1, 3}, {1, 1, 1})}});
    ASSERT_TRUE(out.ok()) << out.status();
    // w = (([1,-2],[3,-4],[5,-6]) - 1) * 0.5: its columns sum to 3 and -7.5.
    EXPECT_EQ(out->at("y").data<float>()[0], 3.0f);
    EXPECT_EQ(out->at("y").data<float>()[1], -7.5f);
  }
}

// A constant step that fails is not folded: its error still comes from
// Run(), naming the node.
TEST(ExecutorTest, AFailingConstantStepFailsAtRun) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 2}).Output("y", kFloat, {-1, 2});
  g.Initializer("wq", Tensor::FromValues<int8_t>({2, 2}, {1, 2, 3, 4}));
  g.Initializer("ws", Tensor::FromValues<float>({3}, {1, 1, 1}));  // 3 scales, no axis of 3
  g.Node("DequantizeLinear", {"wq", "ws"}, {"w"}).set_name("dq_weights");
  g.Node("MatMul", {"x", "w"}, {"y"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_TRUE(executor.ok()) << executor.status();  // the shape check waits for Run
  auto out = (*executor)->Run({{"x", Tensor::FromValues<float>({1, 2}, {1, 1})}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("dq_weights"), absl::string_view::npos)
      << out.status();
}

// Ops that take their dying input's buffer (Reshape, Identity: ForwardInput)
// hand it back after the run, so that a buffer's memory only holds what its
// own values need: before, each run moved memory between buffers planned for
// different sizes, and every buffer grew towards the largest (a ViT's QAT
// step grew from 385 MB to 518 MB over a hundred steps).
TEST(ExecutorTest, BuffersDoNotGrowAcrossRunsWhenOpsForwardTheirInput) {
  GraphBuilder g;
  g.Input("x", kFloat, {4, 8}).Output("y", kFloat, {4});
  g.Initializer("s16", Tensor::FromValues<int64_t>({3}, {4, 4, 4}));
  g.Initializer("s32", Tensor::FromValues<int64_t>({2}, {4, 32}));
  g.Initializer("s64", Tensor::FromValues<int64_t>({3}, {4, 8, 8}));
  g.Initializer("s128", Tensor::FromValues<int64_t>({2}, {4, 128}));
  g.Initializer("axes", Tensor::FromValues<int64_t>({1}, {1}));
  g.Node("Relu", {"x"}, {"a1"});
  SetInt(g.Node("Concat", {"a1", "a1"}, {"a2"}), "axis", 1);  // [4, 16]
  g.Node("Reshape", {"a2", "s16"}, {"r2"});
  SetInt(g.Node("Concat", {"r2", "r2"}, {"a3"}), "axis", 2);  // [4, 4, 8]
  g.Node("Reshape", {"a3", "s32"}, {"r3"});
  SetInt(g.Node("Concat", {"r3", "r3"}, {"a4"}), "axis", 1);  // [4, 64]
  g.Node("Reshape", {"a4", "s64"}, {"r4"});
  SetInt(g.Node("Concat", {"r4", "r4"}, {"a5"}), "axis", 2);  // [4, 8, 16]
  g.Node("Reshape", {"a5", "s128"}, {"r5"});
  g.Node("Identity", {"r5"}, {"i5"});
  SetInt(g.Node("ReduceSum", {"i5", "axes"}, {"y"}), "keepdims", 0);
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_TRUE(executor.ok()) << executor.status();
  std::vector<float> values(32);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) - 10.0f;
  const Tensor x = Tensor::FromValues<float>({4, 8}, values);
  std::map<std::string, Tensor> outputs;
  std::vector<int64_t> bytes;
  for (int run = 0; run < 12; ++run) {
    ASSERT_TRUE((*executor)->Run({{"x", &x}}, &outputs).ok());
    bytes.push_back((*executor)->buffer_bytes());
  }
  // The first runs free memory early and then plan the buffers with the
  // measured sizes; from the third run on nothing changes.
  for (int run = 3; run < 12; ++run) EXPECT_EQ(bytes[run], bytes[2]) << "run " << run;
  // The plan holds the largest value at least.
  EXPECT_GE(bytes[2], int64_t{4 * 128 * 4});
}

// Bad input to the math ops (issue 14) is an InvalidArgument that names the
// node: at creation for a bad attribute, at run time for bad tensors.
TEST(ExecutorTest, MathOpsRefuseBadInputNamingTheNode) {
  const auto expect_refused = [](const GraphBuilder& built, const std::string& what,
                                 std::map<std::string, Tensor> feed) {
    SCOPED_TRACE(what);
    GraphBuilder g = built;
    auto model = g.Build(/*check=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    absl::Status status;
    auto executor = Executor::Create(*model);
    if (!executor.ok()) {
      status = executor.status();
    } else {
      status = (*executor)->Run(feed).status();
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find("the_op"), absl::string_view::npos) << status;
    EXPECT_NE(status.message().find(what), absl::string_view::npos) << status;
  };
  const auto attr = [](onnx::NodeProto& node, const char* name, const char* s, float f) {
    auto* a = node.add_attribute();
    a->set_name(name);
    if (s != nullptr) {
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s(s);
    } else {
      a->set_type(onnx::AttributeProto::FLOAT);
      a->set_f(f);
    }
  };
  constexpr int kInt64 = onnx::TensorProto::INT64;
  const Tensor f23(DataType::kFloat32, {2, 3});
  {
    GraphBuilder g;
    g.Input("a", kInt64, {-1}).Input("b", kInt64, {-1}).Output("y", kInt64, {-1});
    g.Node("Mod", {"a", "b"}, {"y"}).set_name("the_op");
    expect_refused(g, "division by zero",
                   {{"a", Tensor::FromValues<int64_t>({2}, std::vector<int64_t>{5, -7})},
                    {"b", Tensor::FromValues<int64_t>({2}, std::vector<int64_t>{3, 0})}});
  }
  {
    // The slope broadcasts only towards X's shape.
    GraphBuilder g;
    g.Input("x", kFloat, {-1, -1}).Input("s", kFloat, {-1, -1, -1}).Output("y", kFloat, {-1});
    g.Node("PRelu", {"x", "s"}, {"y"}).set_name("the_op");
    expect_refused(g, "does not broadcast to X's shape",
                   {{"x", f23}, {"s", Tensor(DataType::kFloat32, {2, 1, 3})}});
  }
  {
    GraphBuilder g;
    g.Input("a", kFloat, {-1, -1}).Input("b", kInt64, {-1}).Output("y", kFloat, {-1});
    g.Node("Max", {"a", "b"}, {"y"}).set_name("the_op");
    expect_refused(g, "different types", {{"a", f23}, {"b", Tensor(DataType::kInt64, {3})}});
  }
  {
    GraphBuilder g;
    g.Input("a", kFloat, {-1, -1}).Input("b", kFloat, {-1}).Output("y", kFloat, {-1});
    g.Node("Sum", {"a", "b"}, {"y"}).set_name("the_op");
    expect_refused(g, "cannot be broadcast", {{"a", f23}, {"b", Tensor(DataType::kFloat32, {4})}});
  }
  {
    GraphBuilder g;
    g.Input("a", kUint8, {-1}).Input("b", kUint8, {-1}).Output("y", kUint8, {-1});
    onnx::NodeProto& node = g.Node("BitShift", {"a", "b"}, {"y"});
    node.set_name("the_op");
    attr(node, "direction", "UP", 0);
    expect_refused(g, "direction", {});
  }
  {
    GraphBuilder g;
    g.Input("x", kFloat, {-1}).Output("y", kFloat, {-1});
    onnx::NodeProto& node = g.Node("Celu", {"x"}, {"y"});
    node.set_name("the_op");
    attr(node, "alpha", nullptr, 0.0f);
    expect_refused(g, "alpha", {{"x", Tensor(DataType::kFloat32, {3})}});
  }
}

// ---------------------------------------------------------------- subgraphs

// A subgraph for a graph attribute: declared inputs and outputs (float [3]
// unless given), and nodes added by the caller.
onnx::GraphProto Subgraph(const std::string& name,
                          std::vector<std::pair<std::string, int>> inputs,
                          std::vector<std::string> outputs) {
  onnx::GraphProto g;
  g.set_name(name);
  for (const auto& [in, type] : inputs) {
    auto* v = g.add_input();
    v->set_name(in);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(type);
  }
  for (const auto& out : outputs) {
    auto* v = g.add_output();
    v->set_name(out);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(kFloat);
  }
  return g;
}

onnx::NodeProto* AddNode(onnx::GraphProto* g, const std::string& op,
                         std::vector<std::string> inputs, std::vector<std::string> outputs) {
  onnx::NodeProto* node = g->add_node();
  node->set_op_type(op);
  node->set_name(op + "_" + outputs[0]);
  for (const auto& i : inputs) node->add_input(i);
  for (const auto& o : outputs) node->add_output(o);
  return node;
}

void SetGraph(onnx::NodeProto* node, const std::string& name, onnx::GraphProto g) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = std::move(g);
}

// y, ys = Loop(3, v = x) { w = If(c) { v + a } else { v - a }; v = w; scan w }
// with a = 2x computed in the main graph and read two scopes down, and the
// initializer `one` read only inside the branch.
absl::StatusOr<Model> LoopWithNestedIf(int64_t trips) {
  GraphBuilder g;
  g.Input("x", kFloat, {3}).Input("flip", kBool, {});
  g.Output("y", kFloat, {3}).Output("ys", kFloat, {-1, 3});
  g.Initializer("two", Tensor::FromValues<float>({1}, {2.0f}));
  g.Initializer("one", Tensor::FromValues<float>({1}, {1.0f}));
  g.Initializer("m", Tensor::Scalar<int64_t>(trips));
  g.Node("Mul", {"x", "two"}, {"a"});
  g.Node("Neg", {"x"}, {"unrelated"});  // may take a's buffer if a looked dead
  onnx::GraphProto then_branch = Subgraph("then", {}, {"t"});
  AddNode(&then_branch, "Add", {"v", "a"}, {"t0"});
  AddNode(&then_branch, "Mul", {"t0", "one"}, {"t"});
  onnx::GraphProto else_branch = Subgraph("else", {}, {"e"});
  AddNode(&else_branch, "Sub", {"v", "a"}, {"e"});
  onnx::GraphProto body =
      Subgraph("body", {{"i", onnx::TensorProto::INT64}, {"c", kBool}, {"v", kFloat}},
               {"c_out", "w", "w_scan"});
  body.mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(kBool);
  AddNode(&body, "Identity", {"c"}, {"c_out"});
  onnx::NodeProto* branch = AddNode(&body, "If", {"flip"}, {"w"});
  SetGraph(branch, "then_branch", then_branch);
  SetGraph(branch, "else_branch", else_branch);
  AddNode(&body, "Identity", {"w"}, {"w_scan"});
  onnx::NodeProto& loop = g.Node("Loop", {"m", "", "x"}, {"y", "ys"});
  SetGraph(&loop, "body", body);
  g.Node("Add", {"unrelated", "unrelated"}, {"unused"});
  return g.Build();
}

TEST(ExecutorSubgraphTest, LoopCarriesValuesAndNestedIfReadsOuterScopes) {
  auto executor = MustCreate(LoopWithNestedIf(3));
  ASSERT_NE(executor, nullptr);
  const Tensor x = Tensor::FromValues<float>({3}, {1, -2, 0.5f});
  for (bool flip : {true, false, true}) {  // again: buffers reused across runs
    auto out = executor->Run({{"x", x}, {"flip", Tensor::Scalar<bool>(flip)}});
    ASSERT_TRUE(out.ok()) << out.status();
    const float sign = flip ? 1.0f : -1.0f;
    const Tensor& y = out->at("y");
    const Tensor& ys = out->at("ys");
    ASSERT_EQ(y.shape(), (std::vector<int64_t>{3}));
    ASSERT_EQ(ys.shape(), (std::vector<int64_t>{3, 3}));
    for (int j = 0; j < 3; ++j) {
      const float xj = x.data<float>()[j];
      EXPECT_FLOAT_EQ(y.data<float>()[j], xj + sign * 3 * 2 * xj);
      for (int k = 0; k < 3; ++k) {
        EXPECT_FLOAT_EQ(ys.data<float>()[k * 3 + j], xj + sign * (k + 1) * 2 * xj);
      }
    }
  }
}

TEST(ExecutorSubgraphTest, ZeroTripsReturnTheInitialValuesAndAnEmptyScan) {
  auto executor = MustCreate(LoopWithNestedIf(0));
  ASSERT_NE(executor, nullptr);
  const Tensor x = Tensor::FromValues<float>({3}, {1, 2, 3});
  auto out = executor->Run({{"x", x}, {"flip", Tensor::Scalar<bool>(true)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").shape(), (std::vector<int64_t>{3}));
  EXPECT_EQ(out->at("y").data<float>()[2], 3.0f);
  EXPECT_EQ(out->at("ys").num_elements(), 0);
}

TEST(ExecutorSubgraphTest, ErrorsInsideABodyNameTheNodeAndTheAttribute) {
  GraphBuilder g;
  g.Input("x", kFloat, {3}).Input("c", kBool, {}).Output("y", kFloat, {3});
  onnx::GraphProto then_branch = Subgraph("then", {}, {"t"});
  AddNode(&then_branch, "NoSuchOp", {"x"}, {"t"});
  onnx::GraphProto else_branch = Subgraph("else", {}, {"e"});
  AddNode(&else_branch, "Identity", {"x"}, {"e"});
  onnx::NodeProto& node = g.Node("If", {"c"}, {"y"});
  SetGraph(&node, "then_branch", then_branch);
  SetGraph(&node, "else_branch", else_branch);
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_FALSE(executor.ok());
  EXPECT_NE(executor.status().message().find("then_branch"), std::string::npos)
      << executor.status();
  EXPECT_NE(executor.status().message().find("NoSuchOp"), std::string::npos);
}

TEST(ExecutorSubgraphTest, InitializersReadOnlyInsideASubgraphAreUses) {
  auto model = LoopWithNestedIf(2);
  ASSERT_TRUE(model.ok()) << model.status();
  onnx::ModelProto proto = ModelAccess::Proto(*model);
  const graph::GraphIndex index(proto.graph());
  int loop = -1;
  for (int n = 0; n < proto.graph().node_size(); ++n) {
    if (proto.graph().node(n).op_type() == "Loop") loop = n;
  }
  EXPECT_EQ(index.Consumers("one"), (std::vector<int>{loop}));
  EXPECT_EQ(index.Consumers("a"), (std::vector<int>{loop}));
  EXPECT_EQ(index.NumUses("one"), 1);
  EXPECT_EQ(index.NumUses("x"), 3);  // Mul, Neg and Loop's initial value
  EXPECT_FALSE(passes::PruneUnusedInitializers(proto.mutable_graph()));
  EXPECT_EQ(proto.graph().initializer_size(), 3);
}

TEST(ExecutorSubgraphTest, ABranchThatDrawsRandomNumbersIsNotFolded) {
  // Every input of the If is a constant, but its branch runs Dropout in
  // training mode: each run must draw a new mask.
  GraphBuilder g;
  g.Output("y", kFloat, {256});
  g.Initializer("cond", Tensor::Scalar<bool>(true));
  g.Initializer("data", Tensor::FromValues<float>({256}, std::vector<float>(256, 1.0f)));
  g.Initializer("ratio", Tensor::Scalar<float>(0.5f));
  g.Initializer("training", Tensor::Scalar<bool>(true));
  onnx::GraphProto then_branch = Subgraph("then", {}, {"t"});
  AddNode(&then_branch, "Dropout", {"data", "ratio", "training"}, {"t"});
  onnx::GraphProto else_branch = Subgraph("else", {}, {"e"});
  AddNode(&else_branch, "Identity", {"data"}, {"e"});
  onnx::NodeProto& node = g.Node("If", {"cond"}, {"y"});
  SetGraph(&node, "then_branch", then_branch);
  SetGraph(&node, "else_branch", else_branch);
  auto executor = MustCreate(g.Build());
  ASSERT_NE(executor, nullptr);
  auto first = executor->Run(std::map<std::string, Tensor>{});
  auto second = executor->Run(std::map<std::string, Tensor>{});
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  EXPECT_NE(std::memcmp(first->at("y").raw_data(), second->at("y").raw_data(),
                        first->at("y").num_bytes()), 0);
}

// ---------------------------------------------------------------- recurrent

// Runs one recurrent op (hidden size 2, input size 3) on X [seq, batch, 3];
// W, R, B hold `dirs` directions; lens (may be empty) is sequence_lens.
std::map<std::string, Tensor> RunRecurrent(const std::string& op, const std::string& direction,
                                           const Tensor& x, const Tensor& w, const Tensor& r,
                                           const Tensor& b, std::vector<int32_t> lens,
                                           int64_t linear_before_reset = 0) {
  GraphBuilder g;
  g.Input("x", kFloat, x.shape());
  g.Output("y", kFloat, {-1, -1, -1, -1}).Output("y_h", kFloat, {-1, -1, -1});
  g.Initializer("w", w).Initializer("r", r).Initializer("b", b);
  std::vector<std::string> inputs = {"x", "w", "r", "b", ""};
  if (!lens.empty()) {
    g.Initializer("lens", Tensor::FromValues<int32_t>({static_cast<int64_t>(lens.size())}, lens));
    inputs[4] = "lens";
  }
  onnx::NodeProto& node = g.Node(op, inputs, {"y", "y_h"});
  auto attr = [&](const std::string& name) {
    auto* a = node.add_attribute();
    a->set_name(name);
    return a;
  };
  auto* hidden = attr("hidden_size");
  hidden->set_type(onnx::AttributeProto::INT);
  hidden->set_i(2);
  auto* dir = attr("direction");
  dir->set_type(onnx::AttributeProto::STRING);
  dir->set_s(direction);
  if (op == "GRU") {
    auto* lbr = attr("linear_before_reset");
    lbr->set_type(onnx::AttributeProto::INT);
    lbr->set_i(linear_before_reset);
  }
  auto executor = MustCreate(g.Build());
  if (executor == nullptr) return {};
  auto out = executor->Run({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *std::move(out) : std::map<std::string, Tensor>{};
}

Tensor RandomTensor(std::vector<int64_t> shape, std::mt19937* rng) {
  Tensor t(DataType::kFloat32, shape);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : t.values<float>()) v = dist(*rng);
  return t;
}

// Direction d of a [2, ...] tensor as a [1, ...] one.
Tensor Direction(const Tensor& t, int64_t d) {
  std::vector<int64_t> shape = t.shape();
  shape[0] = 1;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.raw_data(), t.data<float>() + d * out.num_elements(), out.num_bytes());
  return out;
}

TEST(ExecutorRecurrentTest, BidirectionalIsForwardAndReverseSideBySide) {
  for (const std::string op : {"RNN", "GRU", "LSTM"}) {
    for (int64_t lbr : {0, 1}) {
      if (lbr == 1 && op != "GRU") continue;
      const int64_t gates = op == "RNN" ? 1 : op == "GRU" ? 3 : 4;
      std::mt19937 rng(7);
      const Tensor x = RandomTensor({4, 2, 3}, &rng);
      const Tensor w = RandomTensor({2, gates * 2, 3}, &rng);
      const Tensor r = RandomTensor({2, gates * 2, 2}, &rng);
      const Tensor b = RandomTensor({2, gates * 4}, &rng);
      const std::vector<int32_t> lens = {4, 2};
      auto both = RunRecurrent(op, "bidirectional", x, w, r, b, lens, lbr);
      auto fwd = RunRecurrent(op, "forward", x, Direction(w, 0), Direction(r, 0),
                              Direction(b, 0), lens, lbr);
      auto rev = RunRecurrent(op, "reverse", x, Direction(w, 1), Direction(r, 1),
                              Direction(b, 1), lens, lbr);
      ASSERT_EQ(both.at("y").shape(), (std::vector<int64_t>{4, 2, 2, 2})) << op;
      for (int64_t t = 0; t < 4; ++t) {
        for (int64_t k = 0; k < 4; ++k) {  // batch x hidden
          EXPECT_EQ(both.at("y").data<float>()[(t * 2 + 0) * 4 + k],
                    fwd.at("y").data<float>()[t * 4 + k]) << op << " t=" << t;
          EXPECT_EQ(both.at("y").data<float>()[(t * 2 + 1) * 4 + k],
                    rev.at("y").data<float>()[t * 4 + k]) << op << " t=" << t;
        }
      }
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_EQ(both.at("y_h").data<float>()[k], fwd.at("y_h").data<float>()[k]) << op;
        EXPECT_EQ(both.at("y_h").data<float>()[4 + k], rev.at("y_h").data<float>()[k]) << op;
      }
    }
  }
}

TEST(ExecutorRecurrentTest, SequenceLengthsStopEachRowAndZeroTheRest) {
  for (const std::string direction : {"forward", "reverse"}) {
    std::mt19937 rng(11);
    const Tensor x = RandomTensor({3, 3, 3}, &rng);  // seq 3, batch 3
    const Tensor w = RandomTensor({1, 6, 3}, &rng);
    const Tensor r = RandomTensor({1, 6, 2}, &rng);
    const Tensor b = RandomTensor({1, 12}, &rng);
    auto out = RunRecurrent("GRU", direction, x, w, r, b, {3, 2, 0});
    // Row 1 (length 2) alone: its first two steps, as a batch of one.
    Tensor x1(DataType::kFloat32, {2, 1, 3});
    for (int64_t t = 0; t < 2; ++t) {
      std::memcpy(x1.data<float>() + t * 3, x.data<float>() + (t * 3 + 1) * 3, 3 * sizeof(float));
    }
    auto alone = RunRecurrent("GRU", direction, x1, w, r, b, {});
    const Tensor& y = out.at("y");  // [3, 1, 3, 2]
    for (int64_t t = 0; t < 3; ++t) {
      for (int64_t k = 0; k < 2; ++k) {
        const float got = y.data<float>()[(t * 3 + 1) * 2 + k];
        EXPECT_EQ(got, t < 2 ? alone.at("y").data<float>()[t * 2 + k] : 0.0f) << direction;
        EXPECT_EQ(y.data<float>()[(t * 3 + 2) * 2 + k], 0.0f);  // row 2 has length 0
      }
    }
    for (int64_t k = 0; k < 2; ++k) {
      EXPECT_EQ(out.at("y_h").data<float>()[1 * 2 + k], alone.at("y_h").data<float>()[k]);
      EXPECT_EQ(out.at("y_h").data<float>()[2 * 2 + k], 0.0f);
    }
  }
}

// Casting a float that an integer type cannot hold is undefined in C++:
// NaN gives 0 and the rest saturate, the same on every platform.
TEST(ExecutorTest, CastOfNanAndOutOfRangeFloatsIsPinned) {
  for (const auto& [to, want] : std::vector<std::pair<int, std::vector<double>>>{
           {onnx::TensorProto::UINT8, {0, 255, 0, 255, 0, 7}},
           {onnx::TensorProto::INT32, {0, 2147483647.0, -2147483648.0, 2147483647.0,
                                       -2147483648.0, 7}},
           {onnx::TensorProto::INT64, {0, 9223372036854775807.0, -9223372036854775808.0,
                                       9223372036854775807.0, -9223372036854775808.0, 7}}}) {
    GraphBuilder g;
    g.Input("x", kFloat, {6}).Output("y", to, {6});
    onnx::NodeProto& cast = g.Node("Cast", {"x"}, {"y"});
    *cast.add_attribute() = training::AttrInt("to", to);
    auto executor = MustCreate(g.Build());
    ASSERT_NE(executor, nullptr);
    const float inf = std::numeric_limits<float>::infinity();
    auto out = executor->Run({{"x", Tensor::FromValues<float>(
                                        {6}, {std::nanf(""), inf, -inf, 1e30f, -1e30f, 7.5f})}});
    ASSERT_TRUE(out.ok()) << out.status();
    const Tensor& y = out->at("y");
    for (int i = 0; i < 6; ++i) {
      double got = 0;
      if (to == onnx::TensorProto::UINT8) got = y.data<uint8_t>()[i];
      if (to == onnx::TensorProto::INT32) got = y.data<int32_t>()[i];
      if (to == onnx::TensorProto::INT64) got = static_cast<double>(y.data<int64_t>()[i]);
      EXPECT_EQ(got, want[i]) << "type " << to << " element " << i;
    }
  }
}

}  // namespace
}  // namespace qat
