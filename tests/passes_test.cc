// Every graph pass through the pass tester (tests/pass_tester.h): tiny
// seeded graphs, onnx::checker before and after, the untransformed and
// transformed graphs run on the same inputs and compared within explicit
// tolerances, and op counts for what was added and removed.  Then the pass
// pipeline: order, the off switch, invariant checks and the error prefix.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "core/arena_model_proto.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "core/op_schemas.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "graph/pass_pipeline.h"
#include "graph/rearrange.h"
#include "passes/add_loss.h"
#include "passes/fake_quant_to_qdq.h"
#include "passes/fold_batch_norm.h"
#include "passes/fold_constants.h"
#include "passes/fold_shapes.h"
#include "passes/fuse_qdq_to_fake_quant.h"
#include "passes/gradient_builder.h"
#include "passes/insert_qdq.h"
#include "passes/prune_unused_initializers.h"
#include "pass_tester.h"
#include "qat/calibration_table.h"

namespace qat {
namespace {

using training::AttrInt;
using training::AttrInts;
using training::AttrTensor;
constexpr int kInt64 = onnx::TensorProto::INT64;

Tensor Scalar(DataType type, double v) {
  Tensor t(type, {});
  switch (type) {
    case DataType::kFloat32: t.data<float>()[0] = static_cast<float>(v); break;
    case DataType::kUInt8: t.data<uint8_t>()[0] = static_cast<uint8_t>(v); break;
    case DataType::kInt8: t.data<int8_t>()[0] = static_cast<int8_t>(v); break;
    default: break;
  }
  return t;
}

Tensor Int64s(const std::vector<int64_t>& values) {
  Tensor t(DataType::kInt64, {static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i) t.data<int64_t>()[i] = values[i];
  return t;
}

// ---------------------------------------------------------------- graph index

TEST(GraphIndexTest, AnswersConstantsProducersAndConsumers) {
  PassTester t;
  t.Input("x", {2, 3}).Weight("W", {3, 3}).Weight("x_default", {2, 3});
  t.proto().mutable_graph()->add_input()->set_name("x_default");  // overridable
  t.Node("Constant", {}, {"c"}, {AttrTensor("value", TensorToProto(Scalar(DataType::kFloat32, 2), "c"))})
      .Node("MatMul", {"x", "W"}, {"y"})
      .Node("Mul", {"y", "c"}, {"z"})
      .Node("Add", {"z", "z"}, {"out"});
  const graph::GraphIndex index(t.proto().graph());
  EXPECT_TRUE(index.IsConstant("W"));
  EXPECT_TRUE(index.IsConstant("c"));  // a Constant node's value
  EXPECT_FALSE(index.IsConstant("x_default"));
  EXPECT_TRUE(index.IsInitializer("x_default"));
  EXPECT_FALSE(index.IsConstant("y"));
  EXPECT_EQ(index.Producer("y"), 1);
  EXPECT_EQ(index.Producer("x"), -1);
  EXPECT_EQ(index.Consumers("z"), std::vector<int>{3});  // each node once
  EXPECT_EQ(index.NumUses("z"), 2);                      // but two slots
  EXPECT_TRUE(index.Consumers("out").empty());
  absl::StatusOr<Tensor> c = index.ConstantValue("c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->values<float>()[0], 2.0f);
  EXPECT_FALSE(index.ConstantValue("y").ok());
}

// ------------------------------------------------------- arena and rearrange

// Nodes "n0" .. "n{count-1}" in an arena-owned model.
ArenaModelProto NamedNodes(int count) {
  ArenaModelProto model;
  for (int k = 0; k < count; ++k) model->mutable_graph()->add_node()->set_name("n" + std::to_string(k));
  return model;
}

std::vector<std::string> NodeNames(const onnx::GraphProto& g) {
  std::vector<std::string> names;
  for (const auto& n : g.node()) names.push_back(n.name());
  return names;
}

TEST(RearrangeTest, ReordersAndDropsByMovingTheSameMessages) {
  ArenaModelProto model = NamedNodes(6);
  onnx::GraphProto* g = model->mutable_graph();
  ASSERT_NE(g->GetArena(), nullptr);
  std::vector<const onnx::NodeProto*> before;
  for (const auto& n : g->node()) before.push_back(&n);
  graph::Rearrange(g->mutable_node(), {4, 0, 5, 2});
  EXPECT_EQ(NodeNames(*g), (std::vector<std::string>{"n4", "n0", "n5", "n2"}));
  // The very messages moved: nothing was copied.
  EXPECT_EQ(&g->node(0), before[4]);
  EXPECT_EQ(&g->node(1), before[0]);
  EXPECT_EQ(&g->node(2), before[5]);
  EXPECT_EQ(&g->node(3), before[2]);
  graph::Rearrange(g->mutable_node(), {0, 1, 2, 3});  // the identity
  EXPECT_EQ(NodeNames(*g), (std::vector<std::string>{"n4", "n0", "n5", "n2"}));
  graph::Rearrange(g->mutable_node(), {});
  EXPECT_EQ(g->node_size(), 0);
}

TEST(RearrangeTest, EveryPermutationOfFiveLandsInOrder) {
  std::vector<int> order = {0, 1, 2, 3, 4};
  do {
    ArenaModelProto model = NamedNodes(5);
    graph::Rearrange(model->mutable_graph()->mutable_node(), order);
    std::vector<std::string> want;
    for (int k : order) want.push_back("n" + std::to_string(k));
    ASSERT_EQ(NodeNames(model->graph()), want);
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST(KeepIfTest, KeepsTheOrderOfWhatStaysOnTheHeapAndOnAnArena) {
  onnx::GraphProto heap;
  for (int k = 0; k < 5; ++k) heap.add_node()->set_name("n" + std::to_string(k));
  ArenaModelProto arena = NamedNodes(5);
  for (onnx::GraphProto* g : {&heap, arena->mutable_graph()}) {
    const onnx::NodeProto* n3 = &g->node(3);
    auto odd = [](const onnx::NodeProto& n) { return (n.name().back() - '0') % 2 == 1; };
    EXPECT_TRUE(graph::KeepIf(g->mutable_node(), odd));
    EXPECT_EQ(NodeNames(*g), (std::vector<std::string>{"n1", "n3"}));
    EXPECT_EQ(&g->node(1), n3);
    EXPECT_FALSE(graph::KeepIf(g->mutable_node(), odd));  // nothing more to drop
  }
}

TEST(ArenaModelProtoTest, CopiesDeeplyAndMovesTheArena) {
  ArenaModelProto a = NamedNodes(2);
  ArenaModelProto copy(*a);
  copy->mutable_graph()->mutable_node(0)->set_name("changed");
  EXPECT_EQ(a->graph().node(0).name(), "n0");
  const onnx::ModelProto* proto = a.get();
  ArenaModelProto moved(std::move(a));
  EXPECT_EQ(moved.get(), proto);
  EXPECT_EQ(a.get(), nullptr);  // NOLINT(bugprone-use-after-move): what a move leaves
  EXPECT_EQ(moved->graph().node(1).name(), "n1");
}

TEST(MoveTensorProtoTest, RawDataMovesOntoAnArenaWithoutACopy) {
  onnx::TensorProto heap;
  heap.set_name("w");
  heap.set_data_type(onnx::TensorProto::FLOAT);
  heap.add_dims(1 << 18);
  heap.mutable_raw_data()->assign(size_t{4} << 18, '\x7f');
  const char* data = heap.raw_data().data();
  ArenaModelProto model;
  onnx::TensorProto* to = model->mutable_graph()->add_initializer();
  MoveTensorProto(std::move(heap), to);
  EXPECT_EQ(to->name(), "w");
  EXPECT_EQ(to->dims(0), 1 << 18);
  ASSERT_EQ(to->raw_data().size(), size_t{4} << 18);
  EXPECT_EQ(to->raw_data().data(), data);  // the same buffer
  // A tensor without raw_data keeps its typed fields, and replaces what
  // `to` held.
  onnx::TensorProto floats;
  floats.set_name("f");
  floats.add_float_data(1.5f);
  MoveTensorProto(std::move(floats), to);
  EXPECT_FALSE(to->has_raw_data());
  EXPECT_EQ(to->name(), "f");
  ASSERT_EQ(to->float_data_size(), 1);
  EXPECT_EQ(to->float_data(0), 1.5f);
}

// ------------------------------------------------------------- fold_constants

TEST(FoldConstantsTest, ConstantBehindTransposeBecomesAnInitializer) {
  PassTester t;
  Tensor w(DataType::kFloat32, {3, 4});
  for (int i = 0; i < 12; ++i) w.values<float>()[i] = 0.25f * static_cast<float>(i) - 1.0f;
  t.Input("x", {2, 4})
      .Node("Constant", {}, {"w"}, {AttrTensor("value", TensorToProto(w, "w"))})
      .Node("Transpose", {"w"}, {"wt"}, {AttrInts("perm", {1, 0})})
      .Node("MatMul", {"x", "wt"}, {"y"})
      .Output("y", {2, 3});
  passes::FoldConstantsPass pass;
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectRemoved("Constant")
      .ExpectRemoved("Transpose")
      .ExpectOpDelta("MatMul", 0);
  ASSERT_TRUE(t.Ok());
  ASSERT_EQ(t.after().graph().initializer_size(), 1);  // the intermediate w was pruned
  EXPECT_EQ(t.after().graph().initializer(0).name(), "wt");
}

TEST(FoldConstantsTest, ReshapeOfAWeightFoldsWithTheInferredShape) {
  PassTester t;
  t.Input("x", {2, 6})
      .Weight("W", {2, 3, 4})
      .Initializer("shape", Int64s({6, 4}))
      .Node("Reshape", {"W", "shape"}, {"w2"})
      .Node("MatMul", {"x", "w2"}, {"y"})
      .Output("y", {2, 4});
  passes::FoldConstantsPass pass;
  t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0.0, 0.0).ExpectRemoved("Reshape");
}

TEST(FoldConstantsTest, AnInitializerThatAnInputOverridesIsNotFolded) {
  PassTester t;
  t.Input("x", {2, 3}).Input("W", {3, 3}).Weight("W", {3, 3})
      .Node("Transpose", {"W"}, {"wt"})
      .Node("MatMul", {"x", "wt"}, {"y"})
      .Output("y", {2, 3});
  passes::FoldConstantsPass pass;
  t.Apply(pass).ExpectChanged(false).ExpectOutputsNear(0.0, 0.0).ExpectOpDelta("Transpose", 0);
}

// ----------------------------------------------------------------- insert_qdq

// x [4, 8] -> MatMul(W [8, 3]) -> y, with a table from the values seen.
struct MatMulGraph {
  PassTester t;
  CalibrationTable table;
  MatMulGraph() {
    t.Input("x", {4, 8}).Weight("W", {8, 3}).Node("MatMul", {"x", "W"}, {"y"}).Output("y", {4, 3});
    t.Apply([](onnx::ModelProto*) { return false; });  // to get the float run
    const std::map<std::string, Tensor> run = t.RunBefore();
    for (const auto& [name, value] : {std::pair<std::string, Tensor>{"x", t.inputs().at("x")},
                                      {"y", run.at("y")}}) {
      float lo = 0, hi = 0;
      for (float v : value.values<float>()) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      auto entry = MakeCalibrationEntry(TensorRole::kActivation, QuantType::kUInt8,
                                        CalibrationMethod::kMinMax, false, false, std::nullopt,
                                        {{lo, hi, lo, hi}});
      EXPECT_TRUE(entry.ok()) << entry.status();
      EXPECT_TRUE(table.Set(name, *entry).ok());
    }
  }
};

TEST(InsertQdqTest, PairsAroundTheInputTheWeightAndTheOutput) {
  MatMulGraph g;
  passes::InsertQdqPass pass(g.table, {});
  // uint8 activations over ranges near [-3, 3]: a step of about 0.025.
  g.t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.1, 0.05)
      .ExpectOpDelta("QuantizeLinear", 3)
      .ExpectOpDelta("DequantizeLinear", 3)
      .ExpectOpDelta("MatMul", 0);
  ASSERT_TRUE(g.t.Ok());
  // The graph output keeps its name, now the dequantized value.
  EXPECT_EQ(g.t.after().graph().output(0).name(), "y");
}

TEST(InsertQdqTest, StoredInt8WeightsLeaveOnlyADequantizeAndThePipelinePrunesTheFloats) {
  MatMulGraph g;
  passes::InsertQdqConfig config;
  config.weights_as_int8 = true;
  config.per_channel = true;
  passes::PassPipelineOptions options;
  options.check_invariants = true;
  passes::PassPipeline pipeline(options);
  pipeline.Add(std::make_unique<passes::InsertQdqPass>(g.table, config));
  pipeline.Add(std::make_unique<passes::PruneUnusedInitializersPass>());
  g.t.Apply(pipeline)
      .ExpectOutputsNear(0.1, 0.05)
      .ExpectOpDelta("QuantizeLinear", 2)
      .ExpectOpDelta("DequantizeLinear", 3);
  ASSERT_TRUE(g.t.Ok());
  const graph::GraphIndex index(g.t.after().graph());
  EXPECT_EQ(index.FindInitializer("W"), nullptr);
  const onnx::TensorProto* stored = index.FindInitializer("W_quantized");
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->data_type(), onnx::TensorProto::INT8);
}

TEST(InsertQdqTest, AnActivationWithoutATableEntryIsAnError) {
  MatMulGraph g;
  CalibrationTable partial;
  ASSERT_TRUE(partial.Set("x", *g.table.Find("x")).ok());
  passes::InsertQdqPass pass(partial, {});
  PassTester t;
  t.Input("x", {4, 8}).Weight("W", {8, 3}).Node("MatMul", {"x", "W"}, {"y"}).Output("y", {4, 3});
  t.Apply(pass).ExpectError("Failed after insert_qdq: tensor 'y' needs quantization");
}

// ------------------------------------------------------ fuse_qdq_to_fake_quant

TEST(FuseQdqToFakeQuantTest, APairBecomesOneFakeQuantWithTheSameBits) {
  PassTester t;
  t.Input("x", {3, 5}, kFloat, -2.0f, 2.0f)
      .Initializer("s", Scalar(DataType::kFloat32, 0.0157f))
      .Initializer("z", Scalar(DataType::kUInt8, 128))
      .Node("QuantizeLinear", {"x", "s", "z"}, {"q"})
      .Node("DequantizeLinear", {"q", "s", "z"}, {"dq"})
      .Node("Relu", {"dq"}, {"y"})
      .Output("y", {3, 5});
  passes::FuseQdqToFakeQuantPass pass;
  // FakeQuant divides and rounds as QuantizeLinear does: bit for bit.
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectRemoved("QuantizeLinear")
      .ExpectRemoved("DequantizeLinear")
      .ExpectOpCount("FakeQuant", 1)
      .ExpectNodeDelta(-1);
  EXPECT_TRUE(pass.warnings().empty());
}

TEST(FuseQdqToFakeQuantTest, AClipNarrowsTheRange) {
  PassTester t;
  t.Input("x", {2, 6}, kFloat, -1.0f, 1.0f)
      .Initializer("s", Scalar(DataType::kFloat32, 0.004f))
      .Initializer("z", Scalar(DataType::kInt8, 0))
      .Initializer("lo", Scalar(DataType::kInt8, -7))
      .Initializer("hi", Scalar(DataType::kInt8, 7))
      .Node("QuantizeLinear", {"x", "s", "z"}, {"q"})
      .Node("Clip", {"q", "lo", "hi"}, {"c"})
      .Node("DequantizeLinear", {"c", "s", "z"}, {"y"})
      .Output("y", {2, 6});
  passes::FuseQdqToFakeQuantPass pass;
  t.Apply(pass).ExpectOutputsNear(0.0, 0.0).ExpectRemoved("Clip").ExpectOpCount("FakeQuant", 1);
  ASSERT_TRUE(t.Ok());
  for (const auto& n : t.after().graph().node()) {
    if (n.op_type() != "FakeQuant") continue;
    EXPECT_EQ(training::GetAttrInt(n, "quant_min", 0), -7);
    EXPECT_EQ(training::GetAttrInt(n, "quant_max", 0), 7);
  }
}

TEST(FuseQdqToFakeQuantTest, AQuantizeWithOtherReadersIsLeftWithAWarning) {
  PassTester t;
  t.Input("x", {2, 2})
      .Initializer("s", Scalar(DataType::kFloat32, 0.01f))
      .Initializer("z", Scalar(DataType::kUInt8, 128))
      .Node("QuantizeLinear", {"x", "s", "z"}, {"q"})
      .Node("DequantizeLinear", {"q", "s", "z"}, {"y"})
      .Output("y", {2, 2})
      .Output("q", {2, 2}, onnx::TensorProto::UINT8);
  passes::FuseQdqToFakeQuantPass pass;
  t.Apply(pass).ExpectChanged(false).ExpectOutputsNear(0.0, 0.0).ExpectOpCount("FakeQuant", 0);
  ASSERT_EQ(pass.warnings().size(), 1u);
}

// ---------------------------------------------------------- fake_quant_to_qdq

// x -> FakeQuant -> MatMul(FakeQuant(W)) -> y, per tensor, uint8 and int8.
PassTester FakeQuantGraph() {
  PassTester t;
  t.Opset(kMicrosoftDomain, 1)
      .Input("x", {3, 4})
      .Weight("W", {4, 2})
      .Initializer("xs", Scalar(DataType::kFloat32, 0.008f))
      .Initializer("xz", Scalar(DataType::kFloat32, 127))
      .Initializer("ws", Scalar(DataType::kFloat32, 0.0079f))
      .Initializer("wz", Scalar(DataType::kFloat32, 0))
      .Node("FakeQuant", {"x", "xs", "xz"}, {"xq", "xmask"},
            {AttrInt("quant_min", 0), AttrInt("quant_max", 255)}, kMicrosoftDomain)
      .Node("FakeQuant", {"W", "ws", "wz"}, {"wq", "wmask"},
            {AttrInt("quant_min", -127), AttrInt("quant_max", 127)}, kMicrosoftDomain)
      .Node("MatMul", {"xq", "wq"}, {"y"})
      .Output("y", {3, 2});
  return t;
}

TEST(FakeQuantToQdqTest, StoredWeightsDequantizeToWhatFakeQuantComputed) {
  PassTester t = FakeQuantGraph();
  passes::FakeQuantToQdqPass pass;  // int8 weights
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectRemoved("FakeQuant")
      .ExpectOpCount("QuantizeLinear", 1)   // the activation only
      .ExpectOpCount("DequantizeLinear", 2)
      .ExpectOpCount("Clip", 0);            // the stored values are in [-127, 127]
  ASSERT_TRUE(t.Ok());
  EXPECT_EQ(graph::GraphIndex(t.after().graph()).FindInitializer("W"), nullptr);
}

TEST(FakeQuantToQdqTest, FloatWeightsGetAPairAndANarrowRangeAClip) {
  PassTester t = FakeQuantGraph();
  passes::FakeQuantToQdqConfig config;
  config.int8_weights = false;
  passes::FakeQuantToQdqPass pass(config);
  t.Apply(pass)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectOpCount("QuantizeLinear", 2)
      .ExpectOpCount("DequantizeLinear", 2)
      .ExpectOpCount("Clip", 1);  // [-127, 127] inside int8
}

TEST(FakeQuantToQdqTest, AMaskThatIsStillReadIsAnError) {
  PassTester t = FakeQuantGraph();
  t.Output("wmask", {4, 2}, onnx::TensorProto::BOOL);
  passes::FakeQuantToQdqPass pass;
  t.Apply(pass).ExpectError("Failed after fake_quant_to_qdq:");
}

// ------------------------------------------------------------------- add_loss

TEST(AddLossTest, MseIsTheMeanSquaredDifference) {
  PassTester t;
  t.Input("x", {4, 3}).Weight("W", {3, 2}).Node("MatMul", {"x", "W"}, {"y"}).Output("y", {4, 2});
  LossOptions loss;
  loss.kind = LossKind::kMse;
  training::AddLossPass pass(loss);
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0, {"y"})  // the model's own output is untouched
      .ExpectOpDelta("Sub", 1)
      .ExpectOpDelta("Mul", 1)
      .ExpectOpDelta("ReduceMean", 1);
  ASSERT_TRUE(t.Ok());
  const auto out = t.RunAfter();
  const Tensor& y = out.at("y");
  const Tensor& labels = t.inputs().at(kLabelsInput);
  double sum = 0;
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    const double d = y.values<float>()[i] - labels.values<float>()[i];
    sum += d * d;
  }
  Tensor expected(DataType::kFloat32, {});
  expected.data<float>()[0] = static_cast<float>(sum / static_cast<double>(y.num_elements()));
  PassTester::ExpectNear("loss", expected, out.at(kLossOutput), 0.0, 1e-5);
  EXPECT_EQ(t.after().graph().output(0).name(), kLossOutput);
}

TEST(AddLossTest, CrossEntropyTakesInt64Labels) {
  PassTester t;
  t.Input("x", {5, 3}).Weight("W", {3, 4}).Node("MatMul", {"x", "W"}, {"y"}).Output("y", {5, 4});
  t.IntRange(kLabelsInput, 4);
  training::AddLossPass pass({});
  t.Apply(pass).ExpectOutputsNear(0.0, 0.0, {"y"}).ExpectOpDelta("SoftmaxCrossEntropyLoss", 1);
  ASSERT_TRUE(t.Ok());
  EXPECT_EQ(t.inputs().at(kLabelsInput).dtype(), DataType::kInt64);
}

TEST(AddLossTest, AModelThatHasALossAlreadyIsAnError) {
  PassTester t;
  t.Input("x", {2, 2}).Node("Relu", {"x"}, {"loss"}).Output("loss", {2, 2});
  training::AddLossPass pass({});
  t.Apply(pass).ExpectError("Failed after add_loss: the model already has a value named 'loss'");
}

// ------------------------------------------------------------ build_gradients

TEST(BuildGradientsTest, TheForwardLossStaysAndEachParameterGetsAGradient) {
  PassTester t;
  t.Input("x", {4, 3})
      .Input(kLabelsInput, {4}, kInt64)
      .IntRange(kLabelsInput, 2)
      .Weight("W", {3, 2})
      .Weight("B", {2})
      .Node("Gemm", {"x", "W", "B"}, {"y"})
      .Node("SoftmaxCrossEntropyLoss", {"y", kLabelsInput}, {kLossOutput},
            {training::AttrString("reduction", "mean")})
      .Output(kLossOutput, {});
  training::BuildGradientsPass pass(training::BuildGradientsConfig{kLossOutput, {"W", "B"}});
  t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0.0, 0.0, {kLossOutput});
  ASSERT_TRUE(t.Ok());
  // One Identity per parameter names its gradient; the Gemm's backward is
  // one Gemm for dW (no dX: x is an input, not a parameter) and a
  // ReduceSum for dB.
  t.ExpectOpDelta("Identity", 2).ExpectOpDelta("Gemm", 1).ExpectOpDelta("ReduceSum", 1);
  const auto out = t.RunAfter();
  ASSERT_EQ(out.count("W_grad"), 1u);
  ASSERT_EQ(out.count("B_grad"), 1u);
  EXPECT_EQ(out.at("W_grad").shape(), (std::vector<int64_t>{3, 2}));
  // Softmax cross-entropy: the bias gradient of each sample sums to zero.
  const auto b = out.at("B_grad").values<float>();
  EXPECT_NEAR(b[0] + b[1], 0.0f, 1e-6f);
  EXPECT_NE(b[0], 0.0f);
}

