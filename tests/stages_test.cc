// The stages API called directly: Model::WithOutputs and Save, LoadDataSpec,
// Prepare, TrainFolder (chaining, an interrupted run resumed bit for bit,
// refused settings, bad input), ExportFolder, Evaluate and the pipeline
// recipe, on a small MLP and synthetic data.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "graph/graph_editor.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/calibrate.h"
#include "qat/checkpoint.h"
#include "qat/data_spec.h"
#include "qat/evaluate.h"
#include "qat/executor.h"
#include "qat/export.h"
#include "qat/model_zoo.h"
#include "qat/npy.h"
#include "qat/pipeline.h"
#include "qat/prepare.h"
#include "qat/quantize.h"
#include "qat/train_folder.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "synthetic_data.h"

namespace qat {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

Model SmallMlp() { return BlobsMlp(3); }

// A QDQ model of SmallMlp, as quantize writes it.
Model SmallQdq(const Dataset& data) {
  const Model mlp = SmallMlp();
  auto table = Calibrate(mlp, data, {});
  EXPECT_TRUE(table.ok()) << table.status();
  auto qdq = QuantizeModel(mlp, *table, {});
  EXPECT_TRUE(qdq.ok()) << qdq.status();
  return *std::move(qdq);
}

class StagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("qat_stages_test_", ::testing::UnitTest::GetInstance()->random_seed(),
                        "_", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `data` as x.npy,y.npy and returns the data spec.
  std::string WriteSpec(const Dataset& data) {
    EXPECT_TRUE(WriteNpy(Path("x.npy"), data.features()).ok());
    EXPECT_TRUE(WriteNpy(Path("y.npy"), data.labels()).ok());
    return Path("x.npy") + "," + Path("y.npy");
  }

  // A prepared folder of the QDQ model.
  std::string Prepared(const std::string& name, const Dataset& data) {
    const std::string folder = Path(name);
    auto summary = Prepare(SmallQdq(data), folder);
    EXPECT_TRUE(summary.ok()) << summary.status();
    return folder;
  }

  fs::path dir_;
};

TrainFolderOptions Settings(int64_t epochs) {
  TrainFolderOptions o;
  o.epochs = epochs;
  o.batch = 16;
  o.lr = 1e-2;
  o.seed = 7;
  o.threads = 1;
  return o;
}

Checkpoint Load(const std::string& folder) {
  auto c = LoadCheckpoint(folder + "/" + kCheckpointFile);
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

// Bitwise equality of two named tensor lists.
void ExpectSameTensors(const std::vector<std::pair<std::string, Tensor>>& a,
                       const std::vector<std::pair<std::string, Tensor>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second.num_bytes(), b[i].second.num_bytes()) << a[i].first;
    EXPECT_EQ(std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(),
                          a[i].second.num_bytes()),
              0)
        << a[i].first;
  }
}

