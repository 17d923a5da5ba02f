// The trainer end to end on a small synthetic problem: the loss falls,
// resuming from a checkpoint is bit-identical, and bad data is refused.
#include <cmath>
#include <limits>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/model_zoo.h"
#include "qat/trainer.h"
#include "synthetic_data.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

TrainingModels SmallModels() {
  MlpSpec spec;
  spec.inputs = 8;
  spec.hidden = {16};
  spec.outputs = 3;
  auto models = BuildTrainingModels(*MakeMlp(spec), {});
  EXPECT_TRUE(models.ok()) << models.status();
  return *std::move(models);
}

TrainerOptions Options() {
  TrainerOptions o;
  o.schedule.lr = 1e-2f;
  o.num_threads = 1;
  o.seed = 7;
  return o;
}

TEST(TrainerTest, LossFallsAndAccuracyRises) {
  const Dataset data = Blobs(150, 1);
  auto trainer = Trainer::Create(SmallModels(), Options());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto before = (*trainer)->Evaluate(data, 32);
  ASSERT_TRUE(before.ok()) << before.status();
  int steps = 0;
  ASSERT_TRUE((*trainer)->TrainEpochs(data, 5, 16, [&](const StepReport& r) {
    ++steps;
    EXPECT_EQ(r.steps_per_epoch, 10);  // 150 / 16, the last batch partial
    return absl::OkStatus();
  }).ok());
  EXPECT_EQ(steps, 50);
  auto after = (*trainer)->Evaluate(data, 32);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(after->loss, before->loss * 0.5);
  EXPECT_GT(after->accuracy, 0.9);
  EXPECT_EQ((*trainer)->progress().epoch, 5);
  EXPECT_EQ((*trainer)->progress().global_step, 50);
}

void ExpectSameParameters(const Trainer& a, const Trainer& b) {
  for (const std::string& name : a.param_names()) {
    const auto x = a.param(name).values<float>();
    const auto y = b.param(name).values<float>();
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(x[i], y[i]) << name << "[" << i << "]";
    }
  }
}

TEST(TrainerTest, ResumingFromACheckpointIsBitIdentical) {
  const Dataset data = Blobs(90, 2);
  const TrainingModels models = SmallModels();
  auto straight = Trainer::Create(models, Options());
  ASSERT_TRUE((*straight)->TrainEpochs(data, 3, 16).ok());

  // Interrupt in the middle of epoch 1, save, and resume in a new trainer.
  auto first = Trainer::Create(models, Options());
  const absl::Status stopped = (*first)->TrainEpochs(
      data, 3, 16, [](const StepReport& r) {
        return r.global_step == 9 ? absl::CancelledError("stop") : absl::OkStatus();
      });
  ASSERT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  const std::string path = ::testing::TempDir() + "/resume.ckpt";
  ASSERT_TRUE(SaveCheckpoint(path, (*first)->MakeCheckpoint()).ok());
  auto loaded = LoadCheckpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->progress.epoch, 1);
  EXPECT_EQ(loaded->progress.step_in_epoch, 3);

  auto resumed = Trainer::Create(models, Options());
  ASSERT_TRUE((*resumed)->RestoreCheckpoint(*loaded).ok());
  ASSERT_TRUE((*resumed)->TrainEpochs(data, 3, 16).ok());
  EXPECT_EQ((*resumed)->progress().global_step, (*straight)->progress().global_step);
  ExpectSameParameters(**straight, **resumed);
}

TEST(TrainerTest, CheckpointFromAnotherModelIsRefused) {
  auto trainer = Trainer::Create(SmallModels(), Options());
  auto other = BuildTrainingModels(*MakeMlp(), {});
  auto big = Trainer::Create(*other, Options());
  const absl::Status s = (*trainer)->RestoreCheckpoint((*big)->MakeCheckpoint());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("another model"));
}

TEST(TrainerTest, BadLabelsAndNonFiniteDataAreErrors) {
  auto trainer = Trainer::Create(SmallModels(), Options());
  Tensor x(DataType::kFloat32, {2, 8});
  auto bad_label = (*trainer)->TrainStep(
      {{"input", x}, {"labels", Tensor::FromValues<int64_t>({2}, {1, 7})}});
  EXPECT_EQ(bad_label.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_label.status().message()),
              HasSubstr("label 7 at position 1"));

  x.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  const Tensor before = (*trainer)->param("fc1.weight");
  auto nan = (*trainer)->TrainStep(
      {{"input", x}, {"labels", Tensor::FromValues<int64_t>({2}, {1, 2})}});
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nan.status().message()), HasSubstr("not updated"));
  const auto now = (*trainer)->param("fc1.weight").values<float>();
  for (size_t i = 0; i < now.size(); ++i) {
    ASSERT_EQ(now[i], before.values<float>()[i]);
  }
}

}  // namespace
}  // namespace qat
