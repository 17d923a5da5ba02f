// QAT end to end: QDQ -> FakeQuant fusion, training with quantization, and
// the int8 export, checked bit for bit where the arithmetic promises it.
#include <cstring>
#include <map>
#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model_internal.h"
#include "qat/calibrate.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "passes/fuse_qdq.h"
#include "training/graph_editor.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

int CountOps(const Model& m, const std::string& op) {
  int count = 0;
  for (const auto& n : ModelAccess::Proto(m).graph().node()) count += n.op_type() == op;
  return count;
}

Dataset Blobs(int64_t n, int64_t features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Tensor x(DataType::kFloat32, {n, features});
  Tensor y(DataType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) {
    y.data<int64_t>()[i] = i % 3;
    for (int64_t j = 0; j < features; ++j) {
      x.data<float>()[i * features + j] = (j % 3 == i % 3 ? 1.5f : -0.5f) + noise(rng);
    }
  }
  return *Dataset::Create(std::move(x), std::move(y));
}

Tensor RunModel(const Model& m, const Tensor& x, const std::string& output = "") {
  ExecutorOptions o;
  o.num_threads = 1;
  auto exec = Executor::Create(m, o);
  EXPECT_TRUE(exec.ok()) << exec.status();
  auto out = (*exec)->Run({{m.inputs()[0].name, x}});
  EXPECT_TRUE(out.ok()) << out.status();
  return out->at(output.empty() ? m.outputs()[0].name : output);
}

void ExpectBitIdentical(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.num_bytes()), 0);
}

Model SmallMlp() {
  MlpSpec spec;
  spec.inputs = 12;
  spec.hidden = {16};
  spec.outputs = 3;
  return *MakeMlp(spec);
}

TEST(FuseQdqTest, FusedModelEqualsTheQdqModelBitForBit) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(64, 12, 1);
  for (bool per_channel : {false, true}) {
    for (int bits : {8, 4}) {
      SCOPED_TRACE(::testing::Message() << "per_channel " << per_channel << " bits " << bits);
      CalibrateOptions co;
      co.per_channel_weights = per_channel;
      auto table = Calibrate(mlp, data, co);
      ASSERT_TRUE(table.ok()) << table.status();
      QuantizeOptions qo;
      qo.per_channel = per_channel;
      qo.weight_bits = bits;
      auto qdq = QuantizeModel(mlp, *table, qo);
      ASSERT_TRUE(qdq.ok()) << qdq.status();
      std::vector<std::string> warnings;
      auto fused = FuseQdqToFakeQuant(*qdq, &warnings);
      ASSERT_TRUE(fused.ok()) << fused.status();
      EXPECT_TRUE(warnings.empty());
      EXPECT_EQ(CountOps(*fused, "FakeQuant"), 6);
      EXPECT_EQ(CountOps(*fused, "QuantizeLinear"), 0);
      EXPECT_EQ(CountOps(*fused, "DequantizeLinear"), 0);
      EXPECT_EQ(CountOps(*fused, "Clip"), 0);
      ExpectBitIdentical(RunModel(*qdq, data.features()), RunModel(*fused, data.features()));
    }
  }
}

TEST(QatTest, TrainsAndExportsAnInt8ModelThatMatchesTheEvalModel) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(120, 12, 2);
  CalibrateOptions co;
  co.per_channel_weights = true;
  auto table = Calibrate(mlp, data, co);
  QuantizeOptions qo;
  qo.per_channel = true;
  auto fused = FuseQdqToFakeQuant(*QuantizeModel(mlp, *table, qo));
  ASSERT_TRUE(fused.ok()) << fused.status();
  auto models = BuildTrainingModels(*fused, {});
  ASSERT_TRUE(models.ok()) << models.status();
  // Quantization parameters are fixed: only the layers' weights train.
  EXPECT_EQ(models->params,
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  TrainerOptions to;
  to.schedule.lr = 1e-2f;
  to.num_threads = 1;
  auto trainer = Trainer::Create(*models, to);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto before = (*trainer)->Evaluate(data, 32);
  ASSERT_TRUE((*trainer)->TrainEpochs(data, 4, 16).ok());
  auto after = (*trainer)->Evaluate(data, 32);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_LT(after->loss, before->loss);
  EXPECT_GT(after->accuracy, 0.9);

  std::map<std::string, Tensor> params;
  for (const std::string& p : (*trainer)->param_names()) params[p] = (*trainer)->param(p);
  auto exported = ExportQuantizedModel(models->eval, params);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(CountOps(*exported, "FakeQuant"), 0);
  EXPECT_EQ(CountOps(*exported, "QuantizeLinear"), 4);    // activations
  EXPECT_EQ(CountOps(*exported, "DequantizeLinear"), 6);  // and 2 weights
  EXPECT_THAT(exported->inputs().size(), 1u);
  EXPECT_EQ(exported->outputs()[0].name, "logits");
  int int8 = 0;
  for (const auto& t : ModelAccess::Proto(*exported).graph().initializer()) {
    int8 += t.data_type() == onnx::TensorProto::INT8 && t.dims_size() == 2;
  }
  EXPECT_EQ(int8, 2);

  // The exported int8 model computes exactly what the trained FakeQuant
  // model computes, and so does the export that keeps float weights.
  auto fake_quant = ExportInferenceModel(models->eval, params);
  ASSERT_TRUE(fake_quant.ok()) << fake_quant.status();
  EXPECT_EQ(CountOps(*fake_quant, "FakeQuant"), 6);
  auto float_export = ExportQuantizedModel(models->eval, params, {true});
  ASSERT_TRUE(float_export.ok()) << float_export.status();
  const Tensor reference = RunModel(*fake_quant, data.features());
  ExpectBitIdentical(reference, RunModel(*exported, data.features()));
  ExpectBitIdentical(reference, RunModel(*float_export, data.features()));
}

