// The bad-input catalogue (issue 8): one test per way users hand libqat bad
// input.  Each asserts the error code and that the message names the
// culprit.  Some cases are covered in depth elsewhere (noted); they are
// repeated here in one line so that the catalogue is complete in one place.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <csignal>
#include <filesystem>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/calibrate.h"
#include "qat/calibration_table.h"
#include "qat/data_spec.h"
#include "qat/checkpoint.h"
#include "qat/executor.h"
#include "qat/idx.h"
#include "qat/npy.h"
#include "qat/thread_pool.h"
#include "qat/model_zoo.h"
#include "qat/quantize.h"
#include "qat/trainer.h"
#include "qat/training_graph.h"
#include "qat/c_api.h"

namespace qat {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Temp(const std::string& name) { return ::testing::TempDir() + "/" + name; }

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& culprit) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(culprit)) << s;
}

// ---- Malformed or unusual files and graphs ----------------------------------

TEST(BadInputCatalogue, TruncatedOnnxFile) {
  const std::string bytes = MakeMlp()->Serialize();
  const std::string path = Temp("truncated.onnx");
  Write(path, bytes.substr(0, bytes.size() / 2));
  ExpectError(Model::Load(path).status(), absl::StatusCode::kInvalidArgument, path);
}

TEST(BadInputCatalogue, FileThatIsNotOnnx) {
  const std::string path = Temp("not_onnx.onnx");
  Write(path, "name,value\nlr,0.001\n");
  ExpectError(Model::Load(path).status(), absl::StatusCode::kInvalidArgument, path);
}

TEST(BadInputCatalogue, GraphWithACycle) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Add", {"x", "b"}, {"a"});
  g.Node("Relu", {"a"}, {"b"});
  g.Node("Identity", {"a"}, {"y"});
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok());
  ExpectError(Executor::Create(*model).status(), absl::StatusCode::kInvalidArgument, "cycle");
}

TEST(BadInputCatalogue, NodeInputThatNothingProduces) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Add", {"x", "ghost"}, {"y"});
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok());
  ExpectError(Executor::Create(*model).status(), absl::StatusCode::kInvalidArgument, "ghost");
}

TEST(BadInputCatalogue, DuplicateNodeOutputNames) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Relu", {"x"}, {"y"});
  g.Node("Neg", {"x"}, {"y"});
  ExpectError(g.Build().status(), absl::StatusCode::kInvalidArgument, "'y'");
}

// A zero stride made ONNX's own shape inference divide by zero (SIGFPE in
// libonnx; fuzz_model_pipeline found it in LeNet-5 with one bit flipped).
// It is refused before, naming the node and the attribute.
TEST(BadInputCatalogue, ZeroStrideOrKernelSize) {
  for (const char* attribute : {"strides", "kernel_shape", "dilations"}) {
    onnx::ModelProto proto;
    ASSERT_TRUE(proto.ParseFromString(MakeLeNet5()->Serialize()));
    for (auto& node : *proto.mutable_graph()->mutable_node()) {
      if (node.op_type() != "MaxPool") continue;
      onnx::AttributeProto* a = nullptr;
      for (auto& existing : *node.mutable_attribute()) {
        if (existing.name() == attribute) a = &existing;
      }
      if (a == nullptr) {
        a = node.add_attribute();
        a->set_name(attribute);
        a->set_type(onnx::AttributeProto::INTS);
      }
      a->clear_ints();
      a->add_ints(2);
      a->add_ints(0);
      node.set_name("pool_with_zero");
      break;
    }
    ExpectError(Model::FromBytes(proto.SerializeAsString(), "zero.onnx").status(),
                absl::StatusCode::kInvalidArgument, "pool_with_zero");
  }
}

// A Gemm whose B is declared rank 0 made ONNX's Gemm shape inference read
// a missing dimension (SIGSEGV in libonnx; fuzz_model_pipeline found it in
// ONNX's own Gemm node test).  It is refused before, naming the input.
TEST(BadInputCatalogue, GemmOperandOfRankOtherThanTwo) {
  GraphBuilder g;
  g.Input("a", kFloat, {3, 7}).Input("b", kFloat, {}).Output("y", kFloat, {3, 3});
  g.Node("Gemm", {"a", "b"}, {"y"});
  ExpectError(g.Build().status(), absl::StatusCode::kInvalidArgument, "input 'b' has rank 0");
}

