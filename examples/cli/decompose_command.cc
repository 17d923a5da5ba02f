// qat decompose: rewrites a model's custom ops (FakeQuant, FakeQuantGrad,
// FakeQuantLsqGrad) into standard ONNX ops (qat/decompose.h).
#include <cstdio>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "qat/decompose.h"
#include "qat/training_artifacts.h"

namespace qat_cli {

int DecomposeCommand(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, {"--out"}, {"--float-sums"}, &args, &error)) return Usage(error);
  if (args.positional.size() != 1) return Usage("decompose needs one model");
  if (!args.Has("--out")) return Usage("decompose needs -o OUT.onnx");
  auto model = qat::Model::Load(args.positional[0]);
  if (!model.ok()) return Fail(model.status());
  qat::DecomposeOptions options;
  options.lsq_sums_in_double = !args.On("--float-sums");
  auto decomposed = qat::DecomposeCustomOps(*model, options);
  if (!decomposed.ok()) return Fail(decomposed.status());
  const std::string out = args.Get("--out", "");
  if (absl::Status s = qat::SaveModel(*decomposed, out); !s.ok()) return Fail(s);
  const bool unchanged = decomposed->Serialize() == model->Serialize();
  std::printf("wrote %s%s\n", out.c_str(),
              unchanged ? " (no custom ops: unchanged)" : " (standard ONNX ops only)");
  return 0;
}

}  // namespace qat_cli
