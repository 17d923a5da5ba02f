// Fuzz target: the calibration-table JSON reader, then writing it back.
#include <cstddef>
#include <cstdint>

#include "qat/calibration_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto table = qat::CalibrationTable::FromJson(
      absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  if (!table.ok()) return 0;
  auto json = table->ToJson();
  if (json.ok()) {
    // What the writer produces, the reader takes back.
    auto again = qat::CalibrationTable::FromJson(*json, "round-trip.json");
    if (!again.ok()) __builtin_trap();
  }
  (void)table->ToAimetEncodings();
  return 0;
}
