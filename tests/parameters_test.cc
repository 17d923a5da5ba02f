// Which parameters train (train/parameters.h): the default rule on the
// shapes exporters write (a decomposed LayerNorm, Hardswish's constants, an
// embedding, shape arithmetic), the --trainable / --frozen globs, and the
// NaN/Inf gradient error that names the parameters.
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "graph/graph_editor.h"
#include "gtest/gtest.h"
#include "pass_tester.h"
#include "qat/optimizer.h"
#include "qat/training_graph.h"
#include "train/parameters.h"

namespace qat {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using training::AttrInt;
using training::AttrInts;
using training::ChooseParameters;
using training::GlobMatch;

TEST(GlobMatchTest, StarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("fc1.weight", "fc1.weight"));
  EXPECT_FALSE(GlobMatch("fc1.weight", "fc1.weights"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*.bias", "encoder.layers.0.linear1.bias"));
  EXPECT_FALSE(GlobMatch("*.bias", "encoder.bias.weight"));
  EXPECT_TRUE(GlobMatch("conv?_w*", "conv1_weights"));
  EXPECT_FALSE(GlobMatch("conv?_w*", "conv12_weights"));
  EXPECT_TRUE(GlobMatch("*a*b*", "xxaxxbxx"));
  EXPECT_FALSE(GlobMatch("*a*b", "xxaxxbxc"));
  EXPECT_TRUE(GlobMatch("/layer1/*/Conv", "/layer1/0/conv1/Conv"));
}

// y = MatMul(LayerNorm(x) as PyTorch 1.13 decomposes it, W) + b, with a
// Hardswish decomposition (x + 3, Clip 0..6, / 6) in front and a float
// constant that only feeds a Reshape target.
onnx::ModelProto ExporterStyleModel() {
  PassTester t(13, 5);
  auto scalar = [&](const std::string& name, float v) { t.Initializer(name, Tensor::Scalar(v)); };
  scalar("three", 3.0f);
  scalar("zero", 0.0f);
  scalar("six", 6.0f);
  scalar("two", 2.0f);
  scalar("eps", 1e-5f);
  t.Initializer("one_elem", Tensor::FromValues<float>({1}, {0.5f}));
  t.Initializer("shape_scale", Tensor::FromValues<float>({2}, {1.0f, 1.0f}));
  t.Weight("ln.weight", {4}).Weight("ln.bias", {4}).Weight("fc.weight", {4, 3})
      .Weight("fc.bias", {3});
  t.Input("x", {2, 4})
      .Node("Add", {"x", "three"}, {"h1"})
      .Node("Clip", {"h1", "zero", "six"}, {"h2"})
      .Node("Mul", {"x", "h2"}, {"h3"})
      .Node("Div", {"h3", "six"}, {"h"})
      .Node("Mul", {"h", "one_elem"}, {"hs"})
      .Node("ReduceMean", {"hs"}, {"mean"}, {AttrInts("axes", {-1})})
      .Node("Sub", {"hs", "mean"}, {"d"})
      .Node("Pow", {"d", "two"}, {"d2"})
      .Node("ReduceMean", {"d2"}, {"var"}, {AttrInts("axes", {-1})})
      .Node("Add", {"var", "eps"}, {"ve"})
      .Node("Sqrt", {"ve"}, {"sd"})
      .Node("Div", {"d", "sd"}, {"n"})
      .Node("Mul", {"n", "ln.weight"}, {"nw"})
      .Node("Add", {"nw", "ln.bias"}, {"ln"})
      .Node("MatMul", {"ln", "fc.weight"}, {"m"})
      .Node("Add", {"m", "fc.bias"}, {"logits"})
      // Shape arithmetic in float, as some exporters write it.
      .Node("Shape", {"logits"}, {"s"})
      .Node("Cast", {"s"}, {"sf"}, {AttrInt("to", onnx::TensorProto::FLOAT)})
      .Node("Mul", {"sf", "shape_scale"}, {"sf2"})
      .Node("Cast", {"sf2"}, {"si"}, {AttrInt("to", onnx::TensorProto::INT64)})
      .Node("Reshape", {"logits", "si"}, {"y"})
      .Output("y", {2, 3});
  return t.proto();
}

TEST(ChooseParametersTest, DefaultRuleSkipsScalarsAndShapeConstants) {
  const onnx::ModelProto m = ExporterStyleModel();
  auto params = ChooseParameters(m.graph(), "y", {});
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(*params, ElementsAre("ln.weight", "ln.bias", "fc.weight", "fc.bias"));
}

TEST(ChooseParametersTest, NamedScalarsTrainAndFrozenWins) {
  const onnx::ModelProto m = ExporterStyleModel();
  training::ParameterSelection s;
  s.trainable = {"fc.*", "eps"};
  s.frozen = {"*.bias"};
  auto params = ChooseParameters(m.graph(), "y", s);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(*params, ElementsAre("fc.weight", "eps"));

  training::ParameterSelection frozen_only;
  frozen_only.frozen = {"ln.*", "fc.bias"};
  params = ChooseParameters(m.graph(), "y", frozen_only);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(*params, ElementsAre("fc.weight"));
}

TEST(ChooseParametersTest, UnmatchedPatternsAreErrorsNamingThem) {
  const onnx::ModelProto m = ExporterStyleModel();
  training::ParameterSelection s;
  s.frozen = {"decoder.*"};
  auto r = ChooseParameters(m.graph(), "y", s);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("frozen pattern 'decoder.*'"));
  s.frozen = {};
  s.trainable = {"fc.*", "head?.weight"};
  r = ChooseParameters(m.graph(), "y", s);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("trainable pattern 'head?.weight'"));
  s.trainable = {"fc.*"};
  s.frozen = {"fc.*"};
  r = ChooseParameters(m.graph(), "y", s);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("frozen"));
}

