// Distillation (issue 17): a teacher in the training graph, no labels.
#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "qat/dataset.h"
#include "qat/model_zoo.h"
#include "qat/trainer.h"
#include "qat/training_graph.h"

namespace qat {
namespace {

MlpSpec Small(uint64_t seed) {
  MlpSpec spec;
  spec.inputs = 6;
  spec.hidden = {5};
  spec.outputs = 4;
  spec.seed = seed;
  return spec;
}

Dataset Unlabelled() {
  Tensor x(DataType::kFloat32, {32, 6});
  for (int i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = std::sin(0.37f * i);
  return *Dataset::FromInputs({{"input", x}}, std::nullopt);
}

TrainingGraphOptions Distill(const Model* teacher, DistillKind kind) {
  TrainingGraphOptions options;
  options.teacher = teacher;
  DistillTerm term;
  term.student = "logits";
  term.kind = kind;
  term.temperature = 2.0f;
  options.loss.distill.terms = {term};
  return options;
}

TEST(DistillTest, AStudentEqualToItsTeacherHasZeroLoss) {
  auto model = MakeMlp(Small(1));
  ASSERT_TRUE(model.ok());
  for (DistillKind kind : {DistillKind::kMse, DistillKind::kKl, DistillKind::kCosine}) {
    auto models = BuildTrainingModels(*model, Distill(&*model, kind));
    ASSERT_TRUE(models.ok()) << models.status();
    for (const std::string& p : models->params) {
      EXPECT_FALSE(absl::StartsWith(p, kTeacherPrefix)) << p << " trains";
    }
    for (const ValueInfo& v : models->training.inputs()) {
      EXPECT_NE(v.name, kLabelsInput) << "distillation needs no labels";
    }
    auto trainer = Trainer::Create(*models, {});
    ASSERT_TRUE(trainer.ok());
    auto metrics = (*trainer)->Evaluate(Unlabelled(), 8);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_NEAR(metrics->loss, 0.0, 1e-6) << DistillKindName(kind);
  }
}

TEST(DistillTest, TrainingWithoutLabelsBringsTheStudentToTheTeacher) {
  auto student = MakeMlp(Small(1));
  auto teacher = MakeMlp(Small(2));
  ASSERT_TRUE(student.ok() && teacher.ok());
  for (DistillKind kind : {DistillKind::kMse, DistillKind::kKl, DistillKind::kCosine}) {
    TrainingGraphOptions options = Distill(&*teacher, kind);
    options.loss.distill.terms.push_back({"logits", "", DistillKind::kMse, 0.5f});
    auto models = BuildTrainingModels(*student, options);
    ASSERT_TRUE(models.ok()) << models.status();
    TrainerOptions t;
    t.schedule.lr = 1e-2f;
    t.num_threads = 1;
    auto trainer = Trainer::Create(*models, t);
    ASSERT_TRUE(trainer.ok());
    const Dataset data = Unlabelled();
    const double before = (*trainer)->Evaluate(data, 8)->loss;
    ASSERT_TRUE((*trainer)->TrainEpochs(data, 30, 8).ok());
    const double after = (*trainer)->Evaluate(data, 8)->loss;
    EXPECT_LT(after, 0.5 * before) << DistillKindName(kind) << ": " << before << " -> " << after;
  }
}

TEST(DistillTest, StudentAndTeacherAtDifferentOpsetsMeetAtTheHigher) {
  MlpSpec newer = Small(1);
  newer.opset = 17;
  auto teacher = MakeMlp(newer);
  auto student = MakeMlp(Small(1));
  ASSERT_TRUE(teacher.ok() && student.ok()) << teacher.status();
  auto models = BuildTrainingModels(*student, Distill(&*teacher, DistillKind::kMse));
  ASSERT_TRUE(models.ok()) << models.status();
  auto trainer = Trainer::Create(*models, {});
  ASSERT_TRUE(trainer.ok());
  auto metrics = (*trainer)->Evaluate(Unlabelled(), 8);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NEAR(metrics->loss, 0.0, 1e-6);  // the same weights at another opset
}

TEST(DistillTest, BadTermsAreNamed) {
  auto model = MakeMlp(Small(1));
  ASSERT_TRUE(model.ok());
  TrainingGraphOptions options = Distill(&*model, DistillKind::kMse);
  options.loss.distill.terms[0].student = "no_such_tensor";
  auto bad = BuildTrainingModels(*model, options);
  EXPECT_NE(std::string(bad.status().message()).find("'no_such_tensor'"), std::string::npos)
      << bad.status();
  options = Distill(&*model, DistillKind::kKl);
  options.loss.distill.terms[0].temperature = 0.0f;
  bad = BuildTrainingModels(*model, options);
  EXPECT_NE(std::string(bad.status().message()).find("temperature"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace qat
