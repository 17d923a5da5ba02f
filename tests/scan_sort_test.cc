// The axis ops of scan_sort.cc and the reductions of reduce.cc on what
// ONNX's node tests leave out: ties and NaN, empty reductions, Hardmax's two
// semantics, and bad k or axis values (InvalidArgument, never a crash).
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/executor.h"

namespace qat {
namespace {

constexpr int kInt64 = onnx::TensorProto::INT64;

Tensor Floats(std::vector<int64_t> shape, std::vector<float> v) {
  return Tensor::FromValues<float>(std::move(shape), absl::MakeConstSpan(v));
}
Tensor Ints(std::vector<int64_t> shape, std::vector<int64_t> v) {
  return Tensor::FromValues<int64_t>(std::move(shape), absl::MakeConstSpan(v));
}

// One node over inputs x (float) and, when `second` is set, s (int64), with
// outputs y (and i, int64).
struct OneNode {
  GraphBuilder g;
  int64_t opset;
  onnx::NodeProto* node = nullptr;
  OneNode(const std::string& op, int64_t version, bool second, int outputs = 1)
      : opset(version) {
    g.Input("x", kFloat, {});
    std::vector<std::string> ins = {"x"};
    if (second) {
      g.Input("s", kInt64, {});
      ins.push_back("s");
    }
    std::vector<std::string> outs = {"y", "i"};
    outs.resize(outputs);
    node = &g.Node(op, ins, outs);
    g.Output("y", kFloat, {});
    if (outputs > 1) g.Output("i", kInt64, {});
  }
  absl::StatusOr<std::map<std::string, Tensor>> Run(const Tensor& x, const Tensor* s = nullptr) {
    // At the case's opset, with no declared shapes (they vary per run).
    onnx::ModelProto p = g.proto();
    p.mutable_opset_import(0)->set_version(opset);
    for (auto* values : {p.mutable_graph()->mutable_input(), p.mutable_graph()->mutable_output()}) {
      for (auto& v : *values) v.mutable_type()->mutable_tensor_type()->clear_shape();
    }
    ModelLoadOptions options;
    options.check = false;
    options.infer_shapes = false;
    auto model = Model::FromBytes(p.SerializeAsString(), node->op_type(), options);
    if (!model.ok()) return model.status();
    auto exec = Executor::Create(*model);
    if (!exec.ok()) return exec.status();
    std::map<std::string, Tensor> feed = {{"x", x}};
    if (s != nullptr) feed["s"] = *s;
    return (*exec)->Run(feed);
  }
};

void SetInts(onnx::NodeProto* node, const std::string& name, std::vector<int64_t> v) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

std::vector<float> FloatsOf(const Tensor& t) {
  return std::vector<float>(t.values<float>().begin(), t.values<float>().end());
}
std::vector<int64_t> IntsOf(const Tensor& t) {
  return std::vector<int64_t>(t.values<int64_t>().begin(), t.values<int64_t>().end());
}

TEST(ScanSortTest, TopKOrdersTiesByIndexAndNaNFirst) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = Floats({6}, {1, 3, nan, 3, 1, 0});
  const Tensor k = Ints({1}, {4});
  OneNode largest("TopK", 11, true, 2);
  auto out = largest.Run(x, &k);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(IntsOf(out->at("i")), (std::vector<int64_t>{2, 1, 3, 0}));
  OneNode smallest("TopK", 11, true, 2);
  SetInt(*smallest.node, "largest", 0);
  out = smallest.Run(x, &k);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(IntsOf(out->at("i")), (std::vector<int64_t>{5, 0, 4, 1}));
  EXPECT_EQ(FloatsOf(out->at("y")), (std::vector<float>{0, 1, 1, 3}));
}

TEST(ScanSortTest, ArgMaxPicksTheFirstOrTheLastTie) {
  const Tensor x = Floats({2, 3}, {2, 5, 5, 7, 1, 7});
  OneNode first("ArgMax", 13, false);
  SetInt(*first.node, "axis", 1);
  auto out = first.Run(x);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(IntsOf(out->at("y")), (std::vector<int64_t>{1, 0}));
  OneNode last("ArgMin", 13, false);
  SetInt(*last.node, "axis", 1);
  SetInt(*last.node, "select_last_index", 1);
  SetInt(*last.node, "keepdims", 0);
  out = last.Run(Floats({2, 3}, {2, 2, 5, 1, 1, 1}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(IntsOf(out->at("y")), (std::vector<int64_t>{1, 2}));
}

TEST(ScanSortTest, HardmaxFlattensBeforeOpset13) {
  // [2, 2, 2] with axis 1: before 13 each row of the [2, 4] flattening gets
  // one 1; since 13 each lane along axis 1 does.
  const Tensor x = Floats({2, 2, 2}, {1, 4, 3, 2, 0, 1, 5, 2});
  OneNode old("Hardmax", 11, false);
  SetInt(*old.node, "axis", 1);
  auto out = old.Run(x);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(FloatsOf(out->at("y")), (std::vector<float>{0, 1, 0, 0, 0, 0, 1, 0}));
  OneNode now("Hardmax", 13, false);
  SetInt(*now.node, "axis", 1);
  out = now.Run(x);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(FloatsOf(out->at("y")), (std::vector<float>{0, 1, 1, 0, 0, 0, 1, 1}));
}

TEST(ScanSortTest, EmptyReductionsGiveTheIdentities) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::map<std::string, float> want = {
      {"ReduceSum", 0},        {"ReduceProd", 1},  {"ReduceMin", inf},
      {"ReduceMax", -inf},     {"ReduceL1", 0},    {"ReduceL2", 0},
      {"ReduceSumSquare", 0},  {"ReduceLogSum", -inf}, {"ReduceLogSumExp", -inf},
  };
  for (const auto& [op, value] : want) {
    OneNode n(op, 13, false);
    SetInts(n.node, "axes", {0});
    SetInt(*n.node, "keepdims", 0);
    if (op == "ReduceSum") {
      // Opset 13 takes ReduceSum's axes as an input: reduce all instead.
      n.node->clear_attribute();
      SetInt(*n.node, "keepdims", 0);
    }
    auto out = n.Run(Tensor(DataType::kFloat32, {0, 2}));
    ASSERT_TRUE(out.ok()) << op << ": " << out.status();
    for (float v : FloatsOf(out->at("y"))) EXPECT_EQ(v, value) << op;
  }
  // LogSumExp stays finite for large values (shifted by the maximum).
  OneNode lse("ReduceLogSumExp", 13, false);
  SetInt(*lse.node, "keepdims", 0);
  auto out = lse.Run(Floats({2}, {1000, 1000}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NEAR(FloatsOf(out->at("y"))[0], 1000 + std::log(2.0f), 1e-3);
}

TEST(ScanSortTest, BadKAndAxisAreInvalidArguments) {
  const Tensor x = Floats({2, 3}, {1, 2, 3, 4, 5, 6});
  for (const Tensor& k : {Ints({1}, {-1}), Ints({1}, {4}), Ints({2}, {1, 1}),
                          Ints({1}, {std::numeric_limits<int64_t>::max()})}) {
    OneNode n("TopK", 11, true, 2);
    auto out = n.Run(x, &k);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  }
  for (const Tensor& axis : {Ints({}, {2}), Ints({}, {-3}), Ints({2}, {0, 1})}) {
    OneNode n("CumSum", 14, true);
    auto out = n.Run(x, &axis);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  }
  OneNode tri("Trilu", 14, false);
  auto out = tri.Run(Floats({3}, {1, 2, 3}));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  OneNode arg("ArgMax", 13, false);
  out = arg.Run(Tensor(DataType::kFloat32, {0, 2}));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  // A k far past the matrix keeps everything (upper) and no overflow.
  OneNode wide("Trilu", 14, true);
  const Tensor k = Ints({}, {std::numeric_limits<int64_t>::min()});
  out = wide.Run(x, &k);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(FloatsOf(out->at("y")), FloatsOf(x));
}

}  // namespace
}  // namespace qat
