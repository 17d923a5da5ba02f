// The ops of lib/ops/training_ops.cc beyond ONNX's node tests: ConvTranspose's
// GEMM version against its reference on random shapes, and the errors that
// bad input gets (never a crash).
#include "exec/ops/training_ops.h"

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/executor.h"
#include "qat/model.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

constexpr int kInt64 = onnx::TensorProto::INT64;

// ---- ConvTranspose ----------------------------------------------------------

// A random ConvTranspose problem (a valid one, or skipped by the caller when
// the drawn geometry has no output).
struct Problem {
  exec::ConvTransposeAttrs attrs;
  std::vector<int64_t> x_shape, w_shape;
  bool bias = false;
};

Problem RandomProblem(std::mt19937& rng) {
  auto pick = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  Problem p;
  const int64_t dims = pick(1, 3);
  const int64_t groups = pick(1, 3);
  p.attrs.group = groups;
  p.x_shape = {pick(1, 3), groups * pick(1, 3)};
  p.w_shape = {p.x_shape[1], pick(1, 3)};
  static const char* const kModes[] = {"NOTSET", "NOTSET", "VALID", "SAME_UPPER",
                                       "SAME_LOWER"};
  p.attrs.window.auto_pad = kModes[pick(0, 4)];
  const bool with_output_shape = p.attrs.window.auto_pad == "NOTSET" && pick(0, 3) == 0;
  for (int64_t d = 0; d < dims; ++d) {
    const int64_t in = pick(1, dims == 3 ? 4 : 7);
    const int64_t k = pick(1, 4), s = pick(1, 3), dil = pick(1, 2);
    p.x_shape.push_back(in);
    p.w_shape.push_back(k);
    p.attrs.window.strides.push_back(s);
    p.attrs.window.dilations.push_back(dil);
    p.attrs.output_padding.push_back(pick(0, std::max(s, dil) - 1));
    if (with_output_shape) p.attrs.output_shape.push_back(s * (in - 1) + pick(1, k + 2));
  }
  if (p.attrs.window.auto_pad == "NOTSET" && !with_output_shape) {
    for (int64_t i = 0; i < 2 * dims; ++i) p.attrs.window.pads.push_back(pick(0, 2));
  }
  p.bias = pick(0, 1) == 1;
  return p;
}

template <typename T>
void CompareGemmWithReference(int cases, double tolerance) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<double> uniform(-1, 1);
  ThreadPool pool(3);
  int checked = 0;
  for (int c = 0; c < cases; ++c) {
    const Problem p = RandomProblem(rng);
    auto shape = exec::ComputeConvTransposeShape(p.attrs, p.x_shape, p.w_shape);
    if (!shape.ok()) {
      // Only explicit pads larger than the full output may be rejected.
      EXPECT_THAT(shape.status().message(), HasSubstr("would be")) << shape.status();
      continue;
    }
    std::vector<T> x(NumElements(p.x_shape)), w(NumElements(p.w_shape));
    std::vector<T> bias(shape->out_channels);
    for (T& v : x) v = static_cast<T>(uniform(rng));
    for (T& v : w) v = static_cast<T>(uniform(rng));
    for (T& v : bias) v = static_cast<T>(uniform(rng));
    const T* b = p.bias ? bias.data() : nullptr;
    const int64_t out_elements = NumElements(shape->OutputShape());
    // Sentinels show any element that an implementation leaves unwritten.
    std::vector<T> ref(out_elements, T(1e30)), one(out_elements, T(-1e30)),
        many(out_elements, T(7e29));
    Tensor scratch;
    exec::ConvTransposeReference(*shape, x.data(), w.data(), b, ref.data());
    exec::ConvTransposeGemm<T>(nullptr, *shape, x.data(), w.data(), b, one.data(), scratch);
    exec::ConvTransposeGemm<T>(&pool, *shape, x.data(), w.data(), b, many.data(), scratch);
    const std::string what = "case " + std::to_string(c) + ": X " +
                             ShapeToString(p.x_shape) + ", W " + ShapeToString(p.w_shape) +
                             ", group " + std::to_string(p.attrs.group) + ", auto_pad " +
                             p.attrs.window.auto_pad;
    for (int64_t i = 0; i < out_elements; ++i) {
      ASSERT_NEAR(one[i], ref[i], tolerance) << what << ", element " << i;
    }
    // The thread count never changes a bit.
    if (out_elements > 0) {  // memcmp on empty vectors would see null pointers
      ASSERT_EQ(std::memcmp(one.data(), many.data(), out_elements * sizeof(T)), 0) << what;
    }
    ++checked;
  }
  EXPECT_GT(checked, cases / 2);
}