TEST(BuildGradientsTest, AParameterThatIsNotAnInitializerIsAnError) {
  PassTester t;
  t.Input("x", {2}).Node("ReduceSum", {"x"}, {kLossOutput}, {AttrInt("keepdims", 0)})
      .Output(kLossOutput, {});
  training::BuildGradientsPass pass(training::BuildGradientsConfig{kLossOutput, {"nope"}});
  t.Apply(pass).ExpectError("Failed after build_gradients: parameter 'nope'");
}

// ---------------------------------------------------------------------- prune

TEST(PruneUnusedInitializersTest, DropsWhatNothingReads) {
  PassTester t;
  t.Input("x", {2}).Weight("used", {2}).Weight("unused", {2})
      .Node("Add", {"x", "used"}, {"y"}).Output("y", {2});
  passes::PruneUnusedInitializersPass pass;
  t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0.0, 0.0);
  ASSERT_TRUE(t.Ok());
  ASSERT_EQ(t.after().graph().initializer_size(), 1);
  EXPECT_EQ(t.after().graph().initializer(0).name(), "used");
}

// ------------------------------------------------------------------- pipeline

// Appends its name to a log; optionally breaks the graph or fails.
class LoggingPass : public passes::GraphPass {
 public:
  enum class Mode { kFine, kBreaksTheGraph, kFails };
  LoggingPass(std::string name, std::vector<std::string>* log, Mode mode = Mode::kFine)
      : name_(std::move(name)), log_(log), mode_(mode) {}
  absl::string_view name() const override { return name_; }