// Too new: an opset the installed ONNX does not define is refused at load.
// Too old: opset 1's Relu predates the semantics the kernel implements (6),
// which the executor reports for that op.
TEST(BadInputCatalogue, OpsetTooOldOrTooNew) {
  for (int64_t opset : {int64_t{1}, int64_t{40}}) {
    GraphBuilder g;
    onnx::ModelProto proto = g.proto();
    proto.clear_opset_import();
    proto.add_opset_import()->set_version(opset);
    auto* in = proto.mutable_graph()->add_input();
    in->set_name("x");
    in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
    *proto.mutable_graph()->add_output() = *in;
    proto.mutable_graph()->mutable_output(0)->set_name("y");
    auto* n = proto.mutable_graph()->add_node();
    n->set_op_type("Relu");
    n->add_input("x");
    n->add_output("y");
    auto model = Model::FromBytes(proto.SerializeAsString(), "opset.onnx");
    const absl::Status s = model.ok() ? Executor::Create(*model).status() : model.status();
    EXPECT_EQ(s.code(), opset == 1 ? absl::StatusCode::kUnimplemented
                                   : absl::StatusCode::kInvalidArgument)
        << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("opset " + std::to_string(opset))) << s;
  }
}

// A random op: libqat leaves those out.
TEST(BadInputCatalogue, UnsupportedOp) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("RandomUniformLike", {"x"}, {"y"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  ExpectError(Executor::Create(*model).status(), absl::StatusCode::kUnimplemented,
              "RandomUniformLike");
}

// y = Add(x, w), with w's data stored externally at `location`.
onnx::ModelProto ModelWithExternalData(const std::string& location) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Add", {"x", "w"}, {"y"});
  onnx::ModelProto proto = g.proto();
  auto* w = proto.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* entry = w->add_external_data();
  entry->set_key("location");
  entry->set_value(location);
  return proto;
}

TEST(BadInputCatalogue, ExternalDataWhoseFileIsMissing) {
  const onnx::ModelProto proto = ModelWithExternalData("weights_that_are_not_there.bin");
  auto model = Model::FromBytes(proto.SerializeAsString(), "external.onnx");
  const absl::Status s = model.ok() ? Executor::Create(*model).status() : model.status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("weights_that_are_not_there.bin")) << s;
}

// ---- Bad data and labels -------------------------------------------------------

TEST(BadInputCatalogue, InputShapeThatDoesNotMatchTheModel) {
  auto exec = Executor::Create(*MakeMlp());
  ASSERT_TRUE(exec.ok());
  const auto s = (*exec)->Run({{"input", Tensor(DataType::kFloat32, {4, 100})}}).status();
  ExpectError(s, absl::StatusCode::kInvalidArgument, "input");
}

TrainingModels SmallTraining() {
  MlpSpec spec;
  spec.inputs = 4;
  spec.hidden = {3};
  spec.outputs = 2;
  return *BuildTrainingModels(*MakeMlp(spec), {});
}

TEST(BadInputCatalogue, NanOrInfInTrainingDataStopsTheStep) {
  // Documented behaviour: the step fails with InvalidArgument and the
  // parameters are not updated (the run stops; nothing is skipped silently).
  auto trainer = Trainer::Create(SmallTraining(), {});
  ASSERT_TRUE(trainer.ok());
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    Tensor x(DataType::kFloat32, {2, 4});
    x.data<float>()[5] = bad;
    auto s = (*trainer)->TrainStep({{"input", x}, {"labels", Tensor(DataType::kInt64, {2})}});
    ExpectError(s.status(), absl::StatusCode::kInvalidArgument, "not updated");
    EXPECT_EQ((*trainer)->progress().global_step, 0);
  }
}

TEST(BadInputCatalogue, LabelOutOfRange) {
  auto trainer = Trainer::Create(SmallTraining(), {});
  auto s = (*trainer)->TrainStep({{"input", Tensor(DataType::kFloat32, {2, 4})},
                                  {"labels", Tensor::FromValues<int64_t>({2}, {0, 9})}});
  ExpectError(s.status(), absl::StatusCode::kInvalidArgument, "label 9");
}

TEST(BadInputCatalogue, EmptyCalibrationSet) {
  auto data = Dataset::Create(Tensor(DataType::kFloat32, {0, 784}), Tensor(DataType::kInt64, {0}));
  ASSERT_TRUE(data.ok());
  ExpectError(Calibrate(*MakeMlp(), *data, {}).status(), absl::StatusCode::kInvalidArgument,
              "at least one sample");
}

