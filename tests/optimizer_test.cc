// Optimizers and schedules against PyTorch's update rules, written out here
// in double precision, and their argument checks.
#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/lr_schedule.h"
#include "qat/optimizer.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

Tensor Vec(std::vector<float> v) {
  return Tensor::FromValues<float>({static_cast<int64_t>(v.size())},
                                   absl::MakeConstSpan(v));
}

// The gradient at step t for element i: a deterministic, varying sequence.
float GradAt(int t, size_t i) {
  return std::sin(0.7f * static_cast<float>(t) + static_cast<float>(i)) * 0.5f;
}

// Runs `steps` steps of `opt` and returns the parameters.
std::vector<float> RunOptimizer(Optimizer& opt, std::vector<float> p0, int steps,
                                float lr) {
  Tensor p = Vec(p0);
  for (int t = 1; t <= steps; ++t) {
    std::vector<float> g(p0.size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = GradAt(t, i);
    Tensor gt = Vec(g);
    auto norm = opt.Step(lr, {"w"}, {&p}, {&gt});
    EXPECT_TRUE(norm.ok()) << norm.status();
  }
  auto v = p.values<float>();
  return {v.begin(), v.end()};
}

TEST(OptimizerTest, SgdMomentumNesterovWeightDecayMatchPyTorchRules) {
  const std::vector<float> p0 = {0.5f, -1.0f, 2.0f};
  for (bool nesterov : {false, true}) {
    OptimizerOptions o;
    o.kind = OptimizerKind::kSgd;
    o.momentum = 0.9f;
    o.nesterov = nesterov;
    o.weight_decay = 0.1f;
    auto opt = Optimizer::Create(o);
    ASSERT_TRUE(opt.ok());
    const std::vector<float> got = RunOptimizer(**opt, p0, 5, 0.05f);
    // Reference, in double.
    std::vector<double> p(p0.begin(), p0.end()), buf(3, 0.0);
    for (int t = 1; t <= 5; ++t) {
      for (size_t i = 0; i < 3; ++i) {
        double d = GradAt(t, i) + 0.1 * p[i];
        buf[i] = t == 1 ? d : 0.9 * buf[i] + d;
        d = nesterov ? d + 0.9 * buf[i] : buf[i];
        p[i] -= 0.05 * d;
      }
    }
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(got[i], p[i], 1e-5) << i;
    EXPECT_EQ((*opt)->step_count(), 5);
    EXPECT_EQ((*opt)->state().count("w.momentum_buffer"), 1u);
  }
}

TEST(OptimizerTest, AdamWMatchesPyTorchRules) {
  const std::vector<float> p0 = {0.5f, -1.0f, 2.0f, 0.0f};
  OptimizerOptions o;  // AdamW, weight decay 0.01 by default
  auto opt = Optimizer::Create(o);
  ASSERT_TRUE(opt.ok());
  const std::vector<float> got = RunOptimizer(**opt, p0, 7, 1e-2f);
  std::vector<double> p(p0.begin(), p0.end()), m(4, 0.0), v(4, 0.0);
  for (int t = 1; t <= 7; ++t) {
    const double c1 = 1 - std::pow(0.9, t), c2 = 1 - std::pow(0.999, t);
    for (size_t i = 0; i < 4; ++i) {
      const double g = GradAt(t, i);
      p[i] *= 1 - 1e-2 * 0.01;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      p[i] -= (1e-2 / c1) * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + 1e-8);
    }
  }
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(got[i], p[i], 1e-5) << i;
}

TEST(OptimizerTest, ClipsTheGlobalNorm) {
  OptimizerOptions o;
  o.kind = OptimizerKind::kSgd;
  o.max_grad_norm = 1.0f;
  auto opt = Optimizer::Create(o);
  ASSERT_TRUE(opt.ok());
  Tensor a = Vec({0.0f, 0.0f}), b = Vec({0.0f});
  Tensor ga = Vec({3.0f, 0.0f}), gb = Vec({4.0f});  // norm 5
  auto norm = (*opt)->Step(1.0f, {"a", "b"}, {&a, &b}, {&ga, &gb});
  ASSERT_TRUE(norm.ok());
  EXPECT_DOUBLE_EQ(*norm, 5.0);
  EXPECT_NEAR(a.values<float>()[0], -3.0f / 5.0f, 1e-6);
  EXPECT_NEAR(b.values<float>()[0], -4.0f / 5.0f, 1e-6);
}

