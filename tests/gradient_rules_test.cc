// Every gradient rule against central finite differences.
//
// Each case builds a one-node graph whose float inputs are parameters,
// appends loss = sum(y * R) with a fixed random R (so that dL/dy = R is not
// uniform), builds the backward graph, runs it on the executor and compares
// every gradient entry with finite differences (gradient_check.h explains
// the tolerances).  Inputs are drawn away from kinks.
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gradient_check.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "qat/fake_quant.h"
#include "passes/gradient_builder.h"
#include "graph/graph_editor.h"

namespace qat {
namespace testing {
namespace {

using training::AttrFloat;
using training::AttrInt;
using training::AttrInts;
using training::AttrString;

struct OpCase {
  std::string op;
  std::string domain;
  // Node inputs in order: a parameter, a constant, or absent ("").
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::vector<std::string> params;  // which inputs are trainable
  std::vector<onnx::AttributeProto> attrs;
  int num_outputs = 1;
  int64_t opset = 13;
};

// The upstream gradient dL/dy = R of every case: fixed random values.
Tensor Upstream(std::vector<int64_t> shape) { return RandomTensor(std::move(shape), 99); }

onnx::ModelProto BaseModel(const OpCase& c) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.mutable_graph()->set_name("op");
  auto* op = m.add_opset_import();
  op->set_version(c.opset);
  if (!c.domain.empty()) {
    auto* d = m.add_opset_import();
    d->set_domain(c.domain);
    d->set_version(1);
  }
  onnx::GraphProto* g = m.mutable_graph();
  onnx::NodeProto* node = g->add_node();
  node->set_op_type(c.op);
  node->set_domain(c.domain);
  node->set_name("node");
  for (const auto& [name, value] : c.inputs) {
    node->add_input(name);
    if (name.empty()) continue;
    g->add_initializer()->ParseFromString(*SerializeTensorProto(value, name));
  }
  for (int i = 0; i < c.num_outputs; ++i) {
    node->add_output(i == 0 ? "y" : "y" + std::to_string(i));
  }
  for (const auto& a : c.attrs) *node->add_attribute() = a;
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(
      onnx::TensorProto::FLOAT);
  return m;
}

// Builds the op's training graph: loss = sum(y * R), gradients of params.
absl::StatusOr<Model> TrainingModel(const OpCase& c) {
  onnx::ModelProto m = BaseModel(c);
  // y's shape is unknown until inference, which the checker would insist on:
  // check only after the loss is attached.
  ModelLoadOptions infer_only;
  infer_only.check = false;
  auto forward = Model::FromBytes(m.SerializeAsString(), c.op, infer_only);
  if (!forward.ok()) return forward.status();
  ValueInfo y = forward->outputs()[0];
  if (!y.has_shape) {
    // ONNX cannot infer custom ops (FakeQuant); those under test keep the
    // shape of their first input.
    y.shape = c.inputs[0].second.shape();
  }
  for (int64_t d : y.shape) {
    if (d < 0) return absl::InternalError("y's shape is not static");
  }
  onnx::ModelProto with_loss = ModelAccess::Proto(*forward);
  onnx::GraphProto* g = with_loss.mutable_graph();
  g->add_initializer()->ParseFromString(
      *SerializeTensorProto(Upstream(y.shape), "R"));
  auto* mul = g->add_node();
  mul->set_op_type("Mul");
  mul->add_input("y");
  mul->add_input("R");
  mul->add_output("yr");
  auto* sum = g->add_node();
  sum->set_op_type("ReduceSum");
  sum->add_input("yr");
  sum->add_output("loss");
  *sum->add_attribute() = AttrInt("keepdims", 0);
  g->clear_output();
  auto* out = g->add_output();
  out->set_name("loss");
  auto* t = out->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape();
  auto reloaded = Model::FromBytes(with_loss.SerializeAsString(), c.op);
  if (!reloaded.ok()) return reloaded.status();
  onnx::ModelProto proto = ModelAccess::Proto(*reloaded);
  auto changed = training::BuildGradientsPass("loss", c.params).Run(&proto);
  if (!changed.ok()) return changed.status();
  // The backward graph uses standard ops only, but for the LSQ gradient of
  // learnable quantization parameters, which has its own documented op.
  for (int i = 2 + 1; i < proto.graph().node_size(); ++i) {
    const auto& n = proto.graph().node(i);
    const bool lsq = n.domain() == "ai.libqat" && n.op_type() == "FakeQuantLsqGrad";
    if (!(n.domain().empty() || n.domain() == "ai.onnx" || lsq)) {
      return absl::InternalError("backward node " + n.op_type() +
                                 " is not a standard ONNX op");
    }
  }
  return Model::FromBytes(proto.SerializeAsString(), c.op + " (training)");
}

// Builds the case's training graph and runs it once: loss and gradients.
// `values` (optional) receives the parameters' values.
std::map<std::string, Tensor> RunOnce(const OpCase& c,
                                      std::map<std::string, Tensor>* values = nullptr) {
  auto model = TrainingModel(c);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  GradientCheck check(*model, c.params, {});
  auto out = check.Run();
  EXPECT_TRUE(out.ok()) << out.status();
  if (values != nullptr) *values = check.values();
  return out.ok() ? *out : std::map<std::string, Tensor>{};
}

void Check(const OpCase& c, const GradientCheckOptions& options = {}) {
  SCOPED_TRACE(c.op);
  auto model = TrainingModel(c);
  ASSERT_TRUE(model.ok()) << model.status();
  GradientCheck check(*model, c.params, {});
  check.ExpectMatchesFiniteDifferences(options);
}

Tensor R(std::vector<int64_t> shape, uint32_t seed) {
  return RandomTensor(std::move(shape), seed, -1.0f, 1.0f, 0.05f);
}
Tensor Positive(std::vector<int64_t> shape, uint32_t seed) {
  return RandomTensor(std::move(shape), seed, 0.5f, 2.0f);
}
Tensor Int64s(std::vector<int64_t> shape, std::vector<int64_t> values) {
  return Tensor::FromValues<int64_t>(std::move(shape), absl::MakeConstSpan(values));
}

TEST(GradientRulesTest, BinaryOpsWithBroadcasting) {
  for (const char* op : {"Add", "Sub", "Mul"}) {
    Check({op, "", {{"a", R({2, 3, 4}, 1)}, {"b", R({3, 1}, 2)}}, {"a", "b"}});
    Check({op, "", {{"a", R({4}, 3)}, {"b", R({2, 4}, 4)}}, {"a", "b"}});
  }
  Check({"Div", "", {{"a", R({2, 3}, 5)}, {"b", Positive({3}, 6)}}, {"a", "b"}});
  Check({"Pow", "", {{"a", Positive({2, 3}, 7)}, {"b", R({2, 3}, 8)}}, {"a", "b"}});
}

TEST(GradientRulesTest, UnaryOps) {
  for (const char* op : {"Neg", "Abs", "Exp", "Relu", "Sigmoid", "Tanh",
                         "Identity"}) {
    Check({op, "", {{"x", R({3, 5}, 10)}}, {"x"}});
  }
  for (const char* op : {"Sqrt", "Log"}) {
    Check({op, "", {{"x", Positive({3, 5}, 11)}}, {"x"}});
  }
  Check({"LeakyRelu", "", {{"x", R({3, 5}, 12)}}, {"x"}, {AttrFloat("alpha", 0.2f)}});
}

TEST(GradientRulesTest, ClipAndWhere) {
  // Values in [-1, 1] minus a gap around the bounds -0.5 and 0.5.
  Tensor x = R({4, 6}, 13);
  for (float& v : x.values<float>()) {
    if (std::fabs(std::fabs(v) - 0.5f) < 0.05f) v *= 1.3f;
  }
  Check({"Clip", "",
         {{"x", x}, {"lo", Tensor::Scalar(-0.5f)}, {"hi", Tensor::Scalar(0.5f)}},
         {"x"}});
  Tensor cond(DataType::kBool, {2, 3});
  for (int i = 0; i < 6; ++i) cond.data<bool>()[i] = i % 2 == 0;
  Check({"Where", "", {{"c", cond}, {"a", R({2, 3}, 14)}, {"b", R({3}, 15)}},
         {"a", "b"}});
}

TEST(GradientRulesTest, Gemm) {
  for (int ta : {0, 1}) {
    for (int tb : {0, 1}) {
      SCOPED_TRACE(::testing::Message() << "transA " << ta << " transB " << tb);
      Check({"Gemm", "",
             {{"a", R(ta ? std::vector<int64_t>{4, 3} : std::vector<int64_t>{3, 4}, 20)},
              {"b", R(tb ? std::vector<int64_t>{5, 4} : std::vector<int64_t>{4, 5}, 21)},
              {"c", R({5}, 22)}},
             {"a", "b", "c"},
             {AttrInt("transA", ta), AttrInt("transB", tb),
              AttrFloat("alpha", 0.7f), AttrFloat("beta", 1.3f)}});
    }
  }
  Check({"Gemm", "", {{"a", R({3, 4}, 23)}, {"b", R({4, 2}, 24)}, {"c", R({3, 2}, 25)}},
         {"a", "b", "c"}});
}

TEST(GradientRulesTest, MatMul) {
  Check({"MatMul", "", {{"a", R({3, 4}, 30)}, {"b", R({4, 5}, 31)}}, {"a", "b"}});
  Check({"MatMul", "", {{"a", R({2, 3, 4}, 32)}, {"b", R({4, 5}, 33)}}, {"a", "b"}});
  Check({"MatMul", "", {{"a", R({2, 3, 4}, 34)}, {"b", R({2, 4, 5}, 35)}}, {"a", "b"}});
  Check({"MatMul", "", {{"a", R({1, 3, 4}, 36)}, {"b", R({2, 4, 5}, 37)}}, {"a", "b"}});
}

TEST(GradientRulesTest, Reductions) {
  Check({"ReduceSum", "", {{"x", R({2, 3, 4}, 40)}, {"axes", Int64s({1}, {1})}},
         {"x"}, {AttrInt("keepdims", 0)}});
  Check({"ReduceSum", "", {{"x", R({2, 3, 4}, 41)}}, {"x"}});
  Check({"ReduceMean", "", {{"x", R({2, 3, 4}, 42)}}, {"x"},
         {AttrInts("axes", {0, 2}), AttrInt("keepdims", 1)}});
  Check({"ReduceMean", "", {{"x", R({2, 3, 4}, 43)}}, {"x"},
         {AttrInt("keepdims", 0)}});
}

TEST(GradientRulesTest, SoftmaxFamily) {
  for (int64_t axis : {1, -1, 0}) {
    Check({"Softmax", "", {{"x", R({3, 4, 2}, 50)}}, {"x"}, {AttrInt("axis", axis)}});
    Check({"LogSoftmax", "", {{"x", R({3, 4, 2}, 51)}}, {"x"}, {AttrInt("axis", axis)}});
  }
}

TEST(GradientRulesTest, ShapeOps) {
  Check({"Reshape", "", {{"x", R({2, 3, 4}, 60)}, {"s", Int64s({2}, {4, 6})}}, {"x"}});
  Check({"Flatten", "", {{"x", R({2, 3, 4}, 61)}}, {"x"}, {AttrInt("axis", 1)}});
  Check({"Squeeze", "", {{"x", R({2, 1, 4}, 62)}, {"a", Int64s({1}, {1})}}, {"x"}});
  Check({"Unsqueeze", "", {{"x", R({2, 4}, 63)}, {"a", Int64s({1}, {0})}}, {"x"}});
  Check({"Transpose", "", {{"x", R({2, 3, 4}, 64)}}, {"x"}, {AttrInts("perm", {2, 0, 1})}});
  Check({"Transpose", "", {{"x", R({2, 3}, 65)}}, {"x"}});
  Check({"Concat", "", {{"a", R({2, 3}, 66)}, {"b", R({2, 1}, 67)}, {"c", R({2, 2}, 68)}},
         {"a", "b", "c"}, {AttrInt("axis", 1)}});
}

TEST(GradientRulesTest, Conv) {
  // 2-D: plain, padded and strided, dilated, SAME_UPPER.
  Check({"Conv", "", {{"x", R({2, 3, 7, 6}, 70)}, {"w", R({4, 3, 3, 3}, 71)}, {"b", R({4}, 72)}},
         {"x", "w", "b"}});
  Check({"Conv", "", {{"x", R({1, 2, 8, 7}, 73)}, {"w", R({3, 2, 3, 2}, 74)}},
         {"x", "w"},
         {AttrInts("pads", {1, 0, 2, 1}), AttrInts("strides", {2, 3})}});
  Check({"Conv", "", {{"x", R({1, 2, 9, 9}, 75)}, {"w", R({2, 2, 3, 3}, 76)}},
         {"x", "w"}, {AttrInts("dilations", {2, 1}), AttrInts("strides", {1, 2})}});
  Check({"Conv", "", {{"x", R({1, 1, 7, 7}, 77)}, {"w", R({2, 1, 3, 3}, 78)}},
         {"x", "w"}, {AttrString("auto_pad", "SAME_UPPER"), AttrInts("strides", {2, 2})}});
  // 1-D.
  Check({"Conv", "", {{"x", R({2, 3, 10}, 79)}, {"w", R({2, 3, 4}, 80)}, {"b", R({2}, 81)}},
         {"x", "w", "b"}, {AttrInts("pads", {1, 2}), AttrInts("strides", {2})}});
}

TEST(GradientRulesTest, Pooling) {
  // Distinct values, so that no window has a tie.
  Tensor x(DataType::kFloat32, {2, 2, 6, 6});
  std::vector<int> order(x.num_elements());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  for (size_t i = 0; i < order.size(); ++i) {
    x.data<float>()[i] = static_cast<float>(order[i]) * 0.1f;
  }
  Check({"MaxPool", "", {{"x", x}}, {"x"},
         {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})}});
  OpCase overlapping{"MaxPool", "", {{"x", x}}, {"x"},
                     {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {1, 1})}};
  overlapping.opset = 16;
  Check(overlapping);
  Check({"GlobalAveragePool", "", {{"x", R({2, 3, 4, 5}, 90)}}, {"x"}});
}

