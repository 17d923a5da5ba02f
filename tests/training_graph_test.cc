// Training graphs of whole models: the MLP and LeNet-5 from the model zoo,
// every loss, frozen parameters, gradient accumulation and the errors.
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gradient_check.h"
#include "gtest/gtest.h"
#include "qat/model_zoo.h"
#include "qat/training_graph.h"
#include "passes/gradient_builder.h"

namespace qat {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(const std::vector<ValueInfo>& values) {
  std::vector<std::string> names;
  for (const auto& v : values) names.push_back(v.name);
  return names;
}

Tensor Labels(std::vector<int64_t> values) {
  return Tensor::FromValues<int64_t>({static_cast<int64_t>(values.size())},
                                     absl::MakeConstSpan(values));
}

TEST(ModelZooTest, MlpAndLeNetHaveTheDocumentedInterface) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok()) << mlp.status();
  EXPECT_THAT(Names(mlp->inputs()), ElementsAre("input"));
  EXPECT_THAT(Names(mlp->outputs()), ElementsAre("logits"));
  EXPECT_THAT(mlp->outputs()[0].shape, ElementsAre(-1, 10));
  auto lenet = MakeLeNet5();
  ASSERT_TRUE(lenet.ok()) << lenet.status();
  EXPECT_THAT(lenet->inputs()[0].shape, ElementsAre(-1, 1, 28, 28));
  EXPECT_THAT(lenet->outputs()[0].shape, ElementsAre(-1, 10));
  // Same seed, same model; another seed, other weights.
  EXPECT_EQ(MakeMlp()->Serialize(), mlp->Serialize());
  MlpSpec other;
  other.seed = 1;
  EXPECT_NE(MakeMlp(other)->Serialize(), mlp->Serialize());
}

TEST(TrainingGraphTest, MlpTrainingAndEvalModels) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok());
  auto m = BuildTrainingModels(*mlp, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->params, ElementsAre("fc1.weight", "fc1.bias", "fc2.weight",
                                     "fc2.bias"));
  EXPECT_THAT(Names(m->training.outputs()),
              ElementsAre("loss", "fc1.weight_grad", "fc1.bias_grad",
                          "fc2.weight_grad", "fc2.bias_grad"));
  EXPECT_THAT(Names(m->training.inputs()), ElementsAre("input", "labels"));
  EXPECT_THAT(m->training.outputs()[1].shape, ElementsAre(500, 784));
  EXPECT_THAT(Names(m->eval.outputs()), ElementsAre("loss", "logits"));
  EXPECT_EQ(m->training.inputs()[1].dtype, DataType::kInt64);
}

TEST(TrainingGraphTest, MlpGradientsMatchFiniteDifferences) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok());
  auto m = BuildTrainingModels(*mlp, {});
  ASSERT_TRUE(m.ok()) << m.status();
  GradientCheck check(m->training, m->params,
                      {{"input", RandomTensor({8, 784}, 5, 0.0f, 1.0f)},
                       {"labels", Labels({0, 1, 2, 3, 4, 5, 6, 7})}});
  GradientCheckOptions options;
  options.max_entries_per_param = 16;
  check.ExpectMatchesFiniteDifferences(options);
}

TEST(TrainingGraphTest, LeNetGradientsMatchFiniteDifferences) {
  auto lenet = MakeLeNet5();
  ASSERT_TRUE(lenet.ok());
  auto m = BuildTrainingModels(*lenet, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->params.size(), 10u);
  GradientCheck check(m->training, m->params,
                      {{"input", RandomTensor({2, 1, 28, 28}, 6, 0.0f, 1.0f)},
                       {"labels", Labels({3, 9})}});
  GradientCheckOptions options;
  options.max_entries_per_param = 6;
  check.ExpectMatchesFiniteDifferences(options);
}

