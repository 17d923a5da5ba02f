// QAT end to end: QDQ -> FakeQuant fusion, training with quantization, and
// the int8 export, checked bit for bit where the arithmetic promises it.
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <cmath>
#include <algorithm>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "qat/calibrate.h"
#include "qat/executor.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quant_params.h"
#include "qat/quantize.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "passes/fuse_qdq_to_fake_quant.h"
#include "graph/graph_editor.h"

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

namespace qat {
namespace {

// Observe mode: activation ranges follow a moving average of min/max, weight
// ranges follow the weights, both freeze after a number of steps.
struct FakeQuantSite {
  std::string x, scale, zero_point;
  QuantRange range;
  int64_t axis = -1;  // per tensor
};

std::vector<FakeQuantSite> FakeQuantSites(const Model& m) {
  std::vector<FakeQuantSite> sites;
  for (const auto& n : ModelAccess::Proto(m).graph().node()) {
    if (n.op_type() != "FakeQuant") continue;
    FakeQuantSite s{n.input(0), n.input(1), n.input(2),
                    {static_cast<int32_t>(training::GetAttrInt(n, "quant_min", 0)),
                     static_cast<int32_t>(training::GetAttrInt(n, "quant_max", 255))}};
    if (n.domain() == "ai.libqat") s.axis = training::GetAttrInt(n, "axis", 1);
    sites.push_back(s);
  }
  return sites;
}

TrainingModels ObservedModels(bool per_channel) {
  const Model mlp = SmallMlp();
  CalibrateOptions co;
  co.per_channel_weights = per_channel;
  auto table = Calibrate(mlp, Blobs(120, 12, 4), co);
  EXPECT_TRUE(table.ok()) << table.status();
  QuantizeOptions qo;
  qo.per_channel = per_channel;
  auto fused = FuseQdqToFakeQuant(*QuantizeModel(mlp, *table, qo));
  EXPECT_TRUE(fused.ok()) << fused.status();
  TrainingGraphOptions options;
  options.observe_quant_params = true;
  auto models = BuildTrainingModels(*fused, options);
  EXPECT_TRUE(models.ok()) << models.status();
  return *std::move(models);
}

TrainerOptions ObservingTrainerOptions(int64_t freeze_after_steps = -1) {
  TrainerOptions o;
  o.optimizer.kind = OptimizerKind::kSgd;
  o.schedule.lr = 5e-2f;
  o.num_threads = 1;
  o.observe.freeze_after_steps = freeze_after_steps;
  return o;
}

std::map<std::string, Tensor> ObservedParams(const Trainer& t) {
  const Checkpoint c = t.MakeCheckpoint();
  return {c.quant_params.begin(), c.quant_params.end()};
}

// Per-channel (or whole-tensor) min and max, computed plainly.
void ChannelMinMax(const Tensor& t, int64_t axis, int64_t channels, std::vector<float>* lo,
                   std::vector<float>* hi) {
  int64_t inner = 1;
  for (int64_t d = axis + 1; axis >= 0 && d < static_cast<int64_t>(t.shape().size()); ++d) {
    inner *= t.dim(d);
  }
  lo->assign(channels, INFINITY);
  hi->assign(channels, -INFINITY);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    const int64_t c = axis < 0 ? 0 : (i / inner) % channels;
    (*lo)[c] = std::min((*lo)[c], t.data<float>()[i]);
    (*hi)[c] = std::max((*hi)[c], t.data<float>()[i]);
  }
}

// Batch `step`: blobs whose spread grows with the step.
std::map<std::string, Tensor> GrowingBatch(int step) {
  const Dataset d = Blobs(16, 12, 10 + step);
  Tensor x = d.features();
  for (float& v : x.values<float>()) v *= 1.0f + 0.5f * step;
  return {{"input", x}, {"labels", d.labels()}};
}

// Trainer::SaveCheckpoint writes the state from where it lies; the file is
// the one SaveCheckpoint writes for MakeCheckpoint's copy, byte for byte
// (observed parameters, observer state and optimizer slots included).
TEST(ObserveTest, TrainerSavesTheBytesOfItsCheckpointCopy) {
  const TrainingModels models = ObservedModels(/*per_channel=*/true);
  TrainerOptions options = ObservingTrainerOptions();
  options.optimizer.kind = OptimizerKind::kAdamW;
  auto trainer = Trainer::Create(models, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  for (int step = 0; step < 2; ++step) ASSERT_TRUE((*trainer)->TrainStep(GrowingBatch(step)).ok());
  TrainingProgress progress = (*trainer)->progress();
  progress.epoch = 3;
  const std::map<std::string, std::string> metadata = {{"run.lr", "0.05"}, {"a", "b"}};
  const std::string direct = ::testing::TempDir() + "/trainer_direct.ckpt";
  const std::string copied = ::testing::TempDir() + "/trainer_copied.ckpt";
  ASSERT_TRUE((*trainer)->SaveCheckpoint(direct, progress, metadata).ok());
  Checkpoint c = (*trainer)->MakeCheckpoint();
  ASSERT_FALSE(c.observer_state.empty());
  ASSERT_FALSE(c.optimizer_state.empty());
  c.progress = progress;
  c.metadata = metadata;
  ASSERT_TRUE(SaveCheckpoint(copied, c).ok());
  auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  EXPECT_GT(bytes(direct).size(), 1000u);
  EXPECT_EQ(bytes(direct), bytes(copied));
}

TEST(ObserveTest, ScalesFollowAReferenceMovingAverageAndTheWeights) {
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "per_channel " << per_channel);
    const TrainingModels models = ObservedModels(per_channel);
    ASSERT_TRUE(models.observe_quant_params);
    auto trainer = Trainer::Create(models, ObservingTrainerOptions());
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    const std::vector<FakeQuantSite> sites = FakeQuantSites(models.training);
    ASSERT_EQ(sites.size(), 6u);
    const std::set<std::string> params(models.params.begin(), models.params.end());
    float ref_min = 0.0f, ref_max = 0.0f, previous_scale = 0.0f;
    for (int step = 0; step < 5; ++step) {
      const auto batch = GrowingBatch(step);
      ASSERT_TRUE((*trainer)->TrainStep(batch).ok());
      const Checkpoint c = (*trainer)->MakeCheckpoint();
      EXPECT_EQ(c.observed_steps, step + 1);
      const std::map<std::string, Tensor> q(c.quant_params.begin(), c.quant_params.end());
      for (const FakeQuantSite& s : sites) {
        SCOPED_TRACE(s.x);
        const Tensor& scale = q.at(s.scale);
        const Tensor& zp = q.at(s.zero_point);
        std::vector<float> lo, hi;
        bool symmetric = false;
        if (s.x == "input") {
          // The plain reference EMA (PyTorch: the first batch sets it).
          ChannelMinMax(batch.at("input"), -1, 1, &lo, &hi);
          ref_min = step == 0 ? lo[0] : ref_min + 0.01f * (lo[0] - ref_min);
          ref_max = step == 0 ? hi[0] : ref_max + 0.01f * (hi[0] - ref_max);
          lo = {ref_min};
          hi = {ref_max};
          // The input's range widens every step, and so does its scale.
          EXPECT_GT(scale.values<float>()[0], previous_scale);
          previous_scale = scale.values<float>()[0];
        } else if (params.count(s.x) != 0) {
          // Weights: the current weights' range, symmetric int8.
          ChannelMinMax((*trainer)->param(s.x), s.axis, scale.num_elements(), &lo, &hi);
          symmetric = true;
        } else {
          // Hidden activations: the moving average the checkpoint keeps.
          lo.assign(c.observer_state.at(s.scale + ".min_val").values<float>().begin(),
                    c.observer_state.at(s.scale + ".min_val").values<float>().end());
          hi.assign(c.observer_state.at(s.scale + ".max_val").values<float>().begin(),
                    c.observer_state.at(s.scale + ".max_val").values<float>().end());
        }
        ASSERT_EQ(static_cast<int64_t>(lo.size()), scale.num_elements());
        for (size_t ch = 0; ch < lo.size(); ++ch) {
          auto expected = ComputeQuantParams(lo[ch], hi[ch], s.range, symmetric);
          ASSERT_TRUE(expected.ok()) << expected.status();
          EXPECT_EQ(scale.values<float>()[ch], expected->scale) << "channel " << ch;
          EXPECT_EQ(zp.values<float>()[ch], expected->zero_point) << "channel " << ch;
        }
      }
    }
  }
}

