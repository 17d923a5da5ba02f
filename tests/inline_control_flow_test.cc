// InlineControlFlowPass: an If with a constant condition becomes its taken
// branch (same outputs on the executor, a training graph whose gradients
// match finite differences, branch names that cannot collide with the
// outer graph's); a computed condition is left alone; a Loop with a
// constant trip count unrolls to the executor's Loop results, bit for bit.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gradient_check.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "graph/graph_editor.h"
#include "graph/pass_pipeline.h"
#include "passes/inline_control_flow.h"
#include "pass_tester.h"
#include "qat/calibrate.h"
#include "qat/dataset.h"
#include "qat/quantize.h"
#include "qat/training_graph.h"

namespace qat {
namespace {

using training::AttrInt;
constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kBool = onnx::TensorProto::BOOL;
constexpr int kInt64 = onnx::TensorProto::INT64;

onnx::NodeProto MakeNode(const std::string& op, std::vector<std::string> inputs,
                         std::vector<std::string> outputs,
                         std::vector<onnx::AttributeProto> attrs = {}) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(op + "_" + outputs[0]);
  for (auto& i : inputs) n.add_input(i);
  for (auto& o : outputs) n.add_output(o);
  for (auto& a : attrs) *n.add_attribute() = a;
  return n;
}

struct Decl {
  std::string name;
  int type;
  std::vector<int64_t> dims;
};

onnx::AttributeProto GraphAttr(const std::string& attr, const std::vector<onnx::NodeProto>& nodes,
                               const std::vector<Decl>& inputs, const std::vector<Decl>& outputs) {
  onnx::AttributeProto a;
  a.set_name(attr);
  a.set_type(onnx::AttributeProto::GRAPH);
  onnx::GraphProto* g = a.mutable_g();
  g->set_name(attr);
  for (const auto& n : nodes) *g->add_node() = n;
  for (const auto& d : inputs) GraphBuilder::Declare(g->add_input(), d.name, d.type, d.dims);
  for (const auto& d : outputs) GraphBuilder::Declare(g->add_output(), d.name, d.type, d.dims);
  return a;
}

Tensor Bool(bool v) {
  Tensor t(DataType::kBool, {});
  t.data<bool>()[0] = v;
  return t;
}

// x ─> Mul(x, s) = t ─> If(cond) ─> y, u ─> Relu(y) = late
//   then: Gemm(t, W, B) = late (the outer graph's name after the If), y = Tanh(late); u = t
//   else: Gemm(t, W2) = y2; u = t
void BuildIfModel(PassTester* t, const std::string& cond) {
  t->Input("x", {2, 4})
      .Weight("s", {4})
      .Weight("W", {4, 3})
      .Weight("B", {3})
      .Weight("W2", {4, 3})
      .Node("Mul", {"x", "s"}, {"t"});
  auto then_branch = GraphAttr(
      "then_branch",
      {MakeNode("Gemm", {"t", "W", "B"}, {"late"}), MakeNode("Tanh", {"late"}, {"y_then"})},
      {}, {{"y_then", kFloat, {2, 3}}, {"t", kFloat, {2, 4}}});
  auto else_branch = GraphAttr("else_branch", {MakeNode("Gemm", {"t", "W2"}, {"y_else"})}, {},
                               {{"y_else", kFloat, {2, 3}}, {"t", kFloat, {2, 4}}});
  t->Node("If", {cond}, {"y", "u"}, {then_branch, else_branch})
      .Node("Relu", {"y"}, {"late"})
      .Output("y", {2, 3})
      .Output("u", {2, 4})
      .Output("late", {2, 3});
}

TEST(InlineControlFlowTest, AConstantIfBecomesItsBranchWithFreshNames) {
  for (bool taken : {true, false}) {
    PassTester t;
    t.Initializer("cond", Bool(taken));
    BuildIfModel(&t, "cond");
    passes::InlineControlFlowPass pass;
    t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0.0, 0.0).ExpectOpCount("If", 0)
        .ExpectOpCount("Gemm", 1)
        .ExpectOpCount("Identity", 1);  // u = t, an outer value
    EXPECT_TRUE(pass.warnings().empty());
    if (taken) {
      // The branch's "late" was renamed: one node writes "late", the Relu.
      int writers = 0;
      for (const auto& n : t.after().graph().node()) {
        for (const auto& o : n.output()) writers += o == "late";
      }
      EXPECT_EQ(writers, 1);
    }
  }
}

