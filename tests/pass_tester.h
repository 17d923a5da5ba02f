// PassTester: the harness every graph pass is tested with (after ONNX
// Runtime's TransformerTester and onnxoptimizer's _optimized/_compare).
//
//   PassTester t;
//   t.Input("x", {2, 4}).Weight("W", {4, 3})
//    .Node("MatMul", {"x", "W"}, {"y"})
//    .Output("y", {2, 3});
//   passes::FoldConstantsPass pass;
//   t.Apply(pass)                        // checker + shape inference before and after
//    .ExpectChanged(false)
//    .ExpectOutputsNear(0.0, 0.0)        // untransformed vs transformed, same seeded inputs
//    .ExpectOpDelta("MatMul", 0);
//
// It builds a tiny graph with seeded weights, loads it as the library does
// (onnx::checker and shape inference, so a pass sees inferred shapes),
// runs the pass on a copy, runs onnx::checker and strict shape inference on
// the result, runs both graphs in libqat's executor on the same seeded
// random inputs (inputs only the transformed graph has, such as `labels`,
// get seeded values too), and compares the outputs both graphs have, by
// name, within explicit tolerances: |after - before| <= abs + rel * |before|,
// reporting the first element that differs.  Op counts say what the pass
// added and removed.  A failed expectation is a test failure (ADD_FAILURE);
// the chain keeps going, so one run reports every mismatch.
#ifndef QAT_TESTS_PASS_TESTER_H_
#define QAT_TESTS_PASS_TESTER_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "graph/graph_editor.h"
#include "graph/graph_pass.h"
#include "graph/pass_pipeline.h"
#include "graph_builder.h"
#include "gtest/gtest.h"
#include "onnx/onnx_pb.h"
#include "qat/executor.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {

class PassTester {
 public:
  // A graph importing the default domain at `opset`; weights and inputs
  // are drawn from a generator seeded with `seed`.
  explicit PassTester(int64_t opset = 13, uint32_t seed = 1) : rng_(seed) {
    model_.set_ir_version(8);
    model_.mutable_graph()->set_name("pass_tester");
    Opset("", opset);
  }
  // A pass error nobody expected is a failure.
  ~PassTester() {
    if (!changed_.ok() && applied_ && !error_expected_) {
      ADD_FAILURE() << "the pass failed: " << changed_.status();
    }
  }

  // --- Building the graph -------------------------------------------------
  PassTester& Opset(const std::string& domain, int64_t version) {
    auto* op = model_.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
    return *this;
  }
  // A graph input of fixed dims; float values are uniform in [lo, hi).
  PassTester& Input(const std::string& name, std::vector<int64_t> dims,
                    int elem_type = onnx::TensorProto::FLOAT, float lo = -1.0f,
                    float hi = 1.0f) {
    GraphBuilder::Declare(model_.mutable_graph()->add_input(), name, elem_type, dims);
    float_ranges_[name] = {lo, hi};
    return *this;
  }
  PassTester& Output(const std::string& name, std::vector<int64_t> dims,
                     int elem_type = onnx::TensorProto::FLOAT) {
    GraphBuilder::Declare(model_.mutable_graph()->add_output(), name, elem_type, dims);
    return *this;
  }
  // Integer inputs (labels, indices), of either graph, take values in
  // [0, max).
  PassTester& IntRange(const std::string& name, int64_t max) {
    int_ranges_[name] = max;
    return *this;
  }
  // A float initializer with seeded values uniform in [lo, hi).
  PassTester& Weight(const std::string& name, std::vector<int64_t> dims, float lo = -1.0f,
                     float hi = 1.0f) {
    return Initializer(name, Random(dims, lo, hi));
  }
  PassTester& Initializer(const std::string& name, const Tensor& value) {
    *model_.mutable_graph()->add_initializer() = TensorToProto(value, name);
    return *this;
  }
  PassTester& Node(const std::string& op, std::vector<std::string> inputs,
                   std::vector<std::string> outputs,
                   std::vector<onnx::AttributeProto> attrs = {},
                   const std::string& domain = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_domain(domain);
    n->set_name(op + "_" + std::to_string(model_.graph().node_size()));
    for (auto& i : inputs) n->add_input(std::move(i));
    for (auto& o : outputs) n->add_output(std::move(o));
    for (auto& a : attrs) *n->add_attribute() = std::move(a);
    return *this;
  }
  // The graph being built, for what the helpers above do not cover.
  onnx::ModelProto& proto() { return model_; }