TEST(GradientRulesTest, GroupedConv) {
  // Two groups of 2 input channels, 3 outputs each, with a bias.
  Check({"Conv", "", {{"x", R({2, 4, 6, 5}, 140)}, {"w", R({6, 2, 3, 3}, 141)}, {"b", R({6}, 142)}},
         {"x", "w", "b"}, {AttrInt("group", 2)}});
  // Depthwise, padded and strided.
  Check({"Conv", "", {{"x", R({1, 3, 7, 7}, 143)}, {"w", R({3, 1, 3, 3}, 144)}},
         {"x", "w"},
         {AttrInt("group", 3), AttrInts("pads", {1, 1, 1, 1}), AttrInts("strides", {2, 2})}});
  // 1-D, dilated, two outputs per input channel.
  Check({"Conv", "", {{"x", R({2, 2, 9}, 145)}, {"w", R({4, 1, 3}, 146)}},
         {"x", "w"}, {AttrInt("group", 2), AttrInts("dilations", {2})}});
}

TEST(GradientRulesTest, AveragePool) {
  Check({"AveragePool", "", {{"x", R({2, 2, 6, 6}, 150)}}, {"x"},
         {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})}});
  // Overlapping windows over padding, which counts or not.
  for (int include : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "count_include_pad " << include);
    Check({"AveragePool", "", {{"x", R({1, 2, 5, 6}, 151)}}, {"x"},
           {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {1, 2}),
            AttrInts("pads", {1, 1, 1, 0}), AttrInt("count_include_pad", include)}});
  }
  // 1-D with SAME_UPPER padding.
  Check({"AveragePool", "", {{"x", R({2, 3, 7}, 152)}}, {"x"},
         {AttrInts("kernel_shape", {3}), AttrInts("strides", {2}),
          AttrString("auto_pad", "SAME_UPPER")}});
  // ceil_mode with a last window that stays inside the padding.
  Check({"AveragePool", "", {{"x", R({1, 1, 6, 6}, 153)}}, {"x"},
         {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {2, 2}),
          AttrInts("pads", {0, 0, 1, 1}), AttrInt("ceil_mode", 1)}});
}

