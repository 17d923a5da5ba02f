// The opset upgrade (passes/opset_upgrade.h) on models in the shapes
// paddle2onnx writes at opsets 9-11: the executor gives the same outputs
// before (old semantics) and after (opset 13); then the same kind of model
// through the quantize and prepare stages, which upgrade it themselves.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "graph/graph_editor.h"
#include "graph/graph_index.h"
#include "gtest/gtest.h"
#include "pass_tester.h"
#include "passes/opset21_downgrade.h"
#include "passes/opset_upgrade.h"
#include "passes/promote_constants.h"
#include "qat/calibrate.h"
#include "qat/executor.h"
#include "qat/prepare.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "qat/trainer.h"
#include "synthetic_data.h"

namespace qat {
namespace {

using ::testing::HasSubstr;
using training::AttrFloat;
using training::AttrInt;
using training::AttrInts;
using training::AttrString;

onnx::AttributeProto AttrFloats(const std::string& name, const std::vector<float>& values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOATS);
  for (float v : values) a.add_floats(v);
  return a;
}

absl::StatusOr<bool> Upgrade(onnx::ModelProto* m) {
  passes::OpsetUpgradePass pass;
  return pass.Run(m);
}

int64_t OpsetOf(const onnx::ModelProto& m) { return passes::DefaultOpset(m); }

const onnx::NodeProto* FindOp(const onnx::ModelProto& m, const std::string& op) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == op) return &n;
  }
  return nullptr;
}

bool HasAttr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return true;
  }
  return false;
}

// The executor runs the op at both opsets (the pass tester compares).
struct Case {
  const char* name;
  int64_t opset;
  std::function<void(PassTester&)> build;
  const char* op;    // the op whose attributes became inputs (or null)
  int inputs_after;  // its input count after the upgrade
};

class OpsetUpgradeTest : public ::testing::TestWithParam<int> {};