TEST(QatTest, ExportedModelIsAboutFourTimesSmaller) {
  const Model mlp = *MakeMlp();
  Tensor x(DataType::kFloat32, {16, 784});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = (i % 17) * 0.1f - 0.8f;
  const Dataset data = *Dataset::Create(x, Tensor(DataType::kInt64, {16}));
  auto table = Calibrate(mlp, data, {});
  auto fused = FuseQdqToFakeQuant(*QuantizeModel(mlp, *table, {}));
  auto models = BuildTrainingModels(*fused, {});
  auto exported = ExportQuantizedModel(models->eval);
  ASSERT_TRUE(exported.ok()) << exported.status();
  const double ratio = static_cast<double>(mlp.Serialize().size()) / exported->Serialize().size();
  EXPECT_GT(ratio, 3.8);
}

// Hand-written QDQ graphs: what other tools write.
struct QdqGraph {
  onnx::ModelProto proto;
  Model Build() {
    auto m = Model::FromBytes(proto.SerializeAsString(), "qdq.onnx");
    EXPECT_TRUE(m.ok()) << m.status();
    return *m;
  }
};

// x -> Q -> DQ -> Relu -> y, and optionally a second pair sharing the zero
// point initializer.
QdqGraph MakeQdq(int64_t opset, bool zero_point, bool raw_zero_point, bool shared) {
  QdqGraph q;
  q.proto.set_ir_version(opset >= 19 ? 9 : 7);
  q.proto.mutable_graph()->set_name("qdq");
  q.proto.add_opset_import()->set_version(opset);
  training::GraphEditor g(&q.proto);
  training::ValueShape shape;
  shape.elem_type = onnx::TensorProto::FLOAT;
  shape.rank_known = true;
  shape.dims = {2, 3};
  g.AddInput("x", shape);
  const std::string s = g.ConstantFloat(0.1f, "s");
  onnx::TensorProto zp;
  zp.set_name("zp");
  zp.set_data_type(onnx::TensorProto::UINT8);
  if (raw_zero_point) zp.set_raw_data(std::string(1, '\x05'));
  else zp.add_int32_data(5);
  const std::string z = g.Initializer(zp);
  std::vector<std::string> qin = {"x", s};
  if (zero_point) qin.push_back(z);
  const std::string qv = g.Add("QuantizeLinear", qin, "xq");
  qin[0] = qv;
  std::string v = g.Add("DequantizeLinear", qin, "xdq");
  if (shared) {
    std::vector<std::string> in2 = {v, s, z};
    const std::string q2 = g.Add("QuantizeLinear", in2, "q2");
    in2[0] = q2;
    v = g.Add("DequantizeLinear", in2, "dq2");
  }
  g.AddNode("Relu", "", {v}, {"y"});
  g.AddOutput("y", shape);
  return q;
}

TEST(FuseQdqTest, HandlesWhatOnnxRuntimeFusionTripsOn) {
  Tensor x(DataType::kFloat32, {2, 3});
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = (i - 2) * 0.37f;
  struct Case {
    int64_t opset;
    bool zp, raw, shared;
  };
  for (const Case c : {Case{10, true, false, false}, Case{13, true, true, false},
                       Case{13, false, false, false}, Case{13, true, false, true},
                       Case{17, true, true, true}}) {
    SCOPED_TRACE(::testing::Message() << "opset " << c.opset << " zp " << c.zp << " raw "
                                      << c.raw << " shared " << c.shared);
    const Model qdq = MakeQdq(c.opset, c.zp, c.raw, c.shared).Build();
    auto fused = FuseQdqToFakeQuant(qdq);
    ASSERT_TRUE(fused.ok()) << fused.status();
    EXPECT_EQ(CountOps(*fused, "FakeQuant"), c.shared ? 2 : 1);
    EXPECT_EQ(CountOps(*fused, "QuantizeLinear"), 0);
    ExpectBitIdentical(RunModel(qdq, x), RunModel(*fused, x));
  }
}

