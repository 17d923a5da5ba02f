// Fuzz target: the checkpoint reader (through a file, as users meet it).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "qat/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/qat_fuzz_checkpoint_" + std::to_string(::getpid());
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  auto c = qat::LoadCheckpoint(path);
  if (c.ok()) {
    // A checkpoint that loads must save and load again to the same content.
    if (!qat::SaveCheckpoint(path, *c).ok()) __builtin_trap();
    auto again = qat::LoadCheckpoint(path);
    if (!again.ok() || again->parameters.size() != c->parameters.size()) __builtin_trap();
  }
  return 0;
}
