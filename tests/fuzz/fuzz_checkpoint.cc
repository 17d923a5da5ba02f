// Fuzz target: the checkpoint reader (through a file, as users meet it).
#include <cstddef>
#include <cstdint>

#include "qat/checkpoint.h"
#include "scratch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ScratchFile file("checkpoint",
                         absl::string_view(reinterpret_cast<const char*>(data), size));
  auto c = qat::LoadCheckpoint(file.path());
  if (c.ok()) {
    // A checkpoint that loads must save and load again to the same content.
    if (!qat::SaveCheckpoint(file.path(), *c).ok()) __builtin_trap();
    auto again = qat::LoadCheckpoint(file.path());
    if (!again.ok() || again->parameters.size() != c->parameters.size()) __builtin_trap();
  }
  return 0;
}
