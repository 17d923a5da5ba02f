#include "ort_runner.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace qat_cli {
namespace {

constexpr char kScript[] = "ort_eval.js";

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ShellQuote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

std::string ExecutableDir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// The number after "key": in a flat JSON line.
bool JsonNumber(const std::string& json, const std::string& key, double* value) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t at = json.find(needle);
  if (at == std::string::npos) return false;
  const size_t begin = at + needle.size();
  const size_t end = json.find_first_of(",}", begin);
  return absl::SimpleAtod(json.substr(begin, end - begin), value);
}

}  // namespace

std::string FindOrtScriptDir(const std::string& flag) {
  std::vector<std::string> candidates;
  if (!flag.empty()) {
    candidates.push_back(flag);
  } else {
#ifdef QAT_SOURCE_DIR
    candidates.push_back(absl::StrCat(QAT_SOURCE_DIR, "/tests/ort"));
#endif
    const std::string exe = ExecutableDir();
    if (!exe.empty()) candidates.push_back(exe + "/../share/libqat/ort");
  }
  for (const std::string& dir : candidates) {
    if (IsFile(absl::StrCat(dir, "/", kScript))) return dir;
  }
  return "";
}

OrtMeasurement MeasureInOrt(const std::string& script_dir, const std::string& model_path,
                            const std::string& data_dir,
                            const std::vector<int64_t>& example_shape, int64_t batch,
                            int64_t test_limit) {
  OrtMeasurement m;
  if (script_dir.empty()) {
    m.reason = absl::StrCat(kScript, " not found (pass --ort-script-dir)");
    return m;
  }
  if (std::system("command -v node > /dev/null 2>&1") != 0) {
    m.reason = "node is not installed";
    return m;
  }
  if (data_dir.find(',') != std::string::npos) {
    m.reason = "ONNX Runtime evaluation needs an IDX data folder";
    return m;
  }
  const std::string command = absl::StrCat(
      "node ", ShellQuote(absl::StrCat(script_dir, "/", kScript)), " ", ShellQuote(model_path),
      " ", ShellQuote(data_dir), " --shape ", absl::StrJoin(example_shape, ","), " --batch ",
      batch, " --limit ", test_limit, " 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    m.reason = "cannot start node";
    return m;
  }
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = ::pclose(pipe);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::vector<std::string> lines = absl::StrSplit(output, '\n', absl::SkipWhitespace());
  const std::string last = lines.empty() ? "" : std::string(absl::StripAsciiWhitespace(lines.back()));
  if (code == 77) {
    m.reason = "onnxruntime-node is not installed (run .ci/install-ort.sh)";
    return m;
  }
  if (code != 0 || !JsonNumber(last, "accuracy", &m.accuracy) ||
      !JsonNumber(last, "latency_ms", &m.latency_ms)) {
    m.reason = absl::StrCat("ONNX Runtime failed (exit ", code, "): ", last);
    return m;
  }
  m.available = true;
  return m;
}

}  // namespace qat_cli
