// The decompose pass: libqat's custom ops rewritten into standard ONNX ops.
//
// Oracles: the reference kernels of qat/kernels/fake_quant_reference.h and
// libqat's executor running the custom ops.  Tolerances:
//  - FakeQuant's output and mask, FakeQuantGrad and LSQ's dX: bit for bit
//    (NaN matches NaN: its sign and payload are unspecified);
//  - LSQ's dScale and dZeroPoint summed in float64 (the default): within one
//    float ulp of the reference (both sums are double; they differ only in
//    order, by about n * 2^-53 of the sum of |terms|); the tests print how
//    many are bit-identical, and on these inputs all are;
//  - summed in float32 (lsq_sums_in_double = false): within the recursive
//    summation bound (n + 2) * 2^-24 * g * sum|dY * local| (n terms per
//    channel), which the test computes from the inputs.
// Whole training graphs (MLP and LeNet-5, fixed and learned quantization
// parameters) give the same loss and gradients, bit for bit with fixed
// parameters.
#include "passes/decompose.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/model_internal.h"
#include "graph/graph_editor.h"
#include "gmock/gmock.h"
#include "gradient_check.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"
#include "qat/calibrate.h"
#include "qat/decompose.h"
#include "qat/executor.h"
#include "qat/fake_quant.h"
#include "qat/kernels/fake_quant_reference.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/training_graph.h"

namespace qat {
namespace {

using ::testing::HasSubstr;
using testing::RandomTensor;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- Helpers ----------------------------------------------------------------

int CountNodes(const Model& m, const std::string& op) {
  int n = 0;
  for (const auto& node : ModelAccess::Proto(m).graph().node()) n += node.op_type() == op;
  return n;
}

int CountCustomNodes(const Model& m) {
  int n = 0;
  for (const auto& node : ModelAccess::Proto(m).graph().node()) {
    n += !(node.domain().empty() || node.domain() == "ai.onnx");
  }
  return n;
}

bool ImportsCustomDomain(const Model& m) {
  for (const auto& op : ModelAccess::Proto(m).opset_import()) {
    if (op.domain() == "com.microsoft" || op.domain() == "ai.libqat") return true;
  }
  return false;
}

// The decomposed model, checked: standard ops only, and onnx::checker
// passes on it.
Model Decompose(const Model& m, DecomposeOptions options = {}) {
  auto d = DecomposeCustomOps(m, options);
  EXPECT_TRUE(d.ok()) << d.status();
  if (!d.ok()) return m;
  EXPECT_EQ(CountCustomNodes(*d), 0);
  EXPECT_FALSE(ImportsCustomDomain(*d));
  EXPECT_NO_THROW(onnx::checker::check_model(ModelAccess::Proto(*d)));
  return *d;
}

std::map<std::string, Tensor> RunModel(const Model& m, const std::map<std::string, Tensor>& in) {
  ExecutorOptions o;
  o.num_threads = 1;
  auto exec = Executor::Create(m, o);
  EXPECT_TRUE(exec.ok()) << exec.status();
  if (!exec.ok()) return {};
  auto out = (*exec)->Run(in);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::map<std::string, Tensor>{};
}

uint32_t Bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// Float tensors equal bit for bit (NaN matches NaN); bool tensors equal.
void ExpectSameBits(const Tensor& want, const Tensor& got, const std::string& name) {
  ASSERT_EQ(want.shape(), got.shape()) << name;
  ASSERT_EQ(want.dtype(), got.dtype()) << name;
  if (want.dtype() == DataType::kBool) {
    for (int64_t i = 0; i < want.num_elements(); ++i) {
      ASSERT_EQ(want.values<bool>()[i], got.values<bool>()[i]) << name << "[" << i << "]";
    }
    return;
  }
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const float w = want.values<float>()[i], g = got.values<float>()[i];
    if (std::isnan(w) && std::isnan(g)) continue;
    ASSERT_EQ(Bits(w), Bits(g)) << name << "[" << i << "]: want " << w << " got " << g;
  }
}

Tensor Floats(std::vector<int64_t> shape, std::vector<float> v) {
  return Tensor::FromValues<float>(std::move(shape), absl::MakeConstSpan(v));
}

Tensor Scalar(float v) { return Tensor::Scalar<float>(v); }

// Inputs on and around FakeQuant's interesting points for scale 0.25, zero
// point 3 and range [0, 15]: u = x / 0.25 exactly at .5 (round half to even
// in both directions), the range's ends, outside it, NaN, +-Inf, -0,
// denormals, the largest floats.
std::vector<float> EdgeValues() {
  return {0.125f,  0.375f,  -0.125f, 0.625f,  -0.625f, 2.375f, 2.875f, 3.125f,
          3.375f,  -0.75f,  -0.875f, kNaN,    kInf,    -kInf,  -0.0f,  0.0f,
          1e30f,   -1e30f,  std::numeric_limits<float>::max(),
          -std::numeric_limits<float>::max(), 1e-45f,  -1e-45f, 0.3f,  1.0f,
          std::nextafter(0.125f, 1.0f), std::nextafter(0.125f, 0.0f), 2.9999f, 3.0f};
}

// x -> FakeQuant -> (y, mask), per tensor or per channel.
Model FakeQuantModel(const std::vector<int64_t>& shape, const Tensor& scale,
                     const Tensor& zero_point, int64_t qmin, int64_t qmax,
                     int64_t axis, bool per_channel, bool with_mask = true,
                     int64_t block_size = 0) {
  GraphBuilder b;
  b.AddOpset(per_channel ? "ai.libqat" : "com.microsoft", 1);
  b.Input("x", kFloat, shape).Output("y", kFloat, shape);
  if (with_mask) b.Output("mask", kBool, shape);
  b.Initializer("s", scale).Initializer("z", zero_point);
  std::vector<std::string> outs = {"y"};
  if (with_mask) outs.push_back("mask");
  auto& n = b.Node("FakeQuant", {"x", "s", "z"}, outs, per_channel ? "ai.libqat" : "com.microsoft");
  SetInt(n, "quant_min", qmin);
  SetInt(n, "quant_max", qmax);
  if (per_channel) SetInt(n, "axis", axis);
  if (block_size != 0) SetInt(n, "block_size", block_size);
  auto m = b.Build();
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// ---- FakeQuant --------------------------------------------------------------

TEST(DecomposeTest, PerTensorFakeQuantIsBitIdenticalOnEdgeInputs) {
  const std::vector<float> x = EdgeValues();
  const int64_t n = static_cast<int64_t>(x.size());
  const Model m = FakeQuantModel({n}, Scalar(0.25f), Scalar(3.0f), 0, 15, 0, false);
  const Model d = Decompose(m);
  // One op per step of QuantizeLinear -> DequantizeLinear, and the mask.
  for (const char* op : {"Div", "Round", "Add", "Clip", "Sub", "Mul", "GreaterOrEqual",
                         "LessOrEqual", "And"}) {
    EXPECT_EQ(CountNodes(d, op), 1) << op;
  }
  const Tensor xt = Floats({n}, x);
  auto want = RunModel(m, {{"x", xt}});
  auto got = RunModel(d, {{"x", xt}});
  ExpectSameBits(want.at("y"), got.at("y"), "y");
  ExpectSameBits(want.at("mask"), got.at("mask"), "mask");
  // And the reference kernel itself.
  std::vector<float> y(n);
  std::unique_ptr<bool[]> mask(new bool[n]);
  kernels::FakeQuantReference(n, x.data(), y.data(), mask.get(), {0.25f, 3.0f, 0.0f, 15.0f});
  ExpectSameBits(Floats({n}, y), got.at("y"), "y vs reference");
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(mask[i], got.at("mask").values<bool>()[i]) << "mask[" << i << "] x=" << x[i];
  }
  // The policy, spelled out: NaN stays NaN with mask false, +-Inf clamp with
  // mask false, exact halves round to even.
  const auto y_of = [&](float v) {
    for (int64_t i = 0; i < n; ++i) {
      if (Bits(x[i]) == Bits(v)) return got.at("y").values<float>()[i];
    }
    return -12345.0f;
  };
  EXPECT_TRUE(std::isnan(y_of(kNaN)));
  EXPECT_EQ(y_of(kInf), (15.0f - 3.0f) * 0.25f);
  EXPECT_EQ(y_of(-kInf), (0.0f - 3.0f) * 0.25f);
  EXPECT_EQ(y_of(0.125f), 0.0f);   // u = 0.5 -> 0
  EXPECT_EQ(y_of(0.375f), 0.5f);   // u = 1.5 -> 2
  EXPECT_EQ(y_of(-0.625f), -0.5f);  // u = -2.5 -> -2
  EXPECT_EQ(y_of(3.375f), 3.0f);   // u = 13.5 -> 14, level 17 clamps to 15
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i]) || std::isinf(x[i])) {
      EXPECT_FALSE(got.at("mask").values<bool>()[i]) << x[i];
    }
  }
}

