// Training graphs of whole models: the MLP and LeNet-5 from the model zoo,
// every loss, frozen parameters, gradient accumulation and the errors.
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gradient_check.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "qat/calibrate.h"
#include "qat/dataset.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/training_graph.h"
#include "graph/graph_editor.h"
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

// A PyTorch-style export with a symbolic batch and shapes computed at run
// time: a class token expanded over the batch (Expand to Concat(Shape(x)[0],
// 1, 8)), positional embeddings sliced to the sequence length
// (Slice(pos, 0, Shape(x)[1])), heads split by Reshape(h, Concat(N, T, 2, 4))
// as multi-head attention writes it, attention with batched MatMul and
// Softmax, x.view(x.size(0), -1) (Reshape(z, Concat(N, -1))), and a mean
// over a slice of the sequence counted from its end.  With
// `symbolic_sequence`, x's sequence length is a symbol "T" too, so that
// fold_shapes leaves Shape(x)[1] computed and the rules' run-time paths
// (Slice with computed ends, Slice along a dynamic axis, Concat's sizes,
// a mean over a dynamic axis) run.
absl::StatusOr<Model> DynamicAttentionModel(int64_t opset, bool symbolic_sequence) {
  GraphBuilder b;
  b.Input("x", kFloat, {-1, 6, 8});
  b.Initializer("cls", RandomTensor({1, 1, 8}, 301));
  b.Initializer("pos", RandomTensor({1, 10, 8}, 302));
  b.Initializer("w1", RandomTensor({8, 8}, 303, -0.5f, 0.5f));
  b.Initializer("b1", RandomTensor({8}, 304));
  b.Initializer("w2", RandomTensor({56, 3}, 305, -0.3f, 0.3f));
  b.Initializer("b2", RandomTensor({3}, 306));
  b.Initializer("w3", RandomTensor({8, 3}, 307, -0.5f, 0.5f));
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    b.Initializer(name, Tensor::FromValues<int64_t>({static_cast<int64_t>(v.size())},
                                                    absl::MakeConstSpan(v)));
  };
  ints("zero", {0});
  ints("one", {1});
  ints("two", {2});
  ints("four", {4});
  ints("eight", {8});
  ints("minus_one", {-1});
  b.Initializer("i0", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{0}));
  b.Initializer("i1", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{1}));
  b.Node("Shape", {"x"}, {"xs"});
  SetInt(b.Node("Gather", {"xs", "i0"}, {"n"}), "axis", 0);
  SetInt(b.Node("Gather", {"xs", "i1"}, {"t"}), "axis", 0);
  b.Node("Unsqueeze", {"n", "zero"}, {"n1"});
  b.Node("Unsqueeze", {"t", "zero"}, {"t1"});
  SetInt(b.Node("Concat", {"n1", "one", "eight"}, {"cls_shape"}), "axis", 0);
  b.Node("Expand", {"cls", "cls_shape"}, {"cls_n"});
  b.Node("Slice", {"pos", "zero", "t1", "one"}, {"pos_t"});
  b.Node("Add", {"x", "pos_t"}, {"xp"});
  SetInt(b.Node("Concat", {"cls_n", "xp"}, {"seq"}), "axis", 1);  // [N, 7, 8]
  b.Node("MatMul", {"seq", "w1"}, {"h0"});
  b.Node("Add", {"h0", "b1"}, {"h"});
  b.Node("Shape", {"h"}, {"hs"});
  SetInt(b.Node("Gather", {"hs", "i1"}, {"t7"}), "axis", 0);
  b.Node("Unsqueeze", {"t7", "zero"}, {"t71"});
  SetInt(b.Node("Concat", {"n1", "t71", "two", "four"}, {"heads_shape"}), "axis", 0);
  b.Node("Reshape", {"h", "heads_shape"}, {"h4"});  // [N, 7, 2, 4]
  auto& tq = b.Node("Transpose", {"h4"}, {"q"});    // [N, 2, 7, 4]
  *tq.add_attribute() = training::AttrInts("perm", {0, 2, 1, 3});
  auto& tk = b.Node("Transpose", {"q"}, {"kt"});    // [N, 2, 4, 7]
  *tk.add_attribute() = training::AttrInts("perm", {0, 1, 3, 2});
  b.Node("MatMul", {"q", "kt"}, {"scores"});
  SetInt(b.Node("Softmax", {"scores"}, {"p"}), "axis", -1);
  b.Node("MatMul", {"p", "q"}, {"att"});
  SetInt(b.Node("Concat", {"n1", "minus_one"}, {"flat_shape"}), "axis", 0);
  b.Node("Reshape", {"att", "flat_shape"}, {"flat"});  // [N, 56]
  b.Node("MatMul", {"flat", "w2"}, {"l0"});
  b.Node("Add", {"l0", "b2"}, {"l1"});
  // A slice along the sequence (dynamic with a symbolic T), counted from
  // the end, averaged: seq[:, -5:-1].mean(1) @ w3.
  ints("minus_five", {-5});
  b.Node("Slice", {"seq", "minus_five", "minus_one", "one"}, {"tail"});
  auto& mean = b.Node("ReduceMean", {"tail"}, {"tail_mean"});
  *mean.add_attribute() = training::AttrInts("axes", {1});
  SetInt(mean, "keepdims", 0);
  b.Node("MatMul", {"tail_mean", "w3"}, {"l2"});
  b.Node("Add", {"l1", "l2"}, {"logits"});
  b.Output("logits", kFloat, {-1, 3});
  onnx::ModelProto m = b.proto();
  m.mutable_opset_import(0)->set_version(opset);
  if (symbolic_sequence) {
    m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()
        ->mutable_shape()->mutable_dim(1)->set_dim_param("T");
  }
  return Model::FromBytes(m.SerializeAsString(), "dynamic_attention.onnx");
}