std::vector<Case> Cases() {
  return {
      {"softmax_2d_axis1_opset9", 9,
       [](PassTester& t) {
         t.Input("x", {3, 6}, kFloat, -4, 4).Node("Softmax", {"x"}, {"y"}, {AttrInt("axis", 1)})
             .Output("y", {3, 6});
       },
       "Softmax", 1},
      {"softmax_3d_axis1_opset11", 11,
       [](PassTester& t) {
         t.Input("x", {2, 3, 4}, kFloat, -4, 4)
             .Node("Softmax", {"x"}, {"y"}, {AttrInt("axis", 1)})
             .Output("y", {2, 3, 4});
       },
       "Softmax", 1},
      {"logsoftmax_4d_default_axis_opset10", 10,
       [](PassTester& t) {
         t.Input("x", {2, 3, 2, 2}, kFloat, -4, 4).Node("LogSoftmax", {"x"}, {"y"})
             .Output("y", {2, 3, 2, 2});
       },
       "LogSoftmax", 1},
      {"clip_attrs_opset9", 9,
       [](PassTester& t) {
         t.Input("x", {2, 8}, kFloat, -10, 10)
             .Node("Clip", {"x"}, {"y"}, {AttrFloat("min", 0.0f), AttrFloat("max", 6.0f)})
             .Output("y", {2, 8});
       },
       "Clip", 3},
      {"clip_max_only_opset10", 10,
       [](PassTester& t) {
         t.Input("x", {2, 8}, kFloat, -10, 10)
             .Node("Clip", {"x"}, {"y"}, {AttrFloat("max", 1.0f)})
             .Output("y", {2, 8});
       },
       "Clip", 3},
      {"squeeze_attr_opset11", 11,
       [](PassTester& t) {
         t.Input("x", {2, 1, 3, 1}).Node("Squeeze", {"x"}, {"y"}, {AttrInts("axes", {1, -1})})
             .Output("y", {2, 3});
       },
       "Squeeze", 2},
      {"unsqueeze_attr_opset9", 9,
       [](PassTester& t) {
         t.Input("x", {2, 3}).Node("Unsqueeze", {"x"}, {"y"}, {AttrInts("axes", {0, 3})})
             .Output("y", {1, 2, 3, 1});
       },
       "Unsqueeze", 2},
      {"split_attr_opset11", 11,
       [](PassTester& t) {
         t.Input("x", {2, 6})
             .Node("Split", {"x"}, {"a", "b"}, {AttrInt("axis", 1), AttrInts("split", {2, 4})})
             .Output("a", {2, 2}).Output("b", {2, 4});
       },
       "Split", 2},
      {"reduce_sum_attr_opset11", 11,
       [](PassTester& t) {
         t.Input("x", {2, 3, 4})
             .Node("ReduceSum", {"x"}, {"y"}, {AttrInts("axes", {1}), AttrInt("keepdims", 0)})
             .Output("y", {2, 4});
       },
       "ReduceSum", 2},
      {"slice_attrs_opset9", 9,
       [](PassTester& t) {
         t.Input("x", {4, 6})
             .Node("Slice", {"x"}, {"y"},
                   {AttrInts("starts", {1, 0}), AttrInts("ends", {3, 100}), AttrInts("axes", {0, 1})})
             .Output("y", {2, 6});
       },
       "Slice", 4},
      {"dropout_ratio_opset9", 9,
       [](PassTester& t) {
         t.Input("x", {2, 5}).Node("Dropout", {"x"}, {"y"}, {AttrFloat("ratio", 0.3f)})
             .Output("y", {2, 5});
       },
       "Dropout", 2},
      {"batchnorm_spatial_opset7", 7,
       [](PassTester& t) {
         t.Input("x", {2, 3, 4, 4}).Weight("s", {3}).Weight("b", {3}).Weight("m", {3})
             .Weight("v", {3}, 0.5f, 2.0f)
             .Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"},
                   {AttrInt("spatial", 1), AttrFloat("epsilon", 1e-5f)})
             .Output("y", {2, 3, 4, 4});
       },
       "BatchNormalization", 5},
      {"gemm_broadcast_opset6", 6,
       [](PassTester& t) {
         t.Input("x", {2, 4}).Weight("w", {4, 3}).Weight("c", {3})
             .Node("Gemm", {"x", "w", "c"}, {"y"}, {AttrInt("broadcast", 1)})
             .Output("y", {2, 3});
       },
       "Gemm", 3},
      {"paddle_head_opset9", 9,
       [](PassTester& t) {
         // Conv -> Relu -> Flatten -> MatMul -> Add -> Softmax(axis=1), as
         // paddle2onnx writes a classifier head.
         t.Input("x", {2, 3, 4, 4}).Weight("cw", {4, 3, 3, 3}).Weight("cb", {4})
             .Weight("fw", {64, 5}).Weight("fb", {5})
             .Node("Conv", {"x", "cw", "cb"}, {"c"}, {AttrInts("pads", {1, 1, 1, 1})})
             .Node("Relu", {"c"}, {"r"})
             .Node("Flatten", {"r"}, {"f"}, {AttrInt("axis", 1)})
             .Node("MatMul", {"f", "fw"}, {"m"})
             .Node("Add", {"m", "fb"}, {"logits"})
             .Node("Softmax", {"logits"}, {"p"}, {AttrInt("axis", 1)})
             .Output("p", {2, 5});
       },
       nullptr, 0},
  };
}