TEST(DecomposeTest, PerTensorFakeQuantMatchesOnARandomBatchAndScaleOneTenth) {
  // A scale that is not a power of two, uint8 with zero point 128; values
  // on k * 0.1 + 0.05 and random ones, a quarter out of range.
  Tensor x = RandomTensor({4, 64}, 3, -16.0f, 16.0f);
  for (int k = -130; k < -130 + 64; ++k) x.values<float>()[k + 130] = k * 0.1f + 0.05f;
  const Model m = FakeQuantModel({4, 64}, Scalar(0.1f), Scalar(128.0f), 0, 255, 0, false);
  const Model d = Decompose(m);
  auto want = RunModel(m, {{"x", x}});
  auto got = RunModel(d, {{"x", x}});
  ExpectSameBits(want.at("y"), got.at("y"), "y");
  ExpectSameBits(want.at("mask"), got.at("mask"), "mask");
  int outside = 0;
  for (bool b : got.at("mask").values<bool>()) outside += !b;
  EXPECT_GT(outside, 16);  // the out-of-range path is exercised
}

TEST(DecomposeTest, PerChannelFakeQuantBroadcastsAlongAnyAxis) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t axis;
    int reshapes;  // scale and zero point reshaped unless the axis is the last
  };
  for (const Case& c : {Case{{2, 3, 2, 2}, 1, 2}, Case{{4, 3}, -1, 0}, Case{{3, 4}, 0, 2},
                        Case{{2, 2, 3}, 2, 0}, Case{{3, 2, 2}, -3, 2}}) {
    SCOPED_TRACE(::testing::Message() << "axis " << c.axis << " rank " << c.shape.size());
    const int64_t a = c.axis < 0 ? c.axis + static_cast<int64_t>(c.shape.size()) : c.axis;
    const int64_t channels = c.shape[a];
    std::vector<float> scales, zps;
    for (int64_t k = 0; k < channels; ++k) {
      scales.push_back(k == 0 ? 0.25f : 0.1f * (k + 1));
      zps.push_back(static_cast<float>(k * 3 - 2));
    }
    int64_t n = 1;
    for (int64_t d : c.shape) n *= d;
    Tensor x = RandomTensor(c.shape, 7, -40.0f, 40.0f);
    const std::vector<float> edges = EdgeValues();
    for (int64_t i = 0; i < n && i < static_cast<int64_t>(edges.size()); ++i) {
      x.values<float>()[i] = edges[i];
    }
    const Model m = FakeQuantModel(c.shape, Floats({channels}, scales), Floats({channels}, zps),
                                   -127, 127, c.axis, true);
    const Model d = Decompose(m);
    EXPECT_EQ(CountNodes(d, "Reshape"), c.reshapes);
    auto want = RunModel(m, {{"x", x}});
    auto got = RunModel(d, {{"x", x}});
    ExpectSameBits(want.at("y"), got.at("y"), "y");
    ExpectSameBits(want.at("mask"), got.at("mask"), "mask");
    // The reference kernel over the [outer, channels, inner] layout.
    int64_t outer = 1, inner = 1;
    for (int64_t dd = 0; dd < a; ++dd) outer *= c.shape[dd];
    for (size_t dd = a + 1; dd < c.shape.size(); ++dd) inner *= c.shape[dd];
    std::vector<kernels::FakeQuantGrid> grids;
    for (int64_t k = 0; k < channels; ++k) grids.push_back({scales[k], zps[k], -127.0f, 127.0f});
    std::vector<float> y(n);
    kernels::FakeQuantPerChannelReference(outer, channels, inner, x.values<float>().data(),
                                          y.data(), nullptr, grids.data());
    ExpectSameBits(Floats(c.shape, y), got.at("y"), "y vs reference");
  }
}