TEST(InlineControlFlowTest, AConstantNodeConditionAndANestedIfThatReadsTheBranch) {
  PassTester t;
  t.Node("Constant", {}, {"cond"}, {training::AttrTensor("value", TensorToProto(Bool(true), "cond"))});
  t.Input("x", {2, 4}).Weight("W", {4, 3}).Weight("zero", {});
  // then: h = MatMul(x, W); inner If(ReduceSum(h) > zero) reads h in both branches.
  auto inner_then = GraphAttr("then_branch", {MakeNode("Relu", {"h"}, {"r"})}, {},
                              {{"r", kFloat, {2, 3}}});
  auto inner_else = GraphAttr("else_branch", {MakeNode("Neg", {"h"}, {"n"})}, {},
                              {{"n", kFloat, {2, 3}}});
  auto then_branch = GraphAttr(
      "then_branch",
      {MakeNode("MatMul", {"x", "W"}, {"h"}), MakeNode("ReduceSum", {"h"}, {"hs"}, {AttrInt("keepdims", 0)}),
       MakeNode("Greater", {"hs", "zero"}, {"positive"}),
       MakeNode("If", {"positive"}, {"z"}, {inner_then, inner_else})},
      {}, {{"z", kFloat, {2, 3}}});
  auto else_branch = GraphAttr("else_branch", {MakeNode("Identity", {"x"}, {"e"})}, {},
                               {{"e", kFloat, {2, 4}}});
  t.Node("If", {"cond"}, {"y"}, {then_branch, else_branch}).Output("y", {2, 3});
  passes::InlineControlFlowPass pass;
  // The inner If's condition is computed: it stays, its reads renamed.
  t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0.0, 0.0).ExpectOpCount("If", 1);
}

TEST(InlineControlFlowTest, AComputedConditionIsLeftAlone) {
  PassTester t;
  t.Weight("zero", {});
  t.Node("ReduceSum", {"x"}, {"xs"}, {AttrInt("keepdims", 0)})
      .Node("Greater", {"xs", "zero"}, {"cond"});
  BuildIfModel(&t, "cond");
  passes::InlineControlFlowPass pass;
  t.Apply(pass).ExpectChanged(false).ExpectOpCount("If", 1);
  EXPECT_TRUE(pass.warnings().empty());
}

// Training options for BuildIfModel's graphs: an MSE loss on y.
TrainingGraphOptions MseOnY() {
  TrainingGraphOptions options;
  options.loss.kind = LossKind::kMse;
  options.loss.output = "y";
  return options;
}

TEST(InlineControlFlowTest, AnInlinedIfTrainsAndItsGradientsMatchFiniteDifferences) {
  PassTester t;
  t.Initializer("cond", Bool(true));
  BuildIfModel(&t, "cond");
  auto model = ModelAccess::FromProto(t.proto(), "if.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  TrainingGraphOptions options = MseOnY();
  auto m = BuildTrainingModels(*model, options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NE(std::find(m->params.begin(), m->params.end(), "W"), m->params.end());
  std::map<std::string, Tensor> feeds{{"x", testing::RandomTensor({2, 4}, 3, -1.0f, 1.0f)}};
  for (const ValueInfo& v : m->training.inputs()) {
    if (v.name != "x" && std::find(m->params.begin(), m->params.end(), v.name) == m->params.end()) {
      feeds[v.name] = testing::RandomTensor({2, 3}, 4, -1.0f, 1.0f);  // the labels
    }
  }
  testing::GradientCheck check(m->training, m->params, feeds);
  check.ExpectMatchesFiniteDifferences();
}

TEST(InlineControlFlowTest, TheBranchesOfAComputedConditionDoNotTrain) {
  PassTester t;
  t.Weight("zero", {});
  t.Node("ReduceSum", {"x"}, {"xs"}, {AttrInt("keepdims", 0)})
      .Node("Greater", {"xs", "zero"}, {"cond"});
  BuildIfModel(&t, "cond");
  auto model = ModelAccess::FromProto(t.proto(), "if.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  TrainingGraphOptions options = MseOnY();
  // The weights the branches read are not seen through the If ...
  auto m = BuildTrainingModels(*model, options);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("no trainable parameters"), std::string::npos)
      << m.status();
  // ... and named, the loss still does not reach them.
  options.trainable = {"W"};
  m = BuildTrainingModels(*model, options);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("does not depend on any trainable parameter"),
            std::string::npos)
      << m.status();
}

TEST(InlineControlFlowTest, AnUnrolledLoopMatchesTheExecutorsLoopBitForBit) {
  for (int opset : {11, 13}) {
    PassTester t(opset);
    t.Input("x", {2, 3})
        .Weight("acc0", {2, 3})
        .Initializer("M", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{3}));
    auto body = GraphAttr(
        "body",
        {MakeNode("Add", {"acc", "x"}, {"acc_out"}),
         MakeNode("Cast", {"i"}, {"i_f"}, {AttrInt("to", kFloat)}),
         MakeNode("Mul", {"acc_out", "i_f"}, {"row"}),
         MakeNode("Identity", {"c_in"}, {"c_out"})},
        {{"i", kInt64, {}}, {"c_in", kBool, {}}, {"acc", kFloat, {2, 3}}},
        {{"c_out", kBool, {}}, {"acc_out", kFloat, {2, 3}}, {"row", kFloat, {2, 3}}});
    t.Node("Loop", {"M", "", "acc0"}, {"acc_final", "rows"}, {body})
        .Output("acc_final", {2, 3})
        .Output("rows", {3, 2, 3});
    passes::InlineControlFlowPass pass;
    t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0.0, 0.0).ExpectOpCount("Loop", 0)
        .ExpectOpCount("Add", 3).ExpectOpCount("Unsqueeze", 3).ExpectOpCount("Concat", 1);
  }
}