// ---- Bad data files (issue 17): each error names the file and the problem ----------

std::string DataDir(const std::string& name) {
  const std::string d = Temp("bad_data_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

TEST(BadInputCatalogue, DataShapeThatDoesNotFitTheModelInput) {
  const std::string dir = DataDir("shape");
  ASSERT_TRUE(WriteNpy(dir + "/input.npy", Tensor(DataType::kFloat32, {5, 100})).ok());
  auto data = LoadDataSpec(dir, *MakeMlp());
  ASSERT_TRUE(data.ok()) << data.status();
  const absl::Status s = Calibrate(*MakeMlp(), *data, {}).status();
  ExpectError(s, absl::StatusCode::kInvalidArgument, "input.npy' holds [5,100]");
  EXPECT_THAT(std::string(s.message()), HasSubstr("does not fit the model input 'input' [?,784]"));
}

TEST(BadInputCatalogue, DataTypeThatDoesNotConvert) {
  const std::string dir = DataDir("dtype");
  ASSERT_TRUE(WriteNpy(dir + "/input.npy", Tensor(DataType::kInt64, {5, 784})).ok());
  auto data = LoadDataSpec(dir, *MakeMlp());
  ASSERT_TRUE(data.ok()) << data.status();
  ExpectError(Calibrate(*MakeMlp(), *data, {}).status(), absl::StatusCode::kInvalidArgument,
              "input.npy' holds int64, but the model input 'input' is float32");
}

TEST(BadInputCatalogue, NanInDataFeaturesNamesTheFileAndTheExample) {
  const std::string dir = DataDir("nan");
  Tensor x(DataType::kFloat32, {6, 784});
  x.data<float>()[3 * 784 + 10] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(WriteNpy(dir + "/input.npy", x).ok());
  auto data = LoadDataSpec(dir, *MakeMlp());
  ASSERT_TRUE(data.ok()) << data.status();
  ExpectError(Calibrate(*MakeMlp(), *data, {}).status(), absl::StatusCode::kInvalidArgument,
              "input.npy': example 3 holds a NaN or Inf (element 10)");
}

TEST(BadInputCatalogue, DataLabelsOutOfRangeNameTheFile) {
  const std::string dir = DataDir("labels");
  MlpSpec spec;
  spec.inputs = 4;
  spec.hidden = {3};
  spec.outputs = 2;
  ASSERT_TRUE(WriteNpy(dir + "/input.npy", Tensor(DataType::kFloat32, {3, 4})).ok());
  ASSERT_TRUE(WriteNpy(dir + "/labels.npy", Tensor::FromValues<int64_t>({3}, {0, 1, 2})).ok());
  auto data = LoadDataSpec(dir, *MakeMlp(spec));
  ASSERT_TRUE(data.ok()) << data.status();
  auto trainer = Trainer::Create(SmallTraining(), {});
  ASSERT_TRUE(trainer.ok());
  ExpectError((*trainer)->TrainEpochs(*data, 1, 8), absl::StatusCode::kInvalidArgument,
              absl::StrCat("'", dir, "': label 2"));
  EXPECT_EQ((*trainer)->progress().global_step, 0);
}

TEST(BadInputCatalogue, EmptyOrMissingDataNamesTheFile) {
  const std::string dir = DataDir("empty");
  ASSERT_TRUE(WriteNpy(dir + "/input.npy", Tensor(DataType::kFloat32, {0, 784})).ok());
  ExpectError(LoadDataSpec(dir, *MakeMlp()).status(), absl::StatusCode::kInvalidArgument,
              "input.npy' holds no examples");
  const std::string none = DataDir("none");
  ExpectError(LoadDataSpec(none, *MakeMlp()).status(), absl::StatusCode::kInvalidArgument,
              "holds no input .npy files");
  // A labelled loss, but no labels.npy.
  const std::string unlabelled = DataDir("unlabelled");
  ASSERT_TRUE(WriteNpy(unlabelled + "/input.npy", Tensor(DataType::kFloat32, {3, 4})).ok());
  MlpSpec spec;
  spec.inputs = 4;
  auto data = LoadDataSpec(unlabelled, *MakeMlp(spec));
  ASSERT_TRUE(data.ok());
  auto trainer = Trainer::Create(SmallTraining(), {});
  ExpectError((*trainer)->TrainEpochs(*data, 1, 8), absl::StatusCode::kInvalidArgument,
              "has no labels");
  // Arrays whose example counts differ, and a truncated .npz.
  const std::string counts = DataDir("counts");
  ASSERT_TRUE(WriteNpy(counts + "/a.npy", Tensor(DataType::kFloat32, {3, 4})).ok());
  ASSERT_TRUE(WriteNpy(counts + "/b.npy", Tensor(DataType::kFloat32, {4, 4})).ok());
  ExpectError(LoadDataSpec(counts, *MakeMlp()).status(), absl::StatusCode::kInvalidArgument,
              "b.npy' has 4 examples");
  Write(Temp("truncated.npz"), std::string("PK\x03\x04 not a whole zip"));
  ExpectError(LoadDataSpec(Temp("truncated.npz"), *MakeMlp()).status(),
              absl::StatusCode::kInvalidArgument, "truncated.npz': not a readable .npz");
}

// ---- Bad quantization parameters --------------------------------------------------

TEST(BadInputCatalogue, CalibrationTableWithAZeroNegativeOrNanScale) {
  for (const char* scale : {"0", "-0.5", "\"NaN\""}) {
    const std::string json = std::string(R"({"version": 1, "tensors": {"input": {
      "role": "activation", "type": "uint8", "method": "minmax", "bits": 8,
      "symmetric": false, "reduce_range": false, "rmin": -1, "rmax": 1,
      "scale": )") + scale + R"(, "zero_point": 128}}})";
    auto table = CalibrationTable::FromJson(json, "hand_edited.json");
    EXPECT_FALSE(table.ok()) << scale;
    EXPECT_THAT(std::string(table.status().message()), HasSubstr("input")) << table.status();
    EXPECT_THAT(std::string(table.status().message()), HasSubstr("hand_edited.json"));
  }
}

