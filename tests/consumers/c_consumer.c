/* A C program linked with plain cc and pkg-config against the C ABI. */
#include <stdio.h>
#include <string.h>

#include <qat/c_api.h>

int main(void) {
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", QAT_C_API_VERSION_MAJOR,
           QAT_C_API_VERSION_MINOR, QAT_C_API_VERSION_PATCH);
  if (strcmp(qat_version(), expected) != 0) {
    fprintf(stderr, "version mismatch: %s vs %s\n", qat_version(), expected);
    return 1;
  }
  printf("C consumer OK: libqat %s, kernels %s\n", qat_version(),
         qat_kernel_variant());
  return 0;
}
