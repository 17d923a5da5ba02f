// qat prepare, train, grad and export.
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "qat/checkpoint.h"
#include "qat/model_zoo.h"
#include "qat/qdq_conversion.h"
#include "qat/trainer.h"
#include "qat/training_artifacts.h"
#include "qat/training_graph.h"

namespace qat_cli {
namespace {

// Run settings kept in the checkpoint's metadata, so that --resume continues
// with exactly the settings of the interrupted run.
const char* const kRunKeys[] = {"epochs", "batch", "optimizer", "lr", "schedule", "warmup",
                                "momentum", "weight-decay", "max-grad-norm", "seed", "data",
                                "limit", "observe-steps"};

}  // namespace

int ZooCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, {"--out", "--seed", "--opset"}, {}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("zoo needs a model name: mlp or lenet5");
  if (!args.Has("--out")) return Usage("zoo needs -o OUT.onnx");
  int64_t seed = 0, opset = 13;
  if (!IntFlag(args, "--seed", 0, &seed) || !IntFlag(args, "--opset", 1, &opset)) {
    return Usage("bad --seed or --opset");
  }
  absl::StatusOr<qat::Model> model;
  if (args.positional[0] == "mlp") {
    qat::MlpSpec spec;
    spec.seed = static_cast<uint64_t>(seed);
    spec.opset = opset;
    model = qat::MakeMlp(spec);
  } else if (args.positional[0] == "lenet5") {
    model = qat::MakeLeNet5({static_cast<uint64_t>(seed), opset});
  } else {
    return Usage(absl::StrCat("unknown zoo model '", args.positional[0], "'; mlp or lenet5"));
  }
  if (!model.ok()) return Fail(model.status());
  if (absl::Status s = qat::SaveModel(*model, args.Get("--out", "")); !s.ok()) return Fail(s);
  return 0;
}

int PrepareCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--out", "--loss", "--reduction", "--frozen", "--ignore-index",
                  "--quant-params", "--output"},
                 {"--accumulate-gradients"}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("prepare needs one model");
  if (!args.Has("--out")) return Usage("prepare needs -o DIR");
  const std::string quant_params = args.Get("--quant-params", "fixed");
  if (quant_params != "fixed" && quant_params != "learn" && quant_params != "observe") {
    return Usage("--quant-params must be fixed, observe or learn");
  }
  qat::TrainingGraphOptions options;
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
  options.frozen = SplitList(args.Get("--frozen", ""));
  options.accumulate_gradients = args.On("--accumulate-gradients");

  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  // A QDQ model trains through FakeQuant; a float model trains as it is.
  std::vector<std::string> warnings;
  auto fused = qat::FuseQdqToFakeQuant(*model, &warnings);
  if (!fused.ok()) return Fail(fused.status());
  for (const std::string& w : warnings) std::fprintf(stderr, "qat: warning: %s\n", w.c_str());
  auto models = qat::BuildTrainingModels(*fused, options);
  if (!models.ok()) return Fail(models.status());
  const std::string dir = args.Get("--out", "");
  if (absl::Status s = qat::SaveTrainingArtifacts(dir, *models); !s.ok()) return Fail(s);
  std::printf("wrote %s/{%s,%s,%s}: %zu trainable parameters, loss %s\n", dir.c_str(),
              qat::kTrainingModelFile, qat::kEvalModelFile, qat::kCheckpointFile,
              models->params.size(), qat::LossKindName(options.loss.kind));
  return 0;
}

int TrainCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--epochs", "--batch", "--optimizer", "--lr", "--schedule",
                  "--warmup", "--momentum", "--weight-decay", "--max-grad-norm", "--seed",
                  "--threads", "--limit", "--save-every", "--observe-steps"},
                 {"--resume", "--nesterov"}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("train needs the folder that prepare wrote");
  const std::string dir = args.positional[0];
  const std::string ckpt_path = dir + "/" + qat::kCheckpointFile;
  auto models = qat::LoadTrainingModels(dir);
  if (!models.ok()) return Fail(models.status());
  auto checkpoint = qat::LoadCheckpoint(ckpt_path);
  if (!checkpoint.ok()) return Fail(checkpoint.status());

  // With --resume the interrupted run's settings win; a flag that says
  // otherwise is an error rather than a silent change.
  if (args.On("--resume")) {
    if (checkpoint->optimizer.empty()) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "'", ckpt_path, "' holds no interrupted run to resume; drop --resume")));
    }
    for (const char* key : kRunKeys) {
      const std::string flag = absl::StrCat("--", key);
      auto it = checkpoint->metadata.find(absl::StrCat("run.", key));
      if (it == checkpoint->metadata.end()) continue;
      if (args.Has(flag) && args.Get(flag, "") != it->second) {
        return Usage(absl::StrCat(flag, " ", args.Get(flag, ""), " differs from the run being "
                                  "resumed (", it->second, ")"));
      }
      args.flags[flag] = it->second;
    }
  }
  if (!args.Has("--data")) return Usage("train needs --data DIR (IDX) or FEATURES.npy,LABELS.npy");

  int64_t epochs = 1, batch = 64, warmup = 0, threads = 0, limit = 0, save_every = 100;
  int64_t seed = 0, observe_steps = -1;
  double lr = 1e-3, momentum = 0.0, weight_decay = -1.0, max_grad_norm = 0.0;
  if (!IntFlag(args, "--epochs", 1, &epochs) || !IntFlag(args, "--batch", 1, &batch) ||
      !IntFlag(args, "--warmup", 0, &warmup) || !IntFlag(args, "--threads", 0, &threads) ||
      !IntFlag(args, "--limit", 0, &limit) || !IntFlag(args, "--save-every", 1, &save_every) ||
      !IntFlag(args, "--seed", 0, &seed) || !FloatFlag(args, "--lr", 0.0, &lr) ||
      !FloatFlag(args, "--momentum", 0.0, &momentum) ||
      !FloatFlag(args, "--weight-decay", 0.0, &weight_decay) ||
      !FloatFlag(args, "--max-grad-norm", 0.0, &max_grad_norm) ||
      !IntFlag(args, "--observe-steps", 0, &observe_steps)) {
    return Usage("a numeric option is out of range or does not parse");
  }
  if (args.Has("--observe-steps") && !models->observe_quant_params) {
    return Usage("--observe-steps needs a folder prepared with --quant-params observe");
  }
  qat::TrainerOptions options;
  auto kind = qat::ParseOptimizerKind(args.Get("--optimizer", "adamw"));
  if (!kind.ok()) return Usage(std::string(kind.status().message()));
  options.optimizer.kind = *kind;
  options.optimizer.momentum = static_cast<float>(momentum);
  options.optimizer.nesterov = args.On("--nesterov");
  options.optimizer.weight_decay = static_cast<float>(weight_decay);
  options.optimizer.max_grad_norm = static_cast<float>(max_grad_norm);
  auto schedule = qat::ParseLrScheduleKind(args.Get("--schedule", "constant"));
  if (!schedule.ok()) return Usage(std::string(schedule.status().message()));
  options.num_threads = static_cast<int>(threads);
  options.seed = static_cast<uint64_t>(seed);
  options.observe.freeze_after_steps = observe_steps;

  auto data = LoadData(args.Get("--data", ""), models->training, "train", limit);
  if (!data.ok()) return Fail(data.status());
  const int64_t steps_per_epoch = (data->size() + batch - 1) / batch;
  options.schedule = {*schedule, static_cast<float>(lr), 0.0f, warmup, epochs * steps_per_epoch};
  auto trainer = qat::Trainer::Create(*models, options);
  if (!trainer.ok()) return Fail(trainer.status());
  if (args.On("--resume")) {
    if (absl::Status s = (*trainer)->RestoreCheckpoint(*checkpoint); !s.ok()) return Fail(s);
  } else {
    // A new run starting from the checkpoint's parameters.
    qat::Checkpoint start;
    // The observed quantization parameters belong to the model too; the
    // observed-step count carries over, so freezing holds across runs.
    start.parameters = checkpoint->parameters;
    start.quant_params = checkpoint->quant_params;
    start.observer_state = checkpoint->observer_state;
    start.observed_steps = checkpoint->observed_steps;
    start.progress.seed = options.seed;
    if (absl::Status s = (*trainer)->RestoreCheckpoint(start); !s.ok()) return Fail(s);
  }

  std::map<std::string, std::string> metadata;
  for (const char* key : kRunKeys) {
    const std::string flag = absl::StrCat("--", key);
    if (args.Has(flag)) metadata[absl::StrCat("run.", key)] = args.Get(flag, "");
  }
  metadata["run.epochs"] = std::to_string(epochs);
  auto save = [&]() {
    qat::Checkpoint c = (*trainer)->MakeCheckpoint();
    c.metadata = metadata;
    return qat::SaveCheckpoint(ckpt_path, c);
  };
  std::unique_ptr<Progress> bar;
  double loss_sum = 0.0;
  int64_t loss_count = 0;
  const absl::Status trained = (*trainer)->TrainEpochs(
      *data, epochs, batch, [&](const qat::StepReport& r) -> absl::Status {
        if (!bar || r.step_in_epoch == 0) {
          bar = std::make_unique<Progress>(absl::StrCat("epoch ", r.epoch + 1, "/", epochs),
                                           r.steps_per_epoch);
          loss_sum = 0.0;
          loss_count = 0;
        }
        loss_sum += r.loss;
        ++loss_count;
        bar->Update(r.step_in_epoch + 1,
                    absl::StrFormat("loss %.4f lr %.2e", loss_sum / loss_count, r.lr));
        const bool epoch_end = r.step_in_epoch + 1 == r.steps_per_epoch;
        if (epoch_end || r.global_step % save_every == 0) {
          // The epoch's counters advance after this callback; save the state
          // as TrainEpochs will have it.
          qat::Checkpoint c = (*trainer)->MakeCheckpoint();
          if (epoch_end) {
            ++c.progress.epoch;
            c.progress.step_in_epoch = 0;
          } else {
            c.progress.step_in_epoch = r.step_in_epoch + 1;
          }
          c.metadata = metadata;
          if (absl::Status s = qat::SaveCheckpoint(ckpt_path, c); !s.ok()) return s;
        }
        if (epoch_end) {
          std::printf("epoch %lld/%lld: mean training loss %.4f\n",
                      static_cast<long long>(r.epoch + 1), static_cast<long long>(epochs),
                      loss_sum / loss_count);
          std::fflush(stdout);
        }
        return absl::OkStatus();
      });
  if (!trained.ok()) return Fail(trained);
  if (absl::Status s = save(); !s.ok()) return Fail(s);
  std::printf("{\"epochs\": %lld, \"steps\": %lld, \"checkpoint\": \"%s\"}\n",
              static_cast<long long>((*trainer)->progress().epoch),
              static_cast<long long>((*trainer)->progress().global_step), ckpt_path.c_str());
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
  if (!ParseArgs(argc, argv, {"--out"}, {"--keep-float-weights"}, &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("export needs the folder that prepare wrote");
  if (!args.Has("--out")) return Usage("export needs -o OUT.onnx");
  const std::string dir = args.positional[0];
  auto models = qat::LoadTrainingModels(dir);
  if (!models.ok()) return Fail(models.status());
  auto checkpoint = qat::LoadCheckpoint(dir + "/" + qat::kCheckpointFile);
  if (!checkpoint.ok()) return Fail(checkpoint.status());
  const std::map<std::string, qat::Tensor> params = qat::ExportedParameters(*checkpoint);
  qat::ExportOptions options;
  options.keep_float_weights = args.On("--keep-float-weights");
  // A model without FakeQuant exports as a plain float inference model.
  auto exported = qat::ExportQuantizedModel(models->eval, params, options);
  if (!exported.ok()) return Fail(exported.status());
  const std::string out = args.Get("--out", "");
  if (absl::Status s = qat::SaveModel(*exported, out); !s.ok()) return Fail(s);
  std::printf("wrote %s (%zu bytes)\n", out.c_str(), exported->Serialize().size());
  return 0;
}

}  // namespace qat_cli