TEST(BadInputCatalogue, CalibrationTableThatNamesUnknownTensors) {
  const Model mlp = *MakeMlp();
  const Tensor x(DataType::kFloat32, {8, 784});
  auto table = Calibrate(mlp, *Dataset::Create(x, Tensor(DataType::kInt64, {8})), {});
  ASSERT_TRUE(table.ok());
  CalibrationEntry typo = *table->Find("input");
  ASSERT_TRUE(table->Set("inptu", typo).ok());
  ExpectError(QuantizeModel(mlp, *table, {}).status(), absl::StatusCode::kInvalidArgument,
              "'inptu'");
}

// ---- Files on disk ------------------------------------------------------------------

TEST(BadInputCatalogue, TruncatedCheckpointOrFromAnotherModel) {
  // (Every truncation length: checkpoint_test; another model: trainer_test.)
  const std::string path = Temp("catalogue.ckpt");
  auto trainer = Trainer::Create(SmallTraining(), {});
  ASSERT_TRUE(SaveCheckpoint(path, (*trainer)->MakeCheckpoint()).ok());
  const std::string bytes = Read(path);
  Write(path, bytes.substr(0, bytes.size() - 10));
  ExpectError(LoadCheckpoint(path).status(), absl::StatusCode::kDataLoss, path);
  auto other = Trainer::Create(*BuildTrainingModels(*MakeMlp(), {}), {});
  ExpectError((*trainer)->RestoreCheckpoint((*other)->MakeCheckpoint()),
              absl::StatusCode::kInvalidArgument, "another model");
}

TEST(BadInputCatalogue, FullDiskKeepsThePreviousFile) {
  // A file-size limit makes writes fail as a full disk does.  (A read-only
  // folder cannot be simulated here: the tests run as root.)
  const std::string path = Temp("full_disk.ckpt");
  auto trainer = Trainer::Create(*BuildTrainingModels(*MakeMlp(), {}), {});
  Checkpoint small;
  small.parameters.emplace_back("w", Tensor(DataType::kFloat32, {4}));
  ASSERT_TRUE(SaveCheckpoint(path, small).ok());
  const std::string before = Read(path);
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 64 * 1024;  // the MLP's checkpoint is 1.6 MB
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  const absl::Status s = SaveCheckpoint(path, (*trainer)->MakeCheckpoint());
  setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(path)) << s;
  EXPECT_EQ(Read(path), before);  // the previous checkpoint is intact
  EXPECT_TRUE(LoadCheckpoint(path).ok());
}

