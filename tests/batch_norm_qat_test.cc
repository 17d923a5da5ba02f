// QAT with BatchNormalization in training mode (passes/fold_batch_norm_qat.h):
// the training model folds it as QAT simulates it and returns the updated
// running statistics, the trainer writes them back and checkpoints them,
// the eval model is the deployed folding, and the export has no
// BatchNormalization, int8 folded weights and the eval model's outputs bit
// for bit.  On a small ResNet-8 from the model zoo and synthetic images.
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/model_internal.h"
#include "gtest/gtest.h"
#include "qat/calibrate.h"
#include "qat/checkpoint.h"
#include "qat/executor.h"
#include "qat/export.h"
#include "qat/model_zoo.h"
#include "qat/prepare.h"
#include "qat/quantize.h"
#include "qat/train_folder.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"

namespace qat {
namespace {

namespace fs = std::filesystem;

int CountOps(const Model& model, const std::string& op) {
  int n = 0;
  for (const auto& node : ModelAccess::Proto(model).graph().node()) n += node.op_type() == op;
  return n;
}

// Images whose class is the brightest of three bands, plus noise.
Dataset Bands(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Tensor x(DataType::kFloat32, {n, 1, 8, 8});
  Tensor y(DataType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 3;
    y.data<int64_t>()[i] = c;
    for (int64_t p = 0; p < 64; ++p) {
      x.data<float>()[i * 64 + p] = ((p / 8) * 3 / 8 == c ? 1.0f : 0.0f) + noise(rng);
    }
  }
  return *Dataset::Create(std::move(x), std::move(y));
}

Model SmallResNet() {
  ResNet8Spec spec;
  spec.image = 8;
  spec.width = 4;
  spec.classes = 3;
  spec.seed = 5;
  auto m = MakeResNet8(spec);
  EXPECT_TRUE(m.ok()) << m.status();
  return *std::move(m);
}

Model Quantized(const Model& fp32, const Dataset& data, bool per_channel) {
  auto table = Calibrate(fp32, data, {});
  EXPECT_TRUE(table.ok()) << table.status();
  QuantizeOptions options;
  options.per_channel = per_channel;
  auto qdq = QuantizeModel(fp32, *table, options);
  EXPECT_TRUE(qdq.ok()) << qdq.status();
  return *std::move(qdq);
}

void ExpectBitwiseEqual(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.num_bytes(), b.num_bytes()) << what;
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.num_bytes()), 0) << what;
}

class BatchNormQatTest : public ::testing::TestWithParam<bool> {};

// The whole path, per-tensor and per-channel weights.
TEST_P(BatchNormQatTest, TrainsStatisticsAndExportsTheFoldBitForBit) {
  const Dataset data = Bands(48, 1);
  const Model fp32 = SmallResNet();
  ASSERT_EQ(CountOps(fp32, "BatchNormalization"), 9);
  const Model qdq = Quantized(fp32, data, GetParam());
  // quantize folds only inference-mode BatchNormalization.
  EXPECT_EQ(CountOps(qdq, "BatchNormalization"), 9);
  auto models = PrepareModels(qdq);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(CountOps(models->eval, "BatchNormalization"), 0);
  EXPECT_EQ(CountOps(models->training, "BatchNormalization"), 9);
  int next = 0;
  for (const ValueInfo& o : models->training.outputs()) {
    next += o.name.size() > 5 && o.name.compare(o.name.size() - 5, 5, "_next") == 0;
  }
  EXPECT_EQ(next, 18);
  for (const std::string& p : models->params) {
    EXPECT_EQ(p.find("running"), std::string::npos) << p << " must not train";
  }

  TrainerOptions options;
  options.schedule.lr = 0.05f;
  options.num_threads = 1;
  options.seed = 3;
  auto trainer = Trainer::Create(*models, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->TrainEpochs(data, 2, 16).ok());
  const Checkpoint c = (*trainer)->MakeCheckpoint();
  ASSERT_EQ(c.running_stats.size(), 18u);
  for (const auto& [name, value] : c.running_stats) {
    const bool is_var = name.find("running_var") != std::string::npos;
    bool moved = false;
    for (float v : value.values<float>()) moved = moved || v != (is_var ? 1.0f : 0.0f);
    EXPECT_TRUE(moved) << name << " kept its initial values";
  }

  auto exported = ExportQuantizedModel(models->eval, ExportedParameters(c), {});
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(CountOps(*exported, "BatchNormalization"), 0);
  EXPECT_EQ(CountOps(*exported, "FakeQuant"), 0);
  // Every Conv reads an int8 weight through DequantizeLinear.
  const auto& graph = ModelAccess::Proto(*exported).graph();
  std::map<std::string, const onnx::NodeProto*> producer;
  for (const auto& n : graph.node()) {
    for (const auto& o : n.output()) producer[o] = &n;
  }
  std::map<std::string, int> initializer_type;
  for (const auto& t : graph.initializer()) initializer_type[t.name()] = t.data_type();
  int convs = 0;
  for (const auto& n : graph.node()) {
    if (n.op_type() != "Conv") continue;
    ++convs;
    const onnx::NodeProto* dq = producer[n.input(1)];
    ASSERT_NE(dq, nullptr) << n.name();
    EXPECT_EQ(dq->op_type(), "DequantizeLinear") << n.name();
    EXPECT_EQ(initializer_type[dq->input(0)], onnx::TensorProto::INT8) << n.name();
  }
  EXPECT_EQ(convs, 9);

  // The eval model (trainer) and the export, on one batch, bit for bit.
  auto run = Executor::Create(*exported, {1});
  ASSERT_TRUE(run.ok()) << run.status();
  const Dataset batch = Bands(10, 9);
  std::map<std::string, Tensor> feed = {{"input", batch.features()},
                                        {"labels", batch.labels()}};
  auto eval = (*trainer)->EvalStep(feed);
  ASSERT_TRUE(eval.ok()) << eval.status();
  std::map<std::string, Tensor> out;
  ASSERT_TRUE((*run)->Run({{"input", &feed.at("input")}}, &out).ok());
  ExpectBitwiseEqual(eval->at("logits"), out.at("logits"), "logits");
  // An inference model: a batch's results do not depend on its neighbours.
  Tensor first(DataType::kFloat32, {2, 1, 8, 8});
  std::memcpy(first.raw_data(), feed.at("input").raw_data(), first.num_bytes());
  std::map<std::string, Tensor> small;
  ASSERT_TRUE((*run)->Run({{"input", &first}}, &small).ok());
  EXPECT_EQ(std::memcmp(small.at("logits").raw_data(), out.at("logits").raw_data(),
                        small.at("logits").num_bytes()),
            0);
}