// Blocked scale values for X of `shape`: entry e gets a distinct scale.
Tensor BlockScales(const std::vector<int64_t>& shape, int64_t axis, int64_t block) {
  auto ps = BlockedParamShape(shape, axis, block);
  EXPECT_TRUE(ps.ok()) << ps.status();
  int64_t n = 1;
  for (int64_t d : *ps) n *= d;
  std::vector<float> v(n);
  for (int64_t e = 0; e < n; ++e) v[e] = 0.05f * static_cast<float>(e % 7 + 1);
  return Floats(*ps, v);
}
Tensor BlockZeroPoints(const std::vector<int64_t>& shape, int64_t axis, int64_t block) {
  Tensor z = BlockScales(shape, axis, block);
  for (int64_t e = 0; e < z.num_elements(); ++e) {
    z.values<float>()[e] = static_cast<float>(e % 5) - 2.0f;
  }
  return z;
}

TEST(DecomposeTest, PerBlockFakeQuantRepeatsBlocksAndIsBitIdentical) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t axis, block;
    int slices;  // the last block's padding is sliced off unless blocks divide
  };
  for (const Case& c : {Case{{8, 3}, 0, 4, 0}, Case{{10, 3}, 0, 4, 1}, Case{{3, 10}, 1, 4, 1},
                        Case{{2, 7, 3}, 1, 3, 1}, Case{{2, 6, 3}, -2, 2, 0}}) {
    SCOPED_TRACE(::testing::Message() << "axis " << c.axis << " block " << c.block);
    const Tensor s = BlockScales(c.shape, c.axis, c.block);
    const Tensor z = BlockZeroPoints(c.shape, c.axis, c.block);
    Tensor x = RandomTensor(c.shape, 5, -3.0f, 3.0f);
    const std::vector<float> edges = EdgeValues();
    for (int64_t i = 0; i < x.num_elements() && i < static_cast<int64_t>(edges.size()); ++i) {
      x.values<float>()[i] = edges[i];
    }
    const Model m = FakeQuantModel(c.shape, s, z, -8, 7, c.axis, true, true, c.block);
    const Model d = Decompose(m);
    EXPECT_EQ(CountCustomNodes(d), 0);
    EXPECT_EQ(CountNodes(d, "Tile"), 2);
    EXPECT_EQ(CountNodes(d, "Slice"), 2 * c.slices);
    auto want = RunModel(m, {{"x", x}});
    auto got = RunModel(d, {{"x", x}});
    ExpectSameBits(want.at("y"), got.at("y"), "y");
    ExpectSameBits(want.at("mask"), got.at("mask"), "mask");
  }
}