 private:
  absl::StatusOr<bool> RunImpl(onnx::ModelProto* model) override {
    log_->push_back(name_);
    if (mode_ == Mode::kFails) return absl::InvalidArgumentError("boom");
    if (mode_ == Mode::kBreaksTheGraph) {
      // A node that reads a value nothing defines.
      auto* n = model->mutable_graph()->add_node();
      n->set_op_type("Relu");
      n->add_input("undefined_value");
      n->add_output("dangling");
    }
    return mode_ != Mode::kFine;
  }
  std::string name_;
  std::vector<std::string>* log_;
  Mode mode_;
};

onnx::ModelProto TinyModel() {
  PassTester t;
  t.Input("x", {2}).Node("Relu", {"x"}, {"y"}).Output("y", {2});
  return t.proto();
}

TEST(PassPipelineTest, RunsThePassesInOrder) {
  std::vector<std::string> log;
  passes::PassPipeline pipeline;
  for (const char* name : {"first", "second", "third"}) {
    pipeline.Add(std::make_unique<LoggingPass>(name, &log));
  }
  EXPECT_EQ(pipeline.pass_names(), (std::vector<std::string>{"first", "second", "third"}));
  onnx::ModelProto m = TinyModel();
  absl::StatusOr<bool> changed = pipeline.Run(&m);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(*changed);
  EXPECT_EQ(log, (std::vector<std::string>{"first", "second", "third"}));
}