TEST(InlineControlFlowTest, ALoopThatComputesItsConditionStaysWithAWarning) {
  PassTester t;
  t.Input("x", {2, 3}).Weight("acc0", {2, 3}).Weight("limit", {})
      .Initializer("M", Tensor::FromValues<int64_t>({}, std::vector<int64_t>{3}))
      .Initializer("go", Bool(true));
  auto body = GraphAttr(
      "body",
      {MakeNode("Add", {"acc", "x"}, {"acc_out"}),
       MakeNode("ReduceSum", {"acc_out"}, {"total"}, {AttrInt("keepdims", 0)}),
       MakeNode("Less", {"total", "limit"}, {"c_out"})},
      {{"i", kInt64, {}}, {"c_in", kBool, {}}, {"acc", kFloat, {2, 3}}},
      {{"c_out", kBool, {}}, {"acc_out", kFloat, {2, 3}}});
  t.Node("Loop", {"M", "go", "acc0"}, {"acc_final"}, {body}).Output("acc_final", {2, 3});
  passes::InlineControlFlowPass pass;
  t.Apply(pass).ExpectChanged(false).ExpectOpCount("Loop", 1);
  ASSERT_EQ(pass.warnings().size(), 1u);
  EXPECT_NE(pass.warnings()[0].find("computes its condition"), std::string::npos);
}

TEST(InlineControlFlowTest, ThePassHasAnOffSwitch) {
  PassTester t;
  t.Initializer("cond", Bool(true));
  BuildIfModel(&t, "cond");
  passes::PassPipelineOptions options;
  options.disabled = {"inline_control_flow"};
  passes::PassPipeline pipeline(options);
  pipeline.Add(std::make_unique<passes::InlineControlFlowPass>());
  t.Apply(pipeline).ExpectChanged(false).ExpectOpCount("If", 1);
}

// Calibration and quantize inline the same If the same way: the Gemm of the
// taken branch, on a value local to the branch, gets its Q/DQ pairs.
TEST(InlineControlFlowTest, QuantizeQuantizesTheOpsOfAConstantBranch) {
  PassTester t;
  t.Initializer("cond", Bool(true));
  t.Input("x", {-1, 4}).Weight("W", {4, 3}).Weight("B", {3});
  auto then_branch = GraphAttr(
      "then_branch", {MakeNode("Relu", {"x"}, {"r"}), MakeNode("Gemm", {"r", "W", "B"}, {"y_then"})},
      {}, {{"y_then", kFloat, {-1, 3}}});
  auto else_branch = GraphAttr("else_branch", {MakeNode("MatMul", {"x", "W"}, {"y_else"})}, {},
                               {{"y_else", kFloat, {-1, 3}}});
  t.Node("If", {"cond"}, {"y"}, {then_branch, else_branch}).Output("y", {-1, 3});
  auto model = ModelAccess::FromProto(t.proto(), "if.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  auto data = Dataset::Create(testing::RandomTensor({16, 4}, 7, -1.0f, 1.0f),
                              Tensor(DataType::kInt64, {16}));
  ASSERT_TRUE(data.ok()) << data.status();
  auto table = Calibrate(*model, *data, {});
  ASSERT_TRUE(table.ok()) << table.status();
  auto q = QuantizeModel(*model, *table, {});
  ASSERT_TRUE(q.ok()) << q.status();
  const onnx::ModelProto& proto = ModelAccess::Proto(*q);
  int ifs = 0, quantize = 0;
  for (const auto& n : proto.graph().node()) {
    ifs += n.op_type() == "If";
    quantize += n.op_type() == "QuantizeLinear";
  }
  EXPECT_EQ(ifs, 0);
  EXPECT_GE(quantize, 1);
  // With the pass off, the If stays as it was (and nothing in it is quantized).
  QuantizeOptions off;
  off.disabled_passes = {"inline_control_flow"};
  CalibrationTable empty;
  auto kept = QuantizeModel(*model, empty, off);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ifs = 0;
  for (const auto& n : ModelAccess::Proto(*kept).graph().node()) ifs += n.op_type() == "If";
  EXPECT_EQ(ifs, 1);
}

}  // namespace
}  // namespace qat