TEST_F(StagesTest, WithOutputsExposesIntermediateTensors) {
  const Model mlp = SmallMlp();
  auto probe = mlp.WithOutputs({mlp.outputs()[0].name});
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_EQ(probe->outputs().size(), mlp.outputs().size());  // already an output

  GraphBuilder g;
  g.Input("x", kFloat, {-1, 2}).Output("y", kFloat, {-1, 2});
  g.Node("Relu", {"x"}, {"r"});
  g.Node("Neg", {"r"}, {"y"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto exposed = model->WithOutputs({"r"});
  ASSERT_TRUE(exposed.ok()) << exposed.status();
  ASSERT_EQ(exposed->outputs().size(), 2u);
  EXPECT_EQ(exposed->outputs()[1].name, "r");
  EXPECT_EQ(exposed->outputs()[1].dtype, DataType::kFloat32);
  auto exec = Executor::Create(*exposed);
  ASSERT_TRUE(exec.ok()) << exec.status();
  auto out = (*exec)->Run({{"x", Tensor::FromValues<float>({1, 2}, {-1.0f, 2.0f})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("r").data<float>()[0], 0.0f);
  EXPECT_EQ(out->at("r").data<float>()[1], 2.0f);
  EXPECT_EQ(out->at("y").data<float>()[1], -2.0f);

  auto missing = model->WithOutputs({"nowhere"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("'nowhere'"));
  EXPECT_THAT(missing.status().message(), HasSubstr("test.onnx"));
}

TEST_F(StagesTest, SaveWritesTheModelAtomically) {
  const Model mlp = SmallMlp();
  ASSERT_TRUE(mlp.Save(Path("m.onnx")).ok());
  EXPECT_FALSE(fs::exists(Path("m.onnx.tmp")));
  auto back = Model::Load(Path("m.onnx"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Serialize(), mlp.Serialize());
  absl::Status bad = mlp.Save(Path("no/such/folder/m.onnx"));
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.message(), HasSubstr("no/such/folder/m.onnx"));
}

TEST_F(StagesTest, LoadDataSpecReadsNpyPairsWithALimit) {
  const std::string spec = WriteSpec(Blobs(30, 1));
  const Model mlp = SmallMlp();
  auto all = LoadDataSpec(spec, mlp);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 30);
  DataSpecOptions o;
  o.limit = 12;
  o.split = "test";  // the same files for both splits
  auto first = LoadDataSpec(spec, mlp, o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 12);
  EXPECT_EQ(first->labels().data<int64_t>()[11], all->labels().data<int64_t>()[11]);

  auto missing = LoadDataSpec(Path("x.npy") + "," + Path("nolabels.npy"), mlp);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("nolabels.npy"));
  auto no_idx = LoadDataSpec(Path("no_idx_here"), mlp);
  ASSERT_FALSE(no_idx.ok());
  EXPECT_THAT(no_idx.status().message(), HasSubstr("no_idx_here"));
  o.split = "dev";
  EXPECT_EQ(LoadDataSpec(spec, mlp, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StagesTest, PrepareWritesTheFolderAndSummarizes) {
  const Dataset data = Blobs(64, 1);
  auto summary = Prepare(SmallQdq(data), Path("qat"));
  ASSERT_TRUE(summary.ok()) << summary.status();
  for (const char* file : {kTrainingModelFile, kEvalModelFile, kCheckpointFile}) {
    EXPECT_TRUE(fs::exists(dir_ / "qat" / file)) << file;
  }
  EXPECT_TRUE(summary->warnings.empty());
  EXPECT_EQ(summary->loss, LossKind::kCrossEntropy);
  // Two layers: two weights and two biases, 8x16 + 16 + 16x3 + 3 values.
  ASSERT_EQ(summary->params.size(), 4u);
  ASSERT_EQ(summary->param_elements.size(), 4u);
  int64_t total = 0;
  for (int64_t n : summary->param_elements) total += n;
  EXPECT_EQ(total, 8 * 16 + 16 + 16 * 3 + 3);
  auto models = LoadTrainingModels(Path("qat"));
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(models->params, summary->params);
  // The QDQ pairs became FakeQuant.
  EXPECT_THAT(models->training.Serialize(), HasSubstr("FakeQuant"));
  EXPECT_THAT(models->training.Serialize(), ::testing::Not(HasSubstr("QuantizeLinear")));

  PrepareOptions learn_and_observe;
  learn_and_observe.graph.learn_quant_params = true;
  learn_and_observe.graph.observe_quant_params = true;
  EXPECT_FALSE(Prepare(SmallQdq(data), Path("bad"), learn_and_observe).ok());
}

TEST_F(StagesTest, EvaluateCountsArgmaxHitsAndCrossEntropy) {
  // logits = x: example i is right when its largest feature is its label.
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 3}).Output("logits", kFloat, {-1, 3});
  g.Node("Identity", {"x"}, {"logits"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  Tensor x = Tensor::FromValues<float>({4, 3}, {3, 0, 0, 0, 3, 0, 0, 0, 3, 3, 0, 0});
  Tensor y = Tensor::FromValues<int64_t>({4}, {0, 1, 2, 1});  // the last is wrong
  auto data = Dataset::Create(x, y);
  ASSERT_TRUE(data.ok());
  EvaluateOptions o;
  o.batch_size = 3;  // a partial last batch
  o.num_threads = 1;
  auto report = Evaluate(*model, *data, o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->examples, 4);
  EXPECT_EQ(report->correct, 3);
  EXPECT_EQ(report->accuracy, 0.75);
  const double lse = 3.0 + std::log(1.0 + 2.0 * std::exp(-3.0));
  EXPECT_NEAR(report->mean_loss, (3 * (lse - 3.0) + lse) / 4, 1e-12);
  EXPECT_THAT(report->ToJson(), HasSubstr("{\"accuracy\": 0.7500, \"images_per_s\": "));

  Tensor float_labels = Tensor::FromValues<float>({4}, {0, 1, 2, 1});
  auto bad = Evaluate(*model, *Dataset::Create(x, float_labels), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("int64"));
}

TEST_F(StagesTest, ExportFolderWritesInt8QdqAndNamesMissingFiles) {
  const Dataset data = Blobs(64, 1);
  const std::string folder = Prepared("qat", data);
  ASSERT_TRUE(TrainFolder(folder, data, Settings(10)).ok());
  auto exported = ExportFolder(folder);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_THAT(exported->Serialize(), HasSubstr("DequantizeLinear"));
  EXPECT_THAT(exported->Serialize(), ::testing::Not(HasSubstr("FakeQuant")));
  auto eval = Evaluate(*exported, data);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_GT(eval->accuracy, 0.9);  // the blobs are easy

  auto missing = ExportFolder(Path("nothing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(Path("nothing") + "/training.onnx"));
}

// Chaining: the second call (no resume) is a new run from the first's
// parameters.  Compared bit for bit: the parameters after two 1-epoch calls
// and those of two Trainers, the second restored from the first's
// parameters only (fresh optimizer, progress from 0, shuffle seeded by
// `seed`).
TEST_F(StagesTest, ChainedCallsStartNewRunsFromTheParameters) {
  const Dataset data = Blobs(64, 1);
  const std::string folder = Prepared("qat", data);
  ASSERT_TRUE(TrainFolder(folder, data, Settings(1)).ok());
  auto second = TrainFolder(folder, data, Settings(1));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->epochs, 1);
  EXPECT_EQ(second->steps, 4);  // 64 / 16, counted from 0 again
  const Checkpoint chained = Load(folder);

  auto models = LoadTrainingModels(Prepared("manual", data));
  ASSERT_TRUE(models.ok());
  TrainerOptions options;
  options.schedule.lr = 1e-2f;
  options.num_threads = 1;
  options.seed = 7;
  Checkpoint carry;
  carry.parameters = Load(Path("manual")).parameters;
  for (int call = 0; call < 2; ++call) {
    auto trainer = Trainer::Create(*models, options);
    ASSERT_TRUE(trainer.ok());
    carry.progress.seed = 7;
    ASSERT_TRUE((*trainer)->RestoreCheckpoint(carry).ok());
    ASSERT_TRUE((*trainer)->TrainEpochs(data, 1, 16).ok());
    carry = Checkpoint();
    carry.parameters = (*trainer)->MakeCheckpoint().parameters;
  }
  ExpectSameTensors(chained.parameters, carry.parameters);
  EXPECT_EQ(chained.metadata.at("run.epochs"), "1");
  EXPECT_EQ(chained.metadata.at("run.lr"), "0.01");
  EXPECT_EQ(chained.metadata.count("run.data"), 0u);  // not given
}

// A run stopped by a hook after 5 steps and resumed ends bit-identical to
// the uninterrupted run: parameters, optimizer state and progress.
TEST_F(StagesTest, ResumeAfterAStoppedRunIsBitIdentical) {
  const Dataset data = Blobs(80, 2);
  const std::string spec = WriteSpec(data);
  TrainFolderOptions settings = Settings(3);
  settings.data = spec;
  settings.schedule = LrScheduleKind::kCosine;
  settings.warmup = 2;
  settings.save_every = 1000;  // the stop itself saves

  const std::string straight = Prepared("straight", data);
  ASSERT_TRUE(TrainFolder(straight, settings).ok());

  const std::string stopped = Prepared("stopped", data);
  TrainFolderHooks hooks;
  int64_t seen = 0;
  hooks.on_step = [&](const TrainFolderStep& s) {
    EXPECT_EQ(s.epochs, 3);
    return ++seen == 7 ? absl::CancelledError("stop") : absl::OkStatus();
  };
  auto first = TrainFolder(stopped, settings, hooks);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kCancelled);
  const Checkpoint middle = Load(stopped);
  EXPECT_EQ(middle.progress.global_step, 7);
  EXPECT_EQ(middle.progress.epoch, 1);  // 5 steps per epoch
  EXPECT_EQ(middle.progress.step_in_epoch, 2);
  EXPECT_EQ(middle.metadata.at("run.data"), spec);

  TrainFolderOptions resume;
  resume.resume = true;
  resume.threads = 1;
  auto rest = TrainFolder(stopped, resume);  // data, epochs... from the checkpoint
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->settings.schedule, LrScheduleKind::kCosine);
  EXPECT_EQ(rest->steps, 15);
  const Checkpoint a = Load(straight), b = Load(stopped);
  ExpectSameTensors(a.parameters, b.parameters);
  std::vector<std::pair<std::string, Tensor>> sa(a.optimizer_state.begin(),
                                                 a.optimizer_state.end());
  std::vector<std::pair<std::string, Tensor>> sb(b.optimizer_state.begin(),
                                                 b.optimizer_state.end());
  ExpectSameTensors(sa, sb);
  EXPECT_EQ(a.optimizer_step, b.optimizer_step);
  EXPECT_EQ(a.progress.global_step, b.progress.global_step);
  EXPECT_EQ(a.metadata, b.metadata);
  EXPECT_EQ(ExportFolder(straight)->Serialize(), ExportFolder(stopped)->Serialize());
}

TEST_F(StagesTest, ResumeRefusesDifferingSettingsAndFreshFolders) {
  const Dataset data = Blobs(64, 1);
  const std::string folder = Prepared("qat", data);
  TrainFolderOptions resume;
  resume.resume = true;
  auto fresh = TrainFolder(folder, data, resume);
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(fresh.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fresh.status().message(), HasSubstr("holds no interrupted run"));
  EXPECT_THAT(fresh.status().message(), HasSubstr(folder + "/checkpoint"));
  EXPECT_FALSE(IsSettingError(fresh.status()));

  ASSERT_TRUE(TrainFolder(folder, data, Settings(2)).ok());
  const Checkpoint before = Load(folder);
  resume.batch = 32;
  auto differs = TrainFolder(folder, data, resume);
  ASSERT_FALSE(differs.ok());
  EXPECT_TRUE(IsSettingError(differs.status()));
  EXPECT_EQ(differs.status().message(), "--batch 32 differs from the run being resumed (16)");
  // Equal values in another spelling are the same setting.
  resume.batch.reset();
  resume.lr = 0.010;
  EXPECT_TRUE(ResolveTrainSettings(folder, resume).ok());
  // Nothing was written by the refused call.
  ExpectSameTensors(Load(folder).parameters, before.parameters);

  TrainFolderOptions observe;
  observe.observe_steps = 3;
  auto not_observing = TrainFolder(folder, data, observe);
  ASSERT_FALSE(not_observing.ok());
  EXPECT_TRUE(IsSettingError(not_observing.status()));
  EXPECT_THAT(not_observing.status().message(), HasSubstr("--quant-params observe"));
}

// Checkpoints written by the CLI before the stages API stored the flags'
// strings ("1e-2", "sgd"); they resume, and a value spelled differently is
// the same value.
TEST_F(StagesTest, CheckpointsOfTheOldCliResume) {
  const Dataset data = Blobs(64, 1);
  const std::string folder = Prepared("qat", data);
  TrainFolderOptions o = Settings(2);
  o.optimizer = OptimizerKind::kSgd;
  o.momentum = 0.9;
  TrainFolderHooks stop;
  stop.on_step = [](const TrainFolderStep&) { return absl::CancelledError("stop"); };
  ASSERT_EQ(TrainFolder(folder, data, o, stop).status().code(), absl::StatusCode::kCancelled);
  Checkpoint c = Load(folder);
  c.metadata = {{"run.epochs", "2"}, {"run.batch", "16"},   {"run.lr", "1e-2"},
                {"run.seed", "7"},   {"run.optimizer", "sgd"}, {"run.momentum", "0.9"}};
  ASSERT_TRUE(SaveCheckpoint(folder + "/" + kCheckpointFile, c).ok());
  TrainFolderOptions resume;
  resume.resume = true;
  resume.lr = 0.01;
  auto settings = ResolveTrainSettings(folder, resume);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->optimizer, OptimizerKind::kSgd);
  EXPECT_EQ(settings->momentum, 0.9);
  EXPECT_EQ(settings->batch, 16);
  auto done = TrainFolder(folder, data, resume);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->steps, 8);
  EXPECT_EQ(Load(folder).metadata.at("run.lr"), "1e-2");  // kept as stored
}

TEST_F(StagesTest, BadInputsGiveErrorsNamingTheFile) {
  const Dataset data = Blobs(64, 1);
  auto missing = TrainFolder(Path("absent"), data, Settings(1));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(Path("absent") + "/training.onnx"));

  const std::string folder = Prepared("qat", data);
  TrainFolderOptions o = Settings(1);
  o.data = Path("x.npy") + "," + Path("y.npy");  // never written
  auto no_data = TrainFolder(folder, o);
  ASSERT_FALSE(no_data.ok());
  EXPECT_THAT(no_data.status().message(), HasSubstr("x.npy"));

  o.data.reset();
  auto unnamed = TrainFolder(folder, o);
  ASSERT_FALSE(unnamed.ok());
  EXPECT_TRUE(IsSettingError(unnamed.status()));
  EXPECT_THAT(unnamed.status().message(), HasSubstr("--data"));

  TrainFolderOptions infinite = Settings(1);
  infinite.lr = std::numeric_limits<double>::infinity();
  auto bad_lr = TrainFolder(folder, data, infinite);
  ASSERT_FALSE(bad_lr.ok());
  EXPECT_TRUE(IsSettingError(bad_lr.status()));
  EXPECT_THAT(bad_lr.status().message(), HasSubstr("--lr"));

  // Examples of the wrong width for the model's input.
  Tensor x(DataType::kFloat32, {16, 5});
  Tensor y(DataType::kInt64, {16});
  auto wrong = TrainFolder(folder, *Dataset::Create(x, y), Settings(1));
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("input"));

  // A corrupt checkpoint is refused, naming it.
  ASSERT_TRUE(WriteNpy(folder + "/" + kCheckpointFile, x).ok());
  auto corrupt = TrainFolder(folder, data, Settings(1));
  ASSERT_FALSE(corrupt.ok());
  EXPECT_THAT(corrupt.status().message(), HasSubstr(folder + "/checkpoint"));
}