TEST(ObserveTest, ParametersFreezeAfterTheChosenNumberOfSteps) {
  const TrainingModels models = ObservedModels(true);
  auto trainer = Trainer::Create(models, ObservingTrainerOptions(/*freeze_after_steps=*/2));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const std::map<std::string, Tensor> calibrated = ObservedParams(**trainer);
  std::map<std::string, Tensor> frozen;
  for (int step = 0; step < 5; ++step) {
    ASSERT_TRUE((*trainer)->TrainStep(GrowingBatch(step)).ok());
    if (step == 1) frozen = ObservedParams(**trainer);
  }
  EXPECT_EQ((*trainer)->MakeCheckpoint().observed_steps, 2);
  int changed = 0;
  for (const auto& [name, value] : ObservedParams(**trainer)) {
    SCOPED_TRACE(name);
    ExpectBitIdentical(value, frozen.at(name));
    changed += std::memcmp(value.raw_data(), calibrated.at(name).raw_data(),
                           value.num_bytes()) != 0;
  }
  EXPECT_GT(changed, 0);  // the two observed steps did move them
}

TEST(ObserveTest, ResumingFromACheckpointFileIsBitIdentical) {
  const TrainingModels models = ObservedModels(true);
  const Dataset data = Blobs(90, 12, 4);
  const TrainerOptions options = ObservingTrainerOptions(/*freeze_after_steps=*/12);
  auto straight = Trainer::Create(models, options);
  ASSERT_TRUE((*straight)->TrainEpochs(data, 3, 16).ok());

  auto first = Trainer::Create(models, options);
  const absl::Status stopped = (*first)->TrainEpochs(data, 3, 16, [](const StepReport& r) {
    return r.global_step == 9 ? absl::CancelledError("stop") : absl::OkStatus();
  });
  ASSERT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  const std::string path = ::testing::TempDir() + "/observe_resume.ckpt";
  ASSERT_TRUE(SaveCheckpoint(path, (*first)->MakeCheckpoint()).ok());
  auto loaded = LoadCheckpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->observed_steps, 9);
  EXPECT_EQ(loaded->quant_params.size(), 12u);
  EXPECT_EQ(loaded->observer_state.size(), 8u);  // min and max of 4 activations

  auto resumed = Trainer::Create(models, options);
  ASSERT_TRUE((*resumed)->RestoreCheckpoint(*loaded).ok());
  ASSERT_TRUE((*resumed)->TrainEpochs(data, 3, 16).ok());
  const Checkpoint a = (*straight)->MakeCheckpoint(), b = (*resumed)->MakeCheckpoint();
  EXPECT_EQ(a.observed_steps, 12);
  EXPECT_EQ(b.observed_steps, 12);
  ASSERT_EQ(a.parameters.size(), b.parameters.size());
  for (size_t i = 0; i < a.parameters.size(); ++i) {
    SCOPED_TRACE(a.parameters[i].first);
    ExpectBitIdentical(a.parameters[i].second, b.parameters[i].second);
  }
  ASSERT_EQ(a.quant_params.size(), b.quant_params.size());
  for (size_t i = 0; i < a.quant_params.size(); ++i) {
    SCOPED_TRACE(a.quant_params[i].first);
    EXPECT_EQ(a.quant_params[i].first, b.quant_params[i].first);
    ExpectBitIdentical(a.quant_params[i].second, b.quant_params[i].second);
  }
  for (const auto& [name, value] : a.observer_state) {
    SCOPED_TRACE(name);
    ExpectBitIdentical(value, b.observer_state.at(name));
  }
}

