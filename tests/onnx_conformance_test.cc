// Runs ONNX's own backend test cases (Debian's libonnx-testdata) through the
// executor and compares the outputs the way ONNX's backend tests do.
//
// Every case under data/{node,pytorch-converted,pytorch-operator,simple} is
// either run or skipped with a reason that is printed: a case is skipped when
// one of its ops (at the model's opset) is not in the executor's manifest, or
// when one of its graph inputs or outputs has a type libqat does not support
// (float16, string, sequences, ...).  Every case that runs must pass, except
// the ones listed in kKnownFailures below with the reason; a listed case that
// starts passing fails the test too, so the list stays true.
//
// Environment: QAT_CONFORMANCE_FILTER=substring runs only matching cases;
// QAT_CONFORMANCE_VERBOSE=1 prints every case.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"
#include "gtest/gtest.h"
#include "core/model_internal.h"
#include "exec/ops/registry.h"
#include "qat/executor.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {
namespace {

namespace fs = std::filesystem;

constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-7;

// Cases of supported ops that do not pass yet, with the reason.
const std::map<std::string, std::string>& KnownFailures() {
  // ONNX made these outputs with numpy's random generator; the executor has
  // its own (counter-based, deterministic per seed and run), so the dropped
  // elements differ.  executor_test checks Dropout's training-mode
  // statistics and determinism instead.
  static const std::string kNumpyRng =
      "training-mode Dropout: expected outputs come from numpy's RNG";
  static const auto* const failures = new std::map<std::string, std::string>{
      {"test_training_dropout", kNumpyRng},
      {"test_training_dropout_default", kNumpyRng},
      {"test_training_dropout_default_mask", kNumpyRng},
      {"test_training_dropout_mask", kNumpyRng},
      // ONNX's generator computed the expected values with epsilon 1e-2 but
      // left the attribute off the node, whose default is 1e-6.
      {"test_adam_multiple", "expected outputs use an epsilon the node does not set"},
  };
  return *failures;
}

// Why the nodes of `graph` (and of its subgraphs: If's branches, Loop's
// body) cannot run, or "" when they can.
std::string UnsupportedNode(const onnx::GraphProto& graph,
                            const std::map<std::string, int64_t>& opsets) {
  for (const auto& node : graph.node()) {
    const std::string domain = node.domain() == "ai.onnx" ? "" : node.domain();
    const int64_t opset = opsets.count(domain) ? opsets.at(domain) : -1;
    if (exec::FindOp(domain, node.op_type(), opset) == nullptr) {
      for (const exec::OpEntry& entry : exec::AllOps()) {
        if (domain == entry.domain && node.op_type() == entry.op_type) {
          return absl::StrCat("op ", node.op_type(), " at opset ", opset,
                              " (supported from opset ", entry.since_opset, ")");
        }
      }
      if (domain == "ai.onnx.preview.training" && node.op_type() == "Gradient") {
        // A meta-op: it asks the runtime to differentiate its graph.
        return "op Gradient (a request to differentiate, not an op libqat runs)";
      }
      return absl::StrCat("op ", node.op_type(), " (not supported)");
    }
    for (const auto& attr : node.attribute()) {
      if (!attr.has_g()) continue;
      if (auto r = UnsupportedNode(attr.g(), opsets); !r.empty()) {
        return absl::StrCat(r, " in a subgraph");
      }
    }
  }
  return "";
}

// The name of a graph input or output type that libqat cannot bind
// ("float16", "string", "sequence", "optional", ...), short and stable since
// skip reasons are counted by their text.
std::string TypeName(const onnx::TypeProto& type) {
  switch (type.value_case()) {
    case onnx::TypeProto::kTensorType: {
      const int32_t code = type.tensor_type().elem_type();
      if (!onnx::TensorProto::DataType_IsValid(code)) return absl::StrCat("tensor type ", code);
      return absl::AsciiStrToLower(onnx::TensorProto::DataType_Name(code));
    }
    case onnx::TypeProto::kSequenceType: return "sequence";
    case onnx::TypeProto::kMapType: return "map";
    case onnx::TypeProto::kOptionalType: return "optional";
    case onnx::TypeProto::kSparseTensorType: return "sparse tensor";
    case onnx::TypeProto::kOpaqueType: return "opaque";
    case onnx::TypeProto::VALUE_NOT_SET: break;
  }
  return "no type";
}

// Why a case cannot run, or "" when it can.
std::string SkipReason(const onnx::ModelProto& model) {
  std::map<std::string, int64_t> opsets;
  for (const auto& opset : model.opset_import()) {
    opsets[opset.domain() == "ai.onnx" ? "" : opset.domain()] = opset.version();
  }
  if (auto r = UnsupportedNode(model.graph(), opsets); !r.empty()) return r;
  auto check_type = [](const onnx::ValueInfoProto& value) -> std::string {
    if (ValueInfoFromProto(value).dtype == DataType::kUndefined) {
      return absl::StrCat("a graph input or output of type ", TypeName(value.type()),
                          " (not supported)");
    }
    return "";
  };
  for (const auto& v : model.graph().input()) {
    if (auto r = check_type(v); !r.empty()) return r;
  }
  for (const auto& v : model.graph().output()) {
    if (auto r = check_type(v); !r.empty()) return r;
  }
  return "";
}

// Compares one output; returns "" when it matches.
std::string Compare(const std::string& name, const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype()) {
    return absl::StrCat(name, ": dtype ", DataTypeName(got.dtype()), ", want ",
                        DataTypeName(want.dtype()));
  }
  if (got.shape() != want.shape()) {
    return absl::StrCat(name, ": shape ", ShapeToString(got.shape()), ", want ",
                        ShapeToString(want.shape()));
  }
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    double g = 0;
    double w = 0;
    switch (got.dtype()) {
      case DataType::kFloat32: g = got.data<float>()[i]; w = want.data<float>()[i]; break;
      case DataType::kFloat64: g = got.data<double>()[i]; w = want.data<double>()[i]; break;
      case DataType::kInt64: g = got.data<int64_t>()[i]; w = want.data<int64_t>()[i]; break;
      case DataType::kInt32: g = got.data<int32_t>()[i]; w = want.data<int32_t>()[i]; break;
      case DataType::kInt8: g = got.data<int8_t>()[i]; w = want.data<int8_t>()[i]; break;
      case DataType::kUInt8: g = got.data<uint8_t>()[i]; w = want.data<uint8_t>()[i]; break;
      case DataType::kBool: g = got.data<bool>()[i]; w = want.data<bool>()[i]; break;
      case DataType::kUndefined: break;
    }
    if (std::isnan(g) && std::isnan(w)) continue;
    if (g == w) continue;  // covers equal infinities
    if (!(std::fabs(g - w) <= kAtol + kRtol * std::fabs(w))) {
      return absl::StrCat(name, "[", i, "] = ", g, ", want ", w);
    }
  }
  return "";
}