TEST(DecomposeTest, AbsentMaskIsNotComputed) {
  const Model m = FakeQuantModel({5}, Scalar(0.5f), Scalar(0.0f), -8, 7, 0, false, false);
  const Model d = Decompose(m);
  EXPECT_EQ(CountNodes(d, "GreaterOrEqual"), 0);
  EXPECT_EQ(CountNodes(d, "And"), 0);
  const Tensor x = Floats({5}, {-9.0f, -0.25f, 0.75f, 3.4f, kNaN});
  ExpectSameBits(RunModel(m, {{"x", x}}).at("y"), RunModel(d, {{"x", x}}).at("y"), "y");
}

// ---- FakeQuantGrad ------------------------------------------------------------

TEST(DecomposeTest, FakeQuantGradIsAWhereThatGivesPlusZeroOutside) {
  GraphBuilder b;
  b.AddOpset("com.microsoft", 1);
  b.Input("dy", kFloat, {8}).Input("mask", kBool, {8}).Output("dx", kFloat, {8});
  b.Node("FakeQuantGrad", {"dy", "mask"}, {"dx"}, "com.microsoft");
  auto m = b.Build();
  ASSERT_TRUE(m.ok()) << m.status();
  const Model d = Decompose(*m);
  EXPECT_EQ(CountNodes(d, "Where"), 1);
  EXPECT_EQ(ModelAccess::Proto(d).graph().node_size(), 1);
  const Tensor dy = Floats({8}, {1.5f, -2.0f, kNaN, kNaN, kInf, -kInf, -0.0f, -3.0f});
  const std::vector<bool> mv = {true, false, true, false, false, true, true, false};
  Tensor mask(DataType::kBool, {8});
  for (int i = 0; i < 8; ++i) mask.values<bool>()[i] = mv[i];
  auto want = RunModel(*m, {{"dy", dy}, {"mask", mask}});
  auto got = RunModel(d, {{"dy", dy}, {"mask", mask}});
  ExpectSameBits(want.at("dx"), got.at("dx"), "dx");
  // +0 where the mask is false, whatever dY holds (NaN, Inf or negative).
  for (int i = 0; i < 8; ++i) {
    if (!mv[i]) {
      EXPECT_EQ(Bits(got.at("dx").values<float>()[i]), 0u) << i;
    }
  }
}

// ---- FakeQuantLsqGrad ---------------------------------------------------------

struct LsqCase {
  std::vector<int64_t> shape;
  Tensor scale, zero_point;
  int64_t qmin, qmax, axis;
  float grad_scale;
  int64_t block_size = 0;
};