// Debian's ONNX 1.12 cannot check or infer opset 19 models (IR version 9),
// so the pass runs on the protobuf directly there.
TEST(FuseQdqTest, FusesOpset19Pairs) {
  QdqGraph q = MakeQdq(19, true, true, true);
  passes::FuseQdqToFakeQuantPass pass;
  auto changed = pass.Run(&q.proto);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  int fq = 0, qdq = 0;
  for (const auto& n : q.proto.graph().node()) {
    fq += n.op_type() == "FakeQuant";
    qdq += n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear";
  }
  EXPECT_EQ(fq, 2);
  EXPECT_EQ(qdq, 0);
}

TEST(FuseQdqTest, QuantizeWithOtherConsumersIsLeftAloneWithAWarning) {
  QdqGraph q = MakeQdq(13, true, false, false);
  // A second consumer of the QuantizeLinear output.
  auto* n = q.proto.mutable_graph()->add_node();
  n->set_op_type("Identity");
  n->add_input("xq");
  n->add_output("xq_copy");
  auto* out = q.proto.mutable_graph()->add_output();
  out->set_name("xq_copy");
  auto* t = out->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::UINT8);
  t->mutable_shape()->add_dim()->set_dim_value(2);
  t->mutable_shape()->add_dim()->set_dim_value(3);
  std::vector<std::string> warnings;
  auto fused = FuseQdqToFakeQuant(q.Build(), &warnings);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(CountOps(*fused, "FakeQuant"), 0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("consumers besides"));
}

TEST(FuseQdqTest, NonConstantScaleIsAnErrorNamingTheNode) {
  QdqGraph q = MakeQdq(13, true, false, false);
  training::GraphEditor g(&q.proto);
  training::ValueShape scalar;
  scalar.elem_type = onnx::TensorProto::FLOAT;
  scalar.rank_known = true;
  g.AddInput("runtime_scale", scalar);
  for (auto& n : *q.proto.mutable_graph()->mutable_node()) {
    if (n.op_type() == "QuantizeLinear") n.set_input(1, "runtime_scale");
  }
  auto fused = FuseQdqToFakeQuant(q.Build());
  ASSERT_FALSE(fused.ok());
  EXPECT_THAT(std::string(fused.status().message()), HasSubstr("QuantizeLinear"));
  EXPECT_THAT(std::string(fused.status().message()), HasSubstr("non-constant scale"));
}

}  // namespace
}  // namespace qat

namespace qat {
namespace {

// LSQ/LSQ+: scales and zero points train, with their own gradient node.
TEST(QatTest, LearnedScalesAndZeroPointsTrainAndExport) {
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(120, 12, 4);
  auto table = Calibrate(mlp, data, {});
  auto fused = FuseQdqToFakeQuant(*QuantizeModel(mlp, *table, {}));
  ASSERT_TRUE(fused.ok()) << fused.status();
  TrainingGraphOptions options;
  options.learn_quant_params = true;
  auto models = BuildTrainingModels(*fused, options);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(models->params.size(), 4u + 2 * 6);  // weights, biases, 6 scales and zero points
  EXPECT_EQ(CountOps(models->training, "FakeQuantLsqGrad"), 6);

  // SGD with momentum, as in the LSQ paper: the gradient scale g keeps the
  // scales' steps small.  (AdamW normalizes steps to about lr, which is
  // large for a scale of 0.01; see docs/quantization.md.)
  TrainerOptions to;
  to.optimizer.kind = OptimizerKind::kSgd;
  to.optimizer.momentum = 0.9f;
  to.schedule.lr = 5e-2f;
  to.num_threads = 1;
  auto trainer = Trainer::Create(*models, to);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  std::map<std::string, Tensor> initial;
  for (const std::string& p : (*trainer)->param_names()) initial[p] = (*trainer)->param(p);
  ASSERT_TRUE((*trainer)->TrainEpochs(data, 4, 16).ok());
  auto after = (*trainer)->Evaluate(data, 32);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GT(after->accuracy, 0.9);
  int scales_moved = 0;
  for (const std::string& p : (*trainer)->param_names()) {
    if (p.find("_fq_scale") == std::string::npos) continue;
    scales_moved += (*trainer)->param(p).values<float>()[0] != initial.at(p).values<float>()[0];
    EXPECT_GT((*trainer)->param(p).values<float>()[0], 0.0f) << p;
  }
  EXPECT_GT(scales_moved, 0);

  // The export rounds the learned zero points as training fed them, so it
  // computes exactly what the eval model computed.
  std::map<std::string, Tensor> params;
  for (const std::string& p : (*trainer)->param_names()) params[p] = (*trainer)->param(p);
  auto exported = ExportQuantizedModel(models->eval, params);
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto eval = (*trainer)->EvalStep({{"input", data.features()}, {"labels", data.labels()}});
  ASSERT_TRUE(eval.ok()) << eval.status();
  ExpectBitIdentical(eval->at("logits"), RunModel(*exported, data.features()));
}

}  // namespace
}  // namespace qat
