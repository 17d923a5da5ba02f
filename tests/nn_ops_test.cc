// The neural-network layer ops of issue 14 beyond ONNX's node tests (which
// onnx_conformance_test runs): bad input gives InvalidArgument naming the
// node, never a crash or a huge allocation; and their gradients work with a
// dynamic batch, as real models have.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/model_internal.h"
#include "gmock/gmock.h"
#include "gradient_check.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "passes/gradient_builder.h"
#include "qat/executor.h"

namespace qat {
namespace {

using ::testing::HasSubstr;
using testing::RandomTensor;

onnx::AttributeProto StringAttr(const std::string& name, const std::string& value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRING);
  a.set_s(value);
  return a;
}

Tensor Floats(std::vector<int64_t> shape, std::vector<float> v) {
  return Tensor::FromValues<float>(std::move(shape), v);
}
Tensor Int64s(std::vector<int64_t> shape, std::vector<int64_t> v) {
  return Tensor::FromValues<int64_t>(std::move(shape), v);
}

// One node named "bad" over constant inputs ("" for an absent one), run once.
absl::Status RunOne(const std::string& op, int64_t opset,
                    const std::vector<std::pair<std::string, Tensor>>& inputs,
                    const std::vector<onnx::AttributeProto>& attrs = {}) {
  GraphBuilder g;
  onnx::ModelProto proto = g.proto();
  proto.mutable_opset_import(0)->set_version(opset);
  onnx::GraphProto* graph = proto.mutable_graph();
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type(op);
  node->set_name("bad");
  for (const auto& [name, value] : inputs) {
    node->add_input(name);
    if (!name.empty()) *graph->add_initializer() = TensorToProto(value, name);
  }
  node->add_output("y");
  for (const auto& a : attrs) *node->add_attribute() = a;
  GraphBuilder::Declare(graph->add_output(), "y", kFloat, {});
  graph->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  return RunUncheckedProto(proto, op + ".onnx").status();
}

void ExpectInvalid(const absl::Status& s, const std::string& what) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("bad")) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(what)) << s;
}

TEST(NnOpsTest, BadResizeParametersAreInvalidArgument) {
  const Tensor x = RandomTensor({1, 1, 2, 2}, 1);
  const Tensor none;
  auto resize = [&](Tensor scales, Tensor sizes) {
    std::vector<std::pair<std::string, Tensor>> in = {{"x", x}, {"", none}};
    in.push_back({scales.num_elements() > 0 ? "scales" : "", scales});
    if (sizes.num_elements() > 0) in.push_back({"sizes", sizes});
    return RunOne("Resize", 13, in);
  };
  // A scale that would ask for ~1e30 elements, none, a negative one, NaN.
  ExpectInvalid(resize(Floats({4}, {1, 1, 1e30f, 1}), none), "too large");
  ExpectInvalid(resize(Floats({4}, {1, 1, 0, 1}), none), "scales[2]");
  ExpectInvalid(resize(Floats({4}, {1, 1, -2, 1}), none), "scales[2]");
  ExpectInvalid(resize(Floats({4}, {1, 1, NAN, 1}), none), "scales[2]");
  ExpectInvalid(resize(Floats({3}, {1, 1, 2}), none), "rank 4");
  ExpectInvalid(resize(none, Int64s({4}, {1, 1, -3, 2})), "sizes[2]");
  ExpectInvalid(resize(none, Int64s({2}, {4, 4})), "rank 4");
  ExpectInvalid(resize(Floats({4}, {1, 1, 2, 2}), Int64s({4}, {1, 1, 4, 4})), "only one");
  ExpectInvalid(resize(none, none), "scales and sizes");
  // Sizes whose product overflows.
  ExpectInvalid(resize(none, Int64s({4}, {1, 1, int64_t{1} << 40, int64_t{1} << 40})),
                "bad");
  ExpectInvalid(RunOne("Upsample", 9, {{"x", x}, {"s", Floats({4}, {1, 1, 1e30f, 1})}}),
                "too large");
}

