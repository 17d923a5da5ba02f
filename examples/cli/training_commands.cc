// qat prepare, train, grad and export.
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/export.h"
#include "qat/model_zoo.h"
#include "qat/prepare.h"
#include "qat/train_folder.h"
#include "qat/training_artifacts.h"

namespace qat_cli {

int ZooCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, {"--out", "--seed", "--opset"}, {}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) {
    return Usage("zoo needs a model name: mlp, lenet5, resnet8 or mobilenetv2");
  }
  if (!args.Has("--out")) return Usage("zoo needs -o OUT.onnx");
  int64_t seed = 0, opset = 0;  // 0: the model's own default opset
  if (!IntFlag(args, "--seed", 0, &seed) || !IntFlag(args, "--opset", 1, &opset)) {
    return Usage("bad --seed or --opset");
  }
  absl::StatusOr<qat::Model> model =
      qat::MakeZooModel(args.positional[0], static_cast<uint64_t>(seed), opset);
  if (absl::IsInvalidArgument(model.status())) return Usage(std::string(model.status().message()));
  if (!model.ok()) return Fail(model.status());
  if (absl::Status s = model->Save(args.Get("--out", "")); !s.ok()) return Fail(s);
  return 0;
}

int PrepareCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--out", "--loss", "--reduction", "--frozen", "--trainable",
                  "--ignore-index", "--quant-params", "--output", "--teacher", "--distill",
                  "--distill-outputs", "--distill-weights", "--distill-tensors", "--temperature",
                  "--label-weight"},
                 {"--accumulate-gradients"}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("prepare needs one model");
  if (!args.Has("--out")) return Usage("prepare needs -o DIR");
  const std::string quant_params = args.Get("--quant-params", "fixed");
  if (quant_params != "fixed" && quant_params != "learn" && quant_params != "observe") {
    return Usage("--quant-params must be fixed, observe or learn");
  }
  qat::PrepareOptions prepare;
  qat::TrainingGraphOptions& options = prepare.graph;
  options.learn_quant_params = quant_params == "learn";
  options.observe_quant_params = quant_params == "observe";
  auto loss = qat::ParseLossKind(args.Get("--loss", "cross-entropy"));
  if (!loss.ok()) return Usage(std::string(loss.status().message()));
  options.loss.kind = *loss;
  const std::string reduction = args.Get("--reduction", "mean");
  if (reduction != "mean" && reduction != "sum") return Usage("--reduction must be mean or sum");
  options.loss.reduction =
      reduction == "sum" ? qat::LossReduction::kSum : qat::LossReduction::kMean;
  options.loss.output = args.Get("--output", "");
  if (args.Has("--ignore-index")) {
    int64_t ignore = 0;
    if (!IntFlag(args, "--ignore-index", INT64_MIN, &ignore)) return Usage("bad --ignore-index");
    options.loss.ignore_index = ignore;
  }
  options.frozen = ListFlag(args, "--frozen");
  options.trainable = ListFlag(args, "--trainable");
  options.accumulate_gradients = args.On("--accumulate-gradients");

  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  // Distillation: --teacher, or --distill with the teacher the model records.
  std::optional<qat::Model> teacher;
  if (args.Has("--teacher") || args.Has("--distill")) {
    std::string path = args.Get("--teacher", "");
    if (path.empty()) {
      auto recorded = qat::RecordedTeacher(*model);
      if (!recorded.ok()) return Fail(recorded.status());
      path = *recorded;
    }
    auto loaded = qat::Model::Load(path);
    if (!loaded.ok()) return Fail(loaded.status());
    teacher = *std::move(loaded);
    options.teacher = &*teacher;
    auto kind = qat::ParseDistillKind(args.Get("--distill", "mse"));
    if (!kind.ok()) return Usage(std::string(kind.status().message()));
    double temperature = 1.0, label_weight = 0.0;
    if (args.Has("--temperature") && !FloatFlag(args, "--temperature", 1e-6, &temperature)) {
      return Usage("bad --temperature (> 0)");
    }
    if (args.Has("--label-weight") && !FloatFlag(args, "--label-weight", 0.0, &label_weight)) {
      return Usage("bad --label-weight (>= 0)");
    }
    std::vector<std::string> outputs = ListFlag(args, "--distill-outputs");
    if (outputs.empty()) {
      for (const qat::ValueInfo& v : model->outputs()) outputs.push_back(v.name);
    }
    const std::vector<std::string> weights = ListFlag(args, "--distill-weights");
    if (!weights.empty() && weights.size() != outputs.size()) {
      return Usage("--distill-weights needs one weight per distilled output");
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      qat::DistillTerm term;
      term.student = outputs[i];
      term.kind = *kind;
      term.temperature = static_cast<float>(temperature);
      if (!weights.empty()) {
        double w = 0.0;
        if (!absl::SimpleAtod(weights[i], &w) || !(w >= 0.0)) {
          return Usage("bad --distill-weights: " + weights[i]);
        }
        term.weight = static_cast<float>(w);
      }
      options.loss.distill.terms.push_back(term);
    }
    for (const std::string& t : ListFlag(args, "--distill-tensors")) {
      options.loss.distill.terms.push_back({t});  // feature distillation: mse, weight 1
    }
    options.loss.distill.label_weight = static_cast<float>(label_weight);
  }
  const std::string dir = args.Get("--out", "");
  auto summary = qat::Prepare(*model, dir, prepare);
  if (!summary.ok()) return Fail(summary.status());
  for (const std::string& w : summary->warnings) {
    std::fprintf(stderr, "qat: warning: %s\n", w.c_str());
  }
  int64_t total = 0;
  for (int64_t n : summary->param_elements) total += n;
  const std::string loss_name =
      teacher && !options.loss.distill.terms.empty()
          ? std::string("distillation (") +
                    qat::DistillKindName(options.loss.distill.terms.front().kind) + ")"
              : qat::LossKindName(summary->loss);
  std::printf("wrote %s/{%s,%s,%s}: %zu trainable parameters (%lld elements), loss %s\n",
              dir.c_str(), qat::kTrainingModelFile, qat::kEvalModelFile, qat::kCheckpointFile,
              summary->params.size(), static_cast<long long>(total), loss_name.c_str());
  for (size_t i = 0; i < summary->params.size(); ++i) {
    std::printf("  %s %lld\n", summary->params[i].c_str(),
                static_cast<long long>(summary->param_elements[i]));
  }
  return 0;
}

int TrainCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--epochs", "--batch", "--optimizer", "--lr", "--schedule",
                  "--warmup", "--momentum", "--weight-decay", "--max-grad-norm", "--seed",
                  "--threads", "--limit", "--save-every", "--observe-steps", "--freeze-bn-steps",
                  "--batch-shards"},
                 {"--resume", "--nesterov", "--sync-bn"}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("train needs the folder that prepare wrote");
  const std::string dir = args.positional[0];
  // Flags that are not given stay unset: the defaults for a new run, the
  // stored settings with --resume (qat/train_folder.h).
  qat::TrainFolderOptions options;
  options.resume = args.On("--resume");
  options.sync_batch_norm = args.On("--sync-bn");
  bool numbers_ok = true;
  auto int_flag = [&](const char* flag, int64_t min, std::optional<int64_t>* out) {
    int64_t v = 0;
    if (!args.Has(flag)) return;
    if (IntFlag(args, flag, min, &v)) *out = v; else numbers_ok = false;
  };
  auto float_flag = [&](const char* flag, double min, std::optional<double>* out) {
    double v = 0;
    if (!args.Has(flag)) return;
    if (FloatFlag(args, flag, min, &v)) *out = v; else numbers_ok = false;
  };
  std::optional<int64_t> seed, threads;
  int_flag("--epochs", 1, &options.epochs);
  int_flag("--batch", 1, &options.batch);
  int_flag("--warmup", 0, &options.warmup);
  int_flag("--threads", 0, &threads);
  int_flag("--limit", 0, &options.limit);
  int_flag("--seed", 0, &seed);
  int_flag("--observe-steps", 0, &options.observe_steps);
  int_flag("--freeze-bn-steps", 0, &options.freeze_bn_steps);
  float_flag("--lr", 0.0, &options.lr);
  float_flag("--momentum", 0.0, &options.momentum);
  float_flag("--weight-decay", 0.0, &options.weight_decay);
  float_flag("--max-grad-norm", 0.0, &options.max_grad_norm);
  int64_t save_every = options.save_every, batch_shards = options.batch_shards;
  numbers_ok = numbers_ok && IntFlag(args, "--save-every", 1, &save_every) &&
               IntFlag(args, "--batch-shards", 1, &batch_shards) && batch_shards <= 1 << 20;
  if (!numbers_ok) return Usage("a numeric option is out of range or does not parse");
  options.save_every = save_every;
  options.batch_shards = static_cast<int>(batch_shards);
  if (seed) options.seed = static_cast<uint64_t>(*seed);
  if (threads) options.threads = static_cast<int>(*threads);
  if (args.Has("--optimizer")) {
    auto kind = qat::ParseOptimizerKind(args.Get("--optimizer", ""));
    if (!kind.ok()) return Usage(std::string(kind.status().message()));
    options.optimizer = *kind;
  }
  if (args.Has("--schedule")) {
    auto schedule = qat::ParseLrScheduleKind(args.Get("--schedule", ""));
    if (!schedule.ok()) return Usage(std::string(schedule.status().message()));
    options.schedule = *schedule;
  }
  if (args.On("--nesterov")) options.nesterov = true;
  if (args.Has("--data")) options.data = args.Get("--data", "");
  // Under `mpirun -np N` (N > 1): data-parallel over MPI_COMM_WORLD, and
  // only rank 0 prints (docs/training.md).
  if (qat::LaunchedByMpirun()) {
    auto world = qat::MpiWorld();
    if (!world.ok()) return Fail(world.status());
    options.collective = *world;
  }
  const bool quiet = options.collective && options.collective->rank() != 0;

  std::unique_ptr<Progress> bar;
  qat::TrainFolderHooks hooks;
  hooks.on_step = [&](const qat::TrainFolderStep& s) {
    if (quiet) return absl::OkStatus();
    const qat::StepReport& r = s.step;
    if (!bar || r.step_in_epoch == 0) {
      bar = std::make_unique<Progress>(absl::StrCat("epoch ", r.epoch + 1, "/", s.epochs),
                                       r.steps_per_epoch);
    }
    bar->Update(r.step_in_epoch + 1,
                absl::StrFormat("loss %.4f lr %.2e", s.epoch_mean_loss, r.lr));
    return absl::OkStatus();
  };
  hooks.on_epoch = [&](const qat::TrainFolderEpoch& e) {
    if (quiet) return absl::OkStatus();
    std::printf("epoch %lld/%lld: mean training loss %.4f\n", static_cast<long long>(e.epoch),
                static_cast<long long>(e.epochs), e.mean_train_loss);
    std::fflush(stdout);
    return absl::OkStatus();
  };
  auto result = qat::TrainFolder(dir, options, hooks);
  if (!result.ok()) {
    if (qat::IsSettingError(result.status())) {
      return Usage(std::string(result.status().message()));
    }
    return Fail(result.status());
  }
  if (quiet) return 0;
  std::printf("{\"epochs\": %lld, \"steps\": %lld, \"checkpoint\": \"%s\"}\n",
              static_cast<long long>(result->epochs), static_cast<long long>(result->steps),
              result->checkpoint.c_str());
  return 0;
}