TEST(ChooseParametersTest, WeightSlotsTrainEvenWithOneElement) {
  // An embedding Gather, and a Gemm whose bias has one element.
  PassTester t(13, 2);
  t.Weight("emb", {10, 4}).Weight("w", {4, 1});
  t.Initializer("b", Tensor::FromValues<float>({1}, {0.0f}));
  t.Input("ids", {2}, onnx::TensorProto::INT64)
      .Node("Gather", {"emb", "ids"}, {"e"})
      .Node("Gemm", {"e", "w", "b"}, {"y"})
      .Output("y", {2, 1});
  auto params = ChooseParameters(t.proto().graph(), "y", {});
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_THAT(*params, ElementsAre("emb", "w", "b"));
}

TEST(ChooseParametersTest, TheTrainingGraphBuildsOnTheDefaultSet) {
  // The Pow exponent used to train and give NaN at step 1; now the
  // training graph is built for the four real parameters only.
  onnx::ModelProto m = ExporterStyleModel();
  auto model = ModelAccess::FromProto(m, "exporter.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  TrainingGraphOptions options;
  options.loss.kind = LossKind::kMse;
  auto built = BuildTrainingModels(*model, options);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(built->params, ElementsAre("ln.weight", "ln.bias", "fc.weight", "fc.bias"));
}

TEST(OptimizerNanTest, TheErrorNamesTheParameters) {
  auto opt = Optimizer::Create({});
  ASSERT_TRUE(opt.ok());
  Tensor a = Tensor::FromValues<float>({2}, {1.0f, 2.0f});
  Tensor b = Tensor::FromValues<float>({2}, {1.0f, 2.0f});
  Tensor c = Tensor::FromValues<float>({1}, {1.0f});
  Tensor ga = Tensor::FromValues<float>({2}, {0.1f, 0.2f});
  Tensor gb = Tensor::FromValues<float>({2}, {std::numeric_limits<float>::quiet_NaN(), 0.0f});
  Tensor gc = Tensor::FromValues<float>({1}, {std::numeric_limits<float>::infinity()});
  auto r = (*opt)->Step(0.1f, {"a", "ln.pow_exponent", "c"}, {&a, &b, &c}, {&ga, &gb, &gc});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("the gradients of 'ln.pow_exponent', 'c'"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(HasSubstr("'a'")));
  EXPECT_EQ(a.values<float>()[0], 1.0f);  // not updated
}

}  // namespace
}  // namespace qat