Model LsqModel(const LsqCase& c) {
  GraphBuilder b;
  b.AddOpset("ai.libqat", 1);
  b.Input("x", kFloat, c.shape).Input("dy", kFloat, c.shape);
  b.Output("dx", kFloat, c.shape);
  std::vector<int64_t> ps(c.scale.shape().begin(), c.scale.shape().end());
  b.Output("ds", kFloat, ps).Output("dz", kFloat, ps);
  b.Initializer("s", c.scale).Initializer("z", c.zero_point);
  auto& n = b.Node("FakeQuantLsqGrad", {"x", "dy", "s", "z"}, {"dx", "ds", "dz"}, "ai.libqat");
  SetInt(n, "quant_min", c.qmin);
  SetInt(n, "quant_max", c.qmax);
  SetInt(n, "axis", c.axis);
  if (c.block_size != 0) SetInt(n, "block_size", c.block_size);
  auto* g = n.add_attribute();
  g->set_name("grad_scale");
  g->set_type(onnx::AttributeProto::FLOAT);
  g->set_f(c.grad_scale);
  auto m = b.Build();
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

std::vector<LsqCase> LsqCases() {
  return {
      // per tensor, a scalar scale; uint8
      {{4, 50}, Scalar(0.05f), Scalar(120.0f), 0, 255, 0, 0.37f},
      // per tensor stored as [1]; int8 narrow
      {{3, 7, 5}, Floats({1}, {0.02f}), Floats({1}, {0.0f}), -127, 127, 0, 0.011f},
      // per channel on axis 1 (reshaped), and on the last axis
      {{2, 3, 4, 5}, Floats({3}, {0.25f, 0.1f, 0.03f}), Floats({3}, {0.0f, 4.0f, -6.0f}), -8,
       7, 1, 0.2f},
      {{6, 4}, Floats({4}, {0.5f, 0.05f, 0.2f, 1.0f}), Floats({4}, {1.0f, 0.0f, 2.0f, 3.0f}),
       0, 15, -1, 1.0f},
  };
}

// dY random, X random over a range wider than the grid, with the edge values
// (NaN excluded: it makes dScale NaN, see the NaN test) at the start.
std::map<std::string, Tensor> LsqInputs(const LsqCase& c, uint32_t seed) {
  Tensor x = RandomTensor(c.shape, seed, -10.0f, 10.0f);
  const Tensor dy = RandomTensor(c.shape, seed + 1, -1.0f, 1.0f);
  int64_t i = 0;
  for (float v : EdgeValues()) {
    if (!std::isnan(v) && i < x.num_elements()) x.values<float>()[i++] = v;
  }
  return {{"x", x}, {"dy", dy}};
}

// Per channel (or block entry) of an LSQ case: the sums of |dY * local| and
// of |dY * s| outside the range, which bound the summation errors.
struct LsqAbsSums {
  std::vector<double> terms, outside;
  int64_t n = 0;  // terms per entry
};

LsqAbsSums AbsLsqTerms(const LsqCase& c, const std::map<std::string, Tensor>& in) {
  const int64_t entries = c.scale.num_elements();
  const int64_t rank = static_cast<int64_t>(c.shape.size());
  const int64_t a = c.axis < 0 ? c.axis + rank : c.axis;
  int64_t inner = 1;
  for (int64_t d = a + 1; d < rank; ++d) inner *= c.shape[d];
  const int64_t len = c.shape[a];
  const int64_t block = c.block_size == 0 ? len : c.block_size;
  const int64_t blocks = (len + block - 1) / block;
  LsqAbsSums out;
  out.terms.assign(entries, 0.0);
  out.outside.assign(entries, 0.0);
  out.n = in.at("x").num_elements() / entries;
  for (int64_t i = 0; i < in.at("x").num_elements(); ++i) {
    int64_t k = 0;  // the entry of element i
    if (entries > 1) {
      const int64_t o = i / (len * inner), j = (i / inner) % len, e = i % inner;
      k = c.block_size == 0 ? j : (o * blocks + j / block) * inner + e;
    }
    const float s = c.scale.values<float>()[k], z = c.zero_point.values<float>()[k];
    const float u = in.at("x").values<float>()[i] / s, r = std::nearbyint(u), v = r + z;
    const float lo = static_cast<float>(c.qmin), hi = static_cast<float>(c.qmax);
    const float local = v < lo ? lo - z : v > hi ? hi - z : r - u;
    const double dy = std::fabs(in.at("dy").values<float>()[i]);
    out.terms[k] += dy * std::fabs(local);
    if (v < lo || v > hi) out.outside[k] += dy * s;
  }
  return out;
}

// The kernel's float tree (qat/kernels/fake_quant_reference.h) passes a term
// through at most this many float roundings: its product, the adds of its
// lane within a block, the folds of the block sums into the lane total, the
// balanced tree of the lanes, and the final rounding of the gradient (the
// chunk sums add in double).  The recursive-summation bound is then
// depth * 2^-24 * g * sum|t| (to first order).
double KernelTreeGamma(int64_t n) {
  const int64_t in_block = std::min<int64_t>(n, kernels::kLsqBlock) / kernels::kLsqLanes + 1;
  const int64_t folds = std::min<int64_t>(n, kernels::kLsqChunk) / kernels::kLsqBlock + 1;
  int64_t tree = 0;
  for (int l = kernels::kLsqLanes; l > 1; l /= 2) ++tree;
  return static_cast<double>(1 + in_block + folds + tree + 1) * std::ldexp(1.0, -24);
}

// dScale and dZeroPoint of the kernel (`want`) and a decomposition (`got`,
// whose own sums contribute got_gamma) within the sum of both bounds.
void ExpectWithinLsqBound(const LsqCase& c, const std::map<std::string, Tensor>& in,
                          const std::map<std::string, Tensor>& want,
                          const std::map<std::string, Tensor>& got, double got_gamma) {
  const LsqAbsSums abs = AbsLsqTerms(c, in);
  const double gamma = KernelTreeGamma(abs.n) + got_gamma;
  for (int64_t k = 0; k < c.scale.num_elements(); ++k) {
    const double ds_err = std::fabs(double{want.at("ds").values<float>()[k]} -
                                    double{got.at("ds").values<float>()[k]});
    const double ds_bound = gamma * c.grad_scale * abs.terms[k];
    EXPECT_LE(ds_err, ds_bound) << "dScale[" << k << "]";
    const double dz_err = std::fabs(double{want.at("dz").values<float>()[k]} -
                                    double{got.at("dz").values<float>()[k]});
    EXPECT_LE(dz_err, gamma * c.grad_scale * abs.outside[k]) << "dZeroPoint[" << k << "]";
    if (k == 0) {
      std::cout << "n = " << abs.n << ": dScale error " << ds_err << " (bound " << ds_bound
                << ", value " << got.at("ds").values<float>()[k] << ")\n";
    }
  }
}

TEST(DecomposeTest, LsqGradMatchesTheKernelAndItsDoubleSums) {
  for (const LsqCase& c : LsqCases()) {
    SCOPED_TRACE(::testing::Message() << "scale shape rank " << c.scale.rank() << " elements "
                                      << c.scale.num_elements() << " axis " << c.axis);
    const Model m = LsqModel(c);
    const Model d = Decompose(m);
    EXPECT_EQ(CountNodes(d, "ReduceSum"), 2);
    EXPECT_EQ(CountNodes(d, "Cast"), 5);  // dY, local, scale to double; two results back
    const auto in = LsqInputs(c, 11);
    auto want = RunModel(m, in);
    auto got = RunModel(d, in);
    ExpectSameBits(want.at("dx"), got.at("dx"), "dx");
    // The kernel sums in float (its tree's bound); the decomposition in
    // double, whose error (n 2^-53 relative) and final rounding (one float
    // rounding) fit in one more 2^-24.
    ExpectWithinLsqBound(c, in, want, got, std::ldexp(1.0, -24));
    // Out-of-range inputs exist, so the zero-point gradient is not trivially 0.
    bool nonzero = false;
    for (float v : got.at("dz").values<float>()) nonzero |= v != 0.0f;
    EXPECT_TRUE(nonzero);
  }
}

TEST(DecomposeTest, PerBlockLsqGradSumsEachBlock) {
  for (const auto& [shape, axis, block] :
       {std::make_tuple(std::vector<int64_t>{10, 3}, int64_t{0}, int64_t{4}),
        std::make_tuple(std::vector<int64_t>{3, 8}, int64_t{1}, int64_t{4}),
        std::make_tuple(std::vector<int64_t>{2, 7, 3}, int64_t{1}, int64_t{3})}) {
    SCOPED_TRACE(::testing::Message() << "axis " << axis << " block " << block);
    LsqCase c{shape, BlockScales(shape, axis, block), BlockZeroPoints(shape, axis, block),
              -8, 7, axis, 0.3f, block};
    const Model m = LsqModel(c);
    const Model d = Decompose(m);
    EXPECT_EQ(CountCustomNodes(d), 0);
    EXPECT_EQ(CountNodes(d, "ReduceSum"), 2);
    const auto in = LsqInputs(c, 13);
    auto want = RunModel(m, in);
    auto got = RunModel(d, in);
    ExpectSameBits(want.at("dx"), got.at("dx"), "dx");
    ExpectWithinLsqBound(c, in, want, got, std::ldexp(1.0, -24));
    bool nonzero = false;
    for (float v : got.at("dz").values<float>()) nonzero |= v != 0.0f;
    EXPECT_TRUE(nonzero);
  }
}

TEST(DecomposeTest, LsqGradWithNaNInputGivesNaNScaleGradAndZeroDx) {
  const LsqCase c{{6}, Scalar(0.5f), Scalar(0.0f), -8, 7, 0, 1.0f};
  const Model m = LsqModel(c);
  const Model d = Decompose(m);
  const std::map<std::string, Tensor> in = {
      {"x", Floats({6}, {kNaN, 100.0f, -100.0f, 0.75f, kInf, 1.25f})},
      {"dy", Floats({6}, {1.0f, 0.5f, 0.25f, 2.0f, 4.0f, -1.0f})}};
  auto want = RunModel(m, in);
  auto got = RunModel(d, in);
  ExpectSameBits(want.at("dx"), got.at("dx"), "dx");
  EXPECT_EQ(got.at("dx").values<float>()[0], 0.0f);
  EXPECT_TRUE(std::isnan(got.at("ds").values<float>()[0]));
  // NaN is neither below nor above: the zero-point sum skips it.
  ExpectSameBits(want.at("dz"), got.at("dz"), "dz");
  EXPECT_EQ(got.at("dz").values<float>()[0], -(0.5f + 0.25f + 4.0f) * 0.5f);
}

TEST(DecomposeTest, LsqGradWithFloatSumsStaysWithinTheSummationBound) {
  std::vector<LsqCase> cases = LsqCases();
  cases.push_back({{200, 500}, Scalar(0.01f), Scalar(128.0f), 0, 255, 0, 0.003f});
  DecomposeOptions options;
  options.lsq_sums_in_double = false;
  for (const LsqCase& c : cases) {
    const Model m = LsqModel(c);
    const Model d = Decompose(m, options);
    EXPECT_EQ(CountNodes(d, "Cast"), 0);
    const auto in = LsqInputs(c, 21);
    auto want = RunModel(m, in);
    auto got = RunModel(d, in);
    ExpectSameBits(want.at("dx"), got.at("dx"), "dx");
    // The decomposition's n terms t = dY * local summed in float, each
    // product rounded: |error| <= (n + 2) 2^-24 g sum|t| (recursive
    // summation), and the same for dY * (-s) outside; plus the kernel's own
    // float tree.
    const int64_t n = in.at("x").num_elements() / c.scale.num_elements();
    ExpectWithinLsqBound(c, in, want, got, static_cast<double>(n + 2) * std::ldexp(1.0, -24));
  }
}

// ---- Conditions and errors ------------------------------------------------------

TEST(DecomposeTest, AGraphWithoutCustomOpsIsUnchanged) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok());
  onnx::ModelProto proto = ModelAccess::Proto(*mlp);
  const std::string before = proto.SerializeAsString();
  auto changed = passes::DecomposePass().Run(&proto);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(*changed);
  EXPECT_EQ(proto.SerializeAsString(), before);
  auto same = DecomposeCustomOps(*mlp);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->Serialize(), mlp->Serialize());
}