TEST(PassPipelineTest, ADisabledPassDoesNotRunAndAnUnknownNameIsAnError) {
  std::vector<std::string> log;
  passes::PassPipelineOptions options;
  options.disabled = {"second"};
  passes::PassPipeline pipeline(options);
  for (const char* name : {"first", "second", "third"}) {
    pipeline.Add(std::make_unique<LoggingPass>(name, &log));
  }
  onnx::ModelProto m = TinyModel();
  ASSERT_TRUE(pipeline.Run(&m).ok());
  EXPECT_EQ(log, (std::vector<std::string>{"first", "third"}));

  options.disabled = {"fourth"};
  passes::PassPipeline typo(options);
  typo.Add(std::make_unique<LoggingPass>("first", &log));
  absl::StatusOr<bool> changed = typo.Run(&m);
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find("cannot disable pass 'fourth'"), std::string::npos)
      << changed.status();
}

TEST(PassPipelineTest, TheInvariantCheckNamesThePassThatBrokeTheGraph) {
  std::vector<std::string> log;
  passes::PassPipelineOptions options;
  options.check_invariants = true;
  passes::PassPipeline pipeline(options);
  pipeline.Add(std::make_unique<LoggingPass>("fine", &log));
  pipeline.Add(std::make_unique<LoggingPass>("breaker", &log, LoggingPass::Mode::kBreaksTheGraph));
  pipeline.Add(std::make_unique<LoggingPass>("after", &log));
  onnx::ModelProto m = TinyModel();
  absl::StatusOr<bool> changed = pipeline.Run(&m);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(changed.status().message().rfind("Failed after breaker: ", 0), 0u)
      << changed.status();
  EXPECT_NE(changed.status().message().find("undefined_value"), std::string::npos)
      << changed.status();
  EXPECT_EQ(log, (std::vector<std::string>{"fine", "breaker"}));  // stopped there

  // Without the checks the broken graph goes through (the caller's final
  // check would catch it).
  options.check_invariants = false;
  passes::PassPipeline unchecked(options);
  unchecked.Add(std::make_unique<LoggingPass>("breaker", &log, LoggingPass::Mode::kBreaksTheGraph));
  onnx::ModelProto m2 = TinyModel();
  EXPECT_TRUE(unchecked.Run(&m2).ok());
}