int GradCommand(int argc, char** argv) {
  if (argc < 1) return Usage("grad needs a training model");
  auto model = qat::Model::Load(argv[0]);
  if (!model.ok()) return Fail(model.status());
  const std::vector<qat::ValueInfo> outputs = model->outputs();
  if (outputs.empty() || outputs[0].name != qat::kLossOutput) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "'", argv[0], "' is not a training model: its first output is not 'loss'")));
  }
  return RunCommand(argc, argv);  // writes loss.npy and every <param>_grad.npy
}

int ExportCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, {"--out", "--opset"}, {"--keep-float-weights", "--uint8-block-scales"},
                 &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("export needs the folder that prepare wrote");
  if (!args.Has("--out")) return Usage("export needs -o OUT.onnx");
  qat::ExportOptions options;
  options.keep_float_weights = args.On("--keep-float-weights");
  // Snap block scales that training moved to uint8 codes times a step.
  options.uint8_block_scales = args.On("--uint8-block-scales");
  // Default: 21 for 4-bit or block-wise weights (packed INT4), 13 otherwise.
  if (args.Has("--opset")) {
    int64_t opset = 0;
    if (!IntFlag(args, "--opset", 13, &opset) || (opset != 13 && opset != 21)) {
      return Usage("--opset must be 13 or 21");
    }
    options.opset = static_cast<int>(opset);
  }
  // A model without FakeQuant exports as a plain float inference model.
  auto exported = qat::ExportFolder(args.positional[0], options);
  if (!exported.ok()) return Fail(exported.status());
  const std::string out = args.Get("--out", "");
  if (absl::Status s = exported->Save(out); !s.ok()) return Fail(s);
  std::printf("wrote %s (%zu bytes)\n", out.c_str(), exported->Serialize().size());
  return 0;
}

}  // namespace qat_cli
