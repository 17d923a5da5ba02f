// Fuzz target: the .npy parser and the IDX reader (plain and gzip), chosen by
// the first byte.
#include <cstddef>
#include <cstdint>

#include "qat/idx.h"
#include "qat/npy.h"
#include "scratch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto t = qat::ParseNpy(bytes);
    if (t.ok()) {
      // Whatever parses serializes and parses back.
      auto again = qat::ParseNpy(qat::SerializeNpy(*t));
      if (!again.ok()) __builtin_trap();
    }
    return 0;
  }
  const ScratchFile file("idx", bytes, data[0] % 4 == 1 ? "" : ".gz");
  (void)qat::ReadIdx(file.path());
  return 0;
}