TEST_P(OpsetUpgradeTest, SameOutputsAtOpset13) {
  const Case c = Cases()[GetParam()];
  SCOPED_TRACE(c.name);
  PassTester t(c.opset);
  c.build(t);
  t.Apply(Upgrade).ExpectChanged(true).ExpectOutputsNear(1e-6, 1e-6);
  ASSERT_TRUE(t.Ok());
  EXPECT_EQ(OpsetOf(t.after()), 13);
  EXPECT_GE(t.after().ir_version(), 7);
  if (c.op != nullptr) {
    const onnx::NodeProto* n = FindOp(t.after(), c.op);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->input_size(), c.inputs_after) << n->DebugString();
    for (const char* gone : {"axes", "split", "min", "max", "starts", "ends", "ratio",
                             "spatial", "broadcast"}) {
      EXPECT_FALSE(HasAttr(*n, gone)) << gone;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, OpsetUpgradeTest,
                         ::testing::Range(0, static_cast<int>(Cases().size())));

TEST(OpsetUpgradeStructure, SoftmaxOnAnInnerAxisFlattensAndReshapes) {
  PassTester t(11);
  t.Input("x", {2, 3, 4}).Node("Softmax", {"x"}, {"y"}, {AttrInt("axis", 1)}).Output("y", {2, 3, 4});
  t.Apply(Upgrade).ExpectOpDelta("Flatten", 1).ExpectOpDelta("Reshape", 1);
  // On the last axis nothing is inserted.
  PassTester last(9);
  last.Input("x", {3, 6}).Node("Softmax", {"x"}, {"y"}, {AttrInt("axis", 1)}).Output("y", {3, 6});
  last.Apply(Upgrade).ExpectNodeDelta(0);
}

// Upsample and Pad: the executor may not run them, so the structure and
// ONNX's own checker and shape inference at opset 13 (the tester's
// invariant check) are the test; outputs are compared when it does.
TEST(OpsetUpgradeStructure, UpsampleBecomesResizeWithTheOldCoordinates) {
  for (int64_t opset : {int64_t{7}, int64_t{9}}) {
    PassTester t(opset);
    t.Input("x", {1, 2, 3, 3});
    if (opset == 7) {
      t.Node("Upsample", {"x"}, {"y"},
             {AttrString("mode", "nearest"), AttrFloats("scales", {1, 1, 2, 2})});
    } else {
      t.Initializer("scales", Tensor::FromValues<float>({4}, {1.0f, 1.0f, 2.0f, 2.0f}));
      t.Node("Upsample", {"x", "scales"}, {"y"}, {AttrString("mode", "nearest")});
    }
    t.Output("y", {1, 2, 6, 6});
    t.Apply(Upgrade).ExpectRemoved("Upsample").ExpectOpCount("Resize", 1);
    ASSERT_TRUE(t.Ok());
    const onnx::NodeProto* r = FindOp(t.after(), "Resize");
    ASSERT_EQ(r->input_size(), 3);
    EXPECT_EQ(r->input(1), "");
    EXPECT_EQ(training::GetAttrString(*r, "coordinate_transformation_mode", ""), "asymmetric");
    EXPECT_EQ(training::GetAttrString(*r, "nearest_mode", ""), "floor");
    EXPECT_EQ(training::GetAttrString(*r, "mode", ""), "nearest");
  }
}

TEST(OpsetUpgradeStructure, PadAttributesBecomeInputs) {
  PassTester t(9);
  t.Input("x", {1, 2, 3, 3})
      .Node("Pad", {"x"}, {"y"},
            {AttrString("mode", "constant"), AttrInts("pads", {0, 0, 1, 1, 0, 0, 1, 1}),
             AttrFloat("value", 0.5f)})
      .Output("y", {1, 2, 5, 5});
  t.Apply(Upgrade);
  ASSERT_TRUE(t.Ok());
  const onnx::NodeProto* p = FindOp(t.after(), "Pad");
  ASSERT_EQ(p->input_size(), 3);
  EXPECT_FALSE(HasAttr(*p, "pads"));
  EXPECT_FALSE(HasAttr(*p, "value"));
  EXPECT_EQ(training::GetAttrString(*p, "mode", ""), "constant");
  const graph::GraphIndex index(t.after().graph());
  auto pads = index.ConstantValue(p->input(1));
  ASSERT_TRUE(pads.ok());
  EXPECT_EQ(pads->values<int64_t>()[2], 1);
  auto value = index.ConstantValue(p->input(2));
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->values<float>()[0], 0.5f);
}

TEST(OpsetUpgradeStructure, LegacyBroadcastAxisReshapesTheInitializer) {
  PassTester t(6);
  t.Input("x", {2, 3, 4, 5}).Weight("b", {3})
      .Node("Add", {"x", "b"}, {"y"}, {AttrInt("broadcast", 1), AttrInt("axis", 1)})
      .Output("y", {2, 3, 4, 5});
  // The executor's Add broadcasts numpy-style at every opset, so only the
  // result is checked: B aligned with axis 1 becomes [3, 1, 1].
  t.Apply(Upgrade);
  ASSERT_TRUE(t.Ok());
  const onnx::NodeProto* add = FindOp(t.after(), "Add");
  EXPECT_FALSE(HasAttr(*add, "broadcast"));
  EXPECT_FALSE(HasAttr(*add, "axis"));
  const graph::GraphIndex index(t.after().graph());
  const onnx::TensorProto* b = index.FindInitializer(add->input(1));
  ASSERT_NE(b, nullptr);
  EXPECT_THAT(std::vector<int64_t>(b->dims().begin(), b->dims().end()),
              ::testing::ElementsAre(3, 1, 1));
}

