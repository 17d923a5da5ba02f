// Every gradient rule of the manifest (autodiff/gradient_rule_list.h)
// against its cases, and against the differentiable inputs it declares.
//
// The tests iterate the manifest: each rule is one parameterized test that
// fails when Cases() has no case for it.  A case builds a one-node graph
// whose float inputs are parameters, appends loss = sum(y * R) with a fixed
// random R (so that dL/dy = R is not uniform), builds the backward graph,
// runs it on the executor and compares every gradient entry with central
// finite differences (gradient_check.h explains the tolerances); inputs are
// drawn away from kinks.  Cases that finite differences cannot judge
// (FakeQuant's rounding, a refusal, a rule the builder never reaches) bring
// their own check.  Then the rule runs again on each case's node asked for
// every input, and must emit a gradient for exactly the float inputs the
// manifest declares differentiable.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "gradient_check.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "qat/fake_quant.h"
#include "autodiff/gradient_rules.h"
#include "passes/gradient_builder.h"
#include "graph/graph_editor.h"

namespace qat {
namespace testing {
namespace {

using training::AttrFloat;
using training::AttrInt;
using training::AttrInts;
using training::AttrString;
using training::GradOp;

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
  if (std::any_of(y.shape.begin(), y.shape.end(), [](int64_t d) { return d < 0; })) {
    // ONNX 1.12 infers only Einsum's rank: the forward's run gives the dims.
    auto executor = Executor::Create(*forward);
    if (!executor.ok()) return executor.status();
    auto out = (*executor)->Run({});
    if (!out.ok()) return out.status();
    y.shape = out->at("y").shape();
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
  // learnable quantization parameters, Resize and training-mode
  // BatchNormalization (BatchMean), which have their own documented ops.
  for (int i = 2 + 1; i < proto.graph().node_size(); ++i) {
    const auto& n = proto.graph().node(i);
    const bool lsq = n.domain() == "ai.libqat" &&
                     (n.op_type() == "FakeQuantLsqGrad" || n.op_type() == "ResizeGrad" ||
                      n.op_type() == "BatchMean");
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

// A case of the table: a one-node graph, and how its gradient is checked.
struct RuleCase {
  OpCase c;
  // Null: finite differences.  Otherwise the case's own check.
  std::function<void(const OpCase&)> check;
  // False for cases whose training graph does not build (refusals) or that
  // call the rule without the builder; the slot test skips them.
  bool builds = true;
};

// The node named "node" of a graph (the case's forward node).
const onnx::NodeProto* FindNode(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (n.name() == "node") return &n;
  }
  return nullptr;
}

// Runs the case's rule on its node directly, without the builder: the
// gradients it records, and how many nodes it appended.
struct DirectRun {
  absl::Status status;
  std::vector<std::string> input_grads;
  int added_nodes = 0;
};
DirectRun RunRuleDirectly(onnx::ModelProto* m, std::vector<std::string> output_grads,
                          std::vector<bool> wants) {
  DirectRun r;
  const onnx::NodeProto* found = FindNode(*m);
  if (found == nullptr) {
    r.status = absl::NotFoundError("no node named 'node'");
    return r;
  }
  const onnx::NodeProto node = *found;  // rules append nodes
  const GradOp* op = training::FindGradOp(node.domain(), node.op_type());
  if (op == nullptr || op->rule == nullptr) {
    r.status = absl::NotFoundError("no rule for " + node.op_type());
    return r;
  }
  const int before = m->graph().node_size();
  training::GraphEditor editor(m);
  training::GradContext ctx(editor, node, std::move(output_grads), std::move(wants));
  r.status = op->rule(ctx);
  r.input_grads = ctx.input_grads();
  r.added_nodes = m->graph().node_size() - before;
  return r;
}

// The case's forward graph with shapes inferred, as a proto.
onnx::ModelProto InferredForward(const OpCase& c) {
  ModelLoadOptions infer_only;
  infer_only.check = false;
  auto forward = Model::FromBytes(BaseModel(c).SerializeAsString(), c.op, infer_only);
  EXPECT_TRUE(forward.ok()) << forward.status();
  return forward.ok() ? ModelAccess::Proto(*forward) : onnx::ModelProto();
}

// The rule of a one-input case, called on its forward node with dL/dy named
// `dy`, records `dx` as dL/dx ("": no gradient) and appends no node.
void ExpectPassedThrough(const OpCase& c, const std::string& dy, const std::string& dx) {
  onnx::ModelProto m = InferredForward(c);
  const DirectRun r = RunRuleDirectly(&m, {dy}, {true});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.input_grads, std::vector<std::string>{dx});
  EXPECT_EQ(r.added_nodes, 0);
}

// FakeQuant's straight-through estimator: finite differences of a rounding
// function are 0 almost everywhere, so this checks the estimator's
// definition, dx = dy where the (per-channel, along axis 0) mask is true.
void ExpectStraightThrough(const OpCase& c) {
  std::map<std::string, Tensor> values;
  const auto out = RunOnce(c, &values);
  ASSERT_EQ(out.count("x_grad"), 1u);
  const Tensor& x = values.at("x");
  const Tensor& dx = out.at("x_grad");
  const Tensor r = Upstream(x.shape());
  const Tensor& s = c.inputs[1].second;
  const Tensor& z = c.inputs[2].second;
  const int64_t n = x.num_elements(), per_channel = n / s.num_elements();
  const int64_t qmin = training::GetAttrInt(BaseModel(c).graph().node(0), "quant_min", 0);
  const int64_t qmax = training::GetAttrInt(BaseModel(c).graph().node(0), "quant_max", 255);
  int inside = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ch = i / per_channel;
    const float q = std::nearbyint(x.values<float>()[i] / s.values<float>()[ch]) +
                    z.values<float>()[ch];
    const bool in = q >= qmin && q <= qmax;
    inside += in;
    EXPECT_EQ(dx.values<float>()[i], in ? r.values<float>()[i] : 0.0f) << i;
  }
  EXPECT_GT(inside, 0);
  EXPECT_LT(inside, n);
}

// Learnable FakeQuant: one FakeQuantLsqGrad node, whose outputs must equal
// the LSQ kernel's for dY = R and g = 1 / sqrt(N * qmax), N the elements of
// the weight x per channel (all of them per tensor).
void ExpectLsqKernel(const OpCase& c) {
  const auto out = RunOnce(c);
  ASSERT_EQ(out.count("s_grad") + out.count("z_grad"), 2u);
  const Tensor& x = c.inputs[0].second;
  const Tensor& s = c.inputs[1].second;
  const Tensor& z = c.inputs[2].second;
  const Tensor r = Upstream(x.shape());
  const QuantRange range{-16, 15};
  const int64_t channels = s.num_elements();
  const float g = static_cast<float>(
      1.0 / std::sqrt(static_cast<double>(x.num_elements() / channels) * range.quant_max));
  std::vector<float> ds(channels), dz(channels);
  if (c.domain == "com.microsoft") {
    auto want = FakeQuantLsqGradPerTensor(
        x.values<float>(), r.values<float>(), {},
        FakeQuantParams{s.values<float>()[0], z.values<float>()[0], range}, g);
    ASSERT_TRUE(want.ok()) << want.status();
    ds[0] = want->scale;
    dz[0] = want->zero_point;
  } else {
    PerChannelFakeQuantParams params{s.values<float>(), z.values<float>(), 0, range};
    ASSERT_TRUE(FakeQuantLsqGradPerChannel(x.shape(), x.values<float>(), r.values<float>(), {},
                                           absl::MakeSpan(ds), absl::MakeSpan(dz), params, g)
                    .ok());
  }
  for (int64_t k = 0; k < channels; ++k) {
    EXPECT_FLOAT_EQ(out.at("s_grad").values<float>()[k], ds[k]) << k;
    EXPECT_FLOAT_EQ(out.at("z_grad").values<float>()[k], dz[k]) << k;
    EXPECT_NE(ds[k], 0.0f);
    EXPECT_NE(dz[k], 0.0f);
  }
}

// The straight-through estimator of block-wise FakeQuant (the case's
// attributes: axis 0, block_size 4, range [-8, 7]), its mask from the kernel.
void ExpectStraightThroughBlock(const OpCase& c) {
  std::map<std::string, Tensor> values;
  const auto out = RunOnce(c, &values);
  ASSERT_EQ(out.count("x_grad"), 1u);
  const Tensor& x = values.at("x");
  const Tensor& dx = out.at("x_grad");
  const Tensor r = Upstream(x.shape());
  const Tensor& s = c.inputs[1].second;
  const Tensor& z = c.inputs[2].second;
  const int64_t n = x.num_elements();
  std::vector<float> y(n);
  std::unique_ptr<bool[]> mask(new bool[n]);
  ASSERT_TRUE(FakeQuantPerBlock(x.shape(), x.values<float>(), absl::MakeSpan(y),
                                absl::Span<bool>(mask.get(), n),
                                {s.values<float>(), z.values<float>(), 0, 4, {-8, 7}})
                  .ok());
  int inside = 0;
  for (int64_t i = 0; i < n; ++i) {
    inside += mask[i];
    EXPECT_EQ(dx.values<float>()[i], mask[i] ? r.values<float>()[i] : 0.0f) << i;
  }
  EXPECT_GT(inside, 0);
  EXPECT_LT(inside, n);
}

// Learnable block-wise FakeQuant (axis 0, block_size 4 over 6 rows): the
// FakeQuantLsqGrad node keeps the blocks and g = 1 / sqrt(block_size * qmax).
void ExpectLsqBlockKernel(const OpCase& c) {
  const auto out = RunOnce(c);
  ASSERT_EQ(out.count("s_grad") + out.count("z_grad"), 2u);
  const Tensor& x = c.inputs[0].second;
  const Tensor& s = c.inputs[1].second;
  const Tensor& z = c.inputs[2].second;
  const Tensor r = Upstream(x.shape());
  const QuantRange range{-8, 7};
  const float g = static_cast<float>(1.0 / std::sqrt(4.0 * range.quant_max));
  const int64_t entries = s.num_elements();
  std::vector<float> ds(entries), dz(entries);
  const BlockFakeQuantParams params{s.values<float>(), z.values<float>(), 0, 4, range};
  ASSERT_TRUE(FakeQuantLsqGradPerBlock(x.shape(), x.values<float>(), r.values<float>(), {},
                                       absl::MakeSpan(ds), absl::MakeSpan(dz), params, g)
                  .ok());
  ASSERT_EQ(out.at("s_grad").shape(), s.shape());
  for (int64_t k = 0; k < entries; ++k) {
    EXPECT_FLOAT_EQ(out.at("s_grad").values<float>()[k], ds[k]) << k;
    EXPECT_FLOAT_EQ(out.at("z_grad").values<float>()[k], dz[k]) << k;
    EXPECT_NE(ds[k], 0.0f);
  }
}

// Every case, grouped as the manifest groups the rules.
std::vector<RuleCase> Cases() {
  std::vector<RuleCase> all;
  auto fd = [&](OpCase c) { all.push_back({std::move(c), nullptr, true}); };
  auto own = [&](OpCase c, std::function<void(const OpCase&)> check, bool builds = true) {
    all.push_back({std::move(c), std::move(check), builds});
  };

  // Elementwise, with broadcasting.
  for (const char* op : {"Add", "Sub", "Mul"}) {
    fd({op, "", {{"a", R({2, 3, 4}, 1)}, {"b", R({3, 1}, 2)}}, {"a", "b"}});
    fd({op, "", {{"a", R({4}, 3)}, {"b", R({2, 4}, 4)}}, {"a", "b"}});
  }
  fd({"Div", "", {{"a", R({2, 3}, 5)}, {"b", Positive({3}, 6)}}, {"a", "b"}});
  fd({"Pow", "", {{"a", Positive({2, 3}, 7)}, {"b", R({2, 3}, 8)}}, {"a", "b"}});
  for (const char* op : {"Neg", "Abs", "Exp", "Relu", "Sigmoid", "Tanh", "Identity"}) {
    fd({op, "", {{"x", R({3, 5}, 10)}}, {"x"}});
  }
  for (const char* op : {"Sqrt", "Log"}) fd({op, "", {{"x", Positive({3, 5}, 11)}}, {"x"}});
  fd({"LeakyRelu", "", {{"x", R({3, 5}, 12)}}, {"x"}, {AttrFloat("alpha", 0.2f)}});
  {
    // Values in [-1, 1] minus a gap around the bounds -0.5 and 0.5.
    Tensor x = R({4, 6}, 13);
    for (float& v : x.values<float>()) {
      if (std::fabs(std::fabs(v) - 0.5f) < 0.05f) v *= 1.3f;
    }
    fd({"Clip", "", {{"x", x}, {"lo", Tensor::Scalar(-0.5f)}, {"hi", Tensor::Scalar(0.5f)}},
        {"x"}});
    Tensor cond(DataType::kBool, {2, 3});
    for (int i = 0; i < 6; ++i) cond.data<bool>()[i] = i % 2 == 0;
    fd({"Where", "", {{"c", cond}, {"a", R({2, 3}, 14)}, {"b", R({3}, 15)}}, {"a", "b"}});
  }
  // Cast: float to float carries the gradient back; from an integer input,
  // the rule emits nothing (the builder never asks, as integers do not
  // depend on parameters, so the rule is called directly).
  fd({"Cast", "", {{"x", R({3, 4}, 16)}}, {"x"}, {AttrInt("to", onnx::TensorProto::FLOAT)}});
  own({"Cast", "", {{"i", Int64s({2, 2}, {1, -2, 3, 4})}}, {},
       {AttrInt("to", onnx::TensorProto::FLOAT)}},
      [](const OpCase& c) { ExpectPassedThrough(c, "dy", ""); },
      /*builds=*/false);
  // FakeQuant: the straight-through estimator, and LSQ when the scale and
  // zero point train; per tensor (com.microsoft) and per channel (ai.libqat).
  own({"FakeQuant", "com.microsoft",
       {{"x", RandomTensor({2, 8}, 110, -3.0f, 3.0f)},
        {"s", Tensor::Scalar(0.05f)},
        {"z", Tensor::Scalar(0.0f)}},
       {"x"},
       {AttrInt("quant_min", -16), AttrInt("quant_max", 15)},
       2},
      ExpectStraightThrough);
  own({"FakeQuant", "com.microsoft",
       {{"x", RandomTensor({4, 8}, 130, -2.0f, 2.0f)},
        {"s", Tensor::Scalar(0.05f)},
        {"z", Tensor::Scalar(3.0f)}},
       {"s", "z"},
       {AttrInt("quant_min", -16), AttrInt("quant_max", 15)},
       2},
      ExpectLsqKernel);
  {
    const Tensor scales = Tensor::FromValues<float>({3}, std::vector<float>{0.05f, 0.1f, 0.02f});
    const Tensor zeros = Tensor::FromValues<float>({3}, std::vector<float>{0.0f, 2.0f, -1.0f});
    const std::vector<onnx::AttributeProto> attrs = {AttrInt("quant_min", -16),
                                                     AttrInt("quant_max", 15), AttrInt("axis", 0)};
    own({"FakeQuant", "ai.libqat",
         {{"x", RandomTensor({3, 8}, 111, -2.0f, 2.0f)}, {"s", scales}, {"z", zeros}},
         {"x"}, attrs, 2},
        ExpectStraightThrough);
    own({"FakeQuant", "ai.libqat",
         {{"x", RandomTensor({3, 8}, 131, -2.5f, 2.5f)}, {"s", scales}, {"z", zeros}},
         {"s", "z"}, attrs, 2},
        ExpectLsqKernel);
  }

  {
    // Per block: X [6, 3], blocks of 4 along axis 0 (the last one of 2), so
    // scale and zero point are [2, 3].
    const Tensor scales = Tensor::FromValues<float>(
        {2, 3}, std::vector<float>{0.3f, 0.2f, 0.25f, 0.15f, 0.35f, 0.1f});
    const Tensor zeros = Tensor::FromValues<float>(
        {2, 3}, std::vector<float>{0.0f, 1.0f, -1.0f, 2.0f, 0.0f, -2.0f});
    const std::vector<onnx::AttributeProto> attrs = {
        AttrInt("quant_min", -8), AttrInt("quant_max", 7), AttrInt("axis", 0),
        AttrInt("block_size", 4)};
    own({"FakeQuant", "ai.libqat",
         {{"x", RandomTensor({6, 3}, 112, -2.0f, 2.0f)}, {"s", scales}, {"z", zeros}},
         {"x"}, attrs, 2},
        ExpectStraightThroughBlock);
    own({"FakeQuant", "ai.libqat",
         {{"x", RandomTensor({6, 3}, 132, -2.5f, 2.5f)}, {"s", scales}, {"z", zeros}},
         {"s", "z"}, attrs, 2},
        ExpectLsqBlockKernel);
  }

  // Linear algebra and reductions.
  for (int ta : {0, 1}) {
    for (int tb : {0, 1}) {
      fd({"Gemm", "",
          {{"a", R(ta ? std::vector<int64_t>{4, 3} : std::vector<int64_t>{3, 4}, 20)},
           {"b", R(tb ? std::vector<int64_t>{5, 4} : std::vector<int64_t>{4, 5}, 21)},
           {"c", R({5}, 22)}},
          {"a", "b", "c"},
          {AttrInt("transA", ta), AttrInt("transB", tb), AttrFloat("alpha", 0.7f),
           AttrFloat("beta", 1.3f)}});
    }
  }
  fd({"Gemm", "", {{"a", R({3, 4}, 23)}, {"b", R({4, 2}, 24)}, {"c", R({3, 2}, 25)}},
      {"a", "b", "c"}});
  fd({"MatMul", "", {{"a", R({3, 4}, 30)}, {"b", R({4, 5}, 31)}}, {"a", "b"}});
  fd({"MatMul", "", {{"a", R({2, 3, 4}, 32)}, {"b", R({4, 5}, 33)}}, {"a", "b"}});
  fd({"MatMul", "", {{"a", R({2, 3, 4}, 34)}, {"b", R({2, 4, 5}, 35)}}, {"a", "b"}});
  fd({"MatMul", "", {{"a", R({1, 3, 4}, 36)}, {"b", R({2, 4, 5}, 37)}}, {"a", "b"}});
  fd({"ReduceSum", "", {{"x", R({2, 3, 4}, 40)}, {"axes", Int64s({1}, {1})}}, {"x"},
      {AttrInt("keepdims", 0)}});
  fd({"ReduceSum", "", {{"x", R({2, 3, 4}, 41)}}, {"x"}});
  fd({"ReduceMean", "", {{"x", R({2, 3, 4}, 42)}}, {"x"},
      {AttrInts("axes", {0, 2}), AttrInt("keepdims", 1)}});
  fd({"ReduceMean", "", {{"x", R({2, 3, 4}, 43)}}, {"x"}, {AttrInt("keepdims", 0)}});
  for (int64_t axis : {1, -1, 0}) {
    fd({"Softmax", "", {{"x", R({3, 4, 2}, 50)}}, {"x"}, {AttrInt("axis", axis)}});
    fd({"LogSoftmax", "", {{"x", R({3, 4, 2}, 51)}}, {"x"}, {AttrInt("axis", axis)}});
  }
  // Before opset 13, over every axis from `axis` on (the input as 2-D).
  for (int64_t axis : {1, 0}) {
    for (const char* op : {"Softmax", "LogSoftmax"}) {
      OpCase old{op, "", {{"x", R({3, 4, 2}, 52)}}, {"x"}, {AttrInt("axis", axis)}};
      old.opset = 11;
      fd(old);
    }
  }

  // Shape and layout.
  fd({"Reshape", "", {{"x", R({2, 3, 4}, 60)}, {"s", Int64s({2}, {4, 6})}}, {"x"}});
  fd({"Flatten", "", {{"x", R({2, 3, 4}, 61)}}, {"x"}, {AttrInt("axis", 1)}});
  fd({"Squeeze", "", {{"x", R({2, 1, 4}, 62)}, {"a", Int64s({1}, {1})}}, {"x"}});
  fd({"Unsqueeze", "", {{"x", R({2, 4}, 63)}, {"a", Int64s({1}, {0})}}, {"x"}});
  fd({"Transpose", "", {{"x", R({2, 3, 4}, 64)}}, {"x"}, {AttrInts("perm", {2, 0, 1})}});
  fd({"Transpose", "", {{"x", R({2, 3}, 65)}}, {"x"}});
  fd({"Concat", "", {{"a", R({2, 3}, 66)}, {"b", R({2, 1}, 67)}, {"c", R({2, 2}, 68)}},
      {"a", "b", "c"}, {AttrInt("axis", 1)}});
  {
    // Repeated and negative indices add up: ScatterElements' "add" (opset 16).
    OpCase rows{"Gather", "", {{"x", R({5, 3}, 160)}, {"i", Int64s({2, 2}, {4, 0, -1, 2})}},
                {"x"}};
    rows.opset = 16;
    fd(rows);
    OpCase middle{"Gather", "", {{"x", R({2, 4, 3}, 161)}, {"i", Int64s({3}, {1, 3, 1})}},
                  {"x"}, {AttrInt("axis", 1)}};
    middle.opset = 16;
    fd(middle);
    // Constant indices without repeats need no reduction (opset 13).
    fd({"Gather", "", {{"x", R({4, 3}, 162)}, {"i", Int64s({2}, {3, 1})}}, {"x"}});
    // A run of constant positions (negative ones wrapped) pads g instead.
    fd({"Gather", "", {{"x", R({2, 4, 3}, 166)}, {"i", Int64s({2}, {-3, 2})}}, {"x"},
        {AttrInt("axis", 1)}});
    fd({"Gather", "", {{"x", R({4, 3}, 163)}, {"i", Int64s({}, {2})}}, {"x"},
        {AttrInt("axis", 1)}});
    // Repeats before opset 16: the training graph is raised to opset 16
    // for ScatterElements' "add" (an embedding at opset 13).
    own({"Gather", "", {{"x", R({4, 3}, 164)}, {"i", Int64s({2, 3}, {1, 1, 3, 0, 1, -1})}}, {"x"}},
        [](const OpCase& c) {
          Check(c);
          auto model = TrainingModel(c);
          ASSERT_TRUE(model.ok()) << model.status();
          EXPECT_EQ(model->OpsetVersion(""), 16);
        });
    // Below opset 13, raising would change other ops' meaning: refused,
    // naming the node and the opset.
    OpCase old{"Gather", "", {{"x", R({4, 3}, 165)}, {"i", Int64s({2}, {1, 1})}}, {"x"}};
    old.opset = 12;
    own(old,
        [](const OpCase& c) {
          auto refused = TrainingModel(c);
          ASSERT_FALSE(refused.ok());
          EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnimplemented);
          EXPECT_NE(refused.status().message().find("opset 16"), std::string::npos)
              << refused.status();
          EXPECT_NE(refused.status().message().find("(Gather)"), std::string::npos)
              << refused.status();
        },
        /*builds=*/false);
  }
  // Expand: a class token over the batch, and a rank that grows.
  fd({"Expand", "", {{"x", R({1, 1, 4}, 175)}, {"s", Int64s({3}, {3, 2, 4})}}, {"x"}});
  fd({"Expand", "", {{"x", R({3, 1}, 176)}, {"s", Int64s({3}, {2, 1, 5})}}, {"x"}});
  fd({"Expand", "", {{"x", R({2, 3}, 177)}, {"s", Int64s({2}, {1, 1})}}, {"x"}});
  // Slice: two axes, a negative start, an end past the size; step 2 forward
  // and -1 backward (a reversal), axes counted from the end; default axes,
  // the second slice keeping the whole axis.
  fd({"Slice", "",
      {{"x", R({3, 5, 4}, 170)}, {"s", Int64s({2}, {1, -4})}, {"e", Int64s({2}, {100, 4})},
       {"a", Int64s({2}, {0, 1})}},
      {"x"}});
  fd({"Slice", "",
      {{"x", R({6, 5}, 171)}, {"s", Int64s({2}, {0, 4})}, {"e", Int64s({2}, {6, -100})},
       {"a", Int64s({2}, {-2, -1})}, {"st", Int64s({2}, {2, -1})}},
      {"x"}});
  fd({"Slice", "", {{"x", R({4, 3}, 172)}, {"s", Int64s({2}, {1, 0})}, {"e", Int64s({2}, {3, 3})}},
      {"x"}});
  // A run of step 1 (g padded with zeros) after a step-2 axis (scattered).
  fd({"Slice", "",
      {{"x", R({5, 6, 3}, 173)}, {"s", Int64s({2}, {0, 2})}, {"e", Int64s({2}, {5, 5})},
       {"a", Int64s({2}, {0, 1})}, {"st", Int64s({2}, {2, 1})}},
      {"x"}});

