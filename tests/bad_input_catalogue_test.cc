// The bad-input catalogue (issue 8): one test per way users hand libqat bad
// input.  Each asserts the error code and that the message names the
// culprit.  Some cases are covered in depth elsewhere (noted); they are
// repeated here in one line so that the catalogue is complete in one place.
#include <sys/resource.h>

#include <csignal>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "qat/calibrate.h"
#include "qat/calibration_table.h"
#include "qat/checkpoint.h"
#include "qat/executor.h"
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

TEST(BadInputCatalogue, UnsupportedOp) {
  GraphBuilder g;
  g.Input("x", kFloat, {2}).Output("y", kFloat, {2});
  g.Node("Erf", {"x"}, {"y"});
  auto model = g.Build();
  ASSERT_TRUE(model.ok()) << model.status();
  ExpectError(Executor::Create(*model).status(), absl::StatusCode::kUnimplemented, "Erf");
}

TEST(BadInputCatalogue, ExternalDataWhoseFileIsMissing) {
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
  entry->set_value("weights_that_are_not_there.bin");
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