TEST(OpsetUpgradeStructure, ScatterBecomesScatterElements) {
  PassTester t(9);
  t.Input("x", {3, 3}).Weight("u", {1, 3});
  t.Initializer("i", Tensor::FromValues<int64_t>({1, 3}, {2, 0, 1}));
  t.Node("Scatter", {"x", "i", "u"}, {"y"}, {AttrInt("axis", 0)}).Output("y", {3, 3});
  t.Apply(Upgrade).ExpectRemoved("Scatter").ExpectOpCount("ScatterElements", 1);
  ASSERT_TRUE(t.Ok());
  // The executor runs ScatterElements: x with row 2 of column 0, row 0 of
  // column 1 and row 1 of column 2 replaced by u.
  auto out = t.RunAfter();
  ASSERT_EQ(out.count("y"), 1u);
  const auto x = t.inputs().at("x").values<float>();
  const auto y = out.at("y").values<float>();
  const graph::GraphIndex index(t.after().graph());
  auto u = index.ConstantValue("u");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(y[2 * 3 + 0], u->values<float>()[0]);
  EXPECT_EQ(y[0 * 3 + 1], u->values<float>()[1]);
  EXPECT_EQ(y[1 * 3 + 2], u->values<float>()[2]);
  EXPECT_EQ(y[0 * 3 + 0], x[0]);
}

TEST(OpsetUpgradeStructure, RefusesWhatOpset13CannotSay) {
  PassTester t(7);
  t.Input("x", {2, 3, 4}).Weight("s", {3}).Weight("b", {3}).Weight("m", {3})
      .Weight("v", {3}, 0.5f, 2.0f)
      .Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, {AttrInt("spatial", 0)})
      .Output("y", {2, 3, 4});
  t.Apply(Upgrade).ExpectError("spatial=0");
  EXPECT_EQ(t.changed().status().code(), absl::StatusCode::kUnimplemented);
}

TEST(OpsetUpgradeStructure, Opset13IsLeftAlone) {
  PassTester t(13);
  t.Input("x", {2, 3}).Node("Softmax", {"x"}, {"y"}, {AttrInt("axis", 0)}).Output("y", {2, 3});
  t.Apply(Upgrade).ExpectChanged(false).ExpectNodeDelta(0);
}

// Opset21DowngradePass undoes Opset21UpgradePass: 13 -> 21 -> 17 gives the
// opset-13 graph's nodes back (Reduce axes as attributes, no num_outputs),
// without the axes constants, and the same outputs.
TEST(Opset21DowngradeTest, UndoesTheOpset21Upgrade) {
  PassTester t(13);
  t.Input("x", {2, 4, 6}, kFloat, -3, 3)
      .Node("ReduceMean", {"x"}, {"m"}, {AttrInts("axes", {-1})})
      .Node("Sub", {"x", "m"}, {"c"})
      .Node("Split", {"c"}, {"a", "b"}, {AttrInt("axis", 1)})
      .Node("ReduceMax", {"a"}, {"y"}, {AttrInts("axes", {1}), AttrInt("keepdims", 0)})
      .Node("Add", {"b", "b"}, {"z"})
      .Output("y", {2, 6})
      .Output("z", {2, 2, 6});
  t.Apply([](onnx::ModelProto* m) -> absl::StatusOr<bool> {
     QAT_RETURN_IF_ERROR(passes::Opset21UpgradePass().Run(m).status());
     EXPECT_EQ(passes::DefaultOpset(*m), passes::kInt4ExportOpset);
     EXPECT_EQ(FindOp(*m, "ReduceMean")->input_size(), 2);
     return passes::Opset21DowngradePass().Run(m);
   })
      .ExpectChanged(true)
      .ExpectNodeDelta(0)
      .ExpectOutputsNear(0, 0);
  ASSERT_TRUE(t.Ok());
  EXPECT_EQ(OpsetOf(t.after()), passes::kDowngradeTargetOpset);
  EXPECT_EQ(t.after().graph().initializer_size(), t.before().graph().initializer_size());
  auto attributes_sorted = [](onnx::NodeProto n) {  // their order may change
    std::sort(n.mutable_attribute()->begin(), n.mutable_attribute()->end(),
              [](const auto& x, const auto& y) { return x.name() < y.name(); });
    return n.SerializeAsString();
  };
  for (int i = 0; i < t.before().graph().node_size(); ++i) {
    EXPECT_EQ(attributes_sorted(t.after().graph().node(i)),
              attributes_sorted(t.before().graph().node(i)))
        << t.before().graph().node(i).op_type();
  }
}