TEST(GradientRulesTest, Gather) {
  // Repeated and negative indices add up: ScatterElements' "add" (opset 16).
  OpCase rows{"Gather", "", {{"x", R({5, 3}, 160)}, {"i", Int64s({2, 2}, {4, 0, -1, 2})}},
              {"x"}};
  rows.opset = 16;
  Check(rows);
  OpCase middle{"Gather", "", {{"x", R({2, 4, 3}, 161)}, {"i", Int64s({3}, {1, 3, 1})}},
                {"x"}, {AttrInt("axis", 1)}};
  middle.opset = 16;
  Check(middle);
  // Constant indices without repeats need no reduction (opset 13).
  Check({"Gather", "", {{"x", R({4, 3}, 162)}, {"i", Int64s({2}, {3, 1})}}, {"x"}});
  Check({"Gather", "", {{"x", R({4, 3}, 163)}, {"i", Int64s({}, {2})}}, {"x"},
         {AttrInt("axis", 1)}});
  // Repeats before opset 16 are refused, naming the node and the opset.
  auto old = TrainingModel({"Gather", "", {{"x", R({4, 3}, 164)}, {"i", Int64s({2}, {1, 1})}},
                            {"x"}});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(old.status().message().find("opset 16"), std::string::npos) << old.status();
}