// ---- Sizes that overflow, allocations that fail, threads (issue 13) --------------

// An .npy header as numpy writes it, with `data` after it.
std::string NpyBytes(const std::string& descr, const std::string& shape,
                     const std::string& data = "") {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" +
                       shape + "), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + data;
}

// y = Add(x, w) with an initializer w of `dims` and `raw` bytes of raw_data.
std::string ModelWithInitializer(const std::vector<int64_t>& dims, const std::string& raw) {
  GraphBuilder g;
  g.Input("x", kFloat, {1}).Output("y", kFloat, {});
  g.Node("Add", {"x", "w"}, {"y"});
  onnx::ModelProto proto = g.proto();
  proto.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto* w = proto.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) w->add_dims(d);
  w->set_raw_data(raw);
  return proto.SerializeAsString();
}

// An IDX file (gzip) with a header of `dims` and `data_bytes` zero bytes.
void WriteIdxGz(const std::string& path, const std::vector<uint32_t>& dims, size_t data_bytes) {
  gzFile f = gzopen(path.c_str(), "wb1");
  ASSERT_NE(f, nullptr);
  std::string header = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift : {24, 16, 8, 0}) header.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
  const std::string zeros(size_t{1} << 20, '\0');
  for (size_t left = data_bytes; left > 0;) {
    const size_t n = std::min(left, zeros.size());
    gzwrite(f, zeros.data(), static_cast<unsigned>(n));
    left -= n;
  }
  gzclose(f);
}

// Runs `body` in a forked child whose address space may grow by only
// `headroom` bytes, under a 60 s alarm (a hang fails the test as a signal).
// The child's exit code is body's return value.
int RunInChildWithAddressSpace(size_t headroom, const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(60);
    std::ifstream statm("/proc/self/statm");
    size_t pages = 0;
    statm >> pages;
    struct rlimit limit;
    limit.rlim_cur = limit.rlim_max = pages * static_cast<size_t>(sysconf(_SC_PAGESIZE)) + headroom;
    if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return -(WIFSIGNALED(status) ? WTERMSIG(status) : 1000);
  return WEXITSTATUS(status);
}

TEST(BadInputCatalogue, TensorDimsWhoseCountOverflowsAreRefused) {
  // (2^60, 784) wrapped to 0 elements and passed "the data size matches".
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{int64_t{1} << 60, 784}, {std::numeric_limits<int64_t>::max(), 3},
        {int64_t{1} << 62, 4}, {0, int64_t{1} << 62, int64_t{1} << 62}, {2, -1}}) {
    ExpectError(Tensor::Create(DataType::kFloat32, dims).status(),
                absl::StatusCode::kInvalidArgument, ShapeToString(dims));
    EXPECT_THROW(Tensor(DataType::kFloat32, dims), std::length_error) << ShapeToString(dims);
    EXPECT_EQ(NumElements(dims), -1) << ShapeToString(dims);
  }
  Tensor t(DataType::kFloat32, {2, 3});
  EXPECT_THROW(t.Resize(DataType::kFloat32, {int64_t{1} << 62, 4}), std::length_error);
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 3}));  // left as it was
  auto ok = Tensor::Create(DataType::kInt64, {0, int64_t{1} << 40});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->num_elements(), 0);
}

TEST(BadInputCatalogue, NpyWhoseShapeOverflows) {
  // A 128-byte file with shape (2^60, 784) and no data crashed `qat run`.
  const std::string path = Temp("overflow.npy");
  Write(path, NpyBytes("<f4", "1152921504606846976, 784"));
  ExpectError(ReadNpy(path).status(), absl::StatusCode::kInvalidArgument, path);
  EXPECT_THAT(std::string(ReadNpy(path).status().message()), HasSubstr("too large"));
  // Labels of (2^60,): calibrate and train aborted with std::length_error.
  const std::string labels = Temp("overflow_labels.npy");
  Write(labels, NpyBytes("<i8", "1152921504606846976,"));
  const std::string features = Temp("two_features.npy");
  ASSERT_TRUE(WriteNpy(features, Tensor(DataType::kFloat32, {2, 784})).ok());
  ExpectError(Dataset::FromNpy(features, labels).status(), absl::StatusCode::kInvalidArgument,
              labels);
}

