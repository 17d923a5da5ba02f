// The executor's Conv + bias + Relu/Clip fusion (ExecutorOptions::
// fuse_conv_activations): on every Conv path, with and without a bias, for
// Relu and for Clip (bounds as initializers, as attributes before opset 11,
// one bound only, min > max), on inputs with NaN and zeros of both signs,
// the fused run gives the unfused run's bits, on 1 and 2 threads.  Whether a
// Conv was fused shows in the node description of its errors ("fused
// with"); a Conv whose output is a graph output, has a second reader, or
// feeds a Clip with a computed bound is left alone.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "graph_builder.h"
#include "qat/executor.h"
#include "qat/model.h"

namespace qat {
namespace {

Tensor RandomTensor(const std::vector<int64_t>& shape, uint32_t seed) {
  Tensor t(DataType::kFloat32, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  float* v = t.data<float>();
  for (int64_t i = 0; i < t.num_elements(); ++i) v[i] = u(rng);
  // Zeros of both signs, and a NaN, which Relu and Clip treat differently.
  for (int64_t i = 0; i < t.num_elements(); i += 13) v[i] = (i / 13) % 2 == 0 ? 0.0f : -0.0f;
  if (t.num_elements() > 5) v[5] = std::numeric_limits<float>::quiet_NaN();
  return t;
}

Tensor Scalar(float v) {
  Tensor t(DataType::kFloat32, {});
  t.data<float>()[0] = v;
  return t;
}

struct Shape {
  std::vector<int64_t> x, w;
  int64_t group;
  std::vector<int64_t> strides, pads;
  const char* path;
};

enum class Act { kRelu, kClip06, kClipMinOnly, kClipMinAboveMax, kClipAttributes };

const char* Name(Act a) {
  switch (a) {
    case Act::kRelu: return "Relu";
    case Act::kClip06: return "Clip(0, 6)";
    case Act::kClipMinOnly: return "Clip(-0.5)";
    case Act::kClipMinAboveMax: return "Clip(1, -1)";
    case Act::kClipAttributes: return "Clip-6 attributes";
  }
  return "?";
}

// x -> Conv -> activation -> y, every dimension symbolic.
GraphBuilder ConvAct(const Shape& s, bool bias, Act act) {
  GraphBuilder g;
  if (act == Act::kClipAttributes) {
    auto* opset = const_cast<onnx::ModelProto&>(g.proto()).mutable_opset_import(0);
    opset->set_version(6);  // Clip-6; Conv is Conv-1
  }
  g.Input("x", kFloat, {-1, -1, -1, -1}).Output("y", kFloat, {-1, -1, -1, -1});
  g.Initializer("w", RandomTensor(s.w, 8));
  std::vector<std::string> inputs = {"x", "w"};
  if (bias) {
    g.Initializer("b", RandomTensor({s.w[0]}, 9));
    inputs.push_back("b");
  }
  auto& conv = g.Node("Conv", inputs, {"c"});
  SetInt(conv, "group", s.group);
  SetInts(conv, "strides", s.strides);
  SetInts(conv, "pads", s.pads);
  switch (act) {
    case Act::kRelu:
      g.Node("Relu", {"c"}, {"y"});
      break;
    case Act::kClip06:
      g.Initializer("lo", Scalar(0.0f)).Initializer("hi", Scalar(6.0f));
      g.Node("Clip", {"c", "lo", "hi"}, {"y"});
      break;
    case Act::kClipMinOnly:
      g.Initializer("lo", Scalar(-0.5f));
      g.Node("Clip", {"c", "lo"}, {"y"});
      break;
    case Act::kClipMinAboveMax:
      g.Initializer("lo", Scalar(1.0f)).Initializer("hi", Scalar(-1.0f));
      g.Node("Clip", {"c", "lo", "hi"}, {"y"});
      break;
    case Act::kClipAttributes: {
      auto& clip = g.Node("Clip", {"c"}, {"y"});
      SetFloat(clip, "min", 0.0f);
      SetFloat(clip, "max", 6.0f);
      break;
    }
  }
  return g;
}

absl::StatusOr<Tensor> RunY(GraphBuilder& g, const Tensor& x, bool fuse, int threads) {
  auto model = g.Build(/*check=*/false);
  if (!model.ok()) return model.status();
  ExecutorOptions options;
  options.num_threads = threads;
  options.fuse_conv_activations = fuse;
  auto executor = Executor::Create(*model, options);
  if (!executor.ok()) return executor.status();
  auto out = (*executor)->Run({{"x", x}});
  if (!out.ok()) return out.status();
  return out->at("y");
}

// The error of a run on an input with one channel too many: its node
// description says whether the Conv was fused.
std::string ErrorOf(GraphBuilder& g, const Shape& s, bool fuse) {
  std::vector<int64_t> bad = s.x;
  bad[1] += 1;
  auto y = RunY(g, RandomTensor(bad, 3), fuse, 1);
  return y.ok() ? "no error" : std::string(y.status().message());
}

const Shape kShapes[] = {
    {{3, 16, 9, 9}, {24, 16, 1, 1}, 1, {1, 1}, {0, 0, 0, 0}, "pointwise"},
    {{3, 12, 11, 13}, {12, 1, 3, 3}, 12, {1, 1}, {1, 1, 1, 1}, "depthwise"},
    {{2, 8, 16, 17}, {8, 1, 3, 3}, 8, {2, 2}, {1, 1, 1, 1}, "depthwise stride 2"},
    {{2, 12, 9, 9}, {4, 3, 7, 7}, 4, {1, 1}, {1, 1, 1, 1}, "small output"},
    {{2, 6, 14, 14}, {16, 6, 5, 5}, 1, {1, 1}, {0, 0, 0, 0}, "direct"},
    {{4, 64, 8, 8}, {64, 64, 3, 3}, 1, {1, 1}, {1, 1, 1, 1}, "im2col + GEMM"},
    {{2, 8, 9, 9}, {8, 8, 1, 1}, 1, {2, 2}, {0, 0, 0, 0}, "1x1 stride 2 (im2col)"},
};

TEST(ConvFusionTest, FusedGivesTheUnfusedBitsOnEveryPath) {
  for (const Shape& s : kShapes) {
    const Tensor x = RandomTensor(s.x, 7);
    for (bool bias : {true, false}) {
      for (Act act : {Act::kRelu, Act::kClip06, Act::kClipMinOnly, Act::kClipMinAboveMax,
                      Act::kClipAttributes}) {
        GraphBuilder g = ConvAct(s, bias, act);
        const std::string what =
            std::string(s.path) + (bias ? " + bias + " : " + ") + Name(act);
        EXPECT_NE(ErrorOf(g, s, true).find("fused with"), std::string::npos) << what;
        EXPECT_EQ(ErrorOf(g, s, false).find("fused with"), std::string::npos) << what;
        auto want = RunY(g, x, /*fuse=*/false, 1);
        ASSERT_TRUE(want.ok()) << what << ": " << want.status();
        for (int threads : {1, 2}) {
          auto got = RunY(g, x, /*fuse=*/true, threads);
          ASSERT_TRUE(got.ok()) << what << ": " << got.status();
          ASSERT_EQ(got->shape(), want->shape()) << what;
          EXPECT_EQ(std::memcmp(got->raw_data(), want->raw_data(),
                                want->num_elements() * sizeof(float)),
                    0)
              << what << " on " << threads << " threads";
        }
      }
    }
  }
}

TEST(ConvFusionTest, TheNaNAndZerosReachTheActivation) {
  // The test data must exercise what distinguishes the ops: Relu maps NaN to
  // 0 and Clip keeps it.
  const Shape& s = kShapes[0];
  const Tensor x = RandomTensor(s.x, 7);
  GraphBuilder relu = ConvAct(s, true, Act::kRelu), clip = ConvAct(s, true, Act::kClip06);
  auto r = RunY(relu, x, true, 1), c = RunY(clip, x, true, 1);
  ASSERT_TRUE(r.ok() && c.ok());
  int nan_relu = 0, nan_clip = 0;
  for (int64_t i = 0; i < r->num_elements(); ++i) {
    nan_relu += std::isnan(r->data<float>()[i]);
    nan_clip += std::isnan(c->data<float>()[i]);
  }
  EXPECT_EQ(nan_relu, 0);
  EXPECT_GT(nan_clip, 0);
}

TEST(ConvFusionTest, LeavesConvAloneWhenItsOutputIsNeededOrTheBoundIsComputed) {
  const Shape& s = kShapes[5];
  const Tensor x = RandomTensor(s.x, 7);
  {  // the Conv's output is also a graph output
    GraphBuilder g = ConvAct(s, true, Act::kRelu);
    GraphBuilder::Declare(const_cast<onnx::ModelProto&>(g.proto()).mutable_graph()->add_output(),
                          "c", kFloat, {-1, -1, -1, -1});
    EXPECT_EQ(ErrorOf(g, s, true).find("fused with"), std::string::npos);
    auto model = g.Build(false);
    ASSERT_TRUE(model.ok());
    auto exec = Executor::Create(*model);
    ASSERT_TRUE(exec.ok());
    auto out = (*exec)->Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status();
    // c keeps the negative values that y clamps.
    int negative = 0;
    for (int64_t i = 0; i < out->at("c").num_elements(); ++i) {
      negative += out->at("c").data<float>()[i] < 0;
    }
    EXPECT_GT(negative, 0);
  }
  {  // a second reader (backward in a training graph reads Conv outputs so)
    GraphBuilder g = ConvAct(s, true, Act::kRelu);
    g.Node("Neg", {"c"}, {"n"});
    GraphBuilder::Declare(const_cast<onnx::ModelProto&>(g.proto()).mutable_graph()->add_output(),
                          "n", kFloat, {-1, -1, -1, -1});
    EXPECT_EQ(ErrorOf(g, s, true).find("fused with"), std::string::npos);
    auto fused = RunY(g, x, true, 2), plain = RunY(g, x, false, 2);
    ASSERT_TRUE(fused.ok() && plain.ok());
    EXPECT_EQ(std::memcmp(fused->raw_data(), plain->raw_data(),
                          plain->num_elements() * sizeof(float)), 0);
  }
  {  // Clip's bound is a graph input, not a constant
    GraphBuilder g = ConvAct(s, true, Act::kRelu);
    auto& graph = *const_cast<onnx::ModelProto&>(g.proto()).mutable_graph();
    graph.mutable_node(1)->set_op_type("Clip");
    graph.mutable_node(1)->add_input("lo");
    GraphBuilder::Declare(graph.add_input(), "lo", kFloat, {});
    auto model = g.Build(false);
    ASSERT_TRUE(model.ok());
    auto exec = Executor::Create(*model);
    ASSERT_TRUE(exec.ok());
    std::vector<int64_t> bad = s.x;
    bad[1] += 1;
    auto out = (*exec)->Run({{"x", RandomTensor(bad, 3)}, {"lo", Scalar(0.0f)}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(std::string(out.status().message()).find("fused with"), std::string::npos)
        << out.status();
  }
}

}  // namespace
}  // namespace qat