TEST(NnOpsTest, BadLayerInputsAreInvalidArgument) {
  onnx::AttributeProto axis;
  axis.set_name("axis");
  axis.set_type(onnx::AttributeProto::INT);
  axis.set_i(5);
  ExpectInvalid(RunOne("LayerNormalization", 17,
                       {{"x", RandomTensor({2, 3}, 2)}, {"s", RandomTensor({3}, 3)}}, {axis}),
                "axis 5");
  ExpectInvalid(RunOne("LayerNormalization", 17,
                       {{"x", RandomTensor({2, 3}, 2)}, {"s", RandomTensor({4}, 3)}}),
                "Scale");
  ExpectInvalid(RunOne("InstanceNormalization", 13,
                       {{"x", RandomTensor({2, 3, 4}, 4)}, {"s", RandomTensor({2}, 5)},
                        {"b", RandomTensor({3}, 6)}}),
                "scale");
  ExpectInvalid(RunOne("GlobalMaxPool", 13, {{"x", RandomTensor({2, 3}, 7)}}), "rank");
  onnx::AttributeProto kernel;
  kernel.set_name("kernel_shape");
  kernel.set_type(onnx::AttributeProto::INTS);
  kernel.add_ints(2);
  kernel.add_ints(2);
  onnx::AttributeProto strides = kernel;
  strides.set_name("strides");
  ExpectInvalid(RunOne("MaxUnpool", 11,
                       {{"x", RandomTensor({1, 1, 2, 2}, 8)},
                        {"i", Int64s({1, 1, 2, 2}, {0, 3, 99, 5})}},
                       {kernel}),
                "index 99");
  ExpectInvalid(RunOne("MaxUnpool", 11,
                       {{"x", RandomTensor({1, 1, 2, 2}, 8)},
                        {"i", Int64s({1, 1, 2, 2}, {0, 3, 8, 15})},
                        {"shape", Int64s({4}, {1, 1, 3, 3})}},
                       {kernel, strides}),
                "output_shape");
}

TEST(NnOpsTest, BadDetectionInputsAreInvalidArgument) {
  ExpectInvalid(RunOne("GridSample", 16,
                       {{"x", RandomTensor({1, 1, 3, 3}, 9)}, {"g", RandomTensor({1, 2, 2, 3}, 10)}}),
                "grid");
  ExpectInvalid(RunOne("GridSample", 16,
                       {{"x", RandomTensor({1, 1, 3, 3}, 9)}, {"g", RandomTensor({1, 2, 2, 2}, 10)}},
                       {StringAttr("mode", "lanczos")}),
                "lanczos");
  ExpectInvalid(RunOne("RoiAlign", 16,
                       {{"x", RandomTensor({1, 1, 4, 4}, 11)},
                        {"r", Floats({1, 4}, {0, 0, 2, 2})},
                        {"b", Int64s({1}, {5})}}),
                "batch index 5");
  ExpectInvalid(RunOne("NonMaxSuppression", 11,
                       {{"boxes", RandomTensor({1, 3, 3}, 12)},
                        {"scores", RandomTensor({1, 1, 3}, 13)}}),
                "boxes");
}

