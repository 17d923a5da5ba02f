// qat: libqat's command-line program, one subcommand per pipeline stage.
//
// The stages (calibrate, quantize, prepare, train, export, ...) arrive with
// the library features behind them; until then `qat` answers --version and
// --help, and rejects anything else with a clear message and exit code 2.
#include <cstdio>
#include <cstring>
#include <string>

#include "qat/fake_quant.h"
#include "qat/version.h"

namespace {

constexpr int kExitUsage = 2;

void PrintHelp(std::FILE* out) {
  std::fprintf(out,
               "qat %s - quantization-aware training of ONNX models\n"
               "\n"
               "usage: qat <command> [options]\n"
               "\n"
               "commands:\n"
               "  --version   print the version and the kernel variant in use\n"
               "  --help      print this help\n"
               "\n"
               "The pipeline stages (run, eval, calibrate, quantize, prepare, "
               "train,\ngrad, export, pipeline) are not implemented yet; see "
               "docs/cli.md.\n",
               QAT_VERSION_STRING);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintHelp(stderr);
    return kExitUsage;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    PrintHelp(stdout);
    return 0;
  }
  if (command == "--version" || command == "version") {
    std::printf("qat %s (kernels: %s)\n", QAT_VERSION_STRING,
                qat::FakeQuantKernelVariant());
    return 0;
  }
  std::fprintf(stderr,
               "qat: unknown command '%s'; run 'qat --help' for the list\n",
               command.c_str());
  return kExitUsage;
}