TEST(ObserveTest, TheExportUsesTheObservedParameters) {
  const TrainingModels models = ObservedModels(false);
  const Dataset data = Blobs(120, 12, 4);
  auto trainer = Trainer::Create(models, ObservingTrainerOptions());
  ASSERT_TRUE((*trainer)->TrainEpochs(data, 2, 16).ok());
  const Checkpoint c = (*trainer)->MakeCheckpoint();
  auto eval = (*trainer)->EvalStep({{"input", data.features()}, {"labels", data.labels()}});
  ASSERT_TRUE(eval.ok()) << eval.status();
  auto exported = ExportQuantizedModel(models.eval, ExportedParameters(c));
  ASSERT_TRUE(exported.ok()) << exported.status();
  ExpectBitIdentical(eval->at("logits"), RunModel(*exported, data.features()));

  // Without the observed parameters the export would compute something else.
  std::map<std::string, Tensor> weights_only(c.parameters.begin(), c.parameters.end());
  auto stale = ExportQuantizedModel(models.eval, weights_only);
  ASSERT_TRUE(stale.ok()) << stale.status();
  const Tensor a = eval->at("logits"), b = RunModel(*stale, data.features());
  EXPECT_NE(std::memcmp(a.raw_data(), b.raw_data(), a.num_bytes()), 0);
}

