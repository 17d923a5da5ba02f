#include "qat/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/model_internal.h"
#include "core/onnx_tensor.h"
#include "passes/fold_batch_norm_qat.h"
#include "qat/checkpoint.h"
#include "qat/calibrate.h"
#include "qat/data_spec.h"
#include "qat/evaluate.h"
#include "qat/executor.h"
#include "qat/export.h"
#include "qat/model_zoo.h"
#include "qat/prepare.h"
#include "qat/quantize.h"
#include "qat/status_macros.h"
#include "qat/training_artifacts.h"

namespace qat {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The evaluations of the table: in batches of 256, on the test set's order.
constexpr int64_t kEvalBatch = 256;

// Median wall time of one Run on a batch of `batch` test examples, with one
// kernel thread (ONNX Runtime gets one too).
absl::StatusOr<double> LatencyMs(const Model& model, const Dataset& test, int64_t batch,
                                 double seconds) {
  ExecutorOptions options;
  options.num_threads = 1;
  QAT_ASSIGN_OR_RETURN(auto exec, Executor::Create(model, options));
  std::vector<int64_t> indices(static_cast<size_t>(std::min(batch, test.size())));
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, test.Bind(model.inputs(), false));
  std::map<std::string, Tensor> feeds;
  QAT_RETURN_IF_ERROR(test.Gather(indices, binding, &feeds));
  for (int i = 0; i < 5; ++i) QAT_RETURN_IF_ERROR(exec->Run(feeds).status());
  std::vector<double> times;
  const double begin = Now();
  while (times.size() < 10 || Now() - begin < seconds) {
    const double t0 = Now();
    QAT_RETURN_IF_ERROR(exec->Run(feeds).status());
    times.push_back(1e3 * (Now() - t0));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

absl::StatusOr<double> Accuracy(const Model& model, const Dataset& test, int threads) {
  EvaluateOptions options;
  options.batch_size = kEvalBatch;
  options.num_threads = threads;
  QAT_ASSIGN_OR_RETURN(EvalReport report, Evaluate(model, test, options));
  return report.accuracy;
}

// The activation input of the second node whose op type is in `op_types`
// (for the MLP: the ReLU output that the second Gemm reads, i.e. the first
// hidden activation).  NotFound when the model has fewer such nodes.
absl::StatusOr<std::string> SecondNodeInput(const Model& model,
                                            const std::vector<std::string>& op_types) {
  int seen = 0;
  for (const onnx::NodeProto& node : ModelAccess::Proto(model).graph().node()) {
    if (std::find(op_types.begin(), op_types.end(), node.op_type()) == op_types.end()) continue;
    if (++seen == 2 && node.input_size() > 0) return node.input(0);
  }
  return absl::NotFoundError(
      absl::StrCat("'", model.source(), "' has fewer than two quantizable nodes"));
}

// Every value `tensor` takes on the first `samples` examples of `data`.
absl::StatusOr<std::vector<float>> CollectActivation(const Model& model,
                                                     const std::string& tensor,
                                                     const Dataset& data, int64_t samples,
                                                     int threads) {
  QAT_ASSIGN_OR_RETURN(Model probe, model.WithOutputs({tensor}));
  ExecutorOptions options;
  options.num_threads = threads;
  QAT_ASSIGN_OR_RETURN(auto exec, Executor::Create(probe, options));
  QAT_ASSIGN_OR_RETURN(const InputBinding binding, data.Bind(probe.inputs(), false));
  const int64_t n = std::min(samples, data.size());
  const std::vector<int64_t> order = EpochOrder(data.size(), 0, 0, false);
  std::vector<float> values;
  std::map<std::string, Tensor> batch;
  for (int64_t begin = 0; begin < n; begin += kEvalBatch) {
    const int64_t end = std::min(n, begin + kEvalBatch);
    QAT_RETURN_IF_ERROR(
        data.Gather(absl::MakeConstSpan(order).subspan(begin, end - begin), binding, &batch));
    QAT_ASSIGN_OR_RETURN(auto out, exec->Run(batch));
    const Tensor& t = out.at(tensor);
    const float* p = t.data<float>();
    values.insert(values.end(), p, p + t.num_elements());
  }
  return values;
}

class Recipe {
 public:
  Recipe(const PipelineOptions& o, const PipelineHooks& hooks) : o_(o), hooks_(hooks) {}
  absl::StatusOr<PipelineResult> Run();

 private:
  std::string Path(const std::string& file) const { return absl::StrCat(o_.out, "/", file); }
  absl::Status SaveArtifact(const Model& model, const std::string& file) {
    QAT_RETURN_IF_ERROR(model.Save(Path(file)));
    result_.artifacts.push_back(file);
    return absl::OkStatus();
  }
  absl::Status ShowGraph(const std::string& name, const std::string& title,
                         const Model& model) {
    if (!hooks_.on_graph) return absl::OkStatus();
    QAT_ASSIGN_OR_RETURN(std::vector<std::string> files,
                         hooks_.on_graph(PipelineGraph{name, title, &model}));
    result_.artifacts.insert(result_.artifacts.end(), files.begin(), files.end());
    return absl::OkStatus();
  }
  // Trains `folder` through the (epochs, lr) phases, each a chained
  // TrainFolder call (a fresh AdamW, as chained `qat train` calls have),
  // evaluating on the test set after every epoch; with `evaluate_start`,
  // once before training too.  Phase k shuffles with seed + k.  Points are
  // numbered from `first_epoch`.
  absl::Status Train(const std::string& folder,
                     const std::vector<std::pair<int64_t, float>>& phases, uint64_t seed,
                     double first_epoch, bool evaluate_start, LrScheduleKind schedule,
                     StageCurve* curve);
  // The bits, table and training settings of one QAT row.
  struct QatSpec {
    int weight_bits = 8;
    int activation_bits = 8;
    const CalibrationTable* table = nullptr;
    CalibrationMethod method = CalibrationMethod::kPercentile;
    int64_t epochs = 1;
    double lr = 1e-4;
  };
  absl::StatusOr<PipelineRow> RunQat(const std::string& name, const std::string& stem,
                                     const QatSpec& spec, double first_epoch, Model* exported);
  absl::Status RunLowBitRows(double first_epoch);
  // The row's accuracy on the test set, or without labels its outputs
  // against the fp32 model's (PipelineRow::metrics).
  absl::Status Measure(const Model& model, PipelineRow* row) const;

  const PipelineOptions& o_;
  const PipelineHooks& hooks_;
  PipelineResult result_;
  std::unique_ptr<Dataset> train_, test_;
  std::vector<CalibrationTable> low_bit_tables_;
  // A model with training-mode BatchNormalization: itself with the fp32
  // run's parameters and running statistics, which QAT quantizes (so that
  // prepare folds its BatchNorms as QAT simulates them) with a table
  // calibrated on it; the PTQ rows quantize the fp32 export, whose
  // BatchNorms are in inference mode and fold before quantization.
  std::optional<Model> qat_source_;
};

absl::Status Recipe::Measure(const Model& model, PipelineRow* row) const {
  if (result_.labelled) {
    QAT_ASSIGN_OR_RETURN(row->accuracy, Accuracy(model, *test_, o_.threads));
    return absl::OkStatus();
  }
  EvaluateOptions options;
  options.batch_size = kEvalBatch;
  options.num_threads = o_.threads;
  QAT_ASSIGN_OR_RETURN(ModelMetrics m,
                       EvaluateOutputs(model, *test_, &result_.models[0], options));
  row->metrics = std::move(m.outputs);
  return absl::OkStatus();
}

// `model` with the initializers that `params` names replaced.
absl::StatusOr<Model> WithParameters(const Model& model,
                                     const std::map<std::string, Tensor>& params) {
  ArenaModelProto proto = ModelAccess::CopyProto(model);
  for (auto& t : *proto->mutable_graph()->mutable_initializer()) {
    auto it = params.find(t.name());
    if (it != params.end()) MoveTensorProto(TensorToProto(it->second, t.name()), &t);
  }
  return ModelAccess::FromProto(std::move(proto), model.source() + " (trained)");
}

absl::Status Recipe::Train(const std::string& folder,
                           const std::vector<std::pair<int64_t, float>>& phases, uint64_t seed,
                           double first_epoch, bool evaluate_start, LrScheduleKind schedule,
                           StageCurve* curve) {
  int64_t total_epochs = 0, done = 0;
  for (const auto& phase : phases) total_epochs += phase.first;
  for (size_t k = 0; k < phases.size(); ++k) {
    const float lr = phases[k].second;
    TrainFolderOptions options;
    options.epochs = phases[k].first;
    options.batch = o_.batch;
    options.lr = lr;
    options.schedule = schedule;  // decaying schedules reach 0 at the phase's end
    options.seed = seed + k;
    options.threads = o_.threads;
    // The folder's checkpoint at epoch ends only: the recipe runs to the end
    // (a stopped pipeline starts again), and saving costs time.
    options.save_every = std::numeric_limits<int64_t>::max();
    TrainFolderHooks hooks;
    hooks.eval_data = test_.get();
    hooks.eval_batch = kEvalBatch;
    hooks.eval_before_training = k == 0 && evaluate_start;
    hooks.on_step = [&](const TrainFolderStep& s) {
      if (hooks_.on_step) hooks_.on_step({curve->name, done + 1, total_epochs, lr, s});
      return absl::OkStatus();
    };
    hooks.on_epoch = [&](const TrainFolderEpoch& e) {
      ++done;
      const EpochPoint point{first_epoch + static_cast<double>(done), e.mean_train_loss,
                             e.eval->loss, e.eval->accuracy};
      curve->points.push_back(point);
      if (hooks_.on_epoch) hooks_.on_epoch({curve->name, done, point});
      return absl::OkStatus();
    };
    QAT_ASSIGN_OR_RETURN(TrainFolderResult r, TrainFolder(folder, *train_, options, hooks));
    if (r.eval_before) {  // the first phase's: before every epoch point
      curve->points.insert(curve->points.begin(), {first_epoch, -1.0, r.eval_before->loss,
                                                   r.eval_before->accuracy});
    }
  }
  return absl::OkStatus();
}

// One QAT run: quantize fp32 with the QAT table (float weights behind QDQ),
// prepare (QDQ -> FakeQuant), train, export.
absl::StatusOr<PipelineRow> Recipe::RunQat(const std::string& name, const std::string& stem,
                                           const QatSpec& spec, double first_epoch,
                                           Model* exported_out) {
  const double t0 = Now();
  const Model fp32 = qat_source_ ? *qat_source_ : result_.models[0];
  const int weight_bits = spec.weight_bits;
  QuantizeOptions qo;
  qo.per_channel = true;
  qo.weight_bits = weight_bits;
  qo.activation_bits = spec.activation_bits;
  QAT_ASSIGN_OR_RETURN(Model qdq, QuantizeModel(fp32, *spec.table, qo));
  QAT_RETURN_IF_ERROR(SaveArtifact(qdq, absl::StrCat("qdq_", stem.substr(4), ".onnx")));
  PrepareOptions po;
  po.graph.learn_quant_params = o_.learn_quant_params;
  // No labels: distill from the fp32 model (MSE on every output).
  if (!result_.labelled) po.graph.teacher = &fp32;
  const std::string folder = Path(stem);
  QAT_RETURN_IF_ERROR(Prepare(qdq, folder, po).status());
  result_.artifacts.push_back(stem + "/");
  if (weight_bits == 8 && spec.activation_bits == 8 && hooks_.on_graph) {
    QAT_RETURN_IF_ERROR(ShowGraph("graph_qdq", "QDQ model (int8, float weights)", qdq));
    QAT_ASSIGN_OR_RETURN(Model training,
                         Model::Load(absl::StrCat(folder, "/", kTrainingModelFile)));
    QAT_RETURN_IF_ERROR(ShowGraph("graph_fakequant_training",
                                  "FakeQuant training graph (loss and gradients)", training));
  }
  StageCurve curve{name};
  if (spec.epochs > 0) {
    // The 8-bit-activation rows keep their seeds; the others add theirs.
    const uint64_t seed = o_.seed + 100 + static_cast<uint64_t>(weight_bits) +
                          (spec.activation_bits == 8 ? 0 : 10 * spec.activation_bits);
    QAT_RETURN_IF_ERROR(Train(folder, {{spec.epochs, static_cast<float>(spec.lr)}}, seed,
                              first_epoch, true, o_.qat_schedule, &curve));
  }
  // Opset 13 for every row (W4A8 too), so that the table's rows stay those
  // of earlier releases; `qat export` writes W4A8 at opset 21, packed.
  ExportOptions export_options;
  export_options.opset = 13;
  QAT_ASSIGN_OR_RETURN(Model exported, ExportFolder(folder, export_options));
  const std::string file = stem + ".onnx";
  QAT_RETURN_IF_ERROR(SaveArtifact(exported, file));
  PipelineRow row(name, file);
  const QuantRange wr = QuantRangeForBits(true, weight_bits, true, false);
  row.recipe = absl::StrFormat(
      "%s calibration, %d-bit per-channel weights, %s activations; QAT%s %lld epoch(s) AdamW "
      "lr %g (%s), quantization parameters %s; exported as QDQ%s",
      CalibrationMethodName(spec.method), weight_bits,
      spec.activation_bits == 8 ? std::string("uint8")
                                : absl::StrFormat("%d-bit unsigned", spec.activation_bits),
      result_.labelled ? "" : " by distillation (no labels: MSE to the fp32 model's outputs)",
      static_cast<long long>(spec.epochs), spec.lr, LrScheduleKindName(o_.qat_schedule),
      o_.learn_quant_params ? "learned (LSQ)" : "fixed",
      weight_bits < 8 || spec.activation_bits < 8
          ? absl::StrFormat(" (sub-8-bit values in int8/uint8 initializers; before training, "
                            "Q -> Clip -> DQ at opset 13, weights Clip(%d, %d))",
                            wr.quant_min, wr.quant_max)
          : "");
  if (!curve.points.empty()) {
    row.start_accuracy = curve.points.front().test_accuracy;
    result_.curves.push_back(curve);
  }
  QAT_RETURN_IF_ERROR(Measure(exported, &row));
  row.seconds = Now() - t0;
  *exported_out = exported;
  return row;
}

// Issue 15's rows: PTQ and QAT at W4A4, W2A8 and W3A3, each from a table
// calibrated at its own bits.
absl::Status Recipe::RunLowBitRows(double first_epoch) {
  const Model fp32 = result_.models[0];
  low_bit_tables_.reserve(6);  // RunQat keeps a pointer to each
  for (const auto& [wbits, abits] : {std::pair<int, int>{4, 4}, {2, 8}, {3, 3}}) {
    const std::string tag = absl::StrFormat("w%da%d", wbits, abits);
    double t0 = Now();
    CalibrateOptions co;
    co.method = o_.low_bit_method;
    co.max_samples = o_.calibration_samples;
    co.per_channel_weights = true;
    co.num_threads = o_.threads;
    co.weight_bits = wbits;
    co.activation_bits = abits;
    QAT_ASSIGN_OR_RETURN(CalibrationTable table, Calibrate(fp32, *train_, co));
    const std::string table_file = absl::StrCat("calibration_", tag, ".json");
    QAT_RETURN_IF_ERROR(table.Save(Path(table_file)));
    result_.artifacts.push_back(table_file);
    low_bit_tables_.push_back(std::move(table));
    const CalibrationTable* ptq_table = &low_bit_tables_.back();
    if (qat_source_) {  // QAT quantizes the training-mode model
      QAT_ASSIGN_OR_RETURN(CalibrationTable qat_table, Calibrate(*qat_source_, *train_, co));
      low_bit_tables_.push_back(std::move(qat_table));
    }
    QuantizeOptions qo;
    qo.per_channel = true;
    qo.weights_as_int8 = true;
    qo.weight_bits = wbits;
    qo.activation_bits = abits;
    QAT_ASSIGN_OR_RETURN(Model ptq, QuantizeModel(fp32, *ptq_table, qo));
    const std::string ptq_file = absl::StrCat("ptq_", tag, ".onnx");
    QAT_RETURN_IF_ERROR(SaveArtifact(ptq, ptq_file));
    PipelineRow ptq_row(absl::StrCat("ptq ", tag), ptq_file);
    ptq_row.recipe = absl::StrFormat(
        "%s calibration at W%dA%d on %lld training samples, %d-bit per-channel weights, "
        "%d-bit unsigned activations",
        CalibrationMethodName(o_.low_bit_method), wbits, abits,
        static_cast<long long>(o_.calibration_samples), wbits, abits);
    QAT_RETURN_IF_ERROR(Measure(ptq, &ptq_row));
    ptq_row.seconds = Now() - t0;
    result_.rows.push_back(ptq_row);
    result_.models.push_back(ptq);

    QatSpec spec;
    spec.weight_bits = wbits;
    spec.activation_bits = abits;
    spec.table = &low_bit_tables_.back();
    spec.method = o_.low_bit_method;
    spec.epochs = o_.low_bit_qat_epochs;
    spec.lr = o_.low_bit_qat_lr;
    Model exported = fp32;
    QAT_ASSIGN_OR_RETURN(PipelineRow row, RunQat(absl::StrCat("qat ", tag),
                                                 absl::StrCat("qat_", tag), spec, first_epoch,
                                                 &exported));
    result_.rows.push_back(row);
    result_.models.push_back(exported);
  }
  return absl::OkStatus();
}

absl::StatusOr<PipelineResult> Recipe::Run() {
  std::error_code ec;
  std::filesystem::create_directories(o_.out, ec);
  if (!std::filesystem::is_directory(o_.out)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create the folder '", o_.out, "'", ec ? ": " + ec.message() : ""));
  }

  // 1. The fp32 model: the user's, or a zoo model trained here.
  std::optional<Model> loaded;
  if (!o_.model_path.empty()) {
    QAT_ASSIGN_OR_RETURN(loaded, Model::Load(o_.model_path));
  } else {
    QAT_ASSIGN_OR_RETURN(loaded, MakeZooModel(o_.zoo));
  }
  const Model& model = *loaded;
  DataSpecOptions train_spec, test_spec;
  train_spec.limit = o_.limit;
  test_spec.split = "test";
  test_spec.limit = o_.test_limit;
  QAT_ASSIGN_OR_RETURN(Dataset train, LoadDataSpec(o_.data, model, train_spec));
  QAT_ASSIGN_OR_RETURN(Dataset test, LoadDataSpec(o_.data, model, test_spec));
  train_ = std::make_unique<Dataset>(std::move(train));
  test_ = std::make_unique<Dataset>(std::move(test));
  result_.labelled = train_->has_labels() && test_->has_labels();
  result_.example_shape = test_->features().shape();
  result_.example_shape.erase(result_.example_shape.begin());
  QAT_RETURN_IF_ERROR(SaveArtifact(model, "untrained.onnx"));

  // 2. fp32 training: AdamW 1e-3 for `epochs`, then one epoch at 1e-4
  // (labelled data only: without labels the model is the teacher as given).
  double t0 = Now();
  result_.models.push_back(model);
  if (o_.epochs > 0 && result_.labelled) {
    QAT_RETURN_IF_ERROR(Prepare(model, Path("fp32")).status());
    result_.artifacts.push_back("fp32/");
    StageCurve curve{"fp32"};
    QAT_RETURN_IF_ERROR(Train(Path("fp32"), {{o_.epochs, 1e-3f}, {1, 1e-4f}}, o_.seed, 0.0,
                              false, LrScheduleKind::kConstant, &curve));
    QAT_ASSIGN_OR_RETURN(result_.models[0], ExportFolder(Path("fp32")));
    result_.curves.push_back(curve);
  }
  if (passes::HasTrainingBatchNorm(ModelAccess::Proto(model))) {
    qat_source_ = model;
    if (o_.epochs > 0) {
      QAT_ASSIGN_OR_RETURN(Checkpoint trained,
                           LoadCheckpoint(Path("fp32") + "/" + kCheckpointFile));
      QAT_ASSIGN_OR_RETURN(qat_source_, WithParameters(model, ExportedParameters(trained)));
    }
  }
  const Model fp32 = result_.models[0];  // result_.models grows below
  const double fp32_epochs = result_.curves.empty() ? 0.0 : result_.curves[0].points.back().epoch;
  QAT_RETURN_IF_ERROR(SaveArtifact(fp32, "fp32.onnx"));
  QAT_RETURN_IF_ERROR(ShowGraph("graph_fp32", "fp32 model", fp32));
  PipelineRow fp32_row("fp32", "fp32.onnx");
  fp32_row.recipe = !result_.labelled ? "as given (the data has no labels: the model is the "
                                        "teacher and the reference of every row)"
                    : o_.epochs > 0
                        ? absl::StrFormat("AdamW lr 1e-3 for %lld epoch(s), then 1 epoch at 1e-4, "
                                          "batch %lld",
                                          static_cast<long long>(o_.epochs),
                                          static_cast<long long>(o_.batch))
                        : "as given (--epochs 0)";
  QAT_RETURN_IF_ERROR(Measure(fp32, &fp32_row));
  fp32_row.seconds = Now() - t0;
  result_.rows.push_back(fp32_row);

  // 3. Calibration and post-training quantization (int8 weights stored).
  t0 = Now();
  CalibrateOptions co;
  co.method = o_.ptq_method;
  co.max_samples = o_.calibration_samples;
  co.per_channel_weights = true;
  co.num_threads = o_.threads;
  QAT_ASSIGN_OR_RETURN(result_.ptq_table, Calibrate(fp32, *train_, co));
  QAT_RETURN_IF_ERROR(result_.ptq_table.Save(Path("calibration.json")));
  result_.artifacts.push_back("calibration.json");
  QuantizeOptions qo;
  qo.per_channel = true;
  qo.weights_as_int8 = true;
  QAT_ASSIGN_OR_RETURN(Model ptq, QuantizeModel(fp32, result_.ptq_table, qo));
  QAT_RETURN_IF_ERROR(SaveArtifact(ptq, "ptq_int8.onnx"));
  PipelineRow ptq_row("ptq int8", "ptq_int8.onnx");
  ptq_row.recipe = absl::StrFormat(
      "%s calibration on %lld training samples, int8 per-channel weights, uint8 activations",
      CalibrationMethodName(o_.ptq_method), static_cast<long long>(o_.calibration_samples));
  QAT_RETURN_IF_ERROR(Measure(ptq, &ptq_row));
  ptq_row.seconds = Now() - t0;
  result_.rows.push_back(ptq_row);
  result_.models.push_back(ptq);

  // 4. QAT int8 and W4A8, from the QAT calibration table.
  result_.qat_table = result_.ptq_table;
  if (qat_source_) {
    co.method = o_.qat_method;
    QAT_ASSIGN_OR_RETURN(result_.qat_table, Calibrate(*qat_source_, *train_, co));
    QAT_RETURN_IF_ERROR(result_.qat_table.Save(Path("calibration_qat.json")));
    result_.artifacts.push_back("calibration_qat.json");
  } else if (o_.qat_method != o_.ptq_method) {
    co.method = o_.qat_method;
    QAT_ASSIGN_OR_RETURN(result_.qat_table, Calibrate(fp32, *train_, co));
    QAT_RETURN_IF_ERROR(result_.qat_table.Save(Path("calibration_qat.json")));
    result_.artifacts.push_back("calibration_qat.json");
  }
  struct QatStage {
    const char* name;
    const char* stem;
    int weight_bits;
  };
  for (const QatStage& stage : {QatStage{"qat int8", "qat_int8", 8},
                                QatStage{"qat w4a8", "qat_w4a8", 4}}) {
    Model exported = fp32;
    QatSpec spec;
    spec.weight_bits = stage.weight_bits;
    spec.table = &result_.qat_table;
    spec.method = o_.qat_method;
    spec.epochs = o_.qat_epochs;
    spec.lr = o_.qat_lr;
    QAT_ASSIGN_OR_RETURN(PipelineRow row, RunQat(stage.name, stage.stem, spec, fp32_epochs,
                                                 &exported));
    QAT_RETURN_IF_ERROR(ShowGraph(absl::StrCat("graph_", stage.stem, "_exported"),
                                  absl::StrCat("exported ", stage.name, " QDQ model"), exported));
    result_.rows.push_back(row);
    result_.models.push_back(exported);
  }

  if (o_.low_bit_rows) QAT_RETURN_IF_ERROR(RunLowBitRows(fp32_epochs));

  // 5. The activation that a histogram shows, on the calibration samples.
  QAT_ASSIGN_OR_RETURN(result_.activation.tensor,
                       SecondNodeInput(result_.models[0], {"MatMul", "Gemm", "Conv"}));
  QAT_ASSIGN_OR_RETURN(result_.activation.values,
                       CollectActivation(result_.models[0], result_.activation.tensor, *train_,
                                         o_.calibration_samples, o_.threads));

  // 6. File sizes and latencies.
  for (size_t i = 0; i < result_.rows.size(); ++i) {
    PipelineRow& row = result_.rows[i];
    const auto bytes = std::filesystem::file_size(Path(row.file), ec);
    row.bytes = ec ? 0 : static_cast<size_t>(bytes);
    QAT_ASSIGN_OR_RETURN(row.latency_ms,
                         LatencyMs(result_.models[i], *test_, o_.batch, o_.latency_seconds));
  }
  return std::move(result_);
}

}  // namespace

absl::StatusOr<PipelineResult> RunPipeline(const PipelineOptions& options,
                                           const PipelineHooks& hooks) {
  Recipe recipe(options, hooks);
  return recipe.Run();
}

}  // namespace qat