TEST(TrainingGraphTest, DynamicBatchAndRunTimeShapesTrainAtAnyBatchSize) {
 for (bool symbolic_sequence : {false, true}) {
  SCOPED_TRACE(symbolic_sequence ? "symbolic sequence" : "static sequence");
  auto model = DynamicAttentionModel(13, symbolic_sequence);
  ASSERT_TRUE(model.ok()) << model.status();
  auto m = BuildTrainingModels(*model, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->params, ElementsAre("cls", "pos", "w1", "b1", "w2", "b2", "w3"));
  // With a symbolic sequence, Slice's positions and Concat's split sizes
  // come from Shape at run time; with a static one, fold_shapes made them
  // constants.
  int ramps = 0, runtime_splits = 0, padded = 0;
  const onnx::ModelProto proto = ModelAccess::Proto(m->training);
  for (const auto& n : proto.graph().node()) {
    if (n.op_type() == "Slice" && n.input(0).find("ramp") != std::string::npos) ++ramps;
    if (n.op_type() == "Concat" && n.output(0).find("padded") != std::string::npos) ++padded;
    if (n.op_type() == "Split" && n.input_size() > 1) {
      bool constant = false;
      for (const auto& t : proto.graph().initializer()) constant |= t.name() == n.input(1);
      runtime_splits += !constant;
    }
  }
  EXPECT_EQ(ramps, symbolic_sequence ? 1 : 0);
  EXPECT_EQ(runtime_splits, symbolic_sequence ? 1 : 0);
  EXPECT_EQ(padded, symbolic_sequence ? 1 : 0);
  // The exported side keeps the dynamic batch.
  EXPECT_EQ(m->eval.inputs()[0].shape[0], -1);
  EXPECT_EQ(m->training.inputs()[0].shape[0], -1);
  // One training graph, two batch sizes.
  for (int64_t batch : {3, 5}) {
    SCOPED_TRACE(batch);
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < batch; ++i) labels.push_back(i % 3);
    GradientCheck check(m->training, m->params,
                        {{"x", RandomTensor({batch, 6, 8}, 310 + batch)},
                         {"labels", Labels(labels)}});
    GradientCheckOptions options;
    options.max_entries_per_param = 12;
    check.ExpectMatchesFiniteDifferences(options);
    auto out = check.Run();
    ASSERT_TRUE(out.ok()) << out.status();
    // The positional embeddings past the sequence get no gradient; those
    // inside do.
    const Tensor& dpos = out->at("pos_grad");
    float inside = 0.0f, outside = 0.0f;
    for (int64_t i = 0; i < dpos.num_elements(); ++i) {
      (i < 6 * 8 ? inside : outside) += std::fabs(dpos.values<float>()[i]);
    }
    EXPECT_GT(inside, 0.0f);
    EXPECT_EQ(outside, 0.0f);
  }
 }
}

