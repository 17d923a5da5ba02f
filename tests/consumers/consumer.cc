// A C++ program that uses libqat the way an application would: through the
// public headers and the qat::qat target, plus the C ABI.
#include <cstdio>
#include <cstring>
#include <vector>

#include "qat/fake_quant.h"
#include "qat/version.h"
#include "qat/c_api.h"

int main() {
  if (std::strcmp(qat_version(), QAT_VERSION_STRING) != 0) {
    std::fprintf(stderr, "version mismatch: %s vs %s\n", qat_version(),
                 QAT_VERSION_STRING);
    return 1;
  }
  const std::vector<float> x = {0.26f, -1.0f, 100.0f};
  std::vector<float> y(x.size());
  const absl::Status s = qat::FakeQuantPerTensor(
      x, absl::MakeSpan(y), {}, {0.5f, 0.0f, qat::QuantRange::Int8()});
  if (!s.ok() || y[0] != 0.5f || y[1] != -1.0f || y[2] != 63.5f) {
    std::fprintf(stderr, "unexpected result: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("consumer OK: libqat %s, kernels %s\n", qat_version(),
              qat_kernel_variant());
  return 0;
}
