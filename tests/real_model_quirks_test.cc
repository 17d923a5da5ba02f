// Smaller things real models brought (issue 14): Softmax over a long axis
// against a double-precision reference, an output declared without a
// shape, a static batch of 1 in calibration, and the kernel variants that
// `qat --version` reports.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "exec/ops/softmax_lane.h"
#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "kernels/sgemm_variants.h"
#include "qat/calibrate.h"
#include "qat/executor.h"
#include "qat/fake_quant.h"
#include "qat/kernel_variants.h"
#include "qat/model_zoo.h"
#include "core/model_internal.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

// An OCR recognizer's 6,625 classes: logits nearly uniform (an untrained
// head, where a float running sum drifts most) and spread like trained ones.
class SoftmaxNumericsTest : public ::testing::TestWithParam<float> {};

TEST_P(SoftmaxNumericsTest, LongAxisMatchesDoubleWithin1e6) {
  constexpr int64_t kClasses = 6625;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, GetParam());
  for (int64_t inner : {int64_t{1}, int64_t{4}}) {
    std::vector<float> x(static_cast<size_t>(kClasses * inner)), y(x.size()), ly(x.size());
    for (float& v : x) v = normal(rng);
    for (int64_t lane = 0; lane < inner; ++lane) {
      exec::NormalizeLane(x.data() + lane, y.data() + lane, kClasses, inner, false);
      exec::NormalizeLane(x.data() + lane, ly.data() + lane, kClasses, inner, true);
      double max = -INFINITY, sum = 0.0, row = 0.0;
      for (int64_t j = 0; j < kClasses; ++j) max = std::max<double>(max, x[j * inner + lane]);
      for (int64_t j = 0; j < kClasses; ++j) sum += std::exp(double{x[j * inner + lane]} - max);
      double worst = 0.0, worst_log = 0.0;
      for (int64_t j = 0; j < kClasses; ++j) {
        const size_t k = static_cast<size_t>(j * inner + lane);
        const double ref = std::exp(double{x[k]} - max) / sum;
        const double ref_log = double{x[k]} - max - std::log(sum);
        worst = std::max(worst, std::fabs(y[k] - ref) / ref);
        worst_log = std::max(worst_log, std::fabs(ly[k] - ref_log) / std::max(1.0, std::fabs(ref_log)));
        row += y[k];
      }
      EXPECT_LE(worst, 1e-6) << "inner " << inner;
      EXPECT_LE(worst_log, 1e-6) << "inner " << inner;
      EXPECT_NEAR(row, 1.0, 1e-6) << "inner " << inner;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Spreads, SoftmaxNumericsTest, ::testing::Values(0.05f, 2.0f));

// The float lane's summation tree depends on n only: a strided lane (the
// scalar loops) gives the bits of the same values laid out contiguously
// (the vectorized loops), for lengths around the 16 accumulators and the
// 256-value blocks, in place too.
TEST(SoftmaxNumericsTest, StridedLaneMatchesContiguousBitForBit) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  constexpr int64_t kInner = 3;
  for (int64_t n : {1, 2, 15, 16, 17, 255, 256, 257, 1000, 6625}) {
    for (bool log : {false, true}) {
      std::vector<float> x(static_cast<size_t>(n)), y(x.size());
      for (float& v : x) v = normal(rng);
      std::vector<float> strided(static_cast<size_t>(n * kInner), 7.0f), ys(strided.size());
      for (int64_t j = 0; j < n; ++j) strided[static_cast<size_t>(j * kInner + 1)] = x[j];
      exec::NormalizeLane(x.data(), y.data(), n, 1, log);
      exec::NormalizeLane(strided.data() + 1, ys.data() + 1, n, kInner, log);
      std::vector<float> in_place = x;
      exec::NormalizeLane(in_place.data(), in_place.data(), n, 1, log);
      for (int64_t j = 0; j < n; ++j) {
        const size_t k = static_cast<size_t>(j);
        ASSERT_EQ(y[k], ys[static_cast<size_t>(j * kInner + 1)]) << "n " << n << " j " << j << " log " << log;
        ASSERT_EQ(y[k], in_place[k]) << "in place, n " << n << " j " << j << " log " << log;
      }
    }
  }
}

