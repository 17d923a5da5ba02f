// qat: libqat's command-line program, one subcommand per pipeline stage.
//
// Each subcommand is one function below that parses its own arguments,
// calls the library, and returns the exit code: 0 on success, 1 when the
// library reports an error (printed to stderr), 2 for bad usage.  Outputs
// are written atomically by the library, so a failure never leaves a
// half-written file.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "qat/executor.h"
#include "qat/fake_quant.h"
#include "qat/idx.h"
#include "qat/model.h"
#include "qat/npy.h"
#include "qat/tensor.h"
#include "qat/version.h"
#include "commands.h"

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr char kDefaultDataDir[] = "/usr/share/datasets/fashion-mnist";

void PrintHelp(std::FILE* out) {
  std::fprintf(out,
               "qat %s - quantization-aware training of ONNX models\n"
               "\n"
               "usage: qat <command> [options]\n"
               "\n"
               "commands:\n"
               "  run MODEL.onnx [NAME=]IN.npy ... --out DIR [--threads T]\n"
               "              run a model; write each output as DIR/<name>.npy\n"
               "              (inputs may also be ONNX TensorProto .pb files)\n"
               "  eval MODEL.onnx [--data DIR] [--split test|train] [--limit N]\n"
               "       [--batch B] [--threads T] [--mean M] [--std S]\n"
               "              accuracy of a classifier on an IDX data set (MNIST\n"
               "              layout; default %s);\n"
               "              inputs are normalized as (x/255 - M) / S, by default\n"
               "              M=0.2860 S=0.3530\n"
               "  calibrate MODEL.onnx --data DATA -o TABLE.json [--samples N]\n"
               "       [--method minmax|moving-average|percentile|entropy|mse]\n"
               "       [--per-channel] [--symmetric-activations]\n"
               "              observe ranges; write the calibration table\n"
               "  quantize MODEL.onnx --table TABLE.json -o OUT.onnx [--weight-bits 8|4]\n"
               "       [--activation-type uint8|int8] [--per-channel] [--weights-as-int8]\n"
               "       [--exclude NODE,...]\n"
               "              insert QuantizeLinear/DequantizeLinear pairs\n"
               "  prepare MODEL.onnx -o DIR [--loss cross-entropy|mse|bce-with-logits|l1]\n"
               "       [--frozen NAME,...] [--quant-params fixed]\n"
               "              fuse QDQ into FakeQuant, add the loss, build gradients;\n"
               "              write DIR/training.onnx, DIR/eval.onnx, DIR/checkpoint\n"
               "  train DIR --data DATA [--epochs E] [--batch B] [--optimizer adamw|sgd]\n"
               "       [--lr X] [--schedule constant|linear|cosine] [--seed S]\n"
               "       [--threads T] [--resume]\n"
               "              train from DIR/checkpoint and update it\n"
               "  grad TRAINING.onnx [NAME=]IN.npy ... --out DIR\n"
               "              run a training model once; write loss and gradients\n"
               "  export DIR -o OUT.onnx [--keep-float-weights]\n"
               "              write the trained inference model (int8 QDQ if quantized)\n"
               "  pipeline [--model M.onnx] [--data DIR] [--out DIR]\n"
               "              the whole pipeline on Fashion-MNIST: fp32, PTQ, QAT, export\n"
               "  --version   print the version and the kernel variant in use\n"
               "  --help      print this help\n"
               "\n"
               "DATA is an IDX folder (MNIST layout) or FEATURES.npy,LABELS.npy.\n",
               QAT_VERSION_STRING, kDefaultDataDir);
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "qat: %s\n", status.ToString().c_str());
  return kExitError;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "qat: %s; run 'qat --help' for usage\n", message.c_str());
  return kExitUsage;
}

// Splits arguments into positional ones and "--flag value" pairs.  Every
// flag takes a value; `allowed` lists the flags the subcommand knows.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
};

bool ParseArgs(int argc, char** argv, const std::vector<std::string>& allowed,
               Args* args, std::string* error) {
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      args->positional.push_back(arg);
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), arg) == allowed.end()) {
      *error = absl::StrCat("unknown option ", arg);
      return false;
    }
    if (i + 1 >= argc) {
      *error = absl::StrCat(arg, " needs a value");
      return false;
    }
    args->flags[arg] = argv[++i];
  }
  return true;
}

// Reads a numeric flag into *value if present; false if it does not parse.
template <typename T>
bool NumberFlag(const Args& args, const std::string& flag, T* value) {
  auto it = args.flags.find(flag);
  if (it == args.flags.end()) return true;
  if constexpr (std::is_floating_point_v<T>) {
    double d = 0;
    if (!absl::SimpleAtod(it->second, &d)) return false;
    *value = static_cast<T>(d);
    return true;
  } else {
    return absl::SimpleAtoi(it->second, value);
  }
}