// loss = sum(GlobalMaxPool(InstanceNorm(LayerNorm(Resize(x))))) over a
// batch of any size: the gradients of a batch are the sums of those of its
// samples, run through one training graph built for a symbolic batch.
TEST(NnOpsTest, GradientsWorkWithADynamicBatch) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 2, 3, 4});
  g.Initializer("scales", Floats({4}, {1, 1, 2, 1.5f}));
  g.Initializer("ln_scale", RandomTensor({6}, 20, 0.5f, 1.5f));
  g.Initializer("ln_b", RandomTensor({6}, 21));
  g.Initializer("in_scale", RandomTensor({2}, 22, 0.5f, 1.5f));
  g.Initializer("in_b", RandomTensor({2}, 23));
  auto& resize = g.Node("Resize", {"x", "", "scales"}, {"r"});
  *resize.add_attribute() = StringAttr("mode", "linear");
  *resize.add_attribute() = StringAttr("coordinate_transformation_mode", "pytorch_half_pixel");
  g.Node("LayerNormalization", {"r", "ln_scale", "ln_b"}, {"l"});
  g.Node("InstanceNormalization", {"l", "in_scale", "in_b"}, {"n"});
  g.Node("GlobalMaxPool", {"n"}, {"p"});
  SetInt(g.Node("ReduceSum", {"p"}, {"loss"}), "keepdims", 0);
  g.Output("loss", kFloat, {});
  auto forward = g.Build();
  ASSERT_TRUE(forward.ok()) << forward.status();
  onnx::ModelProto proto = ModelAccess::Proto(*forward);
  const std::vector<std::string> params = {"ln_scale", "ln_b", "in_scale", "in_b"};
  auto changed = training::BuildGradientsPass("loss", params).Run(&proto);
  ASSERT_TRUE(changed.ok()) << changed.status();
  auto model = Model::FromBytes(proto.SerializeAsString(), "training.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  auto executor = Executor::Create(*model);
  ASSERT_TRUE(executor.ok()) << executor.status();
  const Tensor a = RandomTensor({1, 2, 3, 4}, 30), b = RandomTensor({1, 2, 3, 4}, 31);
  Tensor both(DataType::kFloat32, {2, 2, 3, 4});
  std::copy_n(a.data<float>(), 24, both.data<float>());
  std::copy_n(b.data<float>(), 24, both.data<float>() + 24);
  std::map<std::string, Tensor> out[3];
  const Tensor* inputs[3] = {&a, &b, &both};
  for (int k = 0; k < 3; ++k) {
    auto run = (*executor)->Run({{"x", *inputs[k]}});
    ASSERT_TRUE(run.ok()) << run.status();
    out[k] = *run;
  }
  for (const std::string& p : params) {
    const auto ga = out[0].at(p + "_grad").values<float>();
    const auto gb = out[1].at(p + "_grad").values<float>();
    const auto gab = out[2].at(p + "_grad").values<float>();
    ASSERT_EQ(gab.size(), ga.size());
    float norm = 0;
    for (size_t i = 0; i < ga.size(); ++i) {
      EXPECT_NEAR(gab[i], ga[i] + gb[i], 1e-4f) << p << "[" << i << "]";
      norm += std::fabs(gab[i]);
    }
    EXPECT_GT(norm, 0.0f) << p;
  }
}