// A model whose opset-21 form has no opset-17 spelling is refused
// (FailedPrecondition, naming the node) and left exactly as it was.
TEST(Opset21DowngradeTest, RefusesRunTimeAxesAndLeavesTheModelAlone) {
  PassTester t(13);
  t.Input("x", {2, 3}).Initializer("k", Tensor::FromValues<int64_t>({1}, {1}));
  t.Node("Add", {"k", "k"}, {"axes"})
      .Node("ReduceMean", {"x"}, {"y"})
      .Output("y", {1, 1});
  t.Apply([](onnx::ModelProto* m) -> absl::StatusOr<bool> {
     QAT_RETURN_IF_ERROR(passes::Opset21UpgradePass().Run(m).status());
     // The axes come from a node: run-time axes.
     m->mutable_graph()->mutable_node(1)->add_input("axes");
     const std::string upgraded = m->SerializeAsString();
     absl::StatusOr<bool> changed = passes::Opset21DowngradePass().Run(m);
     EXPECT_EQ(m->SerializeAsString(), upgraded);
     return changed;
   })
      .ExpectError("'axes' are computed at run time");
  EXPECT_EQ(t.changed().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PromoteConstantsTest, FloatConstantsBecomeInitializersShapesStay) {
  PassTester t(13, 4);
  onnx::AttributeProto w;
  w.set_name("value");
  w.set_type(onnx::AttributeProto::TENSOR);
  *w.mutable_t() = TensorToProto(t.Random({3, 2}, -1, 1), "w");
  onnx::AttributeProto shape;
  shape.set_name("value");
  shape.set_type(onnx::AttributeProto::TENSOR);
  *shape.mutable_t() = TensorToProto(Tensor::FromValues<int64_t>({2}, {1, 4}), "shape");
  t.Input("x", {2, 3})
      .Node("Constant", {}, {"w"}, {w})
      .Node("Constant", {}, {"shape"}, {shape})
      .Node("Constant", {}, {"eps"}, {AttrFloat("value_float", 0.5f)})
      .Node("MatMul", {"x", "w"}, {"m"})
      .Node("Add", {"m", "eps"}, {"a"})
      .Node("Reshape", {"a", "shape"}, {"y"})
      .Output("y", {1, 4});
  passes::PromoteConstantsPass pass;
  t.Apply(pass).ExpectChanged(true).ExpectOutputsNear(0, 0).ExpectOpDelta("Constant", -2);
  ASSERT_TRUE(t.Ok());
  const graph::GraphIndex index(t.after().graph());
  ASSERT_NE(index.FindInitializer("w"), nullptr);
  EXPECT_EQ(index.FindInitializer("w")->dims_size(), 2);
  ASSERT_NE(index.FindInitializer("eps"), nullptr);
  EXPECT_EQ(index.FindInitializer("shape"), nullptr);  // int64: stays a Constant node
  passes::PromoteConstantsPass again;
  onnx::ModelProto after = t.after();
  auto changed = again.Run(&after);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
}

// A paddle2onnx-style classifier at opset 9: weights in Constant nodes,
// Clip with attributes (ReLU6), Squeeze with attributes, Softmax axis=1.
onnx::ModelProto PaddleStyleModel(int64_t opset) {
  PassTester t(opset, 7);
  auto constant = [&](const std::string& name, std::vector<int64_t> dims) {
    onnx::AttributeProto value;
    value.set_name("value");
    value.set_type(onnx::AttributeProto::TENSOR);
    *value.mutable_t() = TensorToProto(t.Random(dims, -0.5f, 0.5f), name);
    t.Node("Constant", {}, {name}, {value});
  };
  constant("conv1_weights", {4, 1, 3, 3});
  constant("conv1_bias", {4});
  constant("fc_weights", {4, 3});
  constant("fc_bias", {3});
  t.Input("x", {-1, 8})
      .Node("Reshape", {"x", "shape"}, {"img"})
      .Node("Conv", {"img", "conv1_weights", "conv1_bias"}, {"c"}, {AttrInts("pads", {1, 1, 1, 1})});
  if (opset < 11) {  // ReLU6: Clip's bounds are attributes before opset 11, inputs after
    t.Node("Clip", {"c"}, {"r"}, {AttrFloat("min", 0.0f), AttrFloat("max", 6.0f)});
  } else {
    t.Initializer("clip_min", Tensor::Scalar(0.0f)).Initializer("clip_max", Tensor::Scalar(6.0f));
    t.Node("Clip", {"c", "clip_min", "clip_max"}, {"r"});
  }
  t.Node("GlobalAveragePool", {"r"}, {"g"})
      .Node("Squeeze", {"g"}, {"s"}, {AttrInts("axes", {2, 3})})
      .Node("MatMul", {"s", "fc_weights"}, {"m"})
      .Node("Add", {"m", "fc_bias"}, {"logits"})
      .Node("Softmax", {"logits"}, {"probs"}, {AttrInt("axis", 1)})
      .Output("probs", {-1, 3});
  t.Initializer("shape", Tensor::FromValues<int64_t>({4}, {-1, 1, 4, 2}));
  return t.proto();
}

TEST(OpsetUpgradeStages, QuantizeAndPrepareUpgradeAndSaySo) {
  for (int64_t opset : {int64_t{9}, int64_t{10}, int64_t{11}}) {
    SCOPED_TRACE(opset);
    onnx::ModelProto proto = PaddleStyleModel(opset);
    auto model = Model::FromBytes(proto.SerializeAsString(), "paddle.onnx");
    ASSERT_TRUE(model.ok()) << model.status();
    Tensor x(DataType::kFloat32, {6, 8});
    for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = 0.1f * (i % 7) - 0.3f;
    Tensor y(DataType::kInt64, {6});
    for (int64_t i = 0; i < 6; ++i) y.data<int64_t>()[i] = i % 3;
    auto data = Dataset::Create(std::move(x), std::move(y));
    ASSERT_TRUE(data.ok());
    auto table = Calibrate(*model, *data, {});
    ASSERT_TRUE(table.ok()) << table.status();

    std::vector<std::string> warnings;
    auto qdq = QuantizeModel(*model, *table, {}, &warnings);
    ASSERT_TRUE(qdq.ok()) << qdq.status();
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_THAT(warnings[0], HasSubstr("imports opset " + std::to_string(opset) +
                                       "; upgraded it to opset 13"));
    EXPECT_EQ(OpsetOf(ModelAccess::Proto(*qdq)), 13);
    EXPECT_EQ(PassTester::Count(ModelAccess::Proto(*qdq), "QuantizeLinear") > 0, true);

    // The fp32 model prepares too: the Constant-node weights train...
    warnings.clear();
    auto fp32 = PrepareModels(*model, {}, &warnings);
    ASSERT_TRUE(fp32.ok()) << fp32.status();
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_THAT(fp32->params, ::testing::ElementsAre("conv1_weights", "conv1_bias",
                                                     "fc_weights", "fc_bias"));
    // ...and can be frozen.
    PrepareOptions frozen;
    frozen.graph.frozen = {"conv1_*"};
    auto some = PrepareModels(*model, frozen);
    ASSERT_TRUE(some.ok()) << some.status();
    EXPECT_THAT(some->params, ::testing::ElementsAre("fc_weights", "fc_bias"));
    // The switch turns promotion off: the weights stay in Constant nodes.
    PrepareOptions off;
    off.disabled_passes = {"promote_constants"};
    auto none = PrepareModels(*model, off);
    EXPECT_FALSE(none.ok());

    auto qat = PrepareModels(*qdq, {});
    ASSERT_TRUE(qat.ok()) << qat.status();
    EXPECT_EQ(qat->params.size(), 4u);
    // And it trains: a few QAT steps with a finite, falling loss.
    TrainerOptions topts;
    topts.num_threads = 1;
    topts.schedule.lr = 1e-2f;
    auto trainer = Trainer::Create(*qat, topts);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    Tensor bx(DataType::kFloat32, {6, 8});
    for (int64_t i = 0; i < bx.num_elements(); ++i) bx.data<float>()[i] = 0.1f * (i % 7) - 0.3f;
    Tensor by(DataType::kInt64, {6});
    for (int64_t i = 0; i < 6; ++i) by.data<int64_t>()[i] = i % 3;
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 5; ++step) {
      auto loss = (*trainer)->TrainStep({{"x", bx}, {kLabelsInput, by}});
      ASSERT_TRUE(loss.ok()) << loss.status();
      ASSERT_TRUE(std::isfinite(*loss));
      (step == 0 ? first : last) = *loss;
    }
    EXPECT_LT(last, first);
  }
}

}  // namespace
}  // namespace qat
