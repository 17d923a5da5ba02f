// Data-parallel training (qat/collective.h) with ranks as threads: N ranks
// on shards of a global batch hold the same parameters, bit for bit, and
// those of one process on the whole batch up to float rounding; observed
// quantization parameters and LSQ scales follow; bad settings and a failing
// transport are errors.  The same over MPI: tests/mpi/.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "graph_builder.h"
#include "qat/calibrate.h"
#include "qat/collective.h"
#include "qat/histogram.h"
#include "qat/observer.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/quantize.h"
#include "qat/trainer.h"
#include "synthetic_data.h"
#include "thread_collective.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

Model SmallMlp() { return BlobsMlp(3); }

enum class Mode { kFloat, kObserve, kLearn };

TrainingModels Models(Mode mode) {
  const Model mlp = SmallMlp();
  if (mode == Mode::kFloat) return *BuildTrainingModels(mlp, {});
  auto table = Calibrate(mlp, Blobs(96, 3), {});
  EXPECT_TRUE(table.ok()) << table.status();
  auto fused = FuseQdqToFakeQuant(*QuantizeModel(mlp, *table, {}));
  EXPECT_TRUE(fused.ok()) << fused.status();
  TrainingGraphOptions options;
  options.observe_quant_params = mode == Mode::kObserve;
  options.learn_quant_params = mode == Mode::kLearn;
  auto models = BuildTrainingModels(*fused, options);
  EXPECT_TRUE(models.ok()) << models.status();
  return *std::move(models);
}

TrainerOptions Options(OptimizerKind kind = OptimizerKind::kSgd) {
  TrainerOptions o;
  o.optimizer.kind = kind;
  o.optimizer.momentum = 0.9f;
  o.schedule.lr = kind == OptimizerKind::kSgd ? 5e-2f : 1e-2f;
  o.num_threads = 1;
  o.seed = 3;
  return o;
}

// Parameters and observed quantization parameters, by name.
std::map<std::string, Tensor> State(const Trainer& t) {
  const Checkpoint c = t.MakeCheckpoint();
  std::map<std::string, Tensor> all(c.parameters.begin(), c.parameters.end());
  for (const auto& [name, value] : c.quant_params) all[name] = value;
  return all;
}

// The largest |a - b| over every value, and whether the names and shapes match.
float MaxDifference(const std::map<std::string, Tensor>& a,
                    const std::map<std::string, Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0.0f;
  for (const auto& [name, x] : a) {
    const Tensor& y = b.at(name);
    EXPECT_EQ(x.shape(), y.shape()) << name;
    for (size_t i = 0; i < x.values<float>().size(); ++i) {
      worst = std::max(worst, std::fabs(x.values<float>()[i] - y.values<float>()[i]));
    }
  }
  return worst;
}

bool BitIdentical(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  for (const auto& [name, x] : a) {
    const Tensor& y = b.at(name);
    if (x.num_bytes() != y.num_bytes() ||
        std::memcmp(x.raw_data(), y.raw_data(), x.num_bytes()) != 0) {
      return false;
    }
  }
  return a.size() == b.size();
}

struct RankRun {
  std::map<std::string, Tensor> state;
  std::vector<float> losses;
};

