// Checkpoint files: round trip, and every way a file can be bad.
#include <cstdio>
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