TEST(BadInputCatalogue, InitializerWhoseDimsLieIsRefusedAtLoad) {
  // Each with 4 bytes of raw_data: [INT64_MAX, 3] wrapped and memset 2^64
  // bytes; [1<<40], [1<<33], [1<<20, 1<<20] threw bad_alloc; [1<<29]
  // allocated 2.1 GB first.  quantize copied them into its output.
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{std::numeric_limits<int64_t>::max(), 3}, {int64_t{1} << 40},
        {int64_t{1} << 33}, {1 << 20, 1 << 20}, {1 << 29}, {int64_t{1} << 62, 4}}) {
    for (bool check : {true, false}) {
      ModelLoadOptions options;
      options.check = options.infer_shapes = check;
      const absl::Status s =
          Model::FromBytes(ModelWithInitializer(dims, std::string(4, '\0')), "lying.onnx", options)
              .status();
      ExpectError(s, absl::StatusCode::kInvalidArgument, "'w'");
      EXPECT_THAT(std::string(s.message()), HasSubstr("lying.onnx"));
    }
  }
  QatModel* model = nullptr;
  const std::string bytes = ModelWithInitializer({1 << 29}, std::string(4, '\0'));
  QatStatus* s = qat_model_load_from_memory(&model, bytes.data(), bytes.size());
  EXPECT_EQ(qat_status_code(s), QAT_INVALID_ARGUMENT);
  EXPECT_EQ(model, nullptr);
  qat_status_free(s);
}

TEST(BadInputCatalogue, ExternalDataIsRefusedAtLoadByEveryStage) {
  // quantize exited 0 and wrote location=/etc/passwd into its output.
  for (const char* location : {"/etc/passwd", "../../etc/passwd"}) {
    const onnx::ModelProto proto = ModelWithExternalData(location);
    for (bool check : {true, false}) {
      ModelLoadOptions options;
      options.check = options.infer_shapes = check;
      const absl::Status s =
          Model::FromBytes(proto.SerializeAsString(), "external.onnx", options).status();
      ExpectError(s, absl::StatusCode::kUnimplemented, location);
      EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("'w'"), HasSubstr("external.onnx")));
    }
  }
}

TEST(BadInputCatalogue, ComputedShapesWhoseCountOverflows) {
  // Expand and Reshape to [2^62, 4] wrote an .npy of that shape with 0 bytes.
  for (const char* op : {"Expand", "Reshape"}) {
    GraphBuilder g;
    const bool reshape = std::string(op) == "Reshape";
    g.Input("x", kFloat, {reshape ? 0 : 1}).Output("y", kFloat, {-1, -1});
    g.Initializer("s", Tensor::FromValues<int64_t>({2}, {int64_t{1} << 62, 4}));
    g.Node(op, {"x", "s"}, {"y"});
    auto model = g.Build(/*check=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    auto exec = Executor::Create(*model);
    ASSERT_TRUE(exec.ok()) << exec.status();
    auto out = (*exec)->Run({{"x", Tensor(DataType::kFloat32, {reshape ? 0 : 1})}});
    ExpectError(out.status(), absl::StatusCode::kInvalidArgument, op);
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("too large")) << op;
  }
  // Add: two empty tensors whose broadcast [0, 2^40, 2^40] has inner sizes
  // that do not fit.
  GraphBuilder g;
  g.Input("a", kFloat, {0, int64_t{1} << 40, 1}).Input("b", kFloat, {0, 1, int64_t{1} << 40});
  g.Output("y", kFloat, {-1, -1, -1});
  g.Node("Add", {"a", "b"}, {"y"});
  auto model = g.Build(/*check=*/false);
  ASSERT_TRUE(model.ok()) << model.status();
  auto exec = Executor::Create(*model);
  ASSERT_TRUE(exec.ok()) << exec.status();
  auto out = (*exec)->Run({{"a", Tensor(DataType::kFloat32, {0, int64_t{1} << 40, 1})},
                           {"b", Tensor(DataType::kFloat32, {0, 1, int64_t{1} << 40})}});
  ExpectError(out.status(), absl::StatusCode::kInvalidArgument, "Add");
}

TEST(BadInputCatalogue, CAbiTensorWhoseCountOverflows) {
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{int64_t{1} << 60, 784}, {std::numeric_limits<int64_t>::max(), 3}}) {
    QatTensor* t = nullptr;
    QatStatus* s = qat_tensor_create(&t, QAT_FLOAT32, dims.data(), dims.size(), nullptr);
    EXPECT_EQ(qat_status_code(s), QAT_INVALID_ARGUMENT);
    EXPECT_THAT(qat_status_message(s), HasSubstr("too large"));
    EXPECT_EQ(t, nullptr);
    qat_status_free(s);
  }
}