// Runs every data set of a case; returns "" on success, else the first problem.
std::string RunCase(const fs::path& dir) {
  auto model = Model::Load((dir / "model.onnx").string());
  if (!model.ok()) return std::string(model.status().message());
  auto executor = Executor::Create(*model);
  if (!executor.ok()) return std::string(executor.status().message());
  const auto& inputs = (*executor)->inputs();
  const auto& outputs = (*executor)->outputs();

  std::vector<fs::path> data_sets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory()) data_sets.push_back(entry.path());
  }
  std::sort(data_sets.begin(), data_sets.end());
  if (data_sets.empty()) return "no test_data_set_* directory";
  for (const fs::path& data : data_sets) {
    std::map<std::string, Tensor> feed;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const fs::path file = data / absl::StrCat("input_", i, ".pb");
      if (!fs::exists(file)) continue;  // an omitted optional input
      auto tensor = ReadTensorProtoFile(file.string());
      if (!tensor.ok()) return std::string(tensor.status().message());
      feed[inputs[i].name] = *std::move(tensor);
    }
    auto result = (*executor)->Run(feed);
    if (!result.ok()) return std::string(result.status().message());
    for (size_t i = 0; i < outputs.size(); ++i) {
      auto want = ReadTensorProtoFile((data / absl::StrCat("output_", i, ".pb")).string());
      if (!want.ok()) return std::string(want.status().message());
      std::string diff = Compare(outputs[i].name, result->at(outputs[i].name), *want);
      if (!diff.empty()) return absl::StrCat(data.filename().string(), ": ", diff);
    }
  }
  return "";
}

