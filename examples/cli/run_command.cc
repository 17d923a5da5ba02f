// qat run MODEL.onnx [NAME=]IN.npy ... --out DIR [--threads T]
//
// NAME=FILE binds an input by name; plain FILEs fill the remaining inputs in
// the model's order.  Each output is written as DIR/<name>.npy.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "commands.h"
#include "load_executor.h"
#include "qat/executor.h"
#include "qat/npy.h"

namespace qat_cli {
namespace {

// An output name as a file name: anything but [A-Za-z0-9._-] becomes '_'.
std::string FileNameFor(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      c = '_';
    }
  }
  return out.empty() ? "_" : out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<qat::Executor>> LoadExecutor(const std::string& path,
                                                            int64_t threads) {
  auto model = qat::Model::Load(path);
  if (!model.ok()) return model.status();
  qat::ExecutorOptions options;
  options.num_threads = static_cast<int>(threads);
  return qat::Executor::Create(*model, options);
}

int RunCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, {"--out", "--threads"}, {}, &args, &error)) return Usage(error);
  if (args.positional.empty()) return Usage("run needs a model");
  if (!args.Has("--out")) return Usage("run needs --out DIR");
  int64_t threads = 0;
  if (!IntFlag(args, "--threads", 0, &threads)) {
    return Usage("--threads needs a non-negative integer");
  }
  auto executor = LoadExecutor(args.positional[0], threads);
  if (!executor.ok()) return Fail(executor.status());
  const auto& inputs = (*executor)->inputs();

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

  const std::string dir = args.Get("--out", "");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Fail(absl::PermissionDeniedError(
        absl::StrCat("cannot create '", dir, "': ", ec.message())));
  }
  // Two outputs whose names map to one file ("a/b" and "a_b") would
  // overwrite each other: refuse before writing anything.
  std::map<std::string, std::string> output_of_file;
  for (const auto& [name, tensor] : *outputs) {
    auto [it, inserted] = output_of_file.emplace(FileNameFor(name), name);
    if (!inserted) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "outputs '", it->second, "' and '", name, "' would both be written to '",
          it->first, ".npy'; rename one of them in the model")));
    }
  }
  for (const auto& [name, tensor] : *outputs) {
    const std::string path =
        (std::filesystem::path(dir) / (FileNameFor(name) + ".npy")).string();
    absl::Status status = qat::WriteNpy(path, tensor);
    if (!status.ok()) return Fail(status);
    std::printf("%s %s %s\n", path.c_str(), qat::DataTypeName(tensor.dtype()),
                qat::ShapeToString(tensor.shape()).c_str());
  }
  return 0;
}

}  // namespace qat_cli
