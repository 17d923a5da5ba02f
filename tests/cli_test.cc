// The qat program end to end: `qat run` on .npy files and `qat eval` on a
// small synthetic IDX data set whose accuracy is known.
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/npy.h"

namespace qat {
namespace {

namespace fs = std::filesystem;

// Runs a shell command; returns its exit code and stdout.
int RunShell(const std::string& command, std::string* out) {
  std::FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out->append(buffer, got);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("qat_cli_test_", ::testing::UnitTest::GetInstance()->random_seed(),
                        "_", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Save(const GraphBuilder& g, const std::string& name) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << g.proto().SerializeAsString();
    return path;
  }

  fs::path dir_;
};

TEST_F(CliTest, RunWritesEveryOutputAsNpy) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 3}).Output("y", kFloat, {-1, 3}).Output("n", kFloat, {-1, 3});
  g.Node("Relu", {"x"}, {"y"});
  g.Node("Neg", {"x"}, {"n"});
  const std::string model = Save(g, "model.onnx");
  const std::string input = (dir_ / "x.npy").string();
  ASSERT_TRUE(WriteNpy(input, Tensor::FromValues<float>({2, 3}, {-1, 2, -3, 4, -5, 6})).ok());
  std::string out;
  ASSERT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " run ", model, " x=", input, " --out ",
                                  (dir_ / "out").string(), " --threads 1"),
                     &out),
            0);
  auto y = ReadNpy((dir_ / "out" / "y.npy").string());
  auto n = ReadNpy((dir_ / "out" / "n.npy").string());
  ASSERT_TRUE(y.ok() && n.ok());
  EXPECT_EQ(y->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(y->data<float>()[0], 0.0f);
  EXPECT_EQ(y->data<float>()[5], 6.0f);
  EXPECT_EQ(n->data<float>()[1], -2.0f);
}

// prepare lists the trainable parameters with their element counts; the
// globs repeat, frozen wins, and an unmatched glob fails naming it.
TEST_F(CliTest, PrepareListsTheTrainableParameters) {
  const std::string model = (dir_ / "mlp.onnx").string();
  std::string out;
  ASSERT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " zoo mlp -o ", model), &out), 0);
  out.clear();
  ASSERT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " prepare ", model, " -o ",
                                  (dir_ / "qat").string(),
                                  " --trainable 'fc1.*' --trainable 'fc2.*' --frozen '*.bias'"),
                     &out),
            0);
  EXPECT_NE(out.find("2 trainable parameters (397000 elements)"), std::string::npos) << out;
  EXPECT_NE(out.find("  fc1.weight 392000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  fc2.weight 5000\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("bias"), std::string::npos) << out;
  std::string err;
  EXPECT_EQ(RunShell(absl::StrCat("(", QAT_CLI_PATH, " prepare ", model, " -o ",
                                  (dir_ / "bad").string(), " --frozen 'conv*' 2>&1)"),
                     &err),
            1);
  EXPECT_NE(err.find("frozen pattern 'conv*'"), std::string::npos) << err;
}

// "a/b" and "a_b" both map to a_b.npy: refused, and nothing is written.
TEST_F(CliTest, RunRefusesOutputsWhoseFileNamesCollide) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 3}).Output("a/b", kFloat, {-1, 3}).Output("a_b", kFloat, {-1, 3});
  g.Node("Relu", {"x"}, {"a/b"});
  g.Node("Neg", {"x"}, {"a_b"});
  const std::string model = Save(g, "model.onnx");
  const std::string input = (dir_ / "x.npy").string();
  ASSERT_TRUE(WriteNpy(input, Tensor::FromValues<float>({1, 3}, {-1, 2, -3})).ok());
  std::string out;
  EXPECT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " run ", model, " x=", input, " --out ",
                                  (dir_ / "out").string(), " 2>&1 >/dev/null | grep -c "
                                  "\"would both be written to '.*a_b.npy'\""),
                     &out),
            0);
  EXPECT_EQ(out, "1\n");
  EXPECT_FALSE(fs::exists(dir_ / "out" / "a_b.npy"));
}

TEST_F(CliTest, RunFailsCleanlyOnAWrongDtype) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Relu", {"x"}, {"y"});
  const std::string model = Save(g, "model.onnx");
  const std::string input = (dir_ / "x.npy").string();
  ASSERT_TRUE(WriteNpy(input, Tensor::FromValues<int32_t>({2}, {1, 2})).ok());
  std::string out;
  EXPECT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " run ", model, " ", input, " --out ",
                                  (dir_ / "out").string()),
                     &out),
            1);
  EXPECT_FALSE(fs::exists(dir_ / "out" / "y.npy"));
  EXPECT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " run ", model), &out), 2);
}

// Writes an IDX file of unsigned bytes, gzip-compressed or plain.
void WriteIdx(const std::string& path, const std::vector<uint32_t>& dims,
              const std::vector<uint8_t>& data, bool gzip) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(d >> shift));
  }
  bytes.append(data.begin(), data.end());
  if (!gzip) {
    std::ofstream(path, std::ios::binary) << bytes;
    return;
  }
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
}