TEST(ObserveTest, TheModeSurvivesTheArtifactsAndBadCombinationsAreErrors) {
  const TrainingModels models = ObservedModels(false);
  const std::string dir = ::testing::TempDir() + "/observe_artifacts";
  ASSERT_TRUE(SaveTrainingArtifacts(dir, models).ok());
  auto loaded = LoadTrainingModels(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->observe_quant_params);

  TrainingGraphOptions both;
  both.learn_quant_params = true;
  both.observe_quant_params = true;
  auto bad = BuildTrainingModels(SmallMlp(), both);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  // An observed checkpoint does not restore into a model that does not observe.
  auto observing = Trainer::Create(models, ObservingTrainerOptions());
  ASSERT_TRUE((*observing)->TrainStep(GrowingBatch(0)).ok());
  TrainingModels fixed = models;
  fixed.observe_quant_params = false;
  auto plain = Trainer::Create(fixed, ObservingTrainerOptions());
  ASSERT_TRUE(plain.ok()) << plain.status();
  const absl::Status restored = (*plain)->RestoreCheckpoint((*observing)->MakeCheckpoint());
  EXPECT_EQ(restored.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(restored.message()), HasSubstr("observe"));

  TrainerOptions o = ObservingTrainerOptions();
  o.observe.averaging_constant = 0.0f;
  EXPECT_EQ(Trainer::Create(models, o).status().code(), absl::StatusCode::kInvalidArgument);

  // Two FakeQuant nodes that share a scale cannot both be observed.
  onnx::ModelProto shared = ModelAccess::Proto(models.training);
  std::vector<onnx::NodeProto*> fake_quants;
  for (auto& n : *shared.mutable_graph()->mutable_node()) {
    if (n.op_type() == "FakeQuant") fake_quants.push_back(&n);
  }
  ASSERT_GE(fake_quants.size(), 2u);
  fake_quants[1]->set_input(1, fake_quants[0]->input(1));
  TrainingModels sharing = models;
  auto reloaded = Model::FromBytes(shared.SerializeAsString(), "shared");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  sharing.training = *reloaded;
  const absl::Status refused = Trainer::Create(sharing, ObservingTrainerOptions()).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr(fake_quants[0]->input(1)));
  EXPECT_THAT(std::string(refused.message()), HasSubstr(fake_quants[1]->name()));
}

}  // namespace
}  // namespace qat
