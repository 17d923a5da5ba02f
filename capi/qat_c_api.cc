// The C ABI.  No exception may cross it: the library reports errors as
// absl::Status, and each entry point catches whatever else escapes.
#include "qat_c_api.h"

#include "qat/fake_quant.h"
#include "qat/version.h"

static_assert(QAT_C_API_VERSION_MAJOR == QAT_VERSION_MAJOR &&
                  QAT_C_API_VERSION_MINOR == QAT_VERSION_MINOR &&
                  QAT_C_API_VERSION_PATCH == QAT_VERSION_PATCH,
              "qat_c_api.h and the project version disagree");

extern "C" {

const char* qat_version(void) { return QAT_VERSION_STRING; }

const char* qat_kernel_variant(void) {
  try {
    return qat::FakeQuantKernelVariant();
  } catch (...) {  // only bad_alloc while the variant list is built
    return "unknown";
  }
}

}  // extern "C"