TEST(ConvTransposeTest, GemmMatchesTheReferenceFloat) {
  CompareGemmWithReference<float>(300, 1e-4);
}

TEST(ConvTransposeTest, GemmMatchesTheReferenceDouble) {
  CompareGemmWithReference<double>(300, 1e-12);
}

// 1-D, stride 2, by hand: x[i] lands on y[2i .. 2i+2].
// The 2-D col2im loop gives the bits of the general one: a 2-D problem and
// the same problem with a leading spatial dimension of 1 (kernel 1, stride 1,
// no padding), which takes the general loop, agree bit for bit.
TEST(ConvTransposeTest, TwoDimensionalCol2ImMatchesTheGeneralLoopBitForBit) {
  std::mt19937 rng(99);
  int checked = 0;
  for (int c = 0; c < 300 && checked < 40; ++c) {
    Problem p = RandomProblem(rng);
    if (p.x_shape.size() != 4) continue;
    auto shape = exec::ComputeConvTransposeShape(p.attrs, p.x_shape, p.w_shape);
    if (!shape.ok()) continue;
    Problem q = p;
    q.x_shape.insert(q.x_shape.begin() + 2, 1);
    q.w_shape.insert(q.w_shape.begin() + 2, 1);
    auto& w3 = q.attrs.window;
    w3.strides.insert(w3.strides.begin(), 1);
    w3.dilations.insert(w3.dilations.begin(), 1);
    if (!w3.pads.empty()) {
      w3.pads.insert(w3.pads.begin() + 2, 0);
      w3.pads.insert(w3.pads.begin(), 0);
    }
    q.attrs.output_padding.insert(q.attrs.output_padding.begin(), 0);
    if (!q.attrs.output_shape.empty()) q.attrs.output_shape.insert(q.attrs.output_shape.begin(), 1);
    auto shape3 = exec::ComputeConvTransposeShape(q.attrs, q.x_shape, q.w_shape);
    ASSERT_TRUE(shape3.ok()) << shape3.status();
    std::uniform_real_distribution<float> uniform(-1, 1);
    std::vector<float> x(NumElements(p.x_shape)), w(NumElements(p.w_shape));
    std::vector<float> bias(shape->out_channels);
    for (float& v : x) v = uniform(rng);
    for (float& v : w) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    const int64_t n = NumElements(shape->OutputShape());
    ASSERT_EQ(n, NumElements(shape3->OutputShape()));
    std::vector<float> two(n, 1e30f), three(n, -1e30f);
    Tensor scratch;
    const float* b = p.bias ? bias.data() : nullptr;
    exec::ConvTransposeGemm<float>(nullptr, *shape, x.data(), w.data(), b, two.data(), scratch);
    exec::ConvTransposeGemm<float>(nullptr, *shape3, x.data(), w.data(), b, three.data(),
                                   scratch);
    ASSERT_EQ(std::memcmp(two.data(), three.data(), n * sizeof(float)), 0)
        << "X " << ShapeToString(p.x_shape) << ", W " << ShapeToString(p.w_shape);
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(ConvTransposeTest, ReferenceByHand) {
  exec::ConvTransposeAttrs attrs;
  attrs.window.strides = {2};
  auto shape = exec::ComputeConvTransposeShape(attrs, {1, 1, 3}, {1, 1, 3});
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->OutputShape(), (std::vector<int64_t>{1, 1, 7}));
  const std::vector<float> x = {1, 2, 3}, w = {1, 1, 1};
  std::vector<float> y(7);
  exec::ConvTransposeReference<float>(*shape, x.data(), w.data(), nullptr, y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 1, 3, 2, 5, 3, 3}));

  attrs.window.pads = {1, 1};
  shape = exec::ComputeConvTransposeShape(attrs, {1, 1, 3}, {1, 1, 3});
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->OutputShape(), (std::vector<int64_t>{1, 1, 5}));
  const float bias = 10;
  y.assign(5, 0);
  exec::ConvTransposeReference(*shape, x.data(), w.data(), &bias, y.data());
  EXPECT_EQ(y, (std::vector<float>{11, 13, 12, 15, 13}));
}