TEST(PassPipelineTest, APassErrorIsPrefixedOnce) {
  std::vector<std::string> log;
  passes::PassPipeline pipeline;
  pipeline.Add(std::make_unique<LoggingPass>("failing", &log, LoggingPass::Mode::kFails));
  onnx::ModelProto m = TinyModel();
  absl::StatusOr<bool> changed = pipeline.Run(&m);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().message(), "Failed after failing: boom");
}

TEST(PassPipelineTest, InvariantChecksAreOnInDebugBuildsAndUnderTheTestEnvironment) {
#ifdef NDEBUG
  const char* env = std::getenv("QAT_CHECK_PASS_INVARIANTS");
  EXPECT_EQ(passes::PassPipelineOptions().check_invariants,
            env != nullptr && std::string(env) == "1");
#else
  EXPECT_TRUE(passes::PassPipelineOptions().check_invariants);
#endif
}

// ------------------------------------------------------------ topological sort

TEST(TopologicalSortTest, KeepsTheOrderOfRepeatedSweeps) {
  // 0: a reads c (from 2); 1: b; 2: c; 3: d.  Sweep 1 emits b, c, d; sweep
  // 2 emits a: [b, c, d, a] (a smallest-index-first order would give
  // [b, c, a, d]).
  onnx::GraphProto g;
  auto add = [&](const std::string& name, std::vector<std::string> in) {
    auto* n = g.add_node();
    n->set_name(name);
    n->set_op_type("Relu");
    for (auto& i : in) n->add_input(i);
    n->add_output(name + "_out");
  };
  add("a", {"c_out"});
  add("b", {"x"});
  add("c", {"x"});
  add("d", {"x"});
  ASSERT_TRUE(training::TopologicalSort(&g).ok());
  std::vector<std::string> order;
  for (const auto& n : g.node()) order.push_back(n.name());
  EXPECT_EQ(order, (std::vector<std::string>{"b", "c", "d", "a"}));

  add("e", {"f_out"});
  add("f", {"e_out"});
  absl::Status cycle = training::TopologicalSort(&g);
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.message().find("node 'e'"), std::string::npos) << cycle;
}