TEST(DecomposeTest, OpsetOlderThan13IsRefusedAndAMissingImportIsAdded) {
  const Model m = FakeQuantModel({4}, Scalar(0.5f), Scalar(0.0f), 0, 255, 0, false);
  onnx::ModelProto p = ModelAccess::Proto(m);
  for (auto& op : *p.mutable_opset_import()) {
    if (op.domain().empty()) op.set_version(12);
  }
  auto refused = passes::DecomposePass().Run(&p);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("Failed after decompose"));
  EXPECT_THAT(refused.status().message(), HasSubstr("opset 12"));

  // A graph of custom ops only, importing no standard opset, gets opset 13.
  for (int i = p.opset_import_size() - 1; i >= 0; --i) {
    if (p.opset_import(i).domain().empty()) p.mutable_opset_import()->DeleteSubrange(i, 1);
  }
  auto added = passes::DecomposePass().Run(&p);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_TRUE(*added);
  ASSERT_EQ(p.opset_import_size(), 1);
  EXPECT_EQ(p.opset_import(0).domain(), "");
  EXPECT_EQ(p.opset_import(0).version(), 13);
}

TEST(DecomposeTest, BadConstantParametersAreErrorsNamingTheNode) {
  for (float bad_scale : {0.0f, -1.0f, kNaN, kInf}) {
    const Model m = FakeQuantModel({4}, Scalar(bad_scale), Scalar(3.0f), 0, 255, 0, false);
    auto d = DecomposeCustomOps(m);
    ASSERT_FALSE(d.ok()) << bad_scale;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("FakeQuant_1"));
    EXPECT_THAT(d.status().message(), HasSubstr("scale 's'"));
  }
  const Model frac = FakeQuantModel({4}, Scalar(0.5f), Scalar(2.5f), 0, 255, 0, false);
  EXPECT_FALSE(DecomposeCustomOps(frac).ok());
  const Model outside = FakeQuantModel({4}, Scalar(0.5f), Scalar(300.0f), 0, 255, 0, false);
  EXPECT_FALSE(DecomposeCustomOps(outside).ok());
}