// ONNX Runtime runs a model whose output declares a type but no shape.
TEST(ShapelessOutputTest, LoadsAndRuns) {
  GraphBuilder b;
  b.Input("x", kFloat, {2, 3});
  b.Node("Relu", {"x"}, {"y"});
  onnx::ModelProto proto = b.proto();
  auto* y = proto.mutable_graph()->add_output();
  y->set_name("y");
  y->mutable_type()->mutable_tensor_type()->set_elem_type(kFloat);
  auto model = Model::FromBytes(proto.SerializeAsString(), "shapeless.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->outputs().size(), 1u);
  auto exec = Executor::Create(*model, {});
  ASSERT_TRUE(exec.ok()) << exec.status();
  Tensor x = Tensor::FromValues<float>({2, 3}, {-1, 2, -3, 4, -5, 6});
  auto result = (*exec)->Run({{"x", x}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->at("y").values<float>()[1], 2.0f);
  EXPECT_EQ(result->at("y").values<float>()[0], 0.0f);
  // The declaration is left as it was: no shape invented for it.
  EXPECT_EQ(ModelAccess::Proto(*model).graph().output(0).name(), "y");
}

// A model with a static batch of 1 calibrates with larger batches.
TEST(StaticBatchTest, CalibrateMakesTheBatchSymbolic) {
  MlpSpec spec;
  spec.inputs = 4;
  spec.hidden = {5};
  spec.outputs = 3;
  auto mlp = MakeMlp(spec);
  ASSERT_TRUE(mlp.ok());
  onnx::ModelProto proto = ModelAccess::Proto(*mlp);
  for (auto* list : {proto.mutable_graph()->mutable_input(), proto.mutable_graph()->mutable_output()}) {
    for (auto& v : *list) {
      auto* shape = v.mutable_type()->mutable_tensor_type()->mutable_shape();
      if (shape->dim_size() > 0) shape->mutable_dim(0)->set_dim_value(1);
    }
  }
  auto fixed = ModelAccess::FromTransformedProto(ArenaModelProto(std::move(proto)), "batch1.onnx");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  ASSERT_EQ(fixed->inputs()[0].shape[0], 1);
  Tensor x(DataType::kFloat32, {10, 4});
  for (int64_t i = 0; i < 40; ++i) x.data<float>()[i] = 0.1f * static_cast<float>(i % 9) - 0.4f;
  Tensor y(DataType::kInt64, {10});
  for (int64_t i = 0; i < 10; ++i) y.data<int64_t>()[i] = i % 3;
  auto data = Dataset::Create(std::move(x), std::move(y));
  ASSERT_TRUE(data.ok());
  CalibrateOptions batched;
  batched.batch_size = 4;
  auto table = Calibrate(*fixed, *data, batched);
  ASSERT_TRUE(table.ok()) << table.status();
  // The same table as one sample at a time.
  CalibrateOptions one;
  one.batch_size = 1;
  auto reference = Calibrate(*fixed, *data, one);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_EQ(table->entries().size(), reference->entries().size());
  for (const auto& [name, entry] : reference->entries()) {
    ASSERT_EQ(table->entries().count(name), 1u) << name;
    EXPECT_EQ(table->entries().at(name).rmin, entry.rmin) << name;
    EXPECT_EQ(table->entries().at(name).rmax, entry.rmax) << name;
  }
}

// A graph that fixes the batch inside (Reshape to [1, 4]) cannot be
// relaxed: the error says to calibrate with --batch 1.
TEST(StaticBatchTest, AFixedReshapeSuggestsBatchOne) {
  GraphBuilder b;
  b.Input("x", kFloat, {1, 4});
  b.Initializer("shape", Tensor::FromValues<int64_t>({2}, {1, 4}));
  b.Initializer("w", Tensor::FromValues<float>({4, 2}, {1, 0, 0, 1, 1, 0, 0, 1}));
  b.Node("Reshape", {"x", "shape"}, {"r"});
  b.Node("MatMul", {"r", "w"}, {"y"});
  b.Output("y", kFloat, {1, 2});
  auto model = b.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  Tensor x(DataType::kFloat32, {6, 4});
  for (int64_t i = 0; i < 24; ++i) x.data<float>()[i] = static_cast<float>(i);
  Tensor y(DataType::kInt64, {6});
  for (int64_t i = 0; i < 6; ++i) y.data<int64_t>()[i] = 0;
  auto data = Dataset::Create(std::move(x), std::move(y));
  ASSERT_TRUE(data.ok());
  CalibrateOptions batched;
  batched.batch_size = 3;
  auto table = Calibrate(*model, *data, batched);
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("--batch 1"));
  batched.batch_size = 1;
  EXPECT_TRUE(Calibrate(*model, *data, batched).ok());
}

TEST(KernelVariantsTest, ReportsWhatTheDispatchUses) {
  EXPECT_STREQ(GemmKernelVariant(), kernels::SelectedSgemmKernels().name);
  const std::string all = KernelVariants();
  if (std::string(GemmKernelVariant()) == FakeQuantKernelVariant()) {
    EXPECT_EQ(all, GemmKernelVariant());
  } else {
    EXPECT_EQ(all, std::string("gemm ") + GemmKernelVariant() + ", fake-quant " +
                       FakeQuantKernelVariant());
  }
}

}  // namespace
}  // namespace qat