// Shape -> Gather/Slice of static dims folds with a symbolic batch; the
// batch's own element stays computed, and so does a Concat that holds it.
TEST(FoldShapesPassTest, FoldsStaticDimsAndKeepsTheBatch) {
  PassTester t;
  t.Input("x", {-1, 4, 6})
      .Initializer("i1", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{1}))
      .Initializer("i0", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{0}))
      .Initializer("zero", Tensor::FromValues<int64_t>({1}, std::vector<int64_t>{0}))
      .Initializer("s1", Tensor::FromValues<int64_t>({1}, std::vector<int64_t>{1}))
      .Initializer("e3", Tensor::FromValues<int64_t>({1}, std::vector<int64_t>{3}))
      .Initializer("minus_one", Tensor::FromValues<int64_t>({1}, std::vector<int64_t>{-1}))
      .Node("Shape", {"x"}, {"xs"})
      .Node("Gather", {"xs", "i1"}, {"c"}, {AttrInt("axis", 0)})        // 4
      .Node("Unsqueeze", {"c", "zero"}, {"c1"})                          // [4]
      .Node("Slice", {"xs", "s1", "e3"}, {"tail"})                       // [4, 6]
      .Node("Gather", {"xs", "i0"}, {"n"}, {AttrInt("axis", 0)})        // N
      .Node("Unsqueeze", {"n", "zero"}, {"n1"})
      .Node("Concat", {"c1", "minus_one"}, {"rows"}, {AttrInt("axis", 0)})  // [4, -1]
      .Node("Concat", {"n1", "tail"}, {"again"}, {AttrInt("axis", 0)})      // [N, 4, 6]
      .Node("Reshape", {"x", "rows"}, {"y"})
      .Node("Reshape", {"x", "again"}, {"z"})
      .Output("y", {4, -1})
      .Output("z", {-1, 4, 6});
  passes::FoldShapesPass pass;
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectOpCount("Slice", 0)
      .ExpectOpCount("Unsqueeze", 1)   // the batch's
      .ExpectOpCount("Gather", 1)      // the batch's
      .ExpectOpCount("Concat", 1)      // [N, 4, 6] stays computed
      .ExpectOpCount("Shape", 1);
}

// An int64 initializer for the shape computations below.
Tensor I64(std::vector<int64_t> dims, std::vector<int64_t> values) {
  return Tensor::FromValues<int64_t>(std::move(dims), std::move(values));
}

// PyTorch's attention slices its packed projection [N, T, 3D] at
// Shape(x)[-1] / 3 * k: the arithmetic on the static dim folds, so the
// Slice's bounds become constants; on the batch it stays computed, and a
// division of a negative value (truncating or flooring?) is not folded.
TEST(FoldShapesPassTest, FoldsArithmeticOnStaticDims) {
  PassTester t;
  t.Input("x", {-1, 2, 12})
      .Initializer("last", I64({}, {2}))
      .Initializer("first", I64({}, {0}))
      .Initializer("three", I64({}, {3}))
      .Initializer("two", I64({}, {2}))
      .Initializer("one", I64({1}, {1}))
      .Initializer("minus_twenty", I64({}, {-20}))
      .Initializer("zero", I64({1}, {0}))
      .Initializer("axis", I64({1}, {-1}))
      .Node("Shape", {"x"}, {"xs"})
      .Node("Gather", {"xs", "last"}, {"d3"}, {AttrInt("axis", 0)})    // 12
      .Node("Div", {"d3", "three"}, {"d"})                                // 4
      .Node("Mul", {"d", "two"}, {"end"})                                 // 8
      .Node("Unsqueeze", {"d", "zero"}, {"start1"})
      .Node("Unsqueeze", {"end", "zero"}, {"end1"})
      .Node("Slice", {"x", "start1", "end1", "axis"}, {"k"})              // x[..., 4:8]
      .Node("Gather", {"xs", "first"}, {"n"}, {AttrInt("axis", 0)})     // N
      .Node("Add", {"n", "one"}, {"n_plus"})                              // N + 1: computed
      .Node("Add", {"d3", "minus_twenty"}, {"neg"})                       // -8
      .Node("Div", {"neg", "three"}, {"neg_third"})                       // not folded
      .Output("k", {-1, 2, 4})
      .Output("n_plus", {1}, onnx::TensorProto::INT64)
      .Output("neg_third", {}, onnx::TensorProto::INT64);
  passes::FoldShapesPass pass;
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectOpCount("Mul", 0)
      .ExpectOpCount("Unsqueeze", 0)
      .ExpectOpCount("Add", 1)   // N + 1
      .ExpectOpCount("Div", 1);  // -8 / 3
}