INSTANTIATE_TEST_SUITE_P(PerTensorAndPerChannel, BatchNormQatTest, ::testing::Bool());

// The running statistics go into the checkpoint, and a stopped run resumed
// ends bit for bit where the uninterrupted one does, statistics included.
TEST(BatchNormQatFolderTest, ResumeIsBitIdenticalWithRunningStatistics) {
  const fs::path dir = fs::temp_directory_path() /
                       absl::StrCat("qat_bn_qat_test_",
                                    ::testing::UnitTest::GetInstance()->random_seed());
  fs::remove_all(dir);
  const Dataset data = Bands(48, 2);
  const Model qdq = Quantized(SmallResNet(), data, true);
  const std::string straight = (dir / "straight").string(), stopped = (dir / "stopped").string();
  ASSERT_TRUE(Prepare(qdq, straight).ok());
  ASSERT_TRUE(Prepare(qdq, stopped).ok());
  TrainFolderOptions settings;
  settings.epochs = 2;
  settings.batch = 16;
  settings.lr = 0.05;
  settings.seed = 4;
  settings.threads = 1;
  {
    auto run = TrainFolder(straight, data, settings);
    ASSERT_TRUE(run.ok()) << run.status();
  }
  TrainFolderHooks hooks;
  int seen = 0;
  hooks.on_step = [&](const TrainFolderStep&) {
    return ++seen == 4 ? absl::CancelledError("stop") : absl::OkStatus();
  };
  ASSERT_EQ(TrainFolder(stopped, data, settings, hooks).status().code(),
            absl::StatusCode::kCancelled);
  TrainFolderOptions resume = settings;
  resume.resume = true;
  auto rest = TrainFolder(stopped, data, resume);
  ASSERT_TRUE(rest.ok()) << rest.status();
  auto a = LoadCheckpoint(straight + "/" + kCheckpointFile);
  auto b = LoadCheckpoint(stopped + "/" + kCheckpointFile);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->running_stats.size(), 18u);
  ASSERT_EQ(a->running_stats.size(), b->running_stats.size());
  for (size_t i = 0; i < a->running_stats.size(); ++i) {
    EXPECT_EQ(a->running_stats[i].first, b->running_stats[i].first);
    ExpectBitwiseEqual(a->running_stats[i].second, b->running_stats[i].second,
                       a->running_stats[i].first);
  }
  for (size_t i = 0; i < a->parameters.size(); ++i) {
    ExpectBitwiseEqual(a->parameters[i].second, b->parameters[i].second,
                       a->parameters[i].first);
  }
  EXPECT_EQ(ExportFolder(straight)->Serialize(), ExportFolder(stopped)->Serialize());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qat
