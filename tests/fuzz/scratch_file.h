// A fuzz input written to a file, for the readers that take a path, and
// removed again when the ScratchFile goes away, so that a fuzzing run leaves
// nothing in the temp folder ($TMPDIR, else /tmp).
#ifndef QAT_TESTS_FUZZ_SCRATCH_FILE_H_
#define QAT_TESTS_FUZZ_SCRATCH_FILE_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"

class ScratchFile {
 public:
  // The file is "$TMPDIR/qat_fuzz_<stem>_<pid><suffix>".
  ScratchFile(const char* stem, absl::string_view bytes, const char* suffix = "") {
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/qat_fuzz_" + stem +
            "_" + std::to_string(::getpid()) + suffix;
    if (FILE* f = std::fopen(path_.c_str(), "wb")) {
      std::fwrite(bytes.data(), 1, bytes.size(), f);
      std::fclose(f);
    }
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  ~ScratchFile() { std::remove(path_.c_str()); }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

#endif  // QAT_TESTS_FUZZ_SCRATCH_FILE_H_