// A Reshape to a shape vector with the batch in it (PyTorch's attention:
// [N * heads, ...]) is a shape ONNX's inference gives up on; the pass
// declares it, and the next round folds what depends on it: the Shape of
// a value after that Reshape, sliced and divided (the next layer).
TEST(FoldShapesPassTest, DeclaresReshapedShapesAndFoldsWhatFollows) {
  PassTester t;
  t.Input("x", {-1, 2, 12})
      .Initializer("first", I64({}, {0}))
      .Initializer("last", I64({}, {1}))
      .Initializer("two", I64({}, {2}))
      .Initializer("three", I64({}, {3}))
      .Initializer("zero", I64({1}, {0}))
      .Initializer("twelve", I64({1}, {12}))
      .Initializer("start", I64({1}, {0}))
      .Initializer("axis", I64({1}, {1}))
      .Node("Shape", {"x"}, {"xs"})
      .Node("Gather", {"xs", "first"}, {"n"}, {AttrInt("axis", 0)})
      .Node("Mul", {"n", "two"}, {"rows"})                               // N * 2
      .Node("Unsqueeze", {"rows", "zero"}, {"rows1"})
      .Node("Concat", {"rows1", "twelve"}, {"target"}, {AttrInt("axis", 0)})
      .Node("Reshape", {"x", "target"}, {"r"})                            // [N * 2, 12]
      .Node("Relu", {"r"}, {"h"})
      .Node("Shape", {"h"}, {"hs"})
      .Node("Gather", {"hs", "last"}, {"width"}, {AttrInt("axis", 0)})  // 12
      .Node("Div", {"width", "three"}, {"third"})                         // 4
      .Node("Unsqueeze", {"third", "zero"}, {"end"})
      .Node("Slice", {"h", "start", "end", "axis"}, {"y"})               // h[:, :4]
      .Output("y", {-1, 4});
  passes::FoldShapesPass pass;
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(0.0, 0.0)
      .ExpectOpCount("Div", 0)
      .ExpectOpCount("Mul", 1);  // the batch's
  if (!t.Ok()) return;
  onnx::ModelProto after = t.after();
  training::GraphEditor editor(&after);
  const std::optional<training::ValueShape> r = editor.ShapeOf("r");
  ASSERT_TRUE(r.has_value() && r->rank_known);
  EXPECT_EQ(r->dims, (std::vector<int64_t>{-1, 12}));
  int declared = 0;
  for (const auto& v : after.graph().value_info()) declared += v.name() == "r";
  EXPECT_EQ(declared, 1);  // r's entry replaced, not another added
}

// Raising a training graph to opset 16 (for ScatterElements' reduction):
// BatchNormalization's opset-13 training form becomes opset 14's, unless
// something reads saved_mean or saved_var; never from below opset 13.
TEST(GraphEditorTest, RaiseOpsetRewritesBatchNormalization) {
  auto model = [](int64_t opset, bool read_saved) {
    onnx::ModelProto m;
    m.set_ir_version(7);
    m.add_opset_import()->set_version(opset);
    auto* bn = m.mutable_graph()->add_node();
    bn->set_op_type("BatchNormalization");
    bn->set_name("bn");
    for (const char* i : {"x", "s", "b", "m", "v"}) bn->add_input(i);
    for (const char* o : {"y", "rm", "rv", "sm", "sv"}) bn->add_output(o);
    auto* inference = m.mutable_graph()->add_node();
    inference->set_op_type("BatchNormalization");
    inference->set_name("bn_inference");
    for (const char* i : {"y", "s", "b", "m", "v"}) inference->add_input(i);
    inference->add_output("z");
    if (read_saved) {
      auto* relu = m.mutable_graph()->add_node();
      relu->set_op_type("Relu");
      relu->add_input("sm");
      relu->add_output("r");
    }
    return m;
  };
  onnx::ModelProto m = model(13, false);
  training::GraphEditor editor(&m);
  ASSERT_TRUE(editor.RaiseOpset(16).ok());
  EXPECT_EQ(editor.opset(), 16);
  EXPECT_EQ(m.opset_import(0).version(), 16);
  EXPECT_EQ(m.ir_version(), 8);
  EXPECT_EQ(m.graph().node(0).output_size(), 3);
  EXPECT_EQ(training::GetAttrInt(m.graph().node(0), "training_mode", 0), 1);
  EXPECT_EQ(training::GetAttrInt(m.graph().node(1), "training_mode", 0), 0);
  EXPECT_EQ(m.graph().node(1).output_size(), 1);
  EXPECT_TRUE(editor.RaiseOpset(14).ok());  // already newer: no change
  EXPECT_EQ(editor.opset(), 16);

  onnx::ModelProto read = model(13, true);
  training::GraphEditor reader(&read);
  const absl::Status refused = reader.RaiseOpset(16);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("'sm'"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("node 'bn'"), std::string::npos) << refused;

  onnx::ModelProto old = model(12, false);
  training::GraphEditor old_editor(&old);
  const absl::Status too_old = old_editor.RaiseOpset(16);
  EXPECT_EQ(too_old.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(too_old.message().find("opset 12"), std::string::npos) << too_old;
  EXPECT_EQ(old.opset_import(0).version(), 12);
}

// PyTorch's expand(n, -1, -1) writes ConstantOfShape(Shape(Concat(...))):
// the shape vector's length is static, so ConstantOfShape folds to its
// value (executors without ConstantOfShape then run the graph).
TEST(FoldShapesPassTest, FoldsConstantOfShapeOfAStaticLength) {
  PassTester t;
  t.Input("x", {-1, 4})
      .Initializer("i0", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{0}))
      .Initializer("zero", Tensor::FromValues<int64_t>({1}, std::vector<int64_t>{0}))
      .Initializer("four", Tensor::FromValues<int64_t>({1}, std::vector<int64_t>{4}))
      .Node("Shape", {"x"}, {"xs"})
      .Node("Gather", {"xs", "i0"}, {"n"}, {AttrInt("axis", 0)})
      .Node("Unsqueeze", {"n", "zero"}, {"n1"})
      .Node("Concat", {"n1", "four"}, {"target"}, {AttrInt("axis", 0)})
      .Node("Shape", {"target"}, {"length"})
      .Node("ConstantOfShape", {"length"}, {"ones"},
            {AttrTensor("value", TensorToProto(Tensor::FromValues<int64_t>(
                                                   {1}, std::vector<int64_t>{1}), "v"))})
      .Node("Expand", {"x", "ones"}, {"e"})
      .Output("e", {-1, 4})
      .Output("target", {2}, onnx::TensorProto::INT64);
  // Loaded as the library loads models: checked, shapes inferred.
  auto loaded = Model::FromBytes(t.proto().SerializeAsString(), "fold_shapes");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  onnx::ModelProto m = ModelAccess::Proto(*loaded);
  passes::FoldShapesPass pass;
  auto changed = pass.Run(&m);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  training::GraphEditor editor(&m);
  for (const auto& n : m.graph().node()) EXPECT_NE(n.op_type(), "ConstantOfShape");
  EXPECT_EQ(editor.ConstantInts("ones"), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(editor.FindConstant("length"), nullptr);  // folded, then read by nothing
  EXPECT_EQ(editor.ConstantInts("target"), std::nullopt);  // holds the batch
}

}  // namespace
}  // namespace qat