TEST(DecomposeTest, MissingShapesAreInferred) {
  // X of a per-channel node is an intermediate value without value_info.
  GraphBuilder b;
  b.AddOpset("ai.libqat", 1);
  b.Input("x", kFloat, {2, 3, 4}).Output("y", kFloat, {2, 3, 4});
  b.Initializer("s", Floats({3}, {0.1f, 0.2f, 0.3f})).Initializer("z", Floats({3}, {0, 0, 0}));
  b.Node("Relu", {"x"}, {"r"});
  auto& n = b.Node("FakeQuant", {"r", "s", "z"}, {"y"}, "ai.libqat");
  SetInt(n, "quant_min", -127);
  SetInt(n, "quant_max", 127);
  SetInt(n, "axis", 1);
  onnx::ModelProto p = b.proto();
  auto changed = passes::DecomposePass().Run(&p);
  ASSERT_TRUE(changed.ok()) << changed.status();
  auto d = Model::FromBytes(p.SerializeAsString(), "inferred.onnx");
  ASSERT_TRUE(d.ok()) << d.status();
  auto m = b.Build();
  ASSERT_TRUE(m.ok()) << m.status();
  const Tensor x = RandomTensor({2, 3, 4}, 5, -50.0f, 50.0f);
  ExpectSameBits(RunModel(*m, {{"x", x}}).at("y"), RunModel(*d, {{"x", x}}).at("y"), "y");
}

// ---- Whole training graphs --------------------------------------------------------

Tensor Labels(int64_t n) {
  Tensor t(DataType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) t.values<int64_t>()[i] = (i * 7 + 3) % 10;
  return t;
}

// The zoo model, calibrated on uniform data in [-1, 2], quantized (weights
// per channel, activations per tensor) and fused into FakeQuant nodes.
Model QuantizedZooModel(const Model& fp32, const std::vector<int64_t>& sample_shape) {
  std::vector<int64_t> shape = sample_shape;
  shape.insert(shape.begin(), 64);
  auto data = Dataset::Create(RandomTensor(shape, 1, -1.0f, 2.0f), Labels(64));
  EXPECT_TRUE(data.ok()) << data.status();
  CalibrateOptions co;
  co.per_channel_weights = true;
  auto table = Calibrate(fp32, *data, co);
  EXPECT_TRUE(table.ok()) << table.status();
  QuantizeOptions qo;
  qo.per_channel = true;
  auto qdq = QuantizeModel(fp32, *table, qo);
  EXPECT_TRUE(qdq.ok()) << qdq.status();
  auto fused = FuseQdqToFakeQuant(*qdq);
  EXPECT_TRUE(fused.ok()) << fused.status();
  return *fused;
}

