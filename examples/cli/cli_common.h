// Shared plumbing of the qat subcommands: argument parsing, error exits,
// reading tensors.
#ifndef QAT_EXAMPLES_CLI_CLI_COMMON_H_
#define QAT_EXAMPLES_CLI_CLI_COMMON_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qat/tensor.h"

namespace qat_cli {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

// Prints "qat: <status>" and returns kExitError.
int Fail(const absl::Status& status);
// Prints "qat: <message>; run 'qat --help' for usage" and returns kExitUsage.
int Usage(const std::string& message);

// Positional arguments, "--flag value" pairs and boolean "--switch"es.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // the last value of each flag
  std::map<std::string, std::vector<std::string>> repeated;  // every value, in order
  std::set<std::string> switches;

  bool Has(const std::string& flag) const { return flags.count(flag) != 0; }
  std::string Get(const std::string& flag, const std::string& fallback) const {
    auto it = flags.find(flag);
    return it == flags.end() ? fallback : it->second;
  }
  bool On(const std::string& name) const { return switches.count(name) != 0; }
};

// `valued` lists the flags that take a value, `switches` those that do not;
// anything else starting with "--" (or "-o", an alias of "--out") is an
// error written to *error.
bool ParseArgs(int argc, char** argv, const std::vector<std::string>& valued,
               const std::vector<std::string>& switches, Args* args, std::string* error);

// Parses a numeric flag into *value when present.  False when it does not
// parse or is below `min`.
bool IntFlag(const Args& args, const std::string& flag, int64_t min, int64_t* value);
bool FloatFlag(const Args& args, const std::string& flag, double min, double* value);

// "A,B,C" -> {"A", "B", "C"}; empty parts are dropped.
std::vector<std::string> SplitList(const std::string& list);
// Every value of a flag that may be repeated, each split as SplitList does:
// --frozen a,b --frozen c -> {"a", "b", "c"}.
std::vector<std::string> ListFlag(const Args& args, const std::string& flag);

// A tensor from an .npy file, or from a serialized TensorProto (.pb).
absl::StatusOr<qat::Tensor> ReadTensorFile(const std::string& path);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_CLI_COMMON_H_