TEST(GradientRulesTest, Slice) {
  // Two axes, a negative start, an end past the size.
  Check({"Slice", "",
         {{"x", R({3, 5, 4}, 170)}, {"s", Int64s({2}, {1, -4})}, {"e", Int64s({2}, {100, 4})},
          {"a", Int64s({2}, {0, 1})}},
         {"x"}});
  // Step 2 forward and -1 backward (a reversal), axes counted from the end.
  Check({"Slice", "",
         {{"x", R({6, 5}, 171)}, {"s", Int64s({2}, {0, 4})}, {"e", Int64s({2}, {6, -100})},
          {"a", Int64s({2}, {-2, -1})}, {"st", Int64s({2}, {2, -1})}},
         {"x"}});
  // Default axes; the second slice keeps the whole axis.
  Check({"Slice", "",
         {{"x", R({4, 3}, 172)}, {"s", Int64s({2}, {1, 0})}, {"e", Int64s({2}, {3, 3})}},
         {"x"}});
}

TEST(GradientRulesTest, BatchNormalization) {
  // Inference mode: the running statistics are constants.
  Check({"BatchNormalization", "",
         {{"x", R({2, 3, 4, 2}, 180)}, {"scale", R({3}, 181)}, {"b", R({3}, 182)},
          {"mean", R({3}, 183)}, {"var", Positive({3}, 184)}},
         {"x", "scale", "b"}, {AttrFloat("epsilon", 1e-3f)}});
  // Training mode: the batch's statistics, differentiated too.
  OpCase training{"BatchNormalization", "",
                  {{"x", R({3, 2, 5}, 185)}, {"scale", R({2}, 186)}, {"b", R({2}, 187)},
                   {"mean", R({2}, 188)}, {"var", Positive({2}, 189)}},
                  {"x", "scale", "b"}, {AttrInt("training_mode", 1)}};
  training.num_outputs = 3;  // training mode outputs the running statistics
  training.opset = 15;
  Check(training);
  OpCase rank2 = training;
  rank2.inputs[0] = {"x", R({6, 2}, 190)};
  Check(rank2);
}