TEST(BadInputCatalogue, ThreadCountsAboveTheCapAreRefused) {
  // --threads 5000 aborted with std::system_error; qat_calibrate_arrays with
  // 10000 threads deadlocked.
  const Model mlp = *MakeMlp();
  ExecutorOptions exec;
  exec.num_threads = 5000;
  ExpectError(Executor::Create(mlp, exec).status(), absl::StatusCode::kInvalidArgument, "5000");
  ExpectError(ThreadPool::Create(kMaxThreads + 1).status(), absl::StatusCode::kInvalidArgument,
              std::to_string(kMaxThreads));
  ExpectError(ThreadPool::Create(-1).status(), absl::StatusCode::kInvalidArgument, "-1");
  CalibrateOptions calibrate;
  calibrate.num_threads = 10000;
  auto data = Dataset::Create(Tensor(DataType::kFloat32, {2, 784}), Tensor(DataType::kInt64, {2}));
  ExpectError(Calibrate(mlp, *data, calibrate).status(), absl::StatusCode::kInvalidArgument,
              "CalibrateOptions::num_threads");
  TrainerOptions train;
  train.num_threads = 5000;
  ExpectError(Trainer::Create(SmallTraining(), train).status(),
              absl::StatusCode::kInvalidArgument, "TrainerOptions::num_threads");
  QatModel* model = nullptr;
  qat_status_free(qat_model_zoo(&model, "mlp", 0));
  QatTensor* features = nullptr;
  const int64_t shape[] = {2, 784};
  qat_status_free(qat_tensor_create(&features, QAT_FLOAT32, shape, 2, nullptr));
  QatCalibrateOptions options = QAT_CALIBRATE_OPTIONS_INIT;
  options.num_threads = 10000;
  QatCalibrationTable* table = nullptr;
  QatStatus* s = qat_calibrate_arrays(&table, model, features, &options);
  EXPECT_EQ(qat_status_code(s), QAT_INVALID_ARGUMENT);
  EXPECT_THAT(qat_status_message(s), HasSubstr("10000"));
  qat_status_free(s);
  qat_tensor_free(features);
  qat_model_free(model);
}