  // --- Running a pass -----------------------------------------------------
  using Transform = std::function<absl::StatusOr<bool>(onnx::ModelProto*)>;

  // Loads the graph (checker, shape inference), runs `transform` on a copy
  // and checks the result.  A transform error is a failure unless
  // ExpectError follows.
  PassTester& Apply(const Transform& transform) {
    absl::StatusOr<Model> before =
        ModelAccess::FromProto(model_, "pass_tester.onnx");
    if (!before.ok()) {
      ADD_FAILURE() << "the graph before the pass is invalid: " << before.status();
      return *this;
    }
    before_ = ModelAccess::Proto(*before);
    after_ = *before_;
    applied_ = true;
    changed_ = transform(&*after_);
    if (!changed_.ok()) return *this;
    if (absl::Status s = passes::CheckInvariants(*after_); !s.ok()) {
      ADD_FAILURE() << "the graph after the pass is invalid: " << s;
      after_.reset();
    }
    return *this;
  }
  PassTester& Apply(passes::GraphPass& pass) {
    return Apply([&pass](onnx::ModelProto* m) { return pass.Run(m); });
  }
  PassTester& Apply(const passes::PassPipeline& pipeline) {
    return Apply([&pipeline](onnx::ModelProto* m) { return pipeline.Run(m); });
  }

  // --- Expectations -------------------------------------------------------
  PassTester& ExpectError(const std::string& substring) {
    error_expected_ = true;
    if (changed_.ok()) {
      ADD_FAILURE() << "the pass succeeded; expected an error containing '" << substring
                    << "'";
    } else {
      EXPECT_NE(changed_.status().message().find(substring), std::string::npos)
          << changed_.status();
    }
    return *this;
  }
  PassTester& ExpectChanged(bool changed) {
    if (Ok()) {
      EXPECT_EQ(*changed_, changed);
    }
    return *this;
  }
  // Every output both graphs have (or those named), on the same inputs.
  PassTester& ExpectOutputsNear(double abs_tol, double rel_tol,
                                std::vector<std::string> names = {}) {
    if (!Ok()) return *this;
    const auto b = RunBefore(), a = RunAfter();
    if (names.empty()) {
      for (const auto& [name, value] : b) {
        if (a.count(name) != 0) names.push_back(name);
      }
    }
    EXPECT_FALSE(names.empty()) << "the two graphs have no output in common";
    for (const std::string& name : names) {
      if (b.count(name) == 0 || a.count(name) == 0) {
        ADD_FAILURE() << "output '" << name << "' is missing before or after the pass";
        continue;
      }
      ExpectNear(name, b.at(name), a.at(name), abs_tol, rel_tol);
    }
    return *this;
  }
  // count(after) - count(before) for nodes of that op type (any domain).
  PassTester& ExpectOpDelta(const std::string& op, int delta) {
    if (Ok()) {
      EXPECT_EQ(Count(*after_, op) - Count(*before_, op), delta) << op;
    }
    return *this;
  }
  PassTester& ExpectOpCount(const std::string& op, int count) {
    if (Ok()) {
      EXPECT_EQ(Count(*after_, op), count) << op;
    }
    return *this;
  }
  // Present before, gone after.
  PassTester& ExpectRemoved(const std::string& op) {
    if (!Ok()) return *this;
    EXPECT_GT(Count(*before_, op), 0) << op << " was not there to begin with";
    EXPECT_EQ(Count(*after_, op), 0) << op;
    return *this;
  }
  PassTester& ExpectNodeDelta(int delta) {
    if (Ok()) {
      EXPECT_EQ(after_->graph().node_size() - before_->graph().node_size(), delta);
    }
    return *this;
  }

  // --- Access -------------------------------------------------------------
  bool Ok() const { return after_.has_value() && changed_.ok(); }
  const absl::StatusOr<bool>& changed() const { return changed_; }
  const onnx::ModelProto& before() const { return *before_; }
  const onnx::ModelProto& after() const { return *after_; }
  // The seeded inputs both runs use (made on first use, then kept).
  const std::map<std::string, Tensor>& inputs() {
    if (inputs_.empty()) MakeInputs();
    return inputs_;
  }
  std::map<std::string, Tensor> RunBefore() { return Execute(*before_); }
  std::map<std::string, Tensor> RunAfter() { return Execute(*after_); }

