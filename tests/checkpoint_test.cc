// Checkpoint files: round trip, and every way a file can be bad.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/checkpoint.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

Checkpoint Sample() {
  Checkpoint c;
  c.parameters.emplace_back("fc.weight",
                            Tensor::FromValues<float>({2, 2}, {1.f, 2.f, 3.f, 4.f}));
  c.parameters.emplace_back("fc.bias", Tensor::FromValues<float>({2}, {-1.f, 0.5f}));
  c.optimizer = "adamw";
  c.optimizer_step = 17;
  c.optimizer_state.emplace("fc.bias.exp_avg", Tensor::FromValues<float>({2}, {0.1f, 0.2f}));
  c.progress = {2, 5, 17, 42};
  c.metadata["note"] = "hello";
  return c;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(CheckpointTest, RoundTrip) {
  const std::string path = TempPath("round_trip.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, Sample()).ok());
  auto c = LoadCheckpoint(path);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->parameters.size(), 2u);
  EXPECT_EQ(c->parameters[0].first, "fc.weight");
  EXPECT_EQ(c->parameters[0].second.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(c->parameters[0].second.values<float>()[3], 4.0f);
  EXPECT_EQ(c->parameters[1].first, "fc.bias");
  EXPECT_EQ(c->optimizer, "adamw");
  EXPECT_EQ(c->optimizer_step, 17);
  EXPECT_EQ(c->optimizer_state.at("fc.bias.exp_avg").values<float>()[1], 0.2f);
  EXPECT_EQ(c->progress.epoch, 2);
  EXPECT_EQ(c->progress.step_in_epoch, 5);
  EXPECT_EQ(c->progress.global_step, 17);
  EXPECT_EQ(c->progress.seed, 42u);
  EXPECT_EQ(c->metadata.at("note"), "hello");
}

// The same state gives the same bytes, however its metadata map was built
// (the C pipeline compares checkpoints of two identical runs).
TEST(CheckpointTest, SameStateSameBytes) {
  Checkpoint a = Sample();
  for (int i = 0; i < 64; ++i) a.metadata["run.key" + std::to_string(i)] = std::to_string(i);
  const std::string first = TempPath("same_a.ckpt"), second = TempPath("same_b.ckpt");
  ASSERT_TRUE(SaveCheckpoint(first, a).ok());
  auto loaded = LoadCheckpoint(first);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(SaveCheckpoint(second, *loaded).ok());
  EXPECT_EQ(ReadAll(first), ReadAll(second));
}

// Every kind of field, with tensors that are empty, scalar, of other types
// and larger than the writer's 1 MB buffer: the file is written a piece at
// a time straight from the tensors, and must read back as it was.
TEST(CheckpointTest, EveryFieldRoundTripsThroughThePiecewiseWriter) {
  Checkpoint c = Sample();
  std::vector<float> big(600 * 1000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i % 977) * 0.25f;
  c.parameters.emplace_back("big", Tensor::FromValues<float>({600, 1000}, big));
  c.parameters.emplace_back("empty", Tensor::FromValues<float>({0, 3}, {}));
  c.optimizer_state.emplace("big.exp_avg_sq", Tensor::FromValues<float>({600, 1000}, big));
  c.quant_params.emplace_back("s", Tensor::Scalar<float>(0.125f));
  c.quant_params.emplace_back("z", Tensor::FromValues<int8_t>({2}, {-3, 7}));
  c.observer_state.emplace("s.min_val", Tensor::Scalar<float>(-1.5f));
  c.observed_steps = 9;
  c.running_stats.emplace_back("bn.mean", Tensor::FromValues<float>({2}, {0.5f, -0.5f}));
  const std::string path = TempPath("every_field.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, c).ok());
  auto r = LoadCheckpoint(path);
  ASSERT_TRUE(r.ok()) << r.status();
  auto same = [](const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() &&
           (a.num_bytes() == 0 ||  // an empty tensor has no data pointer
            std::memcmp(a.raw_data(), b.raw_data(), a.num_bytes()) == 0);
  };
  ASSERT_EQ(r->parameters.size(), c.parameters.size());
  for (size_t i = 0; i < c.parameters.size(); ++i) {
    EXPECT_EQ(r->parameters[i].first, c.parameters[i].first);
    EXPECT_TRUE(same(r->parameters[i].second, c.parameters[i].second)) << i;
  }
  ASSERT_EQ(r->optimizer_state.size(), 2u);
  EXPECT_TRUE(same(r->optimizer_state.at("big.exp_avg_sq"), c.optimizer_state.at("big.exp_avg_sq")));
  ASSERT_EQ(r->quant_params.size(), 2u);
  EXPECT_TRUE(same(r->quant_params[1].second, c.quant_params[1].second));
  EXPECT_TRUE(same(r->observer_state.at("s.min_val"), c.observer_state.at("s.min_val")));
  EXPECT_EQ(r->observed_steps, 9);
  ASSERT_EQ(r->running_stats.size(), 1u);
  EXPECT_TRUE(same(r->running_stats[0].second, c.running_stats[0].second));
  EXPECT_EQ(r->metadata, c.metadata);
  EXPECT_EQ(r->progress.seed, 42u);
}

TEST(CheckpointTest, TruncatedAtEveryLengthIsDataLoss) {
  const std::string path = TempPath("full.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, Sample()).ok());
  const std::string bytes = ReadAll(path);
  const std::string cut = TempPath("cut.ckpt");
  for (size_t n = 0; n < bytes.size(); ++n) {
    WriteAll(cut, bytes.substr(0, n));
    auto c = LoadCheckpoint(cut);
    ASSERT_FALSE(c.ok()) << "accepted a file cut to " << n << " bytes";
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << c.status();
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(cut));
  }
}

TEST(CheckpointTest, FlippedByteIsCaughtByTheChecksum) {
  const std::string path = TempPath("flip.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, Sample()).ok());
  std::string bytes = ReadAll(path);
  for (size_t at : {size_t{20}, bytes.size() / 2, bytes.size() - 9}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    WriteAll(path, bad);
    auto c = LoadCheckpoint(path);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << at;
  }
}

TEST(CheckpointTest, NotACheckpointAndMissingFile) {
  const std::string path = TempPath("not.ckpt");
  WriteAll(path, "this is a text file, not a checkpoint");
  EXPECT_THAT(std::string(LoadCheckpoint(path).status().message()),
              HasSubstr("not a libqat checkpoint"));
  EXPECT_EQ(LoadCheckpoint(TempPath("missing.ckpt")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, FailedSaveLeavesThePreviousFile) {
  const std::string path = TempPath("keep.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, Sample()).ok());
  const std::string before = ReadAll(path);
  // A directory cannot be written: the save fails and the file is intact.
  EXPECT_FALSE(SaveCheckpoint(TempPath("no_such_dir/x.ckpt"), Sample()).ok());
  EXPECT_EQ(ReadAll(path), before);
}

}  // namespace
}  // namespace qat
