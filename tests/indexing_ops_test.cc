// The indexing and layout ops (lib/exec/ops/indexing.cc, tensor_layout.cc)
// on what ONNX's node tests do not cover: sizes taken from tensor values
// that are negative, overflow or are absurd (InvalidArgument naming the
// node, before anything is allocated), indices out of range, and semantics
// at the edges (wide reflect pads, NaN in Unique, repeated ScatterND
// indices, Range over int64 limits far apart, Pad's axes, EyeLike's k),
// and GatherElements' and GatherND's gradients over a dynamic batch.
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "passes/gradient_builder.h"
#include "qat/executor.h"

namespace qat {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kInt64 = onnx::TensorProto::INT64;

void SetString(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

Tensor Int64s(std::vector<int64_t> shape, std::vector<int64_t> values) {
  return Tensor::FromValues<int64_t>(std::move(shape), absl::MakeConstSpan(values));
}
Tensor Floats(std::vector<int64_t> shape, std::vector<float> values) {
  return Tensor::FromValues<float>(std::move(shape), absl::MakeConstSpan(values));
}

// Runs `op` on inputs named a, b, c, ... with the given values; the result
// must be InvalidArgument naming the node and saying `why`.
void ExpectRefused(const std::string& op, const std::vector<Tensor>& inputs,
                   const std::string& why) {
  SCOPED_TRACE(op + ": " + why);
  GraphBuilder g;
  std::vector<std::string> names;
  std::map<std::string, Tensor> feed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    names.push_back(std::string(1, static_cast<char>('a' + i)));
    g.Input(names.back(), static_cast<int>(inputs[i].dtype()), inputs[i].shape());
    feed[names.back()] = inputs[i];
  }
  g.Output("y", kFloat, {-1});
  g.Node(op, names, {"y"});
  auto out = RunGraph(g, feed);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  EXPECT_THAT(std::string(out.status().message()),
              AllOf(HasSubstr("node '" + op + "_1' (" + op + ")"), HasSubstr(why)))
      << out.status();
}

TEST(ComputedSizesTest, NegativeOverflowingAndAbsurdSizesAreRefused) {
  const int64_t big = int64_t{1} << 20;
  ExpectRefused("ConstantOfShape", {Int64s({3}, {big, big, 1 << 10})}, "allowed for a computed size");
  ExpectRefused("ConstantOfShape", {Int64s({2}, {3, -1})}, "negative dimension");
  ExpectRefused("ConstantOfShape", {Int64s({2}, {int64_t{1} << 62, 4})}, "too large");
  ExpectRefused("Range", {Tensor::Scalar(0.0f), Tensor::Scalar(1e18f), Tensor::Scalar(1.0f)},
                "allowed for a computed size");
  ExpectRefused("Range",
                {Tensor::Scalar(0.0f), Tensor::Scalar(std::numeric_limits<float>::infinity()),
                 Tensor::Scalar(1.0f)},
                "no finite length");
  ExpectRefused("Range", {Tensor::Scalar(0.0f), Tensor::Scalar(NAN), Tensor::Scalar(1.0f)},
                "no finite length");
  ExpectRefused("Range", {Tensor::Scalar(int64_t{0}), Tensor::Scalar(int64_t{5}),
                          Tensor::Scalar(int64_t{0})},
                "delta is 0");
  const Tensor x(DataType::kFloat32, {4, 4});
  ExpectRefused("Tile", {x, Int64s({2}, {big, big})}, "allowed for a computed size");
  ExpectRefused("Tile", {x, Int64s({2}, {-1, 2})}, "negative");
  ExpectRefused("Tile", {x, Int64s({2}, {int64_t{1} << 62, int64_t{1} << 62})}, "too large");
  ExpectRefused("Pad", {x, Int64s({4}, {0, int64_t{1} << 40, 0, int64_t{1} << 40})},
                "allowed for a computed size");
  ExpectRefused("Pad", {x, Int64s({4}, {0, -3, 0, -2})}, "crop more than axis 1");
  ExpectRefused("Pad", {x, Int64s({4}, {0, (int64_t{1} << 62) + 1, 0, 0})}, "out of range");
  const Tensor indices = Int64s({3}, {0, 1, 2});
  const Tensor values = Floats({2}, {0, 1});
  ExpectRefused("OneHot", {indices, Tensor::Scalar(1e15f), values}, "allowed for a computed size");
  ExpectRefused("OneHot", {indices, Tensor::Scalar(-2.0f), values}, "positive");
  ExpectRefused("OneHot", {indices, Tensor::Scalar(NAN), values}, "positive");
}

TEST(IndexingTest, IndicesOutOfRangeAreRefused) {
  const Tensor data(DataType::kFloat32, {2, 3});
  ExpectRefused("GatherElements", {data, Int64s({2, 1}, {0, 2})},
                "index 2 is out of range for axis 0 of size 2");
  ExpectRefused("GatherElements", {data, Int64s({1, 4}, {0, 1, 0, 1})}, "larger than data");
  ExpectRefused("GatherND", {data, Int64s({1, 2}, {1, -4})},
                "index -4 is out of range for axis 1 of size 3");
  ExpectRefused("GatherND", {data, Int64s({1, 3}, {0, 0, 0})}, "last dimension be at most 2");
  ExpectRefused("ScatterND", {data, Int64s({1, 1}, {2}), Tensor(DataType::kFloat32, {1, 3})},
                "index 2 is out of range for axis 0 of size 2");
  ExpectRefused("ScatterND", {data, Int64s({1, 1}, {0}), Tensor(DataType::kFloat32, {1, 2})},
                "do not fit");
  ExpectRefused("ReverseSequence", {data, Int64s({3}, {1, 2, 3})}, "sequence length 3");
}

TEST(PadTest, WideReflectRepeatsAsNumpy) {
  // np.pad([1, 2, 3], (5, 4), "reflect")
  GraphBuilder g;
  g.Input("x", kFloat, {3}).Input("p", kInt64, {2}).Output("y", kFloat, {-1});
  SetString(g.Node("Pad", {"x", "p"}, {"y"}), "mode", "reflect");
  auto out = RunGraph(g, {{"x", Floats({3}, {1, 2, 3})}, {"p", Int64s({2}, {5, 4})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->at("y").values<float>(), ElementsAre(2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3));
}

TEST(PadTest, AxesInputPadsOnlyTheListedAxes) {
  // Opset 18's axes input, a negative axis included: pads [begin, end] of
  // the last axis only.
  GraphBuilder g;
  g.Input("x", kFloat, {2, 2}).Input("p", kInt64, {2}).Input("a", kInt64, {1});
  g.Output("y", kFloat, {-1, -1});
  SetString(g.Node("Pad", {"x", "p", "", "a"}, {"y"}), "mode", "edge");
  auto out = RunGraph(g, {{"x", Floats({2, 2}, {1, 2, 3, 4})},
                          {"p", Int64s({2}, {1, 2})},
                          {"a", Int64s({1}, {-1})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").shape(), (std::vector<int64_t>{2, 5}));
  EXPECT_THAT(out->at("y").values<float>(), ElementsAre(1, 1, 2, 2, 2, 3, 3, 4, 4, 4));
}

TEST(EyeLikeTest, AnyDiagonalOffsetIsSafe) {
  for (int64_t k : {std::numeric_limits<int64_t>::min(), int64_t{-2}, int64_t{3},
                    std::numeric_limits<int64_t>::max()}) {
    GraphBuilder g;
    g.Input("x", kFloat, {2, 3}).Output("y", kFloat, {2, 3});
    SetInt(g.Node("EyeLike", {"x"}, {"y"}), "k", k);
    auto out = RunGraph(g, {{"x", Tensor(DataType::kFloat32, {2, 3})}});
    ASSERT_TRUE(out.ok()) << out.status();
    for (float v : out->at("y").values<float>()) EXPECT_EQ(v, 0.0f) << k;
  }
  GraphBuilder g;
  g.Input("x", kFloat, {3, 2}).Output("y", kFloat, {3, 2});
  SetInt(g.Node("EyeLike", {"x"}, {"y"}), "k", -1);
  auto out = RunGraph(g, {{"x", Tensor(DataType::kFloat32, {3, 2})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->at("y").values<float>(), ElementsAre(0, 0, 1, 0, 0, 1));
}

TEST(UniqueTest, NaNsCollapseAndSortLast) {
  // np.unique([nan, 1, nan, 0.5], return_index, return_inverse, return_counts)
  GraphBuilder g;
  g.Input("x", kFloat, {4});
  for (const char* out : {"y", "i", "inv", "n"}) g.Output(out, out[0] == 'y' ? kFloat : kInt64, {-1});
  g.Node("Unique", {"x"}, {"y", "i", "inv", "n"});
  auto out = RunGraph(g, {{"x", Floats({4}, {NAN, 1, NAN, 0.5f})}});
  ASSERT_TRUE(out.ok()) << out.status();
  const auto y = out->at("y").values<float>();
  ASSERT_EQ(y.size(), 3u);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_TRUE(std::isnan(y[2]));
  EXPECT_THAT(out->at("i").values<int64_t>(), ElementsAre(3, 1, 0));
  EXPECT_THAT(out->at("inv").values<int64_t>(), ElementsAre(2, 1, 2, 0));
  EXPECT_THAT(out->at("n").values<int64_t>(), ElementsAre(1, 1, 2));
}

TEST(ScatterNDTest, AddAccumulatesRepeatedIndices) {
  GraphBuilder g;
  g.Input("d", kFloat, {3}).Input("i", kInt64, {3, 1}).Input("u", kFloat, {3});
  g.Output("y", kFloat, {3});
  SetString(g.Node("ScatterND", {"d", "i", "u"}, {"y"}), "reduction", "add");
  auto out = RunGraph(g, {{"d", Floats({3}, {1, 1, 1})},
                          {"i", Int64s({3, 1}, {2, -1, 0})},
                          {"u", Floats({3}, {1, 2, 4})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->at("y").values<float>(), ElementsAre(5, 1, 4));
}

TEST(RangeTest, Int64LimitsFarApartDoNotOverflow) {
  GraphBuilder g;
  g.Input("s", kInt64, {}).Input("l", kInt64, {}).Input("d", kInt64, {});
  g.Output("y", kInt64, {-1});
  g.Node("Range", {"s", "l", "d"}, {"y"});
  const int64_t q = int64_t{1} << 61;
  auto out = RunGraph(g, {{"s", Tensor::Scalar(-2 * q)},
                          {"l", Tensor::Scalar(2 * q)},
                          {"d", Tensor::Scalar(q)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->at("y").values<int64_t>(), ElementsAre(-2 * q, -q, 0, q));
}

// loss = sum(Gather(x @ w, i)) over a dynamic batch N, where Gather picks
// y[n, i[n, c]] for c < 2: GatherElements on axis 1, or GatherND with
// batch_dims 1 and tuples of one.  So dL/dw[k, j] = sum over n of x[n, k]
// times how often row n of i names j.  `path` is an op the backward graph
// must hold.
void ExpectGatherGradient(const std::string& op, int64_t opset, const std::string& path) {
  SCOPED_TRACE(op + " at opset " + std::to_string(opset));
  const bool nd = op == "GatherND";
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 4}).Output("loss", kFloat, {});
  g.Input("i", kInt64, nd ? std::vector<int64_t>{-1, 2, 1} : std::vector<int64_t>{-1, 2});
  g.Initializer("w", Floats({4, 5}, std::vector<float>(20, 0.5f)));
  g.Node("MatMul", {"x", "w"}, {"y"});
  SetInt(g.Node(op, {"y", "i"}, {"z"}), nd ? "batch_dims" : "axis", 1);
  SetInt(g.Node("ReduceSum", {"z"}, {"loss"}), "keepdims", 0);
  onnx::ModelProto m = g.proto();
  m.mutable_opset_import(0)->set_version(opset);
  auto forward = Model::FromBytes(m.SerializeAsString(), "gather.onnx");
  ASSERT_TRUE(forward.ok()) << forward.status();
  onnx::ModelProto proto = ModelAccess::Proto(*forward);
  auto changed = training::BuildGradientsPass("loss", {"w"}).Run(&proto);
  ASSERT_TRUE(changed.ok()) << changed.status();
  bool took_path = false;
  for (const auto& node : proto.graph().node()) took_path |= node.op_type() == path;
  EXPECT_TRUE(took_path) << "no " << path << " in the backward graph";
  auto model = Model::FromBytes(proto.SerializeAsString(), "training.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_TRUE(executor.ok()) << executor.status();
  for (int64_t n : {3, 1}) {
    std::vector<float> x(static_cast<size_t>(n * 4));
    std::vector<int64_t> i(static_cast<size_t>(n * 2));
    for (size_t e = 0; e < x.size(); ++e) x[e] = 0.25f * static_cast<float>(e) - 1.0f;
    for (size_t e = 0; e < i.size(); ++e) i[e] = e % 3 == 0 ? -1 : static_cast<int64_t>(e % 2);
    const Tensor indices = nd ? Int64s({n, 2, 1}, i) : Int64s({n, 2}, i);
    auto out = (*executor)->Run({{"x", Floats({n, 4}, x)}, {"i", indices}});
    ASSERT_TRUE(out.ok()) << out.status();
    const Tensor& dw = out->at("w_grad");
    ASSERT_EQ(dw.shape(), (std::vector<int64_t>{4, 5}));
    for (int64_t k = 0; k < 4; ++k) {
      for (int64_t j = 0; j < 5; ++j) {
        float want = 0;
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t c = 0; c < 2; ++c) {
            const int64_t idx = i[r * 2 + c] < 0 ? i[r * 2 + c] + 5 : i[r * 2 + c];
            if (idx == j) want += x[r * 4 + k];
          }
        }
        EXPECT_FLOAT_EQ(dw.values<float>()[k * 5 + j], want)
            << "n " << n << " w[" << k << ", " << j << "]";
      }
    }
  }
}

TEST(GatherGradientTest, WorksForAnyBatch) {
  // Opset 13 compares and sums, then pads to the data's shape computed at
  // run time; opset 16 scatters with "add".  GatherND with batch_dims
  // multiplies by a one-hot matrix whose batch is dynamic.
  ExpectGatherGradient("GatherElements", 13, "Pad");
  ExpectGatherGradient("GatherElements", 16, "ScatterElements");
  ExpectGatherGradient("GatherND", 13, "Equal");
  ExpectGatherGradient("GatherND", 16, "Equal");
}

}  // namespace
}  // namespace qat