  static int Count(const onnx::ModelProto& m, const std::string& op) {
    int count = 0;
    for (const auto& n : m.graph().node()) count += n.op_type() == op;
    return count;
  }
  static void ExpectNear(const std::string& what, const Tensor& expected, const Tensor& actual,
                         double abs_tol, double rel_tol) {
    ASSERT_EQ(expected.shape(), actual.shape()) << what;
    ASSERT_EQ(expected.dtype(), actual.dtype()) << what;
    if (expected.dtype() != DataType::kFloat32) {
      ASSERT_EQ(std::memcmp(expected.raw_data(), actual.raw_data(), expected.num_bytes()), 0)
          << what << " differs";
      return;
    }
    const auto e = expected.values<float>(), a = actual.values<float>();
    for (size_t i = 0; i < e.size(); ++i) {
      const bool same_nan = std::isnan(e[i]) && std::isnan(a[i]);
      const double limit = abs_tol + rel_tol * std::fabs(e[i]);
      if (!same_nan && !(std::fabs(static_cast<double>(a[i]) - e[i]) <= limit)) {
        ADD_FAILURE() << what << "[" << i << "]: expected " << e[i] << ", got " << a[i]
                      << " (tolerance " << limit << ")";
        return;
      }
    }
  }
  Tensor Random(const std::vector<int64_t>& dims, float lo, float hi) {
    Tensor t(DataType::kFloat32, dims);
    std::uniform_real_distribution<float> u(lo, hi);
    for (float& v : t.values<float>()) v = u(rng_);
    return t;
  }

 private:
  // Values for the non-initializer inputs of both graphs.
  void MakeInputs() {
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (const onnx::ModelProto* m : {&*before_, &*after_}) {
      absl::StatusOr<Model> model =
          ModelAccess::FromProto(*m, "pass_tester.onnx", ModelLoadOptions{false, false});
      if (!model.ok()) continue;
      for (const ValueInfo& v : model->inputs()) {
        if (inputs_.count(v.name) != 0) continue;
        std::vector<int64_t> dims = v.shape;
        for (int64_t& d : dims) d = d < 0 ? 1 : d;
        Tensor t(v.dtype == DataType::kUndefined ? DataType::kFloat32 : v.dtype, dims);
        if (t.dtype() == DataType::kFloat32) {
          auto range = float_ranges_.count(v.name) ? float_ranges_.at(v.name)
                                                   : std::pair<float, float>{-1.0f, 1.0f};
          for (float& x : t.values<float>()) x = range.first + (range.second - range.first) * unit(rng_);
        } else if (t.dtype() == DataType::kInt64) {
          const int64_t max = int_ranges_.count(v.name) ? int_ranges_.at(v.name) : 1;
          std::uniform_int_distribution<int64_t> u(0, max - 1);
          for (int64_t i = 0; i < t.num_elements(); ++i) t.data<int64_t>()[i] = u(rng_);
        } else if (t.dtype() == DataType::kBool) {
          for (int64_t i = 0; i < t.num_elements(); ++i) t.data<bool>()[i] = true;
        }
        inputs_.emplace(v.name, std::move(t));
      }
    }
  }

  std::map<std::string, Tensor> Execute(const onnx::ModelProto& m) {
    absl::StatusOr<Model> model = ModelAccess::FromProto(m, "pass_tester.onnx");
    if (!model.ok()) {
      ADD_FAILURE() << model.status();
      return {};
    }
    ExecutorOptions options;
    options.num_threads = 1;
    absl::StatusOr<std::unique_ptr<Executor>> exec = Executor::Create(*model, options);
    if (!exec.ok()) {
      ADD_FAILURE() << exec.status();
      return {};
    }
    std::map<std::string, Tensor> feed;
    for (const ValueInfo& v : (*exec)->inputs()) feed.emplace(v.name, inputs().at(v.name));
    absl::StatusOr<std::map<std::string, Tensor>> out = (*exec)->Run(feed);
    if (!out.ok()) {
      ADD_FAILURE() << out.status();
      return {};
    }
    return *std::move(out);
  }

  onnx::ModelProto model_;
  std::mt19937 rng_;
  std::map<std::string, std::pair<float, float>> float_ranges_;
  std::map<std::string, int64_t> int_ranges_;
  std::optional<onnx::ModelProto> before_, after_;
  absl::StatusOr<bool> changed_ = absl::UnknownError("Apply() has not run");
  bool applied_ = false, error_expected_ = false;
  std::map<std::string, Tensor> inputs_;
};

}  // namespace qat

#endif  // QAT_TESTS_PASS_TESTER_H_