  // Convolution: plain, padded and strided, dilated, SAME_UPPER, 1-D.
  fd({"Conv", "", {{"x", R({2, 3, 7, 6}, 70)}, {"w", R({4, 3, 3, 3}, 71)}, {"b", R({4}, 72)}},
      {"x", "w", "b"}});
  fd({"Conv", "", {{"x", R({1, 2, 8, 7}, 73)}, {"w", R({3, 2, 3, 2}, 74)}}, {"x", "w"},
      {AttrInts("pads", {1, 0, 2, 1}), AttrInts("strides", {2, 3})}});
  fd({"Conv", "", {{"x", R({1, 2, 9, 9}, 75)}, {"w", R({2, 2, 3, 3}, 76)}}, {"x", "w"},
      {AttrInts("dilations", {2, 1}), AttrInts("strides", {1, 2})}});
  fd({"Conv", "", {{"x", R({1, 1, 7, 7}, 77)}, {"w", R({2, 1, 3, 3}, 78)}}, {"x", "w"},
      {AttrString("auto_pad", "SAME_UPPER"), AttrInts("strides", {2, 2})}});
  fd({"Conv", "", {{"x", R({2, 3, 10}, 79)}, {"w", R({2, 3, 4}, 80)}, {"b", R({2}, 81)}},
      {"x", "w", "b"}, {AttrInts("pads", {1, 2}), AttrInts("strides", {2})}});
  // Grouped: two groups with a bias; depthwise, padded and strided; 1-D,
  // dilated, two outputs per input channel.
  fd({"Conv", "", {{"x", R({2, 4, 6, 5}, 140)}, {"w", R({6, 2, 3, 3}, 141)}, {"b", R({6}, 142)}},
      {"x", "w", "b"}, {AttrInt("group", 2)}});
  fd({"Conv", "", {{"x", R({1, 3, 7, 7}, 143)}, {"w", R({3, 1, 3, 3}, 144)}}, {"x", "w"},
      {AttrInt("group", 3), AttrInts("pads", {1, 1, 1, 1}), AttrInts("strides", {2, 2})}});
  fd({"Conv", "", {{"x", R({2, 2, 9}, 145)}, {"w", R({4, 1, 3}, 146)}}, {"x", "w"},
      {AttrInt("group", 2), AttrInts("dilations", {2})}});
  {
    // Pooling over distinct values, so that no window has a tie.
    Tensor x(DataType::kFloat32, {2, 2, 6, 6});
    std::vector<int> order(x.num_elements());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::shuffle(order.begin(), order.end(), std::mt19937(3));
    for (size_t i = 0; i < order.size(); ++i) {
      x.data<float>()[i] = static_cast<float>(order[i]) * 0.1f;
    }
    fd({"MaxPool", "", {{"x", x}}, {"x"},
        {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})}});
    OpCase overlapping{"MaxPool", "", {{"x", x}}, {"x"},
                       {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {1, 1})}};
    overlapping.opset = 16;
    fd(overlapping);
    // ResNet's stem (3x3, stride 2, pads 1) at opset 13: the training graph
    // is raised to opset 16; at opset 14 too.
    // At opsets 11 and 12 (no raising), as classes of disjoint windows;
    // 3x3 stride 1 makes nine classes.
    for (int64_t opset : {11, 12, 13, 14}) {
      OpCase stem{"MaxPool", "", {{"x", x}}, {"x"},
                  {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {2, 2}),
                   AttrInts("pads", {1, 1, 1, 1})}};
      stem.opset = opset;
      fd(stem);
    }
    OpCase dense{"MaxPool", "", {{"x", x}}, {"x"},
                 {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {1, 1})}};
    dense.opset = 12;
    own(dense, [](const OpCase& c) {
      Check(c);
      auto model = TrainingModel(c);
      ASSERT_TRUE(model.ok()) << model.status();
      EXPECT_EQ(model->OpsetVersion(""), 12);  // not raised
      int scatters = 0;
      for (const auto& n : ModelAccess::Proto(*model).graph().node()) {
        scatters += n.op_type() == "ScatterElements";
      }
      EXPECT_EQ(scatters, 9);  // one per class of disjoint windows
    });
  }
  // ConvTranspose: plain with a bias; strided, padded, output_padding;
  // grouped and dilated; 1-D with output_shape past the full size;
  // SAME_UPPER; output_padding of the stride (a dilated kernel).
  fd({"ConvTranspose", "",
      {{"x", R({2, 2, 3, 3}, 210)}, {"w", R({2, 3, 3, 3}, 211)}, {"b", R({3}, 212)}},
      {"x", "w", "b"}});
  fd({"ConvTranspose", "", {{"x", R({1, 2, 3, 4}, 213)}, {"w", R({2, 2, 3, 3}, 214)}},
      {"x", "w"},
      {AttrInts("strides", {2, 2}), AttrInts("pads", {1, 0, 1, 1}),
       AttrInts("output_padding", {1, 0})}});
  fd({"ConvTranspose", "",
      {{"x", R({2, 4, 3, 3}, 215)}, {"w", R({4, 1, 2, 2}, 216)}, {"b", R({2}, 217)}},
      {"x", "w", "b"}, {AttrInt("group", 2), AttrInts("dilations", {2, 1})}});
  fd({"ConvTranspose", "", {{"x", R({2, 2, 4}, 218)}, {"w", R({2, 3, 3}, 219)}}, {"x", "w"},
      {AttrInts("strides", {2}), AttrInts("output_shape", {11})}});
  fd({"ConvTranspose", "", {{"x", R({1, 1, 3, 3}, 220)}, {"w", R({1, 2, 3, 3}, 221)}},
      {"x", "w"}, {AttrString("auto_pad", "SAME_UPPER"), AttrInts("strides", {2, 2})}});
  fd({"ConvTranspose", "", {{"x", R({1, 2, 4}, 222)}, {"w", R({2, 2, 2}, 223)}}, {"x", "w"},
      {AttrInts("strides", {2}), AttrInts("dilations", {3}), AttrInts("output_padding", {2})}});
  fd({"GlobalAveragePool", "", {{"x", R({2, 3, 4, 5}, 90)}}, {"x"}});
  fd({"AveragePool", "", {{"x", R({2, 2, 6, 6}, 150)}}, {"x"},
      {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})}});
  // Overlapping windows over padding, which counts or not.
  for (int include : {0, 1}) {
    fd({"AveragePool", "", {{"x", R({1, 2, 5, 6}, 151)}}, {"x"},
        {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {1, 2}),
         AttrInts("pads", {1, 1, 1, 0}), AttrInt("count_include_pad", include)}});
  }
  // 1-D with SAME_UPPER padding; ceil_mode with a last window that stays
  // inside the padding.
  fd({"AveragePool", "", {{"x", R({2, 3, 7}, 152)}}, {"x"},
      {AttrInts("kernel_shape", {3}), AttrInts("strides", {2}),
       AttrString("auto_pad", "SAME_UPPER")}});
  fd({"AveragePool", "", {{"x", R({1, 1, 6, 6}, 153)}}, {"x"},
      {AttrInts("kernel_shape", {3, 3}), AttrInts("strides", {2, 2}),
       AttrInts("pads", {0, 0, 1, 1}), AttrInt("ceil_mode", 1)}});
  {
    // Inference mode: the running statistics are constants.
    fd({"BatchNormalization", "",
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
    fd(training);
    OpCase rank2 = training;
    rank2.inputs[0] = {"x", R({6, 2}, 190)};
    fd(rank2);
  }
  // Dropout.  The builder runs it in training mode; with a seed the mask is
  // the same on every run, so finite differences see y = mask * x / (1 -
  // ratio).  Ratio 0 keeps everything.  Inference mode (no training_mode
  // input), which the builder never leaves in place, is the identity.
  own({"Dropout", "", {{"x", R({4, 6}, 195)}, {"ratio", Tensor::Scalar(0.5f)}}, {"x"},
       {AttrInt("seed", 7)}},
      [](const OpCase& c) {
        Check(c);
        const auto out = RunOnce(c);
        ASSERT_EQ(out.count("x_grad"), 1u);
        int dropped = 0;
        for (float g : out.at("x_grad").values<float>()) dropped += g == 0.0f;
        EXPECT_GT(dropped, 0);
        EXPECT_LT(dropped, 24);
      });
  fd({"Dropout", "", {{"x", R({3, 5}, 196)}, {"ratio", Tensor::Scalar(0.0f)}}, {"x"}});
  own({"Dropout", "", {{"x", R({3, 5}, 197)}}, {"x"}},
      [](const OpCase& c) { ExpectPassedThrough(c, "dy", "dy"); },
      /*builds=*/false);

  // Losses.
  const Tensor labels = Int64s({4}, {2, 0, 1, 2});
  for (const char* reduction : {"mean", "sum"}) {
    fd({"SoftmaxCrossEntropyLoss", "", {{"s", R({4, 3}, 100)}, {"l", labels}}, {"s"},
        {AttrString("reduction", reduction)}});
    fd({"SoftmaxCrossEntropyLoss", "",
        {{"s", R({4, 3}, 101)}, {"l", labels}, {"w", Positive({3}, 102)}}, {"s"},
        {AttrString("reduction", reduction)}});
  }
  fd({"SoftmaxCrossEntropyLoss", "", {{"s", R({4, 3}, 103)}, {"l", labels}}, {"s"},
      {AttrInt("ignore_index", 0)}});
  fd({"SoftmaxCrossEntropyLoss", "", {{"s", R({4, 3}, 104)}, {"l", labels}}, {"s"},
      {AttrString("reduction", "none")}});
  fd({"SoftmaxCrossEntropyLoss", "",
      {{"s", R({2, 3, 4}, 105)}, {"l", Int64s({2, 4}, {0, 1, 2, 1, 2, 2, 0, 1})}}, {"s"}});
  fd({"NegativeLogLikelihoodLoss", "",
      {{"s", R({4, 3}, 106)}, {"l", labels}, {"w", Positive({3}, 107)}}, {"s"},
      {AttrInt("ignore_index", 1)}});
  // Activations and math (grad_rules_activation.cc).
  {
    // x in [lo, hi], moved away from the kinks (at least 0.05 from each).
    auto away = [](std::vector<int64_t> shape, uint32_t seed, float lo, float hi,
                   std::vector<float> kinks) {
      Tensor t = RandomTensor(std::move(shape), seed, lo, hi);
      for (float& v : t.values<float>()) {
        for (float k : kinks) {
          if (std::fabs(v - k) < 0.05f) v = k + (v < k ? -0.1f : 0.1f);
        }
      }
      return t;
    };
    fd({"Erf", "", {{"x", R({3, 5}, 300)}}, {"x"}});
    fd({"HardSigmoid", "", {{"x", away({4, 5}, 301, -4.0f, 4.0f, {-2.5f, 2.5f})}}, {"x"}});
    fd({"HardSigmoid", "", {{"x", away({4, 5}, 302, -2.0f, 2.0f, {-1.5f, 0.5f})}}, {"x"},
        {AttrFloat("alpha", 0.5f), AttrFloat("beta", 0.75f)}});
    OpCase hard_swish{"HardSwish", "", {{"x", away({4, 6}, 303, -5.0f, 5.0f, {-3.0f, 3.0f})}},
                      {"x"}};
    hard_swish.opset = 14;
    fd(hard_swish);
    // The slope broadcasts over X: per channel, and along the last axis.
    fd({"PRelu", "", {{"x", R({2, 3, 4}, 304)}, {"slope", R({3, 1}, 305)}}, {"x", "slope"}});
    fd({"PRelu", "", {{"x", R({3, 4}, 306)}, {"slope", R({4}, 307)}}, {"x", "slope"}});
    // Before opset 7 a 1-D slope is per channel, which the rule refuses.
    OpCase per_channel{"PRelu", "", {{"x", R({2, 3, 4}, 325)}, {"slope", R({3}, 326)}},
                       {"x", "slope"}};
    per_channel.opset = 6;
    own(per_channel,
        [](const OpCase& c) {
          auto old = TrainingModel(c);
          ASSERT_FALSE(old.ok());
          EXPECT_EQ(old.status().code(), absl::StatusCode::kUnimplemented);
          EXPECT_NE(old.status().message().find("opset 7"), std::string::npos) << old.status();
        },
        /*builds=*/false);
    fd({"Elu", "", {{"x", RandomTensor({3, 5}, 308, -3.0f, 2.0f, 0.05f)}}, {"x"},
        {AttrFloat("alpha", 0.7f)}});
    fd({"Selu", "", {{"x", RandomTensor({3, 5}, 309, -3.0f, 2.0f, 0.05f)}}, {"x"}});
    fd({"Softplus", "", {{"x", RandomTensor({3, 5}, 310, -4.0f, 4.0f)}}, {"x"}});
    fd({"Celu", "", {{"x", RandomTensor({3, 5}, 311, -3.0f, 2.0f, 0.05f)}}, {"x"},
        {AttrFloat("alpha", 1.5f)}});
    fd({"ThresholdedRelu", "", {{"x", away({4, 5}, 312, -1.0f, 2.0f, {0.3f})}}, {"x"},
        {AttrFloat("alpha", 0.3f)}});
    fd({"ThresholdedRelu", "", {{"x", away({4, 5}, 313, -1.0f, 3.0f, {1.0f})}}, {"x"}});
    fd({"Shrink", "", {{"x", away({4, 5}, 314, -1.0f, 1.0f, {-0.4f, 0.4f})}}, {"x"},
        {AttrFloat("lambd", 0.4f), AttrFloat("bias", 0.1f)}});
    {
      // |x| in [0.5, 2], both signs.
      Tensor x = Positive({3, 5}, 315);
      for (int i = 0; i < x.num_elements(); i += 2) x.values<float>()[i] *= -1.0f;
      fd({"Reciprocal", "", {{"x", x}}, {"x"}});
    }
    fd({"Softsign", "", {{"x", RandomTensor({3, 5}, 316, -3.0f, 3.0f)}}, {"x"}});
    fd({"Sin", "", {{"x", RandomTensor({3, 5}, 317, -3.0f, 3.0f)}}, {"x"}});
    fd({"Cos", "", {{"x", RandomTensor({3, 5}, 318, -3.0f, 3.0f)}}, {"x"}});

    // Max and Min over three broadcast inputs with distinct values 0.1
    // apart, so that no step of the finite differences changes the winner.
    std::vector<int> order(11);
    for (int i = 0; i < 11; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(5));
    auto spaced = [&](std::vector<int64_t> shape, int first) {
      Tensor t(DataType::kFloat32, std::move(shape));
      for (int64_t i = 0; i < t.num_elements(); ++i) {
        t.values<float>()[i] = static_cast<float>(order[first + i]) * 0.1f - 0.5f;
      }
      return t;
    };
    for (const char* op : {"Max", "Min"}) {
      fd({op, "", {{"a", spaced({2, 3}, 0)}, {"b", spaced({3}, 6)}, {"c", spaced({2, 1}, 9)}},
          {"a", "b", "c"}});
      fd({op, "", {{"x", R({2, 3}, 319)}}, {"x"}});
    }
    // Ties share the gradient evenly, as PyTorch's maximum does: with every
    // input equal, each gets dL/dy / n.
    for (const char* op : {"Max", "Min"}) {
      const Tensor same = R({2, 3}, 320);
      own({op, "", {{"a", same}, {"b", same}, {"c", same}}, {"a", "b", "c"}},
          [](const OpCase& c) {
            const auto out = RunOnce(c);
            const Tensor r = Upstream({2, 3});
            for (const char* name : {"a_grad", "b_grad", "c_grad"}) {
              ASSERT_EQ(out.count(name), 1u) << name;
              for (int64_t i = 0; i < r.num_elements(); ++i) {
                EXPECT_FLOAT_EQ(out.at(name).values<float>()[i], r.values<float>()[i] / 3.0f)
                    << name << "[" << i << "]";
              }
            }
          });
    }
    for (const char* op : {"Sum", "Mean"}) {
      fd({op, "", {{"a", R({2, 3}, 321)}, {"b", R({3}, 322)}, {"c", R({2, 1}, 323)}},
          {"a", "b", "c"}});
      fd({op, "", {{"x", R({2, 3}, 324)}}, {"x"}});
    }
  }

  // (end of activations and math)

  // Reductions, scans and Einsum (grad_rules_reduce.cc).
  {
    // Distinct values 0.1 apart, so that no max, min or top k is tied or
    // changes within a finite-difference step.
    auto distinct = [](std::vector<int64_t> shape, uint32_t seed) {
      Tensor x(DataType::kFloat32, std::move(shape));
      std::vector<int> order(x.num_elements());
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
      std::shuffle(order.begin(), order.end(), std::mt19937(seed));
      for (size_t i = 0; i < order.size(); ++i) {
        x.data<float>()[i] = (static_cast<float>(order[i]) - order.size() / 2.0f) * 0.1f;
      }
      return x;
    };
    for (const char* op : {"ReduceMax", "ReduceMin"}) {
      fd({op, "", {{"x", distinct({2, 3, 4}, 300)}}, {"x"},
          {AttrInts("axes", {1}), AttrInt("keepdims", 0)}});
      fd({op, "", {{"x", distinct({3, 4}, 301)}}, {"x"}});
      fd({op, "", {{"x", distinct({2, 3, 4}, 302)}}, {"x"},
          {AttrInts("axes", {-1, 0}), AttrInt("keepdims", 1)}});
    }
    // A tie shares the gradient: y = max(1, 1, 0) has dy/dx = (1/2, 1/2, 0).
    own({"ReduceMax", "", {{"x", Tensor::FromValues<float>({3}, std::vector<float>{1, 1, 0})}},
         {"x"}, {AttrInt("keepdims", 0)}},
        [](const OpCase& c) {
          const auto out = RunOnce(c);
          ASSERT_EQ(out.count("x_grad"), 1u);
          const float r = Upstream({}).values<float>()[0];
          const std::vector<float> want = {r / 2, r / 2, 0.0f};
          for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(out.at("x_grad").values<float>()[i], want[i]);
        });
    // ReduceProd is linear in each input, so finite differences are exact
    // even at 0: rows with no zero, one zero and two zeros.
    fd({"ReduceProd", "",
        {{"x", Tensor::FromValues<float>({3, 4}, std::vector<float>{0.5f, -1.2f, 0.8f, 1.5f,
                                                                    0.7f, 0.0f, -0.9f, 1.1f,
                                                                    0.0f, 1.3f, 0.0f, -0.6f})}},
        {"x"}, {AttrInts("axes", {1}), AttrInt("keepdims", 0)}});
    fd({"ReduceProd", "", {{"x", Positive({2, 3}, 303)}}, {"x"}});
    for (const char* op : {"ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"}) {
      fd({op, "", {{"x", R({2, 3, 4}, 310)}}, {"x"},
          {AttrInts("axes", {0, -1}), AttrInt("keepdims", 0)}});
      fd({op, "", {{"x", R({3, 4}, 311)}}, {"x"}, {AttrInt("keepdims", 1)}});
    }
    fd({"ReduceLogSum", "", {{"x", Positive({2, 3, 4}, 312)}}, {"x"},
        {AttrInts("axes", {1}), AttrInt("keepdims", 1)}});
    // CumSum, with the axis a 0-D input, every mode.
    for (int exclusive : {0, 1}) {
      for (int reverse : {0, 1}) {
        fd({"CumSum", "", {{"x", R({3, 4}, 320)}, {"axis", Int64s({}, {1})}}, {"x"},
            {AttrInt("exclusive", exclusive), AttrInt("reverse", reverse)}});
      }
    }
    fd({"CumSum", "", {{"x", R({3, 4, 2}, 321)}, {"axis", Int64s({1}, {-3})}}, {"x"}});
    // TopK: the values' gradient goes back to where they came from.
    fd({"TopK", "", {{"x", distinct({3, 5}, 330)}, {"k", Int64s({1}, {2})}}, {"x"},
        {}, 2});
    fd({"TopK", "", {{"x", distinct({4, 3}, 331)}, {"k", Int64s({1}, {3})}}, {"x"},
        {AttrInt("axis", 0), AttrInt("largest", 0)}, 2});
    // Trilu (opset 14), both triangles, with and without k.
    for (int upper : {0, 1}) {
      OpCase tri{"Trilu", "", {{"x", R({2, 3, 4}, 340)}, {"k", Int64s({}, {upper ? 1 : -1})}},
                 {"x"}, {AttrInt("upper", upper)}};
      tri.opset = 14;
      fd(tri);
    }
    OpCase tri{"Trilu", "", {{"x", R({4, 3}, 341)}}, {"x"}};
    tri.opset = 14;
    fd(tri);
    // Einsum: a product, a batched product broadcasting its batch through
    // the ellipsis, a diagonal, a trace, a sum, an implicit output, three
    // operands, a size-1 axis broadcast outside the ellipsis.
    auto einsum = [&](const char* eq, std::vector<std::vector<int64_t>> shapes) {
      OpCase c{"Einsum", "", {}, {}, {AttrString("equation", eq)}};
      const char* names[] = {"a", "b", "c"};
      for (size_t i = 0; i < shapes.size(); ++i) {
        c.inputs.push_back({names[i], R(shapes[i], 350 + static_cast<uint32_t>(i))});
        c.params.push_back(names[i]);
      }
      fd(c);
    };
    einsum("ij,jk->ik", {{3, 4}, {4, 2}});
    einsum("...ij,...jk->...ik", {{2, 1, 3, 4}, {1, 2, 4, 2}});
    einsum("bii->bi", {{2, 3, 3}});
    einsum("ii", {{3, 3}});
    einsum("ij->i", {{3, 4}});
    einsum("ba,cb", {{3, 4}, {2, 3}});
    einsum("ij,jk,k->i", {{2, 3}, {3, 4}, {4}});
    einsum("ij,ij->ij", {{1, 4}, {3, 4}});
    einsum("iij,j->ij", {{3, 3, 2}, {2}});
  }

  // (end of reductions)

  // Indexing and layout (grad_rules_indexing.cc).
  {
    // GatherElements with repeated and negative indices, smaller than the
    // data off the axis: compared and summed before opset 16, ScatterElements
    // with "add" from 16.
    fd({"GatherElements", "", {{"x", R({3, 4}, 300)}, {"i", Int64s({2, 3}, {0, 3, 0, -1, 1, 3})}},
        {"x"}, {AttrInt("axis", 1)}});
    OpCase scatter_add{"GatherElements", "",
                       {{"x", R({3, 2, 2}, 301)},
                        {"i", Int64s({4, 2, 2}, {2, 0, 1, -1, 2, 2, 0, 1, -3, 1, 1, 1, 0, 2, 0, 2})}},
                       {"x"}};
    scatter_add.opset = 16;
    fd(scatter_add);
    // GatherND: pairs with a repeat and a negative index (one-hot product
    // before opset 16), rows with a repeat (ScatterND "add" from 16), and
    // batch_dims 1.
    fd({"GatherND", "",
        {{"x", R({3, 4, 2}, 302)}, {"i", Int64s({2, 2, 2}, {0, 1, 2, -1, 0, 1, 1, 2})}}, {"x"}});
    OpCase rows{"GatherND", "", {{"x", R({4, 3}, 303)}, {"i", Int64s({3, 1}, {1, 3, 1})}}, {"x"}};
    rows.opset = 16;
    fd(rows);
    fd({"GatherND", "", {{"x", R({2, 3, 2}, 304)}, {"i", Int64s({2, 2, 1}, {2, 2, 0, -1})}},
        {"x"}, {AttrInt("batch_dims", 1)}});
    fd({"ReverseSequence", "", {{"x", R({4, 3, 2}, 307)}, {"l", Int64s({3}, {4, 1, 2})}}, {"x"},
        {AttrInt("time_axis", 0), AttrInt("batch_axis", 1)}});
    fd({"Tile", "", {{"x", R({2, 3}, 308)}, {"r", Int64s({2}, {3, 2})}}, {"x"}});
    fd({"Tile", "", {{"x", R({2, 1, 3}, 309)}, {"r", Int64s({3}, {1, 4, 2})}}, {"x"}});
    // Pad: constant with a crop and a constant value; reflect and edge with
    // the widest pads reflect allows; reflect in the attribute form (opset 10).
    fd({"Pad", "",
        {{"x", R({2, 3, 4}, 310)}, {"p", Int64s({6}, {0, 1, -1, 0, 2, 1})},
         {"v", Tensor::Scalar(0.5f)}},
        {"x"}});
    fd({"Pad", "", {{"x", R({2, 5, 4}, 311)}, {"p", Int64s({6}, {0, 2, 3, 0, 4, 1})}}, {"x"},
        {AttrString("mode", "reflect")}});
    fd({"Pad", "", {{"x", R({3, 4}, 312)}, {"p", Int64s({4}, {2, 1, 1, 3})}}, {"x"},
        {AttrString("mode", "edge")}});
    OpCase attr_form{"Pad", "", {{"x", R({3, 4}, 313)}}, {"x"},
                     {AttrString("mode", "reflect"), AttrInts("pads", {1, 3, 2, 0})}};
    attr_form.opset = 10;
    fd(attr_form);
    for (const char* mode : {"DCR", "CRD"}) {
      fd({"DepthToSpace", "", {{"x", R({2, 8, 2, 3}, 314)}}, {"x"},
          {AttrInt("blocksize", 2), AttrString("mode", mode)}});
    }
    fd({"SpaceToDepth", "", {{"x", R({2, 2, 4, 6}, 315)}}, {"x"}, {AttrInt("blocksize", 2)}});
  }

  // (end of indexing and layout)

  // Resize and normalization layers (grad_rules_norm.cc).
  {
    // Resize: the modes PyTorch's F.interpolate exports (nearest as
    // asymmetric + floor; bilinear as pytorch_half_pixel or align_corners),
    // then ONNX's others: half_pixel downsampling by scales that do not
    // divide, nearest round_prefer_ceil, cubic with exclude_outside, and
    // tf_crop_and_resize, whose extrapolated outputs send nothing back.
    const Tensor none;
    auto scales = [](std::vector<float> v) {
      return Tensor::FromValues<float>({static_cast<int64_t>(v.size())}, v);
    };
    auto resize = [&](Tensor x, Tensor roi, Tensor sc, Tensor sizes,
                      std::vector<onnx::AttributeProto> attrs) {
      OpCase c{"Resize", "", {{"x", std::move(x)}}, {"x"}, std::move(attrs)};
      c.inputs.push_back({roi.num_elements() > 0 ? "roi" : "", roi});
      c.inputs.push_back({sc.num_elements() > 0 ? "scales" : "", sc});
      if (sizes.num_elements() > 0) c.inputs.push_back({"sizes", sizes});
      return c;
    };
    fd(resize(R({1, 2, 3, 4}, 300), none, scales({1, 1, 2, 2}), none,
              {AttrString("mode", "nearest"),
               AttrString("coordinate_transformation_mode", "asymmetric"),
               AttrString("nearest_mode", "floor")}));
    fd(resize(R({2, 2, 3, 4}, 301), none, none, Int64s({4}, {2, 2, 5, 7}),
              {AttrString("mode", "linear"),
               AttrString("coordinate_transformation_mode", "pytorch_half_pixel")}));
    fd(resize(R({1, 2, 3, 4}, 302), none, none, Int64s({4}, {1, 2, 7, 6}),
              {AttrString("mode", "linear"),
               AttrString("coordinate_transformation_mode", "align_corners")}));
    fd(resize(R({1, 1, 5, 6}, 303), none, scales({1, 1, 0.6f, 0.5f}), none,
              {AttrString("mode", "linear")}));
    fd(resize(R({1, 2, 3, 3}, 304), none, none, Int64s({4}, {1, 2, 5, 8}),
              {AttrString("nearest_mode", "round_prefer_ceil")}));
    fd(resize(R({1, 1, 4, 4}, 305), none, scales({1, 1, 1.5f, 2}), none,
              {AttrString("mode", "cubic"), AttrInt("exclude_outside", 1),
               AttrFloat("cubic_coeff_a", -0.5f)}));
    fd(resize(R({1, 1, 4, 5}, 306),
              Tensor::FromValues<float>({8}, std::vector<float>{0, 0, -0.2f, 0.1f, 1, 1, 0.9f, 1.3f}),
              none, Int64s({4}, {1, 1, 3, 6}),
              {AttrString("mode", "linear"),
               AttrString("coordinate_transformation_mode", "tf_crop_and_resize"),
               AttrFloat("extrapolation_value", 2.5f)}));
    // Resize-10 and Upsample-9: x / scale, rounded down.
    OpCase resize10{"Resize", "", {{"x", R({1, 2, 3, 2}, 307)}, {"scales", scales({1, 1, 2, 2.5f})}},
                    {"x"}, {AttrString("mode", "linear")}};
    resize10.opset = 10;
    fd(resize10);
    OpCase upsample{"Upsample", "", {{"x", R({1, 2, 2, 3}, 308)}, {"scales", scales({1, 1, 2, 3})}},
                    {"x"}};
    upsample.opset = 9;
    fd(upsample);
    // Upsample-7 (opset 7 and 8): the scales are an attribute, linear
    // spelled bilinear.
    onnx::AttributeProto scales7;
    scales7.set_name("scales");
    scales7.set_type(onnx::AttributeProto::FLOATS);
    for (float v : {1.0f, 1.0f, 1.5f, 2.0f}) scales7.add_floats(v);
    OpCase upsample7{"Upsample", "", {{"x", R({1, 1, 4, 3}, 309)}}, {"x"},
                     {scales7, AttrString("mode", "bilinear")}};
    upsample7.opset = 8;  // Upsample-7 still; the builder itself needs Expand (8)
    fd(upsample7);
  }
  {
    // LayerNormalization: the last axis, two axes with a B, a Scale that
    // broadcasts and no B.
    auto layer_norm = [](std::vector<std::pair<std::string, Tensor>> inputs,
                         std::vector<std::string> params, int64_t axis) {
      OpCase c{"LayerNormalization", "", std::move(inputs), std::move(params),
               {AttrInt("axis", axis), AttrFloat("epsilon", 1e-3f)}};
      c.opset = 17;
      return c;
    };
    fd(layer_norm({{"x", R({2, 3, 4}, 310)}, {"scale", R({4}, 311)}, {"b", R({4}, 312)}},
                  {"x", "scale", "b"}, -1));
    fd(layer_norm({{"x", R({2, 3, 4}, 313)}, {"scale", R({3, 4}, 314)}, {"b", R({3, 4}, 315)}},
                  {"x", "scale", "b"}, 1));
    fd(layer_norm({{"x", R({3, 2, 5}, 316)}, {"scale", R({1, 5}, 317)}}, {"x", "scale"}, -2));
    // InstanceNormalization: 2-D and 1-D spatial.
    fd({"InstanceNormalization", "",
        {{"x", R({2, 3, 4, 3}, 320)}, {"scale", R({3}, 321)}, {"b", R({3}, 322)}},
        {"x", "scale", "b"}, {AttrFloat("epsilon", 1e-3f)}});
    fd({"InstanceNormalization", "",
        {{"x", R({2, 2, 6}, 323)}, {"scale", R({2}, 324)}, {"b", R({2}, 325)}},
        {"x", "scale", "b"}});
    // GlobalMaxPool over distinct values (no ties), and with ties, which
    // share the gradient evenly.
    Tensor x(DataType::kFloat32, {2, 3, 3, 4});
    std::vector<int> order(x.num_elements());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(5));
    for (size_t i = 0; i < order.size(); ++i) {
      x.data<float>()[i] = static_cast<float>(order[i]) * 0.1f;
    }
    fd({"GlobalMaxPool", "", {{"x", x}}, {"x"}});
    own({"GlobalMaxPool", "", {{"x", Tensor::FromValues<float>({1, 1, 2, 2}, std::vector<float>{1, 3, 3, 2})}},
         {"x"}},
        [](const OpCase& c) {
          const auto out = RunOnce(c);
          ASSERT_EQ(out.count("x_grad"), 1u);
          const float r = Upstream({1, 1, 1, 1}).values<float>()[0];
          const std::vector<float> want = {0, r / 2, r / 2, 0};
          for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out.at("x_grad").values<float>()[i], want[i]) << i;
        });
  }
  // (end of resize and normalization)

  return all;
}