TEST(GradientRulesTest, Losses) {
  const Tensor labels = Int64s({4}, {2, 0, 1, 2});
  for (const char* reduction : {"mean", "sum"}) {
    Check({"SoftmaxCrossEntropyLoss", "", {{"s", R({4, 3}, 100)}, {"l", labels}},
           {"s"}, {AttrString("reduction", reduction)}});
    Check({"SoftmaxCrossEntropyLoss", "",
           {{"s", R({4, 3}, 101)}, {"l", labels}, {"w", Positive({3}, 102)}},
           {"s"}, {AttrString("reduction", reduction)}});
  }
  Check({"SoftmaxCrossEntropyLoss", "", {{"s", R({4, 3}, 103)}, {"l", labels}},
         {"s"}, {AttrInt("ignore_index", 0)}});
  Check({"SoftmaxCrossEntropyLoss", "", {{"s", R({4, 3}, 104)}, {"l", labels}},
         {"s"}, {AttrString("reduction", "none")}});
  Check({"SoftmaxCrossEntropyLoss", "",
         {{"s", R({2, 3, 4}, 105)}, {"l", Int64s({2, 4}, {0, 1, 2, 1, 2, 2, 0, 1})}},
         {"s"}});
  Check({"NegativeLogLikelihoodLoss", "",
         {{"s", R({4, 3}, 106)}, {"l", labels}, {"w", Positive({3}, 107)}},
         {"s"}, {AttrInt("ignore_index", 1)}});
}