TEST(ConvTransposeTest, RejectsShapesThatDoNotFit) {
  exec::ConvTransposeAttrs attrs;
  attrs.group = 2;
  auto shape = exec::ComputeConvTransposeShape(attrs, {1, 3, 4, 4}, {3, 1, 2, 2});
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape.status().message(), HasSubstr("do not fit group=2"));
  attrs.group = 1;
  attrs.window.pads = {3, 3};
  shape = exec::ComputeConvTransposeShape(attrs, {1, 1, 2}, {1, 1, 2});
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape.status().message(), HasSubstr("would be -3"));
}

// ---- Errors through the executor ----------------------------------------------

TEST(ScatterElementsTest, IndexOutOfRangeIsAnError) {
  GraphBuilder g;
  g.Input("data", kFloat, {2, 3}).Input("indices", kInt64, {1, 2})
      .Input("updates", kFloat, {1, 2}).Output("y", kFloat, {2, 3});
  SetInt(g.Node("ScatterElements", {"data", "indices", "updates"}, {"y"}), "axis", 1);
  const Tensor data(DataType::kFloat32, {2, 3});
  const Tensor updates = Tensor::FromValues<float>({1, 2}, {1, 2});
  for (int64_t bad : {int64_t{3}, int64_t{-4}, int64_t{1} << 40}) {
    auto out = RunGraph(g, {{"data", data},
                            {"indices", Tensor::FromValues<int64_t>({1, 2}, {0, bad})},
                            {"updates", updates}});
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(out.status().message(),
                HasSubstr("index " + std::to_string(bad) +
                          " is out of range for axis 1 of size 3"));
  }
  // Negative indices count from the end.
  auto out = RunGraph(g, {{"data", data},
                          {"indices", Tensor::FromValues<int64_t>({1, 2}, {-1, -3})},
                          {"updates", updates}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").values<float>(),
            (absl::Span<const float>(std::vector<float>{2, 0, 1, 0, 0, 0})));
}

TEST(ScatterElementsTest, IndicesLargerThanDataAreAnError) {
  GraphBuilder g;
  g.Input("data", kFloat, {2, 2}).Input("indices", kInt64, {-1, -1})
      .Input("updates", kFloat, {-1, -1}).Output("y", kFloat, {2, 2});
  g.Node("ScatterElements", {"data", "indices", "updates"}, {"y"});
  auto out = RunGraph(g, {{"data", Tensor(DataType::kFloat32, {2, 2})},
                          {"indices", Tensor(DataType::kInt64, {2, 3})},
                          {"updates", Tensor(DataType::kFloat32, {2, 3})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("are larger than data [2,2] on axis 1"));
}

TEST(ScatterElementsTest, AddAccumulatesDuplicates) {
  GraphBuilder g;
  g.Input("data", kFloat, {3}).Input("indices", kInt64, {4})
      .Input("updates", kFloat, {4}).Output("y", kFloat, {3});
  auto& node = g.Node("ScatterElements", {"data", "indices", "updates"}, {"y"});
  auto* reduction = node.add_attribute();
  reduction->set_name("reduction");
  reduction->set_type(onnx::AttributeProto::STRING);
  reduction->set_s("add");
  auto out = RunGraph(g, {{"data", Tensor::FromValues<float>({3}, {1, 1, 1})},
                          {"indices", Tensor::FromValues<int64_t>({4}, {0, 2, 0, -1})},
                          {"updates", Tensor::FromValues<float>({4}, {1, 2, 3, 4})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").values<float>(),
            (absl::Span<const float>(std::vector<float>{5, 1, 7})));
}

TEST(ExpandTest, IncompatibleShapeIsAnError) {
  GraphBuilder g;
  g.Input("x", kFloat, {3, 2}).Input("shape", kInt64, {-1}).Output("y", kFloat, {-1, -1});
  g.Node("Expand", {"x", "shape"}, {"y"});
  const Tensor x(DataType::kFloat32, {3, 2});
  auto out = RunGraph(g, {{"x", x}, {"shape", Tensor::FromValues<int64_t>({2}, {4, 2})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("shapes [3,2] and [4,2] cannot be broadcast"));
  out = RunGraph(g, {{"x", x}, {"shape", Tensor::FromValues<int64_t>({2}, {-1, 2})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("shape [-1,2] has a negative dimension"));
  out = RunGraph(g, {{"x", x}, {"shape", Tensor::FromValues<int64_t>({3}, {2, 1, 1})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").shape(), (std::vector<int64_t>{2, 3, 2}));
}

TEST(SplitTest, SizesThatDoNotSumToTheAxisAreAnError) {
  GraphBuilder g;
  g.Input("x", kFloat, {6}).Input("split", kInt64, {-1});
  g.Output("a", kFloat, {-1}).Output("b", kFloat, {-1});
  g.Node("Split", {"x", "split"}, {"a", "b"});
  const Tensor x(DataType::kFloat32, {6});
  auto out = RunGraph(g, {{"x", x}, {"split", Tensor::FromValues<int64_t>({2}, {2, 3})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("split sizes sum to 5 but axis 0 has size 6"));
  out = RunGraph(g, {{"x", x}, {"split", Tensor::FromValues<int64_t>({3}, {2, 2, 2})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("split has 3 sizes for 2 outputs"));
  out = RunGraph(g, {{"x", x}, {"split", Tensor::FromValues<int64_t>({2}, {7, -1})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("split size -1 is negative"));
}

TEST(SplitTest, UnequalDefaultSplitIsAnErrorBeforeOpset18) {
  GraphBuilder g;
  g.Input("x", kFloat, {5}).Output("a", kFloat, {-1}).Output("b", kFloat, {-1});
  g.Node("Split", {"x"}, {"a", "b"});
  auto out = RunGraph(g, {{"x", Tensor(DataType::kFloat32, {5})}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(),
              HasSubstr("cannot split an axis of size 5 into 2 equal parts"));
}

// Before opset 13 the sizes are an attribute.
TEST(SplitTest, SizesAsAnAttributeAtOpset11) {
  GraphBuilder g11;
  g11.Input("x", kFloat, {2, 5}).Output("a", kFloat, {2, 1}).Output("b", kFloat, {2, 4});
  auto& node = g11.Node("Split", {"x"}, {"a", "b"});
  SetInt(node, "axis", -1);
  auto* split = node.add_attribute();
  split->set_name("split");
  split->set_type(onnx::AttributeProto::INTS);
  split->add_ints(1);
  split->add_ints(4);
  onnx::ModelProto model = g11.proto();
  model.mutable_opset_import(0)->set_version(11);
  auto loaded = Model::FromBytes(model.SerializeAsString(), "split11.onnx", {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto executor = Executor::Create(*loaded);
  ASSERT_TRUE(executor.ok()) << executor.status();
  auto out = (*executor)->Run(
      {{"x", Tensor::FromValues<float>({2, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("a").values<float>(), (absl::Span<const float>(std::vector<float>{0, 5})));
  EXPECT_EQ(out->at("b").values<float>(),
            (absl::Span<const float>(std::vector<float>{1, 2, 3, 4, 6, 7, 8, 9})));
}

}  // namespace
}  // namespace qat
