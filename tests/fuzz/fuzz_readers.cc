// Fuzz target: the .npy parser and the IDX reader (plain and gzip), chosen by
// the first byte.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "qat/idx.h"
#include "qat/npy.h"

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
  static const std::string base = "/tmp/qat_fuzz_idx_" + std::to_string(::getpid());
  const std::string path = base + (data[0] % 4 == 1 ? "" : ".gz");
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  (void)qat::ReadIdx(path);
  return 0;
}