TEST(GradientRulesTest, FakeQuantUsesTheStraightThroughEstimator) {
  // Finite differences of a rounding function are 0 almost everywhere, so
  // this checks the estimator's definition: dx = dy where the mask is true.
  OpCase c{"FakeQuant", "com.microsoft",
           {{"x", RandomTensor({2, 8}, 110, -3.0f, 3.0f)},
            {"s", Tensor::Scalar(0.05f)},
            {"z", Tensor::Scalar(0.0f)}},
           {"x"},
           {AttrInt("quant_min", -16), AttrInt("quant_max", 15)},
           2};
  std::map<std::string, Tensor> values;
  const auto out = RunOnce(c, &values);
  ASSERT_EQ(out.count("x_grad"), 1u);
  const Tensor& dx = out.at("x_grad");
  const Tensor r = Upstream({2, 8});
  const Tensor& x = values.at("x");
  int inside = 0;
  for (int i = 0; i < 16; ++i) {
    const float q = std::nearbyint(x.values<float>()[i] / 0.05f);
    const bool in = q >= -16 && q <= 15;
    inside += in;
    EXPECT_EQ(dx.values<float>()[i], in ? r.values<float>()[i] : 0.0f) << i;
  }
  EXPECT_GT(inside, 0);
  EXPECT_LT(inside, 16);
}

TEST(GradientRulesTest, LearnableFakeQuantMatchesTheLsqKernel) {
  // With scale and zero point trainable, the rule emits one
  // FakeQuantLsqGrad node; its outputs must equal the LSQ kernel's for
  // dY = R and g = 1 / sqrt(N * qmax), N = the elements of the weight x.
  const Tensor x = RandomTensor({4, 8}, 130, -2.0f, 2.0f);
  OpCase c{"FakeQuant", "com.microsoft",
           {{"x", x}, {"s", Tensor::Scalar(0.05f)}, {"z", Tensor::Scalar(3.0f)}},
           {"s", "z"},
           {AttrInt("quant_min", -16), AttrInt("quant_max", 15)},
           2};
  const auto out = RunOnce(c);
  ASSERT_EQ(out.count("s_grad") + out.count("z_grad"), 2u);
  const Tensor r = Upstream({4, 8});
  auto want = FakeQuantLsqGradPerTensor(
      x.values<float>(), r.values<float>(), {},
      FakeQuantParams{0.05f, 3.0f, QuantRange{-16, 15}},
      static_cast<float>(1.0 / std::sqrt(32.0 * 15)));
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_FLOAT_EQ(out.at("s_grad").values<float>()[0], want->scale);
  EXPECT_FLOAT_EQ(out.at("z_grad").values<float>()[0], want->zero_point);
  EXPECT_NE(want->scale, 0.0f);
  EXPECT_NE(want->zero_point, 0.0f);
}

TEST(GradientRulesTest, OpWithoutRuleIsNamed) {
  OpCase c{"ReduceMax", "", {{"x", R({2, 3}, 120)}}, {"x"}};
  auto model = TrainingModel(c);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(model.status().message().find("ReduceMax"), std::string::npos)
      << model.status();
  EXPECT_NE(model.status().message().find("build_gradients"), std::string::npos);
}

}  // namespace
}  // namespace testing
}  // namespace qat