TEST(OnnxConformanceTest, NodeTestsPass) {
  const fs::path root = QAT_ONNX_TESTDATA_DIR;
  ASSERT_TRUE(fs::is_directory(root)) << root << " is missing; install libonnx-testdata";
  const char* filter_env = std::getenv("QAT_CONFORMANCE_FILTER");
  const std::string filter = filter_env != nullptr ? filter_env : "";
  const bool verbose = std::getenv("QAT_CONFORMANCE_VERBOSE") != nullptr;

  int passed = 0, failed = 0, skipped = 0;
  // The same counts per suite, for the summary (ONNX's conformance goal is
  // about the node suite).
  struct Counts {
    int passed = 0, failed = 0, skipped = 0;
  };
  std::map<std::string, Counts> by_suite;
  std::map<std::string, int> skip_reasons;
  std::vector<std::string> unexpected_failures, unexpected_passes;
  std::set<std::string> seen;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::vector<fs::path> cases;
    for (const auto& entry : fs::directory_iterator(root / suite)) {
      cases.push_back(entry.path());
    }
    std::sort(cases.begin(), cases.end());
    Counts& counts = by_suite[suite];
    for (const fs::path& dir : cases) {
      const std::string name = dir.filename().string();
      if (name.find(filter) == std::string::npos) continue;
      seen.insert(name);
      onnx::ModelProto proto;
      auto bytes = ReadFileToString((dir / "model.onnx").string());
      std::string reason = "unreadable model.onnx";
      if (bytes.ok() && proto.ParseFromString(*bytes)) reason = SkipReason(proto);
      if (!reason.empty()) {
        ++skipped;
        ++counts.skipped;
        ++skip_reasons[reason];
        if (verbose) std::printf("SKIP %s: %s\n", name.c_str(), reason.c_str());
        continue;
      }
      const std::string problem = RunCase(dir);
      const bool known = KnownFailures().count(name) > 0;
      if (problem.empty()) {
        ++passed;
        ++counts.passed;
        if (known) unexpected_passes.push_back(name);
        if (verbose) std::printf("PASS %s\n", name.c_str());
      } else {
        ++failed;
        ++counts.failed;
        if (!known) unexpected_failures.push_back(absl::StrCat(name, ": ", problem));
        if (verbose || !known) {
          std::printf("FAIL %s: %s\n", name.c_str(), problem.c_str());
        }
      }
    }
  }
  std::printf("skipped cases by reason:\n");
  for (const auto& [reason, count] : skip_reasons) {
    std::printf("  %4d  %s\n", count, reason.c_str());
  }
  for (const auto& [suite, counts] : by_suite) {
    std::printf("%s: %d passed, %d failed, %d skipped\n", suite.c_str(), counts.passed,
                counts.failed, counts.skipped);
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);

  EXPECT_TRUE(unexpected_failures.empty())
      << "cases that fail and are not in kKnownFailures:\n  "
      << absl::StrJoin(unexpected_failures, "\n  ");
  EXPECT_TRUE(unexpected_passes.empty())
      << "cases in kKnownFailures that now pass; remove them:\n  "
      << absl::StrJoin(unexpected_passes, "\n  ");
  if (filter.empty()) {
    for (const auto& [name, reason] : KnownFailures()) {
      EXPECT_TRUE(seen.count(name) > 0) << "kKnownFailures lists unknown case " << name;
    }
    // The goal of issue 14: at least 90% of the node cases pass, and of all
    // cases; what is left is named above by reason.
    const Counts& node = by_suite["node"];
    const int node_total = node.passed + node.failed + node.skipped;
    EXPECT_GE(10 * node.passed, 9 * node_total)
        << node.passed << " of " << node_total << " node cases pass";
    EXPECT_GE(10 * passed, 9 * (passed + failed + skipped))
        << passed << " of " << passed + failed + skipped << " cases pass";
  }
}

}  // namespace
}  // namespace qat

namespace qat {
namespace {

// Tensor `t` with dimension `dim` grown by one (zero-filled), or a rank-1
// tensor when t is a scalar.
Tensor Perturb(const Tensor& t, size_t dim) {
  std::vector<int64_t> shape = t.shape();
  if (shape.empty()) shape.push_back(2);
  else shape[dim % shape.size()] += 1;
  return Tensor(t.dtype(), shape);
}

// Feeds every supported node test inputs of the wrong shape, with the
// model's declared shapes removed so that only the kernels can object.  Any
// status is fine; crashing, or an error code other than InvalidArgument or
// Unimplemented, is not.
TEST(OnnxConformanceTest, WrongShapesNeverCrash) {
  const fs::path root = fs::path(QAT_ONNX_TESTDATA_DIR) / "node";
  ASSERT_TRUE(fs::is_directory(root));
  int runs = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    const fs::path dir = entry.path();
    onnx::ModelProto proto;
    auto bytes = ReadFileToString((dir / "model.onnx").string());
    if (!bytes.ok() || !proto.ParseFromString(*bytes) || !SkipReason(proto).empty()) continue;
    for (auto& input : *proto.mutable_graph()->mutable_input()) {
      input.mutable_type()->mutable_tensor_type()->clear_shape();
    }
    ModelLoadOptions options;
    options.check = false;
    options.infer_shapes = false;
    auto model = Model::FromBytes(proto.SerializeAsString(), dir.string(), options);
    ASSERT_TRUE(model.ok()) << model.status();
    auto executor = Executor::Create(*model);
    if (!executor.ok()) continue;
    const auto& inputs = (*executor)->inputs();
    for (size_t victim = 0; victim < inputs.size(); ++victim) {
      for (size_t dim = 0; dim < 2; ++dim) {
        std::map<std::string, Tensor> feed;
        for (size_t i = 0; i < inputs.size(); ++i) {
          auto t = ReadTensorProtoFile(
              (dir / "test_data_set_0" / absl::StrCat("input_", i, ".pb")).string());
          if (!t.ok()) continue;
          feed[inputs[i].name] = i == victim ? Perturb(*t, dim) : *std::move(t);
        }
        auto result = (*executor)->Run(feed);
        ++runs;
        if (!result.ok()) {
          const auto code = result.status().code();
          EXPECT_TRUE(code == absl::StatusCode::kInvalidArgument ||
                      code == absl::StatusCode::kUnimplemented)
              << dir.filename() << ": " << result.status();
        }
      }
    }
  }
  EXPECT_GT(runs, 500);
}

}  // namespace
}  // namespace qat