RankRun TrainOn(const TrainingModels& models, TrainerOptions options, const Dataset& data,
            int64_t epochs, int64_t batch, std::shared_ptr<Collective> collective,
            int64_t stop_after = -1) {
  options.collective = std::move(collective);
  auto trainer = Trainer::Create(models, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  RankRun run;
  const absl::Status trained = (*trainer)->TrainEpochs(data, epochs, batch, [&](const StepReport& r) {
    run.losses.push_back(r.loss);
    return r.global_step == stop_after ? absl::CancelledError("stop") : absl::OkStatus();
  });
  EXPECT_TRUE(trained.ok() || stop_after > 0) << trained;
  run.state = State(**trainer);
  return run;
}

// Each rank's run, on `ranks` threads.
std::vector<RankRun> TrainOnRanks(int ranks, const TrainingModels& models, const TrainerOptions& o,
                              const Dataset& data, int64_t epochs, int64_t batch,
                              int64_t stop_after = -1) {
  std::vector<RankRun> runs(ranks);
  RunRanks(ranks, [&](int rank, std::shared_ptr<Collective> c) {
    runs[rank] = TrainOn(models, o, data, epochs, batch, std::move(c), stop_after);
  });
  return runs;
}

TEST(ShardTest, ContiguousInRankOrderAndEvenWhenItDivides) {
  EXPECT_EQ(ShardOf(64, 0, 2).begin, 0);
  EXPECT_EQ(ShardOf(64, 0, 2).end, 32);
  EXPECT_EQ(ShardOf(64, 1, 2).begin, 32);
  EXPECT_EQ(ShardOf(64, 1, 2).end, 64);
  // 7 over 3: 2, 2, 3; 1 over 2: rank 0 empty, rank 1 one example.
  EXPECT_EQ(ShardOf(7, 0, 3).end - ShardOf(7, 0, 3).begin, 2);
  EXPECT_EQ(ShardOf(7, 1, 3).end - ShardOf(7, 1, 3).begin, 2);
  EXPECT_EQ(ShardOf(7, 2, 3).begin, 4);
  EXPECT_EQ(ShardOf(7, 2, 3).end, 7);
  EXPECT_EQ(ShardOf(1, 0, 2).end - ShardOf(1, 0, 2).begin, 0);
  EXPECT_EQ(ShardOf(1, 1, 2).end, 1);
  EXPECT_EQ(ShardOf(int64_t{1} << 62, 3, 4).end, int64_t{1} << 62);  // no overflow
}

// 145 examples in batches of 16 (or 18 for 3 ranks): the last batch holds
// one example, so one rank trains on nothing in that step.
class DistributedTest : public ::testing::TestWithParam<std::tuple<int, Mode>> {};

TEST_P(DistributedTest, RanksAgreeBitForBitAndMatchOneProcess) {
  const auto [ranks, mode] = GetParam();
  const TrainingModels models = Models(mode);
  const Dataset data = Blobs(145, 1);
  const int64_t batch = ranks == 3 ? 18 : 16;
  // LSQ rounds x / scale with a learned scale and zero point: a rounding
  // difference in the scale moves elements across rounding boundaries, and
  // the runs drift apart step by step (4e-5 after 8 steps, 2e-3 after 27 on
  // this model), as one process does between thread counts.  So LSQ is
  // compared after 2 steps, the others after the whole 3 epochs (27 steps).
  const int64_t stop_after = mode == Mode::kLearn ? 2 : -1;
  const RankRun one = TrainOn(models, Options(), data, 3, batch, nullptr, stop_after);
  const std::vector<RankRun> many =
      TrainOnRanks(ranks, models, Options(), data, 3, batch, stop_after);
  for (int r = 1; r < ranks; ++r) {
    EXPECT_TRUE(BitIdentical(many[0].state, many[r].state)) << "rank " << r;
    EXPECT_EQ(many[0].losses, many[r].losses) << "rank " << r;
  }
  // The gradients sum in another order than one process's GEMMs, so the
  // parameters agree up to float rounding, which 27 SGD steps keep small.
  EXPECT_LT(MaxDifference(one.state, many[0].state), 2e-5f);
  ASSERT_EQ(one.losses.size(), many[0].losses.size());
  for (size_t i = 0; i < one.losses.size(); ++i) {
    EXPECT_NEAR(one.losses[i], many[0].losses[i], 1e-4f * (1 + one.losses[i])) << "step " << i;
  }
  // And training did something.
  if (stop_after < 0) {
    EXPECT_LT(one.losses.back(), one.losses.front() * 0.7f);
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, DistributedTest,
                         ::testing::Combine(::testing::Values(2, 3),
                                            ::testing::Values(Mode::kFloat, Mode::kObserve,
                                                              Mode::kLearn)));

// One process with batch_shards N computes each batch as N ranks do, shard
// by shard, summed in rank order: the same bits, where a whole-batch step
// differs in the last bits (above).  For every mode, LSQ included (its
// drift came only from that rounding), over all 27 steps.
TEST_P(DistributedTest, BatchShardsInOneProcessEqualTheRanksBitForBit) {
  const auto [ranks, mode] = GetParam();
  const TrainingModels models = Models(mode);
  const Dataset data = Blobs(145, 1);
  const int64_t batch = ranks == 3 ? 18 : 16;
  TrainerOptions sharded = Options();
  sharded.batch_shards = ranks;
  const RankRun one = TrainOn(models, sharded, data, 3, batch, nullptr);
  const std::vector<RankRun> many = TrainOnRanks(ranks, models, Options(), data, 3, batch);
  EXPECT_TRUE(BitIdentical(one.state, many[0].state)) << MaxDifference(one.state, many[0].state);
  EXPECT_EQ(one.losses, many[0].losses);
  // The ranks' option may say the same.
  TrainerOptions same = Options();
  same.batch_shards = ranks;
  const std::vector<RankRun> again = TrainOnRanks(ranks, models, same, data, 3, batch);
  EXPECT_TRUE(BitIdentical(again[0].state, many[0].state));
}

// The same on LeNet-5 (convolutions, MaxPool), where whole-batch steps
// part from the ranks' after about 50 steps (docs/training.md).
TEST(DistributedTest, BatchShardsEqualTheRanksOnLeNet5) {
  const TrainingModels models = *BuildTrainingModels(*MakeLeNet5({3, 13}), {});
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int64_t n = 64;
  Tensor x(DataType::kFloat32, {n, 1, 28, 28});
  Tensor y(DataType::kInt64, {n});
  for (float& v : x.values<float>()) v = noise(rng);
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = i % 10;
  const Dataset data = *Dataset::Create(std::move(x), std::move(y));
  TrainerOptions o = Options();
  o.schedule.lr = 1e-2f;
  TrainerOptions sharded = o;
  sharded.batch_shards = 2;
  const RankRun whole = TrainOn(models, o, data, 3, 16, nullptr);
  const RankRun one = TrainOn(models, sharded, data, 3, 16, nullptr);
  const std::vector<RankRun> two = TrainOnRanks(2, models, o, data, 3, 16);
  EXPECT_TRUE(BitIdentical(one.state, two[0].state)) << MaxDifference(one.state, two[0].state);
  EXPECT_EQ(one.losses, two[0].losses);
  // A whole-batch step is another association of the same sums.
  EXPECT_FALSE(BitIdentical(whole.state, two[0].state));
  EXPECT_LT(MaxDifference(whole.state, two[0].state), 1e-4f);
}

// Each rank evaluates its share of the batches; the gathered sums give one
// process's accuracy exactly (a rank that evaluated everything would count
// each example N times).
TEST(DistributedTest, EvaluationIsShardedAndReduced) {
  const TrainingModels models = Models(Mode::kFloat);
  const Dataset data = Blobs(145, 6);
  auto one = Trainer::Create(models, Options());
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)->TrainEpochs(data, 1, 16).ok());
  const Checkpoint trained = (*one)->MakeCheckpoint();
  auto expected = (*one)->Evaluate(data, 16);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_GT(expected->accuracy, 0.5);
  for (int ranks : {2, 3, 20}) {  // 20 ranks: more than the 10 batches
    RunRanks(ranks, [&](int rank, std::shared_ptr<Collective> c) {
      TrainerOptions o = Options();
      o.collective = c;
      auto t = Trainer::Create(models, o);
      ASSERT_TRUE(t.ok());
      ASSERT_TRUE((*t)->RestoreCheckpoint(trained).ok());
      auto m = (*t)->Evaluate(data, 16);
      ASSERT_TRUE(m.ok()) << m.status();
      EXPECT_EQ(m->accuracy, expected->accuracy) << ranks << " ranks, rank " << rank;
      EXPECT_EQ(m->examples, expected->examples);
      EXPECT_NEAR(m->loss, expected->loss, 1e-12 * expected->loss);
    });
  }
}