namespace qat {
namespace {

// A BatchNormalization with seeded statistics (variance in [0.5, 2)) over
// `channels`, reading `x` and writing `y`.
void AddBatchNorm(PassTester& t, const std::string& x, const std::string& y, int64_t channels,
                  std::vector<onnx::AttributeProto> attrs = {}) {
  t.Weight(y + "_scale", {channels}, 0.5f, 1.5f)
      .Weight(y + "_bias", {channels})
      .Weight(y + "_mean", {channels})
      .Weight(y + "_var", {channels}, 0.5f, 2.0f)
      .Node("BatchNormalization", {x, y + "_scale", y + "_bias", y + "_mean", y + "_var"}, {y},
            std::move(attrs));
}

// Issue 15's PTQ folding: Conv (with and without bias), grouped
// ConvTranspose and Gemm (transB, beta, a [M] bias) absorb the inference
// BatchNormalization after them; the model computes the same to float
// rounding.
TEST(FoldBatchNormPassTest, FoldsIntoConvConvTransposeAndGemm) {
  PassTester t;
  t.Input("x", {2, 4, 5, 5})
      .Weight("w1", {6, 4, 3, 3})
      .Weight("b1", {6})
      .Node("Conv", {"x", "w1", "b1"}, {"c1"}, {AttrInts("pads", {1, 1, 1, 1})});
  AddBatchNorm(t, "c1", "n1", 6, {training::AttrFloat("epsilon", 1e-3f)});
  t.Weight("w2", {6, 2, 2, 2})  // ConvTranspose W [C, M/g, k, k], 2 groups: M = 4
      .Node("ConvTranspose", {"n1", "w2"}, {"c2"},
            {AttrInt("group", 2), AttrInts("strides", {2, 2})});
  AddBatchNorm(t, "c2", "n2", 4);
  t.Node("GlobalAveragePool", {"n2"}, {"p"})
      .Node("Flatten", {"p"}, {"f"})
      .Weight("w3", {3, 4})
      .Weight("b3", {3})
      .Node("Gemm", {"f", "w3", "b3"}, {"g"},
            {AttrInt("transB", 1), training::AttrFloat("beta", 0.5f)});
  AddBatchNorm(t, "g", "y", 3);
  t.Output("y", {2, 3});
  passes::FoldBatchNormPass pass;
  t.Apply(pass)
      .ExpectChanged(true)
      .ExpectOutputsNear(1e-5, 1e-5)
      .ExpectOpCount("BatchNormalization", 0)
      .ExpectOpCount("Conv", 1)
      .ExpectOpCount("ConvTranspose", 1)
      .ExpectOpCount("Gemm", 1);
}

// Left alone: training mode, a pre-BN tensor that something else reads, and
// a BatchNormalization after an op it cannot fold into.
TEST(FoldBatchNormPassTest, LeavesWhatItCannotFold) {
  PassTester t;
  t.Input("x", {2, 3, 4, 4})
      .Weight("w", {3, 3, 1, 1})
      .Node("Conv", {"x", "w"}, {"c"});
  AddBatchNorm(t, "c", "n", 3);
  t.Node("Relu", {"c"}, {"also"});  // c has a second reader
  AddBatchNorm(t, "also", "m", 3);  // after a Relu
  t.Output("n", {2, 3, 4, 4}).Output("m", {2, 3, 4, 4});
  passes::FoldBatchNormPass pass;
  t.Apply(pass).ExpectChanged(false).ExpectOpCount("BatchNormalization", 2);

  PassTester training(/*opset=*/15);
  training.Input("x", {2, 3, 4, 4}).Weight("w", {3, 3, 1, 1}).Node("Conv", {"x", "w"}, {"c"});
  training.Weight("s", {3}, 0.5f, 1.5f).Weight("b", {3}).Weight("m", {3}).Weight("v", {3}, 0.5f, 2)
      .Node("BatchNormalization", {"c", "s", "b", "m", "v"}, {"y", "running_mean", "running_var"},
            {AttrInt("training_mode", 1)});
  training.Output("y", {2, 3, 4, 4});
  training.Apply(pass).ExpectChanged(false).ExpectOpCount("BatchNormalization", 1);

  // Opset 13 has no training_mode: the named running statistics are what
  // make torch's training-mode exports normalize with the batch's own.
  PassTester opset13(/*opset=*/13);
  opset13.Input("x", {2, 3, 4, 4}).Weight("w", {3, 3, 1, 1}).Node("Conv", {"x", "w"}, {"c"});
  opset13.Weight("s", {3}, 0.5f, 1.5f).Weight("b", {3}).Weight("m", {3}).Weight("v", {3}, 0.5f, 2)
      .Node("BatchNormalization", {"c", "s", "b", "m", "v"},
            {"y", "running_mean", "running_var", "saved_mean", "saved_var"});
  opset13.Output("y", {2, 3, 4, 4});
  opset13.Apply(pass).ExpectChanged(false).ExpectOpCount("BatchNormalization", 1);
}

}  // namespace
}  // namespace qat