bool SameOp(const OpCase& c, const GradOp& op) {
  return c.domain == op.domain && c.op == op.op_type;
}

std::vector<RuleCase> CasesFor(const GradOp& op) {
  std::vector<RuleCase> mine;
  for (RuleCase& rc : Cases()) {
    if (SameOp(rc.c, op)) mine.push_back(std::move(rc));
  }
  return mine;
}

// The manifest's entries that have a rule.
std::vector<const GradOp*> Rules() {
  std::vector<const GradOp*> rules;
  for (const GradOp& op : training::GradOps()) {
    if (op.rule != nullptr) rules.push_back(&op);
  }
  return rules;
}

std::string RuleName(const ::testing::TestParamInfo<const GradOp*>& info) {
  std::string name = std::string(info.param->domain).empty()
                         ? info.param->op_type
                         : std::string(info.param->domain) + "_" + info.param->op_type;
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

class GradientRuleTest : public ::testing::TestWithParam<const GradOp*> {};

TEST_P(GradientRuleTest, PassesItsCases) {
  const GradOp& op = *GetParam();
  const std::vector<RuleCase> cases = CasesFor(op);
  ASSERT_FALSE(cases.empty()) << "the rule for '" << op.domain << "' " << op.op_type
                              << " in gradient_rule_list.h has no case in Cases()";
  for (size_t k = 0; k < cases.size(); ++k) {
    const RuleCase& rc = cases[k];
    SCOPED_TRACE(::testing::Message() << op.op_type << " case " << k << " of " << cases.size());
    if (rc.check) {
      rc.check(rc.c);
    } else {
      Check(rc.c);
    }
  }
}

// Asked for the gradient of every input, a rule emits one for exactly the
// float inputs that the manifest declares differentiable: none for Clip's
// bounds, BatchNormalization's statistics, Dropout's ratio, a loss's
// weights, an integer or boolean input.
TEST_P(GradientRuleTest, EmitsGradientsExactlyForItsDifferentiableInputs) {
  const GradOp& op = *GetParam();
  int checked = 0;
  const std::vector<RuleCase> cases = CasesFor(op);
  for (size_t k = 0; k < cases.size(); ++k) {
    const RuleCase& rc = cases[k];
    if (!rc.builds) continue;
    SCOPED_TRACE(::testing::Message() << op.op_type << " case " << k << " of " << cases.size());
    auto model = TrainingModel(rc.c);
    ASSERT_TRUE(model.ok()) << model.status();
    // The node as the builder prepared it (MaxPool's indices, Dropout's
    // mask), with the case's dL/dy = R as its output's gradient.
    onnx::ModelProto m = ModelAccess::Proto(*model);
    ASSERT_NE(FindNode(m), nullptr);
    const onnx::NodeProto node = *FindNode(m);
    std::vector<bool> wants;
    std::vector<bool> is_float;
    const training::GraphEditor types(&m);
    for (const std::string& in : node.input()) {
      wants.push_back(!in.empty());
      const auto shape = in.empty() ? std::nullopt : types.ShapeOf(in);
      is_float.push_back(shape.has_value() && shape->elem_type == onnx::TensorProto::FLOAT);
    }
    const DirectRun r = RunRuleDirectly(&m, {"R"}, wants);
    ASSERT_TRUE(r.status.ok()) << r.status;
    for (size_t i = 0; i < wants.size(); ++i) {
      const bool expected = is_float[i] && op.inputs.differentiable(static_cast<int>(i));
      EXPECT_EQ(!r.input_grads[i].empty(), expected)
          << op.op_type << " input " << i << " ('" << node.input(i)
          << "'): the manifest declares it "
          << (op.inputs.differentiable(static_cast<int>(i)) ? "" : "non-") << "differentiable";
    }
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no case of " << op.op_type << " builds a training graph";
}

INSTANTIATE_TEST_SUITE_P(Manifest, GradientRuleTest, ::testing::ValuesIn(Rules()), RuleName);

TEST(GradientRulesTest, EveryCaseIsForARuleOfTheManifest) {
  for (const RuleCase& rc : Cases()) {
    const GradOp* op = training::FindGradOp(rc.c.domain, rc.c.op);
    EXPECT_TRUE(op != nullptr && op->rule != nullptr) << rc.c.domain << " " << rc.c.op;
  }
}

TEST(GradientRulesTest, AParameterInANonDifferentiableInputIsNamed) {
  const Tensor labels = Int64s({4}, {2, 0, 1, 2});
  const OpCase cases[] = {
      {"Clip", "", {{"x", R({2, 3}, 200)}, {"lo", Tensor::Scalar(-0.5f)}}, {"x", "lo"}},
      {"BatchNormalization", "",
       {{"x", R({2, 3, 4}, 201)}, {"scale", R({3}, 202)}, {"b", R({3}, 203)},
        {"mean", R({3}, 204)}, {"var", Positive({3}, 205)}},
       {"x", "mean"}},
      {"Dropout", "", {{"x", R({3, 5}, 206)}, {"ratio", Tensor::Scalar(0.25f)}},
       {"x", "ratio"}},
      {"SoftmaxCrossEntropyLoss", "",
       {{"s", R({4, 3}, 207)}, {"l", labels}, {"w", Positive({3}, 208)}},
       {"s", "w"}},
  };
  for (const OpCase& c : cases) {
    auto model = TrainingModel(c);
    ASSERT_FALSE(model.ok()) << c.op;
    EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented);
    const std::string& constant = c.params[1];
    EXPECT_NE(model.status().message().find("(" + c.op + ")"), std::string::npos)
        << model.status();
    EXPECT_NE(model.status().message().find("'" + constant + "'"), std::string::npos)
        << model.status();
    EXPECT_NE(model.status().message().find("non-differentiable"), std::string::npos)
        << model.status();
  }
}

TEST(GradientRulesTest, TrainableInputsFollowTheManifest) {
  auto node = [](const char* domain, const char* op) {
    onnx::NodeProto n;
    n.set_domain(domain);
    n.set_op_type(op);
    return n;
  };
  using training::IsTrainableInput;
  EXPECT_TRUE(IsTrainableInput(node("", "Conv"), 1, false));
  EXPECT_TRUE(IsTrainableInput(node("ai.onnx", "Clip"), 0, false));
  EXPECT_FALSE(IsTrainableInput(node("", "Clip"), 1, false));
  EXPECT_FALSE(IsTrainableInput(node("", "BatchNormalization"), 3, true));
  EXPECT_FALSE(IsTrainableInput(node("", "Dropout"), 1, false));
  EXPECT_FALSE(IsTrainableInput(node("", "SoftmaxCrossEntropyLoss"), 2, false));
  EXPECT_TRUE(IsTrainableInput(node("", "Concat"), 70, false));
  // Quantization parameters train only when learned; those of QDQ never.
  EXPECT_FALSE(IsTrainableInput(node("com.microsoft", "FakeQuant"), 1, false));
  EXPECT_TRUE(IsTrainableInput(node("ai.libqat", "FakeQuant"), 2, true));
  EXPECT_TRUE(IsTrainableInput(node("", "DequantizeLinear"), 0, false));
  EXPECT_FALSE(IsTrainableInput(node("", "DequantizeLinear"), 1, true));
  // No gradient flows through a comparison.
  EXPECT_FALSE(IsTrainableInput(node("", "Greater"), 1, false));
  EXPECT_TRUE(training::IsNonDifferentiable("", "Greater"));
  EXPECT_FALSE(training::IsNonDifferentiable("", "Relu"));
  // An op the manifest does not list: any input; the builder names the op
  // if a gradient must cross it.
  EXPECT_TRUE(IsTrainableInput(node("", "RoiAlign"), 1, false));
}

TEST(GradientRulesTest, OpWithoutRuleIsNamed) {
  OpCase c{"Hardmax", "", {{"x", R({2, 3}, 120)}}, {"x"}};
  auto model = TrainingModel(c);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(model.status().message().find("Hardmax"), std::string::npos)
      << model.status();
  EXPECT_NE(model.status().message().find("build_gradients"), std::string::npos);
}

}  // namespace
}  // namespace testing
}  // namespace qat