// Conv -> BatchNormalization in training mode -> Flatten -> Gemm.
TrainingModels TinyBatchNormModels() {
  GraphBuilder g;
  g.Input("input", kFloat, {-1, 1, 4, 4}).Output("logits", kFloat, {-1, 3});
  Tensor w(DataType::kFloat32, {2, 1, 3, 3}), fc(DataType::kFloat32, {3, 8});
  for (int64_t i = 0; i < w.num_elements(); ++i) w.values<float>()[i] = 0.1f * (i % 7) - 0.3f;
  for (int64_t i = 0; i < fc.num_elements(); ++i) fc.values<float>()[i] = 0.05f * (i % 5) - 0.1f;
  g.Initializer("w", w).Initializer("fc", fc);
  g.Initializer("scale", Tensor::FromValues<float>({2}, {1.0f, 1.0f}));
  g.Initializer("bias", Tensor::FromValues<float>({2}, {0.0f, 0.0f}));
  g.Initializer("mean", Tensor::FromValues<float>({2}, {0.0f, 0.0f}));
  g.Initializer("var", Tensor::FromValues<float>({2}, {1.0f, 1.0f}));
  g.Initializer("flat", Tensor::FromValues<int64_t>({2}, {-1, 8}));
  g.Node("Conv", {"input", "w"}, {"conv"});
  SetInt(g.Node("BatchNormalization", {"conv", "scale", "bias", "mean", "var"},
                {"bn", "running_mean", "running_var"}),
         "training_mode", 1);
  g.Node("Reshape", {"bn", "flat"}, {"flat_bn"});
  SetInt(g.Node("Gemm", {"flat_bn", "fc"}, {"logits"}), "transB", 1);
  auto model = g.Build();
  EXPECT_TRUE(model.ok()) << model.status();
  auto models = BuildTrainingModels(*model, {});
  EXPECT_TRUE(models.ok()) << models.status();
  return *std::move(models);
}