// A tensor from an .npy file, or from a serialized TensorProto (.pb).
absl::StatusOr<qat::Tensor> ReadTensorFile(const std::string& path) {
  const bool is_pb = path.size() > 3 && path.compare(path.size() - 3, 3, ".pb") == 0;
  return is_pb ? qat::ReadTensorProtoFile(path) : qat::ReadNpy(path);
}

// An output name as a file name: anything but [A-Za-z0-9._-] becomes '_'.
std::string FileNameFor(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return out.empty() ? "_" : out;
}

absl::StatusOr<std::unique_ptr<qat::Executor>> LoadExecutor(const std::string& path,
                                                            int threads) {
  auto model = qat::Model::Load(path);
  if (!model.ok()) return model.status();
  qat::ExecutorOptions options;
  options.num_threads = threads;
  return qat::Executor::Create(*model, options);
}

// ---- qat run ----------------------------------------------------------------

int RunCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, {"--out", "--threads"}, &args, &error)) return Usage(error);
  if (args.positional.empty()) return Usage("run needs a model");
  if (args.flags.count("--out") == 0) return Usage("run needs --out DIR");
  int threads = 0;
  if (!NumberFlag(args, "--threads", &threads) || threads < 0) {
    return Usage("--threads needs a non-negative integer");
  }
  auto executor = LoadExecutor(args.positional[0], threads);
  if (!executor.ok()) return Fail(executor.status());
  const auto& inputs = (*executor)->inputs();

  // NAME=FILE binds by name; plain FILEs fill the remaining inputs in order.
  std::map<std::string, qat::Tensor> feed;
  std::vector<std::string> unnamed;
  for (size_t i = 1; i < args.positional.size(); ++i) {
    const std::string& arg = args.positional[i];
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) {
      unnamed.push_back(arg);
      continue;
    }
    auto tensor = ReadTensorFile(arg.substr(eq + 1));
    if (!tensor.ok()) return Fail(tensor.status());
    feed[arg.substr(0, eq)] = *std::move(tensor);
  }
  size_t next = 0;
  for (const qat::ValueInfo& input : inputs) {
    if (feed.count(input.name) > 0 || next >= unnamed.size()) continue;
    auto tensor = ReadTensorFile(unnamed[next++]);
    if (!tensor.ok()) return Fail(tensor.status());
    feed[input.name] = *std::move(tensor);
  }
  if (next < unnamed.size()) {
    return Usage(absl::StrCat("more input files than the model has inputs (",
                              inputs.size(), ")"));
  }
  auto outputs = (*executor)->Run(feed);
  if (!outputs.ok()) return Fail(outputs.status());

  const std::string dir = args.flags["--out"];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(absl::PermissionDeniedError(
      absl::StrCat("cannot create '", dir, "': ", ec.message())));
  for (const auto& [name, tensor] : *outputs) {
    const std::string path = (std::filesystem::path(dir) / (FileNameFor(name) + ".npy")).string();
    absl::Status status = qat::WriteNpy(path, tensor);
    if (!status.ok()) return Fail(status);
    std::printf("%s %s %s\n", path.c_str(), qat::DataTypeName(tensor.dtype()),
                qat::ShapeToString(tensor.shape()).c_str());
  }
  return 0;
}

// ---- qat eval ---------------------------------------------------------------

// The first of DIR/NAME.gz and DIR/NAME that exists (NAME.gz if neither).
std::string FindDataFile(const std::string& dir, const std::string& name) {
  const std::filesystem::path plain = std::filesystem::path(dir) / name;
  if (std::filesystem::exists(plain)) return plain.string();
  return plain.string() + ".gz";
}

int EvalCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv,
                 {"--data", "--split", "--limit", "--batch", "--threads", "--mean", "--std"},
                 &args, &error)) {
    return Usage(error);
  }
  if (args.positional.size() != 1) return Usage("eval needs exactly one model");
  int threads = 0;
  int64_t limit = -1, batch = 64;
  double mean = 0.2860, std_dev = 0.3530;
  if (!NumberFlag(args, "--threads", &threads) || threads < 0 ||
      !NumberFlag(args, "--limit", &limit) || !NumberFlag(args, "--batch", &batch) ||
      batch < 1 || !NumberFlag(args, "--mean", &mean) ||
      !NumberFlag(args, "--std", &std_dev) || !(std_dev > 0)) {
    return Usage("bad --threads, --limit, --batch, --mean or --std value");
  }
  const std::string split = args.flags.count("--split") ? args.flags["--split"] : "test";
  if (split != "test" && split != "train") return Usage("--split must be test or train");
  const std::string dir = args.flags.count("--data") ? args.flags["--data"] : kDefaultDataDir;
  const std::string prefix = split == "test" ? "t10k" : "train";

  auto images = qat::ReadIdx(FindDataFile(dir, prefix + "-images-idx3-ubyte"));
  if (!images.ok()) return Fail(images.status());
  auto labels = qat::ReadIdx(FindDataFile(dir, prefix + "-labels-idx1-ubyte"));
  if (!labels.ok()) return Fail(labels.status());
  if (images->rank() != 3 || labels->rank() != 1 || images->dim(0) != labels->dim(0)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "images ", qat::ShapeToString(images->shape()), " and labels ",
        qat::ShapeToString(labels->shape()), " do not match")));
  }
  auto executor = LoadExecutor(args.positional[0], threads);
  if (!executor.ok()) return Fail(executor.status());
  if ((*executor)->inputs().size() != 1 || (*executor)->outputs().empty()) {
    return Fail(absl::InvalidArgumentError("eval needs a model with one input"));
  }
  const qat::ValueInfo& input = (*executor)->inputs()[0];
  const int64_t rows = images->dim(1), cols = images->dim(2), pixels = rows * cols;
  if (input.shape.size() != 2 && input.shape.size() != 4) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "the model's input '", input.name, "' must have rank 2 ([N,", pixels,
        "]) or 4 ([N,1,", rows, ",", cols, "])")));
  }
  // A model with a fixed batch size gets batches of that size.
  if (input.shape[0] > 0) batch = input.shape[0];

  const int64_t total = limit >= 0 ? std::min(limit, images->dim(0)) : images->dim(0);
  const uint8_t* pixels_in = images->data<uint8_t>();
  const uint8_t* labels_in = labels->data<uint8_t>();
  int64_t correct = 0, seen = 0;
  double seconds = 0;
  for (int64_t start = 0; start + (input.shape[0] > 0 ? batch : 1) <= total; start += batch) {
    const int64_t n = std::min(batch, total - start);
    std::vector<int64_t> shape = input.shape.size() == 2
                                     ? std::vector<int64_t>{n, pixels}
                                     : std::vector<int64_t>{n, 1, rows, cols};
    qat::Tensor x(qat::DataType::kFloat32, shape);
    float* px = x.data<float>();
    for (int64_t i = 0; i < n * pixels; ++i) {
      px[i] = static_cast<float>((pixels_in[start * pixels + i] / 255.0 - mean) / std_dev);
    }
    const auto begin = std::chrono::steady_clock::now();
    auto outputs = (*executor)->Run({{input.name, std::move(x)}});
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (!outputs.ok()) return Fail(outputs.status());
    const qat::Tensor& scores = outputs->at((*executor)->outputs()[0].name);
    if (scores.dtype() != qat::DataType::kFloat32 || scores.rank() != 2 || scores.dim(0) != n) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the model's first output must be float32 [N, classes], got ",
          qat::DataTypeName(scores.dtype()), " ", qat::ShapeToString(scores.shape()))));
    }
    const int64_t classes = scores.dim(1);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = scores.data<float>() + i * classes;
      const int64_t predicted = std::max_element(row, row + classes) - row;
      correct += predicted == labels_in[start + i];
    }
    seen += n;
  }
  if (seen == 0) return Fail(absl::InvalidArgumentError("no images were evaluated"));
  std::printf("{\"accuracy\": %.4f, \"images_per_s\": %.1f}\n",
              static_cast<double>(correct) / static_cast<double>(seen),
              seconds > 0 ? static_cast<double>(seen) / seconds : 0.0);
  return 0;
}

}  // namespace

namespace qat_cli {
int RunCommand(int argc, char** argv) { return ::RunCommand(argc, argv); }
int EvalCommand(int argc, char** argv) { return ::EvalCommand(argc, argv); }
}  // namespace qat_cli

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintHelp(stderr);
    return kExitUsage;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    PrintHelp(stdout);
    return 0;
  }
  if (command == "--version" || command == "version") {
    std::printf("qat %s (kernels: %s)\n", QAT_VERSION_STRING,
                qat::FakeQuantKernelVariant());
    return 0;
  }
  if (command == "run") return RunCommand(argc - 2, argv + 2);
  if (command == "eval") return EvalCommand(argc - 2, argv + 2);
  if (command == "calibrate") return qat_cli::CalibrateCommand(argc - 2, argv + 2);
  if (command == "quantize") return qat_cli::QuantizeCommand(argc - 2, argv + 2);
  if (command == "prepare") return qat_cli::PrepareCommand(argc - 2, argv + 2);
  if (command == "train") return qat_cli::TrainCommand(argc - 2, argv + 2);
  if (command == "grad") return qat_cli::GradCommand(argc - 2, argv + 2);
  if (command == "export") return qat_cli::ExportCommand(argc - 2, argv + 2);
  if (command == "pipeline") return qat_cli::PipelineCommand(argc - 2, argv + 2);
  std::fprintf(stderr,
               "qat: unknown command '%s'; run 'qat --help' for the list\n",
               command.c_str());
  return kExitUsage;
}
