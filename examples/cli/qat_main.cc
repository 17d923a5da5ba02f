// qat: libqat's command-line program, one subcommand per pipeline stage.
//
// Each subcommand is one function (declared in commands.h) that parses its
// own arguments, calls the library, and returns the exit code: 0 on success,
// 1 when the library reports an error (printed to stderr), 2 for bad usage.
// Outputs are written atomically by the library, so a failure never leaves a
// half-written file.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "commands.h"
#include "qat/dataset.h"
#include "qat/kernel_variants.h"
#include "qat/version.h"

namespace {

constexpr int kExitUsage = 2;

int Dispatch(const std::string& command, int argc, char** argv);

void PrintHelp(std::FILE* out) {
  std::fprintf(out,
               "qat %s - quantization-aware training of ONNX models\n"
               "\n"
               "usage: qat <command> [options]\n"
               "\n"
               "commands:\n"
               "  run MODEL.onnx [NAME=]IN.npy ... --out DIR [--threads T]\n"
               "              run a model; write each output as DIR/<name>.npy\n"
               "              (inputs may also be ONNX TensorProto .pb files)\n"
               "  eval MODEL.onnx [--data DATA] [--reference FP32.onnx] [--split test|train]\n"
               "       [--limit N] [--batch B] [--threads T] [--mean M] [--std S]\n"
               "              accuracy of a classifier on labelled data (default %s);\n"
               "              with --reference, several inputs or no labels: per-output\n"
               "              top1/top5, relative_l2, sqnr_db, max_abs_error, cosine,\n"
               "              argmax_agreement as JSON;\n"
               "              inputs are normalized as (x/255 - M) / S, by default\n"
               "              M=0.2860 S=0.3530\n"
               "  calibrate MODEL.onnx --data DATA -o TABLE.json [--samples N] [--batch B]\n"
               "       [--method minmax|moving-average|percentile|entropy|mse]\n"
               "       [--per-channel] [--symmetric-activations] [--threads T]\n"
               "       [--weight-bits 2..8] [--activation-bits 2..8]\n"
               "              observe ranges; write the calibration table;\n"
               "              --batch: samples per forward run (default 64)\n"
               "  quantize MODEL.onnx --table TABLE.json -o OUT.onnx [--weight-bits 2..8]\n"
               "       [--activation-bits 2..8] [--activation-type uint8|int8]\n"
               "       [--unsigned-weights] [--affine-weights] [--weight-range auto|narrow|full]\n"
               "       [--activation-range auto|narrow|full] [--bits NODE=N|float,...]\n"
               "       [--per-channel] [--weights-as-int8] [--exclude NODE,...]\n"
               "       [--block-size 32|64|128] [--embedding-bits 4] [--calibration minmax|mse]\n"
               "       [--uint8-block-scales]\n"
               "              insert QuantizeLinear/DequantizeLinear pairs (a model below\n"
               "              opset 13 is upgraded to 13 first, with a warning);\n"
               "              --embedding-bits 4: Gather tables block-wise (--block-size or 32)\n"
               "              along the embedding dimension; --calibration: block ranges;\n"
               "              --uint8-block-scales: block scales as uint8 codes times a\n"
               "              power-of-two step per channel (smaller 4-bit exports)\n"
               "  sensitivity MODEL.onnx --data DATA [--calibration-data DATA] [--limit N]\n"
               "       [--metric auto|accuracy|relative-l2] [--target-drop X] [-o PROPOSAL.json]\n"
               "       [--json REPORT.json] [--svg CHART.svg] [--no-all-but] [--high-bits N]\n"
               "       [calibrate's --method/--samples, quantize's bit and type flags]\n"
               "              per-layer sensitivity: each layer quantized alone and all but\n"
               "              it, evaluated on DATA (validation data, train split by\n"
               "              default); --target-drop: a mixed w<low>/w8a8/fp32 assignment\n"
               "              meeting it, re-measured, as a table for quantize --table\n"
               "  prepare MODEL.onnx -o DIR [--loss cross-entropy|mse|bce-with-logits|l1]\n"
               "       [--reduction mean|sum] [--output NAME] [--trainable GLOB,...]\n"
               "       [--frozen GLOB,...] [--ignore-index N]\n"
               "       [--quant-params fixed|learn|observe] [--accumulate-gradients]\n"
               "       [--teacher T.onnx] [--distill mse|kl|cosine] [--temperature T]\n"
               "       [--distill-outputs NAME,...] [--distill-weights W,...]\n"
               "       [--distill-tensors NAME,...] [--label-weight W]\n"
               "              fuse QDQ into FakeQuant, add the loss, build gradients;\n"
               "              write DIR/training.onnx, DIR/eval.onnx, DIR/checkpoint;\n"
               "              --output: the model output the loss reads (default the\n"
               "              first); --trainable/--frozen: parameter name globs (* ?),\n"
               "              repeatable, frozen wins; prints the trainable parameters;\n"
               "              --teacher/--distill: distillation, no labels needed: the\n"
               "              loss compares the outputs (and --distill-tensors, mse) with\n"
               "              the teacher's (default: the fp32 model quantize recorded);\n"
               "              --label-weight W adds W x the labelled --loss\n"
               "  train DIR --data DATA [--epochs E] [--batch B] [--optimizer adamw|sgd]\n"
               "       [--lr X] [--schedule constant|linear|cosine] [--seed S]\n"
               "       [--threads T] [--observe-steps N] [--freeze-bn-steps N]\n"
               "       [--batch-shards K] [--sync-bn] [--resume]\n"
               "              train from DIR/checkpoint and update it; without --lr:\n"
               "              1e-4 with cosine decay for a folder prepared from a QDQ\n"
               "              model, 1e-3 constant for an fp32 one (--schedule defaults\n"
               "              to constant when --lr is given); --limit N: the first N\n"
               "              examples of any DATA; --batch-shards K: compute each\n"
               "              batch as K mpirun ranks would (the same bits, slower);\n"
               "              --sync-bn: training-mode BatchNorm normalizes with the\n"
               "              statistics of the whole batch over every rank or shard\n"
               "  grad TRAINING.onnx [NAME=]IN.npy ... --out DIR\n"
               "              run a training model once; write loss and gradients\n"
               "  export DIR -o OUT.onnx [--keep-float-weights] [--opset 13|21]\n"
               "       [--uint8-block-scales]\n"
               "              write the trained inference model (int8 QDQ if quantized)\n"
               "  decompose MODEL.onnx -o OUT.onnx [--float-sums]\n"
               "              rewrite the custom ops (FakeQuant, FakeQuantGrad, LSQ\n"
               "              gradient) into standard ONNX ops, for any ONNX runtime\n"
               "  pipeline [--zoo mlp|lenet5|resnet8|mobilenetv2 | --model M.onnx] [--data DIR] [--out DIR]\n"
               "       [--epochs E] [--qat-epochs Q] [--qat-lr X] [--qat-schedule S]\n"
               "       [--qat-quant-params fixed|learn] [--qat-method M] [--method M]\n"
               "       [--limit N] [--test-limit N] [--no-ort] [--ort-script-dir DIR]\n"
               "              the whole pipeline on Fashion-MNIST: fp32, PTQ int8, QAT int8\n"
               "              and W4A8, export, evaluation in libqat and ONNX Runtime,\n"
               "              report, plots and graph pictures (docs/cli.md)\n"
               "  zoo mlp|lenet5|resnet8|mobilenetv2 -o OUT.onnx [--seed S]\n"
               "              write a reference model (PyTorch's initialisation)\n"
               "  --version   print the version and the kernel variants in use\n"
               "  --help      print this help\n"
               "\n"
               "DATA is an IDX folder (MNIST layout); a folder of .npy files, one per model\n"
               "input named after it, plus labels.npy when labelled; DATA.npz with the same\n"
               "names; FEATURES.npy (one input, no labels); or FEATURES.npy,LABELS.npy.\n",
               QAT_VERSION_STRING, qat::kFashionMnistDir);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintHelp(stderr);
    return kExitUsage;
  }
  const std::string command = argv[1];
  const bool sub_help = argc == 3 && (std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h");
  if (command == "--help" || command == "-h" || command == "help" || sub_help) {
    PrintHelp(stdout);
    return 0;
  }
  if (command == "--version" || command == "version") {
    std::printf("qat %s (kernels: %s)\n", QAT_VERSION_STRING, qat::KernelVariants().c_str());
    return 0;
  }
  // The library returns errors as values, but nothing that escapes it
  // (std::bad_alloc, std::length_error, std::system_error) may end the
  // program with an abort: it gets a clear error and exit code 1.
  try {
    return Dispatch(command, argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "qat: RESOURCE_EXHAUSTED: out of memory in '%s'\n", command.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qat: INTERNAL: '%s' failed: %s\n", command.c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "qat: INTERNAL: '%s' failed with an unknown exception\n",
                 command.c_str());
  }
  return 1;
}

namespace {

int Dispatch(const std::string& command, int argc, char** argv) {
  if (command == "run") return qat_cli::RunCommand(argc - 2, argv + 2);
  if (command == "eval") return qat_cli::EvalCommand(argc - 2, argv + 2);
  if (command == "calibrate") return qat_cli::CalibrateCommand(argc - 2, argv + 2);
  if (command == "quantize") return qat_cli::QuantizeCommand(argc - 2, argv + 2);
  if (command == "prepare") return qat_cli::PrepareCommand(argc - 2, argv + 2);
  if (command == "train") return qat_cli::TrainCommand(argc - 2, argv + 2);
  if (command == "grad") return qat_cli::GradCommand(argc - 2, argv + 2);
  if (command == "export") return qat_cli::ExportCommand(argc - 2, argv + 2);
  if (command == "pipeline") return qat_cli::PipelineCommand(argc - 2, argv + 2);
  if (command == "zoo") return qat_cli::ZooCommand(argc - 2, argv + 2);
  if (command == "decompose") return qat_cli::DecomposeCommand(argc - 2, argv + 2);
  if (command == "sensitivity") return qat_cli::SensitivityCommand(argc - 2, argv + 2);
  std::fprintf(stderr,
               "qat: unknown command '%s'; run 'qat --help' for the list\n",
               command.c_str());
  return kExitUsage;
}

}  // namespace