// Without synchronized statistics a shard would normalize by its own, so
// batch shards (which promise the ranks' bits in one process) refuse it;
// ranks train it with their own batch statistics, as PyTorch's DDP does
// without SyncBatchNorm.
TEST(DistributedTest, TrainingModeBatchNormShardsNeedSynchronizedStatistics) {
  const TrainingModels models = TinyBatchNormModels();
  TrainerOptions o = Options();
  EXPECT_TRUE(Trainer::Create(models, o).ok());
  o.batch_shards = 2;
  const absl::Status sharded = Trainer::Create(models, o).status();
  EXPECT_EQ(sharded.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(sharded.message()), HasSubstr("synchronized BatchNorm"));
  o.sync_batch_norm = true;
  EXPECT_TRUE(Trainer::Create(models, o).ok());
  RunRanks(2, [&](int, std::shared_ptr<Collective> c) {
    TrainerOptions on_ranks = Options();
    on_ranks.collective = c;
    EXPECT_TRUE(Trainer::Create(models, on_ranks).ok());
  });
}

// A BatchNorm CNN's data: n examples of [channels, image, image] noise.
Dataset ImageNoise(int64_t n, int64_t channels, int64_t image, int64_t classes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> noise(0.5f, 1.0f);
  Tensor x(DataType::kFloat32, {n, channels, image, image});
  Tensor y(DataType::kInt64, {n});
  for (float& v : x.values<float>()) v = noise(rng);
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = (i * 7) % classes;
  return *Dataset::Create(std::move(x), std::move(y));
}