// Token ids are features too: an int64 dataset feeds an embedding model
// (Gather of a trainable table by the ids) through evaluate, prepare and
// train, and a float dataset fed to it is refused naming the input's type.
TEST_F(StagesTest, Int64TokenIdsTrainAnEmbeddingModel) {
  GraphBuilder g;
  g.Input("ids", onnx::TensorProto::INT64, {-1, 4}).Output("logits", kFloat, {-1, 3});
  g.Initializer("table", Tensor::FromValues<float>(
                             {5, 3}, {0.1f, -0.2f, 0.3f, 0.0f, 0.5f, -0.1f, 0.2f, 0.2f,
                                      -0.3f, 0.4f, 0.0f, 0.1f, -0.5f, 0.3f, 0.2f}));
  g.Node("Gather", {"table", "ids"}, {"embedded"});
  onnx::NodeProto& mean = g.Node("ReduceMean", {"embedded"}, {"logits"});
  *mean.add_attribute() = training::AttrInts("axes", {1});
  *mean.add_attribute() = training::AttrInt("keepdims", 0);
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<int64_t> ids, labels;
  for (int64_t i = 0; i < 16; ++i) {
    for (int64_t j = 0; j < 4; ++j) ids.push_back((i + j) % 5);
    labels.push_back(i % 3);
  }
  auto data = Dataset::Create(Tensor::FromValues<int64_t>({16, 4}, ids),
                              Tensor::FromValues<int64_t>({16}, labels));
  ASSERT_TRUE(data.ok()) << data.status();
  EvaluateOptions eval;
  eval.num_threads = 1;
  auto report = Evaluate(*model, *data, eval);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->examples, 16);
  // Calibration observes the float values (the table's rows, the embedded
  // vectors); the int64 ids are not a quantizable tensor.
  auto table = Calibrate(*model, *data, {});
  ASSERT_TRUE(table.ok()) << table.status();

  auto summary = Prepare(*model, Path("ids"), {});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->params, std::vector<std::string>{"table"});
  auto trained = TrainFolder(Path("ids"), *data, Settings(2));
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->steps, 2);  // 16 examples in batches of 16, two epochs

  Tensor floats(DataType::kFloat32, {16, 4});
  auto wrong = Evaluate(*model, *Dataset::Create(floats, Tensor::FromValues<int64_t>({16}, labels)),
                        eval);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("ids"));
}