TEST(TrainingGraphTest, RegressionLossesMatchFiniteDifferences) {
  MlpSpec spec;
  spec.inputs = 6;
  spec.hidden = {5};
  spec.outputs = 3;
  auto mlp = MakeMlp(spec);
  ASSERT_TRUE(mlp.ok());
  for (LossKind kind : {LossKind::kMse, LossKind::kBceWithLogits, LossKind::kL1}) {
    for (LossReduction r : {LossReduction::kMean, LossReduction::kSum}) {
      SCOPED_TRACE(LossKindName(kind));
      TrainingGraphOptions options;
      options.loss.kind = kind;
      options.loss.reduction = r;
      auto m = BuildTrainingModels(*mlp, options);
      ASSERT_TRUE(m.ok()) << m.status();
      // BCE targets in [0, 1]; others anywhere.
      GradientCheck check(m->training, m->params,
                          {{"input", RandomTensor({4, 6}, 7)},
                           {"labels", RandomTensor({4, 3}, 8, 0.0f, 1.0f)}});
      check.ExpectMatchesFiniteDifferences();
    }
  }
}

TEST(TrainingGraphTest, FrozenParametersGetNoGradient) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok());
  TrainingGraphOptions options;
  options.frozen = {"fc1.weight", "fc1.bias"};
  auto m = BuildTrainingModels(*mlp, options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->params, ElementsAre("fc2.weight", "fc2.bias"));
  EXPECT_THAT(Names(m->training.outputs()),
              ElementsAre("loss", "fc2.weight_grad", "fc2.bias_grad"));
}

TEST(TrainingGraphTest, GradientAccumulation) {
  MlpSpec spec;
  spec.inputs = 4;
  spec.hidden = {3};
  spec.outputs = 2;
  auto mlp = MakeMlp(spec);
  ASSERT_TRUE(mlp.ok());
  TrainingGraphOptions options;
  options.accumulate_gradients = true;
  auto m = BuildTrainingModels(*mlp, options);
  ASSERT_TRUE(m.ok()) << m.status();
  const std::map<std::string, Tensor> data = {
      {"input", RandomTensor({2, 4}, 9)}, {"labels", Labels({1, 0})}};
  // Buffers of ones: with reset the output is the step's gradient, without
  // it the gradient plus one.
  std::map<std::string, Tensor> feeds = data;
  for (const std::string& p : m->params) {
    const auto& shape = [&] {
      for (const auto& v : m->training.outputs()) {
        if (v.name == p + "_grad") return v.shape;
      }
      return std::vector<int64_t>{};
    }();
    Tensor ones(DataType::kFloat32, shape);
    for (float& v : ones.values<float>()) v = 1.0f;
    feeds[p + training::kAccumulationBufferSuffix] = ones;
  }
  auto run = [&](bool reset) {
    feeds[training::kLazyResetGrad] = Tensor::Scalar(reset);
    GradientCheck check(m->training, m->params, feeds);
    auto out = check.Run();
    EXPECT_TRUE(out.ok()) << out.status();
    return *out;
  };
  auto fresh = run(true);
  auto accumulated = run(false);
  for (const std::string& p : m->params) {
    const auto a = fresh.at(p + "_grad").values<float>();
    const auto b = accumulated.at(p + "_grad").values<float>();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(b[i], a[i] + 1.0f);
  }
}

TEST(TrainingGraphTest, Errors) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok());
  TrainingGraphOptions both;
  both.frozen = {"fc1.weight"};
  both.trainable = {"fc1.weight"};
  auto s = BuildTrainingModels(*mlp, both);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("'fc1.weight' is listed as both frozen and trainable"));

  TrainingGraphOptions unknown;
  unknown.frozen = {"nope"};
  EXPECT_THAT(std::string(BuildTrainingModels(*mlp, unknown).status().message()),
              HasSubstr("frozen parameter 'nope'"));

  TrainingGraphOptions bad_output;
  bad_output.loss.output = "probabilities";
  EXPECT_THAT(std::string(BuildTrainingModels(*mlp, bad_output).status().message()),
              HasSubstr("'probabilities' is not an output"));

  TrainingGraphOptions weights;
  weights.loss.class_weights = {1.0f, 2.0f};
  EXPECT_THAT(std::string(BuildTrainingModels(*mlp, weights).status().message()),
              HasSubstr("2 class weights for 10 classes"));

  EXPECT_EQ(ParseLossKind("hinge").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseLossKind("bce-with-logits"), LossKind::kBceWithLogits);
}

}  // namespace
}  // namespace testing
}  // namespace qat