// Parameters and running statistics, by name.
std::map<std::string, Tensor> StateWithStatistics(const Trainer& t) {
  const Checkpoint c = t.MakeCheckpoint();
  std::map<std::string, Tensor> all(c.parameters.begin(), c.parameters.end());
  for (const auto& [name, value] : c.running_stats) all[name] = value;
  return all;
}

RankRun TrainWithStatistics(const TrainingModels& models, TrainerOptions options,
                            const Dataset& data, int64_t epochs, int64_t batch,
                            std::shared_ptr<Collective> collective) {
  options.collective = std::move(collective);
  auto trainer = Trainer::Create(models, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  RankRun run;
  EXPECT_TRUE((*trainer)
                  ->TrainEpochs(data, epochs, batch,
                                [&](const StepReport& r) {
                                  run.losses.push_back(r.loss);
                                  return absl::OkStatus();
                                })
                  .ok());
  run.state = StateWithStatistics(**trainer);
  return run;
}

// The zoo's ResNet-8 (training-mode BatchNorm everywhere), small: with
// synchronized BatchNorm 2 ranks and one process with batch_shards 2 agree
// bit for bit, parameters and running statistics, and both stay close to
// one process on whole batches; without it the ranks are another model.
TEST(DistributedTest, SyncBatchNormShardsEqualTheRanksAndTrackTheWholeBatch) {
  ResNet8Spec spec;
  spec.image = 8;
  spec.width = 4;
  spec.classes = 3;
  spec.seed = 2;
  const TrainingModels models = *BuildTrainingModels(*MakeResNet8(spec), {});
  const Dataset data = ImageNoise(48, 1, 8, 3);
  TrainerOptions o = Options();
  o.schedule.lr = 2e-2f;
  TrainerOptions sync = o;
  sync.sync_batch_norm = true;
  TrainerOptions sharded = sync;
  sharded.batch_shards = 2;
  const RankRun whole = TrainWithStatistics(models, o, data, 2, 16, nullptr);
  const RankRun one = TrainWithStatistics(models, sharded, data, 2, 16, nullptr);
  std::vector<RankRun> two(2), unsynced(2);
  RunRanks(2, [&](int rank, std::shared_ptr<Collective> c) {
    two[rank] = TrainWithStatistics(models, sync, data, 2, 16, c);
  });
  RunRanks(2, [&](int rank, std::shared_ptr<Collective> c) {
    unsynced[rank] = TrainWithStatistics(models, o, data, 2, 16, c);
  });
  ASSERT_EQ(whole.losses.size(), 6u);
  EXPECT_TRUE(BitIdentical(two[0].state, two[1].state));
  EXPECT_TRUE(BitIdentical(one.state, two[0].state)) << MaxDifference(one.state, two[0].state);
  EXPECT_EQ(one.losses, two[0].losses);
  // Step 1 starts from the same parameters: the loss is the whole batch's
  // up to rounding, and so, after 6 steps, is every parameter and running
  // statistic; the ranks' own statistics give another model.
  EXPECT_NEAR(two[0].losses[0], whole.losses[0], 1e-6f * std::fabs(whole.losses[0]));
  const float synced = MaxDifference(whole.state, two[0].state);
  const float own = MaxDifference(whole.state, unsynced[0].state);
  EXPECT_LT(synced, 1e-5f);
  EXPECT_GT(own, 100 * synced);
  std::printf("after 6 steps, largest difference from whole batches: synchronized %g, "
              "each rank's own statistics %g\n", synced, own);
}

// Rows [begin, end) of a dataset's examples as a batch.
std::map<std::string, Tensor> Rows(const Dataset& data, int64_t begin, int64_t end,
                                   const TrainingModels& models) {
  std::vector<int64_t> order;
  for (int64_t i = begin; i < end; ++i) order.push_back(i);
  std::vector<ValueInfo> inputs;
  for (const ValueInfo& v : models.eval.inputs()) inputs.push_back(v);
  auto binding = data.Bind({inputs[0]}, true);
  EXPECT_TRUE(binding.ok()) << binding.status();
  std::map<std::string, Tensor> batch;
  EXPECT_TRUE(data.Gather(order, *binding, &batch).ok());
  return batch;
}

// At step 1 the gradient (plain SGD with lr 1: the parameters move by
// it) under synchronized BatchNorm is the whole batch's within float
// rounding, for a mean loss and unequal shards: 2 ranks taking 9 and 7 of
// 16 examples, 3 batch shards taking 6, 5 and 5.
TEST(DistributedTest, SyncBatchNormGradientIsTheWholeBatchs) {
  const TrainingModels models = TinyBatchNormModels();
  const Dataset data = ImageNoise(16, 1, 4, 3);
  TrainerOptions o = Options();
  o.optimizer.momentum = 0.0f;
  o.schedule.lr = 1.0f;
  o.sync_batch_norm = true;
  struct Stepped {
    std::map<std::string, Tensor> state;
    float loss = 0.0f;
  };
  auto step = [&](const TrainerOptions& options, int64_t begin, int64_t end) {
    auto t = Trainer::Create(models, options);
    EXPECT_TRUE(t.ok()) << t.status();
    Stepped r;
    auto loss = (*t)->TrainStep(Rows(data, begin, end, models));
    EXPECT_TRUE(loss.ok()) << loss.status();
    r.loss = loss.ok() ? *loss : 0.0f;
    r.state = StateWithStatistics(**t);
    return r;
  };
  auto start = Trainer::Create(models, o);
  ASSERT_TRUE(start.ok());
  const std::map<std::string, Tensor> before = StateWithStatistics(**start);
  const Stepped whole = step(o, 0, 16);
  std::vector<Stepped> two(2);
  RunRanks(2, [&](int rank, std::shared_ptr<Collective> c) {
    TrainerOptions on_rank = o;
    on_rank.collective = c;
    two[rank] = rank == 0 ? step(on_rank, 0, 9) : step(on_rank, 9, 16);
  });
  TrainerOptions sharded = o;
  sharded.batch_shards = 3;
  const Stepped three = step(sharded, 0, 16);
  EXPECT_TRUE(BitIdentical(two[0].state, two[1].state));
  for (const Stepped* run : {static_cast<const Stepped*>(&two[0]), &three}) {
    float worst = 0.0f, largest = 0.0f;
    for (const auto& [name, p] : before) {
      for (size_t i = 0; i < p.values<float>().size(); ++i) {
        const float g_whole = p.values<float>()[i] - whole.state.at(name).values<float>()[i];
        const float g = p.values<float>()[i] - run->state.at(name).values<float>()[i];
        worst = std::max(worst, std::fabs(g - g_whole));
        largest = std::max(largest, std::fabs(g_whole));
      }
    }
    EXPECT_GT(largest, 1e-3f);
    EXPECT_LT(worst, 1e-6f * std::max(1.0f, largest)) << "largest step " << largest;
    std::printf("step-1 gradient against the whole batch's (%s): largest %g, difference %g\n",
                run == &three ? "3 shards" : "2 ranks", largest, worst);
    // The rank's loss is its own shard's; the sum the trainer reports is in
    // TrainEpochs.  The shards' weighted sum is the whole batch's.
    if (run == &three) EXPECT_NEAR(run->loss, whole.loss, 1e-6f * std::fabs(whole.loss));
  }
}

// Every rank exchanges statistics mid-graph, so a last batch that leaves a
// rank (or shard) without examples is refused before the first step.
TEST(DistributedTest, SyncBatchNormNeedsExamplesOnEveryShard) {
  const TrainingModels models = TinyBatchNormModels();
  TrainerOptions o = Options();
  o.sync_batch_norm = true;
  o.batch_shards = 4;
  auto trainer = Trainer::Create(models, o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const absl::Status short_last = (*trainer)->TrainEpochs(ImageNoise(18, 1, 4, 3), 1, 16);
  EXPECT_EQ(short_last.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_last.message()), HasSubstr("the last batch of an epoch of 18"));
}

TEST(DistributedTest, BadBatchShardsAreErrors) {
  const TrainingModels models = Models(Mode::kFloat);
  TrainerOptions o = Options();
  o.batch_shards = 0;
  EXPECT_EQ(Trainer::Create(models, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.batch_shards = 3;
  auto trainer = Trainer::Create(models, o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const absl::Status uneven = (*trainer)->TrainEpochs(Blobs(40, 1), 1, 16);
  EXPECT_EQ(uneven.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(uneven.message()), HasSubstr("does not split evenly into 3 shards"));
  RunRanks(2, [&](int, std::shared_ptr<Collective> c) {
    TrainerOptions on_ranks = Options();
    on_ranks.collective = c;
    on_ranks.batch_shards = 3;
    const absl::Status s = Trainer::Create(models, on_ranks).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("each rank computes one shard"));
  });
}

TEST(DistributedTest, AdamWMatchesOneProcessToo) {
  const TrainingModels models = Models(Mode::kFloat);
  const Dataset data = Blobs(128, 2);
  const RankRun one = TrainOn(models, Options(OptimizerKind::kAdamW), data, 2, 32, nullptr);
  const std::vector<RankRun> two =
      TrainOnRanks(2, models, Options(OptimizerKind::kAdamW), data, 2, 32);
  EXPECT_TRUE(BitIdentical(two[0].state, two[1].state));
  EXPECT_LT(MaxDifference(one.state, two[0].state), 1e-4f);
}

TEST(DistributedTest, ABatchThatDoesNotSplitEvenlyIsAnError) {
  const TrainingModels models = Models(Mode::kFloat);
  RunRanks(2, [&](int, std::shared_ptr<Collective> c) {
    TrainerOptions o = Options();
    o.collective = c;
    auto trainer = Trainer::Create(models, o);
    ASSERT_TRUE(trainer.ok());
    const absl::Status s = (*trainer)->TrainEpochs(Blobs(40, 1), 1, 15);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("does not split evenly over 2 ranks"));
  });
}

// A transport that fails (a rank died): the step returns its error and the
// parameters stay as they were.
class FailingCollective final : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  absl::Status Allreduce(absl::Span<float>, ReduceOp) override {
    return absl::UnavailableError("rank 1 died");
  }
};

TEST(DistributedTest, AFailingReductionStopsTrainingAndChangesNothing) {
  const TrainingModels models = Models(Mode::kFloat);
  TrainerOptions o = Options();
  o.collective = std::make_shared<FailingCollective>();
  auto trainer = Trainer::Create(models, o);
  ASSERT_TRUE(trainer.ok());
  const auto before = State(**trainer);
  const absl::Status s = (*trainer)->TrainEpochs(Blobs(32, 1), 1, 16);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rank 1 died"));
  EXPECT_TRUE(BitIdentical(before, State(**trainer)));
  EXPECT_EQ((*trainer)->progress().global_step, 0);
}

// Calibration: each rank observes its shard; the merged observers give one
// process's table, bit for bit (histograms are functions of the multiset of
// values, ranges of their extremes).
class DistributedCalibrationTest
    : public ::testing::TestWithParam<std::tuple<int, CalibrationMethod>> {};

TEST_P(DistributedCalibrationTest, RanksGiveTheSingleProcessTable) {
  const auto [ranks, method] = GetParam();
  const Model mlp = SmallMlp();
  const Dataset data = Blobs(145, 4);
  CalibrateOptions options;
  options.method = method;
  options.batch_size = 16;
  options.num_threads = 1;
  auto one = Calibrate(mlp, data, options);
  ASSERT_TRUE(one.ok()) << one.status();
  const std::string expected = *one->ToJson();
  RunRanks(ranks, [&](int rank, std::shared_ptr<Collective> c) {
    CalibrateOptions o = options;
    o.collective = c;
    auto table = Calibrate(mlp, data, o);
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_EQ(*table->ToJson(), expected) << "rank " << rank;
  });
}

INSTANTIATE_TEST_SUITE_P(
    Ranks, DistributedCalibrationTest,
    ::testing::Combine(::testing::Values(2, 3),
                       ::testing::Values(CalibrationMethod::kMinMax,
                                         CalibrationMethod::kPercentile,
                                         CalibrationMethod::kEntropy, CalibrationMethod::kMse)));

TEST(DistributedCalibrationTest, MovingAverageIsUnimplemented) {
  const Model mlp = SmallMlp();
  RunRanks(2, [&](int, std::shared_ptr<Collective> c) {
    CalibrateOptions o;
    o.method = CalibrationMethod::kMovingAverage;
    o.num_threads = 1;
    o.collective = c;
    auto table = Calibrate(mlp, Blobs(64, 4), o);
    EXPECT_EQ(table.status().code(), absl::StatusCode::kUnimplemented);
  });
}

// Histogram::Merge gives the histogram of both multisets, and an observer's
// state survives SaveState / FromState.
TEST(ObserverMergeTest, MergedHistogramEqualsTheOneBuiltFromAllValues) {
  const std::vector<float> small = {0.1f, -0.2f, 0.05f}, large = {3.0f, -7.5f, 0.0f, 1.0f};
  auto a = *Histogram::Create(64), b = *Histogram::Create(64), both = *Histogram::Create(64);
  ASSERT_TRUE(a.Add(small).ok());
  ASSERT_TRUE(b.Add(large).ok());
  ASSERT_TRUE(both.Add(large).ok());
  ASSERT_TRUE(both.Add(small).ok());
  ASSERT_TRUE(a.Merge(b).ok());  // the narrower one grows
  EXPECT_EQ(a.limit(), both.limit());
  EXPECT_EQ(std::vector<uint64_t>(a.counts().begin(), a.counts().end()),
            std::vector<uint64_t>(both.counts().begin(), both.counts().end()));
  EXPECT_EQ(a.total(), 7u);
  EXPECT_FALSE(a.Merge(*Histogram::Create(32)).ok());
  EXPECT_FALSE(Histogram::FromCounts(3.0, std::vector<uint64_t>(64, 0)).ok());

  ObserverOptions options;
  options.method = CalibrationMethod::kPercentile;
  auto observer = *MakeObserver(options);
  ASSERT_TRUE(observer->Observe(large).ok());
  auto words = observer->SaveState();
  ASSERT_TRUE(words.ok());
  auto back = Observer::FromState(options, *words);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->Ranges()->at(0).rmax, observer->Ranges()->at(0).rmax);
  words->pop_back();
  EXPECT_FALSE(Observer::FromState(options, *words).ok());
}

TEST(CollectiveTest, AllgatherWordsIsExactForEveryBit) {
  RunRanks(3, [&](int rank, std::shared_ptr<Collective> c) {
    const std::vector<uint64_t> mine = {~uint64_t{0} - rank, uint64_t{1} << 63,
                                        static_cast<uint64_t>(rank)};
    auto all = AllgatherWords(*c, mine);
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 3u);
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ((*all)[r], (std::vector<uint64_t>{~uint64_t{0} - r, uint64_t{1} << 63,
                                                  static_cast<uint64_t>(r)}));
    }
  });
}

TEST(CollectiveTest, WithoutMpiTheMpiWorldIsUnimplemented) {
  if (HaveMpi()) GTEST_SKIP() << "built with MPI: tests/mpi/ runs it";
  EXPECT_EQ(MpiWorld().status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(MpiCommunicator(nullptr).status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace qat
