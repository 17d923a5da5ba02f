#include "cli_common.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "qat/npy.h"
#include "qat/thread_pool.h"

namespace qat_cli {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "qat: %s\n", status.ToString().c_str());
  return kExitError;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "qat: %s; run 'qat --help' for usage\n", message.c_str());
  return kExitUsage;
}

bool ParseArgs(int argc, char** argv, const std::vector<std::string>& valued,
               const std::vector<std::string>& switches, Args* args, std::string* error) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-o") arg = "--out";
    if (arg.rfind("--", 0) != 0) {
      args->positional.push_back(arg);
      continue;
    }
    if (std::find(switches.begin(), switches.end(), arg) != switches.end()) {
      args->switches.insert(arg);
      continue;
    }
    if (std::find(valued.begin(), valued.end(), arg) == valued.end()) {
      *error = absl::StrCat("unknown option ", arg);
      return false;
    }
    if (i + 1 >= argc) {
      *error = absl::StrCat(arg, " needs a value");
      return false;
    }
    args->flags[arg] = argv[++i];
    args->repeated[arg].push_back(args->flags[arg]);
    // Every command's thread count, capped in one place (before it is
    // narrowed to int) with the library's message.
    int64_t threads = 0;
    if (arg == "--threads" && absl::SimpleAtoi(args->flags[arg], &threads)) {
      const absl::Status status = qat::CheckThreadCount(threads, "--threads");
      if (!status.ok()) {
        *error = std::string(status.message());
        return false;
      }
    }
  }
  return true;
}

bool IntFlag(const Args& args, const std::string& flag, int64_t min, int64_t* value) {
  auto it = args.flags.find(flag);
  if (it == args.flags.end()) return true;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v) || v < min) return false;
  *value = v;
  return true;
}

bool FloatFlag(const Args& args, const std::string& flag, double min, double* value) {
  auto it = args.flags.find(flag);
  if (it == args.flags.end()) return true;
  double v;
  if (!absl::SimpleAtod(it->second, &v) || !(v >= min)) return false;
  *value = v;
  return true;
}

std::vector<std::string> SplitList(const std::string& list) {
  return absl::StrSplit(list, ',', absl::SkipEmpty());
}

std::vector<std::string> ListFlag(const Args& args, const std::string& flag) {
  std::vector<std::string> out;
  auto it = args.repeated.find(flag);
  if (it == args.repeated.end()) return out;
  for (const std::string& value : it->second) {
    for (std::string& item : SplitList(value)) out.push_back(std::move(item));
  }
  return out;
}

absl::StatusOr<qat::Tensor> ReadTensorFile(const std::string& path) {
  const bool is_pb = path.size() > 3 && path.compare(path.size() - 3, 3, ".pb") == 0;
  return is_pb ? qat::ReadTensorProtoFile(path) : qat::ReadNpy(path);
}

}  // namespace qat_cli