// 20 images; image i lights pixel (i % 10), labeled i % 10, except the last,
// which is mislabeled.  A model whose logit c is pixel c scores 19/20.
void WriteDataSet(const fs::path& dir) {
  std::vector<uint8_t> images(20 * 784, 0), labels(20);
  for (int i = 0; i < 20; ++i) {
    images[i * 784 + i % 10] = 255;
    labels[i] = static_cast<uint8_t>(i % 10);
  }
  labels[19] = 0;
  WriteIdx((dir / "t10k-images-idx3-ubyte.gz").string(), {20, 28, 28}, images, true);
  WriteIdx((dir / "t10k-labels-idx1-ubyte").string(), {20}, labels, false);
}

Tensor PixelPicker() {
  Tensor w(DataType::kFloat32, {784, 10});
  for (int c = 0; c < 10; ++c) w.data<float>()[c * 10 + c] = 1.0f;
  return w;
}

TEST_F(CliTest, EvalMeasuresAccuracyForRank2AndRank4Inputs) {
  WriteDataSet(dir_);
  GraphBuilder flat;
  flat.Input("x", kFloat, {-1, 784}).Output("logits", kFloat, {-1, 10});
  flat.Initializer("w", PixelPicker());
  flat.Node("MatMul", {"x", "w"}, {"logits"});
  GraphBuilder image;
  image.Input("x", kFloat, {-1, 1, 28, 28}).Output("logits", kFloat, {-1, 10});
  image.Initializer("w", PixelPicker());
  image.Node("Flatten", {"x"}, {"f"});
  image.Node("MatMul", {"f", "w"}, {"logits"});
  for (const GraphBuilder* g : {&flat, &image}) {
    const std::string model = Save(*g, "model.onnx");
    std::string out;
    ASSERT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " eval ", model, " --data ", dir_.string(),
                                    " --batch 7 --threads 2"),
                       &out),
              0);
    EXPECT_NE(out.find("{\"accuracy\": 0.9500, \"images_per_s\": "), std::string::npos) << out;
    out.clear();
    ASSERT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " eval ", model, " --data ", dir_.string(),
                                    " --limit 10"),
                       &out),
              0);
    EXPECT_NE(out.find("{\"accuracy\": 1.0000"), std::string::npos) << out;
  }
}

TEST_F(CliTest, EvalFailsCleanlyWithoutData) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 784}).Output("y", kFloat, {-1, 784});
  g.Node("Relu", {"x"}, {"y"});
  std::string out;
  EXPECT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " eval ", Save(g, "m.onnx"), " --data ",
                                  (dir_ / "missing").string()),
                     &out),
            1);
  EXPECT_EQ(RunShell(absl::StrCat(QAT_CLI_PATH, " eval ", Save(g, "m.onnx"), " --split dev"),
                     &out),
            2);
}

// Issue 13: inputs that crashed or aborted the program exit with an error
// code and a message, under a 4 GB address-space limit.
TEST_F(CliTest, HostileInputsExitWithAMessageNotASignal) {
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 784}).Output("y", kFloat, {-1, 784});
  g.Node("Relu", {"x"}, {"y"});
  const std::string model = Save(g, "m.onnx");
  // A 128-byte .npy of shape (2^60, 784): its count wrapped to 0 (SIGSEGV).
  const std::string npy = (dir_ / "wrap.npy").string();
  {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1152921504606846976, 784), }";
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header.push_back('\n');
    std::ofstream f(npy, std::ios::binary);
    f << std::string("\x93NUMPY\x01\x00", 8) << static_cast<char>(header.size())
      << static_cast<char>(header.size() >> 8) << header;
  }
  const std::string limited = absl::StrCat("prlimit --as=4000000000 ", QAT_CLI_PATH);
  const std::string err = (dir_ / "err.txt").string();
  auto run = [&](const std::string& args) {
    std::string out;
    // (RunShell sends the group's stderr to /dev/null; the command's goes to `err`.)
    const int rc = RunShell(absl::StrCat("{ ", limited, " ", args, " 2>", err, "; }"), &out);
    std::ifstream in(err);
    return std::make_pair(rc, std::string(std::istreambuf_iterator<char>(in), {}));
  };
  auto [rc, message] = run(absl::StrCat("run ", model, " ", npy, " --out ", (dir_ / "o").string()));
  EXPECT_EQ(rc, 1);
  EXPECT_NE(message.find("too large to count"), std::string::npos) << message;
  // --threads 5000 aborted with std::system_error.
  std::tie(rc, message) = run(absl::StrCat("run ", model, " ", npy, " --out o --threads 5000"));
  EXPECT_EQ(rc, 2);
  EXPECT_NE(message.find("--threads is 5000"), std::string::npos) << message;
}

}  // namespace
}  // namespace qat