// MaxPool (with Indices, both storage orders) and AveragePool (with and
// without count_include_pad) against a plain loop over every tap, on 1-, 2-
// and 3-D windows that reach into the padding in every way: pads on each
// side, strides, dilations and ceil_mode.
// Max is exact and the average sums in double in the same order, so the bits
// must agree.
TEST(NnOpsTest, PoolingMatchesEveryTapReference) {
  struct Case {
    std::vector<int64_t> x, kernel, strides, dilations, pads;
    bool ceil;
  };
  const Case cases[] = {
      {{2, 3, 7}, {3}, {2}, {1}, {1, 2}, false},
      {{1, 2, 9, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, false},  // ResNet's stem pool
      {{2, 2, 6, 7}, {3, 2}, {1, 2}, {2, 1}, {2, 0, 1, 1}, true},
      {{1, 3, 5, 5}, {2, 2}, {3, 3}, {1, 1}, {1, 1, 1, 1}, true},
      {{1, 1, 4, 4}, {2, 2}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false},
      {{1, 2, 5, 4, 6}, {3, 2, 3}, {2, 1, 2}, {1, 2, 1}, {1, 0, 1, 1, 1, 2}, false},
  };
  for (const Case& c : cases) {
    const size_t dims = c.kernel.size();
    const Tensor x = RandomTensor(c.x, 31);
    std::vector<int64_t> in(c.x.begin() + 2, c.x.end());
    for (const std::string op : {"MaxPool", "AveragePool"}) {
      for (int variant = 0; variant < 2; ++variant) {
        // MaxPool: storage_order; AveragePool: count_include_pad.
        GraphBuilder g;
        g.Input("x", kFloat, c.x);
        std::vector<std::string> outputs = {"y"};
        if (op == "MaxPool") outputs.push_back("i");
        auto& node = g.Node(op, {"x"}, outputs);
        SetInts(node, "kernel_shape", c.kernel);
        SetInts(node, "strides", c.strides);
        // AveragePool takes dilations from opset 19 on; libqat reads 17.
        const std::vector<int64_t> dilations =
            op == "MaxPool" ? c.dilations : std::vector<int64_t>(dims, 1);
        if (op == "MaxPool") SetInts(node, "dilations", dilations);
        SetInts(node, "pads", c.pads);
        SetInt(node, "ceil_mode", c.ceil ? 1 : 0);
        SetInt(node, op == "MaxPool" ? "storage_order" : "count_include_pad", variant);
        onnx::ModelProto proto = g.proto();
        for (const std::string& o : outputs) {  // shapes left to the executor
          GraphBuilder::Declare(proto.mutable_graph()->add_output(), o,
                                o == "i" ? onnx::TensorProto::INT64 : kFloat, {});
          proto.mutable_graph()->mutable_output()->rbegin()->mutable_type()
              ->mutable_tensor_type()->clear_shape();
        }
        auto out = RunUncheckedProto(proto, op + ".onnx", {{"x", x}});
        ASSERT_TRUE(out.ok()) << op << ": " << out.status();
        const Tensor& y = out->at("y");
        ASSERT_EQ(y.rank(), c.x.size());
        std::vector<int64_t> out_dims(y.shape().begin() + 2, y.shape().end());
        int64_t P = 1, in_size = 1, K = 1;
        for (size_t d = 0; d < dims; ++d) {
          P *= out_dims[d];
          in_size *= in[d];
          K *= c.kernel[d];
        }
        ASSERT_GT(P, 0);
        const float* xd = x.data<float>();
        for (int64_t plane = 0; plane < c.x[0] * c.x[1]; ++plane) {
          for (int64_t p = 0; p < P; ++p) {
            std::vector<int64_t> o(dims);
            for (int64_t rem = p, d = static_cast<int64_t>(dims) - 1; d >= 0; --d) {
              o[d] = rem % out_dims[d];
              rem /= out_dims[d];
            }
            float best = 0.0f;
            int64_t best_index = -1, count = 0;
            double sum = 0.0;
            for (int64_t kk = 0; kk < K; ++kk) {
              // The tap's position, and its offset in row-major and in
              // column-major order (the Indices of storage_order 1).
              std::vector<int64_t> pos(dims);
              bool inside = true, inside_padded = true;
              for (int64_t rem = kk, d = static_cast<int64_t>(dims) - 1; d >= 0; --d) {
                pos[d] = o[d] * c.strides[d] + (rem % c.kernel[d]) * dilations[d] - c.pads[d];
                rem /= c.kernel[d];
                inside = inside && pos[d] >= 0 && pos[d] < in[d];
                inside_padded = inside_padded && pos[d] < in[d] + c.pads[dims + d];
              }
              int64_t row_major = 0, col_major = 0;
              for (size_t d = 0, stride = 1; d < dims; stride *= in[d], ++d) {
                row_major = row_major * in[d] + pos[d];
                col_major += pos[d] * static_cast<int64_t>(stride);
              }
              const int64_t offset = row_major, index = variant == 1 ? col_major : row_major;
              if (op == "AveragePool" && variant == 1 && inside_padded) ++count;
              if (!inside) continue;
              const float v = xd[plane * in_size + offset];
              if (best_index < 0 || v > best) {
                best = v;
                best_index = index;
              }
              sum += static_cast<double>(v);
              if (!(op == "AveragePool" && variant == 1)) ++count;
            }
            const int64_t at = plane * P + p;
            if (op == "MaxPool") {
              if (best_index < 0) best = std::numeric_limits<float>::lowest();
              EXPECT_EQ(std::memcmp(&y.data<float>()[at], &best, sizeof(float)), 0)
                  << op << " case " << &c - cases << " output " << at;
              EXPECT_EQ(out->at("i").data<int64_t>()[at], plane * in_size + best_index)
                  << op << " case " << &c - cases << " output " << at;
            } else {
              const float want =
                  static_cast<float>(count > 0 ? sum / static_cast<double>(count) : 0.0);
              EXPECT_EQ(std::memcmp(&y.data<float>()[at], &want, sizeof(float)), 0)
                  << op << " case " << &c - cases << " output " << at << ": "
                  << y.data<float>()[at] << " vs " << want;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qat