TEST(OptimizerTest, RejectsNonFiniteGradientsWithoutUpdating) {
  auto opt = Optimizer::Create({});
  ASSERT_TRUE(opt.ok());
  Tensor p = Vec({1.0f}), g = Vec({std::nanf("")});
  auto s = (*opt)->Step(0.1f, {"w"}, {&p}, {&g});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("NaN or Inf"));
  EXPECT_EQ(p.values<float>()[0], 1.0f);
  EXPECT_EQ((*opt)->step_count(), 0);
}

TEST(OptimizerTest, RejectsBadOptionsAndShapes) {
  OptimizerOptions o;
  o.kind = OptimizerKind::kSgd;
  o.nesterov = true;
  EXPECT_THAT(std::string(Optimizer::Create(o).status().message()),
              HasSubstr("Nesterov"));
  o = {};
  o.beta2 = 1.0f;
  EXPECT_THAT(std::string(Optimizer::Create(o).status().message()),
              HasSubstr("beta2"));
  auto opt = Optimizer::Create({});
  Tensor p = Vec({1.0f, 2.0f}), g = Vec({1.0f});
  EXPECT_EQ((*opt)->Step(0.1f, {"w"}, {&p}, {&g}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseOptimizerKind("rmsprop").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OptimizerTest, RestoredStateContinuesIdentically) {
  auto a = Optimizer::Create({});
  auto b = Optimizer::Create({});
  const std::vector<float> p0 = {0.3f, -0.2f};
  Tensor pa = Vec(p0);
  for (int t = 1; t <= 3; ++t) {
    Tensor g = Vec({GradAt(t, 0), GradAt(t, 1)});
    ASSERT_TRUE((*a)->Step(0.01f, {"w"}, {&pa}, {&g}).ok());
  }
  Tensor pb = pa;
  ASSERT_TRUE((*b)->Restore((*a)->step_count(), (*a)->state()).ok());
  for (int t = 4; t <= 6; ++t) {
    Tensor ga = Vec({GradAt(t, 0), GradAt(t, 1)}), gb = ga;
    ASSERT_TRUE((*a)->Step(0.01f, {"w"}, {&pa}, {&ga}).ok());
    ASSERT_TRUE((*b)->Step(0.01f, {"w"}, {&pb}, {&gb}).ok());
  }
  EXPECT_EQ(pa.values<float>()[0], pb.values<float>()[0]);
  EXPECT_EQ(pa.values<float>()[1], pb.values<float>()[1]);
}

TEST(LrScheduleTest, ConstantLinearCosine) {
  LrSchedule c;
  c.lr = 0.1f;
  EXPECT_TRUE(c.Validate().ok());
  EXPECT_EQ(c.At(0), 0.1f);
  EXPECT_EQ(c.At(1000), 0.1f);

  LrSchedule lin{LrScheduleKind::kLinear, 1.0f, 0.0f, 4, 14};
  ASSERT_TRUE(lin.Validate().ok());
  EXPECT_FLOAT_EQ(lin.At(0), 0.2f);   // warmup: (step + 1) / (warmup + 1)
  EXPECT_FLOAT_EQ(lin.At(3), 0.8f);
  EXPECT_FLOAT_EQ(lin.At(4), 1.0f);   // peak
  EXPECT_FLOAT_EQ(lin.At(9), 0.5f);   // halfway down
  EXPECT_FLOAT_EQ(lin.At(14), 0.0f);
  EXPECT_FLOAT_EQ(lin.At(99), 0.0f);

  LrSchedule cos{LrScheduleKind::kCosine, 1.0f, 0.1f, 0, 10};
  ASSERT_TRUE(cos.Validate().ok());
  EXPECT_FLOAT_EQ(cos.At(0), 1.0f);
  EXPECT_FLOAT_EQ(cos.At(5), 0.55f);
  EXPECT_FLOAT_EQ(cos.At(10), 0.1f);

  LrSchedule bad{LrScheduleKind::kCosine, 1.0f, 0.0f, 5, 0};
  EXPECT_EQ(bad.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLrScheduleKind("step").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qat