void ExpectSameTraining(const std::string& name, const Model& fused,
                        const std::vector<int64_t>& batch_shape, bool learn) {
  SCOPED_TRACE(name + (learn ? ", learned" : ", fixed") + " quantization parameters");
  TrainingGraphOptions options;
  options.learn_quant_params = learn;
  auto models = BuildTrainingModels(fused, options);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_GT(CountNodes(models->training, "FakeQuant"), 0);
  EXPECT_EQ(CountNodes(models->training, "FakeQuantLsqGrad") > 0, learn);
  const Model d = Decompose(models->training);
  EXPECT_EQ(CountNodes(d, "FakeQuant"), 0);
  // Wider than the calibration data, so that masks have false entries.
  const std::map<std::string, Tensor> in = {
      {"input", RandomTensor(batch_shape, 9, -1.5f, 2.5f)}, {"labels", Labels(batch_shape[0])}};
  auto want = RunModel(models->training, in);
  auto got = RunModel(d, in);
  ASSERT_EQ(want.size(), got.size());
  ASSERT_EQ(want.size(), 1 + models->params.size());
  // The kernel's LSQ sums run in float, the decomposition's in double: each
  // FakeQuantLsqGrad node's gradients within the kernel tree's bound, from
  // the node's own X, dY, scale and zero point (exposed as outputs).
  int64_t lsq = 0, lsq_same = 0;
  for (const auto& node : ModelAccess::Proto(models->training).graph().node()) {
    if (node.op_type() != "FakeQuantLsqGrad") continue;
    auto probe = models->training.WithOutputs({node.input(0), node.input(1), node.input(2),
                                               node.input(3), node.output(1), node.output(2)});
    ASSERT_TRUE(probe.ok()) << probe.status();
    auto decomposed = d.WithOutputs({node.output(1), node.output(2)});
    ASSERT_TRUE(decomposed.ok()) << decomposed.status();
    auto seen = RunModel(*probe, in);
    auto seen_d = RunModel(*decomposed, in);
    LsqCase c{seen.at(node.input(0)).shape(), seen.at(node.input(2)), seen.at(node.input(3)),
              training::GetAttrInt(node, "quant_min", 0), training::GetAttrInt(node, "quant_max", 255),
              training::GetAttrInt(node, "axis", 0), 1.0f, training::GetAttrInt(node, "block_size", 0)};
    for (const auto& a : node.attribute()) {
      if (a.name() == "grad_scale") c.grad_scale = a.f();
    }
    const std::map<std::string, Tensor> terms = {{"x", seen.at(node.input(0))},
                                                 {"dy", seen.at(node.input(1))}};
    const std::map<std::string, Tensor> w = {{"ds", seen.at(node.output(1))},
                                             {"dz", seen.at(node.output(2))}};
    const std::map<std::string, Tensor> g = {{"ds", seen_d.at(node.output(1))},
                                             {"dz", seen_d.at(node.output(2))}};
    SCOPED_TRACE(node.name());
    ExpectWithinLsqBound(c, terms, w, g, std::ldexp(1.0, -24));
    for (const char* k : {"ds", "dz"}) {
      lsq += w.at(k).num_elements();
      for (int64_t i = 0; i < w.at(k).num_elements(); ++i) {
        lsq_same += Bits(w.at(k).values<float>()[i]) == Bits(g.at(k).values<float>()[i]);
      }
    }
  }
  for (const auto& [output, value] : want) {
    const bool lsq_grad = output.find("_fq_scale_grad") != std::string::npos ||
                          output.find("_fq_zero_point_grad") != std::string::npos;
    if (lsq_grad) {
      continue;  // the nodes' gradients, checked above
    } else {
      // The forward, the loss and the straight-through gradients: bit for bit.
      ExpectSameBits(value, got.at(output), output);
    }
  }
  EXPECT_EQ(lsq > 0, learn);
  std::cout << name << (learn ? " learned" : " fixed") << ": " << want.size()
            << " outputs, loss " << want.at("loss").values<float>()[0]
            << "; LSQ gradient elements bit-identical: " << lsq_same << " of " << lsq << "\n";
}

TEST(DecomposeTest, MlpTrainingGraphsGiveTheSameLossAndGradients) {
  auto mlp = MakeMlp();
  ASSERT_TRUE(mlp.ok());
  const Model fused = QuantizedZooModel(*mlp, {784});
  for (bool learn : {false, true}) ExpectSameTraining("mlp", fused, {8, 784}, learn);
}

TEST(DecomposeTest, LeNetTrainingGraphsGiveTheSameLossAndGradients) {
  auto lenet = MakeLeNet5();
  ASSERT_TRUE(lenet.ok());
  const Model fused = QuantizedZooModel(*lenet, {1, 28, 28});
  for (bool learn : {false, true}) ExpectSameTraining("lenet5", fused, {4, 1, 28, 28}, learn);
}

// Training-mode BatchNormalization's gradient uses ai.libqat BatchMean
// (reduced over the ranks under synchronized BatchNorm); decomposed, it is
// ReduceMean in float against the kernel's double sums: every output within
// a small relative error, and no custom op left.
TEST(DecomposeTest, BatchNormTrainingGraphBatchMeansBecomeReduceMean) {
  ResNet8Spec spec;
  spec.image = 8;
  spec.width = 4;
  auto resnet = MakeResNet8(spec);
  ASSERT_TRUE(resnet.ok()) << resnet.status();
  auto models = BuildTrainingModels(*resnet, {});
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_GT(CountNodes(models->training, "BatchMean"), 0);
  const Model d = Decompose(models->training);
  EXPECT_EQ(CountNodes(d, "BatchMean"), 0);
  EXPECT_GT(CountNodes(d, "ReduceMean"), 0);
  const std::map<std::string, Tensor> in = {{"input", RandomTensor({4, 1, 8, 8}, 3, -1.0f, 2.0f)},
                                            {"labels", Labels(4)}};
  auto want = RunModel(models->training, in);
  auto got = RunModel(d, in);
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [output, value] : want) {
    const Tensor& other = got.at(output);
    ASSERT_EQ(value.shape(), other.shape()) << output;
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < value.num_elements(); ++i) {
      const double w = value.values<float>()[i], g = other.values<float>()[i];
      diff += (w - g) * (w - g);
      norm += w * w;
    }
    EXPECT_LE(std::sqrt(diff), 1e-4 * std::sqrt(norm) + 1e-6) << output;
  }
}

}  // namespace
}  // namespace qat