// Any batch size works: steps per epoch are computed without overflow.
TEST_F(StagesTest, HugeBatchIsOneStepPerEpoch) {
  EXPECT_EQ(*StepsPerEpoch(100, std::numeric_limits<int64_t>::max()), 1);
  EXPECT_EQ(*StepsPerEpoch(std::numeric_limits<int64_t>::max(), 2),
            std::numeric_limits<int64_t>::max() / 2 + 1);
  EXPECT_EQ(*StepsPerEpoch(0, 5), 0);
  EXPECT_FALSE(StepsPerEpoch(10, 0).ok());
  const Dataset data = Blobs(64, 1);
  const std::string folder = Prepared("qat", data);
  TrainFolderOptions o = Settings(2);
  o.batch = std::numeric_limits<int64_t>::max();
  auto r = TrainFolder(folder, data, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 2);
  o.epochs = std::numeric_limits<int64_t>::max();
  o.batch = 1;
  auto overflow = TrainFolder(folder, data, o);
  ASSERT_FALSE(overflow.ok());
  EXPECT_TRUE(IsSettingError(overflow.status()));
  EXPECT_THAT(overflow.status().message(), HasSubstr("--epochs"));
}

// The recipe end to end on a small model and .npy data: every row, curve
// and artifact, bit-identical accuracies from run to run.
TEST_F(StagesTest, PipelineRecipeRunsEveryStageDeterministically) {
  const Dataset data = Blobs(96, 4);
  PipelineOptions o;
  ASSERT_TRUE(SmallMlp().Save(Path("mlp.onnx")).ok());
  o.model_path = Path("mlp.onnx");
  o.data = WriteSpec(data);
  o.epochs = 1;
  o.qat_epochs = 1;
  o.calibration_samples = 32;
  o.batch = 16;
  o.threads = 1;
  o.latency_seconds = 0;
  std::vector<std::string> graphs;
  int64_t epochs_seen = 0;
  PipelineHooks hooks;
  hooks.on_epoch = [&](const PipelineEpoch&) { ++epochs_seen; };
  hooks.on_graph = [&](const PipelineGraph& g) -> absl::StatusOr<std::vector<std::string>> {
    graphs.push_back(g.name);
    return std::vector<std::string>{g.name + ".dot"};
  };
  o.out = Path("run1");
  auto one = RunPipeline(o, hooks);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->rows.size(), 4u);
  ASSERT_EQ(one->models.size(), 4u);
  EXPECT_EQ(one->rows[0].name, "fp32");
  EXPECT_EQ(one->rows[3].name, "qat w4a8");
  for (const PipelineRow& row : one->rows) {
    EXPECT_TRUE(fs::exists(dir_ / "run1" / row.file)) << row.file;
    EXPECT_EQ(row.bytes, fs::file_size(dir_ / "run1" / row.file));
    EXPECT_GT(row.latency_ms, 0.0);
  }
  // fp32: 1 epoch + 1 at 1e-4; each QAT stage: its start and 1 epoch.
  ASSERT_EQ(one->curves.size(), 3u);
  EXPECT_EQ(one->curves[0].points.size(), 2u);
  EXPECT_EQ(one->curves[1].points.size(), 2u);
  EXPECT_EQ(one->curves[1].points[0].train_loss, -1.0);
  EXPECT_EQ(one->curves[1].points[0].epoch, 2.0);
  EXPECT_EQ(one->rows[2].start_accuracy, one->curves[1].points[0].test_accuracy);
  EXPECT_EQ(epochs_seen, 4);
  EXPECT_EQ(graphs, (std::vector<std::string>{"graph_fp32", "graph_qdq",
                                              "graph_fakequant_training",
                                              "graph_qat_int8_exported",
                                              "graph_qat_w4a8_exported"}));
  EXPECT_EQ(one->artifacts.front(), "untrained.onnx");
  EXPECT_EQ(one->activation.values.size(), 32u * 16u);  // 32 samples, 16 hidden units
  EXPECT_EQ(one->example_shape, (std::vector<int64_t>{8}));

  o.out = Path("run2");
  auto two = RunPipeline(o);
  ASSERT_TRUE(two.ok()) << two.status();
  for (size_t i = 0; i < one->rows.size(); ++i) {
    EXPECT_EQ(one->rows[i].accuracy, two->rows[i].accuracy) << one->rows[i].name;
    EXPECT_EQ(one->models[i].Serialize(), two->models[i].Serialize()) << one->rows[i].name;
  }
}

}  // namespace
}  // namespace qat