TEST(BadInputCatalogue, ThreadsThatCannotStartAreAStatusNotAHang) {
  // Each worker's stack is 8 MB of address space: with 48 MB of room, the
  // pool cannot start 256 of them.  The workers that did start must be
  // stopped and joined (the constructor used to unwind into a deadlock).
  const int rc = RunInChildWithAddressSpace(48 << 20, [] {
    auto pool = ThreadPool::Create(kMaxThreads);
    if (pool.ok()) return 1;
    if (pool.status().code() != absl::StatusCode::kResourceExhausted) return 2;
    if (std::string(pool.status().message()).find("cannot start") == std::string::npos) return 3;
    ExecutorOptions options;
    options.num_threads = kMaxThreads;
    auto exec = Executor::Create(*MakeMlp(), options);
    if (exec.ok() || exec.status().code() != absl::StatusCode::kResourceExhausted) return 4;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "negative: killed by that signal (SIGALRM " << SIGALRM << " is a hang)";
}

TEST(BadInputCatalogue, AllocationFailureIsAStatusAtEveryEntryPoint) {
  // A 256 MB IDX file (1 MB of gzip) and a 1 GB tensor in a child that may
  // grow by only 128 MB: each entry point returns ResourceExhausted.
  const std::string dir = Temp("idx_big");
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  WriteIdxGz(dir + "/train-images-idx3-ubyte.gz", {1 << 18, 32, 32}, size_t{1} << 28);
  WriteIdxGz(dir + "/train-labels-idx1-ubyte.gz", {1 << 18}, size_t{1} << 18);
  const int rc = RunInChildWithAddressSpace(128 << 20, [&] {
    auto exhausted = [](const absl::Status& s) {
      return s.code() == absl::StatusCode::kResourceExhausted;
    };
    if (!exhausted(Tensor::Create(DataType::kFloat32, {1 << 28}).status())) return 1;
    if (!exhausted(ReadIdx(dir + "/train-images-idx3-ubyte.gz").status())) return 2;
    IdxOptions idx;
    idx.example_shape = {1024};
    if (!exhausted(Dataset::FromIdx(dir, idx).status())) return 3;
    GraphBuilder g;
    g.Input("x", kFloat, {1}).Output("y", kFloat, {-1});
    g.Initializer("s", Tensor::FromValues<int64_t>({1}, {int64_t{1} << 28}));
    g.Node("Expand", {"x", "s"}, {"y"});
    auto model = g.Build(/*check=*/false);
    auto exec = Executor::Create(*model);
    if (!exec.ok()) return 4;
    auto out = (*exec)->Run({{"x", Tensor(DataType::kFloat32, {1})}});
    if (!exhausted(out.status())) return 5;
    if (std::string(out.status().message()).find("Expand") == std::string::npos) return 6;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "negative: killed by that signal";
}

TEST(BadInputCatalogue, IdxReadsOnlyWhatItNeedsAndNoMoreThanItsHeaderSays) {
  // A header of 1000 records followed by only 20: the whole file is
  // truncated, but its first 10 records read (calibrate --samples 10 and
  // eval --limit 10 used to inflate everything first).
  const std::string dir = Temp("idx_short");
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const std::string images = dir + "/train-images-idx3-ubyte.gz";
  WriteIdxGz(images, {1000, 28, 28}, 20 * 784);
  WriteIdxGz(dir + "/train-labels-idx1-ubyte.gz", {1000}, 20);
  ExpectError(ReadIdx(images).status(), absl::StatusCode::kInvalidArgument, "truncated");
  auto first = ReadIdx(images, 10);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->shape(), (std::vector<int64_t>{10, 28, 28}));
  IdxOptions options;
  options.limit = 10;
  auto data = Dataset::FromIdx(dir, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), 10);
  // More data than the header declares (a bomb behind a small header).
  const std::string longer = Temp("idx_longer.gz");
  WriteIdxGz(longer, {2}, 1 << 20);
  ExpectError(ReadIdx(longer).status(), absl::StatusCode::kInvalidArgument,
              "more data than its header declares");
}

TEST(BadInputCatalogue, EveryCalibrationMethodRefusesARangeFloatCannotHold) {
  // Features near +-3.4e38 (finite, but the range's width overflows
  // float): MSE silently dropped the input from the table.
  GraphBuilder g;
  g.Input("x", kFloat, {-1, 2}).Output("y", kFloat, {-1, 2});
  g.Initializer("W", Tensor(DataType::kFloat32, {2, 2}));
  g.Node("MatMul", {"x", "W"}, {"y"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  auto data = Dataset::Create(Tensor::FromValues<float>({2, 2}, {3.4e38f, -3.4e38f, 1.0f, -1.0f}),
                              Tensor(DataType::kInt64, {2}));
  ASSERT_TRUE(data.ok());
  for (CalibrationMethod method :
       {CalibrationMethod::kMinMax, CalibrationMethod::kMovingAverage,
        CalibrationMethod::kPercentile, CalibrationMethod::kEntropy, CalibrationMethod::kMse}) {
    CalibrateOptions options;
    options.method = method;
    const absl::Status s = Calibrate(*model, *data, options).status();
    ExpectError(s, absl::StatusCode::kInvalidArgument, "tensor 'x'");
    EXPECT_THAT(std::string(s.message()), HasSubstr("wider than float")) << s;
  }
}

// ---- Through the C ABI ---------------------------------------------------------------

TEST(BadInputCatalogue, NullHandlesAndPointersThroughTheCAbi) {
  // (Per function: capi_test.NullArgumentsAreNamed.)
  QatModel* model = nullptr;
  QatStatus* s = qat_model_load(&model, nullptr);
  EXPECT_EQ(qat_status_code(s), QAT_INVALID_ARGUMENT);
  EXPECT_THAT(qat_status_message(s), HasSubstr("path"));
  qat_status_free(s);
  s = qat_trainer_train_step(nullptr, nullptr, nullptr, nullptr);
  EXPECT_EQ(qat_status_code(s), QAT_INVALID_ARGUMENT);
  EXPECT_THAT(qat_status_message(s), HasSubstr("trainer"));
  qat_status_free(s);
}

}  // namespace
}  // namespace qat