// The same model quantized (QDQ around every MatMul, then FakeQuant): the
// FakeQuant nodes behind computed Reshapes keep their ranks, and the
// straight-through training graph runs at batch 3 and 5.  (Finite
// differences cannot judge rounding, so this checks that the gradients are
// finite and not all zero.)
TEST(TrainingGraphTest, QuantizedDynamicModelTrainsAtAnyBatchSize) {
  auto model = DynamicAttentionModel(13, /*symbolic_sequence=*/true);
  ASSERT_TRUE(model.ok()) << model.status();
  auto data = Dataset::Create(RandomTensor({8, 6, 8}, 330), Labels({0, 1, 2, 0, 1, 2, 0, 1}));
  ASSERT_TRUE(data.ok()) << data.status();
  auto table = Calibrate(*model, *data, {});
  ASSERT_TRUE(table.ok()) << table.status();
  auto qdq = QuantizeModel(*model, *table);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  auto fused = FuseQdqToFakeQuant(*qdq);
  ASSERT_TRUE(fused.ok()) << fused.status();
  auto m = BuildTrainingModels(*fused, {});
  ASSERT_TRUE(m.ok()) << m.status();
  int fake_quants = 0;
  for (const auto& n : ModelAccess::Proto(m->training).graph().node()) {
    fake_quants += n.op_type() == "FakeQuant";
  }
  EXPECT_GE(fake_quants, 6);  // inputs and weights of the three MatMuls at least
  ExecutorOptions options;
  options.num_threads = 1;
  auto exec = Executor::Create(m->training, options);
  ASSERT_TRUE(exec.ok()) << exec.status();
  for (int64_t batch : {3, 5}) {
    SCOPED_TRACE(batch);
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < batch; ++i) labels.push_back(i % 3);
    auto out = (*exec)->Run({{"x", RandomTensor({batch, 6, 8}, 340 + batch)},
                             {"labels", Labels(labels)}});
    ASSERT_TRUE(out.ok()) << out.status();
    for (const std::string& p : m->params) {
      const Tensor& g = out->at(p + "_grad");
      double sum = 0.0;
      for (float v : g.values<float>()) {
        ASSERT_TRUE(std::isfinite(v)) << p;
        sum += std::fabs(v);
      }
      EXPECT_GT(sum, 0.0) << p;
    }
  }
}

// GlobalAveragePool over spatial sizes known only at run time (an input of
// [N, 3, H, W]): the count comes from Shape, so one training graph works for
// 5x4 and 3x6 images alike.
TEST(TrainingGraphTest, GlobalAveragePoolOverDynamicSpatialSizes) {
  GraphBuilder b;
  b.Input("x", kFloat, {-1, 3, -1, -1});
  b.Initializer("scale", RandomTensor({1, 3, 1, 1}, 350, 0.5f, 1.5f));
  b.Initializer("w", RandomTensor({3, 4}, 351));
  b.Node("Mul", {"x", "scale"}, {"xs"});
  b.Node("GlobalAveragePool", {"xs"}, {"pooled"});
  SetInt(b.Node("Flatten", {"pooled"}, {"flat"}), "axis", 1);
  b.Node("MatMul", {"flat", "w"}, {"logits"});
  b.Output("logits", kFloat, {-1, 4});
  onnx::ModelProto proto = b.proto();
  auto* dims = proto.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()
                   ->mutable_shape();
  dims->mutable_dim(2)->set_dim_param("H");
  dims->mutable_dim(3)->set_dim_param("W");
  auto model = Model::FromBytes(proto.SerializeAsString(), "gap.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  auto m = BuildTrainingModels(*model, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->params, ElementsAre("scale", "w"));
  const std::vector<std::vector<int64_t>> shapes = {{2, 3, 5, 4}, {3, 3, 3, 6}};
  for (const auto& shape : shapes) {
    SCOPED_TRACE(shape[2]);
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < shape[0]; ++i) labels.push_back(i % 4);
    GradientCheck check(m->training, m->params,
                        {{"x", RandomTensor(shape, 352 + shape[2])}, {"labels", Labels(labels)}});
    check.ExpectMatchesFiniteDifferences();
  }
}

// Clip's bounds from Constant nodes (as exporters write them) and from
// initializers need no gradient: the model trains, and only W does.
TEST(TrainingGraphTest, ClipBoundsFromConstantsNeedNoGradient) {
  GraphBuilder b;
  b.Input("x", kFloat, {-1, 4});
  b.Initializer("w", RandomTensor({4, 3}, 320));
  b.Initializer("hi", Tensor::Scalar(0.4f));
  auto& lo = b.Node("Constant", {}, {"lo"});
  *lo.add_attribute() = training::AttrTensor("value", TensorToProto(Tensor::Scalar(-0.3f), "lo"));
  b.Node("MatMul", {"x", "w"}, {"h"});
  b.Node("Clip", {"h", "lo", "hi"}, {"logits"});
  b.Output("logits", kFloat, {-1, 3});
  auto model = b.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto m = BuildTrainingModels(*model, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->params, ElementsAre("w"));
  GradientCheck check(m->training, m->params,
                      {{"x", RandomTensor({5, 4}, 321)}, {"labels", Labels({0, 1, 2, 0, 1})}});
  GradientCheckOptions options;
  options.max_entries_per_param = 12;
  check.ExpectMatchesFiniteDifferences(options);
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
